//! Plans: the difference between a prior snapshot and a desired one, as plain data.
//!
//! A plan is computed, rendered, saved and later executed as stored; nothing in it refers back
//! to the stack it came from. Its JSON form is documented in `docs/PLAN_FORMAT.md` and its
//! field names are stable.

use crate::cost::round_cents;
use crate::graph::Graph;
use crate::model::Kind;
use crate::snapshot::{ResourceSnapshot, Snapshot, SpecJson};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

pub const PLAN_FORMAT_VERSION: &str = "1";

/// How a plan shows a value it cannot know yet: an output of a resource the same plan creates,
/// replaces or changes, wired into another resource.
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    NoOp,
    /// An existing object adopted as the declared resource (`import`), then applied.
    Import,
    /// No longer managed, and not deleted (`removed`): platformd's marks come off its objects.
    Forget,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::NoOp => "no-op",
            Action::Import => "import",
            Action::Forget => "forget",
        }
    }

    /// The marker in text plans, as in `terraform plan`.
    pub fn marker(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::NoOp => " ",
            Action::Import => "<=",
            Action::Forget => "x",
        }
    }
}

/// What a plan was made against; a saved plan is refused when either has moved since.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MadeAgainst {
    /// The prior state's revision: a commit id for `--base`, or the store's applied revision.
    pub base_revision: Option<String>,
    /// The desired state's revision: a commit id, or `working-tree`.
    pub head_revision: Option<String>,
    /// The store generation the prior state was read at; `None` when planned from git alone.
    pub state_generation: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// Why this field forces replacement, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forces_replacement: Option<String>,
    /// The value after is an output of a resource this plan creates, replaces or changes: it is
    /// known once that resource is applied, and `after` is `null` until then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub known_after_apply: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceCost {
    pub before: f64,
    pub after: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub address: String,
    pub kind: Kind,
    pub driver: String,
    pub team: String,
    pub action: Action,
    pub reason: String,
    /// Specs are shared with the snapshots they came from, not copied.
    pub before: Option<SpecJson>,
    pub after: Option<SpecJson>,
    pub changed_paths: Vec<String>,
    /// Field-level detail of `changed_paths`, in the same order.
    pub changes: Vec<FieldChange>,
    /// Paths that changed but are listed in `ignore-changes`, so are not applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_paths: Vec<String>,
    pub depends_on: Vec<String>,
    /// A delete or replace of a protected resource that was not explicitly allowed.
    pub blocked: bool,
    pub cost: ResourceCost,
    /// Why the cost controller holds this resource scaled down in the desired state, if it does
    /// (`crate::lifecycle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled_down: Option<String>,
    /// The template use that makes the resource, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<crate::template::TemplateOrigin>,
    /// The resource's own monthly cost budget, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_monthly_usd: Option<f64>,
    /// A replace that moves the resource (a driver setting puts it elsewhere, or a `moved`
    /// block renames what its driver cannot rename): made in the new place first, then its old
    /// objects removed through the driver as it was set before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moves: bool,
    /// The address the resource was applied as, when a `moved` block renames it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
    /// The driver's id of the object an `import` adopts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub no_op: usize,
    pub blocked: usize,
    pub has_changes: bool,
    #[serde(default)]
    pub import: usize,
    #[serde(default)]
    pub forget: usize,
}

impl Summary {
    /// Counts `resources` by action.
    pub fn of(resources: &[ResourceChange]) -> Summary {
        let mut summary = Summary::default();
        for r in resources {
            match r.action {
                Action::Create => summary.create += 1,
                Action::Update => summary.update += 1,
                Action::Replace => summary.replace += 1,
                Action::Delete => summary.delete += 1,
                Action::NoOp => summary.no_op += 1,
                Action::Import => summary.import += 1,
                Action::Forget => summary.forget += 1,
            }
            summary.blocked += usize::from(r.blocked);
        }
        summary.has_changes = summary.changes() > 0;
        summary
    }

    /// How many resources change.
    pub fn changes(&self) -> usize {
        self.create + self.update + self.replace + self.delete + self.import + self.forget
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// `budget`, `protected-delete`, or the name of a `policy` in the stack.
    pub policy: String,
    pub message: String,
    pub addresses: Vec<String>,
    /// `path:line:column` of the resource a `policy` finding is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    pub blocked: bool,
    pub violations: Vec<Violation>,
    pub warnings: Vec<Violation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamCost {
    pub team: String,
    pub before: f64,
    pub after: f64,
    pub delta: f64,
    pub budget: Option<f64>,
    pub over_budget: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    pub currency: String,
    pub before: f64,
    pub after: f64,
    pub delta: f64,
    pub teams: Vec<TeamCost>,
}

/// What a drift scan found for one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftStatus {
    /// Live fields platformd manages differ from what was applied.
    Drifted,
    /// Applied, then deleted outside platformd.
    Missing,
    /// Owned by platformd (by label or tag) but not declared.
    Orphan,
}

impl DriftStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftStatus::Drifted => "drifted",
            DriftStatus::Missing => "missing",
            DriftStatus::Orphan => "orphan",
        }
    }
}

