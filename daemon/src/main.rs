//! `platformd`: the command-line interface. Commands live in [`cli`], over the `daemon`
//! library; this file only parses arguments and maps results to exit codes (`docs/RUNNING.md`:
//! 0 ok, 1 error, 2 changes with `--detailed-exitcode`, 3 blocked by policy).

mod cli;

/// The planner allocates millions of small objects per plan; glibc's allocator spent a quarter
/// of a cold 10,000-resource plan in malloc and free (`docs/PERFORMANCE.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc keeps freed memory for a while and commits whole arenas: for a short-lived plan
/// that raised the peak resident memory of the cold 10,000-resource plan from 50 MiB to
/// 98 MiB at the same speed (`docs/PERFORMANCE.md`). Arena memory is committed as it is used,
/// and freed pages go back after 2 ms: at once (0), what decoding frees and allocates again
/// straight after went back to the kernel in between, a sixth of the plan's page faults,
/// for 3 MiB of peak.
///
/// This runs as an ELF constructor, before any Rust code allocates: the arena option is read
/// when the first arena is made, which happens before `main`.
extern "C" fn return_freed_memory_promptly() {
    // mimalloc v3's option numbers (`mi_option_t` in its `mimalloc.h`).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // An operator's MIMALLOC_* setting wins. (`getenv`, not `std::env`: nothing may allocate
    // before the options are set.)
    // SAFETY: `getenv` on NUL-terminated names, before any thread exists; the option setters
    // take any value.
    unsafe {
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        }
        if libc::getenv(c"MIMALLOC_PURGE_DELAY".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 2);
        }
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static SET_ALLOCATOR_OPTIONS: extern "C" fn() = return_freed_memory_promptly;

/// The daemon analyses the whole stack again on every revision, so what it frees is what the
/// next revision allocates: returned at once, it came back as page faults, a quarter of a
/// watch-mode re-plan of 10,000 resources (`docs/PERFORMANCE.md`). A daemon keeps its freed
/// pages for reuse, and its resident memory stays at its working peak. (mimalloc reads this
/// option at each purge, so it may change after start.)
fn keep_freed_memory_for_reuse() {
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: the option setter takes any value; -1 means never purge.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
    }
}

