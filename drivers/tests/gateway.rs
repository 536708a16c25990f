#![cfg(feature = "kubernetes")]
//! LLM rate limits and quotas as Envoy AI Gateway objects: every field rendered is one the
//! published CRDs define (`aigateway.envoyproxy.io/v1alpha1` AIGatewayRoute and AIServiceBackend,
//! `gateway.envoyproxy.io/v1alpha1` Backend and BackendTrafficPolicy), with their enum values and
//! validation rules; the Kubernetes driver applies them to a cluster (the emulator); and, read
//! by a stand-in of the gateway (`test_support::ai_gateway`), they hold: the example's quota
//! cannot be dodged by leaving out or forging the team header, and its services reach the
//! endpoints only through the gateway.

mod support;

use drivers::kubernetes::{KubernetesDriver, Settings};
use drivers::render::gateway;
use drivers::{DesiredResource, Driver};
use planner::model::{Kind, Spec};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use test_support::ai_gateway::{Admitted, Charge, Gateway, Refused};
use test_support::crd::transcribed;
use test_support::kube_emulator::KubeEmulator;

/// Field paths of each object's `spec` as the CRDs define them, transcribed from the
/// operators' published schemas (`test_support::crd::transcribed`); the renderer may use only
/// these.
fn crd_fields(kind: &str) -> BTreeSet<&'static str> {
    transcribed::spec_paths(kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
        .iter()
        .copied()
        .collect()
}

/// Checks one object against its CRD: known fields only, and the schema's enums and rules.
fn check_against_crd(doc: &Value) {
    let kind = doc["kind"].as_str().unwrap();
    let allowed = crd_fields(kind);
    let mut fields = Vec::new();
    transcribed::leaves("", &doc["spec"], &mut fields);
    for (path, value) in &fields {
        assert!(
            allowed.contains(path.as_str()),
            "{kind}: `spec.{path}` is not a field of the CRD"
        );
        let one_of = |allowed: &[&str]| {
            assert!(
                allowed.contains(&value.as_str().unwrap_or("")),
                "{kind}: spec.{path} = {value} is not one of {allowed:?}"
            )
        };
        match path.as_str() {
            "llmRequestCosts[].type" => one_of(&[
                "OutputToken",
                "InputToken",
                "CachedInputToken",
                "CacheCreationInputToken",
                "TotalToken",
                "CEL",
            ]),
            "schema.name" => one_of(&["OpenAI", "Cohere", "AWSBedrock", "AzureOpenAI"]),
            "rateLimit.global.rules[].limit.unit" => one_of(&["Second", "Minute", "Hour", "Day"]),
            "rateLimit.global.rules[].clientSelectors[].headers[].type"
            | "rules[].matches[].headers[].type" => {
                one_of(&["Exact", "RegularExpression", "Distinct"])
            }
            "rateLimit.global.rules[].cost.request.from"
            | "rateLimit.global.rules[].cost.response.from" => one_of(&["Number", "Metadata"]),
            "rateLimit.type" => one_of(&["Global", "Local"]),
            "authorization.defaultAction" => one_of(&["Allow", "Deny"]),
            "apiKeyAuth.credentialRefs[].kind" => one_of(&["Secret"]),
            // The CRDs' validation rules: routes attach to Gateways only, and an
            // AIServiceBackend's backend is an Envoy Gateway Backend.
            "parentRefs[].kind" => one_of(&["Gateway"]),
            "backendRef.kind" => one_of(&["Backend"]),
            "backendRef.group" => one_of(&["gateway.envoyproxy.io"]),
            "rateLimit.global.rules[].limit.requests" => {
                assert!(value.as_u64().is_some_and(|n| n > 0), "{kind}: {path}")
            }
            _ => {}
        }
    }
    let api = doc["apiVersion"].as_str().unwrap();
    match kind {
        "AIGatewayRoute" | "AIServiceBackend" => assert_eq!(api, gateway::AI_GATEWAY_API),
        _ => assert_eq!(api, gateway::ENVOY_GATEWAY_API),
    }
}

