//! Kubernetes manifests for workloads and topics.

use super::{metadata, str_at};
use crate::DesiredResource;
use planner::model::Kind;
use serde_json::{Map, Value, json};

pub fn manifests(d: &DesiredResource, namespace: &str) -> Vec<Value> {
    match d.kind {
        Kind::Topic => vec![kafka_topic(d, namespace)],
        Kind::LlmQuota => vec![super::gateway::quota_policy(d, namespace)],
        Kind::Job => batch_job(d, namespace),
        Kind::Pipeline if is_connector(d) => vec![clickhouse_connector(d, namespace)],
        _ => workload(d, namespace),
    }
}

fn kafka_topic(d: &DesiredResource, namespace: &str) -> Value {
    let mut meta = metadata(d, &d.name, Some(namespace));
    meta["labels"]["strimzi.io/cluster"] = "platform".into();
    let hours = d
        .spec
        .get("retention-hours")
        .and_then(Value::as_u64)
        .unwrap_or(168);
    json!({
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        "metadata": meta,
        "spec": {
            "partitions": d.spec.get("partitions").cloned().unwrap_or(json!(3)),
            "replicas": d.spec.get("replication-factor").cloned().unwrap_or(json!(3)),
            "config": { "retention.ms": (hours * 3_600_000).to_string() },
        },
    })
}

/// Selector labels: stable for the life of the resource (a Deployment's selector is immutable).
fn selector(d: &DesiredResource, name: &str) -> Value {
    json!({ "app.kubernetes.io/name": name, "platformd.dev/stack": d.stack })
}

/// The container image and arguments of a model-serving runtime.
fn runtime_container(spec: &Value, revision: &str) -> (String, Vec<String>, u16) {
    let model = spec.get("model").cloned().unwrap_or_default();
    let id = str_at(&model, "id").to_string();
    match str_at(spec, "runtime") {
        "tgi" => (
            "ghcr.io/huggingface/text-generation-inference:2.4.1".into(),
            vec![
                "--model-id".into(),
                id,
                "--revision".into(),
                revision.into(),
                "--port".into(),
                "8000".into(),
            ],
            8000,
        ),
        "triton" => (
            "nvcr.io/nvidia/tritonserver:24.10-py3".into(),
            vec![
                "tritonserver".into(),
                format!("--model-repository=/models/{id}/{revision}"),
                "--http-port=8000".into(),
            ],
            8000,
        ),
        _ => (
            "vllm/vllm-openai:v0.6.4".into(),
            vec![
                "--model".into(),
                id,
                "--revision".into(),
                revision.into(),
                "--port".into(),
                "8000".into(),
            ],
            8000,
        ),
    }
}

/// The secret store of a reference (`aws-sm:prod/app/key` → `aws-sm`).
fn secret_store(reference: &str) -> &str {
    reference.split(':').next().unwrap_or("aws-sm")
}

/// Every secret store the workload's env references, sorted.
fn secret_stores(d: &DesiredResource) -> std::collections::BTreeSet<String> {
    let Some(Value::Object(vars)) = d.spec.get("env") else {
        return Default::default();
    };
    vars.values()
        .filter_map(|v| v.get("secret").and_then(Value::as_str))
        .map(|r| secret_store(r).to_string())
        .collect()
}

/// The Secret an ExternalSecret fills for `store`: `<name>-secrets` when the workload uses one
/// store, `<name>-secrets-<store>` for each when it uses several (one ExternalSecret per store,
/// since an ExternalSecret reads from exactly one).
fn secret_name(d: &DesiredResource, store: &str, stores: usize) -> String {
    if stores <= 1 {
        format!("{}-secrets", d.name)
    } else {
        format!("{}-secrets-{store}", d.name)
    }
}

