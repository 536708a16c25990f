//! Kubernetes manifests for workloads and topics.

use super::{metadata, secret_store};
use crate::DesiredResource;
use planner::model::{
    AiEndpointSpec, Autoscale, ComputeResources, DatabaseEngine, EnvValue, HealthCheck, JobSpec,
    ModelRuntime, PipelineSpec, PoolPlacement, Spec, TopicSpec,
};
use serde_json::{Map, Value, json};

pub fn manifests(d: &DesiredResource, namespace: &str) -> Vec<Value> {
    match d.fields() {
        Spec::Topic(t) => vec![kafka_topic(d, t, namespace)],
        Spec::LlmQuota(q) => vec![super::gateway::quota_policy(d, q, namespace)],
        Spec::Job(j) => batch_job(d, j, namespace),
        // A ClickHouse sink's table is made before data flows: by the schema Job, which the
        // worker's init container waits for, and which the connector's tasks retry against
        // (`autoRestart`) until the table is there.
        Spec::Pipeline(p) if is_connector(p) => super::clickhouse::schema_job(d, p, namespace)
            .into_iter()
            .chain([clickhouse_connector(d, p, namespace)])
            .collect(),
        Spec::Service(s) => workload(
            d,
            &Workload {
                replicas: s.replicas,
                port: s.port,
                resources: Some(&s.resources),
                health_check: s.health_check.as_ref(),
                autoscale: s.autoscale.as_ref(),
                serves: Serves::Image(&s.image),
            },
            namespace,
        ),
        Spec::Pipeline(p) => {
            let mut docs = workload(
                d,
                &Workload {
                    replicas: p.replicas,
                    port: None,
                    resources: Some(&p.resources),
                    health_check: None,
                    autoscale: None,
                    serves: Serves::Image(&p.image),
                },
                namespace,
            );
            if let Some(wait) = super::clickhouse::wait_for_table(p) {
                for doc in docs.iter_mut().filter(|doc| doc["kind"] == "Deployment") {
                    doc["spec"]["template"]["spec"]["initContainers"] = json!([wait.clone()]);
                }
            }
            super::clickhouse::schema_job(d, p, namespace)
                .into_iter()
                .chain(docs)
                .collect()
        }
        Spec::AiEndpoint(e) => workload(
            d,
            &Workload {
                replicas: e.replicas,
                port: None,
                resources: None,
                health_check: None,
                autoscale: e.autoscale.as_ref(),
                serves: Serves::Model(e),
            },
            namespace,
        ),
        Spec::Database(_) | Spec::Bucket(_) | Spec::GpuPool(_) => Vec::new(),
    }
}

fn kafka_topic(d: &DesiredResource, t: &TopicSpec, namespace: &str) -> Value {
    let mut meta = metadata(d, &d.name, Some(namespace));
    meta["labels"]["strimzi.io/cluster"] = "platform".into();
    let retention_ms = u64::from(t.retention_hours) * 3_600_000;
    json!({
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        "metadata": meta,
        "spec": {
            "partitions": t.partitions,
            "replicas": t.replication_factor,
            "config": { "retention.ms": retention_ms.to_string() },
        },
    })
}

/// Selector labels: stable for the life of the resource (a Deployment's selector is immutable).
fn selector(d: &DesiredResource, name: &str) -> Value {
    json!({ "app.kubernetes.io/name": name, "platformd.dev/stack": d.stack })
}

/// The container image and arguments of a model-serving runtime.
fn runtime_container(e: &AiEndpointSpec, revision: &str) -> (String, Vec<String>, u16) {
    // A model kept in a repository bucket is served from the directory it is fetched into
    // (`model_fetch`); otherwise the runtime downloads it by id and revision.
    let model_args = |flag: &str| -> Vec<String> {
        if e.model_repository.is_some() {
            vec![
                flag.into(),
                format!("{MODELS_DIR}/{}", triton_model_name(e)),
            ]
        } else {
            vec![
                flag.into(),
                e.model.id.clone(),
                "--revision".into(),
                revision.into(),
            ]
        }
    };
    // A model on more than one GPU is sharded across them (tensor parallelism).
    let gpus = e.gpu_pool.as_ref().map_or(1, |p| p.gpus);
    let (image, mut args, port): (String, Vec<String>, u16) = match e.runtime {
        ModelRuntime::Tgi => (
            "ghcr.io/huggingface/text-generation-inference:2.4.1".into(),
            [
                model_args("--model-id"),
                vec!["--port".into(), "8000".into()],
            ]
            .concat(),
            8000,
        ),
        // The model's directory is fetched into the `models` volume first (`model_fetch`);
        // Triton loads exactly that model.
        ModelRuntime::Triton => (
            "nvcr.io/nvidia/tritonserver:24.10-py3".into(),
            vec![
                "tritonserver".into(),
                format!("--model-repository={MODELS_DIR}"),
                "--model-control-mode=explicit".into(),
                format!("--load-model={}", triton_model_name(e)),
                "--http-port=8000".into(),
            ],
            8000,
        ),
        // SageMaker endpoints are not rendered as workloads (`super::has_kubernetes_form`).
        ModelRuntime::Vllm | ModelRuntime::Sagemaker => (
            "vllm/vllm-openai:v0.6.4".into(),
            [model_args("--model"), vec!["--port".into(), "8000".into()]].concat(),
            8000,
        ),
    };
    if gpus > 1 {
        match e.runtime {
            ModelRuntime::Vllm => args.extend(["--tensor-parallel-size".into(), gpus.to_string()]),
            ModelRuntime::Tgi => args.extend(["--num-shard".into(), gpus.to_string()]),
            // Triton shards by each model's own configuration in the repository.
            ModelRuntime::Triton | ModelRuntime::Sagemaker => {}
        }
    }
    (image, args, port)
}

