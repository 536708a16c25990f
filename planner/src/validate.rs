//! Cross-file checks on a decoded stack: one platform, unique addresses, declared teams,
//! drivers for every kind, references that resolve (with the right kind and output), no cycles.
//! Pure: diagnostics in, diagnostics out.

use crate::decode::Decoded;
use crate::diagnostic::Diagnostic;
use crate::graph::Graph;
use crate::model::*;
use crate::source::Sources;
use crate::suggest;
use foldhash::{HashMap, HashMapExt};
use std::collections::BTreeMap;

/// Builds the [`Stack`] from decoded files and checks it as a whole.
pub fn check(
    sources: Sources,
    decoded: Decoded,
    syntax_errors: bool,
    diags: &mut Vec<Diagnostic>,
) -> Stack {
    let mut stack = Stack {
        sources,
        ..Stack::default()
    };
    stack.policies = decoded.policies;

    if !stack.sources.iter().any(|(_, f)| f.path == "platform.kdl") && !syntax_errors {
        let mut d = Diagnostic::error("missing-platform", "the stack has no platform.kdl at its root").with_help(
            "create platform.kdl with `platform \"my-platform\" { driver \"local\" { path \".platformd/rendered\" } }`",
        );
        if stack.sources.is_empty() {
            d = d.with_note("no .kdl files were found in the stack directory");
        }
        diags.push(d);
    }
    let mut platforms = decoded.platforms.into_iter();
    stack.platform = platforms.next();
    for extra in platforms {
        let first = stack.platform.as_ref().expect("first platform exists");
        diags.push(
            Diagnostic::error(
                "duplicate-platform",
                "the stack declares `platform` more than once",
            )
            .with_label(extra.keyword_span, "declared again here")
            .with_label(first.keyword_span, "first declared here")
            .with_help("a stack has exactly one platform; merge the two blocks"),
        );
    }
    if stack.platform.is_none()
        && !syntax_errors
        && stack.sources.iter().any(|(_, f)| f.path == "platform.kdl")
    {
        let file = stack
            .sources
            .iter()
            .find(|(_, f)| f.path == "platform.kdl")
            .map(|(id, _)| id)
            .expect("checked");
        diags.push(
            Diagnostic::error("missing-platform", "platform.kdl declares no `platform`")
                .with_label(crate::source::Span::new(file, 0, 0), "expected `platform \"name\" { … }`")
                .with_help("add `platform \"my-platform\" { driver \"local\" { path \".platformd/rendered\" } }`"),
        );
    }

    let mut team_names: HashMap<String, usize> = HashMap::new();
    for team in decoded.teams {
        if let Some(&i) = team_names.get(&team.name.value) {
            let first: &Team = &stack.teams[i];
            diags.push(
                Diagnostic::error(
                    "duplicate-address",
                    format!("team `{}` is declared twice", team.name.value),
                )
                .with_label(team.name.span, "declared again here")
                .with_label(first.name.span, "first declared here")
                .with_help("team names are unique in a stack; rename or remove one"),
            );
            continue;
        }
        team_names.insert(team.name.value.clone(), stack.teams.len());
        stack.teams.push(team);
    }

    let mut addresses: HashMap<Address, usize> = HashMap::with_capacity(decoded.resources.len());
    stack.resources.reserve(decoded.resources.len());
    for r in decoded.resources {
        if let Some(&i) = addresses.get(&r.address) {
            let first: &Resource = &stack.resources[i];
            diags.push(
                Diagnostic::error(
                    "duplicate-address",
                    format!("{} is declared twice", r.address),
                )
                .with_label(r.name_span, "declared again here")
                .with_label(first.name_span, "first declared here")
                .with_help("addresses (`kind/name`) are unique in a stack; rename or remove one"),
            );
            continue;
        }
        addresses.insert(r.address.clone(), stack.resources.len());
        stack.resources.push(r);
    }
    stack.pricing = decoded.pricing;
    let quotas = llm_quotas(&stack, diags);
    stack.resources.extend(quotas);
    endpoint_callers(&mut stack, diags);
    notify_owners(&mut stack);

    stack.imports = decoded.imports;
    stack.moves = decoded.moves;
    stack.removals = decoded.removals;
    if !syntax_errors {
        check_lifecycle_blocks(&stack, &addresses, diags);
    }
    check_drivers(&stack, diags);
    // A file that failed to parse may hold the missing declarations; reporting dangling
    // references then would be noise.
    if !syntax_errors {
        check_teams(&stack, diags);
        check_references(&stack, &addresses, diags);
    }
    check_gpu_capacity(&stack, diags);
    stack
}

