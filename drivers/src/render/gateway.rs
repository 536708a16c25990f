//! LLM traffic through Envoy AI Gateway, so that rate limits and quotas are enforced rather than
//! annotated. Field names follow the published CRDs: `aigateway.envoyproxy.io/v1alpha1`
//! (`AIGatewayRoute`, `AIServiceBackend`) and Envoy Gateway's `gateway.envoyproxy.io/v1alpha1`
//! (`Backend`, `BackendTrafficPolicy`).
//!
//! - every self-hosted `ai-endpoint` gets a `Backend` (its Service's cluster DNS name), an
//!   `AIServiceBackend` (OpenAI schema) and an `AIGatewayRoute` on the stack's gateway matching
//!   the model name (`x-ai-eg-model`), which records each response's total tokens in the
//!   request's metadata (`llmRequestCosts`); with a `canary`, the canary revision's Service gets
//!   its own Backend and AIServiceBackend and the route splits requests between the two by the
//!   declared `weight-percent` (`backendRefs[].weight`), whatever the pod counts;
//! - an endpoint's `rate-limit` becomes a `BackendTrafficPolicy` on the route the gateway makes
//!   from it (same name): tokens per minute are charged from the recorded total tokens,
//!   requests per minute one per request;
//! - every route is closed by default: a `SecurityPolicy` (`apiKeyAuth`) admits only the keys of
//!   the teams whose workloads call the endpoint (their `llm-key`, filled into a Secret by an
//!   `ExternalSecret`, one key per team named by the team), reads the key from `Authorization:
//!   Bearer` (what OpenAI clients send) or `x-api-key`, strips it before the runtime, and writes
//!   the key's team into `x-platformd-team`, replacing whatever the caller sent. An endpoint no
//!   workload calls denies every request (`authorization.defaultAction: Deny`);
//! - a team's `llm-quota` (the `llm-quota/<team>` resource) becomes one `BackendTrafficPolicy`
//!   over every endpoint's route, with rules shared across them for requests whose
//!   `x-platformd-team` is the team: a header only the gateway sets, from the key.

use super::{metadata, secret_store, store_secret_name};
use crate::DesiredResource;
use planner::model::{AiEndpointSpec, LlmQuotaSpec};
use serde_json::{Value, json};
use std::collections::BTreeSet;

pub const AI_GATEWAY_API: &str = "aigateway.envoyproxy.io/v1alpha1";
pub const ENVOY_GATEWAY_API: &str = "gateway.envoyproxy.io/v1alpha1";
/// The Gateway routes attach to, unless the driver's `ai-gateway` setting names another.
pub const DEFAULT_GATEWAY: &str = "ai-gateway";
/// The request header that names the calling team: set by the gateway from the caller's key,
/// overwriting any value the caller sent.
pub const TEAM_HEADER: &str = "x-platformd-team";
/// Where the gateway reads a caller's key: OpenAI clients send `Authorization: Bearer <key>`,
/// Anthropic-style clients `x-api-key`.
pub const KEY_HEADERS: [&str; 2] = ["Authorization", "x-api-key"];
/// Where the AI Gateway filter records a response's total tokens.
const TOKEN_METADATA_NAMESPACE: &str = "io.envoy.ai_gateway";
const TOKEN_METADATA_KEY: &str = "llm_total_token";

/// Where workloads in `namespace` reach the gateway `gateway`, OpenAI's `/v1` included: the
/// Gateway's Service of the same name in the namespace, which is what Envoy Gateway creates in
/// its gateway-namespace deploy mode (or with an `EnvoyProxy` whose `envoyService.name` is the
/// Gateway's). Anything else is the driver's `ai-gateway-url` setting.
pub fn default_url(gateway: &str, namespace: &str) -> String {
    format!("http://{gateway}.{namespace}.svc.cluster.local/v1")
}

/// A rule's cost: nothing on the request path, the response's total tokens after it.
fn token_cost() -> Value {
    json!({
        "request": { "from": "Number", "number": 0 },
        "response": {
            "from": "Metadata",
            "metadata": { "namespace": TOKEN_METADATA_NAMESPACE, "key": TOKEN_METADATA_KEY },
        },
    })
}

