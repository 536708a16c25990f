//! The apply engine: executes a plan against drivers, journaling every driver call.
//!
//! Idempotency and crash safety (written down in `docs/APPLY.md`):
//! - before each driver call an intent (what, where, the full desired resource) is journaled;
//!   after it, the result and the new resource state are written in one transaction;
//! - driver `apply` and `delete` are idempotent, so repeating a call is harmless;
//! - on start, [`Engine::recover`] observes every resource with an unfinished intent: if the
//!   world already matches the intent it is recorded as done (never applied twice), otherwise
//!   the intent is closed as abandoned and the next plan redoes it from the recorded state;
//! - a failed journal or store write stops the apply with an error: nothing is done that the
//!   store could not record.
//!
//! `schedule.rs` walks the plan (order, parallelism, failure isolation), `recover.rs` closes
//! what a crash left open, `drift.rs` compares the world with the store. The engine never
//! prints: it reports through a [`Progress`] sink.

mod drift;
mod recover;
mod schedule;

pub use drift::DriftScan;

use crate::store::{IntentResult, JournalAction, Store, StoreError, StoredResource};
use api::ApplyStatus;
use drivers::{Applied, DesiredResource, Driver, DriverError};
use planner::Snapshot;
use planner::plan::Action;
use planner::resource_spec::ResourceSpec;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub parallelism: usize,
    pub per_driver: usize,
    pub retries: u32,
    pub backoff_base: Duration,
    pub ready_timeout: Duration,
}

impl EngineConfig {
    /// `parallelism` calls in flight at once, also the per-driver limit.
    pub fn with_parallelism(parallelism: usize) -> EngineConfig {
        EngineConfig {
            parallelism: parallelism.max(1),
            per_driver: parallelism.max(1),
            ..EngineConfig::default()
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            parallelism: 8,
            per_driver: 8,
            retries: 4,
            backoff_base: Duration::from_millis(200),
            ready_timeout: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no driver `{0}` is configured")]
    NoDriver(String),
    #[error("driver `{driver}` cannot observe: {source}")]
    Observe { driver: String, source: DriverError },
}

/// What happened to one resource during an apply, as told to a [`Progress`] sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceEvent {
    Done(Action),
    Failed(String),
    /// Not attempted: what it waits on failed, or platformd is shutting down.
    Skipped(String),
}

/// Where the engine and the operations report progress. The CLI draws a progress bar; the
/// daemon logs tracing events. Implementations must not block.
pub trait Progress: Send + Sync {
    /// An apply of `total` changes starts.
    fn started(&self, _total: usize) {}
    fn resource(&self, address: &str, event: &ResourceEvent, elapsed: Duration);
    /// Something the operator should know that is not a resource's result (waiting for the
    /// lease, recovered intents).
    fn notice(&self, message: &str);
}

/// Progress as tracing events (the daemon; `--log-format json` applies).
pub struct TracingProgress;

impl Progress for TracingProgress {
    fn resource(&self, address: &str, event: &ResourceEvent, elapsed: Duration) {
        let elapsed_ms = elapsed.as_millis() as u64;
        match event {
            ResourceEvent::Done(action) => {
                tracing::info!(
                    resource = address,
                    action = action.as_str(),
                    elapsed_ms,
                    "applied"
                )
            }
            ResourceEvent::Failed(error) => {
                tracing::warn!(resource = address, error = %error, elapsed_ms, "apply failed")
            }
            ResourceEvent::Skipped(why) => {
                tracing::warn!(resource = address, reason = %why, "skipped")
            }
        }
    }

