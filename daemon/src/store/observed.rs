//! What was observed of the world: resource health and drift scans.

use super::sql::{Dialect, args, write_transaction};
use super::{Result, Store, corrupt, now, parse_state};

impl Store {
    /// Records what a drift scan saw of each applied resource's health, in one transaction.
    pub fn record_health(&self, health: &[(String, api::Health, Option<String>)]) -> Result<()> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        for (address, h, message) in health {
            tx.execute(
                "UPDATE resources SET health = ?1, health_message = ?2 WHERE address = ?3",
                args![h.as_str(), message, address],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every applied resource with its health, by address (drift and live objects are the
    /// caller's to add).
    pub fn resource_statuses(&self) -> Result<Vec<api::ResourceStatus>> {
        let conn = self.conn();
        // The team is read out of the stored snapshot by the database: the UI asks every
        // second, and parsing 10,000 snapshots for one field each time is not needed.
        let team = match conn.dialect() {
            Dialect::Sqlite => "json_extract(snapshot, '$.team')",
            Dialect::Postgres => "CAST(snapshot AS jsonb) ->> 'team'",
        };
        conn.query_map(
            &format!(
                "SELECT address, kind, driver, COALESCE({team}, ''), health, health_message, revision, updated_at
                 FROM resources ORDER BY address"
            ),
            args![],
            |r| {
                Ok(api::ResourceStatus {
                    address: r.get(0)?,
                    kind: r.get(1)?,
                    driver: r.get(2)?,
                    team: r.get(3)?,
                    health: parse_state(&r.get::<String>(4)?)?,
                    message: r.get(5)?,
                    revision: r.get(6)?,
                    applied_at: r.get(7)?,
                    drift: None,
                    live: Vec::new(),
                })
            },
        )
    }

    /// Records one drift scan's findings (none is a scan too); returns the scan id.
    pub fn record_drift(&self, findings: &[planner::plan::DriftFinding]) -> Result<i64> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        let at = now();
        let scan: i64 = tx.query_row(
            "INSERT INTO drift_scans (scanned_at, findings) VALUES (?1, ?2) RETURNING id",
            args![at, findings.len() as i64],
            |r| r.get(0),
        )?;
        for f in findings {
            let details = serde_json::to_string(f).map_err(corrupt)?;
            tx.execute(
                "INSERT INTO drift (scan_id, scanned_at, address, status, details) VALUES (?1, ?2, ?3, ?4, ?5)",
                args![scan, at, f.address, f.status.as_str(), details],
            )?;
        }
        tx.commit()?;
        Ok(scan)
    }

    /// The findings of the last drift scan (empty when it found nothing).
    pub fn last_drift_findings(&self) -> Result<Vec<planner::plan::DriftFinding>> {
        self.conn().query_map(
            "SELECT details FROM drift WHERE scan_id = (SELECT MAX(id) FROM drift_scans) ORDER BY id",
            args![],
            |r| serde_json::from_str(r.text(0)?).map_err(corrupt),
        )
    }

    /// How many findings all drift scans recorded (history is kept).
    pub fn drift_findings_recorded(&self) -> Result<usize> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM drift", args![], |r| r.get(0))?;
        Ok(n as usize)
    }
}