use cli::{commands, state};

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "platformd",
    version,
    about = "GitOps reconciliation for services, data, GPU pools and AI endpoints"
)]
pub struct Cli {
    /// Colour in output: auto uses colour only on a terminal (and honours NO_COLOR).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Where the store (SQLite) lives.
    #[arg(long, global = true, value_name = "DIR", default_value = ".platformd")]
    pub state_dir: PathBuf,
    /// Log format on stderr; the level comes from PLATFORMD_LOG (default `warn`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// Make a token; it is printed once and only its hash is kept.
    Create {
        /// A name for who uses it (recorded as the actor of what it changes).
        name: String,
        /// `read` (the read endpoints) or `write` (also sync, approve, rollback, resume, wake).
        #[arg(long, value_enum, default_value_t = Scope::Read)]
        scope: Scope,
    },
    /// The tokens, their scopes and when each was last used.
    List,
    /// Revoke a token: it stops working at once, also for a running daemon.
    Revoke { name: String },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    Read,
    Write,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

// Parsed once per process: the daemon's many flags cost nothing worth boxing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Parse and check a stack; print diagnostics. Exits 1 on any error.
    Validate {
        /// The stack directory (contains platform.kdl).
        #[arg(default_value = ".")]
        stack: PathBuf,
        #[arg(long, value_enum, default_value_t = DiagnosticFormat::Text)]
        format: DiagnosticFormat,
    },
    /// Show what would change, in apply order, with cost and policy.
    Plan(PlanArgs),
    /// The stack's monthly cost estimate by team (with budgets), kind and resource.
    Cost {
        #[arg(default_value = ".")]
        stack: PathBuf,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// How many of the costliest resources the text report lists.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// The stack's templates: versions, parameters and docs (Markdown for a developer portal).
    Templates {
        #[arg(default_value = ".")]
        stack: PathBuf,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Print the dependency graph.
    Graph {
        #[arg(default_value = ".")]
        stack: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
        /// Show what ADDR needs and everything that depends on it (its blast radius).
        #[arg(long, value_name = "ADDR")]
        focus: Option<String>,
    },
    /// Apply a fresh plan of STACK, or a saved plan (`--plan FILE`).
    Apply {
        #[arg(default_value = ".")]
        stack: PathBuf,
        /// Apply this saved plan (refused as stale if the store moved since it was made).
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        /// Observe live state first and also correct drift (drift policy `correct`).
        #[arg(long)]
        refresh: bool,
        /// Apply even while a sync window forbids it (an emergency); recorded in history with
        /// the OS user and `--reason`.
        #[arg(long, requires = "reason")]
        override_window: bool,
        /// Why the window is overridden (required with `--override-window`).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Apply only ADDR and what it needs; the rest of the stack stays as it is.
        #[arg(long, value_name = "ADDR", num_args = 1.., conflicts_with = "plan")]
        target: Vec<String>,
        /// Replace ADDR even though nothing forces it (a protected one also needs
        /// --allow-destroy).
        #[arg(long, value_name = "ADDR", num_args = 1.., conflicts_with = "plan")]
        replace: Vec<String>,
        #[command(flatten)]
        options: ApplyOptions,
    },
    /// Adopt an object that exists outside platformd as the declared resource ADDRESS (as an
    /// `import` block would), and apply only it.
    Import {
        /// The declared resource, e.g. `bucket/logs`.
        address: String,
        /// The driver's id of the object: `Kind/namespace/name` on Kubernetes, the name in the
        /// account on AWS (`<stack>-<name>`), `kind/name.yaml` for the local driver.
        id: String,
        #[arg(default_value = ".")]
        stack: PathBuf,
        #[command(flatten)]
        options: ApplyOptions,
    },
    /// Observe live state and report drift, missing and orphaned resources.
    Drift {
        #[arg(default_value = ".")]
        stack: PathBuf,
        /// Exit 2 when anything is found.
        #[arg(long)]
        detailed_exitcode: bool,
        #[arg(long, value_enum, default_value_t = DiagnosticFormat::Text)]
        format: DiagnosticFormat,
    },
    /// List applied revisions (applies, rollbacks), newest last.
    History {
        #[arg(long, value_enum, default_value_t = DiagnosticFormat::Text)]
        format: DiagnosticFormat,
    },
    /// Roll back to an applied revision (plan shown first) and pin the stack there.
    Rollback {
        /// A revision id (or a unique prefix) from `platformd history`.
        revision: String,
        #[command(flatten)]
        options: ApplyOptions,
    },
    /// End a rollback pin: the next apply follows the stack again.
    Resume,
    /// Approve the plan the daemon holds for approval (`sync "manual"` or the platform's
    /// `approval` scope): exactly that plan, named by revision and optionally by hash.
    Approve {
        /// The revision waiting for approval (a prefix is enough).
        revision: String,
        /// Approve only if the waiting plan still has this hash (a prefix of at least 8).
        #[arg(long, value_name = "HASH")]
        plan_hash: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Named API tokens for the daemon, kept as hashes in the state directory.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Bring a resource the cost controller scaled down for being idle back now (with the GPU
    /// pool it runs on, when that is scaled down too).
    Wake {
        /// The resource's address, e.g. `ai-endpoint/support-llm`.
        address: String,
    },
    /// The operator UI: against a running daemon (--connect), or read-only on --state-dir.
    Tui {
        /// The daemon's API, e.g. http://127.0.0.1:7070.
        #[arg(long, value_name = "URL")]
        connect: Option<String>,
        /// The stack to open, of a daemon that follows many (without it, the UI lists them).
        #[arg(long, value_name = "NAME", requires = "connect")]
        stack: Option<String>,
        /// Bearer token for actions (or PLATFORMD_TOKEN).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// A PEM CA certificate to trust for an https:// daemon (besides the system's roots).
        #[arg(long, value_name = "FILE", requires = "connect")]
        ca_file: Option<PathBuf>,
    },
    /// Follow a git branch (or watch a directory), reconcile continuously, serve the HTTP API.
    Daemon {
        /// Follow the stacks this file lists, with their store (docs/SCALE_OUT.md), instead of
        /// the one of --repo.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["repo", "branch", "path"])]
        config: Option<PathBuf>,
        /// This replica's name among replicas sharing the configuration's store (default: the
        /// host name and the process id; on Kubernetes, the pod's name).
        #[arg(
            long,
            value_name = "NAME",
            env = "PLATFORMD_REPLICA",
            requires = "config"
        )]
        replica: Option<String>,
        /// A git URL (file://, https://, ssh://, git://) or a local directory to watch.
        #[arg(long, value_name = "URL|DIR", required_unless_present = "config")]
        repo: Option<String>,
        #[arg(long, default_value = "main")]
        branch: String,
        /// The stack's directory inside the repository.
        #[arg(long, value_name = "STACK", default_value = "")]
        path: String,
        /// How often to fetch the source.
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
        interval: std::time::Duration,
        /// How often to check for drift.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
        drift_interval: std::time::Duration,
        /// How often the cost controller reads utilisation from the platform's `metrics` source.
        #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
        utilisation_interval: std::time::Duration,
        /// The Prometheus-compatible query API the cost controller reads utilisation from
        /// (the stack's `metrics` block gives only its queries; docs/SECURITY.md).
        #[arg(long, value_name = "URL", value_parser = parse_metrics_url)]
        metrics_url: Option<String>,
        /// A file holding the bearer token for --metrics-url (read at every query).
        #[arg(long, value_name = "FILE", requires = "metrics_url")]
        metrics_token_file: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: std::net::SocketAddr,
        /// Bearer token for POST /api/v1/sync, /rollback, /resume.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Secret for the X-Hub-Signature-256 of POST /hooks/git.
        #[arg(long, value_name = "FILE")]
        webhook_secret_file: Option<PathBuf>,
        #[arg(long, default_value_t = 8)]
        parallelism: usize,
        /// Directory mode: how long the directory must be quiet before a revision is taken.
        #[arg(long, value_name = "DURATION", default_value = "300ms", value_parser = parse_duration)]
        debounce: std::time::Duration,
        /// Announce every finished apply: `slack=URL`, `webhook=URL` (signed with
        /// --notify-secret-file), `github=OWNER/REPO` (commit statuses; token in GITHUB_TOKEN).
        #[arg(long, value_name = "KIND=TARGET")]
        notify: Vec<String>,
        /// HMAC-SHA256 key for `webhook=` notifications (header X-Platformd-Signature-256).
        #[arg(long, value_name = "FILE")]
        notify_secret_file: Option<PathBuf>,
        /// Apply only signed commits: `head` (the tracked commit's signature) or `tag` (a
        /// signed annotated tag on it), checked against --allowed-signers / --trusted-keys.
        #[arg(long, value_name = "MODE")]
        verify_commits: Option<String>,
        /// Trusted SSH keys in git's allowed_signers form.
        #[arg(long, value_name = "FILE")]
        allowed_signers: Option<PathBuf>,
        /// With --verify-commits, apply a signed tip that does not descend from the applied
        /// revision (a reset or force-push of the branch); refused without it.
        #[arg(long, requires = "verify_commits")]
        allow_history_rewrite: bool,
        /// Trusted OpenPGP public keys (armored).
        #[arg(long, value_name = "FILE")]
        trusted_keys: Option<PathBuf>,
        /// Serve the API over HTTPS with this PEM certificate chain (with --tls-key).
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Mutating API requests each token may make per second (bursts of five times as many).
        #[arg(long, value_name = "N", default_value_t = 2.0)]
        api_rate_limit: f64,
        /// How long a client may take to send a request's headers, and how long a connection
        /// may wait idle for its next request.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
        http_header_timeout: std::time::Duration,
        /// How long a client may take to send a request's body.
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
        http_body_timeout: std::time::Duration,
        /// Open API connections at most; past it a new connection is closed at once.
        #[arg(long, value_name = "N", default_value_t = 256)]
        http_max_connections: usize,
        /// After SIGTERM and the last driver call, how long open API requests may take to
        /// finish before their connections are closed.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
        http_shutdown_grace: std::time::Duration,
    },
}

/// `90s`, `5m`, `1h30m`, `0s`, `300ms`.
fn parse_duration(s: &str) -> Result<std::time::Duration, planner::invalid::InvalidValue> {
    planner::units::parse_flag_duration(s)
}

/// An http:// or https:// URL without credentials (a token goes in --metrics-token-file).
fn parse_metrics_url(s: &str) -> Result<String, planner::invalid::InvalidValue> {
    let url = reqwest::Url::parse(s).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("an http:// or https:// URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL: give the token with --metrics-token-file".into());
    }
    Ok(s.to_string())
}

/// Options of every command that changes the world (`apply`, `rollback`).
#[derive(clap::Args)]
pub struct ApplyOptions {
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Driver calls in flight at once (also the per-driver limit).
    #[arg(long, default_value_t = 8)]
    pub parallelism: usize,
    /// Allow deleting or replacing a protected resource.
    #[arg(long, value_name = "ADDR", num_args = 1..)]
    pub allow_destroy: Vec<String>,
    /// Wait this long for another applier to finish (e.g. `30s`, `5m`).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub lock_timeout: std::time::Duration,
}

#[derive(clap::Args)]
pub struct PlanArgs {
    #[arg(default_value = ".")]
    pub stack: PathBuf,
    /// Plan the change from git revision REV (read from the object database; no store, no
    /// credentials). The PR flow: `--base origin/main`.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// The desired revision; defaults to the working tree.
    #[arg(long, value_name = "REV", requires = "base")]
    pub head: Option<String>,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Also save the plan (JSON, with what it was made against) to FILE.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 2 when the plan has changes (0 when it has none).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Allow deleting or replacing a protected resource.
    #[arg(long, value_name = "ADDR", num_args = 1..)]
    pub allow_destroy: Vec<String>,
    /// Observe live state first: report drift and plan its correction.
    #[arg(long, conflicts_with = "base")]
    pub refresh: bool,
    /// Plan only ADDR and what it needs.
    #[arg(long, value_name = "ADDR", num_args = 1.., conflicts_with = "base")]
    pub target: Vec<String>,
    /// Plan ADDR as replaced even though nothing forces it.
    #[arg(long, value_name = "ADDR", num_args = 1.., conflicts_with = "base")]
    pub replace: Vec<String>,
    /// Post the Markdown plan on the pull request, updating platformd's earlier comment for
    /// this stack instead of adding one (token in GITHUB_TOKEN).
    #[arg(long, requires = "base")]
    pub post_comment: bool,
    /// The repository of the pull request (default: GITHUB_REPOSITORY).
    #[arg(long, value_name = "OWNER/REPO")]
    pub github_repo: Option<String>,
    /// The pull request's number (default: from GITHUB_REF `refs/pull/N/…`).
    #[arg(long, value_name = "N")]
    pub pr: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagnosticFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    if !matches!(cli.command, Command::Daemon { .. } | Command::Tui { .. }) {
        end_quietly_on_a_closed_pipe();
    }
    init_logging(cli.log_format);
    let colour = cli::output::colour_enabled(cli.color);
    let state_dir = cli.state_dir;
    let result = match cli.command {
        Command::Validate { stack, format } => commands::validate(&stack, format, colour),
        Command::Plan(args) => commands::plan(&args, &state_dir, colour),
        Command::Cost { stack, format, top } => {
            commands::cost(&stack, &state_dir, format, top, colour)
        }
        Command::Templates { stack, format } => commands::templates(&stack, format, colour),
        Command::Graph {
            stack,
            format,
            focus,
        } => commands::graph(&stack, format, focus.as_deref(), colour),
        Command::Apply {
            stack,
            plan,
            refresh,
            override_window,
            reason,
            target,
            replace,
            options,
        } => state::apply(
            state::ApplyArgs {
                stack: &stack,
                plan_file: plan.as_deref(),
                state_dir: &state_dir,
                refresh,
                window_override: reason.filter(|_| override_window),
                options,
                replace,
                targets: target,
                import: None,
            },
            colour,
        ),
        Command::Import {
            address,
            id,
            stack,
            options,
        } => state::apply(
            state::ApplyArgs {
                stack: &stack,
                plan_file: None,
                state_dir: &state_dir,
                refresh: false,
                window_override: None,
                options,
                replace: Vec::new(),
                targets: Vec::new(),
                import: Some((address, id)),
            },
            colour,
        ),
        Command::Drift {
            stack,
            detailed_exitcode,
            format,
        } => state::drift(
            &stack,
            &state_dir,
            detailed_exitcode,
            format == DiagnosticFormat::Json,
            colour,
        ),
        Command::History { format } => state::history(&state_dir, format == DiagnosticFormat::Json),
        Command::Rollback { revision, options } => {
            state::rollback(&revision, &state_dir, options, colour)
        }
        Command::Resume => state::resume(&state_dir),
        Command::Wake { address } => state::wake(&state_dir, &address, colour),
        Command::Token { action } => state::token(&state_dir, action),
        Command::Approve {
            revision,
            plan_hash,
            yes,
        } => state::approve(&state_dir, &revision, plan_hash.as_deref(), yes),
        Command::Tui {
            connect,
            stack,
            token_file,
            ca_file,
        } => cli::tui::run(
            connect.as_deref(),
            stack.as_deref(),
            token_file.as_deref(),
            ca_file.as_deref(),
            &state_dir,
        ),
        Command::Daemon {
            config,
            replica,
            repo,
            branch,
            path,
            interval,
            drift_interval,
            utilisation_interval,
            metrics_url,
            metrics_token_file,
            listen,
            token_file,
            webhook_secret_file,
            parallelism,
            debounce,
            notify,
            notify_secret_file,
            verify_commits,
            allowed_signers,
            trusted_keys,
            allow_history_rewrite,
            tls_cert,
            tls_key,
            api_rate_limit,
            http_header_timeout,
            http_body_timeout,
            http_max_connections,
            http_shutdown_grace,
        } => {
            keep_freed_memory_for_reuse();
            cli::daemon::run(cli::daemon::DaemonArgs {
                config,
                replica,
                repo: repo.unwrap_or_default(),
                branch,
                path,
                interval,
                drift_interval,
                utilisation_interval,
                metrics: metrics_url.map(|url| daemon::utilisation::MetricsEndpoint {
                    url,
                    bearer_token_file: metrics_token_file,
                }),
                state_dir: state_dir.clone(),
                listen,
                token_file,
                webhook_secret_file,
                parallelism,
                debounce,
                notify,
                notify_secret_file,
                verify_commits,
                allowed_signers,
                trusted_keys,
                allow_history_rewrite,
                tls_cert,
                tls_key,
                api_rate_limit,
                http: daemon::serve::ServeLimits {
                    header_timeout: http_header_timeout,
                    body_timeout: http_body_timeout,
                    max_connections: http_max_connections,
                    shutdown_grace: http_shutdown_grace,
                    ..daemon::serve::ServeLimits::default()
                },
            })
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let err = full_disk_named(err, &state_dir);
            let mut message = format!("{err}");
            for cause in err.chain().skip(1) {
                message.push_str(&format!(": {cause}"));
            }
            eprintln!("{}: {message}", cli::output::paint(colour, "1;31", "error"));
            ExitCode::from(1)
        }
    }
}

/// `--help` and `--version` succeed; every other mistake in the arguments exits 1, an error
/// like any other (2 means "changes present" to a CI job reading `--detailed-exitcode`).
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let _ = err.print();
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

/// A command's output piped into `head` (or a closed terminal) ends the command quietly, as a
/// Unix tool does, instead of a panic on the failed write: the Rust runtime ignores SIGPIPE,
/// so its default action comes back here. The daemon and the UI keep ignoring it: a peer that
/// goes away must not stop them (their sockets report the closed pipe as an error).
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: restoring a signal's default disposition, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A store I/O error met while the disk that holds the state directory is full is reported as a
/// full disk (SQLite names only some of those failures so).
fn full_disk_named(err: anyhow::Error, state_dir: &std::path::Path) -> anyhow::Error {
    use daemon::ops::OpsError;
    use daemon::store::StoreError;
    let io = err.chain().find_map(|cause| {
        match (
            cause.downcast_ref::<StoreError>(),
            cause.downcast_ref::<OpsError>(),
        ) {
            (Some(StoreError::Io(detail)), _)
            | (_, Some(OpsError::Store(StoreError::Io(detail)))) => Some(detail.clone()),
            _ => None,
        }
    });
    match io.map(|detail| StoreError::Io(detail).in_dir(state_dir)) {
        Some(e @ StoreError::DiskFull(_)) => anyhow::Error::new(e),
        _ => err,
    }
}

fn init_logging(format: LogFormat) {
    use std::str::FromStr;
    let level = std::env::var("PLATFORMD_LOG").unwrap_or_else(|_| "warn".into());
    let filter = tracing_subscriber::filter::Targets::from_str(&level).unwrap_or_else(|_| {
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::WARN)
    });
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry.with(fmt.json()).try_init(),
        LogFormat::Text => registry.with(fmt).try_init(),
    };
}