fn env_list(d: &DesiredResource, secrets: &mut Vec<(String, String)>) -> Vec<Value> {
    let stores = secret_stores(d).len();
    let mut env = Vec::new();
    if d.kind == Kind::Pipeline {
        env.push(json!({"name": "PIPELINE_SOURCE", "value": str_at(&d.spec, "source")}));
        let sink = d.spec.get("sink").cloned().unwrap_or_default();
        env.push(json!({"name": "PIPELINE_SINK", "value": str_at(&sink, "target")}));
        for key in ["table", "prefix", "partition-by", "order-by"] {
            if let Some(v) = sink.get(key).and_then(Value::as_str) {
                let name = format!("PIPELINE_SINK_{}", key.replace('-', "_").to_uppercase());
                env.push(json!({"name": name, "value": v}));
            }
        }
        if let Some(sql) = d.spec.get("transform").and_then(Value::as_str) {
            env.push(json!({"name": "PIPELINE_TRANSFORM_SQL", "value": sql}));
        }
        if let Some(topic) = d.spec.get("dead-letter-topic").and_then(Value::as_str) {
            env.push(json!({"name": "PIPELINE_DEAD_LETTER_TOPIC", "value": topic}));
        }
    }
    if let Some(Value::Object(vars)) = d.spec.get("env") {
        for (name, v) in vars {
            match v {
                Value::String(s) => env.push(json!({"name": name, "value": s})),
                Value::Object(o) if o.contains_key("from") => {
                    // Resolved from the dependency's outputs when applied.
                    let value = d.wired.get(name).cloned().unwrap_or_default();
                    env.push(json!({"name": name, "value": value}));
                }
                Value::Object(o) => {
                    let reference = o.get("secret").and_then(Value::as_str).unwrap_or("");
                    secrets.push((name.clone(), reference.to_string()));
                    let secret = secret_name(d, secret_store(reference), stores);
                    env.push(json!({
                        "name": name,
                        "valueFrom": { "secretKeyRef": { "name": secret, "key": name } },
                    }));
                }
                _ => {}
            }
        }
    }
    env
}

fn workload(d: &DesiredResource, namespace: &str) -> Vec<Value> {
    let spec = &d.spec;
    let mut docs = Vec::new();
    let mut secrets = Vec::new();
    let env = env_list(d, &mut secrets);
    let replicas = spec.get("replicas").and_then(Value::as_u64).unwrap_or(1);
    let is_endpoint = d.kind == Kind::AiEndpoint;
    let mut container = Map::new();
    container.insert("name".into(), d.name.clone().into());
    let mut port = spec.get("port").and_then(Value::as_u64).map(|p| p as u16);
    if is_endpoint {
        let revision = spec
            .get("model")
            .map(|m| str_at(m, "revision"))
            .unwrap_or("main");
        let (image, args, p) = runtime_container(spec, revision);
        container.insert("image".into(), image.into());
        container.insert("args".into(), json!(args));
        port = Some(p);
    } else {
        container.insert("image".into(), str_at(spec, "image").into());
    }
    if let Some(p) = port {
        container.insert(
            "ports".into(),
            json!([{ "name": "http", "containerPort": p }]),
        );
    }
    if !env.is_empty() {
        container.insert("env".into(), Value::Array(env));
    }
    let mut resources = json!({});
    if let Some(r) = spec.get("resources") {
        resources = json!({
            "requests": { "cpu": str_at(r, "cpu"), "memory": str_at(r, "memory") },
            "limits": { "memory": str_at(r, "memory") },
        });
    }
    if is_endpoint && let Some(pool) = spec.get("gpu-pool") {
        let gpus = pool.get("gpus").and_then(Value::as_u64).unwrap_or(1);
        resources = json!({ "limits": { "nvidia.com/gpu": gpus.to_string() } });
    }
    if resources.as_object().is_some_and(|o| !o.is_empty()) {
        container.insert("resources".into(), resources);
    }
    if let Some(h) = spec.get("health-check") {
        let probe = json!({
            "httpGet": { "path": str_at(h, "path"), "port": h.get("port").cloned().or(port.map(Value::from)).unwrap_or(json!(8080)) },
            "initialDelaySeconds": h.get("initial-delay-seconds").cloned().unwrap_or(json!(5)),
            "periodSeconds": h.get("period-seconds").cloned().unwrap_or(json!(10)),
        });
        container.insert("readinessProbe".into(), probe.clone());
        container.insert("livenessProbe".into(), probe);
    }
    let mut pod_spec = Map::new();
    pod_spec.insert(
        "containers".into(),
        json!([Value::Object(container.clone())]),
    );
    if is_endpoint && let Some(pool) = spec.get("gpu-pool") {
        pod_spec.insert(
            "nodeSelector".into(),
            json!({ "platformd.dev/gpu-pool": str_at(pool, "pool") }),
        );
        pod_spec.insert(
            "tolerations".into(),
            json!([{ "key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule" }]),
        );
    }
    let deployment = |name: &str, replicas: u64, pod_spec: &Map<String, Value>| {
        let mut template_labels = selector(d, &d.name);
        template_labels["platformd.dev/team"] = d.team().into();
        if name != d.name {
            template_labels["platformd.dev/track"] = "canary".into();
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(d, name, Some(namespace)),
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": if name == d.name { selector(d, &d.name) } else {
                    let mut s = selector(d, &d.name); s["platformd.dev/track"] = "canary".into(); s } },
                "template": {
                    "metadata": { "labels": template_labels },
                    "spec": Value::Object(pod_spec.clone()),
                },
            },
        })
    };
    docs.push(deployment(&d.name, replicas, &pod_spec));
    // Canary: a second Deployment on the canary revision behind the same Service; traffic
    // splits by replica count (weight-percent of replicas, at least one).
    if is_endpoint && let Some(canary) = spec.get("canary") {
        let weight = canary
            .get("weight-percent")
            .and_then(Value::as_u64)
            .unwrap_or(10);
        let canary_replicas = (replicas * weight).div_ceil(100).max(1);
        let (image, args, _) = runtime_container(spec, str_at(canary, "revision"));
        let mut c = container.clone();
        c.insert("image".into(), image.into());
        c.insert("args".into(), json!(args));
        let mut canary_pod = pod_spec.clone();
        canary_pod.insert("containers".into(), json!([Value::Object(c)]));
        docs.push(deployment(
            &format!("{}-canary", d.name),
            canary_replicas,
            &canary_pod,
        ));
    }
    if let Some(p) = port {
        docs.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(d, &d.name, Some(namespace)),
            "spec": {
                "selector": selector(d, &d.name),
                "ports": [{ "name": "http", "port": p, "targetPort": "http", "protocol": "TCP" }],
            },
        }));
        // Model traffic goes through the AI gateway, which enforces rate limits and quotas.
        if is_endpoint {
            docs.extend(super::gateway::endpoint_objects(d, namespace, p));
        }
    }
    if let Some(a) = spec.get("autoscale") {
        docs.push(json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(d, &d.name, Some(namespace)),
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": d.name },
                "minReplicas": a.get("min").cloned().unwrap_or(json!(1)).as_u64().unwrap_or(1).max(1),
                "maxReplicas": a.get("max").cloned().unwrap_or(json!(1)),
                "metrics": [{
                    "type": "Resource",
                    "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": a.get("cpu-percent").cloned().unwrap_or(json!(70)) } },
                }],
            },
        }));
    }
    docs.extend(external_secrets(d, namespace, &secrets));
    docs
}

