//! The daemon's runtime: each stack's loop, API and directory watcher, the notifier, the
//! ownership of stacks among replicas, the HTTP listener, and an orderly stop on SIGTERM or
//! SIGINT (driver calls in flight finish, the journal stays consistent, leases are released).
//! The binary parses flags, opens the stores and sources, and prints what [`Started`] reports.

use crate::clock::{Clock, ClockError};
use crate::notify::{Notifier, NotifyError};
use crate::ownership::{self, LoopSettings};
use crate::reconcile::{Event, Options, Reconciler, Shared};
use crate::serve::ServeLimits;
use crate::server::{Api, RateLimit, multi_router, router};
use crate::source::{DirSource, Source};
use crate::store::Store;
use crate::store::replicas::Replicas;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// One stack to follow, before its loop starts.
pub struct StackParts {
    /// `None` in the single-stack form.
    pub name: Option<String>,
    pub store: Store,
    pub source: Source,
    pub webhook_secret: Option<String>,
    pub interval: Duration,
    pub drift_interval: Duration,
    /// Repository, branch, path and state directory: to open the source again when a replica
    /// takes the stack over.
    pub source_args: (String, String, String, PathBuf),
    /// Driver settings from the configuration (credentials by reference).
    pub drivers: BTreeMap<String, BTreeMap<String, String>>,
}

/// Replicas sharing the configuration's PostgreSQL store.
pub struct Replication {
    pub replicas: Replicas,
    pub ttl: Duration,
    pub replica: String,
}

/// How the API is served.
pub struct Serving {
    pub listen: SocketAddr,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub limits: ServeLimits,
    /// The API's bearer token.
    pub token: Option<String>,
    /// Requests a second per client, before throttling.
    pub rate_limit: f64,
}