fn endpoint(rate_limit: Value) -> DesiredResource {
    let mut spec = json!({
        "team": "ml",
        "model": { "id": "meta-llama/Llama-3.1-8B-Instruct", "revision": "main" },
        "runtime": "vllm",
        "gpu-pool": { "pool": "l4", "gpus": 1 },
        "replicas": 2,
    });
    if !rate_limit.is_null() {
        spec["rate-limit"] = rate_limit;
    }
    DesiredResource::from_json("shop", Kind::AiEndpoint, "chat", &spec).unwrap()
}

/// `d` without its endpoint's rate limit.
fn without_rate_limit(mut d: DesiredResource) -> DesiredResource {
    if let Spec::AiEndpoint(e) = &mut d.spec.fields {
        e.rate_limit = None;
    }
    d
}

fn quota() -> DesiredResource {
    DesiredResource::from_json(
        "shop",
        Kind::LlmQuota,
        "storefront",
        &json!({
            "team": "storefront",
            "tokens-per-day": 20_000_000u64,
            "tokens-per-minute": 200_000u64,
            "endpoints": ["chat", "embeddings"],
        }),
    )
    .unwrap()
}

#[test]
fn every_gateway_object_uses_only_the_fields_and_values_of_the_published_crds() {
    let docs = drivers::render::documents(
        &endpoint(json!({ "tokens-per-minute": 100_000, "requests-per-minute": 600 })),
        "ml",
    );
    let gateway_docs: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            d["apiVersion"]
                .as_str()
                .unwrap_or("")
                .contains("envoyproxy.io")
        })
        .collect();
    let kinds: Vec<&str> = gateway_docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Backend",
            "AIServiceBackend",
            "AIGatewayRoute",
            "SecurityPolicy",
            "BackendTrafficPolicy"
        ]
    );
    for doc in &gateway_docs {
        check_against_crd(doc);
    }
    let route = gateway_docs[2];
    assert_eq!(
        route["spec"]["rules"][0]["matches"][0]["headers"][0]["value"],
        "meta-llama/Llama-3.1-8B-Instruct"
    );
    // Nobody calls it: closed.
    assert_eq!(
        gateway_docs[3]["spec"]["authorization"],
        json!({ "defaultAction": "Deny" })
    );
    let policy = gateway_docs[4];
    assert_eq!(policy["spec"]["targetRefs"][0]["name"], "chat");
    let rules = &policy["spec"]["rateLimit"]["global"]["rules"];
    assert_eq!(
        rules[0]["limit"],
        json!({ "requests": 100_000, "unit": "Minute" })
    );
    assert_eq!(
        rules[0]["cost"]["response"]["metadata"]["key"],
        "llm_total_token"
    );
    assert_eq!(
        rules[1]["limit"],
        json!({ "requests": 600, "unit": "Minute" })
    );
    assert!(rules[1].get("cost").is_none(), "one request, one unit");

    let quota_docs = drivers::render::documents(&quota(), "ml");
    assert_eq!(quota_docs.len(), 1);
    check_against_crd(&quota_docs[0]);
    let spec = &quota_docs[0]["spec"];
    let targets: Vec<&str> = spec["targetRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["chat", "embeddings"]);
    for (rule, unit, limit) in [(0, "Day", 20_000_000u64), (1, "Minute", 200_000)] {
        let r = &spec["rateLimit"]["global"]["rules"][rule];
        assert_eq!(r["limit"], json!({ "requests": limit, "unit": unit }));
        assert_eq!(r["shared"], true, "one bucket across the endpoints");
        assert_eq!(
            r["clientSelectors"][0]["headers"][0],
            json!({ "name": gateway::TEAM_HEADER, "type": "Exact", "value": "storefront" })
        );
    }

    // No limit declared: a route, but no policy.
    let unlimited = endpoint(Value::Null);
    let docs = drivers::render::documents(&unlimited, "ml");
    assert!(!docs.iter().any(|d| d["kind"] == "BackendTrafficPolicy"));
    assert!(docs.iter().any(|d| d["kind"] == "AIGatewayRoute"));
}

