//! Replicas sharing a PostgreSQL store (`docs/SCALE_OUT.md`): which stacks this replica
//! reconciles. Every third of the lease time it says it is alive, computes the assignment of
//! stacks over the live replicas, and for each stack:
//!
//! - assigned here and not running: takes the stack's lease (a fenced epoch) and starts its
//!   loop, applying as the lease's owner (not on the first tick, which only joins);
//! - running here, with its lease found taken or not renewed for a whole lease time by the
//!   renewer thread: stops the loop (the renewer already stopped its driver calls; the journal
//!   refuses the old epoch in any case);
//! - running here but assigned elsewhere (a replica joined): stops the loop and releases the
//!   lease, so the new owner takes it without waiting.
//!
//! Leases are renewed on a thread of their own (`renew_leases`), so neither a busy runtime nor
//! a slow hand-over delays a renewal. A stack another replica reconciles answers 503 here,
//! naming it.

use crate::notify::{Notifier, Target};
use crate::reconcile::{Event, Options, Reconciler, Shared};
use crate::source::Source;
use crate::source::verify::Verifier;
use crate::store::replicas::{Replicas, assign};
use crate::store::{Store, StoreError};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How to (re)start one stack's loop.
pub struct Slot {
    pub name: String,
    pub store: Store,
    pub shared: Arc<Shared>,
    pub events: mpsc::Sender<Event>,
    pub receiver: Option<mpsc::Receiver<Event>>,
    pub repo: String,
    pub branch: String,
    pub path: String,
    pub dir: PathBuf,
    pub interval: Duration,
    pub drift_interval: Duration,
    pub drivers: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    running: Option<tokio::task::JoinHandle<mpsc::Receiver<Event>>>,
    notifier_stop: Option<Arc<AtomicBool>>,
    /// Set by the renewer when the lease is found taken or could not be renewed in time.
    lost: Arc<AtomicBool>,
}