    fn notice(&self, message: &str) {
        tracing::info!(message, "notice");
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub succeeded: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<(String, String)>,
    /// Set when SIGTERM stopped the apply before everything ran.
    pub interrupted: bool,
}

impl ApplyOutcome {
    pub fn status(&self) -> ApplyStatus {
        match (
            self.interrupted,
            self.failed.is_empty(),
            self.succeeded.is_empty(),
        ) {
            (true, _, _) => ApplyStatus::Interrupted,
            (false, true, _) => ApplyStatus::Succeeded,
            (false, false, true) => ApplyStatus::Failed,
            (false, false, false) => ApplyStatus::Partial,
        }
    }

    /// Everything in the plan was applied.
    pub fn complete(&self) -> bool {
        self.status() == ApplyStatus::Succeeded && self.skipped.is_empty()
    }

    pub fn summary(&self) -> String {
        format!(
            "{} applied, {} failed, {} skipped",
            self.succeeded.len(),
            self.failed.len(),
            self.skipped.len()
        )
    }
}

pub struct Engine {
    pub store: Store,
    pub drivers: BTreeMap<String, Arc<dyn Driver>>,
    pub config: EngineConfig,
    /// When set (SIGTERM), no new driver call starts; calls in flight finish and are journaled,
    /// the rest is skipped and the apply ends `interrupted`.
    pub cancel: Arc<AtomicBool>,
    pub progress: Arc<dyn Progress>,
    /// Who the applies of this engine are recorded as started by.
    pub actor: String,
    /// Why, when more than the apply's reason says (the cost controller's figures).
    pub note: Option<String>,
    /// Driver settings laid over a snapshot's own (the operator's, by reference), also when a
    /// driver is built as it was set before a change of its settings.
    pub driver_overrides: BTreeMap<String, BTreeMap<String, String>>,
}

/// Why one change did not complete.
#[derive(Debug)]
enum TaskError {
    /// The driver refused or failed: the resource failed, independent branches go on.
    Driver(String),
    /// The store could not record: the apply stops.
    Store(StoreError),
}

impl From<StoreError> for TaskError {
    fn from(e: StoreError) -> TaskError {
        TaskError::Store(e)
    }
}

/// One change to execute.
#[derive(Clone)]
struct Task {
    address: String,
    action: Action,
    driver: String,
    /// The driver that removes what the prior state made (a delete, the old form of a
    /// replace): the resource's driver as it was set when it was applied.
    remover: Option<Arc<dyn Driver>>,
    /// A replace that moves the resource: made in the new place first, then the old objects
    /// removed (`ResourceChange::moves`).
    moves: bool,
    /// The address it was applied as, when a `moved` block renames it.
    moved_from: Option<String>,
    /// The driver's id of the object an `import` adopts.
    import_id: Option<String>,
}

/// Deterministic-per-call jitter in [0.5, 1.5).
fn jitter(seed: &str, attempt: u32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(attempt);
    for b in seed.bytes().chain(std::process::id().to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    0.5 + (h % 1000) as f64 / 1000.0
}

/// The desired resource handed to a driver: spec plus wired values resolved from the outputs of
/// applied dependencies.
pub fn desired_resource(
    store: &Store,
    stack: &str,
    address: &str,
    snapshot: &planner::snapshot::ResourceSnapshot,
) -> Result<DesiredResource, StoreError> {
    // The snapshot is the planner's (a stored plan's): its spec reads as its kind unless the
    // store was damaged or written by a platformd with other specs.
    let spec = ResourceSpec::parse(snapshot.kind, snapshot.spec.as_str())
        .map_err(|e| StoreError::Corrupt(format!("{address}: {e}")))?;
    let mut wired = BTreeMap::new();
    for wire in spec.wires() {
        if let Some(value) = store
            .outputs(&wire.address)?
            .and_then(|o| o.get(wire.output).cloned())
        {
            wired.insert(wire.env.to_string(), value);
        }
    }
    Ok(DesiredResource {
        stack: stack.to_string(),
        address: address.to_string(),
        kind: snapshot.kind,
        name: snapshot.name.clone(),
        spec,
        wired,
        resumed: false,
    })
}

/// `desired` wired to the outputs its producers have now, when they differ from the values it
/// was applied with.
fn rewired(
    desired: &DesiredResource,
    outputs: &BTreeMap<String, drivers::Outputs>,
) -> Option<DesiredResource> {
    let current: Vec<(String, &String)> = desired
        .spec
        .wires()
        .into_iter()
        .filter_map(|wire| {
            let value = outputs.get(&wire.address)?.get(wire.output)?;
            (desired.wired.get(wire.env) != Some(value)).then(|| (wire.env.to_string(), value))
        })
        .collect();
    if current.is_empty() {
        return None;
    }
    let mut rewired = desired.clone();
    for (env, value) in current {
        rewired.wired.insert(env, value.clone());
    }
    Some(rewired)
}

/// Env values wired from outputs that are not available (their producer is not applied).
fn unresolved_wiring(resource: &DesiredResource) -> Option<String> {
    resource
        .spec
        .wires()
        .into_iter()
        .find(|wire| !resource.wired.contains_key(wire.env))
        .map(|wire| {
            format!(
                "output `{}` of {} is not available: it has not been applied",
                wire.output, wire.address
            )
        })
}

impl Engine {
    fn driver(&self, name: &str) -> Result<Arc<dyn Driver>, EngineError> {
        self.drivers
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::NoDriver(name.to_string()))
    }

    /// The drivers as `prior` set them, where that differs from how they are set now (a
    /// changed namespace, a driver no longer declared): what removes the objects made with
    /// those settings. A driver that cannot be built so is left to the current one.
    fn drivers_as_before(
        &self,
        prior: &Snapshot,
        desired: &Snapshot,
    ) -> BTreeMap<String, Arc<dyn Driver>> {
        prior
            .drivers
            .iter()
            .filter(|(name, settings)| desired.drivers.get(*name) != Some(*settings))
            .filter_map(|(name, settings)| {
                let built = drivers::registry::build_driver(name, settings, &self.driver_overrides);
                built.ok().map(|driver| (name.clone(), driver))
            })
            .collect()
    }

    async fn with_retries<T, F, Fut>(
        &self,
        journal_id: i64,
        what: &str,
        mut call: F,
    ) -> Result<Result<T, DriverError>, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, DriverError>>,
    {
        let mut attempt = 0;
        let fence = {
            let store = self.store.clone();
            drivers::fence::Fence::new(move || store.check_lease().map_err(Into::into))
        };
        loop {
            if attempt > 0 {
                self.store.journal_attempt(journal_id)?;
            }
            // No call, first or retry, starts under a lease this replica no longer holds; the
            // driver checks again right before each write it makes.
            self.store.check_lease()?;
            match drivers::fence::scope(fence.clone(), call()).await {
                Ok(v) => return Ok(Ok(v)),
                Err(e) if e.retryable && attempt < self.config.retries => {
                    let delay = self
                        .config
                        .backoff_base
                        .mul_f64(2f64.powi(attempt as i32) * jitter(what, attempt));
                    tracing::warn!(resource = what, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, error = %e, "retryable error; backing off");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Ok(Err(e)),
            }
        }
    }

    async fn run(
        &self,
        task: &Task,
        desired: &Snapshot,
        prior: &Snapshot,
        apply_id: i64,
        revision: &str,
    ) -> Result<(), TaskError> {
        let stack = desired.stack.clone();
        let Some(action) = JournalAction::of(task.action) else {
            return Ok(());
        };
        let remover = || {
            task.remover.clone().ok_or_else(|| {
                TaskError::Driver(format!("no driver `{}` is configured", task.driver))
            })
        };
        // Where the resource was applied: its old address when a `moved` block renames it.
        let prior_address = task.moved_from.as_deref().unwrap_or(&task.address);
        let before = || {
            prior
                .resources
                .get(prior_address)
                .ok_or_else(|| TaskError::Driver("not in the prior state".into()))
        };
        if matches!(action, JournalAction::Delete | JournalAction::Forget) {
            let driver = remover()?;
            let before = before()?;
            let stored = self.store.resource(&task.address)?;
            let inventory = self.store.inventory(&task.address)?;
            let journal_id = self.store.journal_intent(
                apply_id,
                &task.address,
                action,
                &task.driver,
                stored.as_ref(),
            )?;
            let result = self
                .with_retries(journal_id, &task.address, || async {
                    if action == JournalAction::Forget {
                        driver
                            .release(&stack, before.kind, &before.name, &inventory)
                            .await
                    } else {
                        driver
                            .delete(&stack, before.kind, &before.name, &inventory)
                            .await
                    }
                })
                .await?;
            return self.finish(
                journal_id,
                result.map(|()| None),
                apply_id,
                revision,
                &task.address,
                None,
            );
        }
        let driver = self
            .driver(&task.driver)
            .map_err(|e| TaskError::Driver(e.to_string()))?;
        let snapshot = desired
            .resources
            .get(&task.address)
            .ok_or_else(|| TaskError::Driver("not in the desired state".into()))?;
        let mut resource = desired_resource(&self.store, &stack, &task.address, snapshot)?;
        resource.resumed = self.store.interrupted_create(&task.address)?;
        if let Some(problem) = unresolved_wiring(&resource) {
            return Err(TaskError::Driver(problem));
        }
        let stored = StoredResource {
            snapshot: snapshot.clone(),
            desired: resource.clone(),
        };
        let journal_id = self.store.journal_intent(
            apply_id,
            &task.address,
            action,
            &task.driver,
            Some(&stored),
        )?;
        let done = |result: Result<Option<Applied>, DriverError>| {
            self.finish_moved(
                journal_id,
                result,
                apply_id,
                revision,
                &stored,
                task.moved_from.as_deref(),
            )
        };
        // What the last apply made: a replace deletes it; an update prunes what is no longer
        // rendered.
        let mut previous = self.store.inventory(prior_address)?;
        if action == JournalAction::Replace && task.moves {
            let result = self
                .run_move(task, &driver, &resource, previous, before()?, journal_id)
                .await?;
            return done(result.map(Some));
        }
        if action == JournalAction::Replace {
            // Names are identifiers, so the old one goes first (destroy, then create).
            let old = remover()?;
            let before = before()?;
            let deleted = self
                .with_retries(journal_id, &task.address, || {
                    old.delete(&stack, before.kind, &before.name, &previous)
                })
                .await?;
            if let Err(e) = deleted {
                return self.finish(journal_id, Err(e), apply_id, revision, &task.address, None);
            }
            previous.clear();
        }
        // An import adopts the existing object first; a rename in place renames it first: the
        // apply then works on it as its own.
        let taken = match (&task.import_id, &task.moved_from) {
            (Some(id), _) => Some(
                self.with_retries(journal_id, &task.address, || driver.adopt(&resource, id))
                    .await?,
            ),
            (None, Some(_)) if action == JournalAction::Update => {
                let from = before()?;
                Some(
                    self.with_retries(journal_id, &task.address, || {
                        driver.rename(&stack, from.kind, &from.name, &resource.name, &previous)
                    })
                    .await?,
                )
            }
            _ => None,
        };
        match taken {
            Some(Ok(inventory)) => previous = inventory,
            Some(Err(e)) => return done(Err(e)),
            None => {}
        }
        let result = match self
            .with_retries(journal_id, &task.address, || {
                driver.apply(&resource, &previous)
            })
            .await?
        {
            Ok(applied) => match tokio::time::timeout(
                self.config.ready_timeout,
                driver.wait_ready(&resource, self.config.ready_timeout),
            )
            .await
            {
                Ok(Ok(())) => Ok(Some(applied)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(DriverError::retryable(format!(
                    "not ready after {:?}",
                    self.config.ready_timeout
                ))),
            },
            Err(e) => Err(e),
        };
        done(result)
    }

    /// A replace that moves a resource (a driver setting puts it elsewhere): applied in the new
    /// place first, so it is never absent, then what the prior state made that the new apply
    /// did not make again is removed through the driver as it was set before. Objects the
    /// move did not change (cluster-scoped ones on a namespace change) are kept.
    async fn run_move(
        &self,
        task: &Task,
        driver: &Arc<dyn Driver>,
        resource: &DesiredResource,
        previous: Vec<drivers::ObjectRef>,
        before: &planner::snapshot::ResourceSnapshot,
        journal_id: i64,
    ) -> Result<Result<Applied, DriverError>, TaskError> {
        let applied = match self
            .with_retries(journal_id, &task.address, || driver.apply(resource, &[]))
            .await?
        {
            Ok(applied) => applied,
            Err(e) => return Ok(Err(e)),
        };
        let ready = tokio::time::timeout(
            self.config.ready_timeout,
            driver.wait_ready(resource, self.config.ready_timeout),
        )
        .await
        .unwrap_or_else(|_| {
            Err(DriverError::retryable(format!(
                "not ready after {:?}",
                self.config.ready_timeout
            )))
        });
        if let Err(e) = ready {
            return Ok(Err(e));
        }
        let old_only: Vec<drivers::ObjectRef> = previous
            .iter()
            .filter(|o| !applied.inventory.contains(o))
            .cloned()
            .collect();
        // A driver that keeps no inventory (the local driver) removes by name; one whose old
        // objects were all made again has nothing left to remove.
        if previous.is_empty() || !old_only.is_empty() {
            let old = task.remover.clone().ok_or_else(|| {
                TaskError::Driver(format!("no driver `{}` is configured", task.driver))
            })?;
            let stack = resource.stack.clone();
            let removed = self
                .with_retries(journal_id, &task.address, || {
                    old.delete(&stack, before.kind, &before.name, &old_only)
                })
                .await?;
            if let Err(e) = removed {
                return Ok(Err(DriverError {
                    message: format!(
                        "made in its new place, but its old objects were not removed: {}",
                        e.message
                    ),
                    retryable: e.retryable,
                }));
            }
        }
        Ok(Ok(applied))
    }

    /// [`Engine::finish`] of an apply; a resource moved from another address takes that
    /// address's place in the store, in the same transaction.
    fn finish_moved(
        &self,
        journal_id: i64,
        result: Result<Option<Applied>, DriverError>,
        apply_id: i64,
        revision: &str,
        stored: &StoredResource,
        moved_from: Option<&str>,
    ) -> Result<(), TaskError> {
        let address = format!("{}/{}", stored.snapshot.kind, stored.snapshot.name);
        match (result, moved_from) {
            (Ok(Some(applied)), Some(from)) => {
                self.store.journal_applied_in_place_of(
                    journal_id, apply_id, revision, stored, &applied, from,
                )?;
                Ok(())
            }
            (result, _) => self.finish(
                journal_id,
                result,
                apply_id,
                revision,
                &address,
                Some(stored),
            ),
        }
    }

    fn finish(
        &self,
        journal_id: i64,
        result: Result<Option<Applied>, DriverError>,
        apply_id: i64,
        revision: &str,
        address: &str,
        stored: Option<&StoredResource>,
    ) -> Result<(), TaskError> {
        match (result, stored) {
            (Ok(Some(applied)), Some(stored)) => {
                self.store
                    .journal_applied(journal_id, apply_id, revision, stored, &applied)?;
                Ok(())
            }
            (Ok(_), _) => {
                self.store.journal_deleted(journal_id, address)?;
                Ok(())
            }
            (Err(e), _) => {
                self.store
                    .journal_failed(journal_id, IntentResult::Failed, address, &e.message)?;
                Err(TaskError::Driver(e.message))
            }
        }
    }
}
