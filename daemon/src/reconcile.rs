//! The reconcile loop: one task driven by a closed set of events.
//!
//! new revision → validate → record → plan → apply (when `sync "auto"`, not pinned and not
//! blocked by policy). An invalid revision is recorded with its diagnostics and surfaced in the
//! status while the last good revision stays in force. Drift checks run on their own interval and
//! correct what has drift policy `correct`. Fetch failures back off exponentially with jitter
//! while the daemon keeps serving the last good revision.

use crate::engine::{Engine, EngineConfig};
use crate::source::{Revision, Source};
use crate::state::{LeaseGuard, build_drivers, plan_against_store};
use crate::store::{self, Store};
use planner::Snapshot;
use planner::load::ParseCache;
use planner::model::SyncMode;
use planner::plan::{DriftFinding, Plan};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Everything that can make the loop act.
#[derive(Debug)]
pub enum Event {
    PollTick,
    Webhook,
    FileChanged,
    DriftTick,
    Command(Command, oneshot::Sender<Result<String, String>>),
    Shutdown,
}

#[derive(Debug)]
pub enum Command {
    Sync,
    Rollback(String),
    Resume,
    /// Correct drift now: one resource, or every finding with policy `correct`.
    CorrectDrift(Option<String>),
}

pub use planner::history::Status;

/// Prometheus metrics, rendered by hand (all `platformd_` prefixed).
#[derive(Default)]
pub struct Metrics {
    pub revisions_seen: AtomicU64,
    pub revisions_applied: AtomicU64,
    pub revisions_invalid: AtomicU64,
    pub fetch_failures: AtomicU64,
    pub drift_findings: AtomicU64,
    pub last_successful_sync: AtomicU64,
    /// driver → (succeeded, failed, skipped) resource applies.
    pub outcomes: Mutex<BTreeMap<String, [u64; 3]>>,
    /// Reconcile durations: bucket counts (le 0.05 … 60 s), count, sum in ms.
    pub durations: Mutex<([u64; 8], u64, u64)>,
}

pub const DURATION_BUCKETS: [f64; 8] = [0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0, 60.0];

impl Metrics {
    /// A revision is in force: count it and stamp the time.
    pub fn record_sync(&self) {
        self.revisions_applied.fetch_add(1, Ordering::Relaxed);
        self.last_successful_sync
            .store(store::now() as u64, Ordering::Relaxed);
    }

    pub fn observe_reconcile(&self, d: Duration) {
        let mut h = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            if d.as_secs_f64() <= *le {
                h.0[i] += 1;
            }
        }
        h.1 += 1;
        h.2 += d.as_millis() as u64;
    }

    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "platformd_revisions_seen_total",
            "Revisions seen on the source.",
            self.revisions_seen.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "platformd_revisions_applied_total",
            "Revisions applied in full.",
            self.revisions_applied.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "platformd_revisions_invalid_total",
            "Revisions rejected as invalid.",
            self.revisions_invalid.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "platformd_fetch_failures_total",
            "Failed fetches of the source.",
            self.fetch_failures.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP platformd_drift_findings Findings of the last drift scan.\n# TYPE platformd_drift_findings gauge\nplatformd_drift_findings {}",
            self.drift_findings.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP platformd_last_successful_sync_timestamp_seconds When the last apply succeeded.\n# TYPE platformd_last_successful_sync_timestamp_seconds gauge\nplatformd_last_successful_sync_timestamp_seconds {}",
            self.last_successful_sync.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP platformd_apply_outcomes_total Resource applies by driver and outcome.\n# TYPE platformd_apply_outcomes_total counter"
        );
        for (driver, counts) in self
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for (i, outcome) in ["succeeded", "failed", "skipped"].iter().enumerate() {
                let _ = writeln!(
                    out,
                    "platformd_apply_outcomes_total{{driver=\"{driver}\",outcome=\"{outcome}\"}} {}",
                    counts[i]
                );
            }
        }
        let h = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP platformd_reconcile_duration_seconds Time from a new revision to the end of its apply.\n# TYPE platformd_reconcile_duration_seconds histogram"
        );
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "platformd_reconcile_duration_seconds_bucket{{le=\"{le}\"}} {}",
                h.0[i]
            );
        }
        let _ = writeln!(
            out,
            "platformd_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            h.1
        );
        let _ = writeln!(
            out,
            "platformd_reconcile_duration_seconds_sum {}",
            h.2 as f64 / 1000.0
        );
        let _ = writeln!(out, "platformd_reconcile_duration_seconds_count {}", h.1);
        out
    }
}

