//! A snapshot is the full desired state of a stack as plain data: what the store keeps for every
//! applied revision (so rollback needs no git) and what plans are computed between.

use crate::model::*;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// A canonical spec stored as compact JSON text: ten times smaller than a `serde_json::Value`
/// tree, shared (not copied) between snapshots and plans, and equal specs compare as strings
/// without parsing. Serialized inline as the JSON object it holds, as written: the text is
/// serde_json's own output (or was checked when read), so it is never parsed again on the way
/// out.
#[derive(Clone)]
pub struct SpecJson(Arc<serde_json::value::RawValue>);

impl SpecJson {
    pub fn from_value(value: &serde_json::Value) -> SpecJson {
        SpecJson::of(value)
    }

    /// The JSON text of `value`. (`to_raw_value` keeps serde_json's text without checking it
    /// again.)
    fn of<T: Serialize + ?Sized>(value: &T) -> SpecJson {
        let raw = serde_json::value::to_raw_value(value)
            .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned());
        SpecJson(Arc::from(raw))
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The spec as a JSON value (keys in canonical order).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.as_str()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for SpecJson {
    fn eq(&self, other: &SpecJson) -> bool {
        // A kept spec (`MemoizedSpec`) is shared with the snapshot planned against it.
        Arc::ptr_eq(&self.0, &other.0) || self.as_str() == other.as_str()
    }
}

impl Eq for SpecJson {}

impl std::fmt::Debug for SpecJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SpecJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SpecJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Ok(SpecJson(Arc::from(raw)))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_monthly_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_quota: Option<LlmQuota>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSnapshot {
    pub kind: Kind,
    pub name: String,
    pub driver: String,
    pub team: String,
    /// Canonical spec: `team`, `labels`, the kind's fields with defaults filled in, and
    /// `lifecycle` (`protect`, `drift`, `ignore-changes`). Keys are kebab-case, as in KDL.
    pub spec: SpecJson,
    pub depends_on: Vec<String>,
    pub protect: bool,
    pub drift: DriftPolicy,
    pub ignore_changes: Vec<String>,
    pub monthly_cost_usd: f64,
    /// Set while the cost controller holds the resource scaled down (`crate::lifecycle`): why,
    /// for plans and the UI. The spec then is the scaled-down one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled_down: Option<String>,
    /// The template use that made it, when one did (`crate::template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<crate::template::TemplateOrigin>,
    /// Its own monthly cost budget (`cost-budget monthly-usd=`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_monthly_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    pub format_version: u32,
    pub stack: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub teams: BTreeMap<String, TeamInfo>,
    /// Declared drivers and their settings (`local` → `path`, …), so a stored snapshot can be
    /// applied again (rollback) without the stack it came from.
    #[serde(default)]
    pub drivers: BTreeMap<String, BTreeMap<String, String>>,
    pub resources: BTreeMap<String, ResourceSnapshot>,
    /// What the stack's `policy` rules found (`crate::policy`); a `deny` finding blocks a plan
    /// towards this snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_findings: Vec<PolicyFinding>,
    /// The platform's sync windows: when this snapshot may be applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<crate::window::SyncWindow>,
    /// Changes that wait for approval even with `sync "auto"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalScope>,
    /// Where the cost controller reads utilisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSource>,
    /// `import` blocks: address → the driver's id of the object it adopts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub imports: BTreeMap<String, String>,
    /// `moved` blocks: new address → the address it was applied as.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub moved: BTreeMap<String, String>,
    /// `removed` blocks: addresses let go without being deleted.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub removed: std::collections::BTreeSet<String>,
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
        // Each resource's canonical spec is independent of the others: built on every core,
        // in slices, and collected in order.
        // Built in address order: the map is then made from a sorted list without moving the
        // (large) entries about in a sort.
        const SLICE: usize = 256;
        let mut keyed: Vec<(String, &Resource)> = stack
            .resources
            .iter()
            .map(|r| (r.address.key(), r))
            .collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let built = crate::parallel::in_parallel(keyed.len().div_ceil(SLICE), |slice| {
            let end = ((slice + 1) * SLICE).min(keyed.len());
            keyed[slice * SLICE..end]
                .iter()
                .map(|(address, r)| {
                    (
                        address.clone(),
                        resource_snapshot(stack, costs, address, r, default_drift),
                    )
                })
                .collect::<Vec<_>>()
        });
        // A valid stack has no duplicate address (validation refuses one).
        let resources: BTreeMap<String, ResourceSnapshot> = built.into_iter().flatten().collect();
        let teams = stack
            .teams
            .iter()
            .map(|t| {
                (
                    t.name.value.clone(),
                    TeamInfo {
                        owner: t.owner.clone(),
                        budget_monthly_usd: t.budget_monthly_usd,
                        llm_quota: t.llm_quota.as_ref().map(|q| q.value),
                    },
                )
            })
            .collect();
        let platform = stack.platform.as_ref();
        let drivers = platform
            .map(|p| {
                p.drivers
                    .iter()
                    .map(|d| (d.driver.as_str().to_string(), d.settings.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Snapshot {
            drivers,
            format_version: SNAPSHOT_FORMAT_VERSION,
            stack: platform.map(|p| p.name.value.clone()).unwrap_or_default(),
            environment: platform.and_then(|p| p.environment.clone()),
            teams,
            resources,
            policy_findings: Vec::new(),
            windows: platform.map(|p| p.windows.clone()).unwrap_or_default(),
            approval: platform.and_then(|p| p.approval.clone()),
            metrics: platform.and_then(|p| p.metrics.clone()),
            imports: stack
                .imports
                .iter()
                .map(|i| (i.address.value.key(), i.id.value.clone()))
                .collect(),
            moved: stack
                .moves
                .iter()
                .map(|m| (m.to.value.key(), m.from.value.key()))
                .collect(),
            removed: stack
                .removals
                .iter()
                .map(|r| r.address.value.key())
                .collect(),
        }
    }
}

/// One resource's entry in the snapshot, under its address.
fn resource_snapshot(
    stack: &Stack,
    costs: &BTreeMap<String, f64>,
    address: &str,
    r: &Resource,
    default_drift: DriftPolicy,
) -> ResourceSnapshot {
    let drift = r.drift.unwrap_or(default_drift);
    let ignore_changes: Vec<String> = r.ignore_changes.iter().map(|s| s.value.clone()).collect();
    let spec = memoized_spec(r, drift, &ignore_changes);
    let mut depends_on: Vec<String> = r.references.iter().map(|x| x.target.key()).collect();
    depends_on.sort();
    depends_on.dedup();
    ResourceSnapshot {
        kind: r.address.kind,
        name: r.address.name.clone(),
        driver: stack.driver_for(r).unwrap_or_default(),
        team: r.team.as_ref().map(|t| t.value.clone()).unwrap_or_default(),
        spec,
        depends_on,
        protect: r.protect,
        drift,
        ignore_changes,
        monthly_cost_usd: costs.get(address).copied().unwrap_or(0.0),
        scaled_down: None,
        template: stack.templates.origin(r.name_span, &stack.sources),
        budget_monthly_usd: r.cost_budget.as_ref().map(|b| b.value),
    }
}

/// What a resource's canonical spec is made of, serialized in this order: `team`, `labels`
/// (when any), the kind's fields, `monitoring` (when set), then `lifecycle`. Borrowed from the
/// resource to serialize it in one pass (no `serde_json::Value` tree, no second copy: large
/// stacks make many of them); owned by a [`MemoizedSpec`], to compare later inputs with. One type
/// for both, so nothing the spec is made of can be left out of the comparison.
#[derive(Serialize, PartialEq)]
struct Canonical<'a> {
    team: Cow<'a, str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: Cow<'a, BTreeMap<String, String>>,
    /// The kind's fields, as members of this object.
    #[serde(flatten)]
    spec: SharedSpec<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    monitoring: Option<Cow<'a, Monitoring>>,
    lifecycle: Lifecycle<'a>,
}

/// A resource's spec in [`Canonical`]: the resource's own, or kept by a memo. The copies of a
/// cached file's resource share their spec, so equal inputs are mostly found by identity.
enum SharedSpec<'a> {
    Borrowed(&'a Arc<Spec>),
    Owned(Arc<Spec>),
}

impl SharedSpec<'_> {
    fn arc(&self) -> &Arc<Spec> {
        match self {
            SharedSpec::Borrowed(spec) => spec,
            SharedSpec::Owned(spec) => spec,
        }
    }
}

impl PartialEq for SharedSpec<'_> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(self.arc(), other.arc()) || **self.arc() == **other.arc()
    }
}

