//! Idle shutdown and wake, the cost controller's two actions, written once for the daemon's
//! controller, the CLI (`platformd wake`), the API and the UI.
//!
//! A scale-down is recorded in the store (`scaled_down`) and then applied as an overlay on the
//! store's state: every plan against the store lays the same overlay over the declared state
//! while the resource's declaration is unchanged, so the scale-down is neither a pending change
//! nor drift. A commit that changes the resource, a wake, or returning demand ends it.

use super::{ApplyOutcome, Ops, OpsError};
use crate::store::{ScaledDown, Store};
use api::ApplyReason;
use planner::Snapshot;
use planner::plan::Plan;
use std::time::Duration;

/// What the controller saw that makes a resource idle.
pub struct IdleObservation {
    pub address: String,
    pub idle_for: Duration,
    /// `requests 0/s ≤ 0`.
    pub figure: String,
    /// Unix seconds, by the controller's clock.
    pub now: i64,
}

/// How a scale-down or wake went.
pub enum LifecycleReport {
    /// Nothing to do: already scaled down, or at its floor, or not scaled down.
    Unchanged(String),
    Applied {
        plan: Box<Plan>,
        outcome: ApplyOutcome,
    },
}

/// `desired` with the store's scale-downs laid over it, except for `waking`. `None` when no
/// overlay applies (the common case: nothing copied).
pub fn overlay(
    store: &Store,
    desired: &Snapshot,
    waking: &[String],
) -> Result<Option<Snapshot>, OpsError> {
    let rows = store.scaled_down()?;
    let mut out: Option<Snapshot> = None;
    for row in rows.iter().filter(|r| !waking.contains(&r.address)) {
        let Some(declared) = desired.resources.get(&row.address) else {
            continue;
        };
        // A changed declaration wakes the resource: the overlay no longer applies.
        if declared.spec.as_str() != row.spec_before {
            continue;
        }
        if let Some(down) = planner::lifecycle::scaled_down(declared, &row.note) {
            out.get_or_insert_with(|| desired.clone())
                .resources
                .insert(row.address.clone(), down);
        }
    }
    Ok(out)
}

/// The applied revision's stored snapshot: its drivers (to make the session with) and the
/// settings the resources table does not hold (drivers, windows, metrics).
fn applied_settings(store: &Store) -> Result<Snapshot, OpsError> {
    let revision = store.applied_revision()?.ok_or(OpsError::NoRevision)?;
    Ok(store
        .snapshot(&revision)?
        .unwrap_or_else(|| Snapshot::empty(&store.stack_name().ok().flatten().unwrap_or_default())))
}

/// The store's state with `settings`' drivers, windows and metrics. Read under the applier
/// lease, so what another applier did before this one got the lease is the starting point.
fn applied_state(store: &Store, settings: &Snapshot) -> Result<Snapshot, OpsError> {
    let mut state = store.prior_snapshot()?;
    state.environment = settings.environment.clone();
    state.teams = settings.teams.clone();
    state.drivers = settings.drivers.clone();
    state.windows = settings.windows.clone();
    state.approval = settings.approval.clone();
    state.metrics = settings.metrics.clone();
    Ok(state)
}

/// The desired state `plan` applies: `desired` with the scale-downs the plan carries. `None`
/// when it carries none.
pub fn as_planned(desired: &Snapshot, plan: &Plan) -> Option<Snapshot> {
    let mut out: Option<Snapshot> = None;
    for r in plan.resources.iter().filter(|r| r.scaled_down.is_some()) {
        let Some(after) = &r.after else { continue };
        let target = out.get_or_insert_with(|| desired.clone());
        if let Some(resource) = target.resources.get_mut(&r.address) {
            resource.spec = after.clone();
            resource.monthly_cost_usd = r.cost.after;
            resource.scaled_down = r.scaled_down.clone();
        }
    }
    out
}

/// Ends the scale-downs a complete apply of `plan` made obsolete: the resource was removed or
/// its declaration changed (a commit touched it).
pub fn end_stale(store: &Store, plan: &Plan, now: i64) -> Result<(), OpsError> {
    let rows = store.scaled_down()?;
    if rows.is_empty() {
        return Ok(());
    }
    for row in rows {
        let change = plan.resources.iter().find(|r| r.address == row.address);
        let stale = match change.and_then(|c| c.after.as_ref().map(|a| (c, a))) {
            None => Some("removed from the stack"),
            Some((c, after)) if c.scaled_down.is_none() && after.as_str() != row.spec_before => {
                Some("a new commit changed it")
            }
            Some(_) => None,
        };
        if let Some(why) = stale {
            store.end_scaled_down(&row.address, now, why)?;
        }
    }
    Ok(())
}

