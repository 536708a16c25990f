//! A postgres database as a CloudNativePG `Cluster` (postgresql.cnpg.io/v1): three instances
//! with `high-availability` (one primary, two replicas), else one; the declared storage; the
//! PostgreSQL major version as the operand image; a backup retention policy; an application
//! database and owner bootstrapped by the operator, whose password stays in the cluster's
//! `<name>-app` Secret (platformd never sees it). Outputs: `host` `<name>-rw.<namespace>.svc`
//! (the read-write service), `port`, `url` without credentials.

use crate::render::metadata;
use crate::{DesiredResource, Outputs};
use planner::model::DatabaseSpec;
use serde_json::{Value, json};

/// Database and owner names: the resource name with `-` as `_` (SQL identifiers).
fn sql_name(name: &str) -> String {
    name.replace('-', "_")
}

pub fn cluster(d: &DesiredResource, spec: &DatabaseSpec, namespace: &str) -> Value {
    let instances = if spec.high_availability { 3 } else { 1 };
    let version = match spec.version.as_deref() {
        None | Some("") => "16",
        Some(v) => v,
    };
    let major = version.split('.').next().unwrap_or(version);
    let storage = spec.storage_gb;
    let retention = spec.backup_retention_days;
    let db = sql_name(&d.name);
    let mut cluster = json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": metadata(d, &d.name, Some(namespace)),
        "spec": {
            "instances": instances,
            "imageName": format!("ghcr.io/cloudnative-pg/postgresql:{major}"),
            "storage": { "size": format!("{storage}Gi") },
            "bootstrap": { "initdb": { "database": db, "owner": db } },
        },
    });
    // CloudNativePG takes a retention of at least one day (`^[1-9][0-9]*[dwm]$`); none kept
    // means no retention policy at all.
    if retention > 0 {
        cluster["spec"]["backup"] = json!({ "retentionPolicy": format!("{retention}d") });
    }
    cluster
}

pub fn outputs(name: &str, namespace: &str, out: &mut Outputs) {
    let host = format!("{name}-rw.{namespace}.svc");
    let db = sql_name(name);
    out.insert("host".into(), host.clone());
    out.insert("port".into(), "5432".into());
    out.insert("url".into(), format!("postgres://{db}@{host}:5432/{db}"));
    out.insert("credentials-secret".into(), format!("{name}-app"));
}