/// State shared between the loop and the HTTP API.
pub struct Shared {
    pub status: RwLock<Status>,
    pub plan: RwLock<Option<Plan>>,
    pub drift: RwLock<Vec<DriftFinding>>,
    pub metrics: Metrics,
    pub ready: AtomicBool,
    pub events: mpsc::Sender<Event>,
    pub state_dir: PathBuf,
    /// Set on SIGTERM: the engine starts no new driver calls.
    pub shutting_down: Arc<AtomicBool>,
}

pub struct Options {
    pub interval: Duration,
    pub drift_interval: Duration,
    pub debounce: Duration,
    pub parallelism: usize,
}

pub struct Reconciler {
    pub shared: Arc<Shared>,
    pub source: Source,
    pub options: Options,
    cache: ParseCache,
    last_seen: Option<String>,
    /// The last valid revision, and its snapshot: what is in force.
    last_good: Option<(String, Snapshot)>,
    failures: u32,
    next_fetch: Instant,
    /// When the read of the revision being reconciled started.
    revision_started: Option<Instant>,
    /// The store's last applied state, at a store generation.
    prior: Option<(u64, Snapshot)>,
    /// Phase timings of the revision being reconciled, for the "plan ready" log line.
    read_ms: u64,
    analyze_ms: u64,
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

impl Reconciler {
    pub fn new(shared: Arc<Shared>, source: Source, options: Options) -> Reconciler {
        Reconciler {
            shared,
            source,
            options,
            cache: ParseCache::new(),
            last_seen: None,
            last_good: None,
            failures: 0,
            next_fetch: Instant::now(),
            revision_started: None,
            prior: None,
            read_ms: 0,
            analyze_ms: 0,
        }
    }

    fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::open(&self.shared.state_dir)?)
    }

    fn set_error(&self, error: Option<String>) {
        let mut s = self
            .shared
            .status
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &error {
            tracing::warn!(error = %e, "reconcile problem");
            s.last_error_at = Some(store::now());
        }
        s.last_error = error;
    }

    fn set_state(&self, state: &str) {
        self.shared
            .status
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .sync_state = state.to_string();
    }

    /// Runs until a shutdown event.
    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        if let Ok(store) = self.store() {
            let mut s = self
                .shared
                .status
                .write()
                .unwrap_or_else(|e| e.into_inner());
            s.applied_revision = store.applied_revision().ok().flatten();
            s.pinned_revision = store.pinned_revision().ok().flatten();
            s.stack = store.stack_name().ok().flatten();
        }
        self.poll().await;
        self.shared.ready.store(true, Ordering::SeqCst);
        let mut poll = tokio::time::interval(self.options.interval);
        poll.tick().await;
        let mut drift = tokio::time::interval(self.options.drift_interval);
        drift.tick().await;
        loop {
            let event = tokio::select! {
                e = events.recv() => e.unwrap_or(Event::Shutdown),
                _ = poll.tick() => Event::PollTick,
                _ = drift.tick() => Event::DriftTick,
            };
            match event {
                Event::Shutdown => break,
                Event::PollTick => {
                    if Instant::now() >= self.next_fetch {
                        self.poll().await;
                    }
                }
                Event::Webhook => self.poll().await,
                Event::FileChanged => {
                    // Debounce: wait until the directory settles.
                    loop {
                        match tokio::time::timeout(self.options.debounce, events.recv()).await {
                            Ok(Some(Event::FileChanged)) => continue,
                            Ok(Some(Event::Shutdown)) | Ok(None) => return,
                            Ok(Some(other)) => {
                                // Not a file event: handle the settled state first, then it.
                                self.poll().await;
                                self.handle_other(other).await;
                                break;
                            }
                            Err(_) => {
                                self.poll().await;
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
        }
        tracing::info!("reconcile loop stopped");
    }

    async fn handle_other(&mut self, event: Event) {
        match event {
            Event::DriftTick => {
                let _ = self.drift_check(None, false).await;
            }
            Event::Command(command, reply) => {
                let result = self.command(command).await;
                let _ = reply.send(result);
            }
            Event::PollTick | Event::Webhook | Event::FileChanged => self.poll().await,
            Event::Shutdown => {}
        }
    }

    /// Reads the source; a new revision is reconciled.
    async fn poll(&mut self) {
        self.revision_started = Some(Instant::now());
        let read = match &self.source {
            Source::Git(g) => {
                let g = crate::source::GitSource::new(
                    &g.url,
                    &g.branch,
                    &g.path,
                    &self.shared.state_dir,
                );
                tokio::task::spawn_blocking(move || g.fetch())
                    .await
                    .unwrap_or_else(|e| Err(anyhow::anyhow!("fetch task failed: {e}")))
            }
            Source::Dir(d) => d.read(),
        };
        match read {
            Ok(revision) => {
                self.failures = 0;
                self.next_fetch = Instant::now();
                if self.last_seen.as_deref() != Some(revision.id.as_str()) {
                    self.new_revision(revision).await;
                }
            }
            Err(e) => {
                self.failures += 1;
                self.shared
                    .metrics
                    .fetch_failures
                    .fetch_add(1, Ordering::Relaxed);
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

    async fn new_revision(&mut self, revision: Revision) {
        let started = self.revision_started.unwrap_or_else(Instant::now);
        self.last_seen = Some(revision.id.clone());
        self.shared
            .metrics
            .revisions_seen
            .fetch_add(1, Ordering::Relaxed);
        {
            // Published together: a reader never sees the new revision with the old state.
            let mut s = self
                .shared
                .status
                .write()
                .unwrap_or_else(|e| e.into_inner());
            s.tracked_revision = Some(revision.id.clone());
            s.sync_state = "planning".into();
        }
        let read_ms = started.elapsed().as_millis() as u64;
        let analysis = planner::analyze_cached(revision.files, Some(&self.cache));
        self.analyze_ms = started.elapsed().as_millis() as u64 - read_ms;
        self.read_ms = read_ms;
        // Prune only when the cache has grown well past the stack, not on every revision.
        if self.cache.len() > 2 * analysis.stack.sources.len() + 16 {
            self.cache
                .retain_texts(analysis.stack.sources.iter().map(|(_, f)| f.text.as_str()));
        }
        let store = match self.store() {
            Ok(s) => s,
            Err(e) => return self.set_error(Some(format!("{e:#}"))),
        };
        let source = match &self.source {
            Source::Git(_) => "git",
            Source::Dir(_) => "directory",
        };
        let Some(snapshot) = analysis.snapshot.clone().filter(|_| !analysis.has_errors()) else {
            let errors = analysis.render_diagnostics(planner::diagnostic::Colour::Never);
            let _ = store.record_revision_details(
                &revision.id,
                source,
                false,
                Some(&errors),
                revision.author.as_deref(),
                revision.message.as_deref(),
            );
            let _ = store.event(
                "invalid-revision",
                &format!(
                    "revision {} is invalid; {} stays in force",
                    revision.id,
                    self.last_good
                        .as_ref()
                        .map_or("nothing", |(r, _)| r.as_str())
                ),
                None,
            );
            self.shared
                .metrics
                .revisions_invalid
                .fetch_add(1, Ordering::Relaxed);
            self.set_state("invalid");
            self.set_error(Some(format!(
                "revision {} is invalid ({}):\n{errors}",
                revision.id,
                planner::diagnostic::tally(&analysis.diagnostics)
            )));
            return;
        };
        let _ = store.record_revision_details(
            &revision.id,
            source,
            true,
            None,
            revision.author.as_deref(),
            revision.message.as_deref(),
        );
        // A new revision on the tracked source ends a rollback pin.
        if let Ok(Some(pin)) = store.pinned_revision() {
            let pinned_at = store.pinned_at_tip().ok().flatten();
            if pinned_at.as_deref() == Some(revision.id.as_str()) || pin == revision.id {
                self.last_good = Some((revision.id.clone(), snapshot));
                self.set_state("pinned");
                return;
            }
            let _ = store.set_pin(None);
            let _ = store.event(
                "pin-ended",
                &format!("new revision {} ends the pin to {pin}", revision.id),
                None,
            );
            self.shared
                .status
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .pinned_revision = None;
        }
        self.last_good = Some((revision.id.clone(), snapshot.clone()));
        self.set_error(None);
        {
            let mut s = self
                .shared
                .status
                .write()
                .unwrap_or_else(|e| e.into_inner());
            s.stack = Some(snapshot.stack.clone());
            s.sync_mode = analysis.stack.platform.as_ref().map(|p| p.sync);
        }
        let auto = analysis
            .stack
            .platform
            .as_ref()
            .is_none_or(|p| p.sync == SyncMode::Auto);
        self.reconcile(store, &revision.id, &snapshot, auto, "apply")
            .await;
        self.shared.metrics.observe_reconcile(started.elapsed());
    }

    /// Plans `snapshot` against the store and applies it when allowed.
    async fn reconcile(
        &mut self,
        store: Store,
        revision: &str,
        snapshot: &Snapshot,
        apply: bool,
        reason: &str,
    ) -> Option<String> {
        let plan = match self.plan_with_cached_prior(&store, snapshot, revision) {
            Ok(plan) => plan,
            Err(e) => {
                self.set_error(Some(format!("{e:#}")));
                return Some(format!("{e:#}"));
            }
        };
        {
            let mut s = self
                .shared
                .status
                .write()
                .unwrap_or_else(|e| e.into_inner());
            s.last_plan_ready_ms = Some(now_ms());
            s.last_plan_duration_ms = self
                .revision_started
                .map(|t| t.elapsed().as_millis() as u64);
            tracing::info!(
                revision,
                read_ms = self.read_ms,
                analyze_ms = self.analyze_ms,
                total_ms = s.last_plan_duration_ms.unwrap_or(0),
                changes = plan.summary.has_changes,
                "plan ready"
            );
        }
        // Plans are stored with their changes only: a 10,000-resource no-op plan is megabytes.
        let _ = store.record_plan(Some(revision), &planner::render::json(&plan.changes_only()));
        *self.shared.plan.write().unwrap_or_else(|e| e.into_inner()) = Some(plan.clone());
        if plan.policy.blocked {
            self.set_state("blocked");
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
            return Some("blocked by policy".into());
        }
        if !plan.summary.has_changes {
            self.set_state("synced");
            if store.applied_revision().ok().flatten().as_deref() != Some(revision) {
                let _ = store.record_applied_without_changes(revision, snapshot);
                self.shared.metrics.record_sync();
                self.shared
                    .status
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .last_sync_at = Some(store::now());
            }
            self.refresh_counts(&store);
            return None;
        }
        if !apply {
            self.set_state("out-of-sync");
            return Some("sync is manual: run sync".into());
        }
        self.apply(store, &plan, snapshot, revision, reason).await
    }

    async fn apply(
        &mut self,
        store: Store,
        plan: &Plan,
        snapshot: &Snapshot,
        revision: &str,
        reason: &str,
    ) -> Option<String> {
        self.set_state("applying");
        self.shared
            .status
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .last_apply_started_ms = Some(now_ms());
        let lease = match LeaseGuard::acquire(&store, "platformd daemon", Duration::from_secs(30)) {
            Ok(l) => l,
            Err(e) => {
                self.set_error(Some(format!("{e:#}")));
                return Some(format!("{e:#}"));
            }
        };
        let drivers = match build_drivers(snapshot) {
            Ok(d) => d,
            Err(e) => {
                self.set_error(Some(format!("{e:#}")));
                return Some(format!("{e:#}"));
            }
        };
        let engine = Arc::new(Engine {
            store: Arc::new(Mutex::new(store)),
            drivers,
            config: EngineConfig {
                parallelism: self.options.parallelism,
                per_driver: self.options.parallelism,
                ..EngineConfig::default()
            },
            cancel: self.shared.shutting_down.clone(),
        });
        let recovered = match engine.recover().await {
            Ok(n) => n,
            Err(e) => {
                self.set_error(Some(format!("{e:#}")));
                return Some(format!("{e:#}"));
            }
        };
        let planned = {
            let store = engine.store.lock().unwrap_or_else(|e| e.into_inner());
            if recovered > 0 {
                // Recovery changed the store: plan again from it, keeping drift corrections.
                plan_against_store(&store, snapshot, revision, Vec::new()).map(|(prior, mut p)| {
                    p.merge_drift(plan.drift.clone());
                    (prior, p)
                })
            } else {
                store
                    .prior_snapshot()
                    .map(|prior| (prior, plan.clone()))
                    .map_err(anyhow::Error::from)
            }
        };
        let (prior, plan) = match planned {
            Ok(p) => p,
            Err(e) => return Some(format!("{e:#}")),
        };
        let result = engine
            .apply(&plan, &prior, snapshot, revision, reason, None)
            .await;
        drop(lease);
        let store = engine.store.lock().unwrap_or_else(|e| e.into_inner());
        let message = match result {
            Ok(outcome) => {
                {
                    let mut m = self
                        .shared
                        .metrics
                        .outcomes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    for (list, i) in [(&outcome.succeeded, 0usize)] {
                        for a in list {
                            let d = plan
                                .resources
                                .iter()
                                .find(|r| &r.address == a)
                                .map_or("unknown".into(), |r| r.driver.clone());
                            m.entry(d).or_default()[i] += 1;
                        }
                    }
                    for (a, _) in &outcome.failed {
                        let d = plan
                            .resources
                            .iter()
                            .find(|r| &r.address == a)
                            .map_or("unknown".into(), |r| r.driver.clone());
                        m.entry(d).or_default()[1] += 1;
                    }
                    for (a, _) in &outcome.skipped {
                        let d = plan
                            .resources
                            .iter()
                            .find(|r| &r.address == a)
                            .map_or("unknown".into(), |r| r.driver.clone());
                        m.entry(d).or_default()[2] += 1;
                    }
                }
                if outcome.failed.is_empty()
                    && !self.shared.shutting_down.load(Ordering::SeqCst)
                    && outcome.skipped.is_empty()
                {
                    self.shared.metrics.record_sync();
                    let mut s = self
                        .shared
                        .status
                        .write()
                        .unwrap_or_else(|e| e.into_inner());
                    s.applied_revision = Some(revision.to_string());
                    s.last_sync_at = Some(store::now());
                    s.sync_state = "synced".into();
                    None
                } else {
                    let failures: Vec<String> = outcome
                        .failed
                        .iter()
                        .map(|(a, e)| format!("{a}: {e}"))
                        .collect();
                    let msg = format!(
                        "apply of {revision} {}: {}; {}",
                        outcome.status(),
                        outcome.summary(),
                        failures.join("; ")
                    );
                    drop(store);
                    self.set_state("error");
                    self.set_error(Some(msg.clone()));
                    return Some(msg);
                }
            }
            Err(e) => {
                drop(store);
                self.set_state("error");
                self.set_error(Some(format!("{e:#}")));
                return Some(format!("{e:#}"));
            }
        };
        self.refresh_counts(&store);
        if message.is_none() {
            // Everything applied: the store now holds exactly the desired state.
            if let Ok(generation) = store.generation() {
                self.prior = Some((generation, snapshot.clone()));
            }
        } else {
            self.refresh_prior(&store);
        }
        message
    }

    /// Plans against the store, reusing the prior snapshot while the store generation is the
    /// same (reading 10,000 stored resources is the slowest part of a re-plan).
    fn plan_with_cached_prior(
        &mut self,
        store: &Store,
        snapshot: &Snapshot,
        revision: &str,
    ) -> anyhow::Result<Plan> {
        let generation = store.generation()?;
        let prior = match &self.prior {
            Some((g, prior)) if *g == generation => prior,
            _ => {
                let prior = store.prior_snapshot()?;
                &self.prior.insert((generation, prior)).1
            }
        };
        let made_against = planner::plan::MadeAgainst {
            base_revision: store.applied_revision()?,
            head_revision: Some(revision.to_string()),
            state_generation: Some(generation),
        };
        Ok(planner::plan::plan(
            prior,
            snapshot,
            &planner::plan::PlanOptions {
                allow_destroy: Vec::new(),
                made_against,
            },
        ))
    }

    /// Reloads the cached prior snapshot after the store changed, so the next edit's plan
    /// does not pay for it.
    fn refresh_prior(&mut self, store: &Store) {
        if let (Ok(generation), Ok(prior)) = (store.generation(), store.prior_snapshot()) {
            self.prior = Some((generation, prior));
        }
    }

    fn refresh_counts(&self, store: &Store) {
        let counts = store.resource_counts().unwrap_or_default();
        let mut s = self
            .shared
            .status
            .write()
            .unwrap_or_else(|e| e.into_inner());
        s.resources = counts;
        s.applied_revision = store
            .applied_revision()
            .ok()
            .flatten()
            .or(s.applied_revision.take());
    }

    /// Scans for drift, records it, and corrects it. Scheduled every `--drift-interval`
    /// (`operator` false): findings with policy `correct`. On an operator's request: policy
    /// `report` too (that is what the request is for), all findings or only `only`'s. `ignore`
    /// and orphans are never touched.
    async fn drift_check(&mut self, only: Option<&str>, operator: bool) -> Result<String, String> {
        let store = self.store().map_err(|e| format!("{e:#}"))?;
        let Some((revision, snapshot)) = self.last_good.clone() else {
            return Err("no valid revision yet".into());
        };
        let drivers = build_drivers(&snapshot).map_err(|e| format!("{e:#}"))?;
        let stack = snapshot.stack.clone();
        let engine = Engine {
            store: Arc::new(Mutex::new(store)),
            drivers,
            config: EngineConfig::default(),
            cancel: self.shared.shutting_down.clone(),
        };
        let findings = match engine.scan_drift(&stack, Some(&snapshot)).await {
            Ok(f) => f,
            Err(e) => {
                let message = format!("drift scan failed: {e}");
                self.set_error(Some(message.clone()));
                return Err(message);
            }
        };
        let pinned = {
            let store = engine.store.lock().unwrap_or_else(|e| e.into_inner());
            let _ = store.record_drift(&findings);
            store.pinned_revision().ok().flatten().is_some()
        };
        self.shared
            .metrics
            .drift_findings
            .store(findings.len() as u64, Ordering::Relaxed);
        {
            let mut counts = BTreeMap::new();
            for f in &findings {
                *counts.entry(f.status.clone()).or_insert(0) += 1;
            }
            self.shared
                .status
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .drift = counts;
        }
        *self.shared.drift.write().unwrap_or_else(|e| e.into_inner()) = findings.clone();
        let correctable: Vec<_> = findings
            .into_iter()
            .filter(|f| {
                use planner::model::DriftPolicy::{Correct, Report};
                f.status != "orphan"
                    && (f.policy == Some(Correct) || (operator && f.policy == Some(Report)))
            })
            .filter(|f| only.is_none_or(|a| f.address == a))
            .collect();
        if correctable.is_empty() {
            return Ok("nothing to correct".into());
        }
        if pinned {
            return Err("the stack is pinned by a rollback: resume before correcting drift".into());
        }
        let store = self.store().map_err(|e| format!("{e:#}"))?;
        let (_, mut plan) = plan_against_store(&store, &snapshot, &revision, Vec::new())
            .map_err(|e| format!("{e:#}"))?;
        let count = correctable.len();
        // Correct what was chosen, whatever its policy.
        let correctable = correctable
            .into_iter()
            .map(|mut f| {
                f.policy = Some(planner::model::DriftPolicy::Correct);
                f
            })
            .collect();
        plan.merge_drift(correctable);
        if plan.policy.blocked {
            return Err("the correction is blocked by policy".into());
        }
        match self
            .apply(store, &plan, &snapshot, &revision, "drift-correct")
            .await
        {
            None => Ok(format!(
                "corrected drift of {count} resource{}",
                if count == 1 { "" } else { "s" }
            )),
            Some(e) => Err(e),
        }
    }

    async fn command(&mut self, command: Command) -> Result<String, String> {
        match command {
            Command::CorrectDrift(only) => self.drift_check(only.as_deref(), true).await,
            Command::Sync => {
                self.poll().await;
                let Some((revision, snapshot)) = self.last_good.clone() else {
                    return Err("no valid revision to sync".into());
                };
                let store = self.store().map_err(|e| e.to_string())?;
                if let Some(pin) = store.pinned_revision().map_err(|e| e.to_string())? {
                    return Err(format!("pinned to {pin} by a rollback; resume first"));
                }
                match self
                    .reconcile(store, &revision, &snapshot, true, "apply")
                    .await
                {
                    None => Ok(format!("synced to {revision}")),
                    Some(e) => Err(e),
                }
            }
            Command::Rollback(target) => {
                let store = self.store().map_err(|e| e.to_string())?;
                let (full, snapshot) = store
                    .snapshot(&target)
                    .map_err(|e| e.to_string())?
                    .ok_or(format!("no applied revision `{target}`"))?;
                if !store
                    .history()
                    .map_err(|e| e.to_string())?
                    .iter()
                    .any(|a| a.revision == full && a.status == "succeeded")
                {
                    return Err(format!("revision {full} was never applied in full"));
                }
                let (_, plan) = plan_against_store(&store, &snapshot, &full, Vec::new())
                    .map_err(|e| e.to_string())?;
                if plan.policy.blocked {
                    return Err("the rollback plan is blocked by policy".into());
                }
                if plan.summary.has_changes
                    && let Some(e) = self.apply(store, &plan, &snapshot, &full, "rollback").await
                {
                    return Err(e);
                }
                let store = self.store().map_err(|e| e.to_string())?;
                store.set_pin(Some(&full)).map_err(|e| e.to_string())?;
                store
                    .set_pinned_at_tip(self.last_seen.as_deref())
                    .map_err(|e| e.to_string())?;
                let mut s = self
                    .shared
                    .status
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                s.pinned_revision = Some(full.clone());
                s.applied_revision = Some(full.clone());
                s.sync_state = "pinned".into();
                Ok(format!(
                    "rolled back to {full}; pinned until resume or a new revision"
                ))
            }
            Command::Resume => {
                let store = self.store().map_err(|e| e.to_string())?;
                store.set_pin(None).map_err(|e| e.to_string())?;
                self.shared
                    .status
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .pinned_revision = None;
                let Some((revision, snapshot)) = self.last_good.clone() else {
                    return Ok("resumed".into());
                };
                match self
                    .reconcile(store, &revision, &snapshot, true, "apply")
                    .await
                {
                    None => Ok(format!("resumed; synced to {revision}")),
                    Some(e) => Err(e),
                }
            }
        }
    }
}
