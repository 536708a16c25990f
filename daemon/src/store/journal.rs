//! Applies and their journal: an intent before every driver call, its result after, every
//! write fenced by the lease (`docs/APPLY.md`); and the history they make.

use super::sql::{args, write_transaction};
use super::{
    IntentResult, JournalAction, JournalEntry, JournalRow, OpenIntent, Result, Store, StoreError,
    StoredResource, applier_id, close_intent_and_bump_generation, corrupt, event_of, generation_of,
    lease, now, parse_state, set_meta_of,
};
use api::{ApplyReason, ApplyRecord, ApplyStatus};
use drivers::Applied;

impl Store {
    pub fn begin_apply(
        &self,
        revision: &str,
        reason: ApplyReason,
        plan_id: Option<i64>,
        actor: &str,
        note: Option<&str>,
    ) -> Result<i64> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        // A fenced handle starts no apply once its lease has moved on: an old owner that wakes
        // up leaves no trace in the history.
        self.fence(&tx)?;
        let id: i64 = tx.query_row(
            "INSERT INTO applies (revision, reason, started_at, status, generation_before, holder, plan_id, actor, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
            args![
                revision,
                reason.as_str(),
                now(),
                ApplyStatus::Running.as_str(),
                generation_of(&tx)? as i64,
                applier_id(),
                plan_id,
                actor,
                note
            ],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Ends an apply; when it succeeded in full, its revision becomes the applied revision.
    pub fn finish_apply(
        &self,
        apply_id: i64,
        status: ApplyStatus,
        summary: &str,
        stack: &str,
    ) -> Result<()> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        // An old owner that wakes up does not end an apply as if it had finished it.
        self.fence(&tx)?;
        let generation = generation_of(&tx)? as i64;
        tx.execute(
            "UPDATE applies SET finished_at = ?1, status = ?2, summary = ?3, generation_after = ?4 WHERE id = ?5",
            args![now(), status.as_str(), summary, generation, apply_id],
        )?;
        let (revision, reason): (String, String) = tx.query_row(
            "SELECT revision, reason FROM applies WHERE id = ?1",
            args![apply_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        // A targeted apply changed only part of its revision: the revision is not in force.
        if status == ApplyStatus::Succeeded && reason != ApplyReason::Targeted.as_str() {
            set_meta_of(&tx, "applied_revision", Some(&revision))?;
            // What the next plan compares driver settings with (`prior_snapshot`).
            if let Some(drivers) = super::snapshot_drivers(&tx, &revision)? {
                set_meta_of(&tx, super::APPLIED_DRIVERS, Some(&drivers))?;
            }
        }
        set_meta_of(&tx, "stack", Some(stack))?;
        event_of(
            &tx,
            "apply",
            &format!("apply {apply_id} {status}: {summary}"),
            None,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Journals the intent to call a driver; returns the journal id.
    pub fn journal_intent(
        &self,
        apply_id: i64,
        address: &str,
        action: JournalAction,
        driver: &str,
        desired: Option<&StoredResource>,
    ) -> Result<i64> {
        let desired = desired
            .map(|d| serde_json::to_string(d).map_err(corrupt))
            .transpose()?;
        let conn = self.conn();
        let Some(epoch) = self.epoch else {
            return conn.query_row(
                "INSERT INTO journal (apply_id, address, action, driver, desired, attempts, intent_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)
                 RETURNING id",
                args![apply_id, address, action.as_str(), driver, desired, now()],
                |r| r.get(0),
            );
        };
        // The check and the write are one statement: no other applier can take the lease
        // over between them.
        conn.query_row_opt(
            &format!(
                "INSERT INTO journal (apply_id, address, action, driver, desired, attempts, intent_at, epoch)
                 SELECT ?1, ?2, ?3, ?4, ?5, 1, ?6, ?7 FROM lease
                 WHERE id = 1 AND epoch = ?7 AND pid = ?8 AND host = ?9 AND expires_at >= {}
                 RETURNING id",
                lease::db_now(conn.dialect())
            ),
            args![
                apply_id,
                address,
                action.as_str(),
                driver,
                desired,
                now(),
                epoch,
                std::process::id() as i64,
                lease::hostname()
            ],
            |r| r.get(0),
        )?
        .ok_or(StoreError::LeaseLost(epoch))
    }

    /// Counts a retry (the first attempt is counted by the intent itself).
    pub fn journal_attempt(&self, journal_id: i64) -> Result<()> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        self.fence(&tx)?;
        tx.execute(
            "UPDATE journal SET attempts = attempts + 1 WHERE id = ?1",
            args![journal_id],
        )?;
        tx.commit()?;
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
        applied: &Applied,
    ) -> Result<()> {
        self.record_applied(journal_id, apply_id, revision, resource, applied, None)
    }

    /// [`Store::journal_applied`] of a resource a `moved` block renamed: it takes the place of
    /// the row at `from` (its history stays in the journal under both addresses).
    pub fn journal_applied_in_place_of(
        &self,
        journal_id: i64,
        apply_id: i64,
        revision: &str,
        resource: &StoredResource,
        applied: &Applied,
        from: &str,
    ) -> Result<()> {
        self.record_applied(
            journal_id,
            apply_id,
            revision,
            resource,
            applied,
            Some(from),
        )
    }

    fn record_applied(
        &self,
        journal_id: i64,
        apply_id: i64,
        revision: &str,
        resource: &StoredResource,
        applied: &Applied,
        in_place_of: Option<&str>,
    ) -> Result<()> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        // The result of a call made under a lease since lost is not recorded over what the
        // new owner applied: it finds the intent open and observes the world instead.
        self.fence(&tx)?;
        let address = format!("{}/{}", resource.snapshot.kind, resource.snapshot.name);
        tx.execute(
            "INSERT INTO resources (address, kind, driver, snapshot, desired, outputs, status, revision, apply_id, updated_at, inventory)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'applied', ?7, ?8, ?9, ?10)
             ON CONFLICT (address) DO UPDATE SET kind = excluded.kind, driver = excluded.driver, snapshot = excluded.snapshot,
               desired = excluded.desired, outputs = excluded.outputs, status = excluded.status, revision = excluded.revision,
               apply_id = excluded.apply_id, updated_at = excluded.updated_at, inventory = excluded.inventory,
               health = 'ready', health_message = NULL",
            args![
                address,
                resource.snapshot.kind.as_str(),
                resource.snapshot.driver,
                serde_json::to_string(&resource.snapshot).map_err(corrupt)?,
                serde_json::to_string(&resource.desired).map_err(corrupt)?,
                serde_json::to_string(&applied.outputs).map_err(corrupt)?,
                revision,
                apply_id,
                now(),
                serde_json::to_string(&applied.inventory).map_err(corrupt)?
            ],
        )?;
        if let Some(from) = in_place_of.filter(|from| *from != address) {
            tx.execute("DELETE FROM resources WHERE address = ?1", args![from])?;
            event_of(
                &tx,
                "moved",
                &format!("{from} is now {address}"),
                Some(&address),
            )?;
        }
        close_intent_and_bump_generation(&tx, journal_id)?;
        tx.commit()?;
        Ok(())
    }

    /// Records a successful delete.
    pub fn journal_deleted(&self, journal_id: i64, address: &str) -> Result<()> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        self.fence(&tx)?;
        tx.execute("DELETE FROM resources WHERE address = ?1", args![address])?;
        close_intent_and_bump_generation(&tx, journal_id)?;
        tx.commit()?;
        Ok(())
    }

    /// Closes an intent that did not succeed, with its event, in one transaction.
    pub fn journal_failed(
        &self,
        journal_id: i64,
        result: IntentResult,
        address: &str,
        error: &str,
    ) -> Result<()> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        self.fence(&tx)?;
        tx.execute(
            "UPDATE journal SET result = ?1, error = ?2, result_at = ?3 WHERE id = ?4",
            args![result.as_str(), error, now(), journal_id],
        )?;
        if result == IntentResult::Failed {
            event_of(
                &tx,
                "apply-failed",
                &format!("{address}: {error}"),
                Some(address),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Journal rows matching `condition` (SQL over the journal's columns), oldest first.
    fn journal_rows(&self, condition: &str) -> Result<Vec<JournalRow>> {
        self.conn().query_map(
            &format!(
                "SELECT id, apply_id, address, action, driver, attempts, result, desired, epoch FROM journal WHERE {condition} ORDER BY id"
            ),
            args![],
            |r| {
                Ok(JournalRow {
                    id: r.get(0)?,
                    apply_id: r.get(1)?,
                    address: r.get(2)?,
                    action: r.get(3)?,
                    driver: r.get(4)?,
                    attempts: r.get(5)?,
                    result: r.get(6)?,
                    desired: r.get(7)?,
                    epoch: r.get(8)?,
                })
            },
        )
    }

    /// Whether the last attempt to create `address` was interrupted (closed as abandoned by
    /// recovery) and nothing was applied for it since.
    pub fn interrupted_create(&self, address: &str) -> Result<bool> {
        let found: Option<i64> = self.conn().query_row_opt(
            "SELECT id FROM journal WHERE address = ?1 AND action IN ('create', 'replace')
               AND result = ?2
               AND id > COALESCE((SELECT MAX(id) FROM journal WHERE address = ?1 AND result = 'ok'), 0)
             LIMIT 1",
            args![address, IntentResult::Abandoned.as_str()],
            |r| r.get(0),
        )?;
        Ok(found.is_some())
    }

    /// Intents whose outcome is unknown (left by a crash), with what they asked for.
    pub fn open_intents(&self) -> Result<Vec<OpenIntent>> {
        self.journal_rows("result IS NULL")?
            .into_iter()
            .map(|row| {
                Ok(OpenIntent {
                    id: row.id,
                    apply_id: row.apply_id,
                    action: parse_state(&row.action)?,
                    desired: row
                        .desired
                        .map(|d| serde_json::from_str(&d).map_err(corrupt))
                        .transpose()?,
                    address: row.address,
                    driver: row.driver,
                })
            })
            .collect()
    }

    /// Every journal entry, oldest first.
    pub fn journal(&self) -> Result<Vec<JournalEntry>> {
        self.journal_rows("TRUE")?
            .into_iter()
            .map(|row| {
                Ok(JournalEntry {
                    id: row.id,
                    apply_id: row.apply_id,
                    address: row.address,
                    action: parse_state(&row.action)?,
                    attempts: row.attempts,
                    result: row.result.as_deref().map(parse_state).transpose()?,
                    epoch: row.epoch,
                })
            })
            .collect()
    }

    /// Applies left `running` by a process that is gone are marked `interrupted` (never deleted).
    pub fn mark_interrupted(&self) -> Result<usize> {
        self.conn().execute(
            "UPDATE applies SET status = ?1, finished_at = ?2 WHERE status = ?3 AND holder != ?4",
            args![
                ApplyStatus::Interrupted.as_str(),
                now(),
                ApplyStatus::Running.as_str(),
                applier_id()
            ],
        )
    }

    /// Every apply, oldest first.
    pub fn history(&self) -> Result<Vec<ApplyRecord>> {
        self.conn().query_map(
            "SELECT id, revision, reason, started_at, finished_at, status, summary, actor, note FROM applies ORDER BY id",
            args![],
            |r| {
                Ok(ApplyRecord {
                    id: r.get(0)?,
                    revision: r.get(1)?,
                    reason: parse_state(&r.get::<String>(2)?)?,
                    started_at: r.get(3)?,
                    finished_at: r.get(4)?,
                    status: parse_state(&r.get::<String>(5)?)?,
                    summary: r.get(6)?,
                    actor: r.get(7)?,
                    note: r.get(8)?,
                })
            },
        )
    }
}
