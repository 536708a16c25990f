//! The SQLite store under `--state-dir` (WAL). Schema changes are numbered migrations in
//! `migrations/`; a newer binary migrates an older store in place, and a store written by a
//! newer binary is refused. Normal operation never deletes history: revisions, snapshots,
//! applies, journal, plans, drift findings and events are append-only; only the current
//! per-resource state (`resources`) and the lease are updated in place.

mod approvals;
mod idle;
mod journal;
mod lease;
mod observed;
mod outbox;
mod postgres;
pub mod replicas;
mod sql;
mod tokens;
mod values;

pub use idle::{Saving, ScaledDown};
pub use lease::{LEASE_TTL, Lease, LeaseGuard};
pub use tokens::{ApiToken, TokenScope, new_token, token_hash};

use api::{ApplyReason, ApplyRecord, ApplyStatus, string_enum};
use drivers::{DesiredResource, ObjectRef, Outputs};
use planner::Snapshot;
use planner::snapshot::ResourceSnapshot;
use rusqlite::{Connection, OpenFlags};
use sha2::Digest;
use sql::{Conn, Dialect, args, write_transaction};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_event_data.sql"),
    include_str!("migrations/0003_drift_scans.sql"),
    include_str!("migrations/0004_inventory.sql"),
    include_str!("migrations/0005_health.sql"),
    include_str!("migrations/0006_approvals.sql"),
    include_str!("migrations/0007_outbox.sql"),
    include_str!("migrations/0008_actor.sql"),
    include_str!("migrations/0009_idle_shutdown.sql"),
    include_str!("migrations/0010_api_tokens.sql"),
    include_str!("migrations/0011_fencing.sql"),
];

/// A notification due for delivery: the finished apply it is about, and to which target.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub target: String,
    pub attempts: i64,
    pub apply: ApplyRecord,
}

/// A request for approval of one plan, and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub revision: String,
    pub plan_hash: String,
    pub summary: String,
    pub requested_at: i64,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
    pub applied_at: Option<i64>,
}

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub const DB_FILE: &str = "platformd.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store in {dir}: {source}")]
    Open { dir: String, source: std::io::Error },
    #[error(
        "the store in {dir} has schema version {found}, newer than this platformd supports ({supported}); upgrade platformd"
    )]
    TooNew {
        dir: String,
        found: i64,
        supported: i64,
    },
    #[error(
        "the store in {dir} has schema version {found} and this platformd reads version {supported}; open it once with a command that writes (apply, the daemon) to migrate it"
    )]
    NeedsMigration {
        dir: String,
        found: i64,
        supported: i64,
    },
    #[error("no store in {0}: nothing has been applied yet")]
    Missing(String),
    #[error("store: {0}")]
    Sqlite(rusqlite::Error),
    /// The state directory or its database cannot be written by this user.
    #[error(
        "the store cannot be written: the state directory or its database file is read-only for this user ({0}); nothing was changed: make the state directory writable for this user, or pass --state-dir with one that is"
    )]
    ReadOnly(String),
    /// The disk that holds the state directory is full.
    #[error(
        "the store cannot be written: the disk that holds the state directory is full ({0}); nothing was lost: free space there and run the command again (an interrupted apply resumes where it stopped)"
    )]
    DiskFull(String),
    /// Reading or writing the database failed below SQLite (a full disk is the usual cause).
    #[error(
        "the store cannot be read or written: an I/O error ({0}); nothing was lost: check the disk that holds the state directory (a full disk is the usual cause) and run the command again"
    )]
    Io(String),
    /// The PostgreSQL server refused a statement.
    #[error("store (PostgreSQL): {0}")]
    Postgres(String),
    /// The PostgreSQL server cannot be reached; nothing of the statement's transaction was
    /// kept, and the next statement connects again.
    #[error(
        "the store cannot be reached ({0}); nothing was changed: platformd connects again on its next attempt"
    )]
    Unavailable(String),
    /// A journal intent was refused: the lease it was to be written under is no longer this
    /// process's (it expired and another applier took it over).
    #[error(
        "the lease of epoch {0} is no longer ours (another applier took the stack over); nothing was written and no driver was called"
    )]
    LeaseLost(i64),
    #[error("store holds invalid data: {0}")]
    Corrupt(String),
    #[error(
        "a token named `{0}` exists; revoke it first (`platformd token revoke {0}`) or choose another name"
    )]
    TokenExists(String),
    #[error(
        "the store {path} is damaged ({detail}); nothing was changed: restore it from a backup, or move the state directory aside to start with an empty history"
    )]
    Damaged { path: String, detail: String },
    #[error(
        "the state directory is locked by {holder} (pid {pid} on {host}, since {since}); wait for it, or pass --lock-timeout"
    )]
    Locked {
        holder: String,
        pid: i64,
        host: String,
        since: String,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Read-only, full and failing disks are named as such, with what to do; everything else stays
/// a plain SQLite error.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        let detail = || match &e {
            rusqlite::Error::SqliteFailure(f, Some(message)) => {
                format!("{message}; SQLite code {}", f.extended_code)
            }
            other => other.to_string(),
        };
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ReadOnly) => StoreError::ReadOnly(detail()),
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::DiskFull(detail()),
            Some(rusqlite::ErrorCode::SystemIoFailure) => StoreError::Io(detail()),
            _ => StoreError::Sqlite(e),
        }
    }
}

