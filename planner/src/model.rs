//! The typed model of a stack, produced by [`crate::decode`] and checked by
//! [`crate::validate`]. Every user-written value that a later check may point at keeps its span.

use crate::source::{Sources, Span};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub use crate::kind::Kind;

/// `kind/name`, unique in a stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub kind: Kind,
    pub name: String,
}

impl Address {
    pub fn new(kind: Kind, name: impl Into<String>) -> Address {
        Address {
            kind,
            name: name.into(),
        }
    }

    /// Parses `kind/name`; the error says what is wrong in words suitable for a label.
    pub fn parse(s: &str) -> Result<Address, crate::invalid::InvalidValue> {
        let Some((kind, name)) = s.split_once('/') else {
            return Err("expected `kind/name`".to_string().into());
        };
        let kind = Kind::parse(kind).ok_or_else(|| format!("unknown kind `{kind}`"))?;
        if name.is_empty() {
            return Err("missing name after `/`".to_string().into());
        }
        Ok(Address::new(kind, name))
    }

    /// `kind/name` as a `String`, allocated once at its size: addresses key every map from
    /// the graph to the snapshot, and `to_string` through `Display` showed in profiles.
    pub fn key(&self) -> String {
        let kind = self.kind.as_str();
        let mut key = String::with_capacity(kind.len() + 1 + self.name.len());
        key.push_str(kind);
        key.push('/');
        key.push_str(&self.name);
        key
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        f.write_str("/")?;
        f.write_str(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Spanned<T> {
        Spanned { value, span }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    #[default]
    Auto,
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftPolicy {
    #[default]
    Correct,
    Report,
    Ignore,
}

impl DriftPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftPolicy::Correct => "correct",
            DriftPolicy::Report => "report",
            DriftPolicy::Ignore => "ignore",
        }
    }
}

/// The driver implementations platformd ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriverType {
    Local,
    Kubernetes,
    Aws,
}

impl DriverType {
    pub const ALL: [DriverType; 3] = [DriverType::Local, DriverType::Kubernetes, DriverType::Aws];

    pub fn as_str(self) -> &'static str {
        match self {
            DriverType::Local => "local",
            DriverType::Kubernetes => "kubernetes",
            DriverType::Aws => "aws",
        }
    }

    pub fn parse(s: &str) -> Option<DriverType> {
        DriverType::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// What the driver declares it serves and takes (`descriptors`, one file per driver).
    pub fn descriptor(self) -> &'static descriptors::Descriptor {
        match self {
            DriverType::Local => &descriptors::LOCAL,
            DriverType::Kubernetes => &descriptors::KUBERNETES,
            DriverType::Aws => &descriptors::AWS,
        }
    }

    /// Kinds the driver can manage. The local driver renders every kind.
    pub fn supports(self, kind: Kind) -> bool {
        self.descriptor().serves(kind.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct DriverDecl {
    pub driver: DriverType,
    pub name_span: Span,
    pub settings: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub kinds: Vec<Spanned<Kind>>,
    pub to: Spanned<String>,
}

#[derive(Debug, Clone)]
pub struct Platform {
    pub name: Spanned<String>,
    pub environment: Option<String>,
    pub sync: SyncMode,
    pub drift: DriftPolicy,
    pub drivers: Vec<DriverDecl>,
    pub routes: Vec<Route>,
    /// Sync windows (`crate::window`): when applying is allowed.
    pub windows: Vec<crate::window::SyncWindow>,
    /// Changes that wait for an operator's approval even with `sync "auto"`.
    pub approval: Option<ApprovalScope>,
    /// Where the cost controller reads utilisation.
    pub metrics: Option<MetricsSource>,
    /// Teams that declare resources only through templates.
    pub templates_only: Vec<Spanned<String>>,
    /// The `platform` keyword, for diagnostics about the platform as a whole.
    pub keyword_span: Span,
}

impl Platform {
    /// The driver a kind goes to: its route, else the first declared driver.
    pub fn route_for(&self, kind: Kind) -> Option<&str> {
        for route in &self.routes {
            if route.kinds.iter().any(|k| k.value == kind) {
                return Some(&route.to.value);
            }
        }
        self.drivers.first().map(|d| d.driver.as_str())
    }

    pub fn driver(&self, name: &str) -> Option<&DriverDecl> {
        self.drivers.iter().find(|d| d.driver.as_str() == name)
    }
}

#[derive(Debug, Clone)]
pub struct Team {
    pub name: Spanned<String>,
    pub owner: Option<String>,
    pub budget_monthly_usd: Option<f64>,
    pub llm_quota: Option<Spanned<LlmQuota>>,
    /// `llm-key secret="…"`: the secret reference of the team's key at the AI gateway. The
    /// gateway knows a caller's team only by this key (`docs/DRIVERS.md`, "AI gateway").
    pub llm_key: Option<Spanned<String>>,
}

/// A team's `llm-quota`: tokens its callers may use across the stack's AI endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LlmQuota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

/// The stack's part of the cost controller's metrics source (`docs/COST.md`): the queries it
/// runs. Where they are sent and with which credentials is the operator's choice, never the
/// stack's (`docs/SECURITY.md`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MetricsSource {
    /// Per-kind query overrides.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub queries: BTreeMap<Kind, UtilisationQuery>,
}

/// A PromQL query for one kind's utilisation, with `{name}`, `{stack}` and `{namespace}`
/// placeholders, and the value at or below which a resource counts as idle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct UtilisationQuery {
    pub promql: String,
    pub idle_at_most: f64,
}

