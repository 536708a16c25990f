//! The field tables: which children each node and kind takes, with usage examples (also the
//! source of "did you mean" and of `docs/LANGUAGE.md`), and the allowed values of enums.

use super::*;

pub(crate) const COMMON_FIELDS: &[FieldDef] = &[
    required("team", "team \"payments\""),
    once("driver", "driver \"kubernetes\""),
    repeated("depends-on", "depends-on \"topic/order-events\""),
    repeated("labels", "labels tier=\"critical\""),
    once("protect", "protect #true"),
    once("drift", "drift \"report\""),
    repeated("ignore-changes", "ignore-changes \"replicas\""),
    once("cost-budget", "cost-budget monthly-usd=500"),
    once(
        "monitoring",
        "monitoring { alert \"cpu\" above=80 for=\"10m\"; notify \"slack:#alerts\" }",
    ),
];

pub(crate) const MONITORING_FIELDS: &[FieldDef] = &[
    repeated(
        "alert",
        "alert \"cpu\" above=80 for=\"10m\" severity=\"critical\"",
    ),
    repeated("notify", "notify \"slack:#data-alerts\""),
    once(
        "runbook",
        "runbook \"https://runbooks.acme.example/checkout\"",
    ),
];

pub(crate) const SERVICE_FIELDS: &[FieldDef] = &[
    required("image", "image \"ghcr.io/acme/app:1.0.0\""),
    once("replicas", "replicas 3"),
    once("port", "port 8080"),
    once("resources", "resources cpu=\"500m\" memory=\"512Mi\""),
    repeated("env", "env \"LOG_LEVEL\" \"info\""),
    once("health-check", "health-check path=\"/healthz\" port=8080"),
    once("autoscale", "autoscale min=2 max=10 cpu-percent=70"),
];

pub(crate) const DATABASE_FIELDS: &[FieldDef] = &[
    required("engine", "engine \"postgres\" version=\"16\""),
    // Required for every engine but `clickhouse` (checked in the decoder).
    once("size", "size \"db.r6g.large\""),
    once("storage-gb", "storage-gb 100"),
    once("backup-retention-days", "backup-retention-days 14"),
    once("high-availability", "high-availability #true"),
    // ClickHouse only.
    once("shards", "shards 2"),
    once("replicas", "replicas 2"),
    once("resources", "resources cpu=\"4\" memory=\"32Gi\""),
    once("retention-days", "retention-days 90"),
    once(
        "backup",
        "backup bucket=\"clickhouse-backups\" schedule=\"0 2 * * *\"",
    ),
    repeated(
        "user",
        "user \"ingest\" password=\"aws-sm:prod/analytics/ingest-password\"",
    ),
];

pub(crate) const BUCKET_FIELDS: &[FieldDef] = &[
    once("versioning", "versioning #true"),
    once("expire-after-days", "expire-after-days 90"),
    once("public", "public #false"),
    once("estimated-gb", "estimated-gb 500"),
];

pub(crate) const TOPIC_FIELDS: &[FieldDef] = &[
    once("partitions", "partitions 12"),
    once("retention-hours", "retention-hours 72"),
    once("replication-factor", "replication-factor 3"),
];

pub(crate) const PIPELINE_FIELDS: &[FieldDef] = &[
    required("source", "source \"topic/order-events\""),
    once(
        "transform",
        "transform sql=\"SELECT * FROM input WHERE amount > 0\"",
    ),
    required("sink", "sink \"database/orders-db\" table=\"order_events\""),
    once(
        "dead-letter-topic",
        "dead-letter-topic \"topic/order-events-dead-letters\"",
    ),
    required("image", "image \"ghcr.io/acme/ingest:2.0.0\""),
    once("replicas", "replicas 2"),
    once("resources", "resources cpu=\"500m\" memory=\"512Mi\""),
    repeated("env", "env \"BATCH_SIZE\" \"500\""),
];

pub(crate) const GPU_POOL_FIELDS: &[FieldDef] = &[
    required("accelerator", "accelerator \"nvidia-l4\""),
    required("instance-type", "instance-type \"g6.xlarge\""),
    required("nodes", "nodes min=0 max=8"),
    once("capacity", "capacity \"spot\""),
    once("idle-shutdown-after", "idle-shutdown-after \"2h\""),
];

pub(crate) const AI_ENDPOINT_FIELDS: &[FieldDef] = &[
    required(
        "model",
        "model \"meta-llama/Llama-3.1-8B-Instruct\" revision=\"main\"",
    ),
    required("runtime", "runtime \"vllm\""),
    once("gpu-pool", "gpu-pool \"l4-inference\" gpus=1"),
    once("instance-type", "instance-type \"ml.g5.xlarge\""),
    once("replicas", "replicas 2"),
    repeated(
        "env",
        "env \"HF_TOKEN\" secret=\"vault:ml/huggingface-token\"",
    ),
    once("rate-limit", "rate-limit tokens-per-minute=100000"),
    once("autoscale", "autoscale min=1 max=4 cpu-percent=70"),
    once("canary", "canary revision=\"v2\" weight-percent=10"),
    once("idle-shutdown-after", "idle-shutdown-after \"1h\""),
    once(
        "model-repository",
        "model-repository \"bucket/model-artifacts\" prefix=\"triton/\"",
    ),
];

pub(crate) const JOB_FIELDS: &[FieldDef] = &[
    required("image", "image \"ghcr.io/acme/train:1.0.0\""),
    once("command", "command \"python\" \"train.py\" \"--epochs=3\""),
    once("resources", "resources cpu=\"4\" memory=\"16Gi\""),
    repeated("env", "env \"DATA_URL\" from=\"bucket/datasets.url\""),
    once("gpu-pool", "gpu-pool \"a100-training\" gpus=4"),
    once("schedule", "schedule \"0 3 * * *\""),
    once("completions", "completions 1"),
    once("parallelism", "parallelism 1"),
    once("backoff-limit", "backoff-limit 3"),
    once("timeout", "timeout \"6h\""),
];

pub const ACCELERATORS: &[&str] = &[
    "nvidia-t4",
    "nvidia-l4",
    "nvidia-a10g",
    "nvidia-l40s",
    "nvidia-a100",
    "nvidia-h100",
    "aws-inferentia2",
    "aws-trainium",
];

/// The kind-specific fields of a kind (common fields excluded), for docs and `ignore-changes`.
pub fn kind_fields(kind: Kind) -> &'static [FieldDef] {
    match kind {
        Kind::Service => SERVICE_FIELDS,
        Kind::Database => DATABASE_FIELDS,
        Kind::Bucket => BUCKET_FIELDS,
        Kind::Topic => TOPIC_FIELDS,
        Kind::Pipeline => PIPELINE_FIELDS,
        Kind::GpuPool => GPU_POOL_FIELDS,
        Kind::AiEndpoint => AI_ENDPOINT_FIELDS,
        Kind::LlmQuota => &[],
        Kind::Job => JOB_FIELDS,
    }
}

pub fn common_fields() -> &'static [FieldDef] {
    COMMON_FIELDS
}