impl std::fmt::Display for DriftStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A resource whose live state differs from its last applied spec (filled by `--refresh` and
/// the daemon; empty for plans made from git alone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftFinding {
    pub address: String,
    pub status: DriftStatus,
    /// The resource's drift policy; `None` for orphans (not declared, so no policy).
    pub policy: Option<crate::model::DriftPolicy>,
    /// Paths of the live document that differ from what was applied.
    pub changed_paths: Vec<String>,
    /// Per path: `before` is what was applied, `after` what is live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: String,
    pub stack: String,
    pub environment: Option<String>,
    pub made_against: MadeAgainst,
    pub summary: Summary,
    /// In apply order: creates, updates and replaces after their dependencies; then deletes,
    /// dependents before what they depended on.
    pub resources: Vec<ResourceChange>,
    pub drift: Vec<DriftFinding>,
    pub policy: PolicyReport,
    pub cost: CostReport,
    /// The drivers (and settings) the desired state is applied with.
    #[serde(default)]
    pub drivers: BTreeMap<String, BTreeMap<String, String>>,
    /// The platform's sync windows, so a saved plan is held to them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<crate::window::SyncWindow>,
    /// The windows' verdict when the plan was shown, while they forbid applying (set by the
    /// caller, which owns the clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<crate::window::WindowState>,
    /// The platform's `approval` scope, so a saved plan is held to it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<crate::model::ApprovalScope>,
    /// The addresses targeting limited the plan to (`--target`), with what they need; the rest
    /// of the stack is left as it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

impl Plan {
    /// The desired state a plan leads to, rebuilt from the plan alone (for `apply --plan`).
    pub fn desired_snapshot(&self) -> Snapshot {
        let plan = self;
        let mut snapshot = Snapshot::empty(&plan.stack);
        snapshot.environment = plan.environment.clone();
        snapshot.drivers = plan.drivers.clone();
        snapshot.windows = plan.windows.clone();
        snapshot.approval = plan.approval.clone();
        for r in &plan.resources {
            let Some(after) = &r.after else { continue };
            let value = after.value();
            let lifecycle = &value["lifecycle"];
            let drift = match lifecycle["drift"].as_str() {
                Some("report") => crate::model::DriftPolicy::Report,
                Some("ignore") => crate::model::DriftPolicy::Ignore,
                _ => crate::model::DriftPolicy::Correct,
            };
            let ignore_changes = lifecycle["ignore-changes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let name = r
                .address
                .split_once('/')
                .map_or(r.address.as_str(), |(_, n)| n)
                .to_string();
            snapshot.resources.insert(
                r.address.clone(),
                ResourceSnapshot {
                    kind: r.kind,
                    name,
                    driver: r.driver.clone(),
                    team: r.team.clone(),
                    spec: after.clone(),
                    depends_on: r.depends_on.clone(),
                    protect: lifecycle["protect"].as_bool().unwrap_or(false),
                    drift,
                    ignore_changes,
                    monthly_cost_usd: r.cost.after,
                    scaled_down: r.scaled_down.clone(),
                    template: r.template.clone(),
                    budget_monthly_usd: r.budget_monthly_usd,
                },
            );
        }
        snapshot
    }

    /// Marks no-op resources that drifted (with policy `correct`) as updates that correct the
    /// drift, and records every finding. Used by `plan --refresh` and drift correction.
    pub fn merge_drift(&mut self, findings: Vec<DriftFinding>) {
        for f in &findings {
            let correct = f.policy == Some(crate::model::DriftPolicy::Correct);
            let Some(r) = self.resources.iter_mut().find(|r| r.address == f.address) else {
                continue;
            };
            if !correct || r.action != Action::NoOp {
                continue;
            }
            r.action = Action::Update;
            r.reason = match f.status {
                DriftStatus::Missing => {
                    "missing: deleted outside platformd; re-created".to_string()
                }
                _ => format!("drifted: corrects {}", f.changed_paths.join(", ")),
            };
            r.changed_paths = f.changed_paths.clone();
            r.changes = f
                .changes
                .iter()
                .map(|c| FieldChange {
                    path: c.path.clone(),
                    before: c.after.clone(),
                    after: c.before.clone(),
                    forces_replacement: None,
                    known_after_apply: false,
                })
                .collect();
            self.summary.update += 1;
            self.summary.no_op -= 1;
        }
        self.summary.has_changes = self.summary.changes() > 0;
        self.drift = findings;
    }

    /// The plan of a drift correction: only the unchanged resources that `findings` correct,
    /// as updates. Every other change stays out: it is applied by its own plan, through its
    /// own gates, never as part of a correction.
    pub fn drift_corrections(&self, findings: Vec<DriftFinding>) -> Plan {
        let mut unchanged = self.clone();
        unchanged.resources.retain(|r| r.action == Action::NoOp);
        unchanged.summary = Summary {
            no_op: unchanged.resources.len(),
            ..Summary::default()
        };
        unchanged
            .policy
            .violations
            .retain(|v| v.policy != "protected-delete");
        unchanged.policy.blocked = !unchanged.policy.violations.is_empty();
        unchanged.merge_drift(findings);
        unchanged
    }

    /// Exit code for `--detailed-exitcode` semantics: 3 blocked, 2 changes, 0 nothing to do.
    pub fn exit_code(&self, detailed: bool) -> i32 {
        if self.policy.blocked {
            3
        } else if detailed && self.summary.has_changes {
            2
        } else {
            0
        }
    }

    /// Whether a change falls in the platform's `approval` scope (its kind or team).
    pub fn touches_approval_scope(&self) -> bool {
        let Some(scope) = &self.approval else {
            return false;
        };
        self.changes()
            .any(|r| scope.kinds.contains(&r.kind) || scope.teams.contains(&r.team))
    }

    /// What an approval approves: a SHA-256 over every change (address, action, the specs
    /// before and after, in apply order). Equal hashes mean the same changes; any other plan
    /// needs its own approval. Independent of when and against what the plan was made.
    pub fn approval_hash(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for r in self.changes() {
            for part in [
                r.address.as_str(),
                r.action.as_str(),
                r.before.as_ref().map_or("", |s| s.as_str()),
                r.after.as_ref().map_or("", |s| s.as_str()),
            ] {
                h.update(part.as_bytes());
                h.update([0]);
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The same plan without its no-op entries (the summary still counts them).
    pub fn changes_only(&self) -> Plan {
        Plan {
            resources: self.changes().cloned().collect(),
            ..self.clone()
        }
    }

    pub fn changes(&self) -> impl Iterator<Item = &ResourceChange> {
        self.resources.iter().filter(|r| r.action != Action::NoOp)
    }
}

/// Inputs a plan depends on beyond the two snapshots.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Addresses whose deletion or replacement is allowed even though they are protected.
    pub allow_destroy: Vec<String>,
    pub made_against: MadeAgainst,
    /// Addresses to replace even though nothing forces it (`--replace`).
    pub replace: Vec<String>,
    /// When given, only these addresses and what they need are planned (`--target`).
    pub targets: Vec<String>,
}

/// Plans the change from `prior` to `desired`.
pub fn plan(prior: &Snapshot, desired: &Snapshot, options: &PlanOptions) -> Plan {
    let allow: BTreeSet<&str> = options.allow_destroy.iter().map(String::as_str).collect();
    let mut resources = Vec::with_capacity(desired.resources.len());

    // Both maps are sorted by address: one walk pairs each desired resource with its prior
    // entry, and positions stand in for addresses while ordering.
    let desired_entries: Vec<(&String, &ResourceSnapshot)> = desired.resources.iter().collect();
    let (before_of, deleting) = join_sorted(&desired_entries, &prior.resources);
    let change_for = |i: usize| {
        let (address, after) = desired_entries[i];
        let address = address.as_str();
        match before_of[i] {
            None => ResourceChange {
                address: address.to_string(),
                kind: after.kind,
                driver: after.driver.clone(),
                team: after.team.clone(),
                action: Action::Create,
                reason: "not yet created".to_string(),
                before: None,
                after: Some(after.spec.clone()),
                changed_paths: Vec::new(),
                changes: Vec::new(),
                ignored_paths: Vec::new(),
                depends_on: after.depends_on.clone(),
                blocked: false,
                cost: ResourceCost {
                    before: 0.0,
                    after: after.monthly_cost_usd,
                },
                scaled_down: after.scaled_down.clone(),
                template: after.template.clone(),
                budget_monthly_usd: after.budget_monthly_usd,
                moves: false,
                moved_from: None,
                import_id: None,
            },
            Some(before) => diff_resource(address, before, after, &allow),
        }
    };
    // Each entry depends only on its own two snapshots: made on every core, in slices of the
    // order, and joined in order.
    const SLICE: usize = 512;
    let order = order_by_depends_on(&desired_entries);
    let made = crate::parallel::in_parallel(order.len().div_ceil(SLICE), |slice| {
        order[slice * SLICE..((slice + 1) * SLICE).min(order.len())]
            .iter()
            .map(|&i| change_for(i))
            .collect::<Vec<_>>()
    });
    resources.extend(made.into_iter().flatten());
    plan_moves_and_imports(&mut resources, prior, desired, &allow);
    let settings = setting_changes(prior, desired);
    let refused = plan_setting_changes(&mut resources, &settings, prior, &allow);
    replace_on_request(&mut resources, &options.replace, prior, &allow);

    // The prior state's graph orders deletes; most plans have none and skip building it.
    let prior_graph = if deleting {
        graph_of(prior)
    } else {
        Graph::from_dependencies(std::iter::empty())
    };
    // The sources of moves planned now: they continue under their new address.
    let moving: BTreeSet<&str> = moves_now(prior, desired)
        .map(|(_, from)| from.as_str())
        .collect();
    let mut deletes: Vec<ResourceChange> = Vec::new();
    for n in prior_graph.topo_order().into_iter().rev() {
        let address = prior_graph.address(n);
        if desired.resources.contains_key(address) || moving.contains(address) {
            continue;
        }
        let before = &prior.resources[address];
        if desired.removed.contains(address) {
            deletes.push(ResourceChange {
                action: Action::Forget,
                reason: "removed: no longer managed; its objects stay, without platformd's marks"
                    .into(),
                ..deleted(address, before, false, String::new())
            });
            continue;
        }
        let blocked = before.protect && !allow.contains(address);
        let reason = if blocked {
            format!(
                "removed from the stack; protected: pass --allow-destroy {address} or set `protect #false` first"
            )
        } else {
            "removed from the stack".to_string()
        };
        deletes.push(deleted(address, before, blocked, reason));
    }
    resources.extend(deletes);
    propagate_unknown_outputs(&mut resources);
    if !options.targets.is_empty() {
        let wanted = with_what_they_need(&options.targets, desired);
        resources.retain(|r| wanted.contains(r.address.as_str()));
    }

    let summary = Summary::of(&resources);

    let cost = cost_report(prior, desired);
    let mut policy = policy_report(&resources, &cost, desired);
    if !refused.is_empty() {
        policy.blocked = true;
        policy.violations.extend(refused);
    }
    Plan {
        format_version: PLAN_FORMAT_VERSION.to_string(),
        stack: desired.stack.clone(),
        environment: desired.environment.clone(),
        made_against: options.made_against.clone(),
        summary,
        resources,
        drift: Vec::new(),
        policy,
        cost,
        drivers: desired.drivers.clone(),
        windows: desired.windows.clone(),
        window: None,
        approval: desired.approval.clone(),
        targets: options.targets.clone(),
    }
}

/// `--replace`: each named resource that exists and would otherwise be kept or updated is
/// replaced; a protected one is blocked unless allowed, as any replace.
fn replace_on_request(
    resources: &mut [ResourceChange],
    replace: &[String],
    prior: &Snapshot,
    allow: &BTreeSet<&str>,
) {
    for r in resources.iter_mut() {
        if !replace.contains(&r.address) || !matches!(r.action, Action::NoOp | Action::Update) {
            continue;
        }
        let Some(before) = prior.resources.get(&r.address) else {
            continue;
        };
        r.action = Action::Replace;
        r.reason = "replaced on request (--replace)".to_string();
        r.blocked = before.protect && !allow.contains(r.address.as_str());
        if r.blocked {
            r.reason.push_str("; blocked: protected");
        }
    }
}

/// `targets` and, in the desired state, everything they depend on, transitively: what a
/// targeted plan includes (a target no longer declared is included alone).
fn with_what_they_need<'a>(targets: &'a [String], desired: &'a Snapshot) -> BTreeSet<&'a str> {
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    let mut todo: Vec<&str> = targets.iter().map(String::as_str).collect();
    while let Some(address) = todo.pop() {
        if !wanted.insert(address) {
            continue;
        }
        if let Some(r) = desired.resources.get(address) {
            todo.extend(r.depends_on.iter().map(String::as_str));
        }
    }
    wanted
}

/// Every resource wired to an output this plan may change (its producer is created, replaced, or
/// changes a field the output is made from or a setting of its driver) is updated too, with the
/// wired value shown as known after apply: the apply then re-applies it after its producer, with
/// the output as it is then. Without this a consumer kept the old value and the plan said
/// nothing (`docs/PLAN_FORMAT.md`, "Known after apply").
fn propagate_unknown_outputs(resources: &mut [ResourceChange]) {
    let mut changing: BTreeMap<String, String> = BTreeMap::new();
    for r in resources.iter() {
        let why = match r.action {
            Action::Create => "is created".to_string(),
            Action::Import => "is imported".to_string(),
            Action::Replace => "is replaced".to_string(),
            Action::Update => {
                let shaping: Vec<&str> = r
                    .changed_paths
                    .iter()
                    .map(String::as_str)
                    .filter(|path| {
                        path.starts_with(DRIVER_SETTING_PATH)
                            || r.kind.output_fields().iter().any(|f| {
                                *path == *f
                                    || path.strip_prefix(*f).is_some_and(|p| p.starts_with('.'))
                            })
                    })
                    .collect();
                if shaping.is_empty() {
                    continue;
                }
                format!("changes {}", shaping.join(", "))
            }
            Action::Delete | Action::NoOp | Action::Forget => continue,
        };
        changing.insert(r.address.clone(), why);
    }
    if changing.is_empty() {
        return;
    }
    for r in resources.iter_mut() {
        if !matches!(r.action, Action::NoOp | Action::Update)
            || !r.depends_on.iter().any(|d| changing.contains_key(d))
        {
            continue;
        }
        let Some(after) = &r.after else { continue };
        // A snapshot's spec reads as its kind; one that does not has nothing to wire.
        let Ok(spec) = crate::resource_spec::ResourceSpec::parse(r.kind, after.as_str()) else {
            continue;
        };
        let value = after.value();
        let mut reasons = Vec::new();
        for wire in spec.wires() {
            let Some(why) = changing.get(&wire.address) else {
                continue;
            };
            let path = wire.path();
            if r.changed_paths.contains(&path) {
                continue;
            }
            let before = path
                .split_once('.')
                .and_then(|(field, key)| value.get(field)?.get(key))
                .cloned();
            r.changes.push(FieldChange {
                path: path.clone(),
                before,
                after: None,
                forces_replacement: None,
                known_after_apply: true,
            });
            r.changed_paths.push(path);
            reasons.push(format!("{}.{} {why}", wire.address, wire.output));
        }
        if reasons.is_empty() {
            continue;
        }
        reasons.dedup();
        if r.action == Action::NoOp {
            r.action = Action::Update;
            r.reason = format!(
                "wired to an output known after apply: {}",
                reasons.join("; ")
            );
        }
    }
}

/// The delete of a resource no longer declared.
fn deleted(
    address: &str,
    before: &ResourceSnapshot,
    blocked: bool,
    reason: String,
) -> ResourceChange {
    ResourceChange {
        address: address.to_string(),
        kind: before.kind,
        driver: before.driver.clone(),
        team: before.team.clone(),
        action: Action::Delete,
        reason,
        before: Some(before.spec.clone()),
        after: None,
        changed_paths: Vec::new(),
        changes: Vec::new(),
        ignored_paths: Vec::new(),
        depends_on: before.depends_on.clone(),
        blocked,
        cost: ResourceCost {
            before: before.monthly_cost_usd,
            after: 0.0,
        },
        scaled_down: None,
        template: before.template.clone(),
        budget_monthly_usd: None,
        moves: false,
        moved_from: None,
        import_id: None,
    }
}

/// The `moved` blocks a plan carries out now: the new address is declared and not yet applied,
/// the old one is applied. (Once applied, a `moved` block is history and changes nothing.)
fn moves_now<'a>(
    prior: &'a Snapshot,
    desired: &'a Snapshot,
) -> impl Iterator<Item = (&'a String, &'a String)> {
    desired.moved.iter().filter(|(to, from)| {
        desired.resources.contains_key(*to)
            && !prior.resources.contains_key(*to)
            && prior.resources.contains_key(*from)
    })
}

/// A moved resource is planned against what was applied at its old address: renamed in place
/// where its driver can (an update, even with nothing else to change), else made under the new
/// name first and the old removed (a move, blocked for a protected resource as a replace is).
/// An imported resource not yet applied is adopted instead of created.
fn plan_moves_and_imports(
    resources: &mut [ResourceChange],
    prior: &Snapshot,
    desired: &Snapshot,
    allow: &BTreeSet<&str>,
) {
    if desired.moved.is_empty() && desired.imports.is_empty() {
        return;
    }
    let moves: BTreeMap<&String, &String> = moves_now(prior, desired).collect();
    for r in resources.iter_mut() {
        if let Some(from) = moves.get(&r.address) {
            let before = &prior.resources[*from];
            let after = &desired.resources[&r.address];
            let allowed = allow.contains(r.address.as_str()) || allow.contains(from.as_str());
            let mut change = diff_resource(&r.address, before, after, &BTreeSet::new());
            let renames = before.driver == after.driver
                && descriptors::find(&after.driver)
                    .is_some_and(|d| renames_kind(d.renames, after.kind));
            match (renames, change.action) {
                (true, Action::NoOp) => {
                    change.action = Action::Update;
                    change.reason = format!("renamed from {from}");
                }
                (true, Action::Update) => {
                    change.reason = format!("renamed from {from}; {}", change.reason);
                }
                (true, _) => {
                    change.reason = format!("moved from {from}; {}", change.reason);
                }
                (false, _) => {
                    change.action = Action::Replace;
                    change.moves = true;
                    change.reason = format!(
                        "moved from {from}: driver `{}` cannot rename a {}, so it is made under the new name, then the old one removed",
                        after.driver, after.kind
                    );
                }
            }
            change.blocked = change.action == Action::Replace && before.protect && !allowed;
            if change.blocked {
                change.reason.push_str("; blocked: protected");
            }
            change.moved_from = Some((*from).clone());
            *r = change;
        } else if r.action == Action::Create
            && let Some(id) = desired.imports.get(&r.address)
        {
            r.action = Action::Import;
            r.reason = format!("imported: adopts `{id}` instead of creating it");
            r.import_id = Some(id.clone());
        }
    }
}

fn renames_kind(kinds: descriptors::Kinds, kind: Kind) -> bool {
    match kinds {
        descriptors::Kinds::All => true,
        descriptors::Kinds::Only(kinds) => kinds.contains(&kind.as_str()),
    }
}

/// A driver setting whose value the desired state changes.
struct SettingChange<'a> {
    driver: &'a str,
    name: &'a str,
    before: Option<&'a String>,
    after: Option<&'a String>,
    on_change: descriptors::OnChange,
}

/// The driver settings that differ between `prior` and `desired`, for drivers both declare. A
/// prior state that records no driver at all (a store written before settings were kept) is
/// not compared: nothing can be said about what its resources were made with.
fn setting_changes<'a>(prior: &'a Snapshot, desired: &'a Snapshot) -> Vec<SettingChange<'a>> {
    let mut out = Vec::new();
    if prior.drivers.is_empty() {
        return out;
    }
    for (driver, after) in &desired.drivers {
        let Some(before) = prior.drivers.get(driver) else {
            continue;
        };
        let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for name in names {
            let (b, a) = (before.get(name), after.get(name));
            if b == a {
                continue;
            }
            // A setting no descriptor declares (a store from another platformd) changes what
            // is made, for all platformd knows.
            let on_change = descriptors::find(driver)
                .and_then(|d| d.settings.iter().find(|s| s.name == name.as_str()))
                .map_or(descriptors::OnChange::Update(&[]), |s| s.on_change);
            out.push(SettingChange {
                driver,
                name,
                before: b,
                after: a,
                on_change,
            });
        }
    }
    out
}

/// Plans what each changed driver setting does to the resources it affects: a change at
/// `driver.<setting>`, and an update, a replace, a move (a replace made in the new place
/// first), or a refusal, which is returned as a blocking violation. Without this a setting
/// change planned as nothing and showed up afterwards as drift on every resource.
fn plan_setting_changes(
    resources: &mut [ResourceChange],
    settings: &[SettingChange<'_>],
    prior: &Snapshot,
    allow: &BTreeSet<&str>,
) -> Vec<Violation> {
    use descriptors::OnChange;
    let mut refused: BTreeMap<(String, &str), (Vec<String>, &str)> = BTreeMap::new();
    if settings.is_empty() {
        return Vec::new();
    }
    for r in resources.iter_mut() {
        let Some(before) = prior.resources.get(&r.address) else {
            continue;
        };
        if before.driver != r.driver || r.action == Action::Delete {
            continue;
        }
        for c in settings
            .iter()
            .filter(|c| c.driver == r.driver && c.on_change.affects(r.kind.as_str()))
        {
            let shown = |v: Option<&String>| v.map(|v| Value::String(v.clone()));
            let what = format!("driver `{}` setting `{}`", c.driver, c.name);
            let forces = match c.on_change {
                OnChange::Nothing => continue,
                OnChange::Update(_) => None,
                OnChange::Replace(_) => Some(format!("{what} changes: it is made again")),
                OnChange::Move => Some(format!(
                    "{what} moves it: made where the setting now puts it, then its old objects removed"
                )),
                OnChange::Refused(why) => {
                    refused
                        .entry((c.driver.to_string(), c.name))
                        .or_insert_with(|| (Vec::new(), why))
                        .0
                        .push(r.address.clone());
                    continue;
                }
            };
            let path = format!("{DRIVER_SETTING_PATH}{}", c.name);
            r.changes.push(FieldChange {
                path: path.clone(),
                before: shown(c.before),
                after: shown(c.after),
                forces_replacement: forces.clone(),
                known_after_apply: false,
            });
            r.changed_paths.push(path);
            match forces {
                Some(why) => {
                    if r.action != Action::Replace {
                        r.reason = why;
                    } else if !r.reason.contains(&why) {
                        r.reason = format!(
                            "{}; {why}",
                            r.reason.trim_end_matches("; blocked: protected")
                        );
                    }
                    r.moves = matches!(c.on_change, OnChange::Move)
                        && (r.action != Action::Replace || r.moves);
                    r.action = Action::Replace;
                    r.blocked = before.protect && !allow.contains(r.address.as_str());
                    if r.blocked && !r.reason.ends_with("; blocked: protected") {
                        r.reason.push_str("; blocked: protected");
                    }
                }
                None if r.action == Action::NoOp => {
                    r.action = Action::Update;
                    r.reason = format!("{what} changes");
                }
                None => {}
            }
        }
    }
    refused
        .into_iter()
        .map(|((driver, name), (addresses, why))| Violation {
            policy: "driver-setting".into(),
            message: format!(
                "driver `{driver}` setting `{name}` changes for {} resource{}: {why}",
                addresses.len(),
                if addresses.len() == 1 { "" } else { "s" }
            ),
            addresses,
            location: None,
        })
        .collect()
}

/// Where a plan shows a change of a driver's setting among a resource's changes
/// (`driver.namespace`).
pub const DRIVER_SETTING_PATH: &str = "driver.";

/// Each desired entry's prior entry, by position, and whether some prior entry has none
/// (something is deleted): a merge of the two sorted address lists.
fn join_sorted<'a>(
    desired: &[(&String, &ResourceSnapshot)],
    prior: &'a BTreeMap<String, ResourceSnapshot>,
) -> (Vec<Option<&'a ResourceSnapshot>>, bool) {
    let mut before_of = Vec::with_capacity(desired.len());
    let mut deleting = false;
    let mut prior = prior.iter().peekable();
    for (address, _) in desired {
        let mut found = None;
        while let Some((p, before)) = prior.peek() {
            match p.as_str().cmp(address.as_str()) {
                std::cmp::Ordering::Less => {
                    deleting = true;
                    prior.next();
                }
                std::cmp::Ordering::Equal => {
                    found = Some(*before);
                    prior.next();
                    break;
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        before_of.push(found);
    }
    (before_of, deleting || prior.next().is_some())
}

/// Positions of `entries` (sorted by address) in dependency order, as `Graph::topo_order`
/// gives it: of the ready ones, the lowest address first; any left in a cycle come last, in
/// address order. Dependencies on addresses not among `entries` are ignored.
fn order_by_depends_on(entries: &[(&String, &ResourceSnapshot)]) -> Vec<usize> {
    // Hashed, not searched: a binary search compared long shared prefixes (`service/team-…`)
    // about fourteen times per dependency.
    let positions: foldhash::HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (a, _))| (a.as_str(), i))
        .collect();
    let position = |address: &str| positions.get(address).copied();
    let mut edges: Vec<(u32, u32)> = Vec::new();
    for (to, (_, r)) in entries.iter().enumerate() {
        for d in &r.depends_on {
            if let Some(from) = position(d) {
                edges.push((from as u32, to as u32));
            }
        }
    }
    crate::graph::order_by_edges(entries.len(), &edges)
}

fn graph_of(s: &Snapshot) -> Graph {
    Graph::from_dependencies(s.resources.iter().map(|(a, r)| {
        (
            a.as_str(),
            r.kind,
            r.driver.as_str(),
            r.depends_on.as_slice(),
        )
    }))
}

fn diff_resource(
    address: &str,
    before: &ResourceSnapshot,
    after: &ResourceSnapshot,
    allow: &BTreeSet<&str>,
) -> ResourceChange {
    let mut changes = Vec::new();
    // Equal canonical text means equal specs: most resources of a large stack skip parsing.
    if before.spec != after.spec {
        diff_values(
            "",
            Some(&before.spec.value()),
            Some(&after.spec.value()),
            &mut changes,
        );
    }
    let mut ignored_paths = Vec::new();
    changes.retain(|c| {
        let ignored = after
            .ignore_changes
            .iter()
            .any(|f| c.path == *f || c.path.starts_with(&format!("{f}.")));
        if ignored {
            ignored_paths.push(c.path.clone());
        }
        !ignored
    });
    for c in &mut changes {
        c.forces_replacement =
            replacement_reason(after.kind, &c.path, c.before.as_ref(), c.after.as_ref());
    }
    // A Job's pod template is immutable, and a one-off job and a scheduled one are different
    // objects (Job, CronJob): such a change runs the job again as a new object.
    if after.kind == Kind::Job && !changes.is_empty() {
        let one_off = after.spec.value().get("schedule").is_none();
        for c in &mut changes {
            let metadata = ["labels", "lifecycle", "monitoring", "team"]
                .iter()
                .any(|p| c.path == *p || c.path.starts_with(&format!("{p}.")));
            if c.forces_replacement.is_none() && (c.path == "schedule" || (one_off && !metadata)) {
                c.forces_replacement = Some(if c.path == "schedule" {
                    "a one-off job and a scheduled one are different objects".into()
                } else {
                    "a one-off job's pod template is immutable: it runs again as a new job".into()
                });
            }
        }
    }
    let driver_moved = before.driver != after.driver;
    let forcing: Vec<&str> = changes
        .iter()
        .filter(|c| c.forces_replacement.is_some())
        .map(|c| c.path.as_str())
        .collect();
    let mut why: Vec<String> = Vec::new();
    if driver_moved {
        why.push(format!(
            "moves from driver `{}` to `{}`",
            before.driver, after.driver
        ));
    }
    if !forcing.is_empty() {
        let mut reasons: Vec<&str> = changes
            .iter()
            .filter_map(|c| c.forces_replacement.as_deref())
            .collect();
        reasons.dedup();
        why.push(format!(
            "{} forces replacement: {}",
            forcing.join(", "),
            reasons.join("; ")
        ));
    }
    let (action, reason) = if !why.is_empty() {
        (Action::Replace, why.join("; "))
    } else if !changes.is_empty() {
        let reason = match (&before.scaled_down, &after.scaled_down) {
            (None, Some(why)) => why.clone(),
            (Some(_), None) => "wakes from idle shutdown".to_string(),
            _ => "update in place".to_string(),
        };
        (Action::Update, reason)
    } else if !ignored_paths.is_empty() {
        (
            Action::NoOp,
            format!("only ignored fields changed ({})", ignored_paths.join(", ")),
        )
    } else {
        (Action::NoOp, "unchanged".to_string())
    };
    // Replacing a protected resource destroys it (and its data) just like a delete does.
    let blocked = action == Action::Replace && before.protect && !allow.contains(address);
    let reason = if blocked {
        format!("{reason}; blocked: protected")
    } else {
        reason
    };
    ResourceChange {
        address: address.to_string(),
        kind: after.kind,
        driver: after.driver.clone(),
        team: after.team.clone(),
        action,
        reason,
        before: Some(before.spec.clone()),
        after: Some(after.spec.clone()),
        changed_paths: changes.iter().map(|c| c.path.clone()).collect(),
        changes,
        ignored_paths,
        depends_on: after.depends_on.clone(),
        blocked,
        cost: ResourceCost {
            before: before.monthly_cost_usd,
            after: after.monthly_cost_usd,
        },
        scaled_down: after.scaled_down.clone(),
        template: after.template.clone(),
        budget_monthly_usd: after.budget_monthly_usd,
        moves: false,
        moved_from: None,
        import_id: None,
    }
}

/// Field-level differences between two JSON values. Objects recurse by key; arrays and scalars
/// compare whole (a changed list is one change).
pub fn diff_values(
    path: &str,
    before: Option<&Value>,
    after: Option<&Value>,
    out: &mut Vec<FieldChange>,
) {
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            // Keep the canonical key order of the spec rather than alphabetical order.
            let mut ordered: Vec<&String> = a.keys().filter(|k| keys.contains(k)).collect();
            ordered.extend(b.keys().filter(|k| !a.contains_key(*k)));
            for k in ordered {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_values(&p, b.get(k), a.get(k), out);
            }
        }
        (b, a) if b == a => {}
        (b, a) => out.push(FieldChange {
            path: path.to_string(),
            before: b.cloned(),
            after: a.cloned(),
            forces_replacement: None,
            known_after_apply: false,
        }),
    }
}

/// Fields that cannot change in place. Drivers may refine this per field (see
/// `docs/DRIVERS.md`); these rules hold for every driver.
fn replacement_reason(
    kind: Kind,
    path: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Option<String> {
    let num = |v: Option<&Value>| v.and_then(Value::as_u64);
    let decreased = num(after) < num(before) && num(after).is_some();
    match (kind, path) {
        (Kind::Database, "engine") => Some("a database engine cannot change in place".into()),
        (Kind::Database, "storage-gb") if decreased => {
            Some("allocated storage cannot shrink in place".into())
        }
        (Kind::Topic, "partitions") if decreased => {
            Some("a topic's partition count cannot be reduced".into())
        }
        (Kind::GpuPool, "accelerator" | "instance-type" | "capacity") => {
            Some("a node pool's instance type and capacity type are immutable".into())
        }
        (Kind::AiEndpoint, "runtime") => {
            Some("an endpoint cannot switch serving runtime in place".into())
        }
        (Kind::Pipeline, "source") => {
            Some("a pipeline's consumer position belongs to its source".into())
        }
        _ => None,
    }
}

fn cost_report(prior: &Snapshot, desired: &Snapshot) -> CostReport {
    // Keyed by borrowed names: a copy of the team's name per resource was most of this.
    let mut teams: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for r in prior.resources.values() {
        teams.entry(r.team.as_str()).or_default().0 += r.monthly_cost_usd;
    }
    for r in desired.resources.values() {
        teams.entry(r.team.as_str()).or_default().1 += r.monthly_cost_usd;
    }
    for t in desired.teams.keys() {
        teams.entry(t.as_str()).or_default();
    }
    let before: f64 = prior.resources.values().map(|r| r.monthly_cost_usd).sum();
    let after: f64 = desired.resources.values().map(|r| r.monthly_cost_usd).sum();
    CostReport {
        currency: "USD".to_string(),
        before: round_cents(before),
        after: round_cents(after),
        delta: round_cents(after - before),
        teams: teams
            .into_iter()
            .map(|(team, (b, a))| {
                let budget = desired.teams.get(team).and_then(|t| t.budget_monthly_usd);
                TeamCost {
                    over_budget: budget.is_some_and(|limit| round_cents(a) > limit),
                    team: team.to_string(),
                    before: round_cents(b),
                    after: round_cents(a),
                    delta: round_cents(a - b),
                    budget,
                }
            })
            .collect(),
    }
}

fn policy_report(
    resources: &[ResourceChange],
    cost: &CostReport,
    desired: &Snapshot,
) -> PolicyReport {
    let mut report = PolicyReport::default();
    let blocked: Vec<String> = resources
        .iter()
        .filter(|r| r.blocked)
        .map(|r| r.address.clone())
        .collect();
    if !blocked.is_empty() {
        report.violations.push(Violation {
            policy: "protected-delete".into(),
            message: format!(
                "{} protected resource{} would be destroyed: {}; pass --allow-destroy for each, or set `protect #false` in an earlier change",
                blocked.len(),
                if blocked.len() == 1 { "" } else { "s" },
                blocked.join(", ")
            ),
            addresses: blocked,
            location: None,
        });
    }
    for t in cost.teams.iter().filter(|t| t.over_budget) {
        let budget = t.budget.unwrap_or(0.0);
        let mut top: Vec<&crate::snapshot::ResourceSnapshot> = desired
            .resources
            .values()
            .filter(|r| r.team == t.team)
            .collect();
        top.sort_by(|a, b| {
            b.monthly_cost_usd
                .total_cmp(&a.monthly_cost_usd)
                .then_with(|| a.name.cmp(&b.name))
        });
        let top: Vec<&crate::snapshot::ResourceSnapshot> = top.into_iter().take(3).collect();
        let names: Vec<String> = top
            .iter()
            .map(|r| {
                format!(
                    "{}/{} ({})",
                    r.kind,
                    r.name,
                    crate::cost::format_usd(r.monthly_cost_usd)
                )
            })
            .collect();
        let increases = t.delta > 0.0;
        let message = format!(
            "team `{}` is over its monthly budget: {} estimated against a budget of {}{}; largest: {}",
            t.team,
            crate::cost::format_usd(t.after),
            crate::cost::format_usd(budget),
            if increases {
                format!(" (this change adds {})", crate::cost::format_delta(t.delta))
            } else {
                String::new()
            },
            names.join(", ")
        );
        let violation = Violation {
            policy: "budget".into(),
            message,
            addresses: top
                .iter()
                .map(|r| format!("{}/{}", r.kind, r.name))
                .collect(),
            location: None,
        };
        // A change that does not add cost is not blocked, so over-budget teams can still cut.
        if increases {
            report.violations.push(violation)
        } else {
            report.warnings.push(violation)
        }
    }
    for r in resources {
        let Some(budget) = r.budget_monthly_usd else {
            continue;
        };
        if round_cents(r.cost.after) <= budget {
            continue;
        }
        let increases = r.cost.after > r.cost.before;
        let violation = Violation {
            policy: "budget".into(),
            message: format!(
                "{} is over its monthly cost budget: {} estimated against a budget of {}{}",
                r.address,
                crate::cost::format_usd(r.cost.after),
                crate::cost::format_usd(budget),
                if increases {
                    format!(
                        " (this change adds {})",
                        crate::cost::format_delta(r.cost.after - r.cost.before)
                    )
                } else {
                    String::new()
                }
            ),
            addresses: vec![r.address.clone()],
            location: r.template.as_ref().map(|t| t.at.clone()),
        };
        // As for teams: a change that does not add cost is not blocked.
        if increases {
            report.violations.push(violation)
        } else {
            report.warnings.push(violation)
        }
    }
    for f in &desired.policy_findings {
        let violation = Violation {
            policy: f.policy.clone(),
            message: format!("{}: {}", f.address, f.message),
            addresses: vec![f.address.clone()],
            location: Some(f.location.clone()),
        };
        match f.level {
            crate::model::PolicyLevel::Deny => report.violations.push(violation),
            crate::model::PolicyLevel::Warn => report.warnings.push(violation),
        }
    }
    report.blocked = !report.violations.is_empty();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `order_by_depends_on` must give exactly the order of the graph it replaced: random
    /// dependency lists, with cycles, self-references, duplicates and unknown addresses.
    #[test]
    fn order_by_depends_on_equals_the_graphs_topological_order() {
        let mut rng = crate::testing::Lcg(0x2545_f491_4f6c_dd1d);
        let mut next = |below: usize| rng.below(below);
        for round in 0..200 {
            let n = 1 + next(40);
            let mut snapshot = Snapshot::default();
            for i in 0..n {
                let depends_on = (0..next(4))
                    .map(|_| format!("service/s{}", next(n + 2)))
                    .collect();
                let entry = ResourceSnapshot {
                    kind: Kind::Service,
                    name: format!("s{i}"),
                    driver: "local".into(),
                    team: String::new(),
                    spec: SpecJson::from_value(&serde_json::json!({})),
                    depends_on,
                    protect: false,
                    drift: crate::model::DriftPolicy::Correct,
                    ignore_changes: Vec::new(),
                    monthly_cost_usd: 0.0,
                    scaled_down: None,
                    template: None,
                    budget_monthly_usd: None,
                };
                snapshot.resources.insert(format!("service/s{i}"), entry);
            }
            let entries: Vec<(&String, &ResourceSnapshot)> = snapshot.resources.iter().collect();
            let ours: Vec<&str> = order_by_depends_on(&entries)
                .into_iter()
                .map(|i| entries[i].0.as_str())
                .collect();
            let graph = graph_of(&snapshot);
            let graphs: Vec<&str> = graph
                .topo_order()
                .into_iter()
                .map(|n| graph.address(n))
                .collect();
            assert_eq!(ours, graphs, "round {round}");
        }
    }
}
