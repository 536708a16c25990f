//! Policy as code: each `policy` rule is a CEL expression evaluated against every resource in
//! its scope, with the resource bound as `self` (its `kind`, `name`, `team`, `labels` and its
//! fields by their KDL names, `-` written `_`, defaults filled in) and the platform's
//! `environment`. A rule whose expression is true for a resource is a finding: `deny` blocks the
//! plan (exit 3), `warn` is reported. Pure: the same stack always gives the same findings.

use crate::diagnostic::Diagnostic;
use crate::model::Stack;
use crate::snapshot::Snapshot;

use std::collections::HashMap;
use std::sync::Arc;

pub use crate::model::PolicyFinding;

/// Map keys that are user data, not field names: kept as written (`self.labels["cost-center"]`).
const DATA_MAPS: &[&str] = &["labels", "env", "annotations"];

/// A JSON value as CEL sees it; object keys become `_`-separated identifiers except inside
/// user-data maps.
fn to_cel(value: &serde_json::Value, rename_keys: bool) -> cel::Value {
    use serde_json::Value as J;
    match value {
        J::Null => cel::Value::Null,
        J::Bool(b) => cel::Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => cel::Value::String(Arc::new(s.clone())),
        J::Array(items) => cel::Value::List(Arc::new(
            items.iter().map(|v| to_cel(v, rename_keys)).collect(),
        )),
        J::Object(fields) => {
            let map: HashMap<String, cel::Value> = fields
                .iter()
                .map(|(k, v)| {
                    let key = if rename_keys {
                        k.replace('-', "_")
                    } else {
                        k.clone()
                    };
                    (
                        key,
                        to_cel(v, rename_keys && !DATA_MAPS.contains(&k.as_str())),
                    )
                })
                .collect();
            cel::Value::from(map)
        }
    }
}

/// Evaluates every policy of `stack` against the resources of its valid `snapshot`. A rule that
/// fails to evaluate for a resource (a field that kind does not have, a non-boolean result) is
/// an error diagnostic at the rule: a policy that cannot decide never passes silently.
pub fn evaluate(
    stack: &Stack,
    snapshot: &Snapshot,
    diags: &mut Vec<Diagnostic>,
) -> Vec<PolicyFinding> {
    let mut findings = Vec::new();
    if stack.policies.is_empty() {
        return findings;
    }
    let environment = snapshot.environment.clone();
    let programs: Vec<Vec<Option<cel::Program>>> = stack
        .policies
        .iter()
        .map(|p| {
            p.rules
                .iter()
                .map(|r| cel::Program::compile(&r.expression.value).ok())
                .collect()
        })
        .collect();
    for resource in &stack.resources {
        let address = resource.address.key();
        let Some(snap) = snapshot.resources.get(&address) else {
            continue;
        };
        let mut bound: Option<cel::Context> = None;
        for (policy, programs) in stack.policies.iter().zip(&programs) {
            let in_scope = (policy.kinds.is_empty() || policy.kinds.contains(&snap.kind))
                && (policy.teams.is_empty() || policy.teams.contains(&snap.team))
                && (policy.environments.is_empty()
                    || environment
                        .as_ref()
                        .is_some_and(|e| policy.environments.contains(e)));
            if !in_scope {
                continue;
            }
            let context = bound.get_or_insert_with(|| {
                let mut this = match to_cel(&snap.spec.value(), true) {
                    cel::Value::Map(m) => (*m.map).clone(),
                    _ => HashMap::new(),
                };
                let text = |s: &str| cel::Value::String(Arc::new(s.to_string()));
                this.insert("kind".into(), text(snap.kind.as_str()));
                this.insert("name".into(), text(&snap.name));
                this.insert("team".into(), text(&snap.team));
                this.entry("labels".into())
                    .or_insert_with(|| cel::Value::from(HashMap::<String, cel::Value>::new()));
                let mut context = cel::Context::default();
                context.add_variable_from_value("self", cel::Value::Map(this.into()));
                context.add_variable_from_value(
                    "environment",
                    environment.as_deref().map_or(cel::Value::Null, text),
                );
                context
            });
            for (rule, program) in policy.rules.iter().zip(programs) {
                let Some(program) = program else {
                    continue;
                };
                let problem = match program.execute(context) {
                    Ok(cel::Value::Bool(false)) => continue,
                    Ok(cel::Value::Bool(true)) => {
                        findings.push(PolicyFinding {
                            policy: policy.name.value.clone(),
                            level: rule.level,
                            address: address.clone(),
                            message: rule.message.clone(),
                            location: stack.sources.location(resource.kind_span),
                        });
                        continue;
                    }
                    Ok(other) => format!("is {}, not a bool", other.type_of()),
                    Err(e) => e.to_string(),
                };
                diags.push(
                    Diagnostic::error(
                        "policy-error",
                        format!(
                            "policy `{}` cannot decide for {address}: {problem}",
                            policy.name.value
                        ),
                    )
                    .with_label(rule.expression.span, "this rule")
                    .with_label(resource.kind_span, format!("{address} is declared here"))
                    .with_help(
                        "narrow the policy with `kinds`, or guard a field some resources lack with `has(self.field) && …`",
                    ),
                );
            }
        }
    }
    findings
}
