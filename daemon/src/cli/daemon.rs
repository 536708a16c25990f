//! `platformd daemon`: follows a git branch or watches a directory, reconciles continuously, and
//! serves the HTTP API. SIGTERM/SIGINT finish the driver calls in flight, leave the journal
//! consistent, release the lease and exit 0.

use anyhow::{Context, Result};
use daemon::ownership;
use daemon::reconcile::{Event, Options, Reconciler, Shared};
use daemon::server::{Api, router};
use daemon::source::Source;
use daemon::store::Store;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

pub struct DaemonArgs {
    /// The stacks to follow and their store (`--config`); `None`: the one stack of `repo`.
    pub config: Option<PathBuf>,
    /// This replica's name among those sharing a store (default: host name and pid).
    pub replica: Option<String>,
    pub repo: String,
    pub branch: String,
    pub path: String,
    pub interval: Duration,
    pub drift_interval: Duration,
    pub utilisation_interval: Duration,
    pub metrics: Option<daemon::utilisation::MetricsEndpoint>,
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
    pub webhook_secret_file: Option<PathBuf>,
    pub parallelism: usize,
    pub debounce: Duration,
    pub notify: Vec<String>,
    pub notify_secret_file: Option<PathBuf>,
    pub verify_commits: Option<String>,
    pub allowed_signers: Option<PathBuf>,
    pub trusted_keys: Option<PathBuf>,
    pub allow_history_rewrite: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub api_rate_limit: f64,
    /// The API listener's timeouts and connection cap.
    pub http: daemon::serve::ServeLimits,
}

fn read_secret(path: &Path, what: &str) -> Result<String> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    let s = s.trim().to_string();
    anyhow::ensure!(!s.is_empty(), "the {what} file {} is empty", path.display());
    Ok(s)
}

/// Whether a file event can change the stack: `*.kdl` files outside hidden directories.
fn relevant(path: &Path, root: &Path) -> bool {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let hidden = rel
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    !hidden && (path.extension().is_some_and(|e| e == "kdl") || path.extension().is_none())
}

