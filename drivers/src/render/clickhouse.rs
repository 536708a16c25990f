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
use planner::model::{DatabaseSpec, PipelineSpec};
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
        // The bucket's region, as its driver reports it; credentials are the pod's workload
        // identity (no key is ever rendered).
        if let Some(region) = d.wired.get(planner::resource_spec::BACKUP_REGION_WIRE)
            && let Some(env) = containers[1]["env"].as_array_mut()
        {
            env.push(json!({ "name": "S3_REGION", "value": region }));
        }
    }
    let mut configuration = json!({
        "clusters": [{
            "name": CLUSTER,
            "layout": { "shardsCount": shards, "replicasCount": replicas },
        }],
    });
    if let Some(users) = users_configuration(d, db) {
        configuration["users"] = users;
    }
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
                            // As the cluster's first user: `default` is only for its own pods.
                            "env": db.users.first().map_or_else(Vec::new, |u| user_env(&d.name, &u.name)),
                        }],
                    } },
                } },
            },
        }));
    }
    docs.extend(users_external_secret(d, db, namespace));
    docs
}

/// The backup job's script: every shard backed up through its first replica (the operator's
/// per-replica Service `chi-NAME-main-SHARD-0`), each by its own clickhouse-backup sidecar; the
/// job fails if any shard's backup could not be started, so a partial backup is not a success.
fn backup_script(d: &DesiredResource, shards: u32) -> String {
    let hosts = replica_hosts(&d.name, shards, 1);
    format!(
        "set -e; for host in {}; do clickhouse-client --host \"$host\" --user \"$CLICKHOUSE_USER\" --password \"$CLICKHOUSE_PASSWORD\" --query \"INSERT INTO system.backup_actions(command) VALUES('create_remote')\"; done",
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

/// The statements that create a pipeline's table, or bring an existing one up to date, on one
/// replica: the local table (`<table>_local`, replicated when the cluster has replicas, with the
/// sink's `PARTITION BY`, `ORDER BY` and a TTL of the cluster's `retention-days`), the columns
/// added since it was made, its TTL set again, and the `Distributed` table `<table>` over every
/// shard, which pipelines write to and queries read. Every statement is a no-op when the table
/// already is as declared, so running them again is safe. A changed `PARTITION BY` or `ORDER BY`
/// cannot be applied to a table in place (ClickHouse refuses); such a change needs a new table.
pub fn table_sql(p: &PipelineSpec) -> Option<String> {
    let sink = &p.sink;
    let target = sink.clickhouse.as_ref()?;
    let table = sink.table.as_deref()?;
    let columns = planner::model::table_columns(sink.columns.as_deref()?)?;
    let local = format!("default.{table}_local");
    let engine = if target.replicas > 1 {
        format!(
            "ReplicatedMergeTree('/clickhouse/tables/{{shard}}/default/{table}_local', '{{replica}}')"
        )
    } else {
        "MergeTree".to_string()
    };
    let ttl = target
        .retention_days
        .zip(planner::model::ttl_column(sink))
        .map(|(days, column)| format!("{column} + INTERVAL {days} DAY"));
    let declared: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
    let mut create = format!(
        "CREATE TABLE IF NOT EXISTS {local} ({}) ENGINE = {engine}",
        declared.join(", ")
    );
    if let Some(partition) = &sink.partition_by {
        create.push_str(&format!(" PARTITION BY {partition}"));
    }
    create.push_str(&format!(
        " ORDER BY {}",
        sink.order_by.as_deref().unwrap_or("tuple()")
    ));
    if let Some(ttl) = &ttl {
        create.push_str(&format!(" TTL {ttl}"));
    }
    let add: Vec<String> = columns
        .iter()
        .map(|(n, t)| format!("ADD COLUMN IF NOT EXISTS {n} {t}"))
        .collect();
    let mut statements = vec![create, format!("ALTER TABLE {local} {}", add.join(", "))];
    if let Some(ttl) = &ttl {
        statements.push(format!("ALTER TABLE {local} MODIFY TTL {ttl}"));
    }
    statements.push(format!(
        "CREATE TABLE IF NOT EXISTS default.{table} AS {local} ENGINE = Distributed('{CLUSTER}', 'default', '{table}_local', rand())"
    ));
    statements.push(format!("ALTER TABLE default.{table} {}", add.join(", ")));
    Some(statements.join(";\n") + ";")
}

/// Every replica of the cluster `database`: the operator's per-replica Services
/// `chi-<installation>-<cluster>-<shard>-<replica>`.
fn replica_hosts(database: &str, shards: u32, replicas: u32) -> Vec<String> {
    (0..shards.max(1))
        .flat_map(|s| {
            (0..replicas.max(1)).map(move |r| format!("chi-{database}-{CLUSTER}-{s}-{r}"))
        })
        .collect()
}

/// A stable short digest (FNV-1a) naming a schema Job after what it runs: Jobs cannot be
/// changed once made, so a new schema is a new Job and the old one is pruned.
fn digest(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:08x}", hash >> 32)
}

/// The Job that creates or migrates a pipeline's ClickHouse table on every replica before data
/// flows (`table_sql`). The SQL reaches `clickhouse-client` through an environment variable, never
/// through the shell's command line.
pub fn schema_job(d: &DesiredResource, p: &PipelineSpec, namespace: &str) -> Option<Value> {
    let sql = table_sql(p)?;
    let target = p.sink.clickhouse.as_ref()?;
    let database = sink_database(p);
    let hosts = replica_hosts(database, target.shards, target.replicas);
    let script = format!(
        "set -e; for host in {}; do clickhouse-client --host \"$host\" --user \"$CLICKHOUSE_USER\" --password \"$CLICKHOUSE_PASSWORD\" --multiquery --query \"$SCHEMA_SQL\"; done",
        hosts.join(" ")
    );
    let name = format!("{}-schema-{}", d.name, digest(&format!("{script}\n{sql}")));
    let mut env = vec![json!({ "name": "SCHEMA_SQL", "value": super::literal_env_value(&sql) })];
    env.extend(user_env(database, target.user.as_deref()?));
    Some(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(d, &name, Some(namespace)),
        "spec": {
            "backoffLimit": 6,
            "template": { "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "schema",
                    "image": server_image(""),
                    "command": ["/bin/sh", "-c", script],
                    "env": env,
                }],
            } },
        },
    }))
}