/// Why an edge exists; printed in graphs and cycle paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeVia {
    DependsOn,
    Env(String),
    GpuPool,
    Source,
    Sink,
}

impl fmt::Display for EdgeVia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EdgeVia::DependsOn => f.write_str("depends-on"),
            EdgeVia::Env(name) => write!(f, "env {name}"),
            EdgeVia::GpuPool => f.write_str("gpu-pool"),
            EdgeVia::Source => f.write_str("source"),
            EdgeVia::Sink => f.write_str("sink"),
        }
    }
}

/// An outgoing edge: this resource needs `target` (and, for wiring, one of its outputs).
#[derive(Debug, Clone)]
pub struct Reference {
    pub target: Address,
    pub output: Option<String>,
    pub via: EdgeVia,
    pub span: Span,
    /// Kinds the reference may point at; empty means any.
    pub allowed_kinds: &'static [Kind],
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub address: Address,
    pub kind_span: Span,
    pub name_span: Span,
    pub team: Option<Spanned<String>>,
    pub driver_override: Option<Spanned<String>>,
    pub labels: BTreeMap<String, String>,
    pub protect: bool,
    /// `None` means the platform default.
    pub drift: Option<DriftPolicy>,
    pub ignore_changes: Vec<Spanned<String>>,
    /// `cost-budget monthly-usd=N`: a plan that takes the resource's estimate above it is
    /// blocked, like a team over its budget.
    pub cost_budget: Option<Spanned<f64>>,
    /// `monitoring { alert …; notify … }`: alert rules rendered with the resource.
    pub monitoring: Option<Spanned<Monitoring>>,
    pub references: Vec<Reference>,
    pub spec: std::sync::Arc<Spec>,
    /// Its canonical spec as last made, shared by the copies of a cached file's resource
    /// (`snapshot.rs`, `MemoizedSpec`); off unless the file is in a `ParseCache`.
    pub spec_memo: crate::kept::KeptCell,
}

/// A resource's alerts and where they go (`docs/LANGUAGE.md`, "Monitoring").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Monitoring {
    pub alerts: Vec<Alert>,
    pub notify: Vec<String>,
    /// Where on-call finds what to do (`runbook_url` of every rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

/// `alert "cpu" above=80 for="10m" severity="critical"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Alert {
    pub metric: AlertMetric,
    #[serde(serialize_with = "whole_as_integer")]
    pub above: f64,
    #[serde(rename = "for")]
    pub for_: String,
    pub severity: AlertSeverity,
}

/// `80` rather than `80.0` in specs and plans, for a threshold written as a whole number.
fn whole_as_integer<S: serde::Serializer>(n: &f64, s: S) -> Result<S::Ok, S::Error> {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        s.serialize_i64(*n as i64)
    } else {
        s.serialize_f64(*n)
    }
}

/// What an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertMetric {
    /// CPU use, percent of what is requested (or of the instance).
    Cpu,
    /// Disk use, percent.
    Disk,
    /// Messages a consumer has not read yet.
    Backlog,
    /// Failed requests or records, percent.
    Errors,
}

