#![cfg(feature = "kubernetes")]
//! Pipelines into ClickHouse: straight from a topic, a Strimzi `KafkaConnector` running the
//! ClickHouse sink connector (checked against Strimzi's CRD types, vendored in
//! `test_support::crd`) with the dead-letter topic configured; with a transform, the worker
//! Deployment that runs it. Applied by the Kubernetes driver and observed without drift.

mod support;

use drivers::DesiredResource;
use drivers::kubernetes::Settings;
use serde_json::Value;
use test_support::crd::kafka_connector::KafkaConnectorSpec;
use test_support::kube_emulator::KubeEmulator;

const STACK: &str = r#"platform "data" {
    driver "local" { path ".platformd/rendered" }
    driver "kubernetes" { namespace "analytics"; kafka-connect-cluster "connect" }
}
team "data" { owner "data@acme.example" }
topic "orders" { team "data"; }
topic "orders-dlq" { team "data"; }
database "events" {
    team "data"
    engine "clickhouse"
}
pipeline "orders-raw" {
    team "data"
    source "topic/orders"
    sink "database/events" table="orders_raw"
    dead-letter-topic "topic/orders-dlq"
    image "ghcr.io/acme/ingest:2.0.0"
    replicas 3
}
pipeline "orders-clean" {
    team "data"
    source "topic/orders"
    transform sql="SELECT order_id, amount FROM input WHERE amount > 0"
    sink "database/events" table="orders" order-by="(order_id)"
    dead-letter-topic "topic/orders-dlq"
    image "ghcr.io/acme/ingest:2.0.0"
}
"#;

fn pipeline(name: &str) -> DesiredResource {
    support::desired("data", &support::snapshot(STACK))
        .into_iter()
        .find(|d| d.address == format!("pipeline/{name}"))
        .unwrap()
}

#[test]
fn a_topic_into_clickhouse_is_a_sink_connector_with_the_dead_letter_topic() {
    let d = pipeline("orders-raw");
    let planner::model::Spec::Pipeline(p) = d.fields() else {
        panic!("a pipeline: {d:?}")
    };
    assert_eq!(
        p.sink.engine,
        Some(planner::model::DatabaseEngine::Clickhouse),
        "the planner typed the sink"
    );
    let docs = drivers::render::documents(&d, "analytics");
    assert_eq!(docs.len(), 1, "no worker runs: {docs:?}");
    let connector = &docs[0];
    assert_eq!(connector["kind"], "KafkaConnector");
    let typed: KafkaConnectorSpec = serde_json::from_value(connector["spec"].clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), connector["spec"]);
    let spec = &connector["spec"];
    assert_eq!(
        spec["class"],
        "com.clickhouse.kafka.connect.ClickHouseSinkConnector"
    );
    assert_eq!(spec["tasksMax"], 3);
    let config = &spec["config"];
    assert_eq!(config["topics"], "orders");
    assert_eq!(config["hostname"], "clickhouse-events.analytics.svc");
    assert_eq!(config["topic2TableMap"], "orders=orders_raw");
    assert_eq!(config["errors.tolerance"], "all");
    assert_eq!(config["errors.deadletterqueue.topic.name"], "orders-dlq");
}

#[test]
fn a_transform_runs_in_the_worker() {
    let d = pipeline("orders-clean");
    let docs = drivers::render::documents(&d, "analytics");
    assert_eq!(docs[0]["kind"], "Deployment");
    let env = docs[0]["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let value = |name: &str| -> Value {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        value("PIPELINE_TRANSFORM_SQL"),
        "SELECT order_id, amount FROM input WHERE amount > 0"
    );
    assert_eq!(value("PIPELINE_DEAD_LETTER_TOPIC"), "orders-dlq");
    assert_eq!(value("PIPELINE_SINK_ORDER_BY"), "(order_id)");
}

#[test]
fn the_kubernetes_driver_applies_the_connector_on_its_connect_cluster() {
    let d = pipeline("orders-raw");
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = support::emulator_driver(
        &emulator,
        &dir,
        Settings {
            namespace: Some("analytics".into()),
            kafka_connect_cluster: Some("connect".into()),
            ..Settings::default()
        },
    );
    let rt = support::runtime();
    support::apply_and_observe_without_drift(&rt, &driver, &d);
    let live = emulator
        .get(
            "kafka.strimzi.io",
            "kafkaconnectors",
            "analytics",
            "orders-raw",
        )
        .expect("applied");
    assert_eq!(live["metadata"]["labels"]["strimzi.io/cluster"], "connect");
}