/// The init container of a pipeline worker writing to ClickHouse: the worker starts only once
/// its table exists, so no record is read before it can be written.
pub fn wait_for_table(p: &PipelineSpec) -> Option<Value> {
    let table = p.sink.table.as_deref()?;
    let target = p.sink.clickhouse.as_ref()?;
    let database = sink_database(p);
    Some(json!({
        "name": "wait-for-table",
        "image": server_image(""),
        "command": ["/bin/sh", "-c", format!(
            "until clickhouse-client --host clickhouse-{database} --user \"$CLICKHOUSE_USER\" --password \"$CLICKHOUSE_PASSWORD\" --query 'EXISTS TABLE default.{table}' | grep -q 1; do sleep 5; done"
        )],
        "env": user_env(database, target.user.as_deref()?),
    }))
}

/// The ClickHouse installation a pipeline writes to: its sink's database name.
pub fn sink_database(p: &PipelineSpec) -> &str {
    p.sink.target.trim_start_matches("database/")
}

/// The Secret holding the passwords of a ClickHouse cluster's users, one key per user, filled
/// from the secret store by an ExternalSecret; the operator reads it (`k8s_secret_password`).
pub fn users_secret(database: &str) -> String {
    format!("{database}-users")
}

/// `CLICKHOUSE_USER` and `CLICKHOUSE_PASSWORD` of a client of `database` writing as `user`, the
/// password from the cluster's users Secret, never in the manifest.
pub fn user_env(database: &str, user: &str) -> Vec<Value> {
    vec![
        json!({ "name": "CLICKHOUSE_USER", "value": user }),
        json!({
            "name": "CLICKHOUSE_PASSWORD",
            "valueFrom": { "secretKeyRef": { "name": users_secret(database), "key": user } },
        }),
    ]
}

/// The installation's `configuration.users` for the declared users: each password from the
/// users Secret, reachable from the cluster's network (the operator keeps `default` to its own
/// pods), with the default profile.
fn users_configuration(d: &DesiredResource, db: &DatabaseSpec) -> Option<Value> {
    if db.users.is_empty() {
        return None;
    }
    let secret = users_secret(&d.name);
    let mut users = serde_json::Map::new();
    for u in &db.users {
        users.insert(
            format!("{}/k8s_secret_password", u.name),
            format!("{secret}/{}", u.name).into(),
        );
        users.insert(format!("{}/networks/ip", u.name), json!(["::/0"]));
        users.insert(format!("{}/profile", u.name), "default".into());
    }
    Some(Value::Object(users))
}

/// The ExternalSecret filling the users Secret, one key per user from its password reference
/// (all in one store: the planner refuses a cluster whose passwords are in several, so the
/// Secret is `<db>-users` itself).
fn users_external_secret(d: &DesiredResource, db: &DatabaseSpec, namespace: &str) -> Vec<Value> {
    super::external_secrets_by_store(
        d,
        namespace,
        &users_secret(&d.name),
        db.users
            .iter()
            .map(|u| (u.name.as_str(), u.password.as_str())),
    )
}