/// Where Triton's model repository is mounted.
const MODELS_DIR: &str = "/models";
/// The image that fetches a Triton model from its bucket.
const AWS_CLI_IMAGE: &str = "amazon/aws-cli:2.22.35";

/// The name a fetched model's directory has (and Triton knows the model by): the last part of
/// its id.
fn triton_model_name(e: &AiEndpointSpec) -> &str {
    e.model.id.rsplit('/').next().unwrap_or(&e.model.id)
}

/// With a `model-repository`, the init container that copies the model's directory
/// (`<prefix><id>/<revision>/` in the repository bucket: for Triton a model directory with
/// `config.pbtxt` and numbered versions, for vLLM and TGI the weights and tokenizer) into the
/// `models` volume. Arguments, not a shell line: ids and revisions come from the stack.
fn model_fetch(d: &DesiredResource, e: &AiEndpointSpec, revision: &str) -> Option<Value> {
    let repository = e.model_repository.as_ref()?;
    let bucket = d
        .wired
        .get(planner::resource_spec::MODEL_REPOSITORY_WIRE)
        .cloned()
        .unwrap_or_else(|| repository.bucket.clone());
    Some(json!({
        "name": "fetch-model",
        "image": AWS_CLI_IMAGE,
        "args": [
            "s3", "sync",
            format!("s3://{bucket}/{}{}/{revision}/", repository.prefix, e.model.id),
            format!("{MODELS_DIR}/{}/", triton_model_name(e)),
        ],
        "volumeMounts": [{ "name": "models", "mountPath": MODELS_DIR }],
    }))
}

/// Every secret store the workload's env references, sorted.
fn secret_stores(d: &DesiredResource) -> std::collections::BTreeSet<String> {
    d.spec
        .env()
        .into_iter()
        .flat_map(|env| env.values())
        .filter_map(|v| match v {
            EnvValue::Secret(reference) => Some(secret_store(reference).to_string()),
            _ => None,
        })
        .collect()
}

/// The Secret an ExternalSecret fills for `store`: `<name>-secrets`, or `<name>-secrets-<store>`
/// for each when the workload uses several stores (`super::store_secret_name`).
fn secret_name(d: &DesiredResource, store: &str, stores: usize) -> String {
    super::store_secret_name(&format!("{}-secrets", d.name), store, stores)
}

