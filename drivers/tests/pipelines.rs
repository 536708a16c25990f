#![cfg(feature = "kubernetes")]
//! Pipelines into ClickHouse: straight from a topic, a Strimzi `KafkaConnector` running the
//! ClickHouse sink connector (checked against Strimzi's CRD types, vendored in
//! `test_support::crd`) with the dead-letter topic configured; with a transform, the worker
//! Deployment that runs it. On both paths the pipeline creates and migrates its table first
//! (a schema Job, idempotent DDL on every replica, with the cluster's retention as TTL). Applied
//! by the Kubernetes driver and observed without drift.

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
    user "ingest" password="aws-sm:prod/events/ingest"
    shards 2
    replicas 2
    retention-days 90
}
pipeline "orders-raw" {
    team "data"
    source "topic/orders"
    sink "database/events" table="orders_raw" columns="order_id String, amount Decimal(18, 2), created_at DateTime" partition-by="toYYYYMM(created_at)"
    dead-letter-topic "topic/orders-dlq"
    image "ghcr.io/acme/ingest:2.0.0"
    replicas 3
}
pipeline "orders-clean" {
    team "data"
    source "topic/orders"
    transform sql="SELECT order_id, amount FROM input WHERE amount > 0"
    sink "database/events" table="orders" order-by="(order_id)" columns="order_id String, amount Decimal(18, 2), placed DateTime64(3)" time-column="placed"
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
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Job", "KafkaConnector"], "no worker runs");
    let connector = &docs[1];
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
    // As the cluster's user, the password resolved by Strimzi's secrets config provider.
    assert_eq!(config["username"], "ingest");
    assert_eq!(
        config["password"],
        "${secrets:analytics/events-users:ingest}"
    );
    assert_eq!(config["errors.deadletterqueue.topic.name"], "orders-dlq");
}

#[test]
fn a_transform_runs_in_the_worker() {
    let d = pipeline("orders-clean");
    let docs = drivers::render::documents(&d, "analytics");
    assert_eq!(docs[0]["kind"], "Job");
    assert_eq!(docs[1]["kind"], "Deployment");
    let env = docs[1]["spec"]["template"]["spec"]["containers"][0]["env"]
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

/// The `SCHEMA_SQL` of a pipeline's schema Job, and the Job.
fn schema(name: &str) -> (String, Value) {
    let docs = drivers::render::documents(&pipeline(name), "analytics");
    let job = docs
        .into_iter()
        .find(|d| d["kind"] == "Job")
        .expect("a schema Job");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let sql = container["env"][0]["value"].as_str().unwrap().to_string();
    assert_eq!(container["env"][0]["name"], "SCHEMA_SQL");
    (sql, job)
}

#[test]
fn both_paths_create_their_table_with_the_cluster_s_retention_as_ttl_on_every_replica() {
    for (pipeline, table, ttl) in [
        ("orders-raw", "orders_raw", "created_at + INTERVAL 90 DAY"),
        ("orders-clean", "orders", "placed + INTERVAL 90 DAY"),
    ] {
        let (sql, job) = schema(pipeline);
        let statements: Vec<&str> = sql.split(";\n").collect();
        assert!(
            statements[0].starts_with(&format!(
                "CREATE TABLE IF NOT EXISTS default.{table}_local ("
            )),
            "{sql}"
        );
        assert!(
            statements[0].contains(&format!(
                "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{shard}}/default/{table}_local', '{{replica}}')"
            )),
            "two replicas: replicated: {sql}"
        );
        assert!(statements[0].ends_with(&format!(" TTL {ttl}")), "{sql}");
        assert!(
            sql.contains(&format!(
                "ALTER TABLE default.{table}_local MODIFY TTL {ttl}"
            )),
            "a changed retention reaches an existing table: {sql}"
        );
        assert!(
            sql.contains(&format!(
                "ALTER TABLE default.{table}_local ADD COLUMN IF NOT EXISTS order_id String"
            )),
            "{sql}"
        );
        assert!(
            sql.contains(&format!("CREATE TABLE IF NOT EXISTS default.{table} AS default.{table}_local ENGINE = Distributed('main', 'default', '{table}_local', rand())")),
            "{sql}"
        );
        // Every replica of both shards, and the SQL never on the shell's command line.
        let script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
            .as_str()
            .unwrap();
        for host in [
            "chi-events-main-0-0",
            "chi-events-main-0-1",
            "chi-events-main-1-0",
            "chi-events-main-1-1",
        ] {
            assert!(script.contains(host), "{script}");
        }
        assert!(script.contains("--query \"$SCHEMA_SQL\""), "{script}");
        let env = &job["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(
            env[1],
            serde_json::json!({ "name": "CLICKHOUSE_USER", "value": "ingest" })
        );
        assert_eq!(
            env[2]["valueFrom"]["secretKeyRef"],
            serde_json::json!({ "name": "events-users", "key": "ingest" })
        );
        assert!(!script.contains("CREATE"), "{script}");
    }
    let (raw, _) = schema("orders-raw");
    assert!(
        raw.contains(" PARTITION BY toYYYYMM(created_at) ORDER BY tuple() TTL"),
        "{raw}"
    );
    let (clean, _) = schema("orders-clean");
    assert!(clean.contains(" ORDER BY (order_id) TTL"), "{clean}");
}

#[test]
fn the_worker_waits_for_its_table_and_a_new_schema_is_a_new_job() {
    let d = pipeline("orders-clean");
    let docs = drivers::render::documents(&d, "analytics");
    let init = &docs[1]["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], "wait-for-table");
    assert!(
        init["command"][2]
            .as_str()
            .unwrap()
            .contains("EXISTS TABLE default.orders"),
        "{init}"
    );
    // A new column: new DDL, so a new Job (a Job's spec cannot change once made).
    let (_, before) = schema("orders-clean");
    let wider = STACK.replace(
        "placed DateTime64(3)\"",
        "placed DateTime64(3), channel LowCardinality(String)\"",
    );
    let d = support::desired("data", &support::snapshot(&wider))
        .into_iter()
        .find(|d| d.address == "pipeline/orders-clean")
        .unwrap();
    let after = drivers::render::documents(&d, "analytics")
        .into_iter()
        .find(|d| d["kind"] == "Job")
        .unwrap();
    assert_ne!(before["metadata"]["name"], after["metadata"]["name"]);
    assert!(
        after["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"]
            .as_str()
            .unwrap()
            .contains("ADD COLUMN IF NOT EXISTS channel LowCardinality(String)")
    );
}

#[test]
fn the_schema_job_and_worker_are_valid_kubernetes_objects() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in ["orders-raw", "orders-clean"] {
        for (i, doc) in drivers::render::documents(&pipeline(name), "analytics")
            .iter()
            .filter(|d| d["kind"] == "Job" || d["kind"] == "Deployment")
            .enumerate()
        {
            let path = dir.path().join(format!("{name}-{i}.yaml"));
            std::fs::write(&path, serde_json::to_string(doc).unwrap()).unwrap();
            files.push(path);
        }
    }
    support::kubernetes_validate(&files);
}