/// `import`, `moved` and `removed` against the declarations: an import adopts a declared
/// resource (once), a move ends at a declared resource of the same kind and starts at one no
/// longer declared, and a removal names a resource no longer declared.
fn check_lifecycle_blocks(
    stack: &Stack,
    declared: &HashMap<Address, usize>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut imported: HashMap<&Address, &Import> = HashMap::new();
    for import in &stack.imports {
        let address = &import.address.value;
        if !declared.contains_key(address) {
            diags.push(
                Diagnostic::error(
                    "invalid-import",
                    format!("`import` of {address}, which the stack does not declare"),
                )
                .with_label(import.address.span, "not declared")
                .with_help(format!(
                    "declare {address} as the object is (an import adopts a declared resource), or remove the import"
                )),
            );
        } else if let Some(first) = imported.insert(address, import) {
            diags.push(
                Diagnostic::error("invalid-import", format!("{address} is imported twice"))
                    .with_label(import.address.span, "imported again here")
                    .with_label(first.address.span, "first imported here")
                    .with_help("one object is adopted as one resource; remove one import"),
            );
        }
    }
    let mut moved_from: HashMap<&Address, &Moved> = HashMap::new();
    for m in &stack.moves {
        let (from, to) = (&m.from.value, &m.to.value);
        let problem = if from.kind != to.kind {
            Some((
                m.to.span,
                "another kind",
                format!("a move keeps the kind: {from} cannot become {to}"),
                "a different kind is a different resource: declare the new one, and `removed` or delete the old".to_string(),
            ))
        } else if !declared.contains_key(to) {
            Some((
                m.to.span,
                "not declared",
                format!("`moved` to {to}, which the stack does not declare"),
                format!("declare {to} (the resource under its new name)"),
            ))
        } else if declared.contains_key(from) {
            Some((
                m.from.span,
                "still declared",
                format!("`moved` from {from}, which the stack still declares"),
                format!("remove the declaration of {from}: after a move only {to} is declared"),
            ))
        } else if moved_from.contains_key(from) {
            Some((
                m.from.span,
                "moved again here",
                format!("{from} is moved twice"),
                "a resource moves to one new address; remove one `moved`".to_string(),
            ))
        } else {
            None
        };
        match problem {
            Some((span, label, message, help)) => diags.push(
                Diagnostic::error("invalid-move", message)
                    .with_label(span, label)
                    .with_help(help),
            ),
            None => {
                moved_from.insert(from, m);
            }
        }
    }
    for r in &stack.removals {
        let address = &r.address.value;
        if declared.contains_key(address) {
            diags.push(
                Diagnostic::error(
                    "invalid-removal",
                    format!("`removed` names {address}, which the stack still declares"),
                )
                .with_label(r.address.span, "still declared")
                .with_help(format!(
                    "remove the declaration of {address} too: `removed` lets a resource that is no longer declared go without deleting it"
                )),
            );
        }
    }
}

/// The driver whose AI gateway serves `r`: a self-hosted runtime on the `kubernetes` or `local`
/// driver (SageMaker endpoints are not behind the gateway). `None` for anything else.
fn gateway_driver(stack: &Stack, r: &Resource) -> Option<String> {
    let Spec::AiEndpoint(e) = &*r.spec else {
        return None;
    };
    let driver = stack.driver_for(r)?;
    (e.runtime != ModelRuntime::Sagemaker && (driver == "kubernetes" || driver == "local"))
        .then_some(driver)
}

/// Who may call each endpoint behind the gateway: the teams of the workloads that wire one of
/// its outputs, each with its `llm-key`. The gateway accepts only those keys and names the team
/// from the key, so a quota cannot be dodged by leaving out or forging a header. A calling team
/// without a key could not get through, which is an error at the wiring.
fn endpoint_callers(stack: &mut Stack, diags: &mut Vec<Diagnostic>) {
    let keys: HashMap<&str, &Spanned<String>> = stack
        .teams
        .iter()
        .filter_map(|t| Some((t.name.value.as_str(), t.llm_key.as_ref()?)))
        .collect();
    let served: HashMap<&Address, usize> = stack
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| gateway_driver(stack, r).is_some())
        .map(|(i, r)| (&r.address, i))
        .collect();
    if served.is_empty() {
        return;
    }
    let mut callers: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
    for r in &stack.resources {
        let Some(team) = &r.team else { continue };
        for reference in &r.references {
            if !matches!(reference.via, EdgeVia::Env(_)) {
                continue;
            }
            let Some(&endpoint) = served.get(&reference.target) else {
                continue;
            };
            match keys.get(team.value.as_str()) {
                Some(key) => {
                    callers
                        .entry(endpoint)
                        .or_default()
                        .insert(team.value.clone(), key.value.clone());
                }
                None => diags.push(
                    Diagnostic::error(
                        "missing-llm-key",
                        format!(
                            "{} calls {}, but team `{}` has no `llm-key`",
                            r.address, reference.target, team.value
                        ),
                    )
                    .with_label(reference.span, "the gateway refuses callers without their team's key")
                    .with_help(format!(
                        "declare the team's key, `team \"{0}\" {{ llm-key secret=\"aws-sm:prod/{0}/llm-key\" }}`, and give the workload the same secret: `env \"OPENAI_API_KEY\" secret=\"aws-sm:prod/{0}/llm-key\"`",
                        team.value
                    )),
                ),
            }
        }
    }
    for (i, teams) in callers {
        let r = &mut stack.resources[i];
        if let Spec::AiEndpoint(e) = std::sync::Arc::make_mut(&mut r.spec) {
            e.callers = teams;
        }
        // The memo is shared with the cached copies of this file's resource, whose callers come
        // from other files: it would keep a stale list.
        r.spec_memo = Default::default();
    }
}