#[test]
fn the_kubernetes_driver_applies_routes_and_quotas_on_the_named_gateway() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, emulator.kubeconfig()).unwrap();
    let driver = KubernetesDriver::new(Settings {
        kubeconfig: Some(path),
        context: Some("emulator".into()),
        namespace: Some("ml".into()),
        ai_gateway: Some("llm-gateway".into()),
        ..Settings::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let chat = endpoint(json!({ "tokens-per-minute": 100_000 }));
    let applied = rt.block_on(driver.apply(&chat, &[])).unwrap();
    let kinds: BTreeSet<&str> = applied.inventory.iter().map(|o| o.kind.as_str()).collect();
    for kind in [
        "AIGatewayRoute",
        "AIServiceBackend",
        "Backend",
        "BackendTrafficPolicy",
    ] {
        assert!(kinds.contains(kind), "{kind} in {kinds:?}");
    }
    let route = emulator
        .get("aigateway.envoyproxy.io", "aigatewayroutes", "ml", "chat")
        .expect("an AIGatewayRoute in the cluster");
    assert_eq!(route["spec"]["parentRefs"][0]["name"], "llm-gateway");
    assert!(
        emulator
            .get(
                "gateway.envoyproxy.io",
                "backendtrafficpolicies",
                "ml",
                "chat-rate-limit"
            )
            .is_some()
    );
    rt.block_on(driver.apply(&quota(), &[])).unwrap();
    let policy = emulator
        .get(
            "gateway.envoyproxy.io",
            "backendtrafficpolicies",
            "ml",
            "llm-quota-storefront",
        )
        .expect("the team's quota policy in the cluster");
    assert_eq!(
        policy["spec"]["rateLimit"]["global"]["rules"][0]["shared"],
        true
    );

    // The limit removed: its policy is pruned, the route stays.
    let unlimited = without_rate_limit(chat.clone());
    let inventory = applied.inventory.clone();
    rt.block_on(driver.apply(&unlimited, &inventory)).unwrap();
    assert!(
        emulator
            .get(
                "gateway.envoyproxy.io",
                "backendtrafficpolicies",
                "ml",
                "chat-rate-limit"
            )
            .is_none()
    );
    assert!(
        emulator
            .get("aigateway.envoyproxy.io", "aigatewayroutes", "ml", "chat")
            .is_some()
    );
}

const STOREFRONT_KEY: &str = "sk-storefront-4f1c9a7e20b3";
const PAYMENTS_KEY: &str = "sk-payments-8d2e6b0c51fa";
const LLAMA: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// The secret manager behind the example's `llm-key` references.
fn secret_manager(store: &str, key: &str) -> Option<String> {
    match (store, key) {
        ("aws-sm", "prod/storefront/llm-key") => Some(STOREFRONT_KEY.into()),
        ("aws-sm", "prod/payments/llm-key") => Some(PAYMENTS_KEY.into()),
        _ => None,
    }
}

fn variant_driver() -> KubernetesDriver {
    KubernetesDriver::new(Settings {
        namespace: Some("platform".into()),
        ..Settings::default()
    })
}

/// The gateway in front of everything the example's Kubernetes variant renders.
fn example_gateway() -> Gateway {
    let driver = variant_driver();
    let mut docs = Vec::new();
    for r in support::variant_resources() {
        let Value::Array(rendered) = driver.expected(&r).unwrap() else {
            panic!("{} renders a list", r.address)
        };
        docs.extend(rendered);
    }
    Gateway::new(&docs, secret_manager)
}

fn charged_to<'a>(admitted: &'a Admitted, policy: &str) -> Vec<&'a Charge> {
    admitted
        .charged
        .iter()
        .filter(|c| c.policy == policy)
        .collect()
}

