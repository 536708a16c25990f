//! The apply engine: executes a plan against drivers, journaling every driver call.
//!
//! Idempotency and crash safety (written down in `docs/APPLY.md`):
//! - before each driver call an intent (what, where, the full desired resource) is journaled;
//!   after it, the result and the new resource state are written in one transaction;
//! - driver `apply` and `delete` are idempotent, so repeating a call is harmless;
//! - on start, [`Engine::recover`] observes every resource with an unfinished intent: if the
//!   world already matches the intent it is recorded as done (never applied twice), otherwise
//!   the intent is closed as abandoned and the next plan redoes it from the recorded state.
//!
//! Scheduling: creates/updates/replaces run after the changes of what they need; a delete runs
//! after the changes of everything that needed it. A global and a per-driver limit bound
//! parallelism. When a change fails, everything that (transitively) waits on it is skipped and
//! independent branches go on. Retryable driver errors back off exponentially with jitter.

use crate::store::{Store, StoreError, StoredResource};
use drivers::drift::managed_differences;
use drivers::{DesiredResource, Driver, DriverError, ObservedResource, Outputs};
use planner::Snapshot;
use planner::model::{DriftPolicy, Kind};
use planner::plan::{Action, DriftFinding, FieldChange, Plan};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub parallelism: usize,
    pub per_driver: usize,
    pub retries: u32,
    pub backoff_base: Duration,
    pub ready_timeout: Duration,
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

#[derive(Debug, Default)]
pub struct ApplyOutcome {
    pub succeeded: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<(String, String)>,
}

impl ApplyOutcome {
    pub fn status(&self) -> &'static str {
        match (self.failed.is_empty(), self.succeeded.is_empty()) {
            (true, _) => "succeeded",
            (false, true) => "failed",
            (false, false) => "partial",
        }
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
    pub store: Arc<Mutex<Store>>,
    pub drivers: BTreeMap<String, Arc<dyn Driver>>,
    pub config: EngineConfig,
    /// When set (SIGTERM), no new driver call starts; calls in flight finish and are journaled,
    /// the rest is skipped and the apply ends `interrupted`.
    pub cancel: Arc<std::sync::atomic::AtomicBool>,
}

/// One change to execute.
#[derive(Clone)]
struct Task {
    address: String,
    action: Action,
    driver: String,
    prior_driver: Option<String>,
}

struct Progress {
    tty: bool,
    total: usize,
    done: AtomicUsize,
}

