//! Walking a plan: creates/updates/replaces run after the changes of what they need; a delete
//! runs after the changes of everything that needed it. A global and a per-driver limit bound
//! parallelism. When a change fails, everything that (transitively) waits on it is skipped and
//! independent branches go on. Retryable driver errors back off exponentially with jitter.

use super::{ApplyOutcome, Engine, EngineError, ResourceEvent, Task, TaskError};
use api::{ApplyReason, ApplyStatus};
use planner::Snapshot;
use planner::plan::{Action, Plan};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq)]
enum TaskState {
    Waiting,
    Running,
    Done,
    Failed,
    Skipped,
}

/// For each task, the tasks that must finish before it.
fn dependencies(tasks: &[Task], prior: &Snapshot, desired: &Snapshot) -> Vec<BTreeSet<usize>> {
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.address.as_str(), i))
        .collect();
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
    waits_on
}

impl Engine {
    /// Executes the changes of `plan`, from `prior` (the store's state when planned) towards
    /// `desired`, recording everything under `revision`. A store write that fails stops the
    /// apply: calls in flight finish, nothing new starts, and the error is returned.
    pub async fn apply(
        self: &Arc<Self>,
        plan: &Plan,
        prior: &Snapshot,
        desired: &Snapshot,
        revision: &str,
        reason: ApplyReason,
        plan_id: Option<i64>,
    ) -> Result<ApplyOutcome, EngineError> {
        let as_before = self.drivers_as_before(prior, desired);
        let tasks: Vec<Task> = plan
            .changes()
            .filter(|c| !c.blocked)
            .map(|c| {
                let prior_address = c.moved_from.as_ref().unwrap_or(&c.address);
                let prior_driver = prior
                    .resources
                    .get(prior_address)
                    .map(|r| r.driver.as_str());
                let remover_name = prior_driver.unwrap_or(&c.driver);
                Task {
                    address: c.address.clone(),
                    action: c.action,
                    driver: c.driver.clone(),
                    remover: as_before
                        .get(remover_name)
                        .or_else(|| self.drivers.get(remover_name))
                        .cloned(),
                    moves: c.moves,
                    moved_from: c.moved_from.clone(),
                    import_id: c.import_id.clone(),
                }
            })
            .collect();
        for t in tasks
            .iter()
            .filter(|t| !matches!(t.action, Action::Delete | Action::Forget))
        {
            self.driver(&t.driver)?;
        }
        self.store.store_snapshot(revision, desired)?;
        let apply_id =
            self.store
                .begin_apply(revision, reason, plan_id, &self.actor, self.note.as_deref())?;
        let waits_on = dependencies(&tasks, prior, desired);
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
        for (i, w) in waits_on.iter().enumerate() {
            for &j in w {
                dependents[j].push(i);
            }
        }
        self.progress.started(tasks.len());
        let desired = Arc::new(desired.clone());
        let prior = Arc::new(prior.clone());
        let mut remaining: Vec<usize> = waits_on.iter().map(BTreeSet::len).collect();
        let mut state = vec![TaskState::Waiting; tasks.len()];
        let mut ready: VecDeque<usize> = (0..tasks.len()).filter(|&i| remaining[i] == 0).collect();
        let mut running_per_driver: HashMap<String, usize> = HashMap::new();
        let mut running = 0usize;
        let mut outcome = ApplyOutcome::default();
        let mut store_error = None;
        let mut set = tokio::task::JoinSet::new();
        loop {
            let stopping = self.cancel.load(Ordering::SeqCst) || store_error.is_some();
            if stopping {
                let why = if store_error.is_some() {
                    "the store could not record the apply"
                } else {
                    "platformd is shutting down"
                };
                for (i, t) in tasks.iter().enumerate() {
                    if state[i] == TaskState::Waiting {
                        state[i] = TaskState::Skipped;
                        outcome.skipped.push((t.address.clone(), why.into()));
                    }
                }
                ready.clear();
            }
            // Start what is ready, within the global and per-driver limits.
            let mut deferred = VecDeque::new();
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
                state[i] = TaskState::Running;
                let engine = Arc::clone(self);
                let task = tasks[i].clone();
                let (desired, prior) = (Arc::clone(&desired), Arc::clone(&prior));
                let revision = revision.to_string();
                set.spawn(async move {
                    let started = Instant::now();
                    let result = engine
                        .run(&task, &desired, &prior, apply_id, &revision)
                        .await;
                    let event = match &result {
                        Ok(()) => ResourceEvent::Done(task.action),
                        Err(TaskError::Driver(e)) => ResourceEvent::Failed(e.clone()),
                        Err(TaskError::Store(e)) => ResourceEvent::Failed(e.to_string()),
                    };
                    engine
                        .progress
                        .resource(&task.address, &event, started.elapsed());
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
                    state[i] = TaskState::Done;
                    outcome.succeeded.push(tasks[i].address.clone());
                    for &d in &dependents[i] {
                        remaining[d] -= 1;
                        if remaining[d] == 0 && state[d] == TaskState::Waiting {
                            ready.push_back(d);
                        }
                    }
                }
                Err(TaskError::Store(e)) => {
                    state[i] = TaskState::Failed;
                    outcome
                        .failed
                        .push((tasks[i].address.clone(), e.to_string()));
                    store_error.get_or_insert(e);
                }
                Err(TaskError::Driver(message)) => {
                    state[i] = TaskState::Failed;
                    outcome.failed.push((tasks[i].address.clone(), message));
                    // Skip everything that transitively waits on the failure.
                    let mut todo = dependents[i].clone();
                    while let Some(d) = todo.pop() {
                        if state[d] == TaskState::Waiting {
                            state[d] = TaskState::Skipped;
                            let why = format!("depends on {}, which failed", tasks[i].address);
                            self.progress.resource(
                                &tasks[d].address,
                                &ResourceEvent::Skipped(why.clone()),
                                Duration::ZERO,
                            );
                            outcome.skipped.push((tasks[d].address.clone(), why));
                            todo.extend(dependents[d].iter().copied());
                        }
                    }
                }
            }
        }
        outcome.interrupted = self.cancel.load(Ordering::SeqCst) && !outcome.skipped.is_empty();
        let status = match &store_error {
            Some(_) => ApplyStatus::Failed,
            None => outcome.status(),
        };
        let finished =
            self.store
                .finish_apply(apply_id, status, &outcome.summary(), &desired.stack);
        if let Some(e) = store_error {
            return Err(e.into());
        }
        finished?;
        Ok(outcome)
    }
}
