//! The notification outbox: finished applies queued per target, delivered in order with
//! retries; and the event log they are made from.

use super::sql::{args, write_transaction};
use super::{Delivery, Result, Store, now, parse_state};
use api::{ApplyReason, ApplyRecord, ApplyStatus};

impl Store {
    /// Starts the notification cursor at the newest apply, so a notifier added to an existing
    /// store does not announce old history. Does nothing once started.
    pub fn start_outbox(&self) -> Result<()> {
        self.conn().execute(
            "INSERT INTO outbox_cursor (id, last_apply_id) SELECT 1, COALESCE(MAX(id), 0) FROM applies WHERE finished_at IS NOT NULL
             ON CONFLICT DO NOTHING",
            args![],
        )?;
        Ok(())
    }

    /// Turns finished applies after the cursor into one delivery per target, and moves the
    /// cursor, in one transaction; returns how many deliveries were queued.
    pub fn enqueue_notifications(&self, targets: &[String]) -> Result<usize> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        let cursor: i64 = tx
            .query_row_opt(
                "SELECT last_apply_id FROM outbox_cursor WHERE id = 1",
                args![],
                |r| r.get(0),
            )?
            .unwrap_or(0);
        // Finished applies in id order, stopping at the first still running: the cursor never
        // skips an apply that finishes later.
        let mut ids = Vec::new();
        let rows = tx.query_map(
            "SELECT id, finished_at FROM applies WHERE id > ?1 ORDER BY id",
            args![cursor],
            |r| Ok((r.get::<i64>(0)?, r.get::<Option<i64>>(1)?)),
        )?;
        for (id, finished) in rows {
            if finished.is_none() {
                break;
            }
            ids.push(id);
        }
        let mut queued = 0;
        for id in &ids {
            for target in targets {
                queued += tx.execute(
                    "INSERT INTO outbox (apply_id, target, next_attempt_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                    args![id, target, now()],
                )?;
            }
        }
        if let Some(last) = ids.last() {
            tx.execute(
                "INSERT INTO outbox_cursor (id, last_apply_id) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET last_apply_id = ?1",
                args![last],
            )?;
        }
        tx.commit()?;
        Ok(queued)
    }

    /// Deliveries due now, oldest first.
    pub fn due_deliveries(&self, limit: usize) -> Result<Vec<Delivery>> {
        self.conn().query_map(
            "SELECT o.id, o.target, o.attempts, a.id, a.revision, a.reason, a.started_at, a.finished_at, a.status, a.summary
             FROM outbox o JOIN applies a ON a.id = o.apply_id
             WHERE o.delivered_at IS NULL AND o.next_attempt_at <= ?1 ORDER BY o.id LIMIT ?2",
            args![now(), limit as i64],
            |r| {
                Ok(Delivery {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    attempts: r.get(2)?,
                    apply: ApplyRecord {
                        id: r.get(3)?,
                        revision: r.get(4)?,
                        reason: parse_state::<ApplyReason>(&r.get::<String>(5)?)?,
                        started_at: r.get(6)?,
                        finished_at: r.get(7)?,
                        status: parse_state::<ApplyStatus>(&r.get::<String>(8)?)?,
                        summary: r.get(9)?,
                        actor: None,
                        note: None,
                    },
                })
            },
        )
    }

    pub fn delivered(&self, id: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
            args![id, now()],
        )?;
        Ok(())
    }

    /// Records a failed attempt; `retry_at` `None` gives up.
    pub fn delivery_failed(&self, id: i64, error: &str, retry_at: Option<i64>) -> Result<()> {
        self.conn().execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
            args![id, error, retry_at.unwrap_or(i64::MAX)],
        )?;
        Ok(())
    }

    /// Events of one kind, oldest first: (Unix seconds, message).
    pub fn events_of_kind(&self, kind: &str) -> Result<Vec<(i64, String)>> {
        self.conn().query_map(
            "SELECT at, message FROM events WHERE kind = ?1 ORDER BY id",
            args![kind],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }
}