fn env_list(d: &DesiredResource, secrets: &mut Vec<(String, String)>) -> Vec<Value> {
    let stores = secret_stores(d).len();
    let mut env = Vec::new();
    if let Spec::Pipeline(p) = d.fields() {
        env.push(json!({"name": "PIPELINE_SOURCE", "value": p.source}));
        // The worker consumes as this group: what the backlog and error alerts watch.
        env.push(json!({"name": "PIPELINE_CONSUMER_GROUP", "value": consumer_group(d, p)}));
        env.push(json!({"name": "PIPELINE_SINK", "value": p.sink.target}));
        for (key, value) in [
            ("TABLE", &p.sink.table),
            ("PREFIX", &p.sink.prefix),
            ("PARTITION_BY", &p.sink.partition_by),
            ("ORDER_BY", &p.sink.order_by),
        ] {
            if let Some(v) = value {
                env.push(json!({"name": format!("PIPELINE_SINK_{key}"), "value": v}));
            }
        }
        if let Some(sql) = &p.transform {
            env.push(json!({"name": "PIPELINE_TRANSFORM_SQL", "value": sql}));
        }
        if let Some(user) = p.sink.clickhouse.as_ref().and_then(|c| c.user.as_deref()) {
            env.extend(super::clickhouse::user_env(
                super::clickhouse::sink_database(p),
                user,
            ));
        }
        if let Some(topic) = &p.dead_letter_topic {
            env.push(json!({"name": "PIPELINE_DEAD_LETTER_TOPIC", "value": topic}));
        }
    }
    for (name, v) in d.spec.env().into_iter().flatten() {
        match v {
            EnvValue::Literal(s) => env.push(json!({
                "name": name,
                "value": super::literal_env_value(s),
            })),
            EnvValue::From { .. } => {
                // Resolved from the dependency's outputs when applied.
                let value = d.wired.get(name).cloned().unwrap_or_default();
                env.push(json!({"name": name, "value": value}));
            }
            EnvValue::Secret(reference) => {
                secrets.push((name.clone(), reference.clone()));
                let secret = secret_name(d, secret_store(reference), stores);
                env.push(json!({
                    "name": name,
                    "valueFrom": { "secretKeyRef": { "name": secret, "key": name } },
                }));
            }
        }
    }
    env
}

/// What a Deployment-backed resource asks of its pods.
struct Workload<'a> {
    replicas: u32,
    port: Option<u16>,
    resources: Option<&'a ComputeResources>,
    health_check: Option<&'a HealthCheck>,
    autoscale: Option<&'a Autoscale>,
    serves: Serves<'a>,
}

/// What the container runs: an image of the stack's, or a model on a serving runtime.
enum Serves<'a> {
    Image(&'a str),
    Model(&'a AiEndpointSpec),
}

fn requests(r: &ComputeResources) -> Value {
    json!({
        "requests": { "cpu": r.cpu, "memory": r.memory },
        "limits": { "memory": r.memory },
    })
}

fn workload(d: &DesiredResource, w: &Workload<'_>, namespace: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut secrets = Vec::new();
    let env = env_list(d, &mut secrets);
    let replicas = u64::from(w.replicas);
    let endpoint = match w.serves {
        Serves::Model(e) => Some(e),
        Serves::Image(_) => None,
    };
    let mut container = Map::new();
    container.insert("name".into(), d.name.clone().into());
    let mut port = w.port;
    match w.serves {
        Serves::Model(e) => {
            let (image, args, p) = runtime_container(e, &e.model.revision);
            container.insert("image".into(), image.into());
            container.insert("args".into(), json!(args));
            port = Some(p);
        }
        Serves::Image(image) => {
            container.insert("image".into(), image.into());
        }
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
    if let Some(r) = w.resources {
        container.insert("resources".into(), requests(r));
    }
    let gpu_pool = endpoint.and_then(|e| e.gpu_pool.as_ref());
    if let Some(pool) = gpu_pool {
        gpu_limit(pool, &mut container);
    }
    if let Some(h) = w.health_check {
        let probe = json!({
            "httpGet": { "path": h.path, "port": h.port.or(port).unwrap_or(8080) },
            "initialDelaySeconds": h.initial_delay_seconds,
            "periodSeconds": h.period_seconds,
        });
        container.insert("readinessProbe".into(), probe.clone());
        container.insert("livenessProbe".into(), probe);
    }
    let fetch = endpoint.and_then(|e| model_fetch(d, e, &e.model.revision));
    if fetch.is_some() {
        container.insert(
            "volumeMounts".into(),
            json!([{ "name": "models", "mountPath": MODELS_DIR }]),
        );
    }
    let mut pod_spec = Map::new();
    if let Some(fetch) = fetch {
        pod_spec.insert("initContainers".into(), json!([fetch]));
        pod_spec.insert(
            "volumes".into(),
            json!([{ "name": "models", "emptyDir": {} }]),
        );
    }
    pod_spec.insert(
        "containers".into(),
        json!([Value::Object(container.clone())]),
    );
    if let Some(pool) = gpu_pool {
        gpu_placement(pool, &mut pod_spec);
    }
    // The canary's pods are their own app (`<name>-canary`), behind their own Service: the
    // gateway, not the pod count, decides which revision a request reaches.
    let deployment = |name: &str, replicas: u64, pod_spec: &Map<String, Value>| {
        let mut template_labels = selector(d, name);
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
                "selector": { "matchLabels": selector(d, name) },
                "template": {
                    "metadata": { "labels": template_labels },
                    "spec": Value::Object(pod_spec.clone()),
                },
            },
        })
    };
    docs.push(deployment(&d.name, replicas, &pod_spec));
    // Canary: a second Deployment on the canary revision, sized for its share of the traffic,
    // which the gateway splits by the declared weight (`gateway::endpoint_objects`).
    let canary = endpoint.and_then(|e| Some((e, e.canary.as_ref()?)));
    if let Some((e, canary)) = canary {
        let canary_replicas = u64::from(e.canary_replicas());
        let (image, args, _) = runtime_container(e, &canary.revision);
        let mut c = container.clone();
        c.insert("image".into(), image.into());
        c.insert("args".into(), json!(args));
        let mut canary_pod = pod_spec.clone();
        canary_pod.insert("containers".into(), json!([Value::Object(c)]));
        if let Some(fetch) = model_fetch(d, e, &canary.revision) {
            canary_pod.insert("initContainers".into(), json!([fetch]));
        }
        docs.push(deployment(
            &format!("{}-canary", d.name),
            canary_replicas,
            &canary_pod,
        ));
    }
    if let Some(p) = port {
        let service = |name: &str| {
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(d, name, Some(namespace)),
                "spec": {
                    "selector": selector(d, name),
                    "ports": [{ "name": "http", "port": p, "targetPort": "http", "protocol": "TCP" }],
                },
            })
        };
        docs.push(service(&d.name));
        if canary.is_some() {
            docs.push(service(&format!("{}-canary", d.name)));
        }
        // Model traffic goes through the AI gateway, which enforces rate limits and quotas.
        if let Some(e) = endpoint {
            docs.extend(super::gateway::endpoint_objects(d, e, namespace, p));
        }
    }
    if let Some(a) = w.autoscale {
        docs.push(json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(d, &d.name, Some(namespace)),
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": d.name },
                "minReplicas": a.min.max(1),
                "maxReplicas": a.max,
                "metrics": [{
                    "type": "Resource",
                    "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": a.cpu_percent } },
                }],
            },
        }));
    }
    if let Some(e) = endpoint
        && port.is_some()
    {
        docs.extend(super::gateway::caller_keys(d, e, namespace));
    }
    docs.extend(external_secrets(d, namespace, &secrets));
    docs
}