/// A pipeline from a topic straight into ClickHouse (no transform) is a Kafka Connect job: the
/// ClickHouse sink connector moves the records, and no worker of ours runs.
pub fn is_connector(d: &DesiredResource) -> bool {
    d.kind == Kind::Pipeline
        && str_at(&d.spec, "source").starts_with("topic/")
        && d.spec["sink"]["engine"] == "clickhouse"
        && d.spec.get("transform").is_none()
}

/// The Strimzi Kafka Connect cluster connectors run on when the driver names none.
pub const DEFAULT_CONNECT_CLUSTER: &str = "platform-connect";

/// The ClickHouse sink connector of a pipeline, on the Strimzi Kafka Connect cluster
/// (`strimzi.io/cluster`), writing to the ClickHouse installation's Service over HTTP, with
/// failed records sent to the dead-letter topic when there is one.
fn clickhouse_connector(d: &DesiredResource, namespace: &str) -> Value {
    let spec = &d.spec;
    let topic = str_at(spec, "source").trim_start_matches("topic/");
    let sink = &spec["sink"];
    let database = str_at(sink, "target").trim_start_matches("database/");
    let mut config = json!({
        "topics": topic,
        "hostname": format!("clickhouse-{database}.{namespace}.svc"),
        "port": "8123",
        "ssl": "false",
        "database": "default",
        "username": "default",
        "topic2TableMap": format!("{topic}={}", str_at(sink, "table")),
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "exactlyOnce": "false",
    });
    if let Some(dlq) = spec.get("dead-letter-topic").and_then(Value::as_str) {
        config["errors.tolerance"] = "all".into();
        config["errors.deadletterqueue.topic.name"] = dlq.into();
        config["errors.deadletterqueue.context.headers.enable"] = "true".into();
    }
    let mut meta = metadata(d, &d.name, Some(namespace));
    meta["labels"]["strimzi.io/cluster"] = DEFAULT_CONNECT_CLUSTER.into();
    json!({
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaConnector",
        "metadata": meta,
        "spec": {
            "class": "com.clickhouse.kafka.connect.ClickHouseSinkConnector",
            "tasksMax": spec.get("replicas").and_then(Value::as_u64).unwrap_or(1).max(1),
            "autoRestart": { "enabled": true },
            "config": config,
        },
    })
}