impl Serialize for SharedSpec<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self.arc()).serialize(serializer)
    }
}

#[derive(Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
struct Lifecycle<'a> {
    protect: bool,
    drift: &'static str,
    ignore_changes: Cow<'a, [String]>,
}

impl<'a> Canonical<'a> {
    fn of(r: &'a Resource, drift: DriftPolicy, ignore_changes: &'a [String]) -> Canonical<'a> {
        Canonical {
            team: Cow::Borrowed(r.team.as_ref().map_or("", |t| t.value.as_str())),
            labels: Cow::Borrowed(&r.labels),
            spec: SharedSpec::Borrowed(&r.spec),
            monitoring: r.monitoring.as_ref().map(|m| Cow::Borrowed(&m.value)),
            lifecycle: Lifecycle {
                protect: r.protect,
                drift: drift.as_str(),
                ignore_changes: Cow::Borrowed(ignore_changes),
            },
        }
    }

    fn into_owned(self) -> Canonical<'static> {
        Canonical {
            team: Cow::Owned(self.team.into_owned()),
            labels: Cow::Owned(self.labels.into_owned()),
            spec: SharedSpec::Owned(Arc::clone(self.spec.arc())),
            monitoring: self.monitoring.map(|m| Cow::Owned(m.into_owned())),
            lifecycle: Lifecycle {
                protect: self.lifecycle.protect,
                drift: self.lifecycle.drift,
                ignore_changes: Cow::Owned(self.lifecycle.ignore_changes.into_owned()),
            },
        }
    }
}