/// This process as the holder of a running apply: `pid 4242 on node-a`. Replicas on other
/// hosts may share pids.
fn applier_id() -> String {
    format!("pid {} on {}", std::process::id(), lease::hostname())
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `2026-11-22 20:09:35 UTC` from Unix seconds.
pub fn format_time(secs: i64) -> String {
    planner::render::format_unix_time(secs)
}

/// The store: one connection per process (to the SQLite file of a state directory, or to a
/// stack's schema in PostgreSQL), shared by every clone of this handle (the CLI, the reconcile
/// loop, the HTTP API and the lease renewer), opened and migrated once.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Conn>>,
    location: Arc<Location>,
    /// The lease epoch journal intents are written under ([`Store::fenced`]).
    epoch: Option<i64>,
    /// Until when this process's lease is known held, without asking the database.
    lease_clock: Arc<lease::LeaseClock>,
    /// The PostgreSQL schema of this stack, switched to whenever the (possibly shared)
    /// connection is taken.
    schema: Option<Arc<str>>,
}

/// A few PostgreSQL connections shared by the stores of many stacks in one process: each
/// stack uses one of them (by its name), switching the connection to its schema while it holds
/// it, so a transaction never mixes with another stack's statements. A replica following 100
/// stacks needs a handful of connections, not 100.
#[derive(Clone)]
pub struct PostgresPool {
    url: String,
    password: Option<String>,
    conns: Vec<Arc<Mutex<Conn>>>,
}

impl PostgresPool {
    /// `size` connections (at least one) to the database at `url`.
    pub fn connect(url: &str, password: Option<&str>, size: usize) -> Result<PostgresPool> {
        let conns = (0..size.max(1))
            .map(|_| {
                postgres::PgClient::connect(url, password, "public")
                    .map(|c| Arc::new(Mutex::new(Conn::Postgres(c))))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PostgresPool {
            url: url.to_string(),
            password: password.map(str::to_string),
            conns,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `platformd.db` in a state directory (the embedded default).
    Dir(PathBuf),
    /// One stack's schema in a PostgreSQL database shared by replicas.
    Postgres {
        /// `host:port/database`, without credentials.
        server: String,
        schema: String,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            Location::Postgres { server, schema } => {
                write!(f, "postgres://{server} (schema {schema})")
            }
        }
    }
}

/// The PostgreSQL schema of a stack's store: every stack has the same tables in a schema of
/// its own.
pub fn postgres_schema(stack: &str) -> String {
    format!("platformd/{stack}")
}

string_enum! {
    /// What a journal intent asks of a driver.
    pub enum JournalAction {
        Create = "create",
        Update = "update",
        Replace = "replace",
        Delete = "delete",
        /// An existing object adopted, then applied (`import`).
        Import = "import",
        /// Ownership marks taken off; nothing deleted (`removed`).
        Forget = "forget",
    }
}

string_enum! {
    /// How a journal intent ended.
    pub enum IntentResult {
        Ok = "ok",
        Failed = "failed",
        /// Interrupted (crash, kill) before the call's outcome was known; re-planned.
        Abandoned = "abandoned",
    }
}

impl JournalAction {
    pub fn of(action: planner::plan::Action) -> Option<JournalAction> {
        use planner::plan::Action;
        match action {
            Action::Create => Some(JournalAction::Create),
            Action::Update => Some(JournalAction::Update),
            Action::Replace => Some(JournalAction::Replace),
            Action::Delete => Some(JournalAction::Delete),
            Action::Import => Some(JournalAction::Import),
            Action::Forget => Some(JournalAction::Forget),
            Action::NoOp => None,
        }
    }
}

/// A journal row as stored.
struct JournalRow {
    id: i64,
    apply_id: i64,
    address: String,
    action: String,
    driver: String,
    attempts: i64,
    result: Option<String>,
    desired: Option<String>,
    epoch: Option<i64>,
}

/// One journal row, for inspection (tests, tooling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub id: i64,
    pub apply_id: i64,
    pub address: String,
    pub action: JournalAction,
    pub attempts: i64,
    /// `None` while the call's outcome is unknown.
    pub result: Option<IntentResult>,
    /// The lease epoch it was written under (`None`: unfenced, or before schema 11).
    pub epoch: Option<i64>,
}

/// An unfinished journal entry: a driver call whose outcome is unknown.
#[derive(Debug, Clone)]
pub struct OpenIntent {
    pub id: i64,
    pub apply_id: i64,
    pub address: String,
    pub action: JournalAction,
    pub driver: String,
    pub desired: Option<StoredResource>,
}

/// What the store keeps for an applied resource.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredResource {
    pub snapshot: ResourceSnapshot,
    pub desired: DesiredResource,
}

/// The state directory (created 0700) and the database with its log files (0600): the store
/// holds plans, token hashes and commit messages, readable by the daemon's user only. SQLite
/// gives its `-wal` and `-shm` files the database file's mode, so the file is created before
/// SQLite opens it; files an older platformd left readable to others are tightened.
fn private_files(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    // Best effort from here: a directory this user cannot write is opened read-only, and
    // SQLite reports what it cannot open.
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(DB_FILE));
        for suffix in ["", "-wal", "-shm"] {
            let path = dir.join(format!("{DB_FILE}{suffix}"));
            if let Ok(meta) = std::fs::symlink_metadata(&path)
                && meta.is_file()
                && meta.permissions().mode() & 0o077 != 0
                && let Err(e) =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot make the store readable by its owner only");
            }
        }
    }
    Ok(())
}

