//! The `platform`, `team` and `pricing` nodes.

use super::*;

pub(crate) const PLATFORM_FIELDS: &[FieldDef] = &[
    once("environment", "environment \"prod\""),
    once("sync", "sync \"auto\""),
    once("drift", "drift \"correct\""),
    repeated(
        "driver",
        "driver \"local\" { path \".platformd/rendered\" }",
    ),
    repeated("route", "route \"service\" \"topic\" to=\"kubernetes\""),
    once(
        "approval",
        "approval { kinds \"database\"; teams \"payments\" }",
    ),
    repeated(
        "window",
        "window \"deny\" schedule=\"0 22 * * 5\" duration=\"60h\" timezone=\"Europe/Berlin\"",
    ),
    once(
        "metrics",
        "metrics { query \"gpu-pool\" \"max(DCGM_FI_DEV_GPU_UTIL{gpu_pool=\\\"{name}\\\"})\" idle-at-most=5 }",
    ),
    once("templates-only", "templates-only \"storefront\" \"data\""),
];

const METRICS_FIELDS: &[FieldDef] = &[repeated(
    "query",
    "query \"ai-endpoint\" \"sum(rate(vllm:request_success_total{service=\\\"{name}\\\"}[5m]))\" idle-at-most=0",
)];

/// Kinds the cost controller can scale down, and so can have a utilisation query.
pub const IDLE_KINDS: &[Kind] = &[Kind::GpuPool, Kind::AiEndpoint];