#[test]
fn the_example_team_quota_cannot_be_dodged_by_leaving_out_or_forging_the_team_header() {
    let gw = example_gateway();
    let bearer = format!("Bearer {STOREFRONT_KEY}");

    // storefront's key: the request is storefront's, charged to its quota (per day, per minute)
    // and to the endpoint's own limit; the key does not reach the runtime.
    let honest = gw.request(LLAMA, &[("Authorization", &bearer)]).unwrap();
    assert_eq!(honest.route, "support-llm");
    assert_eq!(
        honest.headers.get(gateway::TEAM_HEADER).map(String::as_str),
        Some("storefront")
    );
    assert!(!honest.headers.contains_key("authorization"), "{honest:?}");
    assert_eq!(charged_to(&honest, "llm-quota-storefront").len(), 2);
    assert_eq!(charged_to(&honest, "support-llm-rate-limit").len(), 1);

    // Forging another team's header with one's own key gains nothing: the gateway writes the
    // key's team over it, and the same buckets are charged.
    let forged = gw
        .request(
            LLAMA,
            &[
                ("Authorization", &bearer),
                (gateway::TEAM_HEADER, "platform"),
            ],
        )
        .unwrap();
    assert_eq!(forged.headers[gateway::TEAM_HEADER], "storefront");
    assert_eq!(forged.charged, honest.charged);

    // Without a key, or with a key the route does not know, nothing gets through, header or not.
    assert_eq!(gw.request(LLAMA, &[]), Err(Refused::Unauthorized));
    assert_eq!(
        gw.request(LLAMA, &[(gateway::TEAM_HEADER, "platform")]),
        Err(Refused::Unauthorized)
    );
    assert_eq!(
        gw.request(LLAMA, &[("x-api-key", "sk-a-guess")]),
        Err(Refused::Unauthorized)
    );
    // Least privilege: payments calls the fraud scorer, not the assistant.
    assert_eq!(
        gw.request(
            LLAMA,
            &[("Authorization", &format!("Bearer {PAYMENTS_KEY}"))]
        ),
        Err(Refused::Unauthorized)
    );

    // payments on its own endpoint, claiming to be storefront: payments, and storefront's quota
    // is left alone.
    let fraud = gw
        .request(
            "acme/fraud-xgb-2026-10",
            &[
                ("x-api-key", PAYMENTS_KEY),
                (gateway::TEAM_HEADER, "storefront"),
            ],
        )
        .unwrap();
    assert_eq!(fraud.headers[gateway::TEAM_HEADER], "payments");
    assert!(charged_to(&fraud, "llm-quota-storefront").is_empty());
}

#[test]
fn an_endpoint_no_workload_calls_is_closed() {
    let gw = example_gateway();
    // The recommender is served through the gateway, and no workload of the example wires it.
    let recommender = support::variant_resources()
        .into_iter()
        .find(|r| r.address == "ai-endpoint/recommender")
        .expect("the example serves a recommender");
    let Spec::AiEndpoint(e) = &recommender.spec.fields else {
        unreachable!()
    };
    assert!(e.callers.is_empty());
    let bearer = format!("Bearer {STOREFRONT_KEY}");
    assert_eq!(
        gw.request(&e.model.id, &[("Authorization", &bearer)]),
        Err(Refused::Forbidden)
    );
}

