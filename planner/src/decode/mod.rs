//! Syntax tree → typed model. Decoding is per top-level node and never stops at the first
//! problem: a field that fails to decode falls back to its default (or leaves the resource out of
//! cross-checks) and its diagnostic is recorded.

pub mod fields;
pub mod secrets;

use crate::diagnostic::Diagnostic;
use crate::model::*;
use crate::source::Span;
use crate::suggest;
use crate::syntax::{Node, Value};
use fields::*;
use std::collections::BTreeMap;

/// What one file (or several) decoded to, before cross-file checks.
#[derive(Debug, Default)]
pub struct Decoded {
    pub platforms: Vec<Platform>,
    pub teams: Vec<Team>,
    pub resources: Vec<Resource>,
    pub pricing: PricingOverrides,
}

impl Decoded {
    pub fn merge(&mut self, other: Decoded) {
        self.platforms.extend(other.platforms);
        self.teams.extend(other.teams);
        self.resources.extend(other.resources);
        self.pricing.instances.extend(other.pricing.instances);
        self.pricing.rates.extend(other.pricing.rates);
    }
}

/// Top-level node names other than resource kinds.
const TOP_LEVEL: &[&str] = &["platform", "team", "pricing"];

pub fn decode_nodes(nodes: &[Node], diags: &mut Vec<Diagnostic>) -> Decoded {
    let mut out = Decoded::default();
    for node in nodes {
        annotations_unused(node, diags);
        match node.name.text.as_str() {
            "platform" => {
                if let Some(p) = decode_platform(node, diags) {
                    out.platforms.push(p);
                }
            }
            "team" => {
                if let Some(t) = decode_team(node, diags) {
                    out.teams.push(t);
                }
            }
            "pricing" => decode_pricing(node, &mut out.pricing, diags),
            other => match Kind::parse(other) {
                Some(kind) => {
                    if let Some(r) = decode_resource(kind, node, diags) {
                        out.resources.push(r);
                    }
                }
                None => {
                    let mut names: Vec<&str> = TOP_LEVEL.to_vec();
                    names.extend(Kind::ALL.iter().map(|k| k.as_str()));
                    diags.push(
                        Diagnostic::error("unknown-kind", format!("unknown node `{other}`"))
                            .with_label(node.name.span, "not a kind of resource")
                            .with_help(suggest::help_for(other, &names, "top-level nodes")),
                    );
                }
            },
        }
    }
    out
}

/// The name argument of `kind "name" { ... }`, checked as a DNS-1123 label.
fn decode_name(node: &Node, what: &str, diags: &mut Vec<Diagnostic>) -> Option<Spanned<String>> {
    let usage = format!("{} \"my-{what}\" {{ … }}", node.name.text);
    if !shape_of_declaration(node, &usage, diags) {
        return None;
    }
    let name = string(arg(node, 0)?, &format!("\"my-{what}\""), diags)?;
    if let Some(problem) = dns_label_problem(&name.value) {
        diags.push(
            Diagnostic::error("invalid-name", format!("invalid name \"{}\": {problem}", name.value))
                .with_label(name.span, "not a DNS-1123 label")
                .with_help(format!(
                    "names become Kubernetes and cloud identifiers: lowercase letters, digits and `-`, at most 63 characters; try \"{}\"",
                    fix_dns_label(&name.value)
                )),
        );
        return None;
    }
    Some(name)
}

fn shape_of_declaration(node: &Node, usage: &str, diags: &mut Vec<Diagnostic>) -> bool {
    let mut ok = true;
    if node.args.len() != 1 {
        ok = false;
        let (span, label) = match node.args.get(1) {
            Some(a) => (a.span, "unexpected argument"),
            None => (node.name.span, "needs a name"),
        };
        diags.push(
            Diagnostic::error(
                "wrong-arguments",
                format!(
                    "`{}` takes one name argument, found {}",
                    node.name.text,
                    node.args.len()
                ),
            )
            .with_label(span, label)
            .with_help(format!("write it as `{usage}`")),
        );
    }
    for p in &node.props {
        ok = false;
        diags.push(
            Diagnostic::error(
                "unknown-property",
                format!("unknown property `{}` on `{}`", p.key.text, node.name.text),
            )
            .with_label(p.key.span, "unknown property")
            .with_help(format!("settings go inside the block: `{usage}`")),
        );
    }
    ok
}

fn single<'n>(block: &Block<'n>, name: &str, diags: &mut Vec<Diagnostic>) -> Option<Val<'n>> {
    let node = block.one(name)?;
    let usage = block.def(name).usage;
    if !shape(node, 1, 1, &[], usage, diags) {
        return None;
    }
    arg(node, 0)
}