impl Ops {
    /// Scales an idle resource down: recorded, then applied with reason `idle-shutdown` and the
    /// figures as the apply's note.
    pub async fn scale_down(&self, idle: &IdleObservation) -> Result<LifecycleReport, OpsError> {
        let note = planner::lifecycle::scale_down_note(idle.idle_for);
        let mut ops = self.clone();
        ops.actor = "cost policy".into();
        ops.note = Some(format!("{}: {note} ({})", idle.address, idle.figure));
        let settings = applied_settings(&self.store)?;
        let session = ops.session(&settings).await?;
        let prior = applied_state(&self.store, &settings)?;
        let Some(declared) = prior.resources.get(&idle.address) else {
            return Ok(LifecycleReport::Unchanged(format!(
                "{} is not applied",
                idle.address
            )));
        };
        if self
            .store
            .scaled_down()?
            .iter()
            .any(|r| r.address == idle.address)
        {
            return Ok(LifecycleReport::Unchanged(format!(
                "{} is already scaled down",
                idle.address
            )));
        }
        let Some(down) = planner::lifecycle::scaled_down(declared, &note) else {
            return Ok(LifecycleReport::Unchanged(format!(
                "{} is already at its floor",
                idle.address
            )));
        };
        self.store.record_scaled_down(&ScaledDown {
            address: idle.address.clone(),
            kind: declared.kind.as_str().to_string(),
            team: declared.team.clone(),
            since: idle.now,
            note: note.clone(),
            figure: idle.figure.clone(),
            spec_before: declared.spec.as_str().to_string(),
            monthly_usd_before: declared.monthly_cost_usd,
            monthly_usd_saved: declared.monthly_cost_usd - down.monthly_cost_usd,
        })?;
        let report = self
            .apply_store_state(&session, &prior, &prior, &[], ApplyReason::IdleShutdown)
            .await;
        // Not applied: the record goes (the idle count stays), so the next look tries again.
        let applied =
            matches!(&report, Ok(LifecycleReport::Applied { outcome, .. }) if outcome.complete());
        if !applied {
            let since = idle.now - idle.idle_for.as_secs() as i64;
            self.store.forget_scaled_down(&idle.address, since)?;
        }
        report
    }

    /// Brings a scaled-down resource back, with the GPU pool it runs on when that is scaled down
    /// too; `why` is recorded (`operator alice`, `demand returned: 0.4 requests/s`).
    pub async fn wake(
        &self,
        address: &str,
        why: &str,
        now: i64,
    ) -> Result<LifecycleReport, OpsError> {
        let rows = self.store.scaled_down()?;
        let Some(row) = rows.iter().find(|r| r.address == address) else {
            let held: Vec<&str> = rows.iter().map(|r| r.address.as_str()).collect();
            return Err(OpsError::NotScaledDown {
                address: address.to_string(),
                scaled_down: if held.is_empty() {
                    "none".into()
                } else {
                    held.join(", ")
                },
            });
        };
        // Which pools wake too follows the applied revision's edges, known before the lease.
        let settings = applied_settings(&self.store)?;
        let mut waking = vec![row.address.clone()];
        if let Some(r) = settings.resources.get(address) {
            for dep in &r.depends_on {
                if dep.starts_with("gpu-pool/") && rows.iter().any(|x| &x.address == dep) {
                    waking.push(dep.clone());
                }
            }
        }
        let mut ops = self.clone();
        ops.note = Some(format!("{}: woken ({why})", waking.join(", ")));
        let session = ops.session(&settings).await?;
        let prior = applied_state(&self.store, &settings)?;
        let mut desired = prior.clone();
        // The declared specs come back from the record, exactly as they were.
        for w in &waking {
            let Some(rec) = rows.iter().find(|r| &r.address == w) else {
                continue;
            };
            if let Some(r) = desired.resources.get_mut(w) {
                r.spec = planner::snapshot::SpecJson::from_value(
                    &serde_json::from_str(&rec.spec_before).unwrap_or_default(),
                );
                r.monthly_cost_usd = rec.monthly_usd_before;
                r.scaled_down = None;
            }
        }
        let report = self
            .apply_store_state(&session, &prior, &desired, &waking, ApplyReason::Wake)
            .await?;
        if let LifecycleReport::Applied { outcome, .. } = &report
            && outcome.complete()
        {
            for w in &waking {
                self.store.end_scaled_down(w, now, why)?;
            }
        }
        Ok(report)
    }

    /// Applies `desired` (the store's state `prior` with a change) at the applied revision, in
    /// `session`, which holds the lease `prior` was read under.
    async fn apply_store_state(
        &self,
        session: &super::Session,
        prior: &Snapshot,
        desired: &Snapshot,
        waking: &[String],
        reason: ApplyReason,
    ) -> Result<LifecycleReport, OpsError> {
        let revision = self.store.applied_revision()?.ok_or(OpsError::NoRevision)?;
        let plan = super::plan_with_overlay(&self.store, prior, desired, &revision, waking)?;
        if !plan.summary.has_changes {
            return Ok(LifecycleReport::Unchanged("nothing to change".into()));
        }
        let (plan, outcome) = session
            .execute(&plan, desired, &revision, reason, None)
            .await?;
        Ok(LifecycleReport::Applied {
            plan: Box::new(plan),
            outcome,
        })
    }
}