/// Alerts that name no target go to the owning team's `owner`: an alert routed nowhere would
/// fire unseen. (`notify` given in the block replaces this.)
fn notify_owners(stack: &mut Stack) {
    let owners: HashMap<&str, &str> = stack
        .teams
        .iter()
        .filter_map(|t| Some((t.name.value.as_str(), t.owner.as_deref()?)))
        .collect();
    for r in &mut stack.resources {
        let Some(monitoring) = &mut r.monitoring else {
            continue;
        };
        if !monitoring.value.notify.is_empty() {
            continue;
        }
        let Some(owner) = r.team.as_ref().and_then(|t| owners.get(t.value.as_str())) else {
            continue;
        };
        monitoring.value.notify.push(format!("email:{owner}"));
        // The memo is shared with cached copies; the owner lives in another file.
        r.spec_memo = Default::default();
    }
}

/// The `llm-quota/<team>` resource of every team with an `llm-quota`: the gateway's token limits
/// for the team's callers, over every endpoint of the stack served through the gateway (a
/// self-hosted runtime on the `kubernetes` or `local` driver). Without such an endpoint the
/// quota cannot be enforced, which is a warning.
fn llm_quotas(stack: &Stack, diags: &mut Vec<Diagnostic>) -> Vec<Resource> {
    let endpoints: Vec<(&Resource, String)> = stack
        .resources
        .iter()
        .filter_map(|r| Some((r, gateway_driver(stack, r)?)))
        .collect();
    let mut out = Vec::new();
    for team in &stack.teams {
        let Some(quota) = &team.llm_quota else {
            continue;
        };
        // One gateway per stack: on `kubernetes` when any endpoint is served there.
        let driver = if endpoints.iter().any(|(_, d)| d == "kubernetes") {
            "kubernetes"
        } else {
            "local"
        };
        let covered: Vec<&Resource> = endpoints
            .iter()
            .filter(|(_, d)| d == driver)
            .map(|(r, _)| *r)
            .collect();
        if covered.is_empty() {
            diags.push(
                Diagnostic::warning(
                    "unenforced-quota",
                    format!(
                        "the llm-quota of team `{}` is not enforced: no AI endpoint is served through the gateway",
                        team.name.value
                    ),
                )
                .with_label(quota.span, "nothing to limit")
                .with_help("serve a model with a self-hosted runtime (`runtime \"vllm\"`) on the `kubernetes` driver; SageMaker endpoints are not behind the gateway"),
            );
            continue;
        }
        out.push(Resource {
            address: Address::new(Kind::LlmQuota, team.name.value.clone()),
            kind_span: quota.span,
            name_span: team.name.span,
            team: Some(team.name.clone()),
            driver_override: Some(Spanned::new(driver.to_string(), quota.span)),
            labels: BTreeMap::new(),
            protect: false,
            drift: None,
            ignore_changes: Vec::new(),
            cost_budget: None,
            monitoring: None,
            references: covered
                .iter()
                .map(|r| Reference {
                    target: r.address.clone(),
                    output: None,
                    via: EdgeVia::DependsOn,
                    span: quota.span,
                    allowed_kinds: &[Kind::AiEndpoint],
                })
                .collect(),
            spec: std::sync::Arc::new(Spec::LlmQuota(LlmQuotaSpec {
                quota: quota.value,
                endpoints: covered.iter().map(|r| r.address.name.clone()).collect(),
            })),
            spec_memo: Default::default(),
        });
    }
    out
}

fn check_teams(stack: &Stack, diags: &mut Vec<Diagnostic>) {
    let names: Vec<&str> = stack.teams.iter().map(|t| t.name.value.as_str()).collect();
    // A set, not a scan of the teams per resource: 10,000 resources among 100 teams made a
    // million string comparisons.
    let declared: std::collections::HashSet<&str> = names.iter().copied().collect();
    for r in &stack.resources {
        let Some(team) = &r.team else { continue };
        if !declared.contains(team.value.as_str()) {
            let help = match suggest::did_you_mean(&team.value, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "declare it: `team \"{}\" {{ owner \"oncall@example.com\" }}`",
                    team.value
                ),
            };
            diags.push(
                Diagnostic::error(
                    "undeclared-team",
                    format!("team `{}` of {} is not declared", team.value, r.address),
                )
                .with_label(team.span, "no such team")
                .with_help(help),
            );
        }
    }
}