/// What is running, for the binary to announce.
pub struct Started<'a> {
    /// Each stack's source, described, and its name when there are many.
    pub stacks: Vec<(String, Option<String>)>,
    pub api: SocketAddr,
    pub tls: bool,
    pub many: bool,
    /// The first stack's store, described.
    pub store: String,
    /// This replica's name and lease when replicas share the store.
    pub replica: Option<(&'a str, Duration)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot watch {path}: {source}")]
    Watch { path: String, source: notify::Error },
    #[error(transparent)]
    Clock(#[from] ClockError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs `stacks` until SIGTERM or SIGINT. `many`: the configuration's form (one API per stack
/// under `/api/v1/stacks/<name>`). `started` is told what runs once the API listens.
pub async fn run(
    stacks: Vec<StackParts>,
    replication: Option<Replication>,
    serving: Serving,
    loops: LoopSettings,
    many: bool,
    started: impl FnOnce(&Started<'_>),
) -> Result<(), RuntimeError> {
    let mut running = Vec::new();
    let mut watcher = DirWatcher::default();
    let mut apis = Vec::new();
    let notifier_stop = Arc::new(AtomicBool::new(false));
    let mut slots = Vec::new();
    let mut described = Vec::new();
    for stack in stacks {
        let (tx, rx) = mpsc::channel(64);
        let mut shared = Shared::new(stack.store.clone(), stack.source.describe(), tx.clone());
        if let Some(name) = &stack.name {
            shared.metrics = crate::reconcile::metrics::Metrics::for_stack(name);
        }
        let shared = Arc::new(shared);
        watcher.add(&stack.source, &shared)?;
        let mut api = Api::new(
            shared.clone(),
            serving.token.clone(),
            stack.webhook_secret.clone().map(String::into_bytes),
        );
        api.rate = RateLimit {
            per_second: serving.rate_limit,
            burst: (serving.rate_limit * 5.0).max(1.0),
        };
        let label = stack.name.clone().unwrap_or_default();
        described.push((stack.source.describe(), stack.name.clone().filter(|_| many)));
        if replication.is_some() {
            // Started when this replica owns the stack.
            slots.push(ownership::Slot::new(
                label.clone(),
                stack.store.clone(),
                shared.clone(),
                tx.clone(),
                rx,
                stack.source_args.clone(),
                stack.interval,
                stack.drift_interval,
                stack.drivers.clone(),
            ));
            apis.push((label, api));
            running.push((shared, tx, None));
            continue;
        }
        let reconciler = Reconciler::new(
            shared.clone(),
            stack.source,
            Options {
                interval: stack.interval,
                drift_interval: stack.drift_interval,
                utilisation_interval: loops.utilisation_interval,
                metrics: loops.metrics.clone(),
                debounce: loops.debounce,
                parallelism: loops.parallelism,
                clock: Clock::from_env()?,
                driver_settings: stack.drivers.clone(),
            },
        );
        // Its own task: a slow receiver never holds the loop back. Started before the loop, so
        // the loop's first apply is after the notifier's cursor and is announced.
        if !loops.targets.is_empty() {
            let notifier = Notifier::new(stack.store.clone(), loops.targets.clone())?;
            tokio::spawn(notifier.run(notifier_stop.clone(), Duration::from_millis(500)));
        }
        let loop_task = tokio::spawn(reconciler.run(rx));
        apis.push((label, api));
        running.push((shared, tx, Some(loop_task)));
    }

    let listener = tokio::net::TcpListener::bind(serving.listen)
        .await
        .map_err(|source| RuntimeError::Listen {
            addr: serving.listen,
            source,
        })?;
    let local = listener.local_addr()?;
    let app = if many {
        multi_router(apis)
    } else {
        match apis.pop() {
            Some((_, api)) => router(api),
            None => multi_router(Vec::new()),
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tls = serving.tls.is_some();
    let server = match serving.tls {
        Some(acceptor) => {
            let listener = crate::tls::TlsListener::new(listener, acceptor)?;
            tokio::spawn(crate::serve::serve(listener, app, serving.limits, stop_rx))
        }
        None => tokio::spawn(crate::serve::serve(listener, app, serving.limits, stop_rx)),
    };
    started(&Started {
        stacks: described,
        api: local,
        tls,
        many,
        store: running
            .first()
            .map(|(s, ..)| store_description(&s.store, many))
            .unwrap_or_default(),
        replica: replication.as_ref().map(|r| (r.replica.as_str(), r.ttl)),
    });

    let (ownership_stop, ownership_task) = match replication {
        Some(Replication {
            replicas,
            ttl,
            replica,
        }) => {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(
                ownership::Ownership {
                    replicas,
                    replica,
                    ttl,
                    slots,
                    settings: loops,
                }
                .run(stopped),
            );
            (Some(stop), Some(task))
        }
        None => (None, None),
    };

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // A loop ends only on shutdown; one that panicked leaves the other stacks running.
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight driver calls"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing in-flight driver calls"),
    }
    // Owned stacks stop and release their leases, so the other replicas take them at once.
    if let (Some(stop), Some(task)) = (ownership_stop, ownership_task) {
        let _ = stop.send(true);
        let _ = task.await;
    }
    for (shared, tx, task) in &running {
        if task.is_some() {
            shared.shutting_down.store(true, Ordering::SeqCst);
            let _ = tx.try_send(Event::Shutdown);
        }
    }
    for (_, _, task) in running {
        if let Some(task) = task {
            let _ = task.await;
        }
    }
    // Undelivered notifications stay in the store for the next start.
    notifier_stop.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let _ = server.await;
    Ok(())
}

fn store_description(store: &Store, many: bool) -> String {
    match store.location() {
        crate::store::Location::Dir(dir) if many => format!(
            "{} (one per stack)",
            dir.parent()
                .map_or_else(|| dir.display().to_string(), |p| p.display().to_string())
        ),
        crate::store::Location::Dir(dir) => dir.display().to_string(),
        crate::store::Location::Postgres { server, .. } => {
            format!("postgres://{server} (a schema per stack)")
        }
    }
}

/// Whether a file event can change the stack: `*.kdl` files outside hidden directories.
fn relevant(path: &Path, root: &Path) -> bool {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let hidden = rel
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    !hidden && (path.extension().is_some_and(|e| e == "kdl") || path.extension().is_none())
}

/// Directory mode: file events feed each stack's loop, which debounces them. One watcher for
/// every watched directory (one inotify instance per process, however many stacks: the
/// per-user limit is 128), each event sent to the loops whose directory it is in.
#[derive(Default)]
struct DirWatcher {
    watcher: Option<notify::RecommendedWatcher>,
    routes: Arc<std::sync::Mutex<Vec<WatchRoute>>>,
}

/// A watched stack directory (whose change count each event bumps) and the loop its changes
/// go to.
type WatchRoute = (DirSource, Arc<Shared>);

impl DirWatcher {
    fn add(&mut self, source: &Source, shared: &Arc<Shared>) -> Result<(), RuntimeError> {
        use notify::Watcher;
        let Source::Dir(d) = source else {
            return Ok(());
        };
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((d.clone(), shared.clone()));
        let watch_error = |source| RuntimeError::Watch {
            path: d.dir.display().to_string(),
            source,
        };
        if self.watcher.is_none() {
            let routes = self.routes.clone();
            self.watcher = Some(
                notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                    let Ok(event) = res else { return };
                    // Reading the stack (each poll does) is not a change: without this, every
                    // poll's reads woke the loop to poll again.
                    if matches!(
                        event.kind,
                        notify::EventKind::Access(_)
                            | notify::EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                    ) {
                        return;
                    }
                    for (source, shared) in routes.lock().unwrap_or_else(|e| e.into_inner()).iter()
                    {
                        let root = &source.dir;
                        if event
                            .paths
                            .iter()
                            .any(|p| p.starts_with(root) && relevant(p, root))
                        {
                            // Counted before the loop is woken: a read ahead of the debounce
                            // that overlapped this event is never used.
                            source.changed();
                            // A full queue: coalesced into a read after the loop's next
                            // event, never dropped.
                            if let Err(mpsc::error::TrySendError::Full(_)) =
                                shared.events.try_send(Event::FileChanged)
                            {
                                shared.fetch_requested.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                })
                .map_err(watch_error)?,
            );
        }
        if let Some(watcher) = &mut self.watcher {
            watcher
                .watch(&d.dir, notify::RecursiveMode::Recursive)
                .map_err(watch_error)?;
        }
        Ok(())
    }
}