/// One `ExternalSecret` per secret store the env references, filling the Secret the container
/// reads its secret env from.
fn external_secrets(
    d: &DesiredResource,
    namespace: &str,
    secrets: &[(String, String)],
) -> Vec<Value> {
    let mut docs = Vec::new();
    let stores = secret_stores(d);
    for store in &stores {
        let data: Vec<Value> = secrets
            .iter()
            .filter(|(_, reference)| secret_store(reference) == store)
            .map(|(name, reference)| {
                let key = reference
                    .split_once(':')
                    .map_or(reference.as_str(), |(_, k)| k);
                json!({ "secretKey": name, "remoteRef": { "key": key } })
            })
            .collect();
        let secret = secret_name(d, store, stores.len());
        docs.push(json!({
            "apiVersion": "external-secrets.io/v1beta1",
            "kind": "ExternalSecret",
            "metadata": metadata(d, &secret, Some(namespace)),
            "spec": {
                "secretStoreRef": { "kind": "ClusterSecretStore", "name": store },
                "target": { "name": secret },
                "data": data,
            },
        }));
    }
    docs
}

/// The GPU limit, node selector and toleration of a pod on a `gpu-pool`.
fn on_gpu_pool(
    pool: &Value,
    container: &mut Map<String, Value>,
    pod_spec: &mut Map<String, Value>,
) {
    let gpus = pool.get("gpus").and_then(Value::as_u64).unwrap_or(1);
    let resources = container.entry("resources").or_insert_with(|| json!({}));
    resources["limits"]["nvidia.com/gpu"] = gpus.to_string().into();
    pod_spec.insert(
        "nodeSelector".into(),
        json!({ "platformd.dev/gpu-pool": str_at(pool, "pool") }),
    );
    pod_spec.insert(
        "tolerations".into(),
        json!([{ "key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule" }]),
    );
}