fn check_drivers(stack: &Stack, diags: &mut Vec<Diagnostic>) {
    let Some(platform) = &stack.platform else {
        return;
    };
    let declared: Vec<&str> = platform.drivers.iter().map(|d| d.driver.as_str()).collect();
    let unknown_driver = |name: &str| -> String {
        match suggest::did_you_mean(name, declared.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if DriverType::parse(name).is_some() => {
                format!("declare it in the platform: `driver \"{name}\" {{ … }}`")
            }
            None => format!(
                "declared drivers: {}",
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            ),
        }
    };
    for route in &platform.routes {
        match platform.driver(&route.to.value) {
            None => diags.push(
                Diagnostic::error(
                    "unknown-driver",
                    format!("route to undeclared driver `{}`", route.to.value),
                )
                .with_label(route.to.span, "not declared in the platform")
                .with_help(unknown_driver(&route.to.value)),
            ),
            Some(d) => {
                for k in &route.kinds {
                    if !d.driver.supports(k.value) {
                        diags.push(
                            Diagnostic::error(
                                "unsupported-kind",
                                format!(
                                    "driver `{}` does not support kind `{}`",
                                    route.to.value, k.value
                                ),
                            )
                            .with_label(
                                k.span,
                                format!("cannot be applied by `{}`", route.to.value),
                            )
                            .with_help(supported_help(d.driver, k.value)),
                        );
                    }
                }
            }
        }
    }
    // Kinds that fall to the default (first) driver or have none: one diagnostic per kind.
    let mut reported: BTreeMap<Kind, ()> = BTreeMap::new();
    for r in &stack.resources {
        let kind = r.address.kind;
        if let Some(over) = &r.driver_override {
            match platform.driver(&over.value) {
                None => diags.push(
                    Diagnostic::error(
                        "unknown-driver",
                        format!("{} names undeclared driver `{}`", r.address, over.value),
                    )
                    .with_label(over.span, "not declared in the platform")
                    .with_help(unknown_driver(&over.value)),
                ),
                Some(d) if !d.driver.supports(kind) => diags.push(
                    Diagnostic::error(
                        "unsupported-kind",
                        format!("driver `{}` does not support kind `{kind}`", over.value),
                    )
                    .with_label(over.span, format!("cannot apply {}", r.address))
                    .with_help(supported_help(d.driver, kind)),
                ),
                Some(_) => {}
            }
            continue;
        }
        if platform
            .routes
            .iter()
            .any(|route| route.kinds.iter().any(|k| k.value == kind))
        {
            continue; // the route is checked above
        }
        if reported.contains_key(&kind) {
            continue;
        }
        match platform.drivers.first() {
            None => {
                reported.insert(kind, ());
                diags.push(
                    Diagnostic::error("no-driver", format!("no driver for kind `{kind}`"))
                        .with_label(r.kind_span, "nothing can apply this")
                        .with_label(platform.keyword_span, "the platform declares no driver")
                        .with_help("declare one in the platform: `driver \"local\" { path \".platformd/rendered\" }`"),
                );
            }
            Some(first) if !first.driver.supports(kind) => {
                reported.insert(kind, ());
                diags.push(
                    Diagnostic::error(
                        "unsupported-kind",
                        format!("kind `{kind}` has no route and the default driver `{}` does not support it", first.driver.as_str()),
                    )
                    .with_label(r.kind_span, "no driver can apply this")
                    .with_label(first.name_span, "the default driver (declared first)")
                    .with_help(format!("route it: `route \"{kind}\" to=\"…\"` to a driver that supports it, such as `{}`", supporting_driver(kind))),
                );
            }
            Some(_) => {}
        }
    }
    check_driver_rules(stack, platform, diags);
}

/// What each driver declares about the kinds it serves only in part
/// (`descriptors::Descriptor`): the variants it serves, the fields it refuses and the settings
/// a kind needs. One `unsupported-kind` per resource, at the resource; one `missing-field` per
/// driver and need, at the driver with the first resource that needs it.
fn check_driver_rules(stack: &Stack, platform: &Platform, diags: &mut Vec<Diagnostic>) {
    // (driver's position in the platform, need's position in its descriptor) → first resource.
    let mut needed: BTreeMap<(usize, usize), &Resource> = BTreeMap::new();
    for r in &stack.resources {
        let Some(name) = stack.driver_for(r) else {
            continue;
        };
        let Some((at, decl)) = platform
            .drivers
            .iter()
            .enumerate()
            .find(|(_, d)| d.driver.as_str() == name)
        else {
            continue; // an undeclared driver, reported above
        };
        let descriptor = decl.driver.descriptor();
        let kind = r.address.kind.as_str();
        if !descriptor.serves(kind) {
            continue; // reported above
        }
        // The fields are looked at only where a rule needs them: most resources have none.
        let refused = descriptor
            .has_rules_for(kind)
            .then(|| {
                refusal(
                    descriptor,
                    kind,
                    &serde_json::to_value(&*r.spec).unwrap_or_default(),
                )
            })
            .flatten();
        if let Some((message, help)) = refused {
            diags.push(
                Diagnostic::error("unsupported-kind", message)
                    .with_label(
                        r.kind_span,
                        format!("{} cannot be applied by `{}`", r.address, descriptor.driver),
                    )
                    .with_help(help),
            );
            continue;
        }
        for (n, need) in descriptor.needs.iter().enumerate() {
            if need.kind == kind {
                needed.entry((at, n)).or_insert(r);
            }
        }
    }
    for ((at, n), first) in needed {
        let decl = &platform.drivers[at];
        let descriptor = decl.driver.descriptor();
        let need = &descriptor.needs[n];
        let missing: Vec<String> = need
            .settings
            .iter()
            .filter(|s| !decl.settings.contains_key(**s))
            .map(|s| format!("`{s}`"))
            .collect();
        if missing.is_empty() {
            continue;
        }
        diags.push(
            Diagnostic::error(
                "missing-field",
                format!(
                    "driver `{}` needs {} {}",
                    descriptor.driver,
                    missing.join(", "),
                    need.what
                ),
            )
            .with_label(decl.name_span, "missing settings")
            .with_label(
                first.kind_span,
                format!("{} is routed to `{}`", first.address, descriptor.driver),
            )
            .with_help(format!("add them to the driver block: {}", need.example)),
        );
    }
}

