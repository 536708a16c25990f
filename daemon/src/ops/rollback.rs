//! Rollback: plan the stored snapshot of an earlier applied revision, apply it, pin the stack
//! there until `resume` or a new revision on the tracked source.

use super::{ApplyOutcome, Ops, OpsError, Planned, plan_against_store};
use crate::store::Store;
use api::{ApplyReason, ApplyStatus};
use planner::Snapshot;
use planner::plan::Plan;

/// Resolves what an operator typed to a revision applied in full: the full id, a unique prefix
/// of it (with or without the `content-` of directory revisions), or an apply's id from the
/// first column of `platformd history`. An ambiguous prefix lists the candidates.
pub fn resolve_revision(store: &Store, target: &str) -> Result<String, OpsError> {
    let target = target.trim();
    let history = store.history()?;
    let mut candidates: Vec<String> = Vec::new();
    let mut add = |revision: &str| {
        if !candidates.iter().any(|c| c == revision) {
            candidates.push(revision.to_string());
        }
    };
    if let Some(exact) = history.iter().find(|a| a.revision == target) {
        add(&exact.revision);
    } else if !target.is_empty() {
        if let Ok(id) = target.parse::<i64>()
            && let Some(row) = history.iter().find(|a| a.id == id)
        {
            add(&row.revision);
        }
        for a in &history {
            let hash = a.revision.strip_prefix("content-").unwrap_or(&a.revision);
            if a.revision.starts_with(target) || hash.starts_with(target) {
                add(&a.revision);
            }
        }
    }
    match candidates.as_slice() {
        [] => Err(OpsError::UnknownRevision(target.to_string())),
        [one] => {
            let applied = history
                .iter()
                .any(|a| &a.revision == one && a.status == ApplyStatus::Succeeded);
            if applied && store.snapshot(one)?.is_some() {
                Ok(one.clone())
            } else {
                Err(OpsError::NotRollbackTarget(one.clone()))
            }
        }
        _ => Err(OpsError::AmbiguousRevision {
            prefix: target.to_string(),
            candidates,
        }),
    }
}

/// The rollback target's full id, its stored snapshot, and the plan of rolling back to it
/// (what the operator sees before confirming). Changes nothing.
pub fn rollback_preview(
    store: &Store,
    target: &str,
    allow_destroy: Vec<String>,
) -> Result<(String, Snapshot, Planned), OpsError> {
    let full = resolve_revision(store, target)?;
    let snapshot = store
        .snapshot(&full)?
        .ok_or_else(|| OpsError::UnknownRevision(target.to_string()))?;
    let planned = plan_against_store(
        store,
        &snapshot,
        &full,
        super::Choices::allowing(allow_destroy),
    )?;
    Ok((full, snapshot, planned))
}

/// Ends a rollback pin; the revision it was pinned to, if any.
pub fn resume(store: &Store) -> Result<Option<String>, OpsError> {
    let pin = store.pinned_revision()?;
    if pin.is_some() {
        store.set_pin(None, None)?;
    }
    Ok(pin)
}

pub enum RollbackReport {
    Blocked {
        revision: String,
        plan: Plan,
    },
    Declined {
        revision: String,
        plan: Plan,
    },
    /// Rolled back and pinned; `outcome` is `None` when nothing had to change.
    Done {
        revision: String,
        plan: Plan,
        outcome: Option<ApplyOutcome>,
    },
}

impl Ops {
    /// Rolls back to `target` and pins the stack there. `tip` is the tracked source's newest
    /// revision (the daemon): a different one ends the pin. `approve` sees the plan first.
    pub async fn rollback(
        &self,
        target: &str,
        tip: Option<&str>,
        allow_destroy: Vec<String>,
        approve: impl FnOnce(&str, &Plan) -> bool,
    ) -> Result<RollbackReport, OpsError> {
        let full = resolve_revision(&self.store, target)?;
        let snapshot = self
            .store
            .snapshot(&full)?
            .ok_or_else(|| OpsError::UnknownRevision(target.to_string()))?;
        let session = self.session(&snapshot).await?;
        // Planned after recovery, from the store as it is now.
        let (revision, snapshot, Planned { plan, .. }) =
            rollback_preview(&self.store, &full, allow_destroy)?;
        if plan.policy.blocked {
            return Ok(RollbackReport::Blocked { revision, plan });
        }
        let changes = plan.summary.has_changes;
        if changes && !approve(&revision, &plan) {
            return Ok(RollbackReport::Declined { revision, plan });
        }
        let (plan, outcome) = if changes {
            let (plan, outcome) = session
                .execute(&plan, &snapshot, &revision, ApplyReason::Rollback, None)
                .await?;
            (plan, Some(outcome))
        } else {
            (plan, None)
        };
        self.store.set_pin(Some(&revision), tip)?;
        Ok(RollbackReport::Done {
            revision,
            plan,
            outcome,
        })
    }
}