/// Marks an intent done and moves the generation: every state change goes through here, inside
/// the transaction that changes `resources`.
fn close_intent_and_bump_generation(tx: &Conn, journal_id: i64) -> Result<()> {
    tx.execute(
        "UPDATE journal SET result = ?1, result_at = ?2 WHERE id = ?3",
        args![IntentResult::Ok.as_str(), now(), journal_id],
    )?;
    tx.execute(
        "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'generation'",
        args![],
    )?;
    Ok(())
}

/// Whether this process still holds the lease at `epoch`. On PostgreSQL the row is locked for
/// the rest of the caller's transaction, so a take-over waits until it ends.
fn lease_held(conn: &Conn, epoch: i64) -> Result<bool> {
    let lock = match conn.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR SHARE",
    };
    Ok(conn
        .query_opt(
            &format!(
                "SELECT epoch FROM lease WHERE id = 1 AND epoch = ?1 AND pid = ?2 AND host = ?3 AND expires_at >= {}{lock}",
                lease::db_now(conn.dialect())
            ),
            args![epoch, std::process::id() as i64, lease::hostname()],
        )?
        .is_some())
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A stored state string as its enum; an unknown one is corrupt data, not a panic.
fn parse_state<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse().map_err(StoreError::Corrupt)
}

fn generation_of(conn: &Conn) -> Result<u64> {
    let v: String = conn.query_row(
        "SELECT value FROM meta WHERE key = 'generation'",
        args![],
        |r| r.get(0),
    )?;
    Ok(v.parse().unwrap_or(0))
}

fn meta_of(conn: &Conn, key: &str) -> Result<Option<String>> {
    conn.query_row_opt("SELECT value FROM meta WHERE key = ?1", args![key], |r| {
        r.get(0)
    })
}

fn set_meta_of(conn: &Conn, key: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(v) => conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            args![key, v],
        )?,
        None => conn.execute("DELETE FROM meta WHERE key = ?1", args![key])?,
    };
    Ok(())
}

/// The meta key holding the driver settings of the applied revision, as JSON.
const APPLIED_DRIVERS: &str = "applied_drivers";

/// The driver settings of a stored snapshot, as JSON, read without building the snapshot (its
/// resources are most of its text).
fn snapshot_drivers(conn: &Conn, revision: &str) -> Result<Option<String>> {
    #[derive(serde::Deserialize)]
    struct DriversOnly {
        #[serde(default)]
        drivers: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    }
    let text: Option<String> = conn.query_row_opt(
        "SELECT snapshot FROM snapshots WHERE revision = ?1",
        args![revision],
        |r| r.get(0),
    )?;
    text.map(|t| {
        let only: DriversOnly = serde_json::from_str(&t).map_err(corrupt)?;
        serde_json::to_string(&only.drivers).map_err(corrupt)
    })
    .transpose()
}