impl AlertMetric {
    pub const ALL: &'static [AlertMetric] = &[
        AlertMetric::Cpu,
        AlertMetric::Disk,
        AlertMetric::Backlog,
        AlertMetric::Errors,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertMetric::Cpu => "cpu",
            AlertMetric::Disk => "disk",
            AlertMetric::Backlog => "backlog",
            AlertMetric::Errors => "errors",
        }
    }

    /// The kinds that have this metric.
    pub fn kinds(self) -> &'static [Kind] {
        match self {
            AlertMetric::Cpu => &[
                Kind::Service,
                Kind::Pipeline,
                Kind::AiEndpoint,
                Kind::Database,
            ],
            AlertMetric::Disk => &[Kind::Database],
            AlertMetric::Backlog => &[Kind::Topic, Kind::Pipeline],
            AlertMetric::Errors => &[Kind::Service, Kind::Pipeline, Kind::AiEndpoint],
        }
    }

    /// The unit of `above=`, for messages and rule descriptions.
    pub fn unit(self) -> &'static str {
        match self {
            AlertMetric::Backlog => "messages",
            _ => "%",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertSeverity {
    Warning,
    Critical,
}

impl AlertSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Warning => "warning",
            AlertSeverity::Critical => "critical",
        }
    }
}

/// An enum whose values are written as fixed names in stacks, plans and specs; `ALL` in the
/// order the docs list them, `NAMES` for the decoder's "expected one of".
macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum! {
    /// A database's `engine`.
    DatabaseEngine {
        Postgres => "postgres",
        Mysql => "mysql",
        Mariadb => "mariadb",
        Clickhouse => "clickhouse",
    }
}

named_enum! {
    /// What serves an AI endpoint's model: a self-hosted runtime, or SageMaker.
    ModelRuntime {
        Vllm => "vllm",
        Tgi => "tgi",
        Triton => "triton",
        Sagemaker => "sagemaker",
    }
}

named_enum! {
    /// How a GPU pool's nodes are bought.
    Capacity {
        OnDemand => "on-demand",
        Spot => "spot",
    }
}

/// Kind-specific fields. Serialized with kebab-case keys and defaults filled in, this is the
/// canonical form the diff compares.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Spec {
    Service(ServiceSpec),
    Database(DatabaseSpec),
    Bucket(BucketSpec),
    Topic(TopicSpec),
    Pipeline(PipelineSpec),
    GpuPool(GpuPoolSpec),
    AiEndpoint(AiEndpointSpec),
    LlmQuota(LlmQuotaSpec),
    Job(JobSpec),
}

/// `job "name" { image …; command …; gpu-pool "pool" gpus=N; schedule "CRON"; … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobSpec {
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    pub resources: ComputeResources,
    pub env: BTreeMap<String, EnvValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_pool: Option<PoolPlacement>,
    /// Five-field cron; without it the job runs once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    pub completions: u32,
    pub parallelism: u32,
    pub backoff_limit: u32,
    /// The longest a run may take (`6h`); also what the estimate counts per run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// The gateway rate limits of a team's `llm-quota`: the team's limits and the endpoints they
/// cover (every endpoint of the stack served through the gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LlmQuotaSpec {
    #[serde(flatten)]
    pub quota: LlmQuota,
    pub endpoints: Vec<String>,
}

/// An environment variable: a literal, an output of another resource, or a secret reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Literal(String),
    From { address: String, output: String },
    Secret(String),
}

