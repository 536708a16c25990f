//! A resource node: its common children (team, driver, depends-on, labels, lifecycle), label
//! checks, addresses, and the dispatch to its kind's decoder.

use super::*;

pub(crate) fn decode_resource(
    kind: Kind,
    node: &Node,
    diags: &mut Vec<Diagnostic>,
) -> Option<Resource> {
    scan_for_secret_literals(node, diags);
    let name = decode_name(node, kind.as_str(), diags)?;
    let address = Address::new(kind, name.value.clone());
    let block = Block::new(
        // Joined, not `format!`: once per resource, and the formatting machinery showed.
        [kind.as_str(), " `", &name.value, "`"].concat(),
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
                what: What::Label(&p.key.text),
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
                    &*p.key.text,
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
                labels.insert(p.key.text.to_string(), s.value);
            }
        }
    }
    let protect = single_bool(&block, "protect", diags).unwrap_or(kind.protected_by_default());
    let cost_budget = block.one("cost-budget").and_then(|n| {
        let usage = block.def("cost-budget").usage;
        if !shape(n, 0, 0, &["monthly-usd"], usage, diags) {
            return None;
        }
        let v = required_prop(n, "monthly-usd", usage, diags)?;
        let span = v.span;
        number(v, 0.0, 1e9, "monthly-usd=500", diags).map(|usd| Spanned::new(usd, span))
    });
    let monitoring = block
        .one("monitoring")
        .and_then(|n| decode_monitoring(kind, n, diags));
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
        Kind::Database => Spec::Database(decode_database(&block, &mut references, diags)?),
        Kind::Bucket => Spec::Bucket(decode_bucket(&block, diags)),
        Kind::Topic => Spec::Topic(decode_topic(&block, diags)),
        Kind::Pipeline => Spec::Pipeline(decode_pipeline(&block, &mut references, diags)?),
        Kind::GpuPool => Spec::GpuPool(decode_gpu_pool(&block, diags)?),
        Kind::AiEndpoint => Spec::AiEndpoint(decode_ai_endpoint(&block, &mut references, diags)?),
        Kind::Job => Spec::Job(decode_job(&block, &mut references, diags)?),
        // Made from its team by validation, never decoded as a node.
        Kind::LlmQuota => return None,
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
        cost_budget,
        monitoring,
        references,
        spec: std::sync::Arc::new(spec),
        spec_memo: Default::default(),
    })
}

/// Whether `target` is a notify target: `slack:#channel`, `pagerduty:SERVICE`,
/// `opsgenie:TEAM` or `email:ADDRESS` (Alertmanager routes on the labels these become).
pub(crate) fn is_notify_target(target: &str) -> bool {
    match target.split_once(':') {
        Some(("slack", channel)) => {
            channel.len() > 1
                && channel.starts_with('#')
                && channel[1..]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
        }
        Some(("pagerduty" | "opsgenie", name)) => is_dns_label(name),
        Some(("email", address)) => is_email(address),
        _ => false,
    }
}

