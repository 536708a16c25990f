//! Every alert the language offers fires on series shaped like the real exporters' and stays
//! quiet on healthy ones, checked with Prometheus's own rule unit tests (`promtool test rules`):
//! CPU from cAdvisor and kube-state-metrics (Deployments, CloudNativePG and Altinity ClickHouse
//! pods), disk from the kubelet's volume stats (each operator's volume names), backlog from
//! kafka-exporter (a topic's groups, a pipeline worker's group, a connector's `connect-NAME`),
//! errors from `http_requests_total` (a service's `code`, vLLM's `status` class) and, for a
//! pipeline, the records it dead-letters.

mod support;

use serde_json::{Value, json};

const STACK: &str = r#"platform "shop" {
    driver "local" { path ".platformd/rendered" }
    driver "kubernetes" { namespace "shop" }
    route "service" "database" "topic" "pipeline" "ai-endpoint" "gpu-pool" to="kubernetes"
}
team "web" { owner "web-oncall@acme.example" }
service "api" {
    team "web"
    image "ghcr.io/acme/api:1.0.0"
    port 8080
    resources cpu="1" memory="1Gi"
    monitoring {
        alert "cpu" above=80 for="5m"
        alert "errors" above=5 for="5m" severity="critical"
        notify "slack:#web-alerts"
        runbook "https://runbooks.acme.example/api"
    }
}
database "orders-db" {
    team "web"
    engine "postgres"
    size "db.t4g.medium"
    monitoring {
        alert "cpu" above=80 for="5m"
        alert "disk" above=85 for="5m"
    }
}
database "events" {
    team "web"
    engine "clickhouse"
    user "ingest" password="aws-sm:prod/events/ingest"
    monitoring {
        alert "cpu" above=80 for="5m"
        alert "disk" above=85 for="5m"
    }
}
topic "orders" {
    team "web"
    monitoring { alert "backlog" above=1000 for="5m"; }
}
topic "orders-dead" { team "web"; }
pipeline "orders-clean" {
    team "web"
    source "topic/orders"
    transform sql="SELECT * FROM input"
    sink "database/events" table="orders" columns="order_id String, amount Decimal(18, 2), created_at DateTime"
    dead-letter-topic "topic/orders-dead"
    image "ghcr.io/acme/ingest:2.0.0"
    monitoring {
        alert "backlog" above=1000 for="5m"
        alert "errors" above=1 for="5m"
    }
}
pipeline "orders-raw" {
    team "web"
    source "topic/orders"
    sink "database/events" table="orders_raw" columns="order_id String, amount Decimal(18, 2), created_at DateTime"
    image "ghcr.io/acme/ingest:2.0.0"
    monitoring { alert "backlog" above=1000 for="5m"; }
}
gpu-pool "l4" {
    team "web"
    accelerator "nvidia-l4"
    instance-type "g6.xlarge"
    nodes min=0 max=2
}
ai-endpoint "chat" {
    team "web"
    model "meta-llama/Llama-3.1-8B-Instruct" revision="main"
    runtime "vllm"
    gpu-pool "l4" gpus=1
    monitoring {
        alert "errors" above=5 for="5m"
    }
}
"#;

/// Series, as `promtool` reads them, that make one alert fire (`hot`) or keep it quiet.
fn series(alert: &str, hot: bool) -> Vec<(String, String)> {
    let s = |series: &str, values: &str| (series.to_string(), values.to_string());
    // Counters per minute: a rate over 5m of `per_minute / 60` per second.
    let per_minute = |busy: u32| format!("0+{busy}x40");
    match alert {
        "ApiCpuHigh" => vec![
            s(
                r#"container_cpu_usage_seconds_total{namespace="shop",pod="api-7d9f8b6c5d-x2x9z",container="api"}"#,
                &per_minute(if hot { 54 } else { 12 }),
            ),
            s(
                r#"container_cpu_usage_seconds_total{namespace="shop",pod="api-7d9f8b6c5d-x2x9z",container=""}"#,
                &per_minute(60),
            ),
            s(
                r#"kube_pod_container_resource_requests{namespace="shop",pod="api-7d9f8b6c5d-x2x9z",container="api",resource="cpu"}"#,
                "1x40",
            ),
        ],
        "ApiErrorsHigh" => vec![
            s(
                r#"http_requests_total{namespace="shop",service="api",code="500"}"#,
                &per_minute(if hot { 60 } else { 1 }),
            ),
            s(
                r#"http_requests_total{namespace="shop",service="api",code="200"}"#,
                &per_minute(600),
            ),
        ],
        "OrdersDbCpuHigh" => cpu("orders-db-1", hot),
        "OrdersDbDiskHigh" => disk("orders-db-1", hot),
        "EventsCpuHigh" => cpu("chi-events-main-0-0-0", hot),
        "EventsDiskHigh" => disk("data-chi-events-main-0-0-0", hot),
        "OrdersBacklogHigh" => vec![s(
            r#"kafka_consumergroup_lag{consumergroup="reports",topic="orders",partition="0"}"#,
            if hot { "5000x40" } else { "10x40" },
        )],
        "OrdersCleanBacklogHigh" => vec![s(
            r#"kafka_consumergroup_lag{consumergroup="orders-clean",topic="orders",partition="0"}"#,
            if hot { "5000x40" } else { "10x40" },
        )],
        "OrdersRawBacklogHigh" => vec![s(
            r#"kafka_consumergroup_lag{consumergroup="connect-orders-raw",topic="orders",partition="0"}"#,
            if hot { "5000x40" } else { "10x40" },
        )],
        "OrdersCleanErrorsHigh" => vec![
            s(
                r#"kafka_topic_partition_current_offset{topic="orders-dead",partition="0"}"#,
                &per_minute(if hot { 60 } else { 0 }),
            ),
            s(
                r#"kafka_consumergroup_current_offset{consumergroup="orders-clean",topic="orders",partition="0"}"#,
                &per_minute(1200),
            ),
        ],
        "ChatErrorsHigh" => vec![
            s(
                r#"http_requests_total{namespace="shop",pod="chat-5c6d7f8b9a-k2lmn",handler="/v1/chat/completions",method="POST",status="5xx"}"#,
                &per_minute(if hot { 60 } else { 1 }),
            ),
            s(
                r#"http_requests_total{namespace="shop",pod="chat-5c6d7f8b9a-k2lmn",handler="/v1/chat/completions",method="POST",status="2xx"}"#,
                &per_minute(600),
            ),
        ],
        other => panic!("no series for {other}: add them"),
    }
}