impl Serialize for EnvValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            EnvValue::Literal(v) => s.serialize_str(v),
            EnvValue::From { address, output } => {
                let mut m = s.serialize_map(Some(1))?;
                // Joined, not `format!` (nor `format_args!`, which serde_json escapes a piece at
                // a time): once per reference, and both showed in profiles.
                m.serialize_entry("from", &[address.as_str(), ".", output].concat())?;
                m.end()
            }
            EnvValue::Secret(r) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("secret", r)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for EnvValue {
    /// The canonical form back: a string is a literal, `{"from": "kind/name.output"}` a wired
    /// output (split once, here, at the last dot: addresses have none after the name's kind),
    /// `{"secret": "…"}` a reference.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Literal(String),
            From { from: String },
            Secret { secret: String },
        }
        Ok(match Wire::deserialize(d)? {
            Wire::Literal(v) => EnvValue::Literal(v),
            Wire::From { from } => match from.rsplit_once('.') {
                Some((address, output)) => EnvValue::From {
                    address: address.to_string(),
                    output: output.to_string(),
                },
                None => {
                    return Err(serde::de::Error::custom(format!(
                        "wired value `{from}` names no output"
                    )));
                }
            },
            Wire::Secret { secret } => EnvValue::Secret(secret),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ComputeResources {
    pub cpu: String,
    pub memory: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HealthCheck {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
    pub cpu_percent: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServiceSpec {
    pub image: String,
    pub replicas: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub resources: ComputeResources,
    pub env: BTreeMap<String, EnvValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DatabaseSpec {
    pub engine: DatabaseEngine,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The instance class (every engine but ClickHouse, which sizes pods by `resources`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Per replica, for ClickHouse.
    pub storage_gb: u32,
    pub backup_retention_days: u32,
    pub high_availability: bool,
    /// ClickHouse: the cluster's layout, pod size, default data retention and backups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ComputeResources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<DatabaseBackup>,
    /// ClickHouse: the users the cluster is made with, passwords by reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<ClickhouseUser>,
}

/// `user "NAME" password="store:path"`: a ClickHouse user the cluster is made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClickhouseUser {
    pub name: String,
    /// The secret reference of the user's password.
    pub password: String,
}

/// `backup bucket="…" schedule="…"`: ClickHouse backups to a bucket of the stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DatabaseBackup {
    pub bucket: String,
    pub schedule: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BucketSpec {
    pub versioning: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_after_days: Option<u32>,
    pub public: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_gb: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TopicSpec {
    pub partitions: u32,
    pub retention_hours: u32,
    pub replication_factor: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Sink {
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The engine of the database it writes to (filled in by validation), which decides how the
    /// pipeline is rendered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<DatabaseEngine>,
    /// ClickHouse tables: the partition key and the sorting key (`PARTITION BY`, `ORDER BY`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    /// ClickHouse tables: the columns, `name Type` separated by commas, which the pipeline
    /// creates the table with and adds when new ones appear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<String>,
    /// ClickHouse tables: the `Date`/`DateTime` column the retention TTL counts from (default:
    /// the first such column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
    /// ClickHouse tables: the cluster's user the pipeline writes as (default its first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// ClickHouse tables: the target cluster's layout and retention (filled in by validation),
    /// which the table is created on and takes its TTL from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clickhouse: Option<ClickhouseTarget>,
}

/// What a pipeline's table needs to know of the ClickHouse cluster it is created on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClickhouseTarget {
    pub shards: u32,
    pub replicas: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// The user the pipeline writes (and creates its table) as: the sink's `user=`, else the
    /// cluster's first user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// The columns of a `columns="…"` list: `(name, type)` in order, split at the commas outside
/// parentheses (`Decimal(18, 2)` is one type). `None` when an entry is not `name Type`.
pub fn table_columns(columns: &str) -> Option<Vec<(String, String)>> {
    let mut entries = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in columns.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                entries.push(&columns[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(&columns[start..]);
    entries
        .into_iter()
        .map(|entry| {
            let (name, ty) = entry.trim().split_once(char::is_whitespace)?;
            let ty = ty.trim();
            (is_sql_identifier(name) && !ty.is_empty()).then(|| (name.to_string(), ty.to_string()))
        })
        .collect()
}

/// A plain SQL identifier: a letter or `_`, then letters, digits and `_`.
pub fn is_sql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The column a table's TTL counts from: `time-column`, else the first `Date`/`DateTime` one.
pub fn ttl_column(sink: &Sink) -> Option<String> {
    if let Some(c) = &sink.time_column {
        return Some(c.clone());
    }
    table_columns(sink.columns.as_deref()?)?
        .into_iter()
        .find(|(_, ty)| ty.starts_with("Date"))
        .map(|(name, _)| name)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PipelineSpec {
    pub source: String,
    /// `transform sql="…"`: a SQL query over the source's records (`FROM input`), run by the
    /// pipeline's worker before the sink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    pub sink: Sink,
    /// Where records that cannot be transformed or written go, instead of stopping the pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
    pub image: String,
    pub replicas: u32,
    pub resources: ComputeResources,
    pub env: BTreeMap<String, EnvValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeRange {
    pub min: u32,
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GpuPoolSpec {
    pub accelerator: String,
    pub instance_type: String,
    pub nodes: NodeRange,
    pub capacity: Capacity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_shutdown_after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ModelRef {
    pub id: String,
    pub revision: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PoolPlacement {
    pub pool: String,
    pub gpus: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RateLimit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Canary {
    pub revision: String,
    pub weight_percent: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AiEndpointSpec {
    pub model: ModelRef,
    pub runtime: ModelRuntime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_pool: Option<PoolPlacement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    pub replicas: u32,
    /// The runtime's environment: literals, wired outputs, secret references (a gated model's
    /// `HF_TOKEN`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_shutdown_after: Option<String>,
    /// Triton: the bucket (and prefix) its model repository is fetched from, as
    /// `<prefix><model id>/<revision>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_repository: Option<ModelRepository>,
    /// The teams whose workloads call this endpoint, each with its `llm-key` secret reference:
    /// the only keys the gateway accepts for it. Derived from the graph, not written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub callers: BTreeMap<String, String>,
}

impl AiEndpointSpec {
    /// Pods of the canary revision: its share of the endpoint's replicas, at least one while
    /// the endpoint runs at all (none when it is scaled to zero). The gateway splits traffic by
    /// the declared weight whatever the pod counts; this sizes the canary for that share.
    pub fn canary_replicas(&self) -> u32 {
        match &self.canary {
            Some(c) if self.replicas > 0 => (self.replicas * c.weight_percent).div_ceil(100).max(1),
            _ => 0,
        }
    }
}

/// `model-repository "bucket/NAME" prefix="…"`: where Triton's model directories are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ModelRepository {
    pub bucket: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// A price override from a `pricing { }` block.
#[derive(Debug, Clone, Default)]
pub struct PricingOverrides {
    /// Instance type → (hourly USD, GPUs per instance).
    pub instances: BTreeMap<String, (f64, u32)>,
    /// Named rate → USD (see `docs/LANGUAGE.md`, "pricing").
    pub rates: BTreeMap<String, f64>,
}

/// A decoded stack: the model plus the sources it came from.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub sources: Sources,
    pub platform: Option<Platform>,
    pub teams: Vec<Team>,
    pub resources: Vec<Resource>,
    pub pricing: PricingOverrides,
    pub policies: Vec<Policy>,
    /// `import` blocks: existing objects adopted as declared resources.
    pub imports: Vec<Import>,
    /// `moved` blocks: renames the plan carries over from the prior state.
    pub moves: Vec<Moved>,
    /// `removed` blocks: resources let go without being deleted.
    pub removals: Vec<Removed>,
    /// Templates and their uses (`crate::template`).
    pub templates: crate::template::Templates,
}

/// `import "bucket/logs" id="shop-logs"`: an object that exists outside platformd, adopted as
/// the declared resource at `address` instead of being created.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub address: Spanned<Address>,
    /// The driver's id of the object (`docs/LANGUAGE.md`, "Import").
    pub id: Spanned<String>,
}

/// `moved from="service/api" to="service/orders-api"`: the resource applied as `from` is the
/// one declared as `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub from: Spanned<Address>,
    pub to: Spanned<Address>,
    pub span: Span,
}

/// `removed "bucket/logs"`: the resource applied at `address` is no longer managed, and not
/// deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    pub address: Spanned<Address>,
}

/// `approval { kinds …; teams … }`: a plan that changes a resource of these kinds or teams waits
/// for approval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalScope {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<Kind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
}

/// A rule a resource breaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyFinding {
    pub policy: String,
    pub level: PolicyLevel,
    pub address: String,
    pub message: String,
    /// `path:line:column` of the resource's declaration.
    pub location: String,
}

/// Whether a policy rule blocks the plan or is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyLevel {
    Deny,
    Warn,
}

/// One `deny`/`warn` line: a CEL expression true when a resource breaks the rule.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRule {
    pub level: PolicyLevel,
    pub expression: Spanned<String>,
    pub message: String,
}

/// A `policy` node: rules and the resources they apply to (empty scope lists mean all).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: Spanned<String>,
    pub kinds: Vec<Kind>,
    pub teams: Vec<String>,
    pub environments: Vec<String>,
    pub rules: Vec<PolicyRule>,
}

impl Stack {
    /// The driver a resource is applied by: its `driver` override, else its kind's route.
    pub fn driver_for(&self, resource: &Resource) -> Option<String> {
        if let Some(d) = &resource.driver_override {
            return Some(d.value.clone());
        }
        self.platform
            .as_ref()?
            .route_for(resource.address.kind)
            .map(str::to_string)
    }

    pub fn default_drift(&self) -> DriftPolicy {
        self.platform
            .as_ref()
            .map_or(DriftPolicy::Correct, |p| p.drift)
    }
}
