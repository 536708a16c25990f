//! The SQLite store under `--state-dir` (WAL). Schema changes are numbered migrations in
//! `migrations/`; a newer binary migrates an older store in place, and a store written by a
//! newer binary is refused. Normal operation never deletes history: revisions, snapshots,
//! applies, journal, plans, drift findings and events are append-only; only the current
//! per-resource state (`resources`) and the lease are updated in place.

use drivers::{DesiredResource, Outputs};
use planner::Snapshot;
use planner::snapshot::ResourceSnapshot;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_event_data.sql"),
];

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
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store holds invalid data: {0}")]
    Corrupt(String),
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

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `2026-11-22 20:09:35 UTC` from Unix seconds.
pub fn format_time(secs: i64) -> String {
    planner::render::format_unix_time(secs)
}

pub struct Store {
    conn: Connection,
    dir: PathBuf,
}

/// A row of `applies`, for history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplyRecord {
    pub id: i64,
    pub revision: String,
    pub reason: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub status: String,
    pub summary: Option<String>,
}

/// An unfinished journal entry: a driver call whose outcome is unknown.
#[derive(Debug, Clone)]
pub struct OpenIntent {
    pub id: i64,
    pub apply_id: i64,
    pub address: String,
    pub action: String,
    pub driver: String,
    pub desired: Option<StoredResource>,
}

/// What the store keeps for an applied resource.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredResource {
    pub snapshot: ResourceSnapshot,
    pub desired: DesiredResource,
}

/// Marks an intent done and moves the generation: every state change goes through here, inside
/// the transaction that changes `resources`.
fn close_intent_and_bump_generation(tx: &rusqlite::Transaction<'_>, journal_id: i64) -> Result<()> {
    tx.execute(
        "UPDATE journal SET result = 'ok', result_at = ?1 WHERE id = ?2",
        params![now(), journal_id],
    )?;
    tx.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'",
        [],
    )?;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "localhost".into(), |s| s.trim().to_string())
}