/// `metrics { query "kind" "promql" idle-at-most=N }`. Where the queries are sent, and with
/// which credentials, is the operator's to choose (`docs/SECURITY.md`): a URL or a token file
/// in stack content is refused, located, with where the operator sets them instead.
fn decode_metrics(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<MetricsSource> {
    let mut chosen_by_operator = false;
    if let Some(url) = node.args.first() {
        chosen_by_operator = true;
        diags.push(operator_setting(
            "the metrics endpoint",
            url.span,
            "an endpoint chosen by stack content",
            "remove the URL: the operator names the metrics source with the daemon's `--metrics-url`",
        ));
    }
    for p in &node.props {
        chosen_by_operator = true;
        let (what, help) = match &*p.key.text {
            "bearer-token-file" => (
                "the metrics credentials",
                "remove it: the operator names the token with the daemon's `--metrics-token-file`",
            ),
            _ => ("a metrics setting", "`metrics` takes only `query` children"),
        };
        diags.push(operator_setting(
            what,
            p.key.span,
            "chosen by stack content",
            help,
        ));
    }
    if chosen_by_operator {
        return None;
    }
    let block = Block::new(
        "`metrics`".to_string(),
        node.name.span,
        &node.children,
        METRICS_FIELDS,
        &[],
        diags,
    );
    let mut queries = BTreeMap::new();
    let kind_names: Vec<&str> = IDLE_KINDS.iter().map(|k| k.as_str()).collect();
    for q in block.all("query") {
        let usage = block.def("query").usage;
        if !shape(q, 2, 2, &["idle-at-most"], usage, diags) {
            continue;
        }
        let kind = one_of(arg(q, 0)?, &kind_names, diags).and_then(|k| Kind::parse(&k));
        let promql = string(arg(q, 1)?, "\"sum(rate(…[5m]))\"", diags);
        let idle_at_most = match prop(q, "idle-at-most") {
            Some(v) => number(v, 0.0, 1e12, "idle-at-most=0", diags),
            None => Some(0.0),
        };
        if let (Some(kind), Some(promql), Some(idle_at_most)) = (kind, promql, idle_at_most) {
            queries.insert(
                kind,
                UtilisationQuery {
                    promql: promql.value,
                    idle_at_most,
                },
            );
        }
    }
    Some(MetricsSource { queries })
}

/// `window "deny"|"allow" schedule="<cron>" duration="60h" timezone="Europe/Berlin"`.
fn decode_window(
    n: &Node,
    usage: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<crate::window::SyncWindow> {
    use crate::window::{Cron, SyncWindow, WindowKind, check_timezone};
    if !shape(n, 1, 1, &["schedule", "duration", "timezone"], usage, diags) {
        return None;
    }
    let kind = arg(n, 0).and_then(|v| one_of(v, &["allow", "deny"], diags));
    let checked = |key: &str,
                   check: &dyn Fn(&str) -> Result<(), crate::invalid::InvalidValue>,
                   example: &str,
                   diags: &mut Vec<Diagnostic>| {
        let v = string(required_prop(n, key, usage, diags)?, example, diags)?;
        match check(&v.value) {
            Ok(()) => Some(v.value),
            Err(why) => {
                diags.push(
                    Diagnostic::error(
                        "invalid-value",
                        format!("`{key}` {} is not valid: {why}", shown_value(&v.value)),
                    )
                    .with_label(v.span, "invalid value")
                    .with_help(format!("for example `{example}`")),
                );
                None
            }
        }
    };
    let schedule = checked(
        "schedule",
        &|s| Cron::parse(s).map(|_| ()),
        "schedule=\"0 22 * * 5\" (minute hour day-of-month month day-of-week)",
        diags,
    );
    let duration = checked(
        "duration",
        &|s| {
            if is_duration(s) && crate::units::duration_seconds(s) > 0 {
                Ok(())
            } else {
                Err("a duration like \"60h\" or \"1h30m\"".into())
            }
        },
        "duration=\"60h\"",
        diags,
    );
    let timezone = match prop(n, "timezone") {
        Some(_) => checked(
            "timezone",
            &check_timezone,
            "timezone=\"Europe/Berlin\"",
            diags,
        )?,
        None => "UTC".to_string(),
    };
    Some(SyncWindow {
        kind: if kind? == "allow" {
            WindowKind::Allow
        } else {
            WindowKind::Deny
        },
        schedule: schedule?,
        duration: duration?,
        timezone,
    })
}

const APPROVAL_FIELDS: &[FieldDef] = &[
    once("kinds", "kinds \"database\" \"gpu-pool\""),
    once("teams", "teams \"payments\""),
];

/// Driver settings whose value has a form: the check, what is accepted, an example.
/// Why a driver setting's value is not the stack's to choose (`docs/SECURITY.md`).
struct StackSettingProblem {
    what: &'static str,
    label: &'static str,
    help: &'static str,
}

/// Namespaces of the cluster's own components: never a stack's.
pub const RESERVED_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

fn stack_setting_problem(
    driver: DriverType,
    name: &str,
    value: &Value<'_>,
) -> Option<StackSettingProblem> {
    let Value::String(v) = value else {
        return None;
    };
    match (driver, name) {
        // The local driver writes below its path: only a relative path that stays inside the
        // daemon's working directory is the stack's to choose.
        (DriverType::Local, "path") if !is_contained_relative_path(v) => {
            Some(StackSettingProblem {
                what: "a host path outside the daemon's directory",
                label: "an absolute path, or one that climbs out with `..`",
                help: "use a relative path without `..` (such as \".platformd/rendered\"); the operator can place the output anywhere with `driver \"local\" path=…` in the daemon's configuration",
            })
        }
        (_, "namespace") if RESERVED_NAMESPACES.contains(&&**v) => Some(StackSettingProblem {
            what: "a namespace of the cluster's own components",
            label: "reserved for the cluster",
            help: "use a namespace of the platform's own, such as the stack's name; the operator limits the namespaces a stack may use (docs/SECURITY.md)",
        }),
        _ => None,
    }
}

/// A relative path that never climbs above where it starts: no root, no `..`, no drive.
pub fn is_contained_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.starts_with('\\')
        && !path.contains(':')
        && path
            .split(['/', '\\'])
            .all(|part| part != ".." && !part.starts_with('~'))
}

pub(crate) fn decode_platform(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Platform> {
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
            let descriptor = driver.descriptor();
            let Some(setting) = descriptor.setting(&s.name.text) else {
                let allowed: Vec<&str> = descriptor.stack_settings().map(|s| s.name).collect();
                diags.push(
                    Diagnostic::error(
                        "unknown-field",
                        format!("unknown setting `{}` for driver `{dname}`", s.name.text),
                    )
                    .with_label(s.name.span, "unknown setting")
                    .with_help(suggest::help_for(
                        &s.name.text,
                        &allowed,
                        "settings",
                    )),
                );
                continue;
            };
            // The operator's settings (host paths, credentials, where signed requests go) are
            // known, so a stack that names one is told where they belong.
            if let Some(refusal) = setting.refusal {
                diags.push(operator_setting(
                    refusal.what,
                    s.name.span,
                    refusal.label,
                    refusal.help,
                ));
                continue;
            }
            let usage = format!("{} \"…\"", s.name.text);
            if !shape(s, 1, 1, &[], &usage, diags) {
                continue;
            }
            let value = arg(s, 0).expect("shape checked");
            if let Some(problem) = stack_setting_problem(driver, &s.name.text, value.value) {
                diags.push(operator_setting(
                    problem.what,
                    value.span,
                    problem.label,
                    problem.help,
                ));
                continue;
            }
            let checked = match setting.value {
                Some(rule) => formatted(value, rule.valid, rule.expected, rule.example, diags),
                None => string(value, "\"…\"", diags),
            };
            if let Some(v) = checked {
                settings.insert(s.name.text.to_string(), v.value);
            }
        }
        drivers.push(DriverDecl {
            driver,
            name_span: d.args[0].span,
            settings,
        });
    }
    let approval = block.one("approval").map(|n| {
        let scope = Block::new(
            "`approval`".to_string(),
            n.name.span,
            &n.children,
            APPROVAL_FIELDS,
            &[],
            diags,
        );
        let kinds = scope_kinds(&scope, "approval kind", diags);
        let teams = scope_strings(&scope, "teams", diags);
        ApprovalScope { kinds, teams }
    });
    let metrics = block.one("metrics").and_then(|m| decode_metrics(m, diags));
    let windows = block
        .all("window")
        .iter()
        .filter_map(|w| decode_window(w, block.def("window").usage, diags))
        .collect();
    let mut templates_only = Vec::new();
    if let Some(n) = block.one("templates-only") {
        let usage = block.def("templates-only").usage;
        if shape(n, 1, usize::MAX, &[], usage, diags) {
            for a in &n.args {
                let v = Val {
                    value: &a.value,
                    span: a.span,
                    what: "team".into(),
                };
                templates_only.extend(string(v, "\"storefront\"", diags));
            }
        }
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
        windows,
        approval,
        metrics,
        templates_only,
        keyword_span: node.name.span,
    })
}

