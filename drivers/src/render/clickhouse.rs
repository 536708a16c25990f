//! `database` with `engine "clickhouse"` → an Altinity clickhouse-operator
//! `ClickHouseInstallation` (`clickhouse.altinity.com/v1`), plus, with `backup`, a `CronJob` that
//! asks the installation's clickhouse-backup sidecar for a remote backup to the bucket.
//!
//! Field names follow the operator's CRD (`spec.configuration.clusters[].layout`,
//! `spec.configuration.zookeeper.nodes[]`, `spec.defaults.templates`,
//! `spec.templates.podTemplates[]`, `spec.templates.volumeClaimTemplates[]`); the tests
//! round-trip every rendered spec through the CRD's kopium-generated types.

use super::metadata;
use crate::DesiredResource;
use planner::model::DatabaseSpec;
use serde_json::{Value, json};

/// The image of the ClickHouse server for `version` (default: the current LTS line).
fn server_image(version: &str) -> String {
    format!(
        "clickhouse/clickhouse-server:{}",
        if version.is_empty() { "24.8" } else { version }
    )
}

/// The clickhouse-backup sidecar: serves backup commands over ClickHouse's
/// `system.backup_actions` table and uploads to the bucket.
const BACKUP_IMAGE: &str = "altinity/clickhouse-backup:2.6.5";

/// The operator's Service in front of every replica: `clickhouse-NAME`.
pub fn service_name(d: &DesiredResource) -> String {
    format!("clickhouse-{}", d.name)
}

/// The installation and, with `backup`, its backup CronJob. `keeper` is the ClickHouse Keeper
/// (or ZooKeeper) service that replicated tables coordinate through.
pub fn documents(
    d: &DesiredResource,
    db: &DatabaseSpec,
    namespace: &str,
    keeper: &str,
) -> Vec<Value> {
    let version = db.version.as_deref().unwrap_or("");
    let shards = db.shards.unwrap_or(1);
    let replicas = db.replicas.unwrap_or(1);
    let (cpu, memory) = db
        .resources
        .as_ref()
        .map_or(("", ""), |r| (r.cpu.as_str(), r.memory.as_str()));
    let storage_gb = db.storage_gb;
    let backup = db.backup.as_ref();
    let mut containers = vec![json!({
        "name": "clickhouse",
        "image": server_image(version),
        "resources": {
            "requests": { "cpu": cpu, "memory": memory },
            "limits": { "memory": memory },
        },
    })];
    if let Some(b) = backup {
        let bucket = d
            .wired
            .get(BACKUP_BUCKET)
            .cloned()
            .unwrap_or_else(|| b.bucket.clone());
        let keep = db.backup_retention_days;
        containers.push(json!({
            "name": "clickhouse-backup",
            "image": BACKUP_IMAGE,
            "args": ["server"],
            "env": [
                { "name": "API_LISTEN", "value": "0.0.0.0:7171" },
                { "name": "API_CREATE_INTEGRATION_TABLES", "value": "true" },
                { "name": "REMOTE_STORAGE", "value": "s3" },
                { "name": "S3_BUCKET", "value": bucket },
                // Each shard's backups under its own path: clickhouse-backup fills `{shard}`
                // from the server's macros, which the operator sets per shard.
                { "name": "S3_PATH", "value": format!("{}/{}/shard-{{shard}}", d.stack, d.name) },
                // One backup a day by default: keep as many as days of retention.
                { "name": "BACKUPS_TO_KEEP_REMOTE", "value": keep.to_string() },
            ],
        }));
    }
    let mut configuration = json!({
        "clusters": [{
            "name": CLUSTER,
            "layout": { "shardsCount": shards, "replicasCount": replicas },
        }],
    });
    // Replicated tables need a keeper; a single replica does not.
    if replicas > 1 {
        configuration["zookeeper"] = json!({ "nodes": [{ "host": keeper, "port": 2181 }] });
    }
    let mut meta = metadata(d, &d.name, Some(namespace));
    if let Some(days) = db.retention_days {
        // What pipelines writing to this cluster use as their tables' TTL.
        meta["annotations"]["platformd.dev/retention-days"] = days.to_string().into();
    }
    let mut docs = vec![json!({
        "apiVersion": "clickhouse.altinity.com/v1",
        "kind": "ClickHouseInstallation",
        "metadata": meta,
        "spec": {
            "defaults": {
                "templates": { "podTemplate": "clickhouse", "dataVolumeClaimTemplate": "data" },
            },
            "configuration": configuration,
            "templates": {
                "podTemplates": [{ "name": "clickhouse", "spec": { "containers": containers } }],
                "volumeClaimTemplates": [{
                    "name": "data",
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": { "requests": { "storage": format!("{storage_gb}Gi") } },
                    },
                }],
            },
        },
    })];
    if let Some(b) = backup {
        docs.push(json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": metadata(d, &format!("{}-backup", d.name), Some(namespace)),
            "spec": {
                "schedule": b.schedule,
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": { "spec": {
                    "backoffLimit": 2,
                    "template": { "spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "backup",
                            "image": server_image(version),
                            "command": ["/bin/sh", "-c", backup_script(d, shards)],
                        }],
                    } },
                } },
            },
        }));
    }
    docs
}

/// The backup job's script: every shard backed up through its first replica (the operator's
/// per-replica Service `chi-NAME-main-SHARD-0`), each by its own clickhouse-backup sidecar; the
/// job fails if any shard's backup could not be started, so a partial backup is not a success.
fn backup_script(d: &DesiredResource, shards: u32) -> String {
    let hosts: Vec<String> = (0..shards.max(1))
        .map(|shard| format!("chi-{}-{CLUSTER}-{shard}-0", d.name))
        .collect();
    format!(
        "set -e; for host in {}; do clickhouse-client --host \"$host\" --query \"INSERT INTO system.backup_actions(command) VALUES('create_remote')\"; done",
        hosts.join(" ")
    )
}

/// The name of the one cluster of every ClickHouseInstallation: the operator names its pods
/// `chi-<installation>-<cluster>-<shard>-<replica>-0` and their volumes
/// `<volume claim template>-<pod>`, which the alert rules match.
pub const CLUSTER: &str = "main";

/// The wired value the backup's bucket name arrives in (the bucket's `name` output).
pub const BACKUP_BUCKET: &str = planner::resource_spec::BACKUP_BUCKET_WIRE;

/// The keeper service when the Kubernetes driver's `clickhouse-keeper` setting is not given.
pub const DEFAULT_KEEPER: &str = "clickhouse-keeper";
