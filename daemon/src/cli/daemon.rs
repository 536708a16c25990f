//! `platformd daemon`: follows a git branch or watches a directory, reconciles continuously, and
//! serves the HTTP API. SIGTERM/SIGINT finish the driver calls in flight, leave the journal
//! consistent, release the lease and exit 0.

use anyhow::{Context, Result};
use daemon::ownership::LoopSettings;
use daemon::runtime::{self, Replication, Serving, StackParts, Started};
use daemon::source::Source;
use daemon::store::Store;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    let serving = Serving {
        listen: args.listen,
        tls,
        limits: args.http,
        token,
        rate_limit: args.api_rate_limit,
    };
    let loops = LoopSettings {
        utilisation_interval: args.utilisation_interval,
        metrics: args.metrics.clone(),
        debounce: args.debounce,
        parallelism: args.parallelism,
        verifier,
        targets,
    };
    let many = args.config.is_some();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(runtime::run(
        stacks,
        replication,
        serving,
        loops,
        many,
        announce,
    ))?;
    eprintln!("platformd daemon: stopped");
    Ok(0)
}

/// What runs, once the API listens.
fn announce(started: &Started<'_>) {
    for (source, name) in &started.stacks {
        match name {
            Some(name) => eprintln!("platformd daemon: following {source} as stack `{name}`"),
            None => eprintln!("platformd daemon: following {source}"),
        }
    }
    let scheme = if started.tls { "https" } else { "http" };
    let local = started.api;
    if started.many {
        eprintln!(
            "  API:      {scheme}://{local}  (GET /api/v1/stacks, /api/v1/stacks/<name>/status, /metrics)"
        );
    } else {
        eprintln!("  API:      {scheme}://{local}  (GET /api/v1/status, /metrics)");
    }
    eprintln!("  store:    {}", started.store);
    eprintln!(
        "  rendered: where the stack's local driver `path` points (default .platformd/rendered)"
    );
    if let Some((replica, ttl)) = started.replica {
        eprintln!(
            "  replica:  {replica} (stacks are spread over the live replicas; lease {}s)",
            ttl.as_secs()
        );
    }
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
