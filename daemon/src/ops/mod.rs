//! The use cases, each written once and called by the CLI, the reconcile loop, the HTTP API
//! and the UI's state-directory mode alike: plan against the store, apply, rollback and its
//! preview, resume, drift scan and correction, history.
//!
//! Operations take a [`Store`] and a [`Progress`] sink, return typed outcomes, and never
//! print: what to show, and how, is decided by the caller (the CLI renders text, the API JSON).

mod apply;
pub mod approve;
mod drift;
mod lifecycle;
mod rollback;
pub mod window;

pub use crate::engine::DriftScan;
pub use crate::engine::{ApplyOutcome, EngineConfig, Progress, ResourceEvent, TracingProgress};
pub use apply::{ApplyReport, ApplyRequest, DesiredSource};
pub use drift::{CorrectionReport, DriftScope, resource_statuses};
pub use lifecycle::{IdleObservation, LifecycleReport, as_planned, end_stale, overlay};
pub use rollback::{RollbackReport, resolve_revision, resume, rollback_preview};

use crate::engine::{Engine, EngineError};
use crate::store::{LeaseGuard, Store, StoreError};
use planner::Snapshot;
use planner::plan::{MadeAgainst, Plan, PlanOptions};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Drivers(#[from] drivers::registry::RegistryError),
    #[error(
        "the stack is pinned to revision {0} by a rollback; run `platformd resume` to follow the stack again"
    )]
    Pinned(String),
    #[error("no applied revision `{0}` in the history; see `platformd history`")]
    UnknownRevision(String),
    #[error("revision prefix `{prefix}` is ambiguous: it matches {}", candidates.join(", "))]
    AmbiguousRevision {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error("revision {0} was never applied in full, so it is not a rollback target")]
    NotRollbackTarget(String),
    #[error(
        "this plan was made between git revisions (--base), not against the store; make one with `platformd plan STACK --out FILE`"
    )]
    PlanNotFromStore,
    #[error(
        "the saved plan is stale: it was made against state generation {made_generation} (revision {made_revision}), the store is now at generation {generation} (revision {revision}); make a new plan"
    )]
    StalePlan {
        made_generation: String,
        made_revision: String,
        generation: u64,
        revision: String,
    },
    #[error("no valid revision yet")]
    NoRevision,
    #[error("{address} is neither declared nor applied; {help}")]
    UnknownAddress { address: String, help: String },
    #[error("the {0} is blocked by policy")]
    Blocked(&'static str),
    #[error("drift scan failed: {0}")]
    DriftScan(EngineError),
    #[error("{address} is not scaled down (scaled down: {scaled_down})")]
    NotScaledDown {
        address: String,
        scaled_down: String,
    },
}

/// A plan with the prior state it was made from.
pub struct Planned {
    pub prior: Snapshot,
    pub plan: Plan,
}

/// What every operation works with: the store, where progress goes, engine limits, and the
/// flag that stops new driver calls (SIGTERM).
#[derive(Clone)]
pub struct Ops {
    pub store: Store,
    pub progress: Arc<dyn Progress>,
    pub config: EngineConfig,
    pub cancel: Arc<AtomicBool>,
    /// Who takes the applier lease (`platformd apply`, `platformd daemon`).
    pub holder: String,
    /// How long to wait for another applier.
    pub lock_timeout: Duration,
    /// Who applies are recorded as started by: the OS user of a CLI command, the daemon, an
    /// API token, an approver.
    pub actor: String,
    /// Why the next applies are made, when more than their reason says.
    pub note: Option<String>,
    /// The epoch of the stack's lease when this process owns it for as long as it runs (a
    /// replica owning the stack): sessions then neither take nor release the lease.
    pub owned_epoch: Option<i64>,
    /// Driver settings laid over the stack's own (credentials by reference from the daemon's
    /// configuration); never part of a snapshot or a plan.
    pub driver_settings:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

/// An engine holding the applier lease, with what a crash left open already recovered.
pub struct Session {
    pub engine: Arc<Engine>,
    pub recovered: usize,
    /// `None` when the lease is owned beyond the session ([`Ops::owned_epoch`]).
    _lease: Option<LeaseGuard>,
}

impl Ops {
    pub fn new(store: Store, progress: Arc<dyn Progress>, holder: &str) -> Ops {
        Ops {
            store,
            progress,
            config: EngineConfig::default(),
            cancel: Arc::new(AtomicBool::new(false)),
            holder: holder.to_string(),
            lock_timeout: Duration::ZERO,
            actor: holder.to_string(),
            note: None,
            owned_epoch: None,
            driver_settings: Default::default(),
        }
    }

