//! Applying a stack (or a saved plan) from the CLI: plan against the store, confirm, apply.

use super::{ApplyOutcome, Ops, OpsError, Planned, plan_against_store};
use api::{ApplyReason, Revision};
use planner::Snapshot;
use planner::plan::Plan;
use std::time::{Duration, Instant};

/// Where the desired state comes from.
pub enum DesiredSource {
    /// A stack directory, read and validated by the caller.
    Directory,
    /// A plan saved with `plan --out`: applied exactly as stored, refused when stale.
    SavedPlan(Box<Plan>),
}

pub struct ApplyRequest {
    pub desired: Snapshot,
    pub revision: String,
    pub source: DesiredSource,
    /// Observe live state first and correct drift (policy `correct`).
    pub refresh: bool,
    /// `--allow-destroy`, `--replace`, `--target`.
    pub choices: super::Choices,
}

/// How an apply ended. Every variant carries the plan, for the caller to show.
pub enum ApplyReport {
    Blocked(Plan),
    NoChanges(Plan),
    /// The approver said no; nothing was changed.
    Declined(Plan),
    Applied {
        plan: Plan,
        outcome: ApplyOutcome,
        elapsed: Duration,
    },
}

impl ApplyRequest {
    /// The desired state and revision of a saved plan.
    pub fn from_saved_plan(plan: Plan) -> ApplyRequest {
        ApplyRequest {
            desired: plan.desired_snapshot(),
            revision: plan.made_against.head_revision.clone().unwrap_or_default(),
            choices: super::Choices::of_plan(&plan),
            source: DesiredSource::SavedPlan(Box::new(plan)),
            refresh: false,
        }
    }
}

/// Refuses a saved plan made against another state than the store's.
fn check_fresh(saved: &Plan, generation: u64, applied: Option<&str>) -> Result<(), OpsError> {
    let made = &saved.made_against;
    if made.state_generation.is_none() {
        return Err(OpsError::PlanNotFromStore);
    }
    if made.state_generation != Some(generation) || made.base_revision.as_deref() != applied {
        return Err(OpsError::StalePlan {
            made_generation: made
                .state_generation
                .map_or("none".into(), |g| g.to_string()),
            made_revision: made.base_revision.clone().unwrap_or_else(|| "none".into()),
            generation,
            revision: applied.unwrap_or("none").to_string(),
        });
    }
    Ok(())
}

impl Ops {
    /// Plans `request` against the store and, when it has changes, is not blocked and
    /// `approve` agrees, applies it.
    pub async fn apply(
        &self,
        request: ApplyRequest,
        approve: impl FnOnce(&Plan) -> bool,
    ) -> Result<ApplyReport, OpsError> {
        let source = match request.source {
            DesiredSource::Directory => "directory",
            DesiredSource::SavedPlan(_) => "saved plan",
        };
        self.store.record_revision(&Revision {
            revision: request.revision.clone(),
            source: source.into(),
            valid: true,
            ..Revision::default()
        })?;
        let session = self.session(&request.desired).await?;
        if let Some(pin) = self.store.pinned_revision()? {
            return Err(OpsError::Pinned(pin));
        }
        let Planned { mut plan, .. } = plan_against_store(
            &self.store,
            &request.desired,
            &request.revision,
            request.choices,
        )?;
        match request.source {
            DesiredSource::SavedPlan(saved) => {
                check_fresh(
                    &saved,
                    self.store.generation()?,
                    self.store.applied_revision()?.as_deref(),
                )?;
                plan = *saved;
            }
            DesiredSource::Directory if request.refresh => {
                let stack = request.desired.stack.clone();
                let findings = session
                    .engine
                    .scan_drift(&stack, Some(&request.desired))
                    .await?;
                plan.merge_drift(findings);
            }
            DesiredSource::Directory => {}
        }
        if plan.policy.blocked {
            return Ok(ApplyReport::Blocked(plan));
        }
        if !plan.summary.has_changes {
            return Ok(ApplyReport::NoChanges(plan));
        }
        if !approve(&plan) {
            return Ok(ApplyReport::Declined(plan));
        }
        let started = Instant::now();
        let reason = if plan.targets.is_empty() {
            ApplyReason::Apply
        } else {
            ApplyReason::Targeted
        };
        let (plan, outcome) = session
            .execute(&plan, &request.desired, &request.revision, reason, None)
            .await?;
        Ok(ApplyReport::Applied {
            plan,
            outcome,
            elapsed: started.elapsed(),
        })
    }
}