/// A pipeline from a topic straight into ClickHouse (no transform) is a Kafka Connect job: the
/// ClickHouse sink connector moves the records, and no worker of ours runs.
pub fn is_connector(p: &PipelineSpec) -> bool {
    p.source.starts_with("topic/")
        && p.sink.engine == Some(DatabaseEngine::Clickhouse)
        && p.transform.is_none()
}

/// The Kafka consumer group a pipeline reads its source as: its worker's (`PIPELINE_CONSUMER_GROUP`,
/// the pipeline's name), or its connector's, which Kafka Connect names `connect-<connector>`.
pub fn consumer_group(d: &DesiredResource, p: &PipelineSpec) -> String {
    if is_connector(p) {
        format!("connect-{}", d.name)
    } else {
        d.name.clone()
    }
}

/// The Strimzi Kafka Connect cluster connectors run on when the driver names none.
pub const DEFAULT_CONNECT_CLUSTER: &str = "platform-connect";

/// The ClickHouse sink connector of a pipeline, on the Strimzi Kafka Connect cluster
/// (`strimzi.io/cluster`), writing to the ClickHouse installation's Service over HTTP, with
/// failed records sent to the dead-letter topic when there is one.
fn clickhouse_connector(d: &DesiredResource, p: &PipelineSpec, namespace: &str) -> Value {
    let topic = p.source.trim_start_matches("topic/");
    let database = super::clickhouse::sink_database(p);
    let user = p
        .sink
        .clickhouse
        .as_ref()
        .and_then(|c| c.user.clone())
        .unwrap_or_default();
    let mut config = json!({
        "topics": topic,
        "hostname": format!("clickhouse-{database}.{namespace}.svc"),
        "port": "8123",
        "ssl": "false",
        "database": "default",
        "username": user,
        // Read from the cluster's users Secret by Strimzi's KubernetesSecretConfigProvider
        // (the Connect cluster's `config.providers: secrets`), never written here.
        "password": format!(
            "${{secrets:{namespace}/{}:{user}}}",
            super::clickhouse::users_secret(database)
        ),
        "topic2TableMap": format!("{topic}={}", p.sink.table.as_deref().unwrap_or("")),
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "exactlyOnce": "false",
    });
    if let Some(dlq) = &p.dead_letter_topic {
        config["errors.tolerance"] = "all".into();
        config["errors.deadletterqueue.topic.name"] = dlq.as_str().into();
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
            "tasksMax": p.replicas.max(1),
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
    super::external_secrets_by_store(
        d,
        namespace,
        &format!("{}-secrets", d.name),
        secrets
            .iter()
            .map(|(name, reference)| (name.as_str(), reference.as_str())),
    )
}

/// The GPU limit of a container on a `gpu-pool`, beside its other requests and limits.
fn gpu_limit(pool: &PoolPlacement, container: &mut Map<String, Value>) {
    let resources = container.entry("resources").or_insert_with(|| json!({}));
    resources["limits"]["nvidia.com/gpu"] = pool.gpus.to_string().into();
}

/// The node selector and toleration of a pod on a `gpu-pool`.
fn gpu_placement(pool: &PoolPlacement, pod_spec: &mut Map<String, Value>) {
    pod_spec.insert(
        "nodeSelector".into(),
        json!({ "platformd.dev/gpu-pool": pool.pool }),
    );
    pod_spec.insert(
        "tolerations".into(),
        json!([{ "key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule" }]),
    );
}

/// `job` → a `batch/v1` `Job` (one-off) or `CronJob` (with `schedule`, in UTC, never two runs
/// at once), plus the ExternalSecrets of its secret env.
fn batch_job(d: &DesiredResource, j: &JobSpec, namespace: &str) -> Vec<Value> {
    let mut secrets = Vec::new();
    let env = env_list(d, &mut secrets);
    let mut container = Map::new();
    container.insert("name".into(), d.name.clone().into());
    container.insert("image".into(), j.image.clone().into());
    if !j.command.is_empty() {
        container.insert("command".into(), json!(j.command));
    }
    if !env.is_empty() {
        container.insert("env".into(), Value::Array(env));
    }
    container.insert("resources".into(), requests(&j.resources));
    let mut pod_spec = Map::new();
    pod_spec.insert("restartPolicy".into(), "Never".into());
    if let Some(pool) = &j.gpu_pool {
        gpu_limit(pool, &mut container);
        gpu_placement(pool, &mut pod_spec);
    }
    pod_spec.insert("containers".into(), json!([Value::Object(container)]));
    let mut template_labels = selector(d, &d.name);
    template_labels["platformd.dev/team"] = d.team().into();
    let mut job_spec = json!({
        "completions": j.completions,
        "parallelism": j.parallelism,
        "backoffLimit": j.backoff_limit,
        "template": {
            "metadata": { "labels": template_labels },
            "spec": Value::Object(pod_spec),
        },
    });
    if let Some(timeout) = &j.timeout {
        job_spec["activeDeadlineSeconds"] = planner::units::duration_seconds(timeout).into();
    }
    let mut docs = vec![match &j.schedule {
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
    use planner::model::Kind;
    use serde_json::json;

    #[test]
    fn a_pipeline_worker_gets_its_transform_dead_letters_and_table_keys() {
        let d = DesiredResource::from_json(
            "data",
            Kind::Pipeline,
            "orders",
            &json!({
                "team": "data", "source": "topic/order-events", "image": "ghcr.io/acme/ingest:2.0.0",
                "transform": "SELECT * FROM input WHERE amount > 0",
                "sink": { "target": "database/analytics", "table": "orders", "partition-by": "toYYYYMM(at)", "order-by": "(id)", "engine": "clickhouse" },
                "dead-letter-topic": "orders-dlq",
                "replicas": 1, "resources": { "cpu": "500m", "memory": "512Mi" }, "env": {},
            }),
        )
        .unwrap();
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
        DesiredResource::from_json(
            "shop",
            Kind::Service,
            "api",
            &json!({
                "team": "web", "image": "ghcr.io/acme/api:1.0.0", "replicas": 1, "port": 8080,
                "resources": { "cpu": "250m", "memory": "256Mi" }, "env": env,
            }),
        )
        .unwrap()
    }

    /// Kubernetes expands `$(NAME)` in env values from the container's other variables: a
    /// literal from the stack reaches the process as written.
    #[test]
    fn literal_env_values_are_not_expanded_by_the_kubelet() {
        let d = service(json!({ "GREETING": "cost $(5) or $(HOME)" }));
        let docs = manifests(&d, "shop");
        let env = &docs[0]["spec"]["template"]["spec"]["containers"][0]["env"];
        let greeting = env
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "GREETING")
            .unwrap();
        assert_eq!(greeting["value"], "cost $$(5) or $$(HOME)");
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
        let docs = manifests(&d, "shop");
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
            ["prod/signing", "prod/stripe"],
            "in the order of the env's names (the spec's map is sorted)"
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
        let docs = manifests(&d, "shop");
        let found = external_secrets(&docs);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["metadata"]["name"], "api-secrets");
    }
}
