//! `platformd daemon`: follows a git branch or watches a directory, reconciles continuously, and
//! serves the HTTP API. SIGTERM/SIGINT finish the driver calls in flight, leave the journal
//! consistent, release the lease and exit 0.

use anyhow::{Context, Result};
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
    pub repo: String,
    pub branch: String,
    pub path: String,
    pub interval: Duration,
    pub drift_interval: Duration,
    pub utilisation_interval: Duration,
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
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub api_rate_limit: f64,
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
        .collect::<Result<Vec<_>, String>>()
        .map_err(anyhow::Error::msg)?;
    // Opened (and migrated) once, up front, so a bad state directory fails fast; the loop, the
    // API and the lease share this handle.
    let store = Store::open(&args.state_dir)?;
    let notifier = (!targets.is_empty())
        .then(|| daemon::notify::Notifier::new(store.clone(), targets))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut source = Source::new(&args.repo, &args.branch, &args.path, &args.state_dir)?;
    if let Some(mode) = &args.verify_commits {
        use daemon::source::verify::{Verifier, VerifyMode};
        let read = |p: &Option<PathBuf>| -> Result<Option<String>> {
            p.as_deref()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read {}", p.display()))
                })
                .transpose()
        };
        let verifier = Verifier::new(
            VerifyMode::parse(mode).map_err(anyhow::Error::msg)?,
            read(&args.allowed_signers)?.as_deref(),
            read(&args.trusted_keys)?.as_deref(),
        )
        .map_err(anyhow::Error::msg)?;
        match &mut source {
            Source::Git(g) => g.verifier = Some(Arc::new(verifier)),
            Source::Dir(_) => {
                anyhow::bail!("--verify-commits needs a git repository, not a directory")
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
        let (tx, rx) = mpsc::channel(64);
        let shared = Arc::new(Shared::new(store, source.describe(), tx.clone()));
        let shutting_down = shared.shutting_down.clone();

        // Directory mode: file events feed the loop, which debounces them.
        let _watcher = match &source {
            Source::Dir(d) => {
                use notify::Watcher;
                let root = d.dir.clone();
                let events = tx.clone();
                let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                    if let Ok(event) = res
                        && event.paths.iter().any(|p| relevant(p, &root))
                    {
                        let _ = events.try_send(Event::FileChanged);
                    }
                })
                .context("cannot watch the stack directory")?;
                watcher.watch(&d.dir, notify::RecursiveMode::Recursive).with_context(|| format!("cannot watch {}", d.dir.display()))?;
                Some(watcher)
            }
            Source::Git(_) => None,
        };

        let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener.local_addr()?;
        let mut api = Api::new(shared.clone(), token, webhook_secret.map(String::into_bytes));
        api.rate = daemon::server::RateLimit {
            per_second: args.api_rate_limit,
            burst: (args.api_rate_limit * 5.0).max(1.0),
        };
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let stopped = async move {
            let _ = stop_rx.changed().await;
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = match tls {
            Some(acceptor) => {
                let listener = daemon::tls::TlsListener::new(listener, acceptor)?;
                tokio::spawn(async move {
                    let _ = axum::serve(listener, router(api)).with_graceful_shutdown(stopped).await;
                })
            }
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, router(api)).with_graceful_shutdown(stopped).await;
            }),
        };
        eprintln!("platformd daemon: following {}", source.describe());
        eprintln!("  API:      {scheme}://{local}  (GET /api/v1/status, /metrics)");
        eprintln!("  store:    {}", args.state_dir.display());
        eprintln!("  rendered: where the stack's local driver `path` points (default .platformd/rendered)");

        let reconciler = Reconciler::new(
            shared.clone(),
            source,
            Options {
                interval: args.interval,
                drift_interval: args.drift_interval,
                utilisation_interval: args.utilisation_interval,
                debounce: args.debounce,
                parallelism: args.parallelism,
                clock: daemon::clock::Clock::from_env().map_err(anyhow::Error::msg)?,
            },
        );
        let mut loop_task = tokio::spawn(reconciler.run(rx));
        // Its own task: a slow receiver never holds the loop back.
        let notifier_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(n) = notifier {
            tokio::spawn(n.run(notifier_stop.clone(), Duration::from_millis(500)));
        }

        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight driver calls"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing in-flight driver calls"),
            _ = &mut loop_task => {}
        }
        shutting_down.store(true, Ordering::SeqCst);
        let _ = tx.try_send(Event::Shutdown);
        let _ = loop_task.await;
        // Undelivered notifications stay in the store for the next start.
        notifier_stop.store(true, Ordering::SeqCst);
        let _ = stop_tx.send(true);
        let _ = server.await;
        eprintln!("platformd daemon: stopped");
        Ok::<u8, anyhow::Error>(0)
    })
}