pub(crate) fn drift_policy(s: &str) -> DriftPolicy {
    match s {
        "report" => DriftPolicy::Report,
        "ignore" => DriftPolicy::Ignore,
        _ => DriftPolicy::Correct,
    }
}

pub(crate) const TEAM_FIELDS: &[FieldDef] = &[
    once("owner", "owner \"payments-oncall@acme.example\""),
    once("budget", "budget monthly-usd=20000"),
    once(
        "llm-quota",
        "llm-quota tokens-per-day=5000000 tokens-per-minute=50000",
    ),
    once("llm-key", "llm-key secret=\"aws-sm:prod/payments/llm-key\""),
];

pub(crate) fn decode_team(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Team> {
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
    let llm_quota = block.one("llm-quota").and_then(|q| {
        let usage = block.def("llm-quota").usage;
        if !shape(
            q,
            0,
            0,
            &["tokens-per-day", "tokens-per-minute"],
            usage,
            diags,
        ) {
            return None;
        }
        let limit = |key: &str, example: &str, diags: &mut Vec<Diagnostic>| {
            prop(q, key)
                .and_then(|v| integer(v, 1, 1_000_000_000_000, example, diags))
                .map(|x| x as u64)
        };
        let tokens_per_day = limit("tokens-per-day", "tokens-per-day=5000000", diags);
        let tokens_per_minute = limit("tokens-per-minute", "tokens-per-minute=50000", diags);
        if q.props.is_empty() {
            diags.push(
                Diagnostic::error("missing-field", "`llm-quota` sets no limit")
                    .with_label(
                        q.name.span,
                        "needs `tokens-per-day=` or `tokens-per-minute=`",
                    )
                    .with_help(format!("write it as `{usage}`")),
            );
            return None;
        }
        (tokens_per_day.is_some() || tokens_per_minute.is_some()).then(|| {
            Spanned::new(
                LlmQuota {
                    tokens_per_day,
                    tokens_per_minute,
                },
                q.name.span,
            )
        })
    });
    let llm_key = block.one("llm-key").and_then(|k| {
        let usage = block.def("llm-key").usage;
        if !shape(k, 0, 0, &["secret"], usage, diags) {
            return None;
        }
        let v = required_prop(k, "secret", usage, diags)?;
        let s = string(v, "secret=\"aws-sm:prod/payments/llm-key\"", diags)?;
        if let Err((label, help)) = crate::decode::secrets::check_reference(&s.value) {
            diags.push(
                Diagnostic::error(
                    "invalid-secret-ref",
                    format!(
                        "invalid secret reference for the llm-key of team `{}`",
                        name.value
                    ),
                )
                .with_label(s.span, label)
                .with_help(help),
            );
            return None;
        }
        Some(s)
    });
    Some(Team {
        name,
        owner,
        budget_monthly_usd,
        llm_quota,
        llm_key,
    })
}

pub(crate) const PRICING_FIELDS: &[FieldDef] = &[
    repeated(
        "instance",
        "instance \"g6.xlarge\" hourly-usd=0.8048 gpus=1",
    ),
    repeated("rate", "rate \"vcpu-month\" usd=29.55"),
];

pub(crate) fn decode_pricing(node: &Node, out: &mut PricingOverrides, diags: &mut Vec<Diagnostic>) {
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