#[test]
fn wired_endpoint_urls_lead_to_the_gateway() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = support::runtime();
    let support_llm = support::variant_resources()
        .into_iter()
        .find(|r| r.address == "ai-endpoint/support-llm")
        .unwrap();
    // The url the endpoint's consumers are wired with, under the driver's gateway settings.
    let url_with = |ai_gateway: Option<&str>, ai_gateway_url: Option<&str>| {
        let driver = support::emulator_driver(
            &emulator,
            &dir,
            Settings {
                namespace: Some("platform".into()),
                ai_gateway: ai_gateway.map(str::to_string),
                ai_gateway_url: ai_gateway_url.map(str::to_string),
                ..Settings::default()
            },
        );
        rt.block_on(driver.apply(&support_llm, &[]))
            .unwrap()
            .outputs["url"]
            .clone()
    };
    assert_eq!(
        url_with(None, None),
        "http://ai-gateway.platform.svc.cluster.local/v1",
        "not the runtime's own Service, which skips keys, limits and quotas"
    );
    assert_eq!(
        url_with(Some("llm"), None),
        "http://llm.platform.svc.cluster.local/v1"
    );
    assert_eq!(
        url_with(None, Some("https://llm.internal.acme.example/v1")),
        "https://llm.internal.acme.example/v1"
    );
}

/// A fresh emulator and a Kubernetes driver on it, working in `namespace`.
fn cluster_with_namespace(namespace: &str) -> (KubeEmulator, tempfile::TempDir, KubernetesDriver) {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = support::emulator_driver(
        &emulator,
        &dir,
        Settings {
            namespace: Some(namespace.into()),
            ..Settings::default()
        },
    );
    (emulator, dir, driver)
}

fn with_canary(weight: u32) -> DesiredResource {
    let mut d = endpoint(Value::Null);
    if let Spec::AiEndpoint(e) = &mut d.spec.fields {
        e.canary = Some(planner::model::Canary {
            revision: "a1b2c3d".into(),
            weight_percent: weight,
        });
    }
    d
}

fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn a_canary_gets_the_declared_share_of_requests_at_the_gateway_not_of_pods() {
    let docs = drivers::render::documents(&with_canary(10), "ml");
    let find = |kind: &str, name: &str| -> &Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} in {docs:#?}"))
    };
    for doc in docs
        .iter()
        .filter(|d| d["apiVersion"].as_str().unwrap().contains("envoyproxy.io"))
    {
        check_against_crd(doc);
    }
    // 10 % of 2 replicas: one canary pod, and still 10 % of the requests.
    let stable = find("Deployment", "chat");
    let canary = find("Deployment", "chat-canary");
    assert_eq!(stable["spec"]["replicas"], 2);
    assert_eq!(canary["spec"]["replicas"], 1);
    let route = find("AIGatewayRoute", "chat");
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"],
        json!([{ "name": "chat", "weight": 90 }, { "name": "chat-canary", "weight": 10 }])
    );
    assert_eq!(
        find("Backend", "chat-canary")["spec"]["endpoints"][0]["fqdn"]["hostname"],
        "chat-canary.ml.svc.cluster.local"
    );
    assert_eq!(
        find("AIServiceBackend", "chat-canary")["spec"]["backendRef"]["name"],
        "chat-canary"
    );
    // Each Service reaches its own revision's pods only, and the Deployments do not overlap.
    let pods = |d: &Value| d["spec"]["template"]["metadata"]["labels"].clone();
    let service = |name: &str| find("Service", name)["spec"]["selector"].clone();
    assert!(selects(&service("chat"), &pods(stable)));
    assert!(!selects(&service("chat"), &pods(canary)));
    assert!(selects(&service("chat-canary"), &pods(canary)));
    assert!(!selects(&service("chat-canary"), &pods(stable)));
    assert!(!selects(
        &stable["spec"]["selector"]["matchLabels"],
        &pods(canary)
    ));
    assert!(!selects(
        &canary["spec"]["selector"]["matchLabels"],
        &pods(stable)
    ));
    assert!(
        canary["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .contains(&json!("a1b2c3d")),
        "the canary serves its revision"
    );

    // Without a canary, one backend and no weights.
    let docs = drivers::render::documents(&endpoint(Value::Null), "ml");
    let route = docs.iter().find(|d| d["kind"] == "AIGatewayRoute").unwrap();
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"],
        json!([{ "name": "chat" }])
    );
}