/// `monitoring { alert "cpu" above=80 for="10m" severity="critical"; notify "slack:#alerts" }`.
fn decode_monitoring(
    kind: Kind,
    node: &Node,
    diags: &mut Vec<Diagnostic>,
) -> Option<Spanned<Monitoring>> {
    let block = Block::new(
        "`monitoring`".to_string(),
        node.name.span,
        &node.children,
        MONITORING_FIELDS,
        &[],
        diags,
    );
    let mut alerts = Vec::new();
    let mut ok = true;
    for a in block.all("alert") {
        let usage = block.def("alert").usage;
        if !shape(a, 1, 1, &["above", "for", "severity"], usage, diags) {
            ok = false;
            continue;
        }
        let names: Vec<&str> = AlertMetric::ALL.iter().map(|m| m.as_str()).collect();
        let Some(metric) = arg(a, 0)
            .and_then(|v| one_of(v, &names, diags))
            .and_then(|m| AlertMetric::ALL.iter().copied().find(|x| x.as_str() == m))
        else {
            ok = false;
            continue;
        };
        if !metric.kinds().contains(&kind) {
            ok = false;
            let usable: Vec<&str> = AlertMetric::ALL
                .iter()
                .filter(|m| m.kinds().contains(&kind))
                .map(|m| m.as_str())
                .collect();
            diags.push(
                Diagnostic::error(
                    "invalid-value",
                    format!("a {kind} has no `{}` to alert on", metric.as_str()),
                )
                .with_label(a.args[0].span, "not a metric of this kind")
                .with_help(if usable.is_empty() {
                    format!("a {kind} has no metrics to alert on; remove the alert")
                } else {
                    format!("a {kind} alerts on {}", usable.join(", "))
                }),
            );
            continue;
        }
        let max = if metric == AlertMetric::Backlog {
            1e12
        } else {
            100.0
        };
        let example = if metric == AlertMetric::Backlog {
            "above=10000"
        } else {
            "above=80"
        };
        let Some(above) = required_prop(a, "above", usage, diags)
            .and_then(|v| number(v, 0.0, max, example, diags))
        else {
            ok = false;
            continue;
        };
        let for_ = match prop(a, "for") {
            Some(v) => match formatted(
                v,
                crate::units::is_duration,
                "a duration such as `10m`",
                "for=\"10m\"",
                diags,
            ) {
                Some(s) => s.value,
                None => {
                    ok = false;
                    continue;
                }
            },
            None => "5m".to_string(),
        };
        let severity = match prop(a, "severity").map(|v| one_of(v, &["warning", "critical"], diags))
        {
            None => AlertSeverity::Warning,
            Some(Some(s)) if s == "critical" => AlertSeverity::Critical,
            Some(Some(_)) => AlertSeverity::Warning,
            Some(None) => {
                ok = false;
                continue;
            }
        };
        alerts.push(Alert {
            metric,
            above,
            for_,
            severity,
        });
    }
    let mut notify = Vec::new();
    for n in block.all("notify") {
        let usage = block.def("notify").usage;
        if !shape(n, 1, 1, &[], usage, diags) {
            ok = false;
            continue;
        }
        match arg(n, 0).and_then(|v| {
            formatted(
                v,
                is_notify_target,
                "a notify target is `slack:#channel`, `pagerduty:SERVICE`, `opsgenie:TEAM` or `email:ADDRESS`",
                "notify \"slack:#data-alerts\"",
                diags,
            )
        }) {
            Some(t) => notify.push(t.value),
            None => ok = false,
        }
    }
    let runbook = block.one("runbook").and_then(|n| {
        let usage = block.def("runbook").usage;
        if !shape(n, 1, 1, &[], usage, diags) {
            ok = false;
            return None;
        }
        let url = formatted(
            arg(n, 0)?,
            |v| v.starts_with("https://") || v.starts_with("http://"),
            "an http(s) URL an on-call engineer can open",
            usage,
            diags,
        );
        if url.is_none() {
            ok = false;
        }
        url.map(|u| u.value)
    });
    if alerts.is_empty() && ok {
        diags.push(
            Diagnostic::error("missing-field", "`monitoring` has no alert")
                .with_label(node.name.span, "nothing to watch")
                .with_help(format!("add one: `{}`", block.def("alert").usage)),
        );
        return None;
    }
    ok.then(|| {
        Spanned::new(
            Monitoring {
                alerts,
                notify,
                runbook,
            },
            node.name.span,
        )
    })
}

/// A Kubernetes label value (also valid as an AWS tag value).
pub(crate) fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

pub(crate) fn is_label_key(k: &str) -> bool {
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
pub(crate) fn parse_address(
    s: &Spanned<String>,
    allowed: &[Kind],
    diags: &mut Vec<Diagnostic>,
) -> Option<Address> {
    parse_address_at(&s.value, s.span, allowed, diags)
}

/// [`parse_address`] of text found at `span`.
pub(crate) fn parse_address_at(
    text: &str,
    span: Span,
    allowed: &[Kind],
    diags: &mut Vec<Diagnostic>,
) -> Option<Address> {
    match Address::parse(text) {
        Ok(a) => Some(a),
        Err(problem) => {
            let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            let help = match text.split_once('/') {
                Some((k, _)) => suggest::help_for(k, &kinds, "kinds"),
                None => {
                    let example = allowed.first().copied().unwrap_or(Kind::Topic);
                    format!("references are written `kind/name`, e.g. \"{example}/{text}\"")
                }
            };
            diags.push(
                Diagnostic::error(
                    "invalid-address",
                    format!("invalid address \"{text}\": {problem}"),
                )
                .with_label(span, problem.to_string())
                .with_help(help),
            );
            None
        }
    }
}

pub(crate) fn decode_resources(
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