fn event_of(conn: &Conn, kind: &str, message: &str, address: Option<&str>) -> Result<()> {
    conn.execute(
        "INSERT INTO events (at, kind, message, address) VALUES (?1, ?2, ?3, ?4)",
        args![now(), kind, message, address],
    )?;
    Ok(())
}

/// Whether the database's write-ahead log holds pages not yet in the database file.
fn wal_has_content(db: &Path) -> bool {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).is_ok_and(|m| m.len() > 0)
}

/// A path as the path part of an SQLite `file:` URI.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A database file SQLite cannot read (not a database, corrupt pages) is named as damaged, with
/// what to do, instead of a bare SQLite message.
fn damaged(dir: &Path, e: StoreError) -> StoreError {
    let unreadable = matches!(
        &e,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    );
    if unreadable {
        StoreError::Damaged {
            path: dir.join(DB_FILE).display().to_string(),
            detail: e.to_string().trim_start_matches("store: ").to_string(),
        }
    } else {
        e.in_dir(dir)
    }
}

/// Bytes an unprivileged writer may still use on the filesystem that holds `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `stat` is written by statvfs before it is read.
    if unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    // The field types differ by platform (u64 here).
    #[allow(clippy::unnecessary_cast)]
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

impl StoreError {
    /// An I/O error of the store in `dir` named as a full disk when that filesystem has (almost)
    /// no room left: SQLite reports a full disk met while growing its shared-memory or log file
    /// as a plain I/O error.
    pub fn in_dir(self, dir: &Path) -> StoreError {
        match self {
            StoreError::Io(detail) if free_bytes(dir).is_some_and(|free| free < 1 << 20) => {
                StoreError::DiskFull(detail)
            }
            other => other,
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, migrating an older schema. Call once per
    /// process and share the handle.
    pub fn open(dir: &Path) -> Result<Store> {
        Store::open_writable(dir).map_err(|e| damaged(dir, e))
    }

    fn open_writable(dir: &Path) -> Result<Store> {
        let open_error = |source| StoreError::Open {
            dir: dir.display().to_string(),
            source,
        };
        private_files(dir).map_err(open_error)?;
        let conn = Connection::open(dir.join(DB_FILE))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // Switching a new database to WAL needs a moment of exclusive access; another process
        // opening the same new store at once can make it busy.
        let mut attempts = 0;
        while let Err(e) = conn.pragma_update(None, "journal_mode", "WAL") {
            attempts += 1;
            if attempts > 50
                || !matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                )
            {
                return Err(e.into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let conn = Conn::Sqlite(conn);
        let location = Location::Dir(dir.to_path_buf());
        migrate(&conn, &location)?;
        Ok(Store::on(conn, location))
    }

    /// A handle on its own connection, unfenced.
    fn on(conn: Conn, location: Location) -> Store {
        Store {
            conn: Arc::new(Mutex::new(conn)),
            location: Arc::new(location),
            epoch: None,
            lease_clock: Arc::default(),
            schema: None,
        }
    }

    /// Opens (creating if needed) the store of `stack` in the PostgreSQL database at `url`
    /// (`postgres://user:password@host:port/database`), migrating an older schema. Replicas
    /// share it; each stack has a schema of its own.
    ///
    /// `password`, when given, is used instead of one in the URL (it comes from a secret
    /// reference, never from the configuration file).
    pub fn open_postgres(url: &str, password: Option<&str>, stack: &str) -> Result<Store> {
        let schema = postgres_schema(stack);
        let client = postgres::PgClient::connect(url, password, &schema)?;
        let location = Location::Postgres {
            server: client.server.clone(),
            schema,
        };
        let conn = Conn::Postgres(client);
        migrate(&conn, &location)?;
        Ok(Store::on(conn, location))
    }

    /// Opens (creating and migrating) the store of `stack` on one of `pool`'s connections.
    pub fn open_in_pool(pool: &PostgresPool, stack: &str) -> Result<Store> {
        let schema = postgres_schema(stack);
        let digest = sha2::Sha256::digest(stack.as_bytes());
        let index = usize::from(digest[0]) % pool.conns.len();
        let conn = pool.conns[index].clone();
        let location = {
            let guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            let Conn::Postgres(client) = &*guard else {
                return Err(StoreError::Postgres(
                    "a pool holds PostgreSQL connections".into(),
                ));
            };
            client.use_schema(&schema)?;
            let location = Location::Postgres {
                server: client.server.clone(),
                schema: schema.clone(),
            };
            migrate(&guard, &location)?;
            location
        };
        Ok(Store {
            conn,
            location: Arc::new(location),
            epoch: None,
            lease_clock: Arc::default(),
            schema: Some(Arc::from(schema.as_str())),
        })
    }

    /// Opens an existing store for reading only: no directory is created, nothing is migrated,
    /// the journal mode is left alone. Writes through this handle fail.
    pub fn open_read_only(dir: &Path) -> Result<Store> {
        if !Store::exists(dir) {
            return Err(StoreError::Missing(dir.display().to_string()));
        }
        let path = dir.join(DB_FILE);
        let conn = match Store::read_only_connection(&path, false) {
            // A WAL database needs its shared-memory file, which a reader cannot create in a
            // directory it cannot write or on a full disk. Without a write-ahead log the
            // database file holds everything, so it can be read as immutable instead.
            Err(
                StoreError::ReadOnly(_)
                | StoreError::DiskFull(_)
                | StoreError::Io(_)
                | StoreError::Sqlite(_),
            ) if !wal_has_content(&path) => Store::read_only_connection(&path, true)?,
            other => other?,
        };
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let location = Location::Dir(dir.to_path_buf());
        refuse_unknown_version(found, &location)?;
        if found < SCHEMA_VERSION {
            return Err(StoreError::NeedsMigration {
                dir: dir.display().to_string(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(Store::on(Conn::Sqlite(conn), location))
    }

    /// A read-only connection that has read the schema version (where a read-only directory
    /// shows).
    fn read_only_connection(path: &Path, immutable: bool) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            Connection::open_with_flags(
                format!("file:{}?immutable=1", uri_path(path)),
                flags | OpenFlags::SQLITE_OPEN_URI,
            )?
        } else {
            Connection::open_with_flags(path, flags)?
        };
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
        Ok(conn)
    }

    /// Opens the store of a command that only reads it (`plan`, `history`): writable when it
    /// can be (an older schema is migrated then), read-only when the state directory is
    /// read-only for this user.
    pub fn open_for_reading(dir: &Path) -> Result<Store> {
        match Store::open(dir) {
            // Reading still works where writing does not.
            Err(StoreError::ReadOnly(_) | StoreError::DiskFull(_) | StoreError::Io(_)) => {
                Store::open_read_only(dir)
            }
            Err(StoreError::Sqlite(e))
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) =>
            {
                Store::open_read_only(dir)
            }
            other => other,
        }
    }

    /// Opens the store of a command that needs something to have been applied.
    pub fn open_existing(dir: &Path) -> Result<Store> {
        if !Store::exists(dir) {
            return Err(StoreError::Missing(dir.display().to_string()));
        }
        Store::open(dir)
    }

    /// Whether a store exists in `dir` (without creating one).
    pub fn exists(dir: &Path) -> bool {
        dir.join(DB_FILE).exists()
    }

    /// This handle with journal intents fenced by the lease of `epoch`: an intent is written
    /// only while that lease is still this process's, in the same statement that checks it.
    pub fn fenced(&self, epoch: i64) -> Store {
        Store {
            epoch: Some(epoch),
            ..self.clone()
        }
    }

    /// The epoch this handle's intents are fenced by, if any.
    pub fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    /// Refuses a write of a fenced handle whose lease has moved on, inside the write's
    /// transaction (on PostgreSQL the lease row stays locked until it ends, so a take-over
    /// waits for the write or the write sees the take-over).
    fn fence(&self, tx: &Conn) -> Result<()> {
        match self.epoch {
            Some(epoch) if !lease_held(tx, epoch)? => Err(StoreError::LeaseLost(epoch)),
            _ => Ok(()),
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    fn conn(&self) -> MutexGuard<'_, Conn> {
        // Waiting for another caller's transaction is a blocking wait like a round trip.
        let guard = match self.conn.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => postgres::off_the_async_workers(|| {
                self.conn.lock().unwrap_or_else(|e| e.into_inner())
            }),
        };
        if let (Some(schema), Conn::Postgres(client)) = (&self.schema, &*guard) {
            // A failure here shows again, as the store's error, at the statement that follows.
            if let Err(e) = client.use_schema(schema) {
                tracing::debug!(error = %e, "cannot switch the store connection's schema");
            }
        }
        guard
    }

    pub fn schema_version(&self) -> Result<i64> {
        schema_version_of(&self.conn())
    }

    pub fn generation(&self) -> Result<u64> {
        generation_of(&self.conn())
    }

    /// The revision most recently applied in full (rollback target of "now").
    pub fn applied_revision(&self) -> Result<Option<String>> {
        meta_of(&self.conn(), "applied_revision")
    }

    pub fn stack_name(&self) -> Result<Option<String>> {
        meta_of(&self.conn(), "stack")
    }

    pub fn pinned_revision(&self) -> Result<Option<String>> {
        meta_of(&self.conn(), "pinned_revision")
    }

    /// Pins the stack to `revision` (a rollback), or ends the pin; `tip` is the source's
    /// revision when pinned (a different one ends the pin). One transaction with its event.
    pub fn set_pin(&self, revision: Option<&str>, tip: Option<&str>) -> Result<()> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        set_meta_of(&tx, "pinned_revision", revision)?;
        set_meta_of(&tx, "pinned_at_tip", tip)?;
        match revision {
            Some(r) => event_of(&tx, "pin", &format!("pinned to {r} by rollback"), None)?,
            None => event_of(
                &tx,
                "resume",
                "pin removed; following the stack again",
                None,
            )?,
        }
        tx.commit()?;
        Ok(())
    }

    /// The source revision that was current when the stack was pinned: a different one ends the
    /// pin.
    pub fn pinned_at_tip(&self) -> Result<Option<String>> {
        meta_of(&self.conn(), "pinned_at_tip")
    }

    pub fn event(&self, kind: &str, message: &str, address: Option<&str>) -> Result<()> {
        event_of(&self.conn(), kind, message, address)
    }

    /// Records a revision with its commit metadata; a revision seen again keeps its first row.
    pub fn record_revision(&self, revision: &api::Revision) -> Result<()> {
        self.conn().execute(
            "INSERT INTO revisions (revision, source, author, message, seen_at, valid, errors) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (revision) DO NOTHING",
            args![
                revision.revision,
                revision.source,
                revision.author,
                revision.message,
                now(),
                revision.valid,
                revision.errors
            ],
        )?;
        Ok(())
    }

    /// Every revision seen, newest first.
    pub fn revisions(&self, limit: usize) -> Result<Vec<api::Revision>> {
        let conn = self.conn();
        let applied = meta_of(&conn, "applied_revision")?;
        conn.query_map(
            "SELECT r.revision, r.source, r.author, r.message, r.seen_at, r.valid, r.errors,
                    EXISTS (SELECT 1 FROM applies a WHERE a.revision = r.revision AND a.status = 'succeeded')
             FROM revisions r ORDER BY r.id DESC LIMIT ?1",
            args![limit as i64],
            |r| {
                let revision: String = r.get(0)?;
                Ok(api::Revision {
                    current: applied.as_deref() == Some(revision.as_str()),
                    revision,
                    source: r.get(1)?,
                    author: r.get(2)?,
                    message: r.get(3)?,
                    seen_at: r.get(4)?,
                    valid: r.get(5)?,
                    errors: r.get(6)?,
                    applied: r.get(7)?,
                })
            },
        )
    }

    /// A revision whose plan had nothing to change is in force as it is: recorded as a
    /// (trivially) succeeded apply, so it is in the history and a rollback target.
    pub fn record_applied_without_changes(
        &self,
        revision: &str,
        snapshot: &Snapshot,
    ) -> Result<()> {
        self.store_snapshot(revision, snapshot)?;
        let id = self.begin_apply(revision, ApplyReason::Apply, None, "platformd daemon", None)?;
        self.finish_apply(id, ApplyStatus::Succeeded, "no changes", &snapshot.stack)
    }

    pub fn record_plan(&self, revision: Option<&str>, plan_json: &str) -> Result<i64> {
        self.conn().query_row(
            "INSERT INTO plans (created_at, revision, plan) VALUES (?1, ?2, ?3) RETURNING id",
            args![now(), revision, plan_json],
            |r| r.get(0),
        )
    }

    pub fn store_snapshot(&self, revision: &str, snapshot: &Snapshot) -> Result<()> {
        let json = serde_json::to_string(snapshot).map_err(corrupt)?;
        self.conn().execute(
            "INSERT INTO snapshots (revision, snapshot, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (revision) DO NOTHING",
            args![revision, json, now()],
        )?;
        Ok(())
    }

    /// The JSON column a one-parameter query selects, decoded; `None` without a row.
    fn json_row<T: serde::de::DeserializeOwned>(&self, sql: &str, key: &str) -> Result<Option<T>> {
        let json: Option<String> = self.conn().query_row_opt(sql, args![key], |r| r.get(0))?;
        json.map(|j| serde_json::from_str(&j).map_err(corrupt))
            .transpose()
    }

    /// The stored snapshot of a revision, by its full id.
    pub fn snapshot(&self, revision: &str) -> Result<Option<Snapshot>> {
        self.json_row(
            "SELECT snapshot FROM snapshots WHERE revision = ?1",
            revision,
        )
    }

    /// The last applied state as a snapshot: what the next plan starts from.
    pub fn prior_snapshot(&self) -> Result<Snapshot> {
        let stack = self.stack_name()?.unwrap_or_default();
        let mut snapshot = Snapshot::empty(&stack);
        // Only what a plan compares: each resource's snapshot (its spec stays JSON text), not
        // the driver's desired form, which is a parsed tree and was most of a no-op plan's
        // time at 10,000 resources (`docs/PERFORMANCE.md`).
        // In the table's own order, sorted here: `ORDER BY address` walked the address index
        // and looked every row up in the table from it.
        let mut rows =
            self.conn()
                .query_map("SELECT address, snapshot FROM resources", args![], |r| {
                    Ok(Some((
                        r.get::<String>(0)?,
                        serde_json::from_str(r.text(1)?).map_err(corrupt)?,
                    )))
                })?;
        // The order is found over positions, so each entry (hundreds of bytes) moves once.
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_unstable_by(|&a, &b| {
            let address = |i: usize| rows[i].as_ref().map(|(address, _)| address);
            address(a).cmp(&address(b))
        });
        snapshot.resources = order.into_iter().filter_map(|i| rows[i].take()).collect();
        // The settings the applied revision was made with; a store that never recorded them
        // reads them from that revision's snapshot once.
        let conn = self.conn();
        let drivers = match meta_of(&conn, APPLIED_DRIVERS)? {
            Some(drivers) => Some(drivers),
            None => match meta_of(&conn, "applied_revision")? {
                Some(revision) => snapshot_drivers(&conn, &revision)?,
                None => None,
            },
        };
        if let Some(drivers) = drivers {
            snapshot.drivers = serde_json::from_str(&drivers).map_err(corrupt)?;
        }
        Ok(snapshot)
    }

    pub fn resources(&self) -> Result<Vec<(String, StoredResource)>> {
        self.conn().query_map(
            "SELECT address, snapshot, desired FROM resources ORDER BY address",
            args![],
            |r| {
                Ok((
                    r.get(0)?,
                    StoredResource {
                        snapshot: serde_json::from_str(r.text(1)?).map_err(corrupt)?,
                        desired: serde_json::from_str(r.text(2)?).map_err(corrupt)?,
                    },
                ))
            },
        )
    }

    pub fn resource(&self, address: &str) -> Result<Option<StoredResource>> {
        self.conn().query_row_opt(
            "SELECT snapshot, desired FROM resources WHERE address = ?1",
            args![address],
            |r| {
                Ok(StoredResource {
                    snapshot: serde_json::from_str(r.text(0)?).map_err(corrupt)?,
                    desired: serde_json::from_str(r.text(1)?).map_err(corrupt)?,
                })
            },
        )
    }

    /// Applied resources per kind.
    pub fn resource_counts(&self) -> Result<std::collections::BTreeMap<String, usize>> {
        let rows = self.conn().query_map(
            "SELECT kind, COUNT(*) FROM resources GROUP BY kind",
            args![],
            |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)? as usize)),
        )?;
        Ok(rows.into_iter().collect())
    }

    /// How many resources are applied.
    pub fn resource_count(&self) -> Result<usize> {
        Ok(self.resource_counts()?.values().sum())
    }

    /// Every applied resource's outputs, by address.
    pub fn all_outputs(&self) -> Result<std::collections::BTreeMap<String, Outputs>> {
        let rows =
            self.conn()
                .query_map("SELECT address, outputs FROM resources", args![], |r| {
                    Ok((
                        r.get::<String>(0)?,
                        serde_json::from_str::<Outputs>(r.text(1)?).map_err(corrupt)?,
                    ))
                })?;
        Ok(rows.into_iter().collect())
    }

    pub fn outputs(&self, address: &str) -> Result<Option<Outputs>> {
        self.json_row("SELECT outputs FROM resources WHERE address = ?1", address)
    }

    /// The objects the driver made for a resource at its last apply (empty when unknown).
    pub fn inventory(&self, address: &str) -> Result<Vec<ObjectRef>> {
        Ok(self
            .json_row(
                "SELECT inventory FROM resources WHERE address = ?1",
                address,
            )?
            .unwrap_or_default())
    }
}

/// A store written by a newer platformd, or with a version no platformd writes, is never read
/// or migrated by this one.
fn refuse_unknown_version(found: i64, location: &Location) -> Result<()> {
    // No platformd writes a negative version: a damaged or foreign database (it indexed the
    // migrations with it and panicked).
    if found < 0 {
        return Err(StoreError::Damaged {
            path: location.to_string(),
            detail: format!("its schema version is {found}"),
        });
    }
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            dir: location.to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Creates `schema` and its `table` unless they exist, once among processes doing the same at
/// the same moment. `CREATE … IF NOT EXISTS` alone is not enough: a backend that waited for the
/// lock may still see the catalog as it was, and fail on the unique name. So existence is read
/// from the catalog tables, with a snapshot taken after the lock.
pub(crate) fn ensure_schema(conn: &Conn, schema: &str, table: &str, create: &str) -> Result<()> {
    let quoted = schema.replace('"', "\"\"");
    let tx = write_transaction(conn)?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext(?1))", args![schema])?;
    let exists = tx
        .query_opt(
            "SELECT 1 FROM pg_namespace WHERE nspname = ?1",
            args![schema],
        )?
        .is_some();
    if !exists {
        tx.batch(&format!("CREATE SCHEMA \"{quoted}\""))?;
    }
    let has_table = tx
        .query_opt(
            "SELECT 1 FROM pg_tables WHERE schemaname = ?1 AND tablename = ?2",
            args![schema, table],
        )?
        .is_some();
    if !has_table {
        tx.batch(create)?;
    }
    tx.commit()
}

/// The schema version of a store: SQLite's `user_version`, PostgreSQL's `schema_version` row.
fn schema_version_of(conn: &Conn) -> Result<i64> {
    match conn {
        Conn::Sqlite(c) => Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?),
        Conn::Postgres(_) => conn
            .query_row_opt("SELECT version FROM schema_version", args![], |r| r.get(0))
            .map(|v| v.unwrap_or(0)),
    }
}

