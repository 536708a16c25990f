//! Approvals: a plan put up for approval, approved by exactly its hash, used once.

use super::sql::{self, args};
use super::{Approval, Result, Store, now};

impl Store {
    /// Asks for approval of the plan `plan_hash` for `revision` (once; asking again keeps the
    /// first request and any answer).
    pub fn request_approval(&self, revision: &str, plan_hash: &str, summary: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO approvals (revision, plan_hash, summary, requested_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (revision, plan_hash) DO NOTHING",
            args![revision, plan_hash, summary, now()],
        )?;
        Ok(())
    }

    fn approval_rows(&self, sql: &str, key: &[sql::Value]) -> Result<Vec<Approval>> {
        self.conn().query_map(sql, key, |r| {
            Ok(Approval {
                revision: r.get(0)?,
                plan_hash: r.get(1)?,
                summary: r.get(2)?,
                requested_at: r.get(3)?,
                approved_by: r.get(4)?,
                approved_at: r.get(5)?,
                applied_at: r.get(6)?,
            })
        })
    }

    /// The newest request not yet applied: what an operator would approve now.
    pub fn pending_approval(&self) -> Result<Option<Approval>> {
        Ok(self
            .approval_rows(
                "SELECT revision, plan_hash, summary, requested_at, approved_by, approved_at, applied_at
                 FROM approvals WHERE applied_at IS NULL ORDER BY id DESC LIMIT 1",
                args![],
            )?
            .pop())
    }

    /// The request for exactly this plan.
    pub fn approval(&self, revision: &str, plan_hash: &str) -> Result<Option<Approval>> {
        Ok(self
            .approval_rows(
                "SELECT revision, plan_hash, summary, requested_at, approved_by, approved_at, applied_at
                 FROM approvals WHERE revision = ?1 AND plan_hash = ?2",
                args![revision, plan_hash],
            )?
            .pop())
    }

    /// Approves the request for exactly this plan; `false` when there is no such open request.
    pub fn approve(&self, revision: &str, plan_hash: &str, actor: &str) -> Result<bool> {
        let changed = self.conn().execute(
            "UPDATE approvals SET approved_by = ?3, approved_at = ?4
             WHERE revision = ?1 AND plan_hash = ?2 AND applied_at IS NULL",
            args![revision, plan_hash, actor, now()],
        )?;
        Ok(changed > 0)
    }

    /// Marks an approval used by the apply it allowed.
    pub fn approval_applied(&self, revision: &str, plan_hash: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE approvals SET applied_at = ?3 WHERE revision = ?1 AND plan_hash = ?2",
            args![revision, plan_hash, now()],
        )?;
        Ok(())
    }
}
