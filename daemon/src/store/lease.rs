//! The applier lease: one writer (CLI apply or daemon) per state directory at a time.

use super::sql::{Dialect, args};
use super::{Result, Store, StoreError, format_time};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a lease lasts without renewal; renewed every third of it while applying.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// Who holds the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    pub pid: i64,
    pub host: String,
    pub acquired_at: i64,
    pub expires_at: i64,
    /// Moves on with every take-over by another applier; journal intents are fenced by it.
    pub epoch: i64,
}

/// Unix seconds by the database's clock. Lease times are written and compared by this one
/// clock, so replicas whose clocks disagree still agree on when a lease runs out.
pub(super) fn db_now(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "CAST(strftime('%s', 'now') AS BIGINT)",
        Dialect::Postgres => "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS BIGINT)",
    }
}

/// Until when this process knows its lease held, by its own monotonic clock: set when the
/// lease is taken or renewed, from the time *before* the database was asked, less a tenth for
/// clocks that run at different rates. A process stopped past it (SIGSTOP, a long pause) finds
/// it passed on waking, as the monotonic clock runs on while a process is stopped, and asks the
/// database before its next driver call.
#[derive(Debug, Default)]
pub(super) struct LeaseClock(Mutex<Option<(i64, Instant)>>);

impl LeaseClock {
    fn held_until(&self, epoch: i64, asked_at: Instant, remaining: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((epoch, asked_at + remaining.mul_f64(0.9)));
    }

    fn renewed(&self, asked_at: Instant, ttl: Duration) {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((epoch, _)) = *held {
            *held = Some((epoch, asked_at + ttl.mul_f64(0.9)));
        }
    }

    fn forget(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn holds(&self, epoch: i64) -> bool {
        matches!(*self.0.lock().unwrap_or_else(|e| e.into_inner()),
            Some((held, until)) if held == epoch && Instant::now() < until)
    }
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "localhost".into(), |s| s.trim().to_string())
}

fn pid_alive(pid: i64) -> bool {
    // Signal 0 checks existence without sending anything.
    pid > 0 && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
}

impl Store {
    /// Who holds the lease, if anyone (a released lease keeps its row, for its epoch).
    pub fn lease(&self) -> Result<Option<Lease>> {
        Ok(self.lease_row()?.filter(|l| l.expires_at > 0))
    }

    fn lease_row(&self) -> Result<Option<Lease>> {
        self.conn().query_row_opt(
            "SELECT holder, pid, host, acquired_at, expires_at, epoch FROM lease WHERE id = 1",
            args![],
            |r| {
                Ok(Lease {
                    holder: r.get(0)?,
                    pid: r.get(1)?,
                    host: r.get(2)?,
                    acquired_at: r.get(3)?,
                    expires_at: r.get(4)?,
                    epoch: r.get(5)?,
                })
            },
        )
    }

    /// Takes the applier lease, or says who holds it. A lease whose holder process is gone (on
    /// this host) or whose time ran out is taken over.
    ///
    /// The take-over is a compare-and-swap on the row that was read (its holder's pid, host and
    /// start), so two appliers that both saw the lease free or stale never both get it, on
    /// either backend.
    ///
    /// Returns the lease's epoch: the one it had when it was already ours, the next one after a
    /// take-over.
    pub fn acquire_lease(&self, holder: &str, ttl: Duration) -> Result<i64> {
        let me = std::process::id() as i64;
        let host = hostname();
        loop {
            let asked_at = Instant::now();
            let now = self.db_time()?;
            let current = self.lease_row()?;
            if let Some(lease) = &current {
                let mine = lease.pid == me && lease.host == host;
                let stale = lease.expires_at < now || (lease.host == host && !pid_alive(lease.pid));
                if !mine && !stale {
                    return Err(StoreError::Locked {
                        holder: lease.holder.clone(),
                        pid: lease.pid,
                        host: lease.host.clone(),
                        since: format_time(lease.acquired_at),
                    });
                }
            }
            let (was_pid, was_host, was_acquired, was_epoch) =
                current.as_ref().map_or((0, String::new(), 0, 0), |l| {
                    (l.pid, l.host.clone(), l.acquired_at, l.epoch)
                });
            let still_mine = current
                .as_ref()
                .is_some_and(|l| l.pid == me && l.host == host && l.expires_at >= now);
            let epoch = if still_mine { was_epoch } else { was_epoch + 1 };
            let taken = self.conn().execute(
                "INSERT INTO lease (id, holder, pid, host, acquired_at, expires_at, epoch) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?9)
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, pid = excluded.pid, host = excluded.host,
                   acquired_at = excluded.acquired_at, expires_at = excluded.expires_at, epoch = excluded.epoch
                 WHERE lease.pid = ?6 AND lease.host = ?7 AND lease.acquired_at = ?8 AND lease.epoch = ?10",
                args![
                    holder,
                    me,
                    host,
                    now,
                    now + ttl.as_secs() as i64,
                    was_pid,
                    was_host,
                    was_acquired,
                    epoch,
                    was_epoch
                ],
            )?;
            if taken == 1 {
                self.lease_clock.held_until(epoch, asked_at, ttl);
                return Ok(epoch);
            }
            // Another applier changed the row between the read and the swap: look again.
        }
    }