fn pid_alive(pid: i64) -> bool {
    // Signal 0 checks existence without sending anything.
    pid > 0 && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, migrating an older schema.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Open {
            dir: dir.display().to_string(),
            source,
        })?;
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
        let mut store = Store {
            conn,
            dir: dir.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Whether a store exists in `dir` (without creating one).
    pub fn exists(dir: &Path) -> bool {
        dir.join(DB_FILE).exists()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs missing migrations, one exclusive transaction each. The version is read inside the
    /// transaction, so processes opening a new store at the same time never apply one twice.
    fn migrate(&mut self) -> Result<()> {
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Exclusive)?;
            let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if found > SCHEMA_VERSION {
                return Err(StoreError::TooNew {
                    dir: self.dir.display().to_string(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            if found == SCHEMA_VERSION {
                return Ok(());
            }
            tx.execute_batch(MIGRATIONS[found as usize])?;
            tx.pragma_update(None, "user_version", found + 1)?;
            tx.commit()?;
            tracing::info!(from = found, to = found + 1, "migrated store schema");
        }
    }

    /// A transaction that takes the write lock before its first read. A deferred transaction
    /// that reads and then writes fails at once with BUSY_SNAPSHOT (no busy wait) when another
    /// process committed in between.
    fn write_transaction(&self) -> Result<rusqlite::Transaction<'_>> {
        Ok(rusqlite::Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Immediate,
        )?)
    }

    pub fn generation(&self) -> Result<u64> {
        let v: String =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
                    r.get(0)
                })?;
        Ok(v.parse().unwrap_or(0))
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn set_meta(&self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, v],
            )?,
            None => self.conn.execute("DELETE FROM meta WHERE key = ?1", [key])?,
        };
        Ok(())
    }

    /// The revision most recently applied in full (rollback target of "now").
    pub fn applied_revision(&self) -> Result<Option<String>> {
        self.meta("applied_revision")
    }

    pub fn stack_name(&self) -> Result<Option<String>> {
        self.meta("stack")
    }

    pub fn pinned_revision(&self) -> Result<Option<String>> {
        self.meta("pinned_revision")
    }

    pub fn set_pin(&self, revision: Option<&str>) -> Result<()> {
        self.set_meta("pinned_revision", revision)?;
        match revision {
            Some(r) => self.event("pin", &format!("pinned to {r} by rollback"), None),
            None => self.event("resume", "pin removed; following the stack again", None),
        }
    }

    pub fn event(&self, kind: &str, message: &str, address: Option<&str>) -> Result<()> {
        self.conn.execute(
            "INSERT INTO events (at, kind, message, address) VALUES (?1, ?2, ?3, ?4)",
            params![now(), kind, message, address],
        )?;
        Ok(())
    }

    pub fn record_revision(
        &self,
        revision: &str,
        source: &str,
        valid: bool,
        errors: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO revisions (revision, source, seen_at, valid, errors) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (revision) DO NOTHING",
            params![revision, source, now(), valid, errors],
        )?;
        Ok(())
    }

    /// Records a revision with its commit metadata; a revision seen again keeps its first row.
    pub fn record_revision_details(
        &self,
        revision: &str,
        source: &str,
        valid: bool,
        errors: Option<&str>,
        author: Option<&str>,
        message: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO revisions (revision, source, author, message, seen_at, valid, errors) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (revision) DO NOTHING",
            params![revision, source, author, message, now(), valid, errors],
        )?;
        Ok(())
    }

    /// Every revision seen, newest first.
    pub fn revisions(&self, limit: usize) -> Result<Vec<planner::history::Revision>> {
        let applied = self.applied_revision()?;
        let mut stmt = self.conn.prepare(
            "SELECT r.revision, r.source, r.author, r.message, r.seen_at, r.valid, r.errors,
                    EXISTS (SELECT 1 FROM applies a WHERE a.revision = r.revision AND a.status = 'succeeded')
             FROM revisions r ORDER BY r.id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok(planner::history::Revision {
                    revision: r.get(0)?,
                    source: r.get(1)?,
                    author: r.get(2)?,
                    message: r.get(3)?,
                    seen_at: r.get(4)?,
                    valid: r.get(5)?,
                    errors: r.get(6)?,
                    applied: r.get(7)?,
                    current: false,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                r.current = applied.as_deref() == Some(r.revision.as_str());
                r
            })
            .collect())
    }

    /// A revision whose plan had nothing to change is in force as it is: recorded as a
    /// (trivially) succeeded apply, so it is in the history and a rollback target.
    pub fn record_applied_without_changes(
        &self,
        revision: &str,
        snapshot: &Snapshot,
    ) -> Result<()> {
        self.store_snapshot(revision, snapshot)?;
        let id = self.begin_apply(revision, "apply", None)?;
        self.finish_apply(id, "succeeded", "no changes", &snapshot.stack)
    }

    /// The source revision that was current when the stack was pinned: a different one ends the
    /// pin.
    pub fn pinned_at_tip(&self) -> Result<Option<String>> {
        self.meta("pinned_at_tip")
    }

    pub fn set_pinned_at_tip(&self, revision: Option<&str>) -> Result<()> {
        self.set_meta("pinned_at_tip", revision)
    }

    pub fn record_plan(&self, revision: Option<&str>, plan_json: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO plans (created_at, revision, plan) VALUES (?1, ?2, ?3)",
            params![now(), revision, plan_json],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn store_snapshot(&self, revision: &str, snapshot: &Snapshot) -> Result<()> {
        let json = serde_json::to_string(snapshot).map_err(corrupt)?;
        self.conn.execute(
            "INSERT INTO snapshots (revision, snapshot, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (revision) DO NOTHING",
            params![revision, json, now()],
        )?;
        Ok(())
    }

    /// The stored snapshot of a revision, by full id or unique prefix.
    pub fn snapshot(&self, revision: &str) -> Result<Option<(String, Snapshot)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT revision, snapshot FROM snapshots WHERE revision LIKE ?1 || '%'")?;
        let rows: Vec<(String, String)> = stmt
            .query_map([revision], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        match rows.as_slice() {
            [(rev, json)] => Ok(Some((
                rev.clone(),
                serde_json::from_str(json).map_err(corrupt)?,
            ))),
            [] => Ok(None),
            many => {
                let exact = many.iter().find(|(r, _)| r == revision);
                match exact {
                    Some((rev, json)) => Ok(Some((
                        rev.clone(),
                        serde_json::from_str(json).map_err(corrupt)?,
                    ))),
                    None => Err(StoreError::Corrupt(format!(
                        "revision prefix `{revision}` is ambiguous"
                    ))),
                }
            }
        }
    }

    /// The last applied state as a snapshot: what the next plan starts from.
    pub fn prior_snapshot(&self) -> Result<Snapshot> {
        let stack = self.stack_name()?.unwrap_or_default();
        let mut snapshot = Snapshot::empty(&stack);
        for (address, stored) in self.resources()? {
            snapshot.resources.insert(address, stored.snapshot);
        }
        Ok(snapshot)
    }

    pub fn resources(&self) -> Result<Vec<(String, StoredResource)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT address, snapshot, desired FROM resources ORDER BY address")?;
        let rows: Vec<(String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(address, snapshot, desired)| {
                Ok((
                    address,
                    StoredResource {
                        snapshot: serde_json::from_str(&snapshot).map_err(corrupt)?,
                        desired: serde_json::from_str(&desired).map_err(corrupt)?,
                    },
                ))
            })
            .collect()
    }

    pub fn resource(&self, address: &str) -> Result<Option<StoredResource>> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT snapshot, desired FROM resources WHERE address = ?1",
                [address],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(snapshot, desired)| {
            Ok(StoredResource {
                snapshot: serde_json::from_str(&snapshot).map_err(corrupt)?,
                desired: serde_json::from_str(&desired).map_err(corrupt)?,
            })
        })
        .transpose()
    }

    /// Applied resources per kind.
    pub fn resource_counts(&self) -> Result<std::collections::BTreeMap<String, usize>> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, COUNT(*) FROM resources GROUP BY kind")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn outputs(&self, address: &str) -> Result<Option<Outputs>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT outputs FROM resources WHERE address = ?1",
                [address],
                |r| r.get(0),
            )
            .optional()?;
        json.map(|j| serde_json::from_str(&j).map_err(corrupt))
            .transpose()
    }

    pub fn begin_apply(&self, revision: &str, reason: &str, plan_id: Option<i64>) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO applies (revision, reason, started_at, status, generation_before, holder, plan_id)
             VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6)",
            params![revision, reason, now(), self.generation()? as i64, format!("pid {}", std::process::id()), plan_id],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Ends an apply; when it succeeded in full, its revision becomes the applied revision.
    pub fn finish_apply(
        &self,
        apply_id: i64,
        status: &str,
        summary: &str,
        stack: &str,
    ) -> Result<()> {
        let tx = self.write_transaction()?;
        let generation = self.generation()? as i64;
        tx.execute(
            "UPDATE applies SET finished_at = ?1, status = ?2, summary = ?3, generation_after = ?4 WHERE id = ?5",
            params![now(), status, summary, generation, apply_id],
        )?;
        if status == "succeeded" {
            let revision: String = tx.query_row(
                "SELECT revision FROM applies WHERE id = ?1",
                [apply_id],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('applied_revision', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [&revision],
            )?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('stack', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [stack],
        )?;
        tx.execute(
            "INSERT INTO events (at, kind, message) VALUES (?1, 'apply', ?2)",
            params![now(), format!("apply {apply_id} {status}: {summary}")],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Journals the intent to call a driver; returns the journal id.
    pub fn journal_intent(
        &self,
        apply_id: i64,
        address: &str,
        action: &str,
        driver: &str,
        desired: Option<&StoredResource>,
    ) -> Result<i64> {
        let desired = desired
            .map(|d| serde_json::to_string(d).map_err(corrupt))
            .transpose()?;
        self.conn.execute(
            "INSERT INTO journal (apply_id, address, action, driver, desired, attempts, intent_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
            params![apply_id, address, action, driver, desired, now()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Counts a retry (the first attempt is counted by the intent itself).
    pub fn journal_attempt(&self, journal_id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE journal SET attempts = attempts + 1 WHERE id = ?1",
            [journal_id],
        )?;
        Ok(())
    }

    /// Records a successful create/update: the journal result and the new resource state, in
    /// one transaction, and moves the generation.
    pub fn journal_applied(
        &self,
        journal_id: i64,
        apply_id: i64,
        revision: &str,
        resource: &StoredResource,
        outputs: &Outputs,
    ) -> Result<()> {
        let tx = self.write_transaction()?;
        let address = format!("{}/{}", resource.snapshot.kind, resource.snapshot.name);
        tx.execute(
            "INSERT INTO resources (address, kind, driver, snapshot, desired, outputs, status, revision, apply_id, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'applied', ?7, ?8, ?9)
             ON CONFLICT (address) DO UPDATE SET kind = excluded.kind, driver = excluded.driver, snapshot = excluded.snapshot,
               desired = excluded.desired, outputs = excluded.outputs, status = excluded.status, revision = excluded.revision,
               apply_id = excluded.apply_id, updated_at = excluded.updated_at",
            params![
                address,
                resource.snapshot.kind.as_str(),
                resource.snapshot.driver,
                serde_json::to_string(&resource.snapshot).map_err(corrupt)?,
                serde_json::to_string(&resource.desired).map_err(corrupt)?,
                serde_json::to_string(outputs).map_err(corrupt)?,
                revision,
                apply_id,
                now()
            ],
        )?;
        close_intent_and_bump_generation(&tx, journal_id)?;
        tx.commit()?;
        Ok(())
    }

    /// Records a successful delete.
    pub fn journal_deleted(&self, journal_id: i64, address: &str) -> Result<()> {
        let tx = self.write_transaction()?;
        tx.execute("DELETE FROM resources WHERE address = ?1", [address])?;
        close_intent_and_bump_generation(&tx, journal_id)?;
        tx.commit()?;
        Ok(())
    }

    pub fn journal_failed(&self, journal_id: i64, result: &str, error: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE journal SET result = ?1, error = ?2, result_at = ?3 WHERE id = ?4",
            params![result, error, now(), journal_id],
        )?;
        Ok(())
    }

    pub fn open_intents(&self) -> Result<Vec<OpenIntent>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, apply_id, address, action, driver, desired FROM journal WHERE result IS NULL ORDER BY id",
        )?;
        let rows: Vec<(i64, i64, String, String, String, Option<String>)> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(id, apply_id, address, action, driver, desired)| {
                let desired = desired
                    .map(|d| serde_json::from_str(&d).map_err(corrupt))
                    .transpose()?;
                Ok(OpenIntent {
                    id,
                    apply_id,
                    address,
                    action,
                    driver,
                    desired,
                })
            })
            .collect()
    }

    /// Applies left `running` by a process that is gone are marked `interrupted` (never deleted).
    pub fn mark_interrupted(&self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE applies SET status = 'interrupted', finished_at = ?1 WHERE status = 'running' AND holder != ?2",
            params![now(), format!("pid {}", std::process::id())],
        )?)
    }

    pub fn history(&self) -> Result<Vec<ApplyRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, revision, reason, started_at, finished_at, status, summary FROM applies ORDER BY id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ApplyRecord {
                    id: r.get(0)?,
                    revision: r.get(1)?,
                    reason: r.get(2)?,
                    started_at: r.get(3)?,
                    finished_at: r.get(4)?,
                    status: r.get(5)?,
                    summary: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Records one drift scan's findings; returns the scan id.
    pub fn record_drift(&self, findings: &[planner::plan::DriftFinding]) -> Result<i64> {
        let tx = self.write_transaction()?;
        let scan: i64 =
            tx.query_row("SELECT COALESCE(MAX(scan_id), 0) + 1 FROM drift", [], |r| {
                r.get(0)
            })?;
        for f in findings {
            let details = serde_json::to_string(f).map_err(corrupt)?;
            let (address, status) = (&f.address, &f.status);
            tx.execute(
                "INSERT INTO drift (scan_id, scanned_at, address, status, details) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![scan, now(), address, status, details],
            )?;
        }
        tx.commit()?;
        Ok(scan)
    }

    /// The findings of the last drift scan.
    pub fn last_drift_findings(&self) -> Result<Vec<planner::plan::DriftFinding>> {
        let mut stmt =
            self.conn.prepare("SELECT details FROM drift WHERE scan_id = (SELECT MAX(scan_id) FROM drift) ORDER BY id")?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        rows.iter()
            .map(|d| serde_json::from_str(d).map_err(corrupt))
            .collect()
    }

    /// Takes the applier lease, or says who holds it. A lease whose holder process is gone (on
    /// this host) or whose time ran out is taken over.
    pub fn acquire_lease(&self, holder: &str, ttl: Duration) -> Result<()> {
        // IMMEDIATE: the write lock is taken before the read, so two appliers cannot both see
        // a free lease (a deferred transaction would fail one of them with BUSY_SNAPSHOT).
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let current: Option<(String, i64, String, i64, i64)> = tx
            .query_row(
                "SELECT holder, pid, host, acquired_at, expires_at FROM lease WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let me = std::process::id() as i64;
        let host = hostname();
        if let Some((h, pid, lease_host, acquired, expires)) = current {
            let stale = expires < now() || (lease_host == host && !pid_alive(pid));
            if pid != me && !stale {
                return Err(StoreError::Locked {
                    holder: h,
                    pid,
                    host: lease_host,
                    since: format_time(acquired),
                });
            }
        }
        tx.execute(
            "INSERT INTO lease (id, holder, pid, host, acquired_at, expires_at) VALUES (1, ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, pid = excluded.pid, host = excluded.host,
               acquired_at = excluded.acquired_at, expires_at = excluded.expires_at",
            params![holder, me, host, now(), now() + ttl.as_secs() as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Extends our lease; false when it is no longer ours.
    pub fn renew_lease(&self, ttl: Duration) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE lease SET expires_at = ?1 WHERE id = 1 AND pid = ?2",
            params![now() + ttl.as_secs() as i64, std::process::id() as i64],
        )?;
        Ok(n == 1)
    }

    pub fn release_lease(&self) -> Result<()> {
        self.conn.execute(
            "DELETE FROM lease WHERE id = 1 AND pid = ?1",
            [std::process::id() as i64],
        )?;
        Ok(())
    }
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