/// Why `descriptor` refuses a resource of `kind` with these fields (its canonical spec), if it
/// does: a variant it does not serve, else the first field rule that applies.
fn refusal(
    descriptor: &descriptors::Descriptor,
    kind: &str,
    fields: &serde_json::Value,
) -> Option<(String, &'static str)> {
    for variants in descriptor.variants.iter().filter(|v| v.kind == kind) {
        let value = fields
            .get(variants.field)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        if !variants.served.contains(&value) {
            return Some((variants.message.replace("{value}", value), variants.help));
        }
    }
    descriptor
        .field_rules
        .iter()
        .filter(|rule| rule.kind == kind)
        .find(|rule| match rule.when {
            descriptors::When::Set(names) => names
                .iter()
                .any(|n| fields.get(*n).is_some_and(|v| !v.is_null())),
            descriptors::When::Zero(name) => {
                fields.get(name).and_then(serde_json::Value::as_u64) == Some(0)
            }
        })
        .map(|rule| (rule.message.to_string(), rule.help))
}

fn supported_help(driver: DriverType, kind: Kind) -> String {
    let kinds: Vec<&str> = Kind::ALL
        .iter()
        .filter(|k| driver.supports(**k))
        .map(|k| k.as_str())
        .collect();
    format!(
        "`{}` supports {}; route `{kind}` to `{}` instead",
        driver.as_str(),
        kinds.join(", "),
        supporting_driver(kind)
    )
}

fn supporting_driver(kind: Kind) -> &'static str {
    DriverType::ALL
        .iter()
        .rev()
        .find(|d| d.supports(kind))
        .map_or("local", |d| d.as_str())
}

fn check_references(
    stack: &Stack,
    addresses: &HashMap<Address, usize>,
    diags: &mut Vec<Diagnostic>,
) {
    // Candidates for "did you mean", by kind: gathered at the first dangling reference only.
    let mut by_kind: Option<BTreeMap<Kind, Vec<&str>>> = None;
    for r in &stack.resources {
        for reference in &r.references {
            let target = &reference.target;
            let Some(&ti) = addresses.get(target) else {
                let by_kind = by_kind.get_or_insert_with(|| {
                    let mut by_kind: BTreeMap<Kind, Vec<&str>> = BTreeMap::new();
                    for r in &stack.resources {
                        by_kind
                            .entry(r.address.kind)
                            .or_default()
                            .push(r.address.name.as_str());
                    }
                    by_kind
                });
                let same_kind = by_kind
                    .get(&target.kind)
                    .map(|v| v.as_slice())
                    .unwrap_or(&[]);
                let suggestion = suggest::did_you_mean(&target.name, same_kind.iter().copied())
                    .map(|n| format!("{}/{n}", target.kind))
                    .or_else(|| {
                        // Right name, wrong kind?
                        stack
                            .resources
                            .iter()
                            .find(|o| o.address.name == target.name)
                            .map(|o| o.address.to_string())
                    });
                let help = match suggestion {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "declare `{} \"{}\" {{ … }}` or fix the reference",
                        target.kind, target.name
                    ),
                };
                let what = if reference.via == EdgeVia::GpuPool {
                    "gpu-pool"
                } else {
                    "resource"
                };
                diags.push(
                    Diagnostic::error(
                        "unknown-reference",
                        format!("{} references {target}, which does not exist", r.address),
                    )
                    .with_label(reference.span, format!("no such {what}"))
                    .with_help(help),
                );
                continue;
            };
            if !reference.allowed_kinds.is_empty()
                && !reference.allowed_kinds.contains(&target.kind)
            {
                let kinds: Vec<&str> = reference.allowed_kinds.iter().map(|k| k.as_str()).collect();
                diags.push(
                    Diagnostic::error(
                        "wrong-reference-kind",
                        format!(
                            "`{}` of {} cannot be a {}",
                            reference.via, r.address, target.kind
                        ),
                    )
                    .with_label(reference.span, format!("a {}", target.kind))
                    .with_help(format!(
                        "`{}` takes a {}",
                        reference.via,
                        kinds.join(", a ")
                    )),
                );
            }
            if let Some(output) = &reference.output {
                let outputs = stack.resources[ti].address.kind.outputs();
                if !outputs.contains(&output.as_str()) {
                    diags.push(
                        Diagnostic::error(
                            "unknown-output",
                            format!("{target} has no output `{output}`"),
                        )
                        .with_label(reference.span, "unknown output")
                        .with_help(suggest::help_for(
                            output,
                            outputs,
                            &format!("outputs of a {}", target.kind),
                        )),
                    );
                }
            }
        }
    }
}