pub fn run(args: DaemonArgs) -> Result<u8> {
    let token = args
        .token_file
        .as_deref()
        .map(|p| read_secret(p, "token"))
        .transpose()?;
    let webhook_secret = args
        .webhook_secret_file
        .as_deref()
        .map(|p| read_secret(p, "webhook secret"))
        .transpose()?;
    let notify_secret = args
        .notify_secret_file
        .as_deref()
        .map(|p| read_secret(p, "notification secret"))
        .transpose()?;
    let targets = args
        .notify
        .iter()
        .map(|spec| {
            daemon::notify::Target::parse(spec, notify_secret.as_deref().map(str::as_bytes))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let verifier = match &args.verify_commits {
        Some(mode) => {
            use daemon::source::verify::{Verifier, VerifyMode};
            let read = |p: &Option<PathBuf>| -> Result<Option<String>> {
                p.as_deref()
                    .map(|p| {
                        std::fs::read_to_string(p)
                            .with_context(|| format!("cannot read {}", p.display()))
                    })
                    .transpose()
            };
            let mut verifier = Verifier::new(
                VerifyMode::parse(mode).map_err(anyhow::Error::msg)?,
                read(&args.allowed_signers)?.as_deref(),
                read(&args.trusted_keys)?.as_deref(),
            )
            .map_err(anyhow::Error::msg)?;
            verifier.allow_history_rewrite = args.allow_history_rewrite;
            Some(Arc::new(verifier))
        }
        None => None,
    };
    let (stacks, replication) = match &args.config {
        None => (
            vec![StackParts {
                name: None,
                // Opened (and migrated) once, up front, so a bad state directory fails fast; the
                // loop, the API and the lease share this handle.
                store: Store::open(&args.state_dir)?,
                source: Source::new(&args.repo, &args.branch, &args.path, &args.state_dir)?,
                webhook_secret: webhook_secret.clone(),
                interval: args.interval,
                drift_interval: args.drift_interval,
                source_args: (
                    args.repo.clone(),
                    args.branch.clone(),
                    args.path.clone(),
                    args.state_dir.clone(),
                ),
                drivers: Default::default(),
            }],
            None,
        ),
        Some(path) => configured_stacks(path, &args)?,
    };
    let mut stacks = stacks;
    if let Some(verifier) = &verifier {
        for stack in &mut stacks {
            match &mut stack.source {
                Source::Git(g) => g.verifier = Some(verifier.clone()),
                Source::Dir(_) => {
                    anyhow::bail!("--verify-commits needs a git repository, not a directory")
                }
            }
        }
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(daemon::tls::acceptor(cert, key)?),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let many = args.config.is_some();
        let mut running = Vec::new();
        let mut watcher = DirWatcher::default();
        let mut apis = Vec::new();
        let notifier_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut slots = Vec::new();
        for stack in stacks {
            let (tx, rx) = mpsc::channel(64);
            let mut shared = Shared::new(stack.store.clone(), stack.source.describe(), tx.clone());
            if let Some(name) = &stack.name {
                shared.metrics = daemon::reconcile::metrics::Metrics::for_stack(name);
            }
            let shared = Arc::new(shared);
            watcher.add(&stack.source, &shared)?;
            let mut api = Api::new(
                shared.clone(),
                token.clone(),
                stack.webhook_secret.clone().map(String::into_bytes),
            );
            api.rate = daemon::server::RateLimit {
                per_second: args.api_rate_limit,
                burst: (args.api_rate_limit * 5.0).max(1.0),
            };
            let label = stack.name.clone().unwrap_or_default();
            eprintln!("platformd daemon: following {}{}", stack.source.describe(),
                if many { format!(" as stack `{label}`") } else { String::new() });
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
                    utilisation_interval: args.utilisation_interval,
                    metrics: args.metrics.clone(),
                    debounce: args.debounce,
                    parallelism: args.parallelism,
                    clock: daemon::clock::Clock::from_env().map_err(anyhow::Error::msg)?,
                    driver_settings: stack.drivers.clone(),
                },
            );
            // Its own task: a slow receiver never holds the loop back. Started before the loop,
            // so the loop's first apply is after the notifier's cursor and is announced.
            if !targets.is_empty() {
                let notifier = daemon::notify::Notifier::new(stack.store.clone(), targets.clone())
                    .map_err(anyhow::Error::msg)?;
                tokio::spawn(notifier.run(notifier_stop.clone(), Duration::from_millis(500)));
            }
            let loop_task = tokio::spawn(reconciler.run(rx));
            apis.push((label, api));
            running.push((shared, tx, Some(loop_task)));
        }

        let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener.local_addr()?;
        let app = if many {
            daemon::server::multi_router(apis)
        } else {
            router(apis.pop().map(|(_, api)| api).context("one stack")?)
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let limits = args.http;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = match tls {
            Some(acceptor) => {
                let listener = daemon::tls::TlsListener::new(listener, acceptor)?;
                tokio::spawn(daemon::serve::serve(listener, app, limits, stop_rx))
            }
            None => tokio::spawn(daemon::serve::serve(listener, app, limits, stop_rx)),
        };
        if many {
            eprintln!("  API:      {scheme}://{local}  (GET /api/v1/stacks, /api/v1/stacks/<name>/status, /metrics)");
        } else {
            eprintln!("  API:      {scheme}://{local}  (GET /api/v1/status, /metrics)");
        }
        eprintln!("  store:    {}", running.first().map(|(s, ..)| store_description(&s.store, many)).unwrap_or_default());
        eprintln!("  rendered: where the stack's local driver `path` points (default .platformd/rendered)");

        let (ownership_stop, ownership_task) = match replication {
            Some(Replication { replicas, ttl, replica }) => {
                eprintln!("  replica:  {replica} (stacks are spread over the live replicas; lease {}s)", ttl.as_secs());
                let (stop, stopped) = tokio::sync::watch::channel(false);
                let task = tokio::spawn(
                    ownership::Ownership {
                        replicas,
                        replica,
                        ttl,
                        slots,
                        settings: ownership::LoopSettings {
                            utilisation_interval: args.utilisation_interval,
                            metrics: args.metrics.clone(),
                            debounce: args.debounce,
                            parallelism: args.parallelism,
                            verifier: verifier.clone(),
                            targets: targets.clone(),
                        },
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
        eprintln!("platformd daemon: stopped");
        Ok::<u8, anyhow::Error>(0)
    })
}

/// One stack to follow, before its loop starts.
struct StackParts {
    /// `None` in the single-stack form.
    name: Option<String>,
    store: Store,
    source: Source,
    webhook_secret: Option<String>,
    interval: Duration,
    drift_interval: Duration,
    /// Repository, branch, path and state directory: to open the source again when a replica
    /// takes the stack over.
    source_args: (String, String, String, PathBuf),
    /// Driver settings from the configuration (credentials by reference).
    drivers: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

/// Replicas sharing the configuration's PostgreSQL store.
struct Replication {
    replicas: daemon::store::replicas::Replicas,
    ttl: Duration,
    replica: String,
}

/// This replica's default name: the host and the process.
fn default_replica() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "localhost".into(), |s| s.trim().to_string());
    format!("{host}-{}", std::process::id())
}

/// The stacks of a configuration file, each with its store (a schema of the shared PostgreSQL
/// store, or a SQLite store in `<state-dir>/stacks/<name>`) and its source (cloned under the
/// same directory).
fn configured_stacks(
    path: &Path,
    args: &DaemonArgs,
) -> Result<(Vec<StackParts>, Option<Replication>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    let config = daemon::config::parse(&path.display().to_string(), &text)
        .map_err(|rendered| anyhow::anyhow!("the configuration is invalid:\n{rendered}"))?;
    let password = match config.store.as_ref().and_then(|s| s.password.as_ref()) {
        Some(reference) => Some(
            reference
                .read()
                .map_err(|e| anyhow::anyhow!("the store's password: {e}"))?,
        ),
        None => None,
    };
    // A few connections shared by every stack's store (each takes one by its name).
    let pool = match &config.store {
        Some(shared) => Some(
            daemon::store::PostgresPool::connect(
                &shared.url,
                password.as_deref(),
                config.stacks.len().min(4),
            )
            .context("the shared store")?,
        ),
        None => None,
    };
    let mut stacks = Vec::new();
    for stack in &config.stacks {
        let dir = args.state_dir.join("stacks").join(&stack.name);
        let store = match &pool {
            Some(pool) => Store::open_in_pool(pool, &stack.name)
                .with_context(|| format!("stack `{}`", stack.name))?,
            None => Store::open(&dir).with_context(|| format!("stack `{}`", stack.name))?,
        };
        let webhook_secret = stack
            .webhook_secret
            .as_ref()
            .map(|r| {
                r.read()
                    .map_err(|e| anyhow::anyhow!("stack `{}`: the webhook secret: {e}", stack.name))
            })
            .transpose()?;
        stacks.push(StackParts {
            name: Some(stack.name.clone()),
            store,
            source: Source::new(&stack.repo, &stack.branch, &stack.path, &dir)
                .with_context(|| format!("stack `{}`", stack.name))?,
            webhook_secret,
            interval: stack.interval.unwrap_or(args.interval),
            drift_interval: stack.drift_interval.unwrap_or(args.drift_interval),
            source_args: (
                stack.repo.clone(),
                stack.branch.clone(),
                stack.path.clone(),
                dir.clone(),
            ),
            drivers: stack.drivers.clone(),
        });
    }
    let replication = match &config.store {
        Some(shared) => Some(Replication {
            replicas: daemon::store::replicas::Replicas::open(&shared.url, password.as_deref())
                .context("the shared store")?,
            ttl: config.lease_ttl,
            replica: args.replica.clone().unwrap_or_else(default_replica),
        }),
        None => None,
    };
    Ok((stacks, replication))
}

fn store_description(store: &Store, many: bool) -> String {
    match store.location() {
        daemon::store::Location::Dir(dir) if many => format!(
            "{} (one per stack)",
            dir.parent()
                .map_or_else(|| dir.display().to_string(), |p| p.display().to_string())
        ),
        daemon::store::Location::Dir(dir) => dir.display().to_string(),
        daemon::store::Location::Postgres { server, .. } => {
            format!("postgres://{server} (a schema per stack)")
        }
    }
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
type WatchRoute = (daemon::source::DirSource, Arc<Shared>);

impl DirWatcher {
    fn add(&mut self, source: &Source, shared: &Arc<Shared>) -> Result<()> {
        use notify::Watcher;
        let Source::Dir(d) = source else {
            return Ok(());
        };
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((d.clone(), shared.clone()));
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
                .context("cannot watch the stack directory")?,
            );
        }
        if let Some(watcher) = &mut self.watcher {
            watcher
                .watch(&d.dir, notify::RecursiveMode::Recursive)
                .with_context(|| format!("cannot watch {}", d.dir.display()))?;
        }
        Ok(())
    }
}