fn cpu(pod: &str, hot: bool) -> Vec<(String, String)> {
    vec![
        (
            format!(
                r#"container_cpu_usage_seconds_total{{namespace="shop",pod="{pod}",container="main"}}"#
            ),
            format!("0+{}x40", if hot { 108 } else { 24 }),
        ),
        (
            format!(
                r#"kube_pod_container_resource_requests{{namespace="shop",pod="{pod}",container="main",resource="cpu"}}"#
            ),
            "2x40".to_string(),
        ),
    ]
}

fn disk(volume: &str, hot: bool) -> Vec<(String, String)> {
    let gib = 1u64 << 30;
    vec![
        (
            format!(
                r#"kubelet_volume_stats_available_bytes{{namespace="shop",persistentvolumeclaim="{volume}"}}"#
            ),
            format!("{}x40", if hot { gib } else { 60 * gib }),
        ),
        (
            format!(
                r#"kubelet_volume_stats_capacity_bytes{{namespace="shop",persistentvolumeclaim="{volume}"}}"#
            ),
            format!("{}x40", 100 * gib),
        ),
    ]
}

/// `promtool test rules` over every rule of the stack: each alert fires on its hot series and
/// stays quiet on its healthy ones.
#[test]
fn every_alert_fires_on_real_series_and_stays_quiet_on_healthy_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut groups = Vec::new();
    let mut rules = Vec::new();
    for d in support::desired("shop", &support::snapshot(STACK)) {
        for doc in drivers::render::documents(&d, "shop") {
            if doc["kind"] == "PrometheusRule" {
                for group in doc["spec"]["groups"].as_array().unwrap() {
                    rules.extend(group["rules"].as_array().unwrap().iter().cloned());
                    groups.push(group.clone());
                }
            }
        }
    }
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    for rule in rules
        .iter()
        .filter(|r| r["labels"]["platformd_address"] == "service/api")
    {
        assert_eq!(
            rule["annotations"]["runbook_url"], "https://runbooks.acme.example/api",
            "{rule}"
        );
    }
    assert_eq!(names.len(), 11, "{names:?}");
    let mut tests = Vec::new();
    for rule in &rules {
        let alert = rule["alert"].as_str().unwrap();
        for hot in [true, false] {
            let input: Vec<Value> = series(alert, hot)
                .into_iter()
                .map(|(series, values)| json!({ "series": series, "values": values }))
                .collect();
            let expected: Vec<Value> = if hot {
                vec![
                    json!({ "exp_labels": rule["labels"], "exp_annotations": rule["annotations"] }),
                ]
            } else {
                Vec::new()
            };
            tests.push(json!({
                "name": format!("{alert} {}", if hot { "fires" } else { "stays quiet" }),
                "interval": "1m",
                "input_series": input,
                "alert_rule_test": [{ "eval_time": "20m", "alertname": alert, "exp_alerts": expected }],
            }));
        }
    }
    let rules_file = dir.path().join("rules.yaml");
    std::fs::write(
        &rules_file,
        serde_norway::to_string(&json!({ "groups": groups })).unwrap(),
    )
    .unwrap();
    let test_file = dir.path().join("tests.yaml");
    std::fs::write(
        &test_file,
        serde_norway::to_string(&json!({
            "rule_files": ["rules.yaml"],
            "evaluation_interval": "1m",
            "tests": tests,
        }))
        .unwrap(),
    )
    .unwrap();
    let run = std::process::Command::new("promtool")
        .args(["test", "rules", "tests.yaml"])
        .current_dir(dir.path())
        .output()
        .expect("promtool runs (scripts/test.sh installs Prometheus)");
    assert!(
        run.status.success(),
        "promtool test rules failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

/// A pipeline's `errors` alert counts what it dead-letters: without a dead-letter topic the
/// stack is refused where the alert is, rather than shipping a rule that watches nothing.
#[test]
fn an_errors_alert_on_a_pipeline_without_a_dead_letter_topic_is_refused() {
    let text = STACK.replace("    dead-letter-topic \"topic/orders-dead\"\n", "");
    let analysis = planner::analyze(vec![planner::StackFile {
        path: "platform.kdl".into(),
        text,
    }]);
    let rendered = analysis.render_diagnostics(planner::diagnostic::Colour::Never);
    assert!(
        rendered.contains(
            "error[missing-field]: pipeline/orders-clean alerts on `errors` but has no `dead-letter-topic`"
        ),
        "{rendered}"
    );
}
