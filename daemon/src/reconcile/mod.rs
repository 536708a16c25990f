//! The reconcile loop: one task driven by a closed set of events.
//!
//! new revision → validate → record → plan → apply (when `sync "auto"`, not pinned and not
//! blocked by policy). An invalid revision is recorded with its diagnostics and surfaced in the
//! status while the last good revision stays in force. Drift checks run on their own interval and
//! correct what has drift policy `correct`. Fetch failures back off exponentially with jitter
//! while the daemon keeps serving the last good revision. Operator commands (sync, rollback,
//! resume, correct drift) are handled in `commands.rs`; every use case is an `ops` call.

mod commands;
mod errors;
mod lifecycle;
pub mod metrics;
mod outcome;

pub use commands::{Command, WindowOverride};
pub use errors::{ErrorClass, LoopError};
pub use lifecycle::month_start;
pub use metrics::Metrics;
pub use outcome::{Requeue, SyncOutcome};

use crate::ops::{ApplyOutcome, DriftScope, Ops, OpsError};
use crate::source::{Revision, Source};
use crate::store::Store;
use api::{ApplyReason, Status, SyncState};
use planner::load::ParseCache;
use planner::model::SyncMode;
use planner::plan::{DriftFinding, Plan};
use planner::{Analysis, Snapshot};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Who the daemon's own applies are recorded as started by.
const DAEMON_ACTOR: &str = "platformd daemon";

/// Who lets a plan be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// `sync "auto"`: applied unless it changes something in the platform's `approval` scope.
    Auto,
    /// `sync "manual"`: every plan waits for an approval of exactly it.
    Manual,
}

impl ApplyMode {
    /// As a stack's `sync` declares (`auto` when it declares none).
    fn declared(sync: Option<SyncMode>) -> ApplyMode {
        match sync {
            Some(SyncMode::Manual) => ApplyMode::Manual,
            _ => ApplyMode::Auto,
        }
    }
}

/// Everything that can make the loop act.
#[derive(Debug)]
pub enum Event {
    PollTick,
    /// Time to read utilisation (the cost controller).
    UtilisationTick,
    Webhook,
    FileChanged,
    DriftTick,
    /// An operator's command, with who sent it (the API token's name).
    Command(Command, String, oneshot::Sender<Result<String, LoopError>>),
    Shutdown,
}

/// State shared between the loop and the HTTP API.
pub struct Shared {
    pub status: RwLock<Status>,
    /// The last plan, shared with the loop that made it (a 10,000-resource plan is megabytes).
    pub plan: RwLock<Option<Arc<Plan>>>,
    pub drift: RwLock<Vec<DriftFinding>>,
    /// Live documents per applied resource, from the last drift scan.
    pub live: RwLock<BTreeMap<String, serde_json::Value>>,
    pub metrics: Metrics,
    /// Set once the first revision has been reconciled.
    pub ready: AtomicBool,
    pub events: mpsc::Sender<Event>,
    pub store: Store,
    /// Set on SIGTERM: the engine starts no new driver calls.
    pub shutting_down: Arc<AtomicBool>,
    /// A fetch asked for while the event queue was full (a webhook, a file change): made after
    /// the loop's next event, so no request is lost.
    pub fetch_requested: AtomicBool,
    /// The replica that reconciles this stack, when it is not this process (replicas sharing
    /// a store): the stack's endpoints here answer 503 naming it.
    pub elsewhere: RwLock<Option<String>>,
}

impl Shared {
    pub fn new(store: Store, source: String, events: mpsc::Sender<Event>) -> Shared {
        Shared {
            status: RwLock::new(Status {
                source,
                sync_state: SyncState::Starting,
                ..Status::default()
            }),
            plan: RwLock::new(None),
            drift: RwLock::new(Vec::new()),
            live: RwLock::new(BTreeMap::new()),
            metrics: Metrics::new(),
            ready: AtomicBool::new(false),
            events,
            store,
            shutting_down: Arc::new(AtomicBool::new(false)),
            fetch_requested: AtomicBool::new(false),
            elsewhere: RwLock::new(None),
        }
    }

