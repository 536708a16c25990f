//! Drift: scan (observe every driver, compare with the store, record the findings) and
//! correct (re-apply what was chosen).

use super::{ApplyOutcome, Ops, OpsError, plan_against_store};
use crate::engine::DriftScan;
use crate::store::Store;
use api::ApplyReason;
use planner::Snapshot;
use planner::model::DriftPolicy;
use planner::plan::{DriftFinding, DriftStatus, Plan};

/// Which findings a correction touches. `ignore` and orphans never are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriftScope {
    /// The scheduled check: findings with policy `correct`.
    Scheduled,
    /// An operator's request: policy `report` too (that is what the request is for), all
    /// findings or only one resource's.
    Operator { only: Option<String> },
}

impl DriftScope {
    fn includes(&self, finding: &DriftFinding) -> bool {
        if finding.status == DriftStatus::Orphan {
            return false;
        }
        match self {
            DriftScope::Scheduled => finding.policy == Some(DriftPolicy::Correct),
            DriftScope::Operator { only } => {
                matches!(
                    finding.policy,
                    Some(DriftPolicy::Correct | DriftPolicy::Report)
                ) && only.as_ref().is_none_or(|a| &finding.address == a)
            }
        }
    }
}

pub struct CorrectionReport {
    /// How many findings were chosen for correction (0: nothing to do).
    pub corrected: usize,
    /// The plan that corrected them and how its apply went.
    pub applied: Option<(Plan, ApplyOutcome)>,
}

impl Ops {
    /// Observes the drivers `reference` declares and compares with the store; the findings are
    /// recorded (an empty scan too) and returned. `declared` (the current stack) keeps
    /// resources declared but not yet applied from being called orphans.
    pub async fn scan_drift(
        &self,
        reference: &Snapshot,
        declared: Option<&Snapshot>,
    ) -> Result<Vec<DriftFinding>, OpsError> {
        Ok(self.scan(reference, declared).await?.findings)
    }

    /// A drift scan with the live documents it saw (health is recorded in the store).
    pub async fn scan(
        &self,
        reference: &Snapshot,
        declared: Option<&Snapshot>,
    ) -> Result<DriftScan, OpsError> {
        let stack = self
            .store
            .stack_name()?
            .unwrap_or_else(|| reference.stack.clone());
        let scan = self
            .engine(reference)?
            .scan(&stack, declared)
            .await
            .map_err(OpsError::DriftScan)?;
        self.store.record_drift(&scan.findings)?;
        Ok(scan)
    }

    /// Every applied resource with its health, the last scan's drift and, when given, live
    /// documents.
    pub fn resources(
        &self,
        findings: &[DriftFinding],
        live: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Result<Vec<api::ResourceStatus>, OpsError> {
        resource_statuses(&self.store, findings, live)
    }

    /// Corrects the findings `scope` chooses by re-applying those resources as `snapshot` (the
    /// revision in force) has them, whatever their policy. Nothing else is applied: a change
    /// the plan has besides the corrections waits for its own apply and its gates.
    pub async fn correct_drift(
        &self,
        snapshot: &Snapshot,
        revision: &str,
        findings: Vec<DriftFinding>,
        scope: &DriftScope,
    ) -> Result<CorrectionReport, OpsError> {
        let chosen: Vec<DriftFinding> = findings
            .into_iter()
            .filter(|f| scope.includes(f))
            .map(|mut f| {
                f.policy = Some(DriftPolicy::Correct);
                f
            })
            .collect();
        if chosen.is_empty() {
            return Ok(CorrectionReport {
                corrected: 0,
                applied: None,
            });
        }
        if let Some(pin) = self.store.pinned_revision()? {
            return Err(OpsError::Pinned(pin));
        }
        let corrected = chosen.len();
        let session = self.session(snapshot).await?;
        let planned =
            plan_against_store(&self.store, snapshot, revision, super::Choices::default())?;
        let plan = planned.plan.drift_corrections(chosen);
        if plan.policy.blocked {
            return Err(OpsError::Blocked("correction"));
        }
        let applied = session
            .execute(&plan, snapshot, revision, ApplyReason::DriftCorrect, None)
            .await?;
        Ok(CorrectionReport {
            corrected,
            applied: Some(applied),
        })
    }
}

/// Every applied resource with its recorded health, its finding in `findings`, and its live
/// documents from `live`: the resources view of the API and the UI.
pub fn resource_statuses(
    store: &Store,
    findings: &[DriftFinding],
    live: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<Vec<api::ResourceStatus>, OpsError> {
    let mut rows = store.resource_statuses()?;
    let drift: std::collections::HashMap<&str, DriftStatus> = findings
        .iter()
        .map(|f| (f.address.as_str(), f.status))
        .collect();
    for row in &mut rows {
        row.drift = drift.get(row.address.as_str()).copied();
        row.live = match live.get(&row.address) {
            Some(serde_json::Value::Array(docs)) => docs.clone(),
            Some(other) => vec![other.clone()],
            None => Vec::new(),
        };
    }
    Ok(rows)
}
