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
    let cost_budget = block.one("cost-budget").and_then(|n| {
        let usage = block.def("cost-budget").usage;
        if !shape(n, 0, 0, &["monthly-usd"], usage, diags) {
            return None;
        }
        let v = required_prop(n, "monthly-usd", usage, diags)?;
        let span = v.span;
        number(v, 0.0, 1e9, "monthly-usd=500", diags).map(|usd| Spanned::new(usd, span))
    });
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
        references,
        spec,
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