    pub fn status(&self) -> Status {
        self.status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut Status)) {
        change(&mut self.status.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// Publishes a drift scan: the findings, their counts and the gauge.
    fn publish_drift(&self, findings: &[DriftFinding]) {
        self.metrics.drift_findings.set(findings.len() as i64);
        let mut counts = BTreeMap::new();
        for f in findings {
            *counts.entry(f.status).or_insert(0) += 1;
        }
        self.update(|s| s.drift = counts);
        *self.drift.write().unwrap_or_else(|e| e.into_inner()) = findings.to_vec();
    }
}

pub struct Options {
    pub interval: Duration,
    pub drift_interval: Duration,
    pub debounce: Duration,
    pub parallelism: usize,
    /// How often the cost controller reads utilisation (when the operator gave a metrics
    /// endpoint).
    pub utilisation_interval: Duration,
    /// Where the cost controller reads utilisation: the operator's, never the stack's.
    pub metrics: Option<crate::utilisation::MetricsEndpoint>,
    /// The clock sync windows and idle times are judged by.
    pub clock: crate::clock::Clock,
    /// Driver settings laid over the stack's own: credentials by reference from the daemon's
    /// configuration (`config::StackConfig::drivers`).
    pub driver_settings:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

pub struct Reconciler {
    pub shared: Arc<Shared>,
    pub source: Source,
    pub options: Options,
    ops: Ops,
    /// Shared with the read ahead of a debounce, which runs on a thread of its own.
    cache: Arc<ParseCache>,
    last_seen: Option<String>,
    /// The last valid revision, and its snapshot: what is in force.
    /// Shared, not copied: a 10,000-resource snapshot is megabytes, and every command and
    /// tick reads it.
    last_good: Option<(String, Arc<Snapshot>)>,
    failures: u32,
    next_fetch: Instant,
    /// When the read of the revision being reconciled started.
    revision_started: Option<Instant>,
    /// The store's last applied state, at a store generation. After a complete apply it is
    /// the applied snapshot itself, shared with `last_good` (a copy of 10,000 entries held up
    /// the loop's next event).
    prior: Option<(u64, Arc<Snapshot>)>,
    /// Phase timings of the revision being reconciled, for the "plan ready" log line.
    read_ms: u64,
    analyze_ms: u64,
    /// What the last reconcile decided to do next (a revision waiting for its approval or its
    /// window is looked at again at every poll tick).
    requeue: Requeue,
    /// The last revision commit verification refused, recorded once.
    last_rejected: Option<String>,
    /// The revision an operator's window override lets through once.
    window_overridden: Option<String>,
    /// What the revision being reconciled no longer needs, freed on another thread once its
    /// plan is ready (freeing beside the analysis or the plan slowed them).
    free_after_plan: Vec<Box<dyn Send + Sync>>,
}

/// What the approval gate says of a plan.
enum ApprovalGate {
    /// Neither the stack's `sync` mode nor its `approval` scope asks for one.
    NotNeeded,
    /// An approval of exactly this plan, not used yet.
    Approved { plan_hash: String, by: String },
    /// Put up for approval (or already waiting).
    Waiting,
}

/// What the sync windows say of applying now.
enum WindowGate {
    /// Open, or overridden by an operator.
    Open,
    Closed {
        reason: String,
    },
}

/// A read and analysis of a watched directory made during a debounce (`Reconciler::read_ahead`).
type ReadAhead = tokio::task::JoinHandle<Option<ReadAheadDone>>;

/// How many times a read ahead starts again when events overtake it.
const READ_AHEAD_ATTEMPTS: usize = 3;

struct ReadAheadDone {
    /// The directory's change count while it was read and analysed.
    changes: u64,
    started: Instant,
    read_ms: u64,
    analyze_ms: u64,
    /// The revision read (its files moved into the analysis).
    revision: Revision,
    analysis: Analysis,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Exponential backoff with jitter: base × 2^(failures-1), at most ten polls and five minutes,
/// times a factor in [0.5, 1.5).
fn jittered(base: Duration, failures: u32) -> Duration {
    let cap = (base * 10).min(Duration::from_secs(300)).max(base);
    let exp = base
        .mul_f64(2f64.powi(failures.min(16) as i32 - 1))
        .min(cap);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    exp.mul_f64(0.5 + f64::from(nanos % 1000) / 1000.0)
}

/// A store or plan failure as the loop reports it.
fn failed(e: impl std::fmt::Display) -> LoopError {
    LoopError::Failed(e.to_string())
}

impl Reconciler {
    pub fn new(shared: Arc<Shared>, source: Source, options: Options) -> Reconciler {
        let mut ops = Ops::new(
            shared.store.clone(),
            Arc::new(crate::ops::TracingProgress),
            "platformd daemon",
        );
        ops.config = crate::ops::EngineConfig::with_parallelism(options.parallelism);
        ops.cancel = shared.shutting_down.clone();
        ops.lock_timeout = Duration::from_secs(30);
        ops.actor = DAEMON_ACTOR.into();
        ops.driver_settings = options.driver_settings.clone();
        Reconciler {
            shared,
            source,
            options,
            ops,
            cache: Arc::new(ParseCache::new()),
            last_seen: None,
            last_good: None,
            failures: 0,
            next_fetch: Instant::now(),
            revision_started: None,
            prior: None,
            read_ms: 0,
            analyze_ms: 0,
            window_overridden: None,
            requeue: Requeue::AwaitChange,
            last_rejected: None,
            free_after_plan: Vec::new(),
        }
    }

    fn store(&self) -> &Store {
        &self.shared.store
    }

    /// How the last valid revision's plans may be applied, as its `sync` declares: an
    /// operator's sync or resume goes through the same approval as the loop's own applies.
    fn declared_mode(&self) -> ApplyMode {
        ApplyMode::declared(self.shared.status().sync_mode)
    }

    fn set_error(&self, error: Option<String>) {
        if let Some(e) = &error {
            tracing::warn!(error = %e, "reconcile problem");
        }
        self.shared.update(|s| {
            if error.is_some() {
                s.last_error_at = Some(crate::store::now());
            }
            s.last_error = error;
        });
    }

    fn set_state(&self, state: SyncState) {
        self.shared.update(|s| s.sync_state = state);
    }

    /// Records a problem that stops this reconcile: error state, message in the status.
    fn fail(&self, message: String) -> LoopError {
        self.set_state(SyncState::Error);
        self.set_error(Some(message.clone()));
        LoopError::Failed(message)
    }

    /// What the store says at start: applied and pinned revision, counts, the last drift scan.
    fn load_status(&self) {
        let store = self.store();
        let findings = store.last_drift_findings().unwrap_or_default();
        self.shared.update(|s| {
            s.applied_revision = store.applied_revision().ok().flatten();
            s.pinned_revision = store.pinned_revision().ok().flatten();
            s.stack = store.stack_name().ok().flatten();
            s.resources = store.resource_counts().unwrap_or_default();
        });
        self.shared.publish_drift(&findings);
        self.publish_lifecycle();
    }

    /// Applies as the owner of the stack's lease at `epoch` (a replica that owns the stack):
    /// applies neither take nor release the lease, and every journal intent is fenced by it.
    pub fn owning_lease(mut self, epoch: i64) -> Reconciler {
        self.ops.owned_epoch = Some(epoch);
        self
    }

    /// Runs until a shutdown event; returns the event channel, so a stack whose ownership
    /// comes back to this replica starts again on the same one.
    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) -> mpsc::Receiver<Event> {
        self.run_until_shutdown(&mut events).await;
        tracing::info!("reconcile loop stopped");
        events
    }

    async fn run_until_shutdown(&mut self, events: &mut mpsc::Receiver<Event>) {
        self.load_status();
        self.poll().await;
        let mut poll = tokio::time::interval(self.options.interval);
        poll.tick().await;
        let mut drift = tokio::time::interval(self.options.drift_interval);
        drift.tick().await;
        let mut utilisation = tokio::time::interval(self.options.utilisation_interval);
        utilisation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                e = events.recv() => e.unwrap_or(Event::Shutdown),
                _ = poll.tick() => Event::PollTick,
                _ = drift.tick() => Event::DriftTick,
                _ = utilisation.tick() => Event::UtilisationTick,
            };
            match event {
                Event::Shutdown => break,
                Event::PollTick => {
                    if Instant::now() >= self.next_fetch {
                        self.poll().await;
                    }
                    self.retry_held_back().await;
                    self.retry_approved().await;
                }
                Event::Webhook => self.poll().await,
                Event::FileChanged => {
                    // Debounce: wait until the directory settles. Meanwhile the directory is
                    // read and analysed ahead; that is used only if no event came after it.
                    let mut ahead = self.read_ahead();
                    loop {
                        match tokio::time::timeout(self.options.debounce, events.recv()).await {
                            Ok(Some(Event::FileChanged)) => {
                                // A read ahead still running checks for events itself; one
                                // already done has read too early.
                                if ahead.as_ref().is_some_and(|a| a.is_finished()) {
                                    ahead = self.read_ahead();
                                }
                                continue;
                            }
                            Ok(Some(Event::Shutdown)) | Ok(None) => return,
                            Ok(Some(other)) => {
                                // Not a file event: handle the settled state first, then it.
                                self.poll_settled(ahead).await;
                                self.handle_other(other).await;
                                break;
                            }
                            Err(_) => {
                                self.poll_settled(ahead).await;
                                break;
                            }
                        }
                    }
                }
                other => self.handle_other(other).await,
            }
            if self.shared.shutting_down.load(Ordering::SeqCst) {
                break;
            }
            if self.shared.fetch_requested.swap(false, Ordering::SeqCst) {
                self.poll().await;
            }
        }
    }

    async fn handle_other(&mut self, event: Event) {
        match event {
            Event::DriftTick => match self.drift_check(DriftScope::Scheduled, false).await {
                Ok(done) => tracing::info!(result = %done, "scheduled drift check"),
                Err(e) => tracing::warn!(error = %e, "scheduled drift check"),
            },
            Event::UtilisationTick => self.utilisation_tick().await,
            Event::Command(command, actor, reply) => {
                let result = self.command(command, actor).await;
                let _ = reply.send(result);
            }
            Event::PollTick | Event::Webhook | Event::FileChanged => self.poll().await,
            Event::Shutdown => {}
        }
    }

    /// Reads the source; a new revision is reconciled. The daemon is ready once a revision
    /// has been read and reconciled.
    async fn poll(&mut self) {
        self.shared.metrics.source_reads.inc();
        self.revision_started = Some(Instant::now());
        let read = match &self.source {
            Source::Git(g) => {
                let g = g.clone();
                let applied = self.shared.status().applied_revision;
                tokio::task::spawn_blocking(move || g.fetch(applied.as_deref()))
                    .await
                    .unwrap_or_else(|e| {
                        Err(crate::source::SourceError::Failed {
                            context: "the fetch task failed".into(),
                            detail: e.to_string(),
                        })
                    })
            }
            Source::Dir(d) => d.read(),
        };
        match read {
            Ok(revision) => self.read_succeeded(revision, None).await,
            Err(e) => {
                self.failures += 1;
                self.shared.metrics.fetch_failures.inc();
                let wait = jittered(self.options.interval, self.failures);
                self.next_fetch = Instant::now() + wait;
                let serving = self
                    .last_good
                    .as_ref()
                    .map_or("nothing yet".to_string(), |(r, _)| r.clone());
                self.set_error(Some(format!(
                    "{e:#}; retrying in {}s; serving {serving}",
                    wait.as_secs()
                )));
            }
        }
    }

    /// Starts reading and analysing a watched directory while its file events settle (a
    /// debounce is idle time otherwise). Reading and analysing change nothing but the parse
    /// cache, so a read ahead that an event overtook is simply not used.
    fn read_ahead(&self) -> Option<ReadAhead> {
        let Source::Dir(dir) = &self.source else {
            return None;
        };
        let dir = dir.clone();
        let cache = self.cache.clone();
        Some(tokio::task::spawn_blocking(move || {
            // An event during the read or the analysis means another go; a directory that
            // keeps changing is left to the read after the debounce.
            for _ in 0..READ_AHEAD_ATTEMPTS {
                let changes = dir.changes();
                let started = Instant::now();
                let mut revision = dir.read().ok()?;
                if dir.changes() != changes {
                    continue;
                }
                let read_ms = started.elapsed().as_millis() as u64;
                let files = std::mem::take(&mut revision.files);
                let analysis = planner::analyze_cached(files, Some(&cache));
                if dir.changes() != changes {
                    continue;
                }
                return Some(ReadAheadDone {
                    changes,
                    started,
                    read_ms,
                    analyze_ms: started.elapsed().as_millis() as u64 - read_ms,
                    revision,
                    analysis,
                });
            }
            None
        }))
    }

    /// Reads the source once the directory settled: the read ahead when no event came after it
    /// began, else a read now.
    async fn poll_settled(&mut self, ahead: Option<ReadAhead>) {
        let done = match ahead {
            Some(task) => task.await.ok().flatten(),
            None => None,
        };
        let current = match (&self.source, done) {
            (Source::Dir(dir), Some(done)) if dir.changes() == done.changes => done,
            _ => return self.poll().await,
        };
        self.shared.metrics.source_reads.inc();
        self.revision_started = Some(current.started);
        self.read_ms = current.read_ms;
        self.analyze_ms = current.analyze_ms;
        self.read_succeeded(current.revision, Some(current.analysis))
            .await;
    }

    /// A revision read from the source (with its analysis when it was made ahead): reconciled
    /// when it is new. The daemon is ready once a revision has been read.
    async fn read_succeeded(&mut self, revision: Revision, analysis: Option<Analysis>) {
        self.failures = 0;
        self.next_fetch = Instant::now();
        if self.last_seen.as_deref() != Some(revision.id.as_str()) {
            self.new_revision(revision, analysis).await;
        } else if let Some(analysis) = analysis {
            // The same content again (a file saved unchanged): its analysis is not needed.
            tokio::task::spawn_blocking(move || drop(analysis));
        }
        self.shared.ready.store(true, Ordering::SeqCst);
    }

    /// Reconciles a new revision, analysing it unless that was done ahead.
    async fn new_revision(&mut self, mut revision: Revision, analysis: Option<Analysis>) {
        let started = self.revision_started.unwrap_or_else(Instant::now);
        if let Some(why) = &revision.rejected {
            self.reject(&revision, why);
            // Not marked seen: checked again at the next poll (a signed tag may still come).
            return;
        }
        let mut analysis = match analysis {
            Some(analysis) => analysis,
            None => {
                // Shown while it is analysed (published again, with the rest, once it is).
                self.shared.update(|s| {
                    s.tracked_revision = Some(revision.id.clone());
                    s.sync_state = SyncState::Planning;
                });
                let read_ms = started.elapsed().as_millis() as u64;
                let files = std::mem::take(&mut revision.files);
                let analysis = planner::analyze_cached(files, Some(&self.cache));
                self.analyze_ms = started.elapsed().as_millis() as u64 - read_ms;
                self.read_ms = read_ms;
                analysis
            }
        };
        self.last_rejected = None;
        self.last_seen = Some(revision.id.clone());
        self.shared.metrics.revisions_seen.inc();
        // Published together: a reader never sees the new revision with the old state.
        self.shared.update(|s| {
            s.tracked_revision = Some(revision.id.clone());
            s.sync_state = SyncState::Planning;
        });
        // Prune only when the cache has grown well past the stack, not on every revision.
        if self.cache.len() > 2 * analysis.stack.sources.len() + 16 {
            self.cache
                .retain_texts(analysis.stack.sources.iter().map(|(_, f)| f.text.as_str()));
        }
        let valid = if analysis.has_errors() {
            None
        } else {
            analysis.snapshot.take().map(Arc::new)
        };
        let errors = valid
            .is_none()
            .then(|| analysis.render_diagnostics(planner::diagnostic::Colour::Never));
        let recorded = self.store().record_revision(&api::Revision {
            revision: revision.id.clone(),
            source: self.source.kind().into(),
            author: revision.author.clone(),
            message: revision.message.clone(),
            valid: valid.is_some(),
            errors: errors.clone(),
            ..api::Revision::default()
        });
        if let Err(e) = recorded {
            self.fail(format!("cannot record revision {}: {e}", revision.id));
            return;
        }
        let Some(snapshot) = valid else {
            self.refuse(
                "invalid-revision",
                &format!(
                    "revision {} is invalid; {} stays in force",
                    revision.id,
                    self.in_force()
                ),
                SyncState::Invalid,
                format!(
                    "revision {} is invalid ({}):\n{}",
                    revision.id,
                    planner::diagnostic::tally(&analysis.diagnostics),
                    errors.unwrap_or_default()
                ),
            );
            return;
        };
        // A new revision on the tracked source ends a rollback pin.
        match self.end_pin_for(&revision.id) {
            Ok(true) => {
                self.last_good = Some((revision.id.clone(), snapshot));
                self.set_state(SyncState::Pinned);
                return;
            }
            Ok(false) => {}
            Err(e) => {
                self.fail(format!("cannot end the rollback pin: {e}"));
                return;
            }
        }
        let previous = self
            .last_good
            .replace((revision.id.clone(), snapshot.clone()));
        // Freeing the previous snapshot is not on the way to the plan.
        tokio::task::spawn_blocking(move || drop(previous));
        self.shared.metrics.set_cost(&snapshot);
        self.set_error(None);
        self.shared.update(|s| {
            s.stack = Some(snapshot.stack.clone());
            s.sync_mode = analysis.stack.platform.as_ref().map(|p| p.sync);
        });
        let mode = ApplyMode::declared(analysis.stack.platform.as_ref().map(|p| p.sync));
        // Freed off the loop once the plan is ready: held to the end, it was freed after the
        // sync was published, in the way of the next file event.
        self.free_after_plan.push(Box::new(analysis));
        let _ = self
            .reconcile(&revision.id, &snapshot, mode, ApplyReason::Apply)
            .await;
        self.shared.metrics.observe_reconcile(started.elapsed());
    }

    /// Records a revision that commit verification refused (once, however often it is seen
    /// again); the last good one stays in force.
    fn reject(&mut self, revision: &Revision, why: &str) {
        if self.last_rejected.as_deref() == Some(revision.id.as_str()) {
            return;
        }
        self.last_rejected = Some(revision.id.clone());
        self.shared.metrics.revisions_seen.inc();
        self.shared
            .update(|s| s.tracked_revision = Some(revision.id.clone()));
        let message = format!(
            "revision {} is rejected: {why}; {} stays in force",
            revision.id,
            self.in_force()
        );
        if let Err(e) = self.store().record_revision(&api::Revision {
            revision: revision.id.clone(),
            source: self.source.kind().into(),
            author: revision.author.clone(),
            message: revision.message.clone(),
            valid: false,
            errors: Some(format!("rejected: {why}")),
            ..api::Revision::default()
        }) {
            tracing::warn!(error = %e, "cannot record a rejected revision");
        }
        self.refuse(
            "rejected-revision",
            &message,
            SyncState::Rejected,
            message.clone(),
        );
    }

    /// The revision that stays in force when a new one is refused.
    fn in_force(&self) -> &str {
        self.last_good
            .as_ref()
            .map_or("nothing", |(r, _)| r.as_str())
    }

    /// A revision refused as invalid or unsigned: the event, the metric, the state and the
    /// error in the status; the last good revision stays in force.
    fn refuse(&self, event: &str, event_message: &str, state: SyncState, error: String) {
        if let Err(e) = self.store().event(event, event_message, None) {
            tracing::warn!(error = %e, "cannot record an event");
        }
        self.shared.metrics.revisions_invalid.inc();
        self.set_state(state);
        self.set_error(Some(error));
    }

    /// Whether the stack stays pinned at `revision`: it does when `revision` is the one it was
    /// pinned at (or the pin itself); any other revision ends the pin.
    fn end_pin_for(&self, revision: &str) -> Result<bool, OpsError> {
        let Some(pin) = self.store().pinned_revision()? else {
            return Ok(false);
        };
        let pinned_at = self.store().pinned_at_tip()?;
        if pinned_at.as_deref() == Some(revision) || pin == revision {
            return Ok(true);
        }
        crate::ops::resume(self.store())?;
        self.store().event(
            "pin-ended",
            &format!("new revision {revision} ends the pin to {pin}"),
            None,
        )?;
        self.shared.update(|s| s.pinned_revision = None);
        Ok(false)
    }

    /// Plans `snapshot` against the store and applies it when the gates allow; what happens
    /// next is decided from the outcome ([`SyncOutcome::requeue`]).
    async fn reconcile(
        &mut self,
        revision: &str,
        snapshot: &Arc<Snapshot>,
        mode: ApplyMode,
        reason: ApplyReason,
    ) -> Result<SyncOutcome, LoopError> {
        let result = self.sync(revision, snapshot, mode, reason).await;
        if let Ok(outcome) = &result {
            self.requeue = outcome.requeue(revision, mode, self.ops.owned_epoch.is_some());
            if self.requeue == Requeue::NextPoll {
                self.last_seen = None;
            }
        }
        result
    }

    /// One sync of `revision`: plan, the gates (policy, approval, window), apply.
    async fn sync(
        &mut self,
        revision: &str,
        snapshot: &Arc<Snapshot>,
        mode: ApplyMode,
        reason: ApplyReason,
    ) -> Result<SyncOutcome, LoopError> {
        let planned = self.plan_with_cached_prior(snapshot, revision);
        // Freed whether or not a plan was made: a failing plan must not hold on to every
        // revision's analysis.
        let garbage = std::mem::take(&mut self.free_after_plan);
        tokio::task::spawn_blocking(move || drop(garbage));
        let plan = Arc::new(planned.map_err(|e| self.fail(e.to_string()))?);
        let plan_ready_ms = self
            .revision_started
            .map(|t| t.elapsed().as_millis() as u64);
        self.shared.update(|s| {
            s.last_plan_ready_ms = Some(now_ms());
            s.last_plan_duration_ms = plan_ready_ms;
        });
        tracing::info!(
            revision,
            read_ms = self.read_ms,
            analyze_ms = self.analyze_ms,
            total_ms = plan_ready_ms.unwrap_or(0),
            changes = plan.summary.has_changes,
            "plan ready"
        );
        let plan_id = crate::ops::record_plan(self.store(), revision, &plan)
            .map_err(|e| self.fail(format!("cannot record the plan: {e}")))?;
        let previous = self
            .shared
            .plan
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .replace(plan.clone());
        tokio::task::spawn_blocking(move || drop(previous));
        if plan.policy.blocked {
            self.set_state(SyncState::Blocked);
            let why: Vec<String> = plan
                .policy
                .violations
                .iter()
                .map(|v| v.message.clone())
                .collect();
            self.set_error(Some(format!(
                "plan for {revision} is blocked by policy: {}",
                why.join("; ")
            )));
            return Ok(SyncOutcome::Blocked);
        }
        if !plan.summary.has_changes {
            if self.store().applied_revision().map_err(failed)?.as_deref() != Some(revision) {
                self.store()
                    .record_applied_without_changes(revision, snapshot)
                    .map_err(|e| self.fail(format!("cannot record revision {revision}: {e}")))?;
                self.shared.metrics.record_sync(reason);
                self.shared
                    .update(|s| s.last_sync_at = Some(crate::store::now()));
            }
            self.set_state(SyncState::Synced);
            self.refresh_counts();
            return Ok(SyncOutcome::NoChanges);
        }
        let approved = match self.approval_allows(revision, &plan, mode)? {
            ApprovalGate::NotNeeded => None,
            ApprovalGate::Approved { plan_hash, by } => Some((plan_hash, by)),
            ApprovalGate::Waiting => return Ok(SyncOutcome::AwaitingApproval),
        };
        // An operator's override covers the one sync it was given for.
        if self.window_overridden.take().as_deref() != Some(revision)
            && let WindowGate::Closed { reason } = self.window_allows(revision, snapshot, None)?
        {
            return Ok(SyncOutcome::WindowClosed { reason });
        }
        // An approved plan is recorded as started by its approver.
        let actor = self.ops.actor.clone();
        if let Some((_, by)) = &approved {
            self.ops.actor = format!("{by} (approval)");
        }
        let applied = self
            .apply(&plan, snapshot, revision, reason, Some(plan_id))
            .await;
        self.ops.actor = actor;
        if let (Ok(SyncOutcome::Applied), Some((hash, _))) = (&applied, approved) {
            self.store()
                .approval_applied(revision, &hash)
                .map_err(|e| self.fail(format!("cannot record the approval as used: {e}")))?;
        }
        applied
    }

    /// Whether `plan` may be applied without an approval, or has one (an approval of exactly
    /// this plan, marked used once applied). Otherwise the plan is put up for approval (state
    /// `awaiting-approval`) and this reconcile stops.
    fn approval_allows(
        &mut self,
        revision: &str,
        plan: &Plan,
        mode: ApplyMode,
    ) -> Result<ApprovalGate, LoopError> {
        let needed = match mode {
            ApplyMode::Auto => plan.touches_approval_scope(),
            ApplyMode::Manual => true,
        };
        if !needed {
            self.shared.update(|s| s.pending_approval = None);
            return Ok(ApprovalGate::NotNeeded);
        }
        let hash = plan.approval_hash();
        let request = self
            .store()
            .approval(revision, &hash)
            .map_err(|e| self.fail(format!("cannot read approvals: {e}")))?;
        if let Some(a) = &request
            && a.applied_at.is_none()
            && let Some(by) = &a.approved_by
        {
            tracing::info!(revision, plan_hash = %hash, approved_by = %by, "plan approved");
            self.shared.update(|s| s.pending_approval = None);
            return Ok(ApprovalGate::Approved {
                plan_hash: hash,
                by: by.clone(),
            });
        }
        let summary = planner::render::summary_line(plan);
        if request.is_none() {
            self.store()
                .request_approval(revision, &hash, &summary)
                .map_err(|e| self.fail(format!("cannot request approval: {e}")))?;
            tracing::info!(revision, plan_hash = %hash, %summary, "plan waits for approval");
            if let Err(e) = self.store().event(
                "approval-requested",
                &format!("{revision}: {summary} (plan {})", api::short_hash(&hash)),
                None,
            ) {
                tracing::warn!(error = %e, "cannot record an event");
            }
        }
        self.set_state(SyncState::AwaitingApproval);
        self.shared.update(|s| {
            s.pending_approval = Some(api::PendingApproval {
                revision: revision.to_string(),
                plan_hash: hash.clone(),
                summary,
            })
        });
        Ok(ApprovalGate::Waiting)
    }

    /// Applies the plan waiting for approval once an approval of it is in the store (from the
    /// API or `platformd approve`, which writes the store directly).
    async fn retry_approved(&mut self) {
        let Requeue::UntilApproved {
            revision: waiting,
            mode,
        } = self.requeue.clone()
        else {
            return;
        };
        let approved = matches!(
            self.store().pending_approval(),
            Ok(Some(a)) if a.revision == waiting && a.approved_by.is_some()
        );
        let Some((revision, snapshot)) = self.last_good.clone() else {
            return;
        };
        if !approved || revision != waiting {
            return;
        }
        let _ = self
            .reconcile(&revision, &snapshot, mode, ApplyReason::Apply)
            .await;
    }

    /// Whether the sync windows let `revision` be applied now. A closed window holds the
    /// revision back (state `window-closed`, the verdict in the status) until it opens or an
    /// operator overrides it (`overridden`: who and why, recorded in history).
    fn window_allows(
        &mut self,
        revision: &str,
        snapshot: &Snapshot,
        overridden: Option<(&str, &str)>,
    ) -> Result<WindowGate, LoopError> {
        let state = self.options.clock.window(snapshot);
        if state.open {
            self.shared.update(|s| s.window = None);
            return Ok(WindowGate::Open);
        }
        let reason = state.reason.clone().unwrap_or_default();
        if let Some((actor, why)) = overridden {
            tracing::warn!(revision, actor, reason = why, "sync window overridden");
            crate::ops::window::record_override(
                self.store(),
                actor,
                crate::ops::window::Overridden::Apply { revision },
                &reason,
                why,
            )
            .map_err(|e| self.fail(format!("cannot record the override: {e}")))?;
            self.shared.update(|s| s.window = None);
            return Ok(WindowGate::Open);
        }
        let already_waiting = matches!(
            &self.requeue,
            Requeue::UntilWindowOpens { revision: waiting, .. } if waiting == revision
        );
        if !already_waiting {
            let opens = state
                .opens_at
                .as_deref()
                .map_or(String::new(), |t| format!("; it opens at {t}"));
            tracing::info!(revision, %reason, opens_at = state.opens_at.as_deref().unwrap_or(""), "sync window closed; the change waits");
            if let Err(e) = self.store().event(
                "window-closed",
                &format!("{revision} waits: {reason}{opens}"),
                None,
            ) {
                tracing::warn!(error = %e, "cannot record an event");
            }
        }
        self.set_state(SyncState::WindowClosed);
        self.shared.update(|s| s.window = Some(state));
        Ok(WindowGate::Closed { reason })
    }

    /// Applies the revision a closed window held back, once the window has opened.
    async fn retry_held_back(&mut self) {
        let Requeue::UntilWindowOpens {
            revision: waiting,
            mode,
        } = self.requeue.clone()
        else {
            return;
        };
        let Some((revision, snapshot)) = self.last_good.clone() else {
            return;
        };
        // Polled every tick while waiting: the cheap check, not the verdict with `opens_at`.
        if waiting != revision || !self.options.clock.window_open(&snapshot) {
            return;
        }
        tracing::info!(
            revision,
            "sync window open; applying the change that waited"
        );
        // Approval, when it was needed, was given before the window held the change back and
        // is checked again (and marked used) on the way.
        let _ = self
            .reconcile(&revision, &snapshot, mode, ApplyReason::Apply)
            .await;
    }

    /// Applies a plan made against the store (`plan_id`: already recorded).
    async fn apply(
        &mut self,
        plan: &Plan,
        snapshot: &Arc<Snapshot>,
        revision: &str,
        reason: ApplyReason,
        plan_id: Option<i64>,
    ) -> Result<SyncOutcome, LoopError> {
        self.set_state(SyncState::Applying);
        self.shared
            .update(|s| s.last_apply_started_ms = Some(now_ms()));
        let result = async {
            let session = self.ops.session(snapshot).await?;
            session
                .execute(plan, snapshot, revision, reason, plan_id)
                .await
        }
        .await;
        match result {
            Ok((plan, outcome)) => Ok(self.applied(&plan, &outcome, snapshot, revision, reason)),
            // The drivers could not be built or the apply could not start: nothing applied,
            // tried again as [`SyncOutcome::requeue`] says.
            Err(e) => {
                let message = e.to_string();
                self.fail(message.clone());
                Ok(SyncOutcome::Partial { message })
            }
        }
    }

    /// Publishes the end of an apply: metrics, status, the cached prior state.
    fn applied(
        &mut self,
        plan: &Plan,
        outcome: &ApplyOutcome,
        snapshot: &Arc<Snapshot>,
        revision: &str,
        reason: ApplyReason,
    ) -> SyncOutcome {
        let drivers: std::collections::HashMap<&str, &str> = plan
            .resources
            .iter()
            .map(|r| (r.address.as_str(), r.driver.as_str()))
            .collect();
        let driver_of = |address: &str| drivers.get(address).copied().unwrap_or("unknown");
        let metrics = &self.shared.metrics;
        for a in &outcome.succeeded {
            metrics.record_outcome(driver_of(a), "succeeded");
        }
        for (a, _) in &outcome.failed {
            metrics.record_outcome(driver_of(a), "failed");
        }
        for (a, _) in &outcome.skipped {
            metrics.record_outcome(driver_of(a), "skipped");
        }
        self.refresh_counts();
        if !outcome.complete() || self.shared.shutting_down.load(Ordering::SeqCst) {
            self.refresh_prior();
            let failures: Vec<String> = outcome
                .failed
                .iter()
                .map(|(a, e)| format!("{a}: {e}"))
                .collect();
            let message = format!(
                "apply of {revision} {}: {}; {}",
                outcome.status(),
                outcome.summary(),
                failures.join("; ")
            );
            self.fail(message.clone());
            return SyncOutcome::Partial { message };
        }
        metrics.record_sync(reason);
        // Everything applied: the store now holds exactly the desired state. (Set before the
        // sync is published, so the loop is idle when it is: freeing the state it replaces
        // beside the next edit's analysis slowed that.)
        self.prior = match self.store().generation() {
            Ok(generation) => Some((generation, snapshot.clone())),
            Err(_) => None,
        };
        self.shared.update(|s| {
            s.applied_revision = Some(revision.to_string());
            s.last_sync_at = Some(crate::store::now());
            // A drift correction puts the applied revision back; what the tracked revision
            // waits for (an approval, a window, a policy) still holds.
            if reason != ApplyReason::DriftCorrect {
                s.sync_state = SyncState::Synced;
            }
        });
        SyncOutcome::Applied
    }

    /// Plans against the store, reusing the prior snapshot while the store generation is the
    /// same (reading 10,000 stored resources is the slowest part of a re-plan).
    fn plan_with_cached_prior(
        &mut self,
        snapshot: &Snapshot,
        revision: &str,
    ) -> Result<Plan, OpsError> {
        let generation = self.store().generation()?;
        let prior = match &self.prior {
            Some((g, prior)) if *g == generation => prior,
            _ => {
                let prior = Arc::new(self.store().prior_snapshot()?);
                &self.prior.insert((generation, prior)).1
            }
        };
        crate::ops::plan_from_prior(
            &self.shared.store,
            prior,
            snapshot,
            revision,
            crate::ops::Choices::default(),
        )
    }

    /// Reloads the cached prior snapshot after the store changed, so the next edit's plan
    /// does not pay for it.
    fn refresh_prior(&mut self) {
        self.prior = match (self.store().generation(), self.store().prior_snapshot()) {
            (Ok(generation), Ok(prior)) => Some((generation, Arc::new(prior))),
            _ => None,
        };
    }

    fn refresh_counts(&self) {
        let store = self.store();
        let counts = store.resource_counts().unwrap_or_default();
        let applied = store.applied_revision().ok().flatten();
        self.shared.update(|s| {
            s.resources = counts;
            s.applied_revision = applied.or(s.applied_revision.take());
        });
    }

    /// Scans for drift, records and publishes it, and corrects what `scope` chooses.
    /// `window_overridden`: an operator's override lets a correction through a closed window.
    async fn drift_check(
        &mut self,
        scope: DriftScope,
        window_overridden: bool,
    ) -> Result<String, LoopError> {
        // Drift is judged against what is applied and corrected back to it, with the drivers
        // as they were set for it: a newer revision waiting for approval or a window is not
        // applied by a correction.
        let store = &self.ops.store;
        let in_force = match store.applied_revision().map_err(failed)? {
            Some(revision) => store
                .snapshot(&revision)
                .map_err(failed)?
                .map(|snapshot| (revision, Arc::new(snapshot))),
            None => None,
        };
        let Some((revision, snapshot)) = in_force else {
            return Err(LoopError::NoValidRevision);
        };
        let declared = self
            .last_good
            .as_ref()
            .map_or(&snapshot, |(_, s)| s)
            .clone();
        let findings = match self.ops.scan(&snapshot, Some(&declared)).await {
            Ok(scan) => {
                *self.shared.live.write().unwrap_or_else(|e| e.into_inner()) = scan.live;
                scan.findings
            }
            Err(e) => {
                let message = e.to_string();
                self.set_error(Some(message.clone()));
                return Err(LoopError::Failed(message));
            }
        };
        self.shared.publish_drift(&findings);
        let state = self.options.clock.window(&snapshot);
        if !state.open && !findings.is_empty() && !window_overridden {
            return Err(LoopError::DriftWaitsForWindow {
                reason: state.reason.unwrap_or_default(),
            });
        }
        let report = self
            .ops
            .correct_drift(&snapshot, &revision, findings, &scope)
            .await
            .map_err(failed)?;
        let Some((plan, outcome)) = report.applied else {
            return Ok("nothing to correct".into());
        };
        self.applied(
            &plan,
            &outcome,
            &snapshot,
            &revision,
            ApplyReason::DriftCorrect,
        )
        .into_result(&revision)?;
        let count = report.corrected;
        Ok(format!(
            "corrected drift of {count} resource{}",
            if count == 1 { "" } else { "s" }
        ))
    }
}