    /// An engine with the drivers `snapshot` declares (no lease: for observing).
    pub fn engine(&self, snapshot: &Snapshot) -> Result<Arc<Engine>, OpsError> {
        self.engine_on(self.store.clone(), snapshot)
    }

    fn engine_on(&self, store: Store, snapshot: &Snapshot) -> Result<Arc<Engine>, OpsError> {
        Ok(Arc::new(Engine {
            store,
            drivers: drivers::registry::build_with(snapshot, &self.driver_settings)?,
            config: self.config.clone(),
            cancel: self.cancel.clone(),
            progress: self.progress.clone(),
            actor: self.actor.clone(),
            note: self.note.clone(),
            driver_overrides: self.driver_settings.clone(),
        }))
    }

    /// Takes the applier lease, builds the drivers of `snapshot` and closes the intents an
    /// interrupted apply left open.
    pub async fn session(&self, snapshot: &Snapshot) -> Result<Session, OpsError> {
        let progress = self.progress.clone();
        let timeout = self.lock_timeout;
        let (lease, epoch) = match self.owned_epoch {
            Some(epoch) => (None, epoch),
            None => {
                let lease = LeaseGuard::acquire(&self.store, &self.holder, timeout, &|e| {
                    progress.notice(&format!("{e}; waiting up to {}s", timeout.as_secs()))
                })?;
                let epoch = lease.epoch();
                (Some(lease), epoch)
            }
        };
        // Every intent of this session is fenced by the lease it holds.
        let engine = self.engine_on(self.store.fenced(epoch), snapshot)?;
        let recovered = engine.recover().await?;
        if recovered > 0 {
            self.progress.notice(&format!(
                "recovered {recovered} unfinished driver call(s) from an interrupted apply"
            ));
        }
        Ok(Session {
            engine,
            recovered,
            _lease: lease,
        })
    }
}

/// What an operator chose for a plan besides the stack (`--allow-destroy`, `--replace`,
/// `--target`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choices {
    pub allow_destroy: Vec<String>,
    pub replace: Vec<String>,
    pub targets: Vec<String>,
}

impl Choices {
    /// What a plan was made with that a plan made again must keep: its targets.
    pub fn of_plan(plan: &Plan) -> Choices {
        Choices {
            targets: plan.targets.clone(),
            ..Choices::default()
        }
    }

    /// Only protected resources allowed to go.
    pub fn allowing(allow_destroy: Vec<String>) -> Choices {
        Choices {
            allow_destroy,
            ..Choices::default()
        }
    }

    fn options(self, made_against: MadeAgainst) -> PlanOptions {
        PlanOptions {
            allow_destroy: self.allow_destroy,
            made_against,
            replace: self.replace,
            targets: self.targets,
        }
    }

    /// Refuses a `--replace` or `--target` address that is neither declared nor applied.
    pub fn check(&self, prior: &Snapshot, desired: &Snapshot) -> Result<(), OpsError> {
        for address in self.replace.iter().chain(&self.targets) {
            if !desired.resources.contains_key(address) && !prior.resources.contains_key(address) {
                let known: Vec<&str> = desired
                    .resources
                    .keys()
                    .chain(prior.resources.keys())
                    .map(String::as_str)
                    .collect();
                return Err(OpsError::UnknownAddress {
                    address: address.clone(),
                    help: planner::suggest::help_for(address, &known, "resources"),
                });
            }
        }
        Ok(())
    }
}

/// Plans `desired` against the store's last applied state.
pub fn plan_against_store(
    store: &Store,
    desired: &Snapshot,
    head_revision: &str,
    choices: Choices,
) -> Result<Planned, OpsError> {
    let prior = store.prior_snapshot()?;
    let plan = plan_from_prior(store, &prior, desired, head_revision, choices)?;
    Ok(Planned { prior, plan })
}