/// Runs missing migrations, one exclusive transaction each. The version is read inside the
/// transaction, so processes opening a new store at the same time never apply one twice:
/// SQLite's exclusive lock, or PostgreSQL's transaction-scoped advisory lock on the schema.
fn migrate(conn: &Conn, location: &Location) -> Result<()> {
    if let Location::Postgres { schema, .. } = location {
        ensure_schema(
            conn,
            schema,
            "schema_version",
            "CREATE TABLE schema_version (version BIGINT NOT NULL)",
        )?;
    }
    loop {
        conn.batch(match conn.dialect() {
            Dialect::Sqlite => "BEGIN EXCLUSIVE",
            Dialect::Postgres => "BEGIN",
        })?;
        let step = migrate_one(conn, location);
        match step {
            Ok(Some(found)) => {
                conn.batch("COMMIT")?;
                tracing::info!(from = found, to = found + 1, store = %location, "migrated store schema");
            }
            Ok(None) => {
                conn.batch("COMMIT")?;
                return Ok(());
            }
            Err(e) => {
                let _ = conn.batch("ROLLBACK");
                return Err(e);
            }
        }
    }
}

/// Applies the next migration inside the caller's transaction; the version it started from,
/// or `None` when the store is up to date.
fn migrate_one(conn: &Conn, location: &Location) -> Result<Option<i64>> {
    if let Location::Postgres { schema, .. } = location {
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(?1))", args![schema])?;
    }
    let found = schema_version_of(conn)?;
    refuse_unknown_version(found, location)?;
    if found == SCHEMA_VERSION {
        return Ok(None);
    }
    let migration = MIGRATIONS[found as usize];
    match conn {
        Conn::Sqlite(c) => {
            c.execute_batch(migration)?;
            c.pragma_update(None, "user_version", found + 1)?;
        }
        Conn::Postgres(_) => {
            conn.batch(&sql::postgres_migration(migration))?;
            conn.execute("DELETE FROM schema_version", args![])?;
            conn.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                args![found + 1],
            )?;
        }
    }
    Ok(Some(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_time() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_795_377_600), "2026-11-22 20:00:00 UTC");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
