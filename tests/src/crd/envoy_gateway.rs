//! The Envoy Gateway (`gateway.envoyproxy.io/v1alpha1`) and Envoy AI Gateway
//! (`aigateway.envoyproxy.io/v1alpha1`) kinds platformd renders, as the field paths of their
//! `spec` that the published CRDs define, transcribed from those schemas (`[]` marks a list
//! item). Only the paths platformd may use are listed: a path outside them is one the renderer
//! must not send. The emulator refuses any other under strict field validation, and
//! `drivers/tests/gateway.rs` checks values (enums, validation rules) on top.

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
        _ => return None,
    })
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

/// The first path of `spec` that the kind's schema does not define.
pub fn unknown_path(kind: &str, spec: &Value) -> Option<String> {
    let known = spec_paths(kind)?;
    let mut found = Vec::new();
    leaves("", spec, &mut found);
    found
        .into_iter()
        .map(|(path, _)| path)
        .find(|path| !known.contains(&path.as_str()))
}
