#![cfg(feature = "kubernetes")]
//! `monitoring` blocks as prometheus-operator `PrometheusRule`s: made from a real stack by the
//! planner, checked against the operator's CRD (its kopium-generated types, vendored in
//! `test_support::crd`), with the routing labels of each notify target; and applied by the
//! Kubernetes driver, then observed without drift.

mod support;

use drivers::DesiredResource;
use drivers::kubernetes::Settings;
use planner::model::Kind;
use serde_json::Value;
use test_support::crd::prometheus_rule::PrometheusRuleSpec;
use test_support::kube_emulator::KubeEmulator;

const STACK: &str = r#"platform "shop" {
    driver "local" { path ".platformd/rendered" }
}
team "data" { owner "data@acme.example" }
database "orders-db" {
    team "data"
    engine "postgres" version="16"
    size "db.t4g.medium"
    monitoring {
        alert "cpu" above=80 for="10m"
        alert "disk" above=85 severity="critical"
        notify "slack:#data-alerts"
        notify "pagerduty:data-oncall"
    }
}
topic "orders" {
    team "data"
    partitions 6
    monitoring {
        alert "backlog" above=10000 for="15m"
    }
}
service "orders" {
    team "data"
    image "ghcr.io/acme/orders:1.2.0"
    port 8080
    env "DATABASE_URL" from="database/orders-db.url"
    monitoring {
        alert "errors" above=2.5
        alert "cpu" above=90 severity="critical"
        notify "email:data@acme.example"
        notify "slack:#orders"
    }
}
"#;

fn desired() -> Vec<DesiredResource> {
    support::desired("shop", &support::snapshot(STACK))
}

fn rule_of(docs: &[Value]) -> &Value {
    docs.iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("a PrometheusRule")
}

#[test]
fn every_rule_has_only_the_fields_of_the_operators_crd_and_routes_to_its_targets() {
    for d in desired() {
        let docs = drivers::render::documents(&d, "shop");
        let rule = rule_of(&docs);
        assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(
            rule["metadata"]["name"],
            format!("{}-{}-alerts", d.kind, d.name)
        );
        assert_eq!(
            rule["metadata"]["annotations"]["platformd.dev/address"],
            d.address
        );
        // Through the CRD's own types and back: nothing the CRD lacks survives.
        let typed: PrometheusRuleSpec = serde_json::from_value(rule["spec"].clone()).unwrap();
        assert_eq!(
            serde_json::to_value(&typed).unwrap(),
            rule["spec"],
            "{}",
            d.address
        );
        let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
        for r in rules {
            assert!(r["expr"].as_str().unwrap().contains(" > "), "{r}");
            assert_eq!(r["labels"]["platformd_address"], d.address);
            assert_eq!(r["labels"]["team"], "data");
        }
    }
    let by_address = |a: &str| {
        let d = desired().into_iter().find(|d| d.address == a).unwrap();
        rule_of(&drivers::render::documents(&d, "shop")).clone()
    };
    let db = by_address("database/orders-db");
    let rules = db["spec"]["groups"][0]["rules"].as_array().unwrap().clone();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["alert"], "OrdersDbCpuHigh");
    assert_eq!(rules[0]["for"], "10m");
    assert_eq!(rules[0]["labels"]["severity"], "warning");
    assert_eq!(rules[0]["labels"]["slack_channel"], "#data-alerts");
    assert_eq!(rules[0]["labels"]["pagerduty_service"], "data-oncall");
    assert_eq!(rules[1]["alert"], "OrdersDbDiskHigh");
    assert_eq!(rules[1]["for"], "5m", "the default");
    assert_eq!(rules[1]["labels"]["severity"], "critical");
    // A CloudNativePG cluster's pods and volumes, not another resource's sharing the prefix.
    assert!(
        rules[1]["expr"]
            .as_str()
            .unwrap()
            .contains(r#"persistentvolumeclaim=~"orders-db-[0-9]+""#),
        "{}",
        rules[1]["expr"]
    );
    let topic = by_address("topic/orders");
    assert_eq!(
        topic["spec"]["groups"][0]["rules"][0]["expr"],
        r#"sum(kafka_consumergroup_lag{topic="orders"}) > 10000"#
    );
    // No `notify`: the owning team's owner is paged, not nobody.
    assert_eq!(
        topic["spec"]["groups"][0]["rules"][0]["labels"]["email_to"],
        "data@acme.example"
    );
    assert_eq!(
        topic["spec"]["groups"][0]["rules"][0]["labels"]["team"],
        "data"
    );
    let service = by_address("service/orders");
    let rules = service["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rules[0]["alert"], "OrdersErrorsHigh");
    assert!(rules[0]["expr"].as_str().unwrap().ends_with(" > 2.5"));
    assert_eq!(rules[0]["labels"]["email_to"], "data@acme.example");
    assert_eq!(rules[0]["labels"]["slack_channel"], "#orders");
    // The service's pods only: `orders-<replicaset>-<pod>`, never `orders-db-1`.
    assert!(
        rules[1]["expr"]
            .as_str()
            .unwrap()
            .contains(r#"pod=~"orders-[a-z0-9]+-[a-z0-9]{5}""#)
    );
}

#[test]
fn the_kubernetes_driver_applies_the_rules_and_observes_them_without_drift() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = support::emulator_driver(
        &emulator,
        &dir,
        Settings {
            namespace: Some("shop".into()),
            ..Settings::default()
        },
    );
    let rt = support::runtime();
    for d in desired().into_iter().filter(|d| d.kind != Kind::Database) {
        support::apply_and_observe_without_drift(&rt, &driver, &d);
        assert!(
            emulator
                .get(
                    "monitoring.coreos.com",
                    "prometheusrules",
                    "shop",
                    &format!("{}-{}-alerts", d.kind, d.name)
                )
                .is_some(),
            "{}",
            d.address
        );
    }
}