impl Progress {
    fn report(&self, address: &str, what: &str, elapsed: Duration) {
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        let mut err = std::io::stderr().lock();
        if self.tty {
            let width = 30;
            let filled = done * width / self.total.max(1);
            let _ = write!(
                err,
                "\r\x1b[2K[{}{}] {done}/{} {address} {what}",
                "#".repeat(filled),
                " ".repeat(width - filled),
                self.total
            );
            if done == self.total {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{address}: {what} ({} ms)", elapsed.as_millis());
        }
    }
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deterministic-per-call jitter in [0.5, 1.5).
fn jitter(seed: &str, attempt: u32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(attempt);
    for b in seed.bytes().chain(std::process::id().to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    0.5 + (h % 1000) as f64 / 1000.0
}

async fn with_retries<T, F, Fut>(
    config: &EngineConfig,
    store: &Mutex<Store>,
    journal_id: i64,
    what: &str,
    mut call: F,
) -> Result<T, DriverError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DriverError>>,
{
    let mut attempt = 0;
    loop {
        if attempt > 0 {
            let _ = lock(store).journal_attempt(journal_id);
        }
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.retryable && attempt < config.retries => {
                let delay = config
                    .backoff_base
                    .mul_f64(2f64.powi(attempt as i32) * jitter(what, attempt));
                tracing::warn!(resource = what, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, error = %e, "retryable error; backing off");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The desired resource handed to a driver: spec plus wired values resolved from the outputs of
/// applied dependencies.
pub fn desired_resource(
    store: &Store,
    stack: &str,
    address: &str,
    snapshot: &planner::snapshot::ResourceSnapshot,
) -> Result<DesiredResource, String> {
    let spec = snapshot.spec.value();
    let mut wired = BTreeMap::new();
    if let Some(serde_json::Value::Object(env)) = spec.get("env") {
        for (name, v) in env {
            let Some(from) = v.get("from").and_then(|f| f.as_str()) else {
                continue;
            };
            let (target, output) = from.rsplit_once('.').unwrap_or((from, ""));
            let outputs = store.outputs(target).map_err(|e| e.to_string())?;
            let value = outputs
                .and_then(|o| o.get(output).cloned())
                .ok_or_else(|| {
                    format!(
                        "output `{output}` of {target} is not available: it has not been applied"
                    )
                })?;
            wired.insert(name.clone(), value);
        }
    }
    Ok(DesiredResource {
        stack: stack.to_string(),
        address: address.to_string(),
        kind: snapshot.kind,
        name: snapshot.name.clone(),
        spec,
        wired,
    })
}

impl Engine {
    fn driver(&self, name: &str) -> Result<Arc<dyn Driver>, EngineError> {
        self.drivers
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::NoDriver(name.to_string()))
    }

    /// Closes every unfinished intent left by a crash, by observing the world. Returns how many
    /// intents were found.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let intents = lock(&self.store).open_intents()?;
        if !intents.is_empty() {
            tracing::warn!(
                count = intents.len(),
                "recovering unfinished driver calls from an interrupted apply"
            );
        }
        // One observe per driver, for the kinds involved.
        let mut by_driver: BTreeMap<String, (String, BTreeSet<Kind>)> = BTreeMap::new();
        for i in &intents {
            if let Some(d) = &i.desired {
                let e = by_driver
                    .entry(i.driver.clone())
                    .or_insert_with(|| (d.desired.stack.clone(), BTreeSet::new()));
                e.1.insert(d.desired.kind);
            }
        }
        let mut observed: HashMap<(String, String), ObservedResource> = HashMap::new();
        for (driver_name, (stack, kinds)) in &by_driver {
            let driver = self.driver(driver_name)?;
            let kinds: Vec<Kind> = kinds.iter().copied().collect();
            let found =
                driver
                    .observe(stack, &kinds)
                    .await
                    .map_err(|source| EngineError::Observe {
                        driver: driver_name.clone(),
                        source,
                    })?;
            for o in found {
                observed.insert((driver_name.clone(), o.address.clone()), o);
            }
        }
        for intent in &intents {
            let store = lock(&self.store);
            let live = observed.get(&(intent.driver.clone(), intent.address.clone()));
            match (intent.action.as_str(), &intent.desired) {
                ("delete", _) if live.is_none() => {
                    store.journal_deleted(intent.id, &intent.address)?
                }
                ("create" | "update" | "replace", Some(stored)) => {
                    let matches = match (live, self.drivers.get(&intent.driver)) {
                        (Some(o), Some(d)) => d
                            .expected(&stored.desired)
                            .map(|exp| managed_differences(&exp, &o.live, &[]).is_empty())
                            .unwrap_or(false),
                        _ => false,
                    };
                    if matches {
                        let outputs: Outputs = live.map(|o| o.outputs.clone()).unwrap_or_default();
                        let revision = store
                            .history()?
                            .into_iter()
                            .find(|a| a.id == intent.apply_id)
                            .map(|a| a.revision)
                            .unwrap_or_default();
                        store.journal_applied(
                            intent.id,
                            intent.apply_id,
                            &revision,
                            stored,
                            &outputs,
                        )?;
                        tracing::info!(resource = %intent.address, "recovered: the interrupted call had completed");
                    } else {
                        store.journal_failed(
                            intent.id,
                            "abandoned",
                            "interrupted before the driver call completed; re-planned",
                        )?;
                    }
                }
                _ => store.journal_failed(
                    intent.id,
                    "abandoned",
                    "interrupted before the driver call completed; re-planned",
                )?,
            }
        }
        lock(&self.store).mark_interrupted()?;
        Ok(intents.len())
    }

    /// Executes the changes of `plan`, from `prior` (the store's state when planned) towards
    /// `desired`, recording everything under `revision`.
    pub async fn apply(
        self: &Arc<Self>,
        plan: &Plan,
        prior: &Snapshot,
        desired: &Snapshot,
        revision: &str,
        reason: &str,
        plan_id: Option<i64>,
    ) -> Result<ApplyOutcome, EngineError> {
        let tasks: Vec<Task> = plan
            .changes()
            .filter(|c| !c.blocked)
            .map(|c| Task {
                address: c.address.clone(),
                action: c.action,
                driver: c.driver.clone(),
                prior_driver: prior.resources.get(&c.address).map(|r| r.driver.clone()),
            })
            .collect();
        for t in &tasks {
            self.driver(&t.driver)?;
        }
        let apply_id = {
            let store = lock(&self.store);
            store.store_snapshot(revision, desired)?;
            store.begin_apply(revision, reason, plan_id)?
        };
        let index: HashMap<&str, usize> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.address.as_str(), i))
            .collect();
        // waits_on[i]: tasks that must finish before task i.
        let mut waits_on: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); tasks.len()];
        for (i, t) in tasks.iter().enumerate() {
            if t.action == Action::Delete {
                for (j, other) in tasks.iter().enumerate() {
                    let needed_it = prior
                        .resources
                        .get(&other.address)
                        .is_some_and(|r| r.depends_on.contains(&t.address));
                    if i != j && needed_it {
                        waits_on[i].insert(j);
                    }
                }
            } else if let Some(r) = desired.resources.get(&t.address) {
                for dep in &r.depends_on {
                    if let Some(&j) = index.get(dep.as_str())
                        && tasks[j].action != Action::Delete
                    {
                        waits_on[i].insert(j);
                    }
                }
            }
        }
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
        for (i, w) in waits_on.iter().enumerate() {
            for &j in w {
                dependents[j].push(i);
            }
        }
        let progress = Arc::new(Progress {
            tty: std::io::stderr().is_terminal(),
            total: tasks.len(),
            done: AtomicUsize::new(0),
        });
        let desired = Arc::new(desired.clone());
        let prior = Arc::new(prior.clone());
        let mut remaining: Vec<usize> = waits_on.iter().map(BTreeSet::len).collect();
        let mut state = vec![0u8; tasks.len()]; // 0 waiting, 1 running, 2 done, 3 failed, 4 skipped
        let mut ready: std::collections::VecDeque<usize> =
            (0..tasks.len()).filter(|&i| remaining[i] == 0).collect();
        let mut running_per_driver: HashMap<String, usize> = HashMap::new();
        let mut running = 0usize;
        let mut outcome = ApplyOutcome::default();
        let mut set = tokio::task::JoinSet::new();
        loop {
            // Start what is ready, within the global and per-driver limits.
            let mut deferred = std::collections::VecDeque::new();
            if self.cancel.load(Ordering::SeqCst) {
                for (i, t) in tasks.iter().enumerate() {
                    if state[i] == 0 {
                        state[i] = 4;
                        outcome
                            .skipped
                            .push((t.address.clone(), "platformd is shutting down".into()));
                    }
                }
                ready.clear();
            }
            while let Some(i) = ready.pop_front() {
                let driver_running = running_per_driver
                    .get(&tasks[i].driver)
                    .copied()
                    .unwrap_or(0);
                if running >= self.config.parallelism || driver_running >= self.config.per_driver {
                    deferred.push_back(i);
                    continue;
                }
                running += 1;
                *running_per_driver
                    .entry(tasks[i].driver.clone())
                    .or_default() += 1;
                state[i] = 1;
                let engine = Arc::clone(self);
                let task = tasks[i].clone();
                let (desired, prior, progress) = (
                    Arc::clone(&desired),
                    Arc::clone(&prior),
                    Arc::clone(&progress),
                );
                let revision = revision.to_string();
                set.spawn(async move {
                    let started = Instant::now();
                    let result = engine
                        .run(&task, &desired, &prior, apply_id, &revision)
                        .await;
                    let what = match (&result, task.action) {
                        (Err(e), _) => format!("failed: {e}"),
                        (Ok(()), Action::Create) => "created".to_string(),
                        (Ok(()), Action::Update) => "updated".to_string(),
                        (Ok(()), Action::Replace) => "replaced".to_string(),
                        (Ok(()), _) => "deleted".to_string(),
                    };
                    progress.report(&task.address, &what, started.elapsed());
                    (i, result)
                });
            }
            ready = deferred;
            let Some(joined) = set.join_next().await else {
                break;
            };
            let (i, result) = match joined {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "apply task panicked");
                    continue;
                }
            };
            running -= 1;
            if let Some(n) = running_per_driver.get_mut(&tasks[i].driver) {
                *n -= 1;
            }
            match result {
                Ok(()) => {
                    state[i] = 2;
                    outcome.succeeded.push(tasks[i].address.clone());
                    for &d in &dependents[i] {
                        remaining[d] -= 1;
                        if remaining[d] == 0 && state[d] == 0 {
                            ready.push_back(d);
                        }
                    }
                }
                Err(message) => {
                    state[i] = 3;
                    outcome.failed.push((tasks[i].address.clone(), message));
                    // Skip everything that transitively waits on the failure.
                    let mut todo = dependents[i].clone();
                    while let Some(d) = todo.pop() {
                        if state[d] == 0 {
                            state[d] = 4;
                            outcome.skipped.push((
                                tasks[d].address.clone(),
                                format!("depends on {}, which failed", tasks[i].address),
                            ));
                            progress.report(
                                &tasks[d].address,
                                &format!("skipped: {} failed", tasks[i].address),
                                Duration::ZERO,
                            );
                            todo.extend(dependents[d].iter().copied());
                        }
                    }
                }
            }
        }
        let stack = desired.stack.clone();
        let status = if self.cancel.load(Ordering::SeqCst) && !outcome.skipped.is_empty() {
            "interrupted"
        } else {
            outcome.status()
        };
        lock(&self.store).finish_apply(apply_id, status, &outcome.summary(), &stack)?;
        Ok(outcome)
    }

    async fn run(
        &self,
        task: &Task,
        desired: &Snapshot,
        prior: &Snapshot,
        apply_id: i64,
        revision: &str,
    ) -> Result<(), String> {
        let driver = self.driver(&task.driver).map_err(|e| e.to_string())?;
        let stack = desired.stack.clone();
        match task.action {
            Action::Delete => {
                let before = prior
                    .resources
                    .get(&task.address)
                    .ok_or("not in the prior state")?;
                let stored = lock(&self.store)
                    .resource(&task.address)
                    .map_err(|e| e.to_string())?;
                let journal_id = lock(&self.store)
                    .journal_intent(
                        apply_id,
                        &task.address,
                        "delete",
                        &task.driver,
                        stored.as_ref(),
                    )
                    .map_err(|e| e.to_string())?;
                let result =
                    with_retries(&self.config, &self.store, journal_id, &task.address, || {
                        driver.delete(&stack, before.kind, &before.name)
                    })
                    .await;
                self.finish(
                    journal_id,
                    result.map(|()| None),
                    apply_id,
                    revision,
                    &task.address,
                    None,
                )
            }
            _ => {
                let snapshot = desired
                    .resources
                    .get(&task.address)
                    .ok_or("not in the desired state")?;
                let resource =
                    desired_resource(&lock(&self.store), &stack, &task.address, snapshot)?;
                let stored = StoredResource {
                    snapshot: snapshot.clone(),
                    desired: resource.clone(),
                };
                let action = task.action.as_str();
                let journal_id = lock(&self.store)
                    .journal_intent(apply_id, &task.address, action, &task.driver, Some(&stored))
                    .map_err(|e| e.to_string())?;
                if task.action == Action::Replace {
                    // Names are identifiers, so the old one goes first (destroy, then create).
                    let old_driver = task
                        .prior_driver
                        .clone()
                        .unwrap_or_else(|| task.driver.clone());
                    let old = self.driver(&old_driver).map_err(|e| e.to_string())?;
                    let before = prior
                        .resources
                        .get(&task.address)
                        .ok_or("not in the prior state")?;
                    if let Err(e) =
                        with_retries(&self.config, &self.store, journal_id, &task.address, || {
                            old.delete(&stack, before.kind, &before.name)
                        })
                        .await
                    {
                        return self.finish(
                            journal_id,
                            Err(e),
                            apply_id,
                            revision,
                            &task.address,
                            None,
                        );
                    }
                }
                let result =
                    with_retries(&self.config, &self.store, journal_id, &task.address, || {
                        driver.apply(&resource)
                    })
                    .await;
                let result = match result {
                    Ok(outputs) => match tokio::time::timeout(
                        self.config.ready_timeout,
                        driver.wait_ready(&resource, self.config.ready_timeout),
                    )
                    .await
                    {
                        Ok(Ok(())) => Ok(Some(outputs)),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(DriverError::retryable(format!(
                            "not ready after {:?}",
                            self.config.ready_timeout
                        ))),
                    },
                    Err(e) => Err(e),
                };
                self.finish(
                    journal_id,
                    result,
                    apply_id,
                    revision,
                    &task.address,
                    Some(&stored),
                )
            }
        }
    }

    fn finish(
        &self,
        journal_id: i64,
        result: Result<Option<Outputs>, DriverError>,
        apply_id: i64,
        revision: &str,
        address: &str,
        stored: Option<&StoredResource>,
    ) -> Result<(), String> {
        let store = lock(&self.store);
        match (result, stored) {
            (Ok(Some(outputs)), Some(stored)) => store
                .journal_applied(journal_id, apply_id, revision, stored, &outputs)
                .map_err(|e| e.to_string()),
            (Ok(_), _) => store
                .journal_deleted(journal_id, address)
                .map_err(|e| e.to_string()),
            (Err(e), _) => {
                let _ = store.journal_failed(journal_id, "failed", &e.message);
                let _ = store.event(
                    "apply-failed",
                    &format!("{address}: {}", e.message),
                    Some(address),
                );
                Err(e.message)
            }
        }
    }

    /// Observes every driver for every kind it supports (one call per kind), and compares with
    /// the store: drifted, missing, and orphaned resources. `declared` (the current stack) keeps
    /// resources that are declared but not yet applied from being called orphans.
    pub async fn scan_drift(
        &self,
        stack: &str,
        declared: Option<&Snapshot>,
    ) -> Result<Vec<DriftFinding>, EngineError> {
        let stored = lock(&self.store).resources()?;
        let mut observed: HashMap<String, (String, ObservedResource)> = HashMap::new();
        for (name, driver) in &self.drivers {
            let kinds: Vec<Kind> = Kind::ALL
                .into_iter()
                .filter(|k| driver.supports(*k))
                .collect();
            let found =
                driver
                    .observe(stack, &kinds)
                    .await
                    .map_err(|source| EngineError::Observe {
                        driver: name.clone(),
                        source,
                    })?;
            for o in found {
                observed.insert(o.address.clone(), (name.clone(), o));
            }
        }
        let mut findings = Vec::new();
        for (address, s) in &stored {
            let policy = s.snapshot.drift;
            if policy == DriftPolicy::Ignore {
                continue;
            }
            let Some(driver) = self.drivers.get(&s.snapshot.driver) else {
                continue;
            };
            match observed.get(address) {
                None => findings.push(DriftFinding {
                    address: address.clone(),
                    status: "missing".into(),
                    policy: Some(policy),
                    changed_paths: Vec::new(),
                    changes: Vec::new(),
                }),
                Some((_, o)) => {
                    let expected =
                        driver
                            .expected(&s.desired)
                            .map_err(|source| EngineError::Observe {
                                driver: s.snapshot.driver.clone(),
                                source,
                            })?;
                    let ignored: Vec<String> = s
                        .snapshot
                        .ignore_changes
                        .iter()
                        .flat_map(|f| driver.live_paths(s.snapshot.kind, f))
                        .collect();
                    let mut diffs = managed_differences(&expected, &o.live, &ignored);
                    for d in &mut diffs {
                        d.path = document_path(&expected, &d.path);
                    }
                    if !diffs.is_empty() {
                        findings.push(DriftFinding {
                            address: address.clone(),
                            status: "drifted".into(),
                            policy: Some(policy),
                            changed_paths: diffs.iter().map(|d| d.path.clone()).collect(),
                            changes: diffs
                                .into_iter()
                                .map(|d| FieldChange {
                                    path: d.path,
                                    before: Some(d.expected),
                                    after: d.live,
                                    forces_replacement: None,
                                })
                                .collect(),
                        });
                    }
                }
            }
        }
        let known: BTreeSet<&str> = stored.iter().map(|(a, _)| a.as_str()).collect();
        let mut orphans: Vec<&String> = observed
            .keys()
            .filter(|a| {
                !known.contains(a.as_str())
                    && !declared.is_some_and(|d| d.resources.contains_key(*a))
            })
            .collect();
        orphans.sort();
        for address in orphans {
            findings.push(DriftFinding {
                address: address.clone(),
                status: "orphan".into(),
                policy: None,
                changed_paths: Vec::new(),
                changes: Vec::new(),
            });
        }
        Ok(findings)
    }
}

/// `[1].spec.ports` → `Service/checkout-api: spec.ports`: names the document a path is in.
fn document_path(expected: &serde_json::Value, path: &str) -> String {
    let Some(rest) = path.strip_prefix('[') else {
        return path.to_string();
    };
    let Some((index, tail)) = rest.split_once(']') else {
        return path.to_string();
    };
    let Some(doc) = index.parse::<usize>().ok().and_then(|i| expected.get(i)) else {
        return path.to_string();
    };
    let kind = doc["kind"].as_str().unwrap_or("document");
    let name = doc["metadata"]["name"].as_str().unwrap_or("?");
    format!("{kind}/{name}: {}", tail.trim_start_matches('.'))
}