fn http_route(name: &str) -> Value {
    json!({ "group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name })
}

/// The gateway objects of a self-hosted endpoint serving on `port`.
pub fn endpoint_objects(
    d: &DesiredResource,
    e: &AiEndpointSpec,
    namespace: &str,
    port: u16,
) -> Vec<Value> {
    let name = &d.name;
    let model = &e.model.id;
    // With a canary, each revision is a backend of its own and the route splits requests by
    // the declared weight.
    let mut tracks: Vec<(String, u32)> = vec![(name.clone(), 100)];
    if let Some(c) = &e.canary {
        tracks = vec![
            (name.clone(), 100 - c.weight_percent),
            (format!("{name}-canary"), c.weight_percent),
        ];
    }
    let mut docs = Vec::new();
    for (track, _) in &tracks {
        docs.push(json!({
            "apiVersion": ENVOY_GATEWAY_API,
            "kind": "Backend",
            "metadata": metadata(d, track, Some(namespace)),
            "spec": {
                "endpoints": [{ "fqdn": { "hostname": format!("{track}.{namespace}.svc.cluster.local"), "port": port } }],
            },
        }));
    }
    for (track, _) in &tracks {
        docs.push(json!({
            "apiVersion": AI_GATEWAY_API,
            "kind": "AIServiceBackend",
            "metadata": metadata(d, track, Some(namespace)),
            "spec": {
                "schema": { "name": "OpenAI", "prefix": "/v1" },
                "backendRef": { "name": track, "kind": "Backend", "group": "gateway.envoyproxy.io" },
            },
        }));
    }
    let backend_refs: Vec<Value> = if tracks.len() == 1 {
        vec![json!({ "name": name })]
    } else {
        tracks
            .iter()
            .map(|(track, weight)| json!({ "name": track, "weight": weight }))
            .collect()
    };
    docs.push(json!({
        "apiVersion": AI_GATEWAY_API,
        "kind": "AIGatewayRoute",
        "metadata": metadata(d, name, Some(namespace)),
        "spec": {
            "parentRefs": [{ "name": DEFAULT_GATEWAY, "kind": "Gateway", "group": "gateway.networking.k8s.io" }],
            "rules": [{
                "matches": [{ "headers": [{ "type": "Exact", "name": "x-ai-eg-model", "value": model }] }],
                "backendRefs": backend_refs,
            }],
            "llmRequestCosts": [{ "metadataKey": TOKEN_METADATA_KEY, "type": "TotalToken" }],
        },
    }));
    docs.push(security_policy(d, e, namespace));
    if let Some(limit) = &e.rate_limit {
        let mut rules = Vec::new();
        if let Some(tokens) = limit.tokens_per_minute {
            rules.push(json!({
                "limit": { "requests": tokens, "unit": "Minute" },
                "cost": token_cost(),
            }));
        }
        if let Some(requests) = limit.requests_per_minute {
            rules.push(json!({ "limit": { "requests": requests, "unit": "Minute" } }));
        }
        docs.push(json!({
            "apiVersion": ENVOY_GATEWAY_API,
            "kind": "BackendTrafficPolicy",
            "metadata": metadata(d, &format!("{name}-rate-limit"), Some(namespace)),
            "spec": {
                "targetRefs": [http_route(name)],
                "rateLimit": { "type": "Global", "global": { "rules": rules } },
            },
        }));
    }
    docs
}

/// The Secret (one per secret store) holding the keys of an endpoint's calling teams:
/// `<name>-callers`, or `<name>-callers-<store>` when their keys live in several stores.
fn callers_base(d: &DesiredResource) -> String {
    format!("{}-callers", d.name)
}

fn caller_stores(e: &AiEndpointSpec) -> BTreeSet<&str> {
    e.callers.values().map(|r| secret_store(r)).collect()
}

/// One ExternalSecret per store holding calling teams' keys: each key is stored under its team's
/// name, which is the client id the gateway forwards. Emitted with the endpoint's other
/// ExternalSecrets, before them (`<name>-callers` sorts before `<name>-secrets`).
pub fn caller_keys(d: &DesiredResource, e: &AiEndpointSpec, namespace: &str) -> Vec<Value> {
    super::external_secrets_by_store(
        d,
        namespace,
        &callers_base(d),
        e.callers
            .iter()
            .map(|(team, reference)| (team.as_str(), reference.as_str())),
    )
}

/// The route's admission: the calling teams' keys, or nobody when no workload calls it.
fn security_policy(d: &DesiredResource, e: &AiEndpointSpec, namespace: &str) -> Value {
    let stores = caller_stores(e);
    let spec = if stores.is_empty() {
        json!({
            "targetRefs": [http_route(&d.name)],
            "authorization": { "defaultAction": "Deny" },
        })
    } else {
        let credentials: Vec<Value> = stores
            .iter()
            .map(|store| {
                json!({ "group": "", "kind": "Secret", "name": store_secret_name(&callers_base(d), store, stores.len()) })
            })
            .collect();
        json!({
            "targetRefs": [http_route(&d.name)],
            "apiKeyAuth": {
                "credentialRefs": credentials,
                "extractFrom": [{ "headers": KEY_HEADERS }],
                "forwardClientIDHeader": TEAM_HEADER,
                "sanitize": true,
            },
        })
    };
    json!({
        "apiVersion": ENVOY_GATEWAY_API,
        "kind": "SecurityPolicy",
        "metadata": metadata(d, &d.name, Some(namespace)),
        "spec": spec,
    })
}

/// A team's quota: one policy over every endpoint's route, shared buckets per day and minute.
pub fn quota_policy(d: &DesiredResource, q: &LlmQuotaSpec, namespace: &str) -> Value {
    let team = &d.name;
    let caller = json!([{ "headers": [{ "name": TEAM_HEADER, "type": "Exact", "value": team }] }]);
    let mut rules = Vec::new();
    for (tokens, unit) in [
        (q.quota.tokens_per_day, "Day"),
        (q.quota.tokens_per_minute, "Minute"),
    ] {
        if let Some(tokens) = tokens {
            rules.push(json!({
                "clientSelectors": caller,
                "limit": { "requests": tokens, "unit": unit },
                "cost": token_cost(),
                "shared": true,
            }));
        }
    }
    let targets: Vec<Value> = q.endpoints.iter().map(|e| http_route(e)).collect();
    json!({
        "apiVersion": ENVOY_GATEWAY_API,
        "kind": "BackendTrafficPolicy",
        "metadata": metadata(d, &format!("llm-quota-{team}"), Some(namespace)),
        "spec": {
            "targetRefs": targets,
            "rateLimit": { "type": "Global", "global": { "rules": rules } },
        },
    })
}

/// Points every route in `docs` at the Gateway `gateway` (the driver's `ai-gateway` setting).
pub fn attach_to(docs: &mut [Value], gateway: &str) {
    for doc in docs.iter_mut().filter(|d| d["kind"] == "AIGatewayRoute") {
        doc["spec"]["parentRefs"][0]["name"] = gateway.into();
    }
}