impl Slot {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        store: Store,
        shared: Arc<Shared>,
        events: mpsc::Sender<Event>,
        receiver: mpsc::Receiver<Event>,
        (repo, branch, path, dir): (String, String, String, PathBuf),
        interval: Duration,
        drift_interval: Duration,
        drivers: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    ) -> Slot {
        Slot {
            name,
            store,
            shared,
            events,
            receiver: Some(receiver),
            repo,
            branch,
            path,
            dir,
            interval,
            drift_interval,
            drivers,
            running: None,
            notifier_stop: None,
            lost: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What every stack's loop is started with.
pub struct LoopSettings {
    pub utilisation_interval: Duration,
    pub metrics: Option<crate::utilisation::MetricsEndpoint>,
    pub debounce: Duration,
    pub parallelism: usize,
    pub verifier: Option<Arc<Verifier>>,
    pub targets: Vec<Target>,
}

/// A lease the renewer keeps alive.
struct Renewal {
    name: String,
    store: Store,
    shared: Arc<Shared>,
    lost: Arc<AtomicBool>,
    renewed: Instant,
}

type Renewals = Arc<std::sync::Mutex<Vec<Renewal>>>;

/// Renews the leases of the running stacks every third of the lease time, on a thread of its
/// own: a busy runtime (a hundred stacks applying at once) or a slow hand-over never delays a
/// renewal. A lease found taken, or not renewed for a whole lease time, stops its stack's
/// driver calls at once; the next tick stops the loop.
fn renew_leases(renewals: Renewals, ttl: Duration, stop: Arc<AtomicBool>) {
    let mut last = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < ttl / 3 {
            continue;
        }
        last = Instant::now();
        let mut renewals = renewals.lock().unwrap_or_else(|e| e.into_inner());
        for r in renewals.iter_mut() {
            let lost = match r.store.renew_lease(ttl) {
                Ok(true) => {
                    r.renewed = Instant::now();
                    false
                }
                Ok(false) => {
                    tracing::warn!(stack = %r.name, "the stack's lease was taken over; stopping its loop");
                    true
                }
                Err(e) if r.renewed.elapsed() >= ttl => {
                    tracing::warn!(stack = %r.name, error = %e, "the stack's lease could not be renewed for a whole lease time; stopping its loop");
                    true
                }
                Err(e) => {
                    tracing::warn!(stack = %r.name, error = %e, "cannot renew the stack's lease; trying again");
                    false
                }
            };
            if lost {
                r.shared.shutting_down.store(true, Ordering::SeqCst);
                r.lost.store(true, Ordering::SeqCst);
            }
        }
    }
}

pub struct Ownership {
    pub replicas: Replicas,
    /// This replica's name.
    pub replica: String,
    pub ttl: Duration,
    pub slots: Vec<Slot>,
    pub settings: LoopSettings,
}

fn holder_of(replica: &str) -> String {
    format!("platformd daemon {replica}")
}

impl Ownership {
    /// Runs until `stop` turns true; then stops every loop, releases every lease and leaves
    /// the set of replicas.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        for slot in &self.slots {
            *slot
                .shared
                .elsewhere
                .write()
                .unwrap_or_else(|e| e.into_inner()) = Some("(not assigned yet)".into());
        }
        let renewals: Renewals = Arc::default();
        let renewer_stop = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (renewals, stop, ttl) = (renewals.clone(), renewer_stop.clone(), self.ttl);
            std::thread::Builder::new()
                .name("lease-renewer".into())
                .spawn(move || renew_leases(renewals, ttl, stop))
                .ok()
        };
        let mut tick = tokio::time::interval(self.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick only joins: replicas started together see each other before any of
        // them takes stacks, so nothing is taken only to be handed over a moment later.
        let mut joined = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            self.tick(joined, &renewals).await;
            joined = true;
        }
        for i in 0..self.slots.len() {
            self.stop_slot(i, true, &renewals).await;
        }
        renewer_stop.store(true, Ordering::SeqCst);
        if let Some(renewer) = renewer {
            let _ = renewer.join();
        }
        if let Err(e) = self.replicas.leave(&self.replica) {
            tracing::warn!(error = %e, "cannot leave the set of replicas; the others wait for the lease");
        }
    }

    async fn tick(&mut self, joined: bool, renewals: &Renewals) {
        if let Err(e) = self.replicas.heartbeat(&self.replica) {
            tracing::warn!(error = %e, "cannot record this replica's heartbeat");
        }
        let live = match self.replicas.live(self.ttl) {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the live replicas");
                Vec::new()
            }
        };
        let names: Vec<String> = self.slots.iter().map(|s| s.name.clone()).collect();
        let plan = assign(&names, &live);
        let holder = holder_of(&self.replica);
        for i in 0..self.slots.len() {
            let assigned = plan.get(&self.slots[i].name).cloned();
            let mine = assigned.as_deref() == Some(self.replica.as_str());
            if self.slots[i].running.is_some() {
                if self.slots[i].lost.load(Ordering::SeqCst) {
                    self.stop_slot(i, false, renewals).await;
                }
                // Hand a stack over only to a replica that is alive to take it.
                if self.slots[i].running.is_some() && !mine && assigned.is_some() {
                    tracing::info!(stack = %self.slots[i].name, to = ?assigned, "handing the stack over");
                    self.stop_slot(i, true, renewals).await;
                }
            } else if mine && joined {
                match self.slots[i].store.acquire_lease(&holder, self.ttl) {
                    Ok(epoch) => self.start_slot(i, epoch, renewals),
                    Err(StoreError::Locked { .. }) => {}
                    Err(e) => {
                        tracing::warn!(stack = %self.slots[i].name, error = %e, "cannot take the stack's lease")
                    }
                }
            }
            let slot = &self.slots[i];
            // Running here, or about to be taken here: answered here (its status says where
            // it stands).
            let owner = if slot.running.is_some() || mine {
                None
            } else {
                let holder = slot
                    .store
                    .lease()
                    .ok()
                    .flatten()
                    .filter(|l| l.expires_at >= crate::store::now())
                    .map(|l| {
                        l.holder
                            .strip_prefix("platformd daemon ")
                            .unwrap_or(&l.holder)
                            .to_string()
                    });
                Some(
                    holder
                        .or(assigned)
                        .unwrap_or_else(|| "(not assigned yet)".into()),
                )
            };
            *slot
                .shared
                .elsewhere
                .write()
                .unwrap_or_else(|e| e.into_inner()) = owner;
        }
    }

    fn start_slot(&mut self, i: usize, epoch: i64, renewals: &Renewals) {
        let settings = &self.settings;
        let slot = &mut self.slots[i];
        let Some(mut receiver) = slot.receiver.take() else {
            tracing::error!(stack = %slot.name, "the stack's loop ended abnormally before; not restarting it");
            return;
        };
        // A loop that stopped on `shutting_down` between events left the shutdown sent to it
        // in the channel: read first, it ended the new loop at once while the lease was still
        // renewed, and the stack was never reconciled again. Everything else is kept, in order.
        let mut kept = Vec::new();
        while let Ok(event) = receiver.try_recv() {
            if !matches!(event, Event::Shutdown) {
                kept.push(event);
            }
        }
        for event in kept {
            let _ = slot.events.try_send(event);
        }
        let mut source = match Source::new(&slot.repo, &slot.branch, &slot.path, &slot.dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(stack = %slot.name, error = %e, "cannot open the stack's source");
                slot.receiver = Some(receiver);
                return;
            }
        };
        if let (Some(verifier), Source::Git(g)) = (&settings.verifier, &mut source) {
            g.verifier = Some(verifier.clone());
        }
        let clock = match crate::clock::Clock::from_env() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "invalid clock");
                slot.receiver = Some(receiver);
                return;
            }
        };
        slot.shared.shutting_down.store(false, Ordering::SeqCst);
        *slot
            .shared
            .elsewhere
            .write()
            .unwrap_or_else(|e| e.into_inner()) = None;
        let reconciler = Reconciler::new(
            slot.shared.clone(),
            source,
            Options {
                interval: slot.interval,
                drift_interval: slot.drift_interval,
                utilisation_interval: settings.utilisation_interval,
                metrics: settings.metrics.clone(),
                debounce: settings.debounce,
                parallelism: settings.parallelism,
                clock,
                driver_settings: slot.drivers.clone(),
            },
        )
        .owning_lease(epoch);
        // The notifier first: its cursor starts before the loop's first apply.
        if !settings.targets.is_empty() {
            match Notifier::new(slot.store.clone(), settings.targets.clone()) {
                Ok(notifier) => {
                    let stop = Arc::new(AtomicBool::new(false));
                    tokio::spawn(notifier.run(stop.clone(), Duration::from_millis(500)));
                    slot.notifier_stop = Some(stop);
                }
                Err(e) => {
                    tracing::error!(stack = %slot.name, error = %e, "cannot start notifications")
                }
            }
        }
        slot.lost.store(false, Ordering::SeqCst);
        renewals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Renewal {
                name: slot.name.clone(),
                store: slot.store.clone(),
                shared: slot.shared.clone(),
                lost: slot.lost.clone(),
                renewed: Instant::now(),
            });
        slot.running = Some(tokio::spawn(reconciler.run(receiver)));
        tracing::info!(stack = %slot.name, epoch, replica = %self.replica, "took the stack over");
    }

    async fn stop_slot(&mut self, i: usize, release: bool, renewals: &Renewals) {
        let slot = &mut self.slots[i];
        let Some(task) = slot.running.take() else {
            return;
        };
        // Not renewed from here: released below, or already lost.
        renewals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|r| r.name != slot.name);
        // No new driver call from here; the loop ends after what it is doing.
        slot.shared.shutting_down.store(true, Ordering::SeqCst);
        let _ = slot.events.send(Event::Shutdown).await;
        match task.await {
            Ok(receiver) => slot.receiver = Some(receiver),
            Err(e) => {
                tracing::error!(stack = %slot.name, error = %e, "the stack's loop ended abnormally")
            }
        }
        if let Some(stop) = slot.notifier_stop.take() {
            stop.store(true, Ordering::SeqCst);
        }
        if release && let Err(e) = slot.store.release_lease() {
            tracing::warn!(stack = %slot.name, error = %e, "cannot release the stack's lease; it expires on its own");
        }
        tracing::info!(stack = %slot.name, released = release, "stopped reconciling the stack");
    }
}
