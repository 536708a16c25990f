//! The cost controller's records: resources held scaled down, idle tracking, and the periods
//! spent scaled down (savings). Times are Unix seconds from the caller's clock.

use super::sql::{args, write_transaction};
use super::{Result, Store, event_of};

/// A resource the cost controller holds scaled down.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledDown {
    pub address: String,
    pub kind: String,
    pub team: String,
    pub since: i64,
    /// `idle 2h13m, cost policy`.
    pub note: String,
    /// What was observed: `requests 0/s ≤ 0`.
    pub figure: String,
    /// The declared canonical spec when it was scaled down.
    pub spec_before: String,
    pub monthly_usd_before: f64,
    pub monthly_usd_saved: f64,
}

/// Savings of one resource over a span of time.
#[derive(Debug, Clone, PartialEq)]
pub struct Saving {
    pub address: String,
    pub kind: String,
    pub team: String,
    pub usd: f64,
}

const HOURS_PER_MONTH: f64 = 730.0;

impl Store {
    pub fn scaled_down(&self) -> Result<Vec<ScaledDown>> {
        self.conn().query_map(
            "SELECT address, kind, team, since, note, figure, spec_before, monthly_usd_before, monthly_usd_saved
             FROM scaled_down ORDER BY address",
            args![],
            |r| {
                Ok(ScaledDown {
                    address: r.get(0)?,
                    kind: r.get(1)?,
                    team: r.get(2)?,
                    since: r.get(3)?,
                    note: r.get(4)?,
                    figure: r.get(5)?,
                    spec_before: r.get(6)?,
                    monthly_usd_before: r.get(7)?,
                    monthly_usd_saved: r.get(8)?,
                })
            },
        )
    }

    /// Holds a resource scaled down (before the apply that scales it, so a crash between the two
    /// is finished by the next reconcile) and ends its idle tracking.
    pub fn record_scaled_down(&self, s: &ScaledDown) -> Result<()> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        tx.execute(
            "INSERT INTO scaled_down (address, kind, team, since, note, figure, spec_before, monthly_usd_before, monthly_usd_saved)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (address) DO UPDATE SET kind = excluded.kind, team = excluded.team, since = excluded.since,
               note = excluded.note, figure = excluded.figure, spec_before = excluded.spec_before,
               monthly_usd_before = excluded.monthly_usd_before, monthly_usd_saved = excluded.monthly_usd_saved",
            args![
                s.address,
                s.kind,
                s.team,
                s.since,
                s.note,
                s.figure,
                s.spec_before,
                s.monthly_usd_before,
                s.monthly_usd_saved
            ],
        )?;
        tx.execute(
            "DELETE FROM idle_since WHERE address = ?1",
            args![&s.address],
        )?;
        event_of(
            &tx,
            "idle-shutdown",
            &format!("{} scaled down: {} ({})", s.address, s.note, s.figure),
            Some(&s.address),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Ends a scale-down: the row goes, the period is kept for the savings report.
    pub fn end_scaled_down(&self, address: &str, at: i64, woken_by: &str) -> Result<bool> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        let row: Option<(String, String, i64, f64)> = tx.query_row_opt(
            "SELECT kind, team, since, monthly_usd_saved FROM scaled_down WHERE address = ?1",
            args![address],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let Some((kind, team, since, saved)) = row else {
            return Ok(false);
        };
        tx.execute(
            "INSERT INTO idle_periods (address, kind, team, started_at, ended_at, monthly_usd_saved, woken_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![address, kind, team, since, at.max(since), saved, woken_by],
        )?;
        tx.execute("DELETE FROM scaled_down WHERE address = ?1", args![address])?;
        event_of(
            &tx,
            "wake",
            &format!("{address} woken: {woken_by}"),
            Some(address),
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Drops a scale-down that could not be applied, keeping the idle count from `idle_since`.
    pub fn forget_scaled_down(&self, address: &str, idle_since: i64) -> Result<()> {
        let conn = self.conn();
        let tx = write_transaction(&conn)?;
        tx.execute("DELETE FROM scaled_down WHERE address = ?1", args![address])?;
        tx.execute(
            "INSERT INTO idle_since (address, since) VALUES (?1, ?2)
             ON CONFLICT (address) DO UPDATE SET since = excluded.since",
            args![address, idle_since],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// When each candidate was first seen idle (and has been idle at every look since).
    pub fn idle_since(&self) -> Result<std::collections::HashMap<String, i64>> {
        let rows =
            self.conn()
                .query_map("SELECT address, since FROM idle_since", args![], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        Ok(rows.into_iter().collect())
    }

    pub fn set_idle_since(&self, address: &str, since: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO idle_since (address, since) VALUES (?1, ?2) ON CONFLICT (address) DO NOTHING",
            args![address, since],
        )?;
        Ok(())
    }

    pub fn clear_idle_since(&self, address: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM idle_since WHERE address = ?1", args![address])?;
        Ok(())
    }

    /// What idle shutdown saved between `from` and `to`, per resource: every period scaled down
    /// (ended or still running) times the monthly estimate it took off.
    pub fn savings(&self, from: i64, to: i64) -> Result<Vec<Saving>> {
        let rows: Vec<(String, String, String, i64, i64, f64)> = self.conn().query_map(
            "SELECT address, kind, team, started_at, ended_at, monthly_usd_saved FROM idle_periods
             WHERE ended_at > ?1 AND started_at < ?2
             UNION ALL
             SELECT address, kind, team, since, CAST(?2 AS BIGINT), monthly_usd_saved FROM scaled_down WHERE since < ?2",
            args![from, to],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )?;
        let mut by_address: std::collections::BTreeMap<String, Saving> = Default::default();
        for (address, kind, team, start, end, monthly) in rows {
            let hours = (end.min(to) - start.max(from)).max(0) as f64 / 3600.0;
            let entry = by_address.entry(address.clone()).or_insert(Saving {
                address,
                kind,
                team,
                usd: 0.0,
            });
            entry.usd += monthly * hours / HOURS_PER_MONTH;
        }
        Ok(by_address.into_values().collect())
    }
}