/// Dependency cycles, each reported as a path. Takes the stack's graph, which the caller builds
/// once and keeps.
/// `templates-only "team" …` in the platform: those teams' resources come from templates.
pub fn check_templates_only(stack: &Stack, diags: &mut Vec<Diagnostic>) {
    let Some(platform) = &stack.platform else {
        return;
    };
    if platform.templates_only.is_empty() {
        return;
    }
    let mut names: Vec<String> = stack
        .templates
        .templates
        .iter()
        .map(|t| format!("`{}`", t.name))
        .collect();
    names.dedup();
    for r in &stack.resources {
        let Some(team) = &r.team else { continue };
        if r.name_span.expansion != 0 {
            continue;
        }
        let Some(rule) = platform
            .templates_only
            .iter()
            .find(|t| t.value == team.value)
        else {
            continue;
        };
        let help = if names.is_empty() {
            "ask the platform team for a template; `platformd templates` lists the stack's"
                .to_string()
        } else {
            format!(
                "declare it with a `use` of one of the platform's templates ({}); `platformd templates` lists them",
                names.join(", ")
            )
        };
        diags.push(
            Diagnostic::error(
                "not-from-template",
                format!(
                    "team `{}` declares resources only through templates, and {} is written by hand",
                    team.value, r.address
                ),
            )
            .with_label(r.name_span, "written by hand")
            .with_label(rule.span, "the platform's rule")
            .with_help(help),
        );
    }
}