/// `job` → a `batch/v1` `Job` (one-off) or `CronJob` (with `schedule`, in UTC, never two runs
/// at once), plus the ExternalSecrets of its secret env.
fn batch_job(d: &DesiredResource, namespace: &str) -> Vec<Value> {
    let spec = &d.spec;
    let mut secrets = Vec::new();
    let env = env_list(d, &mut secrets);
    let mut container = Map::new();
    container.insert("name".into(), d.name.clone().into());
    container.insert("image".into(), str_at(spec, "image").into());
    if let Some(command) = spec
        .get("command")
        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
    {
        container.insert("command".into(), command.clone());
    }
    if !env.is_empty() {
        container.insert("env".into(), Value::Array(env));
    }
    if let Some(r) = spec.get("resources") {
        container.insert(
            "resources".into(),
            json!({
                "requests": { "cpu": str_at(r, "cpu"), "memory": str_at(r, "memory") },
                "limits": { "memory": str_at(r, "memory") },
            }),
        );
    }
    let mut pod_spec = Map::new();
    pod_spec.insert("restartPolicy".into(), "Never".into());
    if let Some(pool) = spec.get("gpu-pool") {
        on_gpu_pool(pool, &mut container, &mut pod_spec);
    }
    pod_spec.insert("containers".into(), json!([Value::Object(container)]));
    let mut template_labels = selector(d, &d.name);
    template_labels["platformd.dev/team"] = d.team().into();
    let mut job_spec = json!({
        "completions": spec.get("completions").cloned().unwrap_or(json!(1)),
        "parallelism": spec.get("parallelism").cloned().unwrap_or(json!(1)),
        "backoffLimit": spec.get("backoff-limit").cloned().unwrap_or(json!(3)),
        "template": {
            "metadata": { "labels": template_labels },
            "spec": Value::Object(pod_spec),
        },
    });
    if let Some(timeout) = spec.get("timeout").and_then(Value::as_str) {
        job_spec["activeDeadlineSeconds"] = planner::units::duration_seconds(timeout).into();
    }
    let mut docs = vec![match spec.get("schedule").and_then(Value::as_str) {
        Some(schedule) => json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": metadata(d, &d.name, Some(namespace)),
            "spec": {
                "schedule": schedule,
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": { "spec": job_spec },
            },
        }),
        None => json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata(d, &d.name, Some(namespace)),
            "spec": job_spec,
        }),
    }];
    docs.extend(external_secrets(d, namespace, &secrets));
    docs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pipeline_worker_gets_its_transform_dead_letters_and_table_keys() {
        let d = DesiredResource {
            stack: "data".into(),
            address: "pipeline/orders".into(),
            kind: Kind::Pipeline,
            name: "orders".into(),
            spec: json!({
                "team": "data", "source": "topic/order-events", "image": "ghcr.io/acme/ingest:2.0.0",
                "transform": "SELECT * FROM input WHERE amount > 0",
                "sink": { "target": "database/analytics", "table": "orders", "partition-by": "toYYYYMM(at)", "order-by": "(id)" },
                "dead-letter-topic": "orders-dlq",
            }),
            wired: Default::default(),
            resumed: false,
        };
        let docs = manifests(&d, "data");
        let env = docs[0]["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .clone();
        let value = |name: &str| {
            env.iter()
                .find(|e| e["name"] == name)
                .map(|e| e["value"].clone())
                .unwrap_or_default()
        };
        assert_eq!(
            value("PIPELINE_TRANSFORM_SQL"),
            "SELECT * FROM input WHERE amount > 0"
        );
        assert_eq!(value("PIPELINE_DEAD_LETTER_TOPIC"), "orders-dlq");
        assert_eq!(value("PIPELINE_SINK_PARTITION_BY"), "toYYYYMM(at)");
        assert_eq!(value("PIPELINE_SINK_ORDER_BY"), "(id)");
        assert_eq!(value("PIPELINE_SINK_TABLE"), "orders");
    }

    fn service(env: Value) -> DesiredResource {
        DesiredResource {
            stack: "shop".into(),
            address: "service/api".into(),
            kind: Kind::Service,
            name: "api".into(),
            spec: json!({ "team": "web", "image": "ghcr.io/acme/api:1.0.0", "replicas": 1, "port": 8080, "env": env }),
            wired: Default::default(),
            resumed: false,
        }
    }

    fn external_secrets(docs: &[Value]) -> Vec<&Value> {
        docs.iter()
            .filter(|d| d["kind"] == "ExternalSecret")
            .collect()
    }

    #[test]
    fn secrets_in_two_stores_get_one_external_secret_per_store() {
        let d = service(json!({
            "STRIPE_KEY": { "secret": "aws-sm:prod/stripe" },
            "DB_PASSWORD": { "secret": "vault:db/password" },
            "SIGNING_KEY": { "secret": "aws-sm:prod/signing" },
        }));
        let docs = workload(&d, "shop");
        let found = external_secrets(&docs);
        assert_eq!(found.len(), 2, "{docs:#?}");
        let by_store = |store: &str| {
            found
                .iter()
                .find(|e| e["spec"]["secretStoreRef"]["name"] == store)
                .unwrap_or_else(|| panic!("no ExternalSecret for {store}"))
        };
        let aws = by_store("aws-sm");
        let keys: Vec<&str> = aws["spec"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["remoteRef"]["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["prod/stripe", "prod/signing"],
            "in declaration order"
        );
        let vault = by_store("vault");
        assert_eq!(vault["spec"]["data"][0]["remoteRef"]["key"], "db/password");
        // Each env var reads the Secret its store's ExternalSecret fills.
        let env = &docs[0]["spec"]["template"]["spec"]["containers"][0]["env"];
        let secret_of = |var: &str| {
            env.as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == var)
                .unwrap()["valueFrom"]["secretKeyRef"]["name"]
                .clone()
        };
        assert_eq!(secret_of("DB_PASSWORD"), vault["spec"]["target"]["name"]);
        assert_eq!(secret_of("STRIPE_KEY"), aws["spec"]["target"]["name"]);
    }

    #[test]
    fn secrets_in_one_store_keep_one_external_secret() {
        let d = service(json!({ "STRIPE_KEY": { "secret": "aws-sm:prod/stripe" } }));
        let docs = workload(&d, "shop");
        let found = external_secrets(&docs);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["metadata"]["name"], "api-secrets");
    }
}