    /// Extends our lease; false when it is no longer ours.
    pub fn renew_lease(&self, ttl: Duration) -> Result<bool> {
        let asked_at = Instant::now();
        let conn = self.conn();
        let n = conn.execute(
            &format!(
                "UPDATE lease SET expires_at = {} + ?1 WHERE id = 1 AND pid = ?2 AND host = ?3",
                db_now(conn.dialect())
            ),
            args![ttl.as_secs() as i64, std::process::id() as i64, hostname()],
        )?;
        if n == 1 {
            self.lease_clock.renewed(asked_at, ttl);
        } else {
            self.lease_clock.forget();
        }
        Ok(n == 1)
    }

    /// The database's time, in Unix seconds.
    fn db_time(&self) -> Result<i64> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {}", db_now(conn.dialect())),
            args![],
            |r| r.get(0),
        )
    }

    /// Whether the lease this handle is fenced by is still held, asked before every driver
    /// call of an apply and before each retry: from the local deadline while the lease is
    /// comfortably held, otherwise from the database (which moves the deadline on). Unfenced
    /// handles pass.
    pub fn check_lease(&self) -> Result<()> {
        let Some(epoch) = self.epoch else {
            return Ok(());
        };
        if self.lease_clock.holds(epoch) {
            return Ok(());
        }
        let asked_at = Instant::now();
        let conn = self.conn();
        let now = db_now(conn.dialect());
        let remaining: Option<i64> = conn.query_row_opt(
            &format!(
                "SELECT expires_at - {now} FROM lease
                 WHERE id = 1 AND epoch = ?1 AND pid = ?2 AND host = ?3 AND expires_at >= {now}"
            ),
            args![epoch, std::process::id() as i64, hostname()],
            |r| r.get(0),
        )?;
        match remaining {
            Some(seconds) => {
                self.lease_clock.held_until(
                    epoch,
                    asked_at,
                    Duration::from_secs(seconds.max(0) as u64),
                );
                Ok(())
            }
            None => {
                self.lease_clock.forget();
                Err(StoreError::LeaseLost(epoch))
            }
        }
    }

    /// Gives the lease up; the row stays, so the next holder's epoch still moves on.
    pub fn release_lease(&self) -> Result<()> {
        self.lease_clock.forget();
        self.conn().execute(
            "UPDATE lease SET expires_at = 0 WHERE id = 1 AND pid = ?1 AND host = ?2",
            args![std::process::id() as i64, hostname()],
        )?;
        Ok(())
    }
}

/// The applier lease, renewed in the background and released on drop.
pub struct LeaseGuard {
    store: Store,
    epoch: i64,
    stop: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl LeaseGuard {
    /// Takes the lease, waiting up to `timeout` for another applier to finish; `waiting` is
    /// told once who holds it.
    pub fn acquire(
        store: &Store,
        holder: &str,
        timeout: Duration,
        waiting: &dyn Fn(&StoreError),
    ) -> Result<LeaseGuard> {
        let deadline = Instant::now() + timeout;
        let mut announced = false;
        let epoch = loop {
            match store.acquire_lease(holder, LEASE_TTL) {
                Ok(epoch) => break epoch,
                Err(e @ StoreError::Locked { .. }) => {
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                    if !announced {
                        waiting(&e);
                        announced = true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (stop, store) = (stop.clone(), store.clone());
            std::thread::spawn(move || {
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() >= LEASE_TTL / 3 {
                        last = Instant::now();
                        if !matches!(store.renew_lease(LEASE_TTL), Ok(true)) {
                            tracing::error!("lost the applier lease");
                        }
                    }
                }
            })
        };
        Ok(LeaseGuard {
            store: store.clone(),
            epoch,
            stop,
            renewer: Some(renewer),
        })
    }
}

impl LeaseGuard {
    /// The epoch of the lease held: what journal intents are fenced by.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.renewer.take() {
            let _ = r.join();
        }
        if let Err(e) = self.store.release_lease() {
            tracing::warn!(error = %e, "cannot release the applier lease; it expires on its own");
        }
    }
}