/// What a canonical spec was made of, and what was made: kept in a resource's
/// [`crate::kept::KeptCell`] across analyses.
///
/// Resources of a file in a `ParseCache` are copied out of the cache into every analysis, and
/// the copies share the cell: the first snapshot fills it, and later ones (a watch-mode re-plan,
/// the head of a pull request after its base) reuse the text instead of serializing the spec
/// again. Reuse is decided by comparing the inputs, never assumed: validation may still change
/// a copied resource (a pipeline's sink records its database's engine, which another file
/// declares), and the platform's default drift policy may change.
struct MemoizedSpec {
    inputs: Canonical<'static>,
    made: SpecJson,
}

/// `r`'s canonical spec: the kept one when it was made from the same inputs.
fn memoized_spec(r: &Resource, drift: DriftPolicy, ignore_changes: &[String]) -> SpecJson {
    let inputs = Canonical::of(r, drift, ignore_changes);
    if !r.spec_memo.is_on() {
        return SpecJson::of(&inputs);
    }
    if let Some(kept) = r.spec_memo.get::<MemoizedSpec>()
        && kept.inputs == inputs
    {
        return kept.made.clone();
    }
    let made = SpecJson::of(&inputs);
    // Only the first is kept: a cached resource's inputs rarely change, and when they do the
    // comparison above sends it here each time, which is correct, only not faster.
    r.spec_memo.keep(MemoizedSpec {
        inputs: inputs.into_owned(),
        made: made.clone(),
    });
    made
}
