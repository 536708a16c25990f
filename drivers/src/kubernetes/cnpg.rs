//! A postgres database as a CloudNativePG `Cluster` (postgresql.cnpg.io/v1): three instances
//! with `high-availability` (one primary, two replicas), else one; the declared storage; the
//! PostgreSQL major version as the operand image; a backup retention policy; an application
//! database and owner bootstrapped by the operator, whose password stays in the cluster's
//! `<name>-app` Secret (platformd never sees it). Outputs: `host` `<name>-rw.<namespace>.svc`
//! (the read-write service), `port`, `url` without credentials.

use crate::render::{metadata, str_at};
use crate::{DesiredResource, Outputs};
use serde_json::{Value, json};

/// Database and owner names: the resource name with `-` as `_` (SQL identifiers).
fn sql_name(name: &str) -> String {
    name.replace('-', "_")
}

pub fn cluster(d: &DesiredResource, namespace: &str) -> Value {
    let instances = if d.spec["high-availability"].as_bool().unwrap_or(false) {
        3
    } else {
        1
    };
    let version = match str_at(&d.spec, "version") {
        "" => "16",
        v => v,
    };
    let major = version.split('.').next().unwrap_or(version);
    let storage = d.spec["storage-gb"].as_u64().unwrap_or(20);
    let retention = d.spec["backup-retention-days"].as_u64().unwrap_or(7);
    let db = sql_name(&d.name);
    json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": metadata(d, &d.name, Some(namespace)),
        "spec": {
            "instances": instances,
            "imageName": format!("ghcr.io/cloudnative-pg/postgresql:{major}"),
            "storage": { "size": format!("{storage}Gi") },
            "bootstrap": { "initdb": { "database": db, "owner": db } },
            "backup": { "retentionPolicy": format!("{retention}d") },
        },
    })
}

pub fn outputs(name: &str, namespace: &str, out: &mut Outputs) {
    let host = format!("{name}-rw.{namespace}.svc");
    let db = sql_name(name);
    out.insert("host".into(), host.clone());
    out.insert("port".into(), "5432".into());
    out.insert("url".into(), format!("postgres://{db}@{host}:5432/{db}"));
    out.insert("credentials-secret".into(), format!("{name}-app"));
}
