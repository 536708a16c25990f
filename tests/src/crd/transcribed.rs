//! The custom kinds platformd renders without a vendored kopium type, as the field paths of
//! their `spec` that the published CRDs define, transcribed from those schemas (`[]` marks a
//! list item, a trailing `.*` a map's keys): Envoy Gateway (`gateway.envoyproxy.io/v1alpha1`)
//! and Envoy AI Gateway (`aigateway.envoyproxy.io/v1alpha1`), External Secrets
//! (`external-secrets.io/v1beta1` ExternalSecret), Karpenter (`karpenter.sh/v1` NodePool) and
//! CloudNativePG (`postgresql.cnpg.io/v1` Cluster). Only the paths platformd may use are listed:
//! a path outside them is one the renderer must not send. The emulator refuses any other under
//! strict field validation, with the schemas' enums and patterns on the values listed in
//! [`value_problem`]; `drivers/tests/gateway.rs` checks the gateways' values further.

use serde_json::Value;

/// The transcribed spec paths of `kind`, or `None` for a kind not listed here.
pub fn spec_paths(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "AIGatewayRoute" => &[
            "parentRefs[].name",
            "parentRefs[].kind",
            "parentRefs[].group",
            "parentRefs[].namespace",
            "rules[].matches[].headers[].type",
            "rules[].matches[].headers[].name",
            "rules[].matches[].headers[].value",
            "rules[].backendRefs[].name",
            "rules[].backendRefs[].weight",
            "llmRequestCosts[].metadataKey",
            "llmRequestCosts[].type",
        ],
        "AIServiceBackend" => &[
            "schema.name",
            "schema.prefix",
            "backendRef.name",
            "backendRef.kind",
            "backendRef.group",
            "backendRef.namespace",
        ],
        "Backend" => &["endpoints[].fqdn.hostname", "endpoints[].fqdn.port"],
        "SecurityPolicy" => &[
            "targetRefs[].group",
            "targetRefs[].kind",
            "targetRefs[].name",
            "apiKeyAuth.credentialRefs[].group",
            "apiKeyAuth.credentialRefs[].kind",
            "apiKeyAuth.credentialRefs[].name",
            "apiKeyAuth.extractFrom[].headers[]",
            "apiKeyAuth.forwardClientIDHeader",
            "apiKeyAuth.sanitize",
            "authorization.defaultAction",
        ],
        "BackendTrafficPolicy" => &[
            "targetRefs[].group",
            "targetRefs[].kind",
            "targetRefs[].name",
            "rateLimit.type",
            "rateLimit.global.rules[].clientSelectors[].headers[].name",
            "rateLimit.global.rules[].clientSelectors[].headers[].type",
            "rateLimit.global.rules[].clientSelectors[].headers[].value",
            "rateLimit.global.rules[].limit.requests",
            "rateLimit.global.rules[].limit.unit",
            "rateLimit.global.rules[].cost.request.from",
            "rateLimit.global.rules[].cost.request.number",
            "rateLimit.global.rules[].cost.response.from",
            "rateLimit.global.rules[].cost.response.metadata.namespace",
            "rateLimit.global.rules[].cost.response.metadata.key",
            "rateLimit.global.rules[].shared",
        ],
        "ExternalSecret" => &[
            "secretStoreRef.kind",
            "secretStoreRef.name",
            "target.name",
            "data[].secretKey",
            "data[].remoteRef.key",
        ],
        "NodePool" => &[
            "template.metadata.labels.*",
            "template.spec.nodeClassRef.group",
            "template.spec.nodeClassRef.kind",
            "template.spec.nodeClassRef.name",
            "template.spec.requirements[].key",
            "template.spec.requirements[].operator",
            "template.spec.requirements[].values[]",
            "template.spec.taints[].key",
            "template.spec.taints[].value",
            "template.spec.taints[].effect",
            "limits.*",
            "disruption.consolidationPolicy",
            "disruption.consolidateAfter",
        ],
        "Cluster" => &[
            "instances",
            "imageName",
            "storage.size",
            "bootstrap.initdb.database",
            "bootstrap.initdb.owner",
            "backup.retentionPolicy",
        ],
        _ => return None,
    })
}

/// What the schema says of a value at `path` of `kind`'s spec, when it refuses it: the enums
/// and patterns of the transcribed kinds.
pub fn value_problem(kind: &str, path: &str, value: &Value) -> Option<String> {
    let text = value.as_str().unwrap_or("");
    let one_of = |allowed: &[&str]| {
        (!allowed.contains(&text))
            .then(|| format!("Unsupported value: {value}: supported values: {allowed:?}"))
    };
    match (kind, path) {
        ("ExternalSecret", "secretStoreRef.kind") => one_of(&["SecretStore", "ClusterSecretStore"]),
        ("NodePool", "template.spec.requirements[].operator") => {
            one_of(&["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"])
        }
        ("NodePool", "template.spec.taints[].effect") => {
            one_of(&["NoSchedule", "PreferNoSchedule", "NoExecute"])
        }
        ("NodePool", "disruption.consolidationPolicy") => {
            one_of(&["WhenEmpty", "WhenEmptyOrUnderutilized"])
        }
        // CloudNativePG: `^[1-9][0-9]*[dwm]$`.
        ("Cluster", "backup.retentionPolicy") => {
            let (digits, unit) = text.split_at(text.len().saturating_sub(1));
            let valid = matches!(unit, "d" | "w" | "m")
                && !digits.is_empty()
                && !digits.starts_with('0')
                && digits.bytes().all(|b| b.is_ascii_digit());
            (!valid).then(|| format!("Invalid value: {value}: should match '^[1-9][0-9]*[dwm]$'"))
        }
        ("Cluster", "instances") => (value.as_u64().unwrap_or(0) < 1)
            .then(|| format!("Invalid value: {value}: should be greater than or equal to 1")),
        _ => None,
    }
}

/// Every leaf of `v` as `(path, value)`, lists marked `[]`.
pub fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, v, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                leaves(&format!("{prefix}[]"), item, out);
            }
        }
        leaf => out.push((prefix.to_string(), leaf.clone())),
    }
}

/// The first problem of `spec` by the kind's schema: a path it does not define, or a value it
/// refuses. `None` for a kind not transcribed here, or a spec it accepts.
pub fn problem(kind: &str, spec: &Value) -> Option<String> {
    let known = spec_paths(kind)?;
    let mut found = Vec::new();
    leaves("", spec, &mut found);
    found.into_iter().find_map(|(path, value)| {
        let defined = known.iter().any(|k| match k.strip_suffix(".*") {
            Some(map) => path.starts_with(&format!("{map}.")),
            None => *k == path,
        });
        if !defined {
            return Some(format!("unknown field \"spec.{path}\""));
        }
        value_problem(kind, &path, &value).map(|p| format!("spec.{path}: {p}"))
    })
}