#[test]
fn an_endpoint_with_a_canary_is_applied_and_observed_without_drift() {
    let (emulator, _dir, driver) = cluster_with_namespace("ml");
    let rt = support::runtime();
    support::apply_and_observe_without_drift(&rt, &driver, &with_canary(25));
    assert!(emulator.get("", "services", "ml", "chat-canary").is_some());
}

/// A canary made by an earlier platformd selected its pods by a track label under the
/// endpoint's own app name; a Deployment's selector cannot change, so the API server refuses
/// the new one (422, as the emulator does) and the driver replaces that Deployment.
#[test]
fn a_canary_deployment_whose_selector_changed_is_replaced_not_left_failing() {
    let (emulator, _dir, driver) = cluster_with_namespace("ml");
    let rt = support::runtime();
    let d = with_canary(10);
    let applied = rt.block_on(driver.apply(&d, &[])).unwrap();
    // As the earlier renderer left it.
    let old_selector = json!({
        "app.kubernetes.io/name": "chat",
        "platformd.dev/stack": "shop",
        "platformd.dev/track": "canary",
    });
    emulator.edit(
        "apps",
        "deployments",
        "ml",
        "chat-canary",
        "kube-controller-manager",
        |o| {
            o["spec"]["selector"]["matchLabels"] = old_selector.clone();
        },
    );
    let again = rt.block_on(driver.apply(&d, &applied.inventory));
    assert!(again.is_ok(), "{again:?}");
    let live = emulator
        .get("apps", "deployments", "ml", "chat-canary")
        .unwrap();
    assert_eq!(
        live["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "chat-canary"
    );
    // The stand-in refuses the change in place, as a cluster does.
    emulator.edit(
        "apps",
        "deployments",
        "ml",
        "chat-canary",
        "kube-controller-manager",
        |o| {
            o["spec"]["selector"]["matchLabels"] = old_selector.clone();
        },
    );
    let (code, body) = test_support::net::request(
        emulator.port,
        "PATCH",
        "/apis/apps/v1/namespaces/ml/deployments/chat-canary?fieldManager=test",
        &[("content-type", "application/apply-patch+yaml")],
        serde_json::to_string(&json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": "chat-canary", "namespace": "ml" },
            "spec": { "selector": { "matchLabels": { "app.kubernetes.io/name": "chat-canary" } } },
        }))
        .unwrap()
        .as_bytes(),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("field is immutable"), "{body}");
}

/// Under strict field validation the emulator holds the gateway kinds to their schemas, as the
/// API server does: a field the CRD lacks is refused, not pruned.
#[test]
fn the_emulator_refuses_a_gateway_field_the_crd_lacks() {
    let emulator = KubeEmulator::start();
    let apply = |spec: Value| {
        test_support::net::request(
            emulator.port,
            "PATCH",
            "/apis/gateway.envoyproxy.io/v1alpha1/namespaces/ml/securitypolicies/chat?fieldManager=test&fieldValidation=Strict",
            &[("content-type", "application/apply-patch+yaml")],
            serde_json::to_string(&json!({
                "apiVersion": gateway::ENVOY_GATEWAY_API,
                "kind": "SecurityPolicy",
                "metadata": { "name": "chat", "namespace": "ml" },
                "spec": spec,
            }))
            .unwrap()
            .as_bytes(),
        )
    };
    let target =
        json!([{ "group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "chat" }]);
    let (code, body) = apply(json!({
        "targetRefs": target,
        "apiKeyAuth": { "forwardTeamHeader": "x-team" },
    }));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("spec.apiKeyAuth.forwardTeamHeader"), "{body}");
    let (code, body) = apply(json!({
        "targetRefs": target,
        "authorization": { "defaultAction": "Deny" },
    }));
    assert_eq!(code, 200, "{body}");
}