/// Plans `desired` against `prior`, which the caller read from the store (the daemon keeps it
/// between revisions while the store generation stays the same).
pub fn plan_from_prior(
    store: &Store,
    prior: &Snapshot,
    desired: &Snapshot,
    head_revision: &str,
    choices: Choices,
) -> Result<Plan, OpsError> {
    choices.check(prior, desired)?;
    let overlaid = overlay(store, desired, &[])?;
    plan_between(
        store,
        prior,
        overlaid.as_ref().unwrap_or(desired),
        head_revision,
        choices,
    )
}

/// [`plan_from_prior`] with every scale-down but `waking`'s laid over `desired`.
fn plan_with_overlay(
    store: &Store,
    prior: &Snapshot,
    desired: &Snapshot,
    head_revision: &str,
    waking: &[String],
) -> Result<Plan, OpsError> {
    let overlaid = overlay(store, desired, waking)?;
    plan_between(
        store,
        prior,
        overlaid.as_ref().unwrap_or(desired),
        head_revision,
        Choices::default(),
    )
}

fn plan_between(
    store: &Store,
    prior: &Snapshot,
    desired: &Snapshot,
    head_revision: &str,
    choices: Choices,
) -> Result<Plan, OpsError> {
    let made_against = MadeAgainst {
        base_revision: store.applied_revision()?,
        head_revision: Some(head_revision.to_string()),
        state_generation: Some(store.generation()?),
    };
    Ok(planner::plan::plan(
        prior,
        desired,
        &choices.options(made_against),
    ))
}

/// Records a plan in the store's history; returns its id. Plans are stored with their changes
/// only: a 10,000-resource no-op plan is megabytes.
pub fn record_plan(store: &Store, revision: &str, plan: &Plan) -> Result<i64, OpsError> {
    Ok(store.record_plan(Some(revision), &planner::render::json(&plan.changes_only()))?)
}

/// Plans `desired` when no store exists yet: from nothing, at generation 0.
pub fn plan_from_nothing(
    desired: &Snapshot,
    head_revision: &str,
    choices: Choices,
) -> Result<Plan, OpsError> {
    let made_against = MadeAgainst {
        base_revision: None,
        head_revision: Some(head_revision.to_string()),
        state_generation: Some(0),
    };
    let prior = Snapshot::empty(&desired.stack);
    choices.check(&prior, desired)?;
    Ok(planner::plan::plan(
        &prior,
        desired,
        &choices.options(made_against),
    ))
}

impl Session {
    /// Applies `plan` (made against the store) and records it under `revision`. When recovery
    /// changed the store since the plan was made, the plan is made again from the store,
    /// keeping its drift corrections.
    pub async fn execute(
        &self,
        plan: &Plan,
        desired: &Snapshot,
        revision: &str,
        reason: api::ApplyReason,
        recorded_plan: Option<i64>,
    ) -> Result<(Plan, ApplyOutcome), OpsError> {
        let store = &self.engine.store;
        let moved = plan.made_against.state_generation != Some(store.generation()?);
        let Planned { prior, plan } = if self.recovered > 0 && moved {
            let mut planned = plan_against_store(store, desired, revision, Choices::of_plan(plan))?;
            planned.plan.merge_drift(plan.drift.clone());
            planned
        } else {
            Planned {
                prior: store.prior_snapshot()?,
                plan: plan.clone(),
            }
        };
        let plan_id = match recorded_plan {
            Some(id) if !(self.recovered > 0 && moved) => id,
            _ => record_plan(store, revision, &plan)?,
        };
        // Resources the cost controller holds scaled down are applied in that form.
        let overlaid = as_planned(desired, &plan);
        let desired = overlaid.as_ref().unwrap_or(desired);
        let outcome = self
            .engine
            .apply(&plan, &prior, desired, revision, reason, Some(plan_id))
            .await?;
        if outcome.complete() {
            end_stale(store, &plan, crate::store::now())?;
        }
        Ok((plan, outcome))
    }
}
