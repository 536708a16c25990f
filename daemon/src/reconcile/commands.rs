//! Operator commands sent by the HTTP API (and so the UI): each one an `ops` call made from the
//! loop, so a request never races an apply.

use super::{LoopError, Reconciler};
use crate::ops::approve::{self, Naming};
use crate::ops::{DriftScope, RollbackReport};
use api::{ApplyReason, SyncState};

/// An emergency apply outside the sync windows: who and why.
#[derive(Debug, Clone)]
pub struct WindowOverride {
    pub actor: String,
    pub reason: String,
}

#[derive(Debug)]
pub enum Command {
    /// Apply the newest valid revision now; with an override, even while a sync window is
    /// closed (who and why are recorded).
    Sync {
        override_window: Option<WindowOverride>,
    },
    Rollback(String),
    Resume,
    /// Approve exactly the plan `plan_hash` for `revision`, then apply it.
    Approve {
        revision: String,
        plan_hash: String,
        actor: String,
    },
    /// Correct drift now: one resource, or every finding with policy `correct` or `report`.
    /// With an override, even while a sync window is closed (who and why are recorded).
    CorrectDrift {
        only: Option<String>,
        override_window: Option<WindowOverride>,
    },
    /// Bring a resource the cost controller scaled down back.
    Wake {
        address: String,
        actor: String,
    },
}

impl Reconciler {
    /// Runs an operator's command; what it applies is recorded as `actor`'s (the API token).
    pub(super) async fn command(
        &mut self,
        command: Command,
        actor: String,
    ) -> Result<String, LoopError> {
        let daemon = std::mem::replace(&mut self.ops.actor, actor);
        let result = self.run_command(command).await;
        self.ops.actor = daemon;
        result
    }

    async fn run_command(&mut self, command: Command) -> Result<String, LoopError> {
        match command {
            Command::CorrectDrift {
                only,
                override_window,
            } => {
                let overridden = match (&override_window, &self.last_good) {
                    (Some(o), Some((_, snapshot))) => {
                        let state = self.options.clock.window(snapshot);
                        if !state.open {
                            crate::ops::window::record_override(
                                self.store(),
                                &o.actor,
                                crate::ops::window::Overridden::CorrectDrift,
                                &state.reason.unwrap_or_default(),
                                &o.reason,
                            )
                            .map_err(super::failed)?;
                        }
                        true
                    }
                    _ => false,
                };
                self.drift_check(DriftScope::Operator { only }, overridden)
                    .await
            }
            Command::Wake { address, actor } => {
                self.wake(&address, &format!("operator {actor}"), "operator")
                    .await
            }
            Command::Sync { override_window } => {
                self.poll().await;
                let Some((revision, snapshot)) = self.last_good.clone() else {
                    return Err(LoopError::NoValidRevision);
                };
                if let Some(pin) = self.store().pinned_revision().map_err(super::failed)? {
                    return Err(LoopError::Pinned(pin));
                }
                if let Some(o) = &override_window {
                    self.window_allows(&revision, &snapshot, Some((&o.actor, &o.reason)))?;
                    self.window_overridden = Some(revision.clone());
                }
                // The operator's request is not an approval: the stack's `sync` mode and
                // `approval` scope decide, as for every other path (`docs/SECURITY.md`).
                let mode = self.declared_mode();
                self.reconcile(&revision, &snapshot, mode, ApplyReason::Apply)
                    .await?
                    .into_result(&revision)?;
                Ok(format!("synced to {revision}"))
            }
            Command::Rollback(target) => self.rollback(&target).await,
            Command::Approve {
                revision,
                plan_hash,
                actor,
            } => {
                // Only the plan waiting now can be approved: not an earlier one, not a guess.
                let pending = self.shared.status().pending_approval;
                let waiting =
                    approve::check(pending.as_ref(), &revision, Some(&plan_hash), Naming::Exact)?;
                approve::record(self.store(), &waiting, &actor)?;
                self.retry_approved().await;
                match self.shared.status().sync_state {
                    SyncState::Synced => Ok(format!("approved and applied {revision}")),
                    state => Ok(format!("approved {revision} ({state})")),
                }
            }
            Command::Resume => {
                crate::ops::resume(self.store())?;
                self.shared.update(|s| s.pinned_revision = None);
                let Some((revision, snapshot)) = self.last_good.clone() else {
                    return Ok("resumed".into());
                };
                let mode = self.declared_mode();
                self.reconcile(&revision, &snapshot, mode, ApplyReason::Apply)
                    .await?
                    .into_result(&revision)?;
                Ok(format!("resumed; synced to {revision}"))
            }
        }
    }

    async fn rollback(&mut self, target: &str) -> Result<String, LoopError> {
        let before = self.shared.status().sync_state;
        let tip = self.last_seen.clone();
        let report = self
            .ops
            .rollback(target, tip.as_deref(), Vec::new(), |_, _| true)
            .await;
        let (revision, applied) = match report {
            Ok(RollbackReport::Done {
                revision,
                plan,
                outcome,
            }) => (revision, outcome.map(|o| (plan, o))),
            Ok(RollbackReport::Blocked { .. }) => {
                self.set_state(before);
                return Err(LoopError::Blocked("rollback plan"));
            }
            // The daemon's approver always agrees; kept total rather than assumed.
            Ok(RollbackReport::Declined { revision, .. }) => {
                self.set_state(before);
                return Err(LoopError::Conflict(format!(
                    "the rollback to {revision} was declined"
                )));
            }
            Err(e) => {
                self.set_state(before);
                return Err(e.into());
            }
        };
        if let Some((plan, outcome)) = applied {
            let snapshot = std::sync::Arc::new(
                self.store()
                    .snapshot(&revision)
                    .map_err(super::failed)?
                    .unwrap_or_else(|| planner::Snapshot::empty("")),
            );
            self.applied(&plan, &outcome, &snapshot, &revision, ApplyReason::Rollback)
                .into_result(&revision)?;
        }
        self.shared.update(|s| {
            s.pinned_revision = Some(revision.clone());
            s.applied_revision = Some(revision.clone());
            s.sync_state = SyncState::Pinned;
        });
        Ok(format!(
            "rolled back to {revision}; pinned until resume or a new revision"
        ))
    }
}