/// A pipeline's sink takes the keys of its kind: a table (and, for ClickHouse, partition and
/// order keys) in a database, a prefix in a bucket. A database sink records the database's
/// engine in the pipeline's spec.
pub fn check_sinks(stack: &mut Stack, diags: &mut Vec<Diagnostic>) {
    let engines: HashMap<Address, (DatabaseEngine, Option<ClickhouseTarget>)> = stack
        .resources
        .iter()
        .filter_map(|r| match &*r.spec {
            Spec::Database(db) => {
                let clickhouse =
                    (db.engine == DatabaseEngine::Clickhouse).then(|| ClickhouseTarget {
                        shards: db.shards.unwrap_or(1),
                        replicas: db.replicas.unwrap_or(1),
                        retention_days: db.retention_days,
                        user: db.users.first().map(|u| u.name.clone()),
                    });
                Some((r.address.clone(), (db.engine, clickhouse)))
            }
            _ => None,
        })
        .collect();
    for r in &mut stack.resources {
        let Spec::Pipeline(p) = &*r.spec else {
            continue;
        };
        let Some(sink) = r.references.iter().find(|x| x.via == EdgeVia::Sink) else {
            continue;
        };
        let engine = engines.get(&sink.target).map(|(e, _)| *e);
        let clickhouse = engines
            .get(&sink.target)
            .and_then(|(_, c)| c.clone())
            .map(|mut c| {
                // The sink's own choice of user, when it names one.
                if p.sink.user.is_some() {
                    c.user = p.sink.user.clone();
                }
                c
            });
        // A cached file's spec is shared: copied only when what it records of its target
        // changes, and then no longer the cached copy's (its memo would be stale).
        if (p.sink.engine != engine || p.sink.clickhouse != clickhouse)
            && let Spec::Pipeline(p) = std::sync::Arc::make_mut(&mut r.spec)
        {
            p.sink.engine = engine;
            p.sink.clickhouse = clickhouse;
            r.spec_memo = Default::default();
        }
    }
    let stack = &*stack;
    // Sinks found by address: a scan of the stack per pipeline was quadratic.
    let mut by_address: HashMap<&Address, &Resource> =
        HashMap::with_capacity(stack.resources.len());
    for r in &stack.resources {
        by_address.entry(&r.address).or_insert(r);
    }
    for r in &stack.resources {
        let Spec::Pipeline(p) = &*r.spec else {
            continue;
        };
        let Some(sink_ref) = r.references.iter().find(|x| x.via == EdgeVia::Sink) else {
            continue;
        };
        let Some(&target) = by_address.get(&sink_ref.target) else {
            continue; // reported as an unknown reference
        };
        let (kind_words, allowed, needs_table): (&str, &[&str], bool) = match &*target.spec {
            Spec::Database(db) if db.engine == DatabaseEngine::Clickhouse => (
                "a ClickHouse database",
                &[
                    "table",
                    "partition-by",
                    "order-by",
                    "columns",
                    "time-column",
                    "user",
                ],
                true,
            ),
            Spec::Database(_) => ("a database", &["table"], true),
            Spec::Bucket(_) => ("a bucket", &["prefix"], false),
            _ => continue,
        };
        let given = [
            ("table", p.sink.table.is_some()),
            ("prefix", p.sink.prefix.is_some()),
            ("partition-by", p.sink.partition_by.is_some()),
            ("order-by", p.sink.order_by.is_some()),
            ("columns", p.sink.columns.is_some()),
            ("time-column", p.sink.time_column.is_some()),
            ("user", p.sink.user.is_some()),
        ];
        for (key, _) in given.iter().filter(|(k, set)| *set && !allowed.contains(k)) {
            diags.push(
                Diagnostic::error(
                    "wrong-arguments",
                    format!("a sink into {kind_words} takes no `{key}=`"),
                )
                .with_label(sink_ref.span, format!("{} is {kind_words}", target.address))
                .with_help(format!(
                    "a sink into {kind_words} takes {}",
                    allowed
                        .iter()
                        .map(|k| format!("`{k}=`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
        if let Spec::Database(db) = &*target.spec
            && db.engine == DatabaseEngine::Clickhouse
        {
            check_clickhouse_table(r, p, db, sink_ref.span, diags);
        }
        if needs_table && p.sink.table.is_none() {
            diags.push(
                Diagnostic::error(
                    "missing-field",
                    format!("the sink of {} needs the table it writes to", r.address),
                )
                .with_label(sink_ref.span, format!("{} is {kind_words}", target.address))
                .with_help(format!(
                    "name it: `sink \"{}\" table=\"events\"`",
                    target.address
                )),
            );
        }
    }
}

/// A ClickHouse sink's table is created and migrated by the pipeline (`docs/DRIVERS.md`), so it
/// needs its columns, a TTL column when the cluster keeps rows for `retention-days`, and only
/// plain names and single expressions: these go into DDL run as the cluster's administrator, and
/// a `;` or a comment would let a pipeline run any statement on a cluster it only writes to.
fn check_clickhouse_table(
    r: &Resource,
    p: &PipelineSpec,
    db: &DatabaseSpec,
    span: crate::source::Span,
    diags: &mut Vec<Diagnostic>,
) {
    let sink = &p.sink;
    match &sink.user {
        None if db.users.is_empty() => diags.push(
            Diagnostic::error(
                "missing-field",
                format!("{} writes to {}, which has no user", r.address, sink.target),
            )
            .with_label(span, "ClickHouse admits `default` only from its own pods")
            .with_help(format!(
                "give the cluster a user: `user \"ingest\" password=\"aws-sm:prod/{}/ingest-password\"` in {}",
                sink.target.trim_start_matches("database/"),
                sink.target
            )),
        ),
        Some(user) if !db.users.iter().any(|u| &u.name == user) => diags.push(
            Diagnostic::error(
                "invalid-value",
                format!(
                    "the sink of {} writes as user `{user}`, which {} does not declare",
                    r.address, sink.target
                ),
            )
            .with_label(span, format!("no user `{user}`"))
            .with_help(format!(
                "one of: {}",
                db.users
                    .iter()
                    .map(|u| format!("`{}`", u.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ),
        _ => {}
    }
    let invalid = |what: &str, label: String, help: &str| {
        Diagnostic::error(
            "invalid-value",
            format!("the sink of {} has {what}", r.address),
        )
        .with_label(span, label)
        .with_help(help.to_string())
    };
    if let Some(table) = &sink.table
        && !is_sql_identifier(table)
    {
        diags.push(invalid(
            "a table name ClickHouse would need quoted",
            format!("`{table}` is not a plain name"),
            "name the table with letters, digits and `_`: `table=\"order_events\"`",
        ));
    }
    for (key, value) in [
        ("partition-by", &sink.partition_by),
        ("order-by", &sink.order_by),
        ("columns", &sink.columns),
    ] {
        if let Some(v) = value
            && (v.contains(';') || v.contains("--") || v.contains("/*"))
        {
            diags.push(invalid(
                &format!("more than one SQL expression in `{key}=`"),
                format!("`{key}=` holds `;` or a comment"),
                "write one expression; the table's DDL runs as the cluster's administrator",
            ));
        }
    }
    let Some(columns) = &sink.columns else {
        diags.push(
            Diagnostic::error(
                "missing-field",
                format!("the sink of {} needs the columns of its table", r.address),
            )
            .with_label(span, "a ClickHouse table is created with its columns")
            .with_help("list them: `columns=\"order_id String, amount Decimal(18, 2), created_at DateTime\"`"),
        );
        return;
    };
    let Some(parsed) = table_columns(columns) else {
        diags.push(invalid(
            "columns that are not `name Type` pairs",
            "expected `name Type, name Type`".into(),
            "write them as `columns=\"order_id String, created_at DateTime\"`",
        ));
        return;
    };
    if let Some(t) = &sink.time_column
        && !parsed.iter().any(|(name, _)| name == t)
    {
        diags.push(invalid(
            "a time column that is not one of its columns",
            format!("no column `{t}`"),
            "name one of the `columns=`, of type Date or DateTime",
        ));
    }
    if let Some(days) = db.retention_days
        && ttl_column(sink).is_none()
    {
        diags.push(
            Diagnostic::error(
                "missing-field",
                format!(
                    "the table of {} needs a time column for the cluster's {days}-day retention",
                    r.address
                ),
            )
            .with_label(span, "no Date or DateTime column")
            .with_help("add one to `columns=`, or name it: `time-column=\"created_at\"`"),
        );
    }
}

/// A `monitoring` block becomes a prometheus-operator rule, which only the `local` and
/// `kubernetes` drivers render; on another driver it would silently watch nothing.
pub fn check_monitoring_drivers(stack: &Stack, diags: &mut Vec<Diagnostic>) {
    for r in &stack.resources {
        let Some(m) = &r.monitoring else { continue };
        // A pipeline's errors are the records it dead-letters: without a dead-letter topic
        // there is nothing to count, and the alert would silently watch nothing.
        if let Spec::Pipeline(p) = &*r.spec
            && p.dead_letter_topic.is_none()
            && m.value
                .alerts
                .iter()
                .any(|a| a.metric == AlertMetric::Errors)
        {
            diags.push(
                Diagnostic::error(
                    "missing-field",
                    format!(
                        "{} alerts on `errors` but has no `dead-letter-topic`",
                        r.address
                    ),
                )
                .with_label(m.span, "its errors are the records it dead-letters")
                .with_help("add `dead-letter-topic \"topic/<name>-dead-letters\"` to the pipeline, or remove the `errors` alert"),
            );
        }
        let Some(driver) = stack.driver_for(r) else {
            continue;
        };
        if matches!(driver.as_str(), "local" | "kubernetes") {
            continue;
        }
        diags.push(
            Diagnostic::warning(
                "monitoring-not-rendered",
                format!(
                    "the alerts of {} are not rendered: its driver `{driver}` does not make alert rules",
                    r.address
                ),
            )
            .with_label(m.span, "no rule will watch this")
            .with_help("alert rules are prometheus-operator `PrometheusRule`s, made by the `kubernetes` (and `local`) driver; alert on this resource from the cloud's own monitoring, or remove the block"),
        );
    }
}

pub fn check_cycles(graph: &Graph, diags: &mut Vec<Diagnostic>) {
    for cycle in graph.cycles() {
        let mut path: Vec<String> = cycle
            .iter()
            .map(|(n, _)| graph.address(*n).to_string())
            .collect();
        path.push(path[0].clone());
        let mut d = Diagnostic::error(
            "dependency-cycle",
            format!("dependency cycle: {}", path.join(" → ")),
        );
        for (i, (n, edge)) in cycle.iter().enumerate() {
            let next = &path[i + 1];
            if let Some(span) = edge.span {
                d = d.with_label(
                    span,
                    format!("{} needs {next} ({})", graph.address(*n), edge.via),
                );
            }
        }
        diags.push(d.with_help("break the cycle: remove one of these references, or wire the value through a resource outside the loop"));
    }
}

/// Endpoints that need more GPUs than their pool can ever have.
fn check_gpu_capacity(stack: &Stack, diags: &mut Vec<Diagnostic>) {
    let prices = crate::cost::PriceTable::new(stack);
    // GPU demand and users per pool, in one pass.
    let mut demand: HashMap<&str, (u32, Vec<&Resource>)> = HashMap::new();
    for r in &stack.resources {
        if let Spec::AiEndpoint(e) = &*r.spec
            && let Some(placement) = &e.gpu_pool
        {
            let replicas = e
                .autoscale
                .as_ref()
                .map_or(e.replicas, |a| a.max.max(e.replicas))
                + e.canary_replicas();
            let entry = demand.entry(placement.pool.as_str()).or_default();
            entry.0 += placement.gpus * replicas;
            entry.1.push(r);
        }
    }
    for pool in &stack.resources {
        let Spec::GpuPool(p) = &*pool.spec else {
            continue;
        };
        let Some((_, gpus_per_node)) = prices.instance(&p.instance_type) else {
            continue;
        };
        let Some((needed, users)) = demand.get(pool.address.name.as_str()) else {
            continue;
        };
        let capacity = p.nodes.max * gpus_per_node;
        if gpus_per_node == 0 || *needed <= capacity {
            continue;
        }
        let mut d = Diagnostic::warning(
            "gpu-capacity",
            format!(
                "endpoints on {} need {needed} GPUs but the pool has at most {capacity}",
                pool.address
            ),
        )
        .with_label(
            pool.name_span,
            format!("at most {} nodes × {gpus_per_node} GPU", p.nodes.max),
        );
        for u in users {
            d = d.with_label(u.name_span, "runs on this pool");
        }
        diags
            .push(d.with_help("raise `nodes max=`, use a larger instance type, or lower replicas"));
    }
}
