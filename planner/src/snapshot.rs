//! A snapshot is the full desired state of a stack as plain data: what the store keeps for every
//! applied revision (so rollback needs no git) and what plans are computed between.

use crate::model::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_monthly_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSnapshot {
    pub kind: Kind,
    pub name: String,
    pub driver: String,
    pub team: String,
    /// Canonical spec: `team`, `labels`, the kind's fields with defaults filled in, and
    /// `lifecycle` (`protect`, `drift`, `ignore-changes`). Keys are kebab-case, as in KDL.
    pub spec: serde_json::Value,
    pub depends_on: Vec<String>,
    pub protect: bool,
    pub drift: DriftPolicy,
    pub ignore_changes: Vec<String>,
    pub monthly_cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    pub format_version: u32,
    pub stack: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub teams: BTreeMap<String, TeamInfo>,
    pub resources: BTreeMap<String, ResourceSnapshot>,
}

impl Snapshot {
    pub fn empty(stack: &str) -> Snapshot {
        Snapshot {
            format_version: SNAPSHOT_FORMAT_VERSION,
            stack: stack.to_string(),
            ..Snapshot::default()
        }
    }

    /// The snapshot of a valid stack; `costs` from [`crate::cost::estimate`].
    pub fn from_stack(stack: &Stack, costs: &BTreeMap<String, f64>) -> Snapshot {
        let default_drift = stack.default_drift();
        let mut resources = BTreeMap::new();
        for r in &stack.resources {
            let address = r.address.to_string();
            let drift = r.drift.unwrap_or(default_drift);
            let ignore_changes: Vec<String> =
                r.ignore_changes.iter().map(|s| s.value.clone()).collect();
            let mut spec = serde_json::Map::new();
            spec.insert(
                "team".into(),
                r.team
                    .as_ref()
                    .map(|t| t.value.clone())
                    .unwrap_or_default()
                    .into(),
            );
            if !r.labels.is_empty() {
                spec.insert(
                    "labels".into(),
                    serde_json::to_value(&r.labels).unwrap_or_default(),
                );
            }
            if let serde_json::Value::Object(fields) =
                serde_json::to_value(&r.spec).unwrap_or_default()
            {
                spec.extend(fields);
            }
            spec.insert(
                "lifecycle".into(),
                serde_json::json!({ "protect": r.protect, "drift": drift.as_str(), "ignore-changes": ignore_changes }),
            );
            let mut depends_on: Vec<String> =
                r.references.iter().map(|x| x.target.to_string()).collect();
            depends_on.sort();
            depends_on.dedup();
            resources.insert(
                address.clone(),
                ResourceSnapshot {
                    kind: r.address.kind,
                    name: r.address.name.clone(),
                    driver: stack.driver_for(r).unwrap_or_default(),
                    team: r.team.as_ref().map(|t| t.value.clone()).unwrap_or_default(),
                    spec: serde_json::Value::Object(spec),
                    depends_on,
                    protect: r.protect,
                    drift,
                    ignore_changes,
                    monthly_cost_usd: costs.get(&address).copied().unwrap_or(0.0),
                },
            );
        }
        let teams = stack
            .teams
            .iter()
            .map(|t| {
                (
                    t.name.value.clone(),
                    TeamInfo {
                        owner: t.owner.clone(),
                        budget_monthly_usd: t.budget_monthly_usd,
                    },
                )
            })
            .collect();
        let platform = stack.platform.as_ref();
        Snapshot {
            format_version: SNAPSHOT_FORMAT_VERSION,
            stack: platform.map(|p| p.name.value.clone()).unwrap_or_default(),
            environment: platform.and_then(|p| p.environment.clone()),
            teams,
            resources,
        }
    }
}