fn single_string(
    block: &Block<'_>,
    name: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Spanned<String>> {
    let usage = block.def(name).usage;
    let example = usage
        .split_once(' ')
        .map_or("\"…\"", |(_, e)| e)
        .to_string();
    string(single(block, name, diags)?, &example, diags)
}

fn single_int(
    block: &Block<'_>,
    name: &str,
    min: i128,
    max: i128,
    diags: &mut Vec<Diagnostic>,
) -> Option<i128> {
    let example = block.def(name).usage;
    integer(single(block, name, diags)?, min, max, example, diags)
}

fn single_bool(block: &Block<'_>, name: &str, diags: &mut Vec<Diagnostic>) -> Option<bool> {
    let example = block.def(name).usage;
    boolean(single(block, name, diags)?, example, diags)
}

fn single_enum(
    block: &Block<'_>,
    name: &str,
    allowed: &[&'static str],
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    one_of(single(block, name, diags)?, allowed, diags)
}

const PLATFORM_FIELDS: &[FieldDef] = &[
    once("environment", "environment \"prod\""),
    once("sync", "sync \"auto\""),
    once("drift", "drift \"correct\""),
    repeated(
        "driver",
        "driver \"local\" { path \".platformd/rendered\" }",
    ),
    repeated("route", "route \"service\" \"topic\" to=\"kubernetes\""),
];

fn decode_platform(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Platform> {
    let name = decode_name(node, "platform", diags)?;
    let block = Block::new(
        format!("platform `{}`", name.value),
        node.name.span,
        &node.children,
        PLATFORM_FIELDS,
        &[],
        diags,
    );
    let environment = single_string(&block, "environment", diags).map(|s| s.value);
    let sync = match single_enum(&block, "sync", &["auto", "manual"], diags).as_deref() {
        Some("manual") => SyncMode::Manual,
        _ => SyncMode::Auto,
    };
    let drift = single_enum(&block, "drift", &["correct", "report", "ignore"], diags)
        .map_or(DriftPolicy::Correct, |s| drift_policy(&s));
    let mut drivers: Vec<DriverDecl> = Vec::new();
    let driver_names: Vec<&str> = DriverType::ALL.iter().map(|d| d.as_str()).collect();
    for d in block.all("driver") {
        let usage = block.def("driver").usage;
        if !shape_of_declaration(d, usage, diags) {
            continue;
        }
        let Some(v) = arg(d, 0) else { continue };
        let Some(dname) = one_of(v, &driver_names, diags) else {
            continue;
        };
        let Some(driver) = DriverType::parse(&dname) else {
            continue;
        };
        if let Some(prev) = drivers.iter().find(|x| x.driver == driver) {
            diags.push(
                Diagnostic::error(
                    "duplicate-field",
                    format!("driver `{dname}` is declared twice"),
                )
                .with_label(d.args[0].span, "declared again here")
                .with_label(prev.name_span, "first declared here")
                .with_help("merge the settings into one `driver` block"),
            );
            continue;
        }
        let mut settings = BTreeMap::new();
        for s in &d.children {
            let allowed = driver.settings();
            if !allowed.contains(&s.name.text.as_str()) {
                diags.push(
                    Diagnostic::error(
                        "unknown-field",
                        format!("unknown setting `{}` for driver `{dname}`", s.name.text),
                    )
                    .with_label(s.name.span, "unknown setting")
                    .with_help(suggest::help_for(
                        &s.name.text,
                        allowed,
                        "settings",
                    )),
                );
                continue;
            }
            let usage = format!("{} \"…\"", s.name.text);
            if shape(s, 1, 1, &[], &usage, diags)
                && let Some(v) = string(arg(s, 0).expect("shape checked"), "\"…\"", diags)
            {
                settings.insert(s.name.text.clone(), v.value);
            }
        }
        drivers.push(DriverDecl {
            driver,
            name_span: d.args[0].span,
            settings,
        });
    }
    let mut routes = Vec::new();
    for r in block.all("route") {
        let usage = block.def("route").usage;
        if !shape(r, 1, usize::MAX, &["to"], usage, diags) {
            continue;
        }
        let mut kinds = Vec::new();
        for a in &r.args {
            let v = Val {
                value: &a.value,
                span: a.span,
                what: "route kind".into(),
            };
            let kind_names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            if let Some(k) = one_of(v, &kind_names, diags).and_then(|k| Kind::parse(&k)) {
                kinds.push(Spanned::new(k, a.span));
            }
        }
        let Some(to) = required_prop(r, "to", usage, diags) else {
            continue;
        };
        let Some(to) = string(to, "\"kubernetes\"", diags) else {
            continue;
        };
        routes.push(Route { kinds, to });
    }
    Some(Platform {
        name,
        environment,
        sync,
        drift,
        drivers,
        routes,
        keyword_span: node.name.span,
    })
}

fn drift_policy(s: &str) -> DriftPolicy {
    match s {
        "report" => DriftPolicy::Report,
        "ignore" => DriftPolicy::Ignore,
        _ => DriftPolicy::Correct,
    }
}

const TEAM_FIELDS: &[FieldDef] = &[
    once("owner", "owner \"payments-oncall@acme.example\""),
    once("budget", "budget monthly-usd=20000"),
];

fn decode_team(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Team> {
    let name = decode_name(node, "team", diags)?;
    let block = Block::new(
        format!("team `{}`", name.value),
        node.name.span,
        &node.children,
        TEAM_FIELDS,
        &[],
        diags,
    );
    let owner = single(&block, "owner", diags)
        .and_then(|v| {
            formatted(
                v,
                is_email,
                "an email address",
                "\"payments-oncall@acme.example\"",
                diags,
            )
        })
        .map(|s| s.value);
    let budget_monthly_usd = block.one("budget").and_then(|b| {
        let usage = block.def("budget").usage;
        if !shape(b, 0, 0, &["monthly-usd"], usage, diags) {
            return None;
        }
        number(
            required_prop(b, "monthly-usd", usage, diags)?,
            0.0,
            1e12,
            "monthly-usd=20000",
            diags,
        )
    });
    Some(Team {
        name,
        owner,
        budget_monthly_usd,
    })
}

const PRICING_FIELDS: &[FieldDef] = &[
    repeated(
        "instance",
        "instance \"g6.xlarge\" hourly-usd=0.8048 gpus=1",
    ),
    repeated("rate", "rate \"vcpu-month\" usd=29.55"),
];

fn decode_pricing(node: &Node, out: &mut PricingOverrides, diags: &mut Vec<Diagnostic>) {
    if !node.args.is_empty() || !node.props.is_empty() {
        shape(
            node,
            0,
            0,
            &[],
            "pricing { instance \"g6.xlarge\" hourly-usd=0.8048 gpus=1 }",
            diags,
        );
    }
    let block = Block::new(
        "pricing".into(),
        node.name.span,
        &node.children,
        PRICING_FIELDS,
        &[],
        diags,
    );
    for i in block.all("instance") {
        let usage = block.def("instance").usage;
        if !shape(i, 1, 1, &["hourly-usd", "gpus"], usage, diags) {
            continue;
        }
        let Some(name) = string(arg(i, 0).expect("shape checked"), "\"g6.xlarge\"", diags) else {
            continue;
        };
        let Some(hourly) = required_prop(i, "hourly-usd", usage, diags)
            .and_then(|v| number(v, 0.0, 10_000.0, "hourly-usd=0.8048", diags))
        else {
            continue;
        };
        let gpus = prop(i, "gpus")
            .and_then(|v| integer(v, 0, 64, "gpus=1", diags))
            .unwrap_or(0) as u32;
        out.instances.insert(name.value, (hourly, gpus));
    }
    for r in block.all("rate") {
        let usage = block.def("rate").usage;
        if !shape(r, 1, 1, &["usd"], usage, diags) {
            continue;
        }
        let Some(name) = one_of(
            arg(r, 0).expect("shape checked"),
            crate::cost::RATE_NAMES,
            diags,
        ) else {
            continue;
        };
        if let Some(usd) = required_prop(r, "usd", usage, diags)
            .and_then(|v| number(v, 0.0, 1e9, "usd=29.55", diags))
        {
            out.rates.insert(name, usd);
        }
    }
}

const COMMON_FIELDS: &[FieldDef] = &[
    required("team", "team \"payments\""),
    once("driver", "driver \"kubernetes\""),
    repeated("depends-on", "depends-on \"topic/order-events\""),
    repeated("labels", "labels tier=\"critical\""),
    once("protect", "protect #true"),
    once("drift", "drift \"report\""),
    repeated("ignore-changes", "ignore-changes \"replicas\""),
];

const SERVICE_FIELDS: &[FieldDef] = &[
    required("image", "image \"ghcr.io/acme/app:1.0.0\""),
    once("replicas", "replicas 3"),
    once("port", "port 8080"),
    once("resources", "resources cpu=\"500m\" memory=\"512Mi\""),
    repeated("env", "env \"LOG_LEVEL\" \"info\""),
    once("health-check", "health-check path=\"/healthz\" port=8080"),
    once("autoscale", "autoscale min=2 max=10 cpu-percent=70"),
];

const DATABASE_FIELDS: &[FieldDef] = &[
    required("engine", "engine \"postgres\" version=\"16\""),
    required("size", "size \"db.r6g.large\""),
    once("storage-gb", "storage-gb 100"),
    once("backup-retention-days", "backup-retention-days 14"),
    once("high-availability", "high-availability #true"),
];

const BUCKET_FIELDS: &[FieldDef] = &[
    once("versioning", "versioning #true"),
    once("expire-after-days", "expire-after-days 90"),
    once("public", "public #false"),
    once("estimated-gb", "estimated-gb 500"),
];

const TOPIC_FIELDS: &[FieldDef] = &[
    once("partitions", "partitions 12"),
    once("retention-hours", "retention-hours 72"),
    once("replication-factor", "replication-factor 3"),
];

const PIPELINE_FIELDS: &[FieldDef] = &[
    required("source", "source \"topic/order-events\""),
    required("sink", "sink \"database/orders-db\" table=\"order_events\""),
    required("image", "image \"ghcr.io/acme/ingest:2.0.0\""),
    once("replicas", "replicas 2"),
    once("resources", "resources cpu=\"500m\" memory=\"512Mi\""),
    repeated("env", "env \"BATCH_SIZE\" \"500\""),
];

const GPU_POOL_FIELDS: &[FieldDef] = &[
    required("accelerator", "accelerator \"nvidia-l4\""),
    required("instance-type", "instance-type \"g6.xlarge\""),
    required("nodes", "nodes min=0 max=8"),
    once("capacity", "capacity \"spot\""),
    once("idle-shutdown-after", "idle-shutdown-after \"2h\""),
];

const AI_ENDPOINT_FIELDS: &[FieldDef] = &[
    required(
        "model",
        "model \"meta-llama/Llama-3.1-8B-Instruct\" revision=\"main\"",
    ),
    required("runtime", "runtime \"vllm\""),
    once("gpu-pool", "gpu-pool \"l4-inference\" gpus=1"),
    once("instance-type", "instance-type \"ml.g5.xlarge\""),
    once("replicas", "replicas 2"),
    once("rate-limit", "rate-limit tokens-per-minute=100000"),
    once("autoscale", "autoscale min=1 max=4 cpu-percent=70"),
    once("canary", "canary revision=\"v2\" weight-percent=10"),
];

pub const ACCELERATORS: &[&str] = &[
    "nvidia-t4",
    "nvidia-l4",
    "nvidia-a10g",
    "nvidia-l40s",
    "nvidia-a100",
    "nvidia-h100",
    "aws-inferentia2",
    "aws-trainium",
];
pub const RUNTIMES: &[&str] = &["vllm", "tgi", "triton", "sagemaker"];
pub const ENGINES: &[&str] = &["postgres", "mysql", "mariadb"];

/// The kind-specific fields of a kind (common fields excluded), for docs and `ignore-changes`.
pub fn kind_fields(kind: Kind) -> &'static [FieldDef] {
    match kind {
        Kind::Service => SERVICE_FIELDS,
        Kind::Database => DATABASE_FIELDS,
        Kind::Bucket => BUCKET_FIELDS,
        Kind::Topic => TOPIC_FIELDS,
        Kind::Pipeline => PIPELINE_FIELDS,
        Kind::GpuPool => GPU_POOL_FIELDS,
        Kind::AiEndpoint => AI_ENDPOINT_FIELDS,
    }
}

pub fn common_fields() -> &'static [FieldDef] {
    COMMON_FIELDS
}

fn decode_resource(kind: Kind, node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Resource> {
    scan_for_secret_literals(node, diags);
    let name = decode_name(node, kind.as_str(), diags)?;
    let address = Address::new(kind, name.value.clone());
    let block = Block::new(
        format!("{kind} `{}`", name.value),
        node.name.span,
        &node.children,
        kind_fields(kind),
        COMMON_FIELDS,
        diags,
    );
    let mut references = Vec::new();

    let team = single_string(&block, "team", diags);
    let driver_override = single_string(&block, "driver", diags);
    for d in block.all("depends-on") {
        if !shape(d, 1, usize::MAX, &[], block.def("depends-on").usage, diags) {
            continue;
        }
        for a in &d.args {
            let v = Val {
                value: &a.value,
                span: a.span,
                what: "`depends-on`".into(),
            };
            if let Some(s) = string(v, "\"topic/order-events\"", diags)
                && let Some(target) = parse_address(&s, &[], diags)
            {
                references.push(Reference {
                    target,
                    output: None,
                    via: EdgeVia::DependsOn,
                    span: s.span,
                    allowed_kinds: &[],
                });
            }
        }
    }
    let mut labels = BTreeMap::new();
    for l in block.all("labels") {
        if !l.args.is_empty() || l.has_block {
            shape(l, 0, 0, &[], block.def("labels").usage, diags);
        }
        for p in &l.props {
            let v = Val {
                value: &p.value,
                span: p.value_span,
                what: format!("label `{}`", p.key.text),
            };
            if !is_label_key(&p.key.text) {
                diags.push(
                    Diagnostic::error(
                        "invalid-name",
                        format!("invalid label key `{}`", p.key.text),
                    )
                    .with_label(p.key.span, "not a valid label key")
                    .with_help(
                        "label keys use letters, digits, `-`, `_`, `.` and an optional `prefix/`",
                    ),
                );
            }
            let reserved = p.key.text.starts_with("platformd.dev/")
                || matches!(
                    p.key.text.as_str(),
                    "app.kubernetes.io/managed-by" | "app.kubernetes.io/name"
                );
            if reserved {
                diags.push(
                    Diagnostic::error(
                        "invalid-name",
                        format!("label `{}` is reserved", p.key.text),
                    )
                    .with_label(p.key.span, "set by platformd")
                    .with_help(
                        "platformd uses this label to recognise what it owns; choose another key",
                    ),
                );
                continue;
            }
            if let Some(s) = formatted(
                v,
                is_label_value,
                "label values are at most 63 characters of letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit",
                "tier=\"critical\"",
                diags,
            ) {
                labels.insert(p.key.text.clone(), s.value);
            }
        }
    }
    let protect = single_bool(&block, "protect", diags).unwrap_or(kind.protected_by_default());
    let drift = single_enum(&block, "drift", &["correct", "report", "ignore"], diags)
        .map(|s| drift_policy(&s));
    let mut ignore_changes = Vec::new();
    let ignorable: Vec<&str> = kind_fields(kind)
        .iter()
        .map(|f| f.name)
        .chain(["labels"])
        .collect();
    for ic in block.all("ignore-changes") {
        if !shape(
            ic,
            1,
            usize::MAX,
            &[],
            block.def("ignore-changes").usage,
            diags,
        ) {
            continue;
        }
        for a in &ic.args {
            let v = Val {
                value: &a.value,
                span: a.span,
                what: "`ignore-changes`".into(),
            };
            let Some(s) = string(v, "\"replicas\"", diags) else {
                continue;
            };
            let top = s.value.split('.').next().unwrap_or("");
            if !ignorable.contains(&top) {
                diags.push(
                    Diagnostic::error(
                        "unknown-field",
                        format!(
                            "`ignore-changes` names unknown field `{}` of {kind}",
                            s.value
                        ),
                    )
                    .with_label(s.span, "no such field")
                    .with_help(suggest::help_for(top, &ignorable, "fields")),
                );
                continue;
            }
            ignore_changes.push(s);
        }
    }

    let spec = match kind {
        Kind::Service => Spec::Service(decode_service(&block, &mut references, diags)?),
        Kind::Database => Spec::Database(decode_database(&block, diags)?),
        Kind::Bucket => Spec::Bucket(decode_bucket(&block, diags)),
        Kind::Topic => Spec::Topic(decode_topic(&block, diags)),
        Kind::Pipeline => Spec::Pipeline(decode_pipeline(&block, &mut references, diags)?),
        Kind::GpuPool => Spec::GpuPool(decode_gpu_pool(&block, diags)?),
        Kind::AiEndpoint => Spec::AiEndpoint(decode_ai_endpoint(&block, &mut references, diags)?),
    };
    Some(Resource {
        address,
        kind_span: node.name.span,
        name_span: name.span,
        team,
        driver_override,
        labels,
        protect,
        drift,
        ignore_changes,
        references,
        spec,
    })
}

/// A Kubernetes label value (also valid as an AWS tag value).
fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn is_label_key(k: &str) -> bool {
    let name = k.rsplit_once('/').map_or(k, |(_, n)| n);
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Parses `kind/name`, reporting `invalid-address` with a hint on failure.
fn parse_address(
    s: &Spanned<String>,
    allowed: &[Kind],
    diags: &mut Vec<Diagnostic>,
) -> Option<Address> {
    match Address::parse(&s.value) {
        Ok(a) => Some(a),
        Err(problem) => {
            let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            let help = match s.value.split_once('/') {
                Some((k, _)) => suggest::help_for(k, &kinds, "kinds"),
                None => {
                    let example = allowed.first().copied().unwrap_or(Kind::Topic);
                    format!(
                        "references are written `kind/name`, e.g. \"{example}/{}\"",
                        s.value
                    )
                }
            };
            diags.push(
                Diagnostic::error(
                    "invalid-address",
                    format!("invalid address \"{}\": {problem}", s.value),
                )
                .with_label(s.span, problem)
                .with_help(help),
            );
            None
        }
    }
}

fn decode_resources(
    block: &Block<'_>,
    default_cpu: &str,
    default_memory: &str,
    diags: &mut Vec<Diagnostic>,
) -> ComputeResources {
    let mut r = ComputeResources {
        cpu: default_cpu.into(),
        memory: default_memory.into(),
    };
    if let Some(n) = block.one("resources")
        && shape(
            n,
            0,
            0,
            &["cpu", "memory"],
            block.def("resources").usage,
            diags,
        )
    {
        if let Some(v) = prop(n, "cpu")
            && let Some(s) = formatted(
                v,
                is_cpu,
                "a CPU quantity like \"500m\" or \"2\"",
                "cpu=\"500m\"",
                diags,
            )
        {
            r.cpu = s.value;
        }
        if let Some(v) = prop(n, "memory")
            && let Some(s) = formatted(
                v,
                is_memory,
                "a memory quantity like \"512Mi\" or \"2Gi\"",
                "memory=\"512Mi\"",
                diags,
            )
        {
            r.memory = s.value;
        }
    }
    r
}

fn decode_env(
    block: &Block<'_>,
    references: &mut Vec<Reference>,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, EnvValue> {
    let mut env = BTreeMap::new();
    let mut first_span: BTreeMap<String, Span> = BTreeMap::new();
    let usage = "env \"NAME\" \"value\" | env \"NAME\" from=\"kind/name.output\" | env \"NAME\" secret=\"aws-sm:path\"";
    for e in block.all("env") {
        if !shape(e, 1, 2, &["from", "secret"], usage, diags) {
            continue;
        }
        let Some(name) = string(arg(e, 0).expect("shape checked"), "\"LOG_LEVEL\"", diags) else {
            continue;
        };
        let valid_name = name
            .value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            diags.push(
                Diagnostic::error(
                    "invalid-name",
                    format!("invalid environment variable name \"{}\"", name.value),
                )
                .with_label(name.span, "not a variable name")
                .with_help(
                    "use letters, digits and `_`, not starting with a digit, e.g. \"LOG_LEVEL\"",
                ),
            );
            continue;
        }
        if let Some(first) = first_span.get(&name.value) {
            diags.push(
                Diagnostic::error(
                    "duplicate-field",
                    format!("env `{}` is set twice in {}", name.value, block.owner),
                )
                .with_label(name.span, "set again here")
                .with_label(*first, "first set here")
                .with_help("keep one of them"),
            );
            continue;
        }
        first_span.insert(name.value.clone(), name.span);
        let sources = usize::from(e.args.len() == 2)
            + usize::from(e.prop("from").is_some())
            + usize::from(e.prop("secret").is_some());
        if sources != 1 {
            diags.push(
                Diagnostic::error(
                    "wrong-arguments",
                    format!(
                        "env `{}` needs exactly one of a value, `from=` or `secret=`",
                        name.value
                    ),
                )
                .with_label(
                    e.name.span,
                    if sources == 0 {
                        "no value"
                    } else {
                        "more than one value"
                    },
                )
                .with_help(format!("write it as `{usage}`")),
            );
            continue;
        }
        let value = if let Some(v) = arg(e, 1) {
            let Some(s) = string(v, "\"info\"", diags) else {
                continue;
            };
            if secrets::name_looks_secret(&name.value)
                && !s.value.is_empty()
                && secrets::literal_looks_secret(&s.value).is_none()
            {
                diags.push(
                    Diagnostic::error("secret-literal", format!("`{}` looks like a credential but is given a literal value", name.value))
                        .with_redacted_label(s.span, "literal value where a secret reference is required")
                        .with_help(format!("store it in a secret manager and reference it: `env \"{}\" secret=\"aws-sm:prod/app/{}\"`", name.value, name.value.to_lowercase().replace('_', "-"))),
                );
                continue;
            }
            EnvValue::Literal(s.value)
        } else if let Some(v) = prop(e, "from") {
            let Some(s) = string(v, "from=\"database/orders-db.url\"", diags) else {
                continue;
            };
            let Some((addr_text, output)) = split_output(&s.value) else {
                diags.push(
                    Diagnostic::error(
                        "invalid-address",
                        format!("invalid output reference \"{}\"", s.value),
                    )
                    .with_label(s.span, "expected `kind/name.output`")
                    .with_help("wire an output as `from=\"database/orders-db.url\"`"),
                );
                continue;
            };
            let addr_spanned = Spanned::new(addr_text.to_string(), s.span);
            let Some(target) = parse_address(&addr_spanned, &[], diags) else {
                continue;
            };
            references.push(Reference {
                target: target.clone(),
                output: Some(output.to_string()),
                via: EdgeVia::Env(name.value.clone()),
                span: s.span,
                allowed_kinds: &[],
            });
            EnvValue::From {
                address: target.to_string(),
                output: output.to_string(),
            }
        } else {
            let v = prop(e, "secret").expect("counted above");
            let Some(s) = string(v, "secret=\"aws-sm:prod/app/key\"", diags) else {
                continue;
            };
            if let Err((label, help)) = secrets::check_reference(&s.value) {
                diags.push(
                    Diagnostic::error(
                        "invalid-secret-ref",
                        format!("invalid secret reference for env `{}`", name.value),
                    )
                    .with_label(s.span, label)
                    .with_help(help),
                );
                continue;
            }
            EnvValue::Secret(s.value)
        };
        env.insert(name.value, value);
    }
    env
}

/// Splits `kind/name.output` at the dot after the name.
fn split_output(s: &str) -> Option<(&str, &str)> {
    let slash = s.find('/')?;
    let dot = s[slash..].find('.')? + slash;
    let (addr, output) = (&s[..dot], &s[dot + 1..]);
    (!output.is_empty()).then_some((addr, output))
}

fn decode_health_check(block: &Block<'_>, diags: &mut Vec<Diagnostic>) -> Option<HealthCheck> {
    let n = block.one("health-check")?;
    let usage = block.def("health-check").usage;
    if !shape(
        n,
        0,
        0,
        &["path", "port", "initial-delay-seconds", "period-seconds"],
        usage,
        diags,
    ) {
        return None;
    }
    let path = formatted(
        required_prop(n, "path", usage, diags)?,
        |p| p.starts_with('/'),
        "an HTTP path starting with `/`",
        "path=\"/healthz\"",
        diags,
    )?;
    let port = prop(n, "port")
        .and_then(|v| integer(v, 1, 65535, "port=8080", diags))
        .map(|p| p as u16);
    let initial_delay_seconds = prop(n, "initial-delay-seconds")
        .and_then(|v| integer(v, 0, 3600, "initial-delay-seconds=5", diags))
        .unwrap_or(5) as u32;
    let period_seconds = prop(n, "period-seconds")
        .and_then(|v| integer(v, 1, 3600, "period-seconds=10", diags))
        .unwrap_or(10) as u32;
    Some(HealthCheck {
        path: path.value,
        port,
        initial_delay_seconds,
        period_seconds,
    })
}

fn decode_autoscale(block: &Block<'_>, diags: &mut Vec<Diagnostic>) -> Option<Autoscale> {
    let n = block.one("autoscale")?;
    let usage = block.def("autoscale").usage;
    if !shape(n, 0, 0, &["min", "max", "cpu-percent"], usage, diags) {
        return None;
    }
    let min =
        required_prop(n, "min", usage, diags).and_then(|v| integer(v, 0, 10_000, "min=2", diags));
    let max =
        required_prop(n, "max", usage, diags).and_then(|v| integer(v, 1, 10_000, "max=10", diags));
    let cpu_percent = prop(n, "cpu-percent")
        .and_then(|v| integer(v, 1, 100, "cpu-percent=70", diags))
        .unwrap_or(70);
    let (min, max) = (min?, max?);
    if min > max {
        let span = n.prop("min").map_or(n.name.span, |p| p.value_span);
        diags.push(
            Diagnostic::error(
                "out-of-range",
                format!("`autoscale` min {min} is greater than max {max}"),
            )
            .with_label(span, "greater than max")
            .with_help("min must be at most max"),
        );
        return None;
    }
    Some(Autoscale {
        min: min as u32,
        max: max as u32,
        cpu_percent: cpu_percent as u32,
    })
}

fn decode_image(block: &Block<'_>, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let v = single(block, "image", diags)?;
    let example = block
        .def("image")
        .usage
        .trim_start_matches("image ")
        .to_string();
    let s = formatted(
        v,
        is_image,
        "an image reference like \"ghcr.io/acme/app:1.0.0\"",
        &example,
        diags,
    )?;
    let tag = s
        .value
        .rsplit_once(':')
        .map(|(_, t)| t)
        .filter(|t| !t.contains('/'));
    if !s.value.contains('@') && matches!(tag, None | Some("latest")) {
        diags.push(
            Diagnostic::warning("mutable-image-tag", format!("image \"{}\" has no fixed tag", s.value))
                .with_label(s.span, "resolves to whatever was pushed last")
                .with_help("pin a version tag or a digest so every revision of the stack deploys the same bits"),
        );
    }
    Some(s.value)
}

fn decode_service(
    block: &Block<'_>,
    references: &mut Vec<Reference>,
    diags: &mut Vec<Diagnostic>,
) -> Option<ServiceSpec> {
    let image = decode_image(block, diags);
    let replicas = single_int(block, "replicas", 0, 1000, diags).unwrap_or(1) as u32;
    let port = single_int(block, "port", 1, 65535, diags).map(|p| p as u16);
    let resources = decode_resources(block, "250m", "256Mi", diags);
    let env = decode_env(block, references, diags);
    let health_check = decode_health_check(block, diags);
    let autoscale = decode_autoscale(block, diags);
    Some(ServiceSpec {
        image: image?,
        replicas,
        port,
        resources,
        env,
        health_check,
        autoscale,
    })
}

fn decode_database(block: &Block<'_>, diags: &mut Vec<Diagnostic>) -> Option<DatabaseSpec> {
    let engine = block.one("engine").and_then(|n| {
        let usage = block.def("engine").usage;
        if !shape(n, 1, 1, &["version"], usage, diags) {
            return None;
        }
        let engine = one_of(arg(n, 0)?, ENGINES, diags)?;
        let version = prop(n, "version").and_then(|v| match v.value {
            // `version=16` is as natural as `version="16"`.
            Value::Integer(i) => Some(i.to_string()),
            _ => string(v, "version=\"16\"", diags).map(|s| s.value),
        });
        Some((engine, version))
    });
    let size = single(block, "size", diags)
        .and_then(|v| {
            formatted(
                v,
                |s| s.starts_with("db.") && s.len() > 3,
                "an instance class like \"db.r6g.large\"",
                "\"db.r6g.large\"",
                diags,
            )
        })
        .map(|s| s.value);
    let storage_gb = single_int(block, "storage-gb", 20, 65536, diags).unwrap_or(20) as u32;
    let backup_retention_days =
        single_int(block, "backup-retention-days", 0, 35, diags).unwrap_or(7) as u32;
    let high_availability = single_bool(block, "high-availability", diags).unwrap_or(false);
    let (engine, version) = engine?;
    Some(DatabaseSpec {
        engine,
        version,
        size: size?,
        storage_gb,
        backup_retention_days,
        high_availability,
    })
}

fn decode_bucket(block: &Block<'_>, diags: &mut Vec<Diagnostic>) -> BucketSpec {
    BucketSpec {
        versioning: single_bool(block, "versioning", diags).unwrap_or(false),
        expire_after_days: single_int(block, "expire-after-days", 1, 36_500, diags)
            .map(|d| d as u32),
        public: single_bool(block, "public", diags).unwrap_or(false),
        estimated_gb: single_int(block, "estimated-gb", 0, 1_000_000_000, diags).map(|g| g as u64),
    }
}

fn decode_topic(block: &Block<'_>, diags: &mut Vec<Diagnostic>) -> TopicSpec {
    TopicSpec {
        partitions: single_int(block, "partitions", 1, 10_000, diags).unwrap_or(3) as u32,
        retention_hours: single_int(block, "retention-hours", 1, 87_600, diags).unwrap_or(168)
            as u32,
        replication_factor: single_int(block, "replication-factor", 1, 5, diags).unwrap_or(3)
            as u32,
    }
}

const SOURCE_KINDS: &[Kind] = &[Kind::Topic, Kind::Bucket, Kind::Database];
const SINK_KINDS: &[Kind] = &[Kind::Database, Kind::Bucket, Kind::Topic];

fn decode_pipeline(
    block: &Block<'_>,
    references: &mut Vec<Reference>,
    diags: &mut Vec<Diagnostic>,
) -> Option<PipelineSpec> {
    let source = single_string(block, "source", diags).and_then(|s| {
        let target = parse_address(&s, SOURCE_KINDS, diags)?;
        references.push(Reference {
            target: target.clone(),
            output: None,
            via: EdgeVia::Source,
            span: s.span,
            allowed_kinds: SOURCE_KINDS,
        });
        Some(target.to_string())
    });
    let sink = block.one("sink").and_then(|n| {
        let usage = block.def("sink").usage;
        if !shape(n, 1, 1, &["table", "prefix"], usage, diags) {
            return None;
        }
        let s = string(arg(n, 0)?, "\"database/orders-db\"", diags)?;
        let target = parse_address(&s, SINK_KINDS, diags)?;
        references.push(Reference {
            target: target.clone(),
            output: None,
            via: EdgeVia::Sink,
            span: s.span,
            allowed_kinds: SINK_KINDS,
        });
        let table = prop(n, "table")
            .and_then(|v| string(v, "table=\"order_events\"", diags))
            .map(|s| s.value);
        let prefix = prop(n, "prefix")
            .and_then(|v| string(v, "prefix=\"events/\"", diags))
            .map(|s| s.value);
        Some(Sink {
            target: target.to_string(),
            table,
            prefix,
        })
    });
    let image = decode_image(block, diags);
    let replicas = single_int(block, "replicas", 0, 1000, diags).unwrap_or(1) as u32;
    let resources = decode_resources(block, "500m", "512Mi", diags);
    let env = decode_env(block, references, diags);
    Some(PipelineSpec {
        source: source?,
        sink: sink?,
        image: image?,
        replicas,
        resources,
        env,
    })
}

fn decode_gpu_pool(block: &Block<'_>, diags: &mut Vec<Diagnostic>) -> Option<GpuPoolSpec> {
    let accelerator = single_enum(block, "accelerator", ACCELERATORS, diags);
    let instance_type = single_string(block, "instance-type", diags).map(|s| s.value);
    let nodes = block.one("nodes").and_then(|n| {
        let usage = block.def("nodes").usage;
        if !shape(n, 0, 0, &["min", "max"], usage, diags) {
            return None;
        }
        let min =
            required_prop(n, "min", usage, diags).and_then(|v| integer(v, 0, 1000, "min=0", diags));
        let max =
            required_prop(n, "max", usage, diags).and_then(|v| integer(v, 1, 1000, "max=8", diags));
        let (min, max) = (min?, max?);
        if min > max {
            let span = n.prop("min").map_or(n.name.span, |p| p.value_span);
            diags.push(
                Diagnostic::error(
                    "out-of-range",
                    format!("`nodes` min {min} is greater than max {max}"),
                )
                .with_label(span, "greater than max")
                .with_help("min must be at most max"),
            );
            return None;
        }
        Some(NodeRange {
            min: min as u32,
            max: max as u32,
        })
    });
    let capacity = single_enum(block, "capacity", &["on-demand", "spot"], diags)
        .unwrap_or_else(|| "on-demand".into());
    let idle_shutdown_after = single(block, "idle-shutdown-after", diags)
        .and_then(|v| {
            formatted(
                v,
                is_duration,
                "a duration like \"30m\", \"2h\" or \"1h30m\"",
                "\"2h\"",
                diags,
            )
        })
        .map(|s| s.value);
    Some(GpuPoolSpec {
        accelerator: accelerator?,
        instance_type: instance_type?,
        nodes: nodes?,
        capacity,
        idle_shutdown_after,
    })
}

fn decode_ai_endpoint(
    block: &Block<'_>,
    references: &mut Vec<Reference>,
    diags: &mut Vec<Diagnostic>,
) -> Option<AiEndpointSpec> {
    let model = block.one("model").and_then(|n| {
        let usage = block.def("model").usage;
        if !shape(n, 1, 1, &["revision"], usage, diags) {
            return None;
        }
        let id = string(arg(n, 0)?, "\"meta-llama/Llama-3.1-8B-Instruct\"", diags)?;
        let revision = prop(n, "revision")
            .and_then(|v| string(v, "revision=\"main\"", diags))
            .map_or("main".into(), |s| s.value);
        Some(ModelRef {
            id: id.value,
            revision,
        })
    });
    let runtime = single_enum(block, "runtime", RUNTIMES, diags);
    let gpu_pool = block.one("gpu-pool").and_then(|n| {
        let usage = block.def("gpu-pool").usage;
        if !shape(n, 1, 1, &["gpus"], usage, diags) {
            return None;
        }
        let pool = string(arg(n, 0)?, "\"l4-inference\"", diags)?;
        let gpus = prop(n, "gpus")
            .and_then(|v| integer(v, 1, 64, "gpus=1", diags))
            .unwrap_or(1) as u32;
        references.push(Reference {
            target: Address::new(Kind::GpuPool, pool.value.clone()),
            output: None,
            via: EdgeVia::GpuPool,
            span: pool.span,
            allowed_kinds: &[Kind::GpuPool],
        });
        Some((
            PoolPlacement {
                pool: pool.value,
                gpus,
            },
            n.name.span,
        ))
    });
    let instance_type = single_string(block, "instance-type", diags);
    let replicas = single_int(block, "replicas", 0, 100, diags).unwrap_or(1) as u32;
    let rate_limit = block.one("rate-limit").and_then(|n| {
        let usage = block.def("rate-limit").usage;
        if !shape(
            n,
            0,
            0,
            &["tokens-per-minute", "requests-per-minute"],
            usage,
            diags,
        ) {
            return None;
        }
        let tokens_per_minute = prop(n, "tokens-per-minute")
            .and_then(|v| integer(v, 1, 1_000_000_000_000, "tokens-per-minute=100000", diags))
            .map(|x| x as u64);
        let requests_per_minute = prop(n, "requests-per-minute")
            .and_then(|v| integer(v, 1, 1_000_000_000, "requests-per-minute=600", diags))
            .map(|x| x as u64);
        if tokens_per_minute.is_none() && requests_per_minute.is_none() {
            diags.push(
                Diagnostic::error("missing-field", "`rate-limit` sets no limit")
                    .with_label(
                        n.name.span,
                        "needs `tokens-per-minute=` or `requests-per-minute=`",
                    )
                    .with_help(format!("write it as `{usage}`")),
            );
        }
        Some(RateLimit {
            tokens_per_minute,
            requests_per_minute,
        })
    });
    let autoscale = decode_autoscale(block, diags);
    let canary = block.one("canary").and_then(|n| {
        let usage = block.def("canary").usage;
        if !shape(n, 0, 0, &["revision", "weight-percent"], usage, diags) {
            return None;
        }
        let revision = required_prop(n, "revision", usage, diags)
            .and_then(|v| string(v, "revision=\"v2\"", diags));
        let weight = required_prop(n, "weight-percent", usage, diags)
            .and_then(|v| integer(v, 1, 99, "weight-percent=10", diags));
        Some(Canary {
            revision: revision?.value,
            weight_percent: weight? as u32,
        })
    });
    let runtime = runtime?;
    // Self-hosted runtimes run on a GPU pool; SageMaker brings its own instances.
    let (gpu_pool, instance_type) = match (runtime.as_str(), gpu_pool, instance_type) {
        ("sagemaker", Some((_, span)), _) => {
            diags.push(
                Diagnostic::error("wrong-arguments", "runtime \"sagemaker\" does not run on a gpu-pool")
                    .with_label(span, "not used by sagemaker")
                    .with_help("give the endpoint an `instance-type \"ml.g5.xlarge\"` instead, or choose runtime \"vllm\""),
            );
            return None;
        }
        ("sagemaker", None, Some(it)) => (None, Some(it.value)),
        ("sagemaker", None, None) => {
            diags.push(missing_field(
                &block.owner,
                block.owner_span,
                &block.def("instance-type"),
            ));
            return None;
        }
        (_, Some((placement, _)), None) => (Some(placement), None),
        (_, _, Some(it)) => {
            diags.push(
                Diagnostic::error(
                    "wrong-arguments",
                    format!("`instance-type` is only for runtime \"sagemaker\", not \"{runtime}\""),
                )
                .with_label(it.span, "not used by this runtime")
                .with_help("self-hosted runtimes run on a `gpu-pool \"name\" gpus=1`"),
            );
            return None;
        }
        (_, None, None) => {
            diags.push(missing_field(
                &block.owner,
                block.owner_span,
                &block.def("gpu-pool"),
            ));
            return None;
        }
    };
    Some(AiEndpointSpec {
        model: model?,
        runtime,
        gpu_pool,
        instance_type,
        replicas,
        rate_limit,
        autoscale,
        canary,
    })
}

/// Refuses string values that look like credentials anywhere in a resource, except in
/// `secret=` references. The label is redacted so the diagnostic does not leak the value.
fn scan_for_secret_literals(node: &Node, diags: &mut Vec<Diagnostic>) {
    let mut check = |value: &Value, span: Span, what: &str| {
        if let Value::String(s) = value
            && let Some(kind) = secrets::literal_looks_secret(s)
        {
            diags.push(
                Diagnostic::error("secret-literal", format!("{what} contains what looks like {kind}"))
                    .with_redacted_label(span, "secret value in the stack")
                    .with_help("remove it from git history, rotate it, and reference it instead: `secret=\"aws-sm:prod/app/key\"`"),
            );
        }
    };
    for child in &node.children {
        for a in &child.args {
            check(&a.value, a.span, &format!("`{}`", child.name.text));
        }
        for p in child.props.iter().filter(|p| p.key.text != "secret") {
            check(
                &p.value,
                p.value_span,
                &format!("`{}` of `{}`", p.key.text, child.name.text),
            );
        }
    }
}
