//! Databases as RDS instances: engine and version, class from `size`, storage, backup
//! retention, Multi-AZ for `high-availability`, deletion protection while `protect`, and the
//! master password managed by RDS in Secrets Manager (platformd never sees it). Updates go
//! through ModifyDBInstance, applied at once. Outputs come from the instance: `host`, `port`,
//! `url` (no password), `arn`, `master-secret-arn`.
//!
//! Observing is one paginated DescribeDBInstances: it returns each instance's configuration
//! and tags, so no per-resource calls are needed.

use super::errors::{classify, code};
use super::{
    OWNERSHIP_KEYS, Tags, adoptable, expect_id, marked_as, name_of, owned_by, physical_name,
    tracked_address,
};
use crate::{Applied, DesiredResource, DriverError, Health, ObjectRef, ObservedResource, Outputs};
use aws_sdk_rds::Client;
use aws_sdk_rds::types::{DbInstance, Tag};
use planner::model::{DatabaseSpec, Kind};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The master user RDS creates; its password lives in Secrets Manager.
const MASTER_USER: &str = "platformd";

fn tags(desired: &DesiredResource) -> BTreeMap<String, String> {
    super::ownership_tags(desired)
}

/// [`tags`] as the SDK takes them.
fn sdk_tags(desired: &DesiredResource) -> Vec<Tag> {
    tags(desired)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn sql_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The managed configuration of an instance, in the shape `observe` reports it.
pub fn expected(desired: &DesiredResource, db: &DatabaseSpec) -> Value {
    let tags: Map<String, Value> = tags(desired)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut doc = json!({
        "identifier": physical_name(&desired.stack, &desired.name),
        "engine": db.engine.as_str(),
        "class": db.size.as_deref().unwrap_or(""),
        "storage-gb": db.storage_gb,
        "backup-retention-days": db.backup_retention_days,
        "multi-az": db.high_availability,
        "deletion-protection": desired.spec.lifecycle.protect,
        "tags": tags,
    });
    if let Some(v) = &db.version {
        doc["engine-version"] = json!(v);
    }
    doc
}

fn live(instance: &DbInstance, expected_version: Option<&str>) -> Value {
    let tags: Map<String, Value> = instance
        .tag_list()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), Value::String(t.value()?.to_string()))))
        .collect();
    let mut doc = json!({
        "identifier": instance.db_instance_identifier().unwrap_or(""),
        "engine": instance.engine().unwrap_or(""),
        "class": instance.db_instance_class().unwrap_or(""),
        "storage-gb": instance.allocated_storage().unwrap_or(0),
        "backup-retention-days": instance.backup_retention_period().unwrap_or(0),
        "multi-az": instance.multi_az().unwrap_or(false),
        "deletion-protection": instance.deletion_protection().unwrap_or(false),
        "tags": tags,
    });
    // A declared major version (`16`) matches any minor the service picked (`16.3`).
    if let Some(v) = instance.engine_version() {
        let shown = match expected_version {
            Some(want) if v == want || v.starts_with(&format!("{want}.")) => want,
            _ => v,
        };
        doc["engine-version"] = json!(shown);
    }
    doc
}

fn outputs(instance: &DbInstance, desired_name: &str) -> Outputs {
    let mut out = Outputs::new();
    let engine = instance.engine().unwrap_or("postgres");
    let scheme = if engine.contains("postgres") {
        "postgres"
    } else {
        "mysql"
    };
    let db = sql_name(desired_name);
    if let Some(endpoint) = instance.endpoint() {
        let host = endpoint.address().unwrap_or("").to_string();
        let port = endpoint.port().unwrap_or(5432);
        out.insert("host".into(), host.clone());
        out.insert("port".into(), port.to_string());
        out.insert(
            "url".into(),
            format!("{scheme}://{MASTER_USER}@{host}:{port}/{db}"),
        );
    }
    out.insert("name".into(), db);
    if let Some(arn) = instance.db_instance_arn() {
        out.insert("arn".into(), arn.to_string());
    }
    if let Some(secret) = instance.master_user_secret().and_then(|s| s.secret_arn()) {
        out.insert("master-secret-arn".into(), secret.to_string());
    }
    out
}

/// One tag of an instance.
fn tag<'a>(instance: &'a DbInstance) -> impl Fn(&str) -> Option<&'a str> + 'a {
    |k| {
        instance
            .tag_list()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
    }
}

async fn describe(client: &Client, id: &str) -> Result<Option<DbInstance>, DriverError> {
    match client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(out) => Ok(out.db_instances().first().cloned()),
        Err(e) if code(&e) == Some("DBInstanceNotFound") => Ok(None),
        Err(e) => Err(classify(e, "rds:DescribeDBInstances", id)),
    }
}

fn tags_of(instance: &DbInstance) -> Tags {
    instance
        .tag_list()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

fn instance_ref(id: &str) -> ObjectRef {
    ObjectRef {
        api_version: "rds".into(),
        kind: "DBInstance".into(),
        namespace: None,
        name: id.to_string(),
    }
}

/// `import`: the instance `id` (the identifier platformd gives the resource) is tagged as
/// `desired`'s; the apply that follows brings its configuration to the declaration.
pub async fn adopt(
    client: &Client,
    desired: &DesiredResource,
    id: &str,
) -> Result<Vec<ObjectRef>, DriverError> {
    let physical = physical_name(&desired.stack, &desired.name);
    expect_id(id, &physical, desired, "DB instance")?;
    let Some(instance) = describe(client, &physical).await? else {
        return Err(DriverError::permanent(format!(
            "nothing to import for {}: no DB instance `{physical}` in the account",
            desired.address
        )));
    };
    adoptable(
        &tags_of(&instance),
        desired,
        &format!("DB instance `{physical}`"),
    )?;
    tag_instance(
        client,
        instance.db_instance_arn().unwrap_or_default(),
        desired,
        &physical,
    )
    .await?;
    Ok(vec![instance_ref(&physical)])
}

/// Gives the instance `arn` (identifier `id`) `desired`'s tags: ownership and labels.
async fn tag_instance(
    client: &Client,
    arn: &str,
    desired: &DesiredResource,
    id: &str,
) -> Result<(), DriverError> {
    client
        .add_tags_to_resource()
        .resource_name(arn)
        .set_tags(Some(sdk_tags(desired)))
        .send()
        .await
        .map_err(|e| classify(e, "rds:AddTagsToResource", id))?;
    Ok(())
}

/// `removed`: platformd's tags come off the instance, which keeps running with its data.
pub async fn release(
    client: &Client,
    stack: &str,
    address: &str,
    id: &str,
) -> Result<(), DriverError> {
    let Some(instance) = describe(client, id).await? else {
        return Ok(());
    };
    if !marked_as(&tags_of(&instance), stack, address) {
        return Ok(());
    }
    client
        .remove_tags_from_resource()
        .resource_name(instance.db_instance_arn().unwrap_or_default())
        .set_tag_keys(Some(OWNERSHIP_KEYS.iter().map(|k| k.to_string()).collect()))
        .send()
        .await
        .map_err(|e| classify(e, "rds:RemoveTagsFromResource", id))?;
    Ok(())
}

pub async fn apply(
    client: &Client,
    desired: &DesiredResource,
    db: &DatabaseSpec,
) -> Result<Applied, DriverError> {
    let id = physical_name(&desired.stack, &desired.name);
    let want = expected(desired, db);
    let existing = describe(client, &id).await?;
    match &existing {
        Some(instance) if !owned_by(tag(instance), desired) => {
            return Err(DriverError::permanent(format!(
                "the RDS instance `{id}` exists and platformd does not own it; platformd takes over nothing it did not make: adopt it with `import \"{}\" id=\"{id}\"`, or rename the resource",
                desired.address
            )));
        }
        Some(instance) => {
            // `ignore-changes`: an ignored field is left out of the modification, so what
            // changed it (storage autoscaling, an operator's resize) keeps its value.
            let ignored = |field: &str| {
                desired
                    .spec
                    .lifecycle
                    .ignore_changes
                    .iter()
                    .any(|f| f == field)
            };
            let mut modify = client
                .modify_db_instance()
                .db_instance_identifier(&id)
                .deletion_protection(want["deletion-protection"].as_bool().unwrap_or(true))
                .apply_immediately(true);
            if !ignored("size") {
                modify = modify.db_instance_class(want["class"].as_str().unwrap_or(""));
            }
            if !ignored("storage-gb") {
                modify = modify.allocated_storage(want["storage-gb"].as_i64().unwrap_or(20) as i32);
            }
            if !ignored("backup-retention-days") {
                modify = modify.backup_retention_period(
                    want["backup-retention-days"].as_i64().unwrap_or(7) as i32,
                );
            }
            if !ignored("high-availability") {
                modify = modify.multi_az(want["multi-az"].as_bool().unwrap_or(false));
            }
            modify
                .send()
                .await
                .map_err(|e| classify(e, "rds:ModifyDBInstance", &id))?;
            if let Some(arn) = instance.db_instance_arn() {
                tag_instance(client, arn, desired, &id).await?;
            }
        }
        None => {
            let mut create = client
                .create_db_instance()
                .db_instance_identifier(&id)
                .engine(want["engine"].as_str().unwrap_or("postgres"))
                .db_instance_class(want["class"].as_str().unwrap_or(""))
                .allocated_storage(want["storage-gb"].as_i64().unwrap_or(20) as i32)
                .backup_retention_period(want["backup-retention-days"].as_i64().unwrap_or(7) as i32)
                .multi_az(want["multi-az"].as_bool().unwrap_or(false))
                .deletion_protection(want["deletion-protection"].as_bool().unwrap_or(true))
                .db_name(sql_name(&desired.name))
                .master_username(MASTER_USER)
                .manage_master_user_password(true)
                .set_tags(Some(sdk_tags(desired)));
            if let Some(v) = want["engine-version"].as_str() {
                create = create.engine_version(v);
            }
            match create.send().await {
                Ok(_) => {}
                // A crashed apply created it: it carries our tags (checked on the next apply).
                Err(e) if code(&e) == Some("DBInstanceAlreadyExists") => {}
                Err(e) => return Err(classify(e, "rds:CreateDBInstance", &id)),
            }
        }
    }
    let instance = describe(client, &id).await?.ok_or_else(|| {
        DriverError::retryable(format!("RDS instance {id} not found after create"))
    })?;
    Ok(Applied {
        outputs: outputs(&instance, &desired.name),
        inventory: vec![ObjectRef {
            api_version: "rds".into(),
            kind: "DBInstance".into(),
            namespace: None,
            name: id,
        }],
    })
}

/// Waits for the instance to be `available`.
pub async fn wait_available(
    client: &Client,
    desired: &DesiredResource,
    timeout: Duration,
    poll: Duration,
) -> Result<(), DriverError> {
    let id = physical_name(&desired.stack, &desired.name);
    let deadline = Instant::now() + timeout;
    loop {
        let status = describe(client, &id)
            .await?
            .and_then(|i| i.db_instance_status().map(str::to_string))
            .unwrap_or_default();
        match status.as_str() {
            "available" => return Ok(()),
            "failed" | "incompatible-parameters" | "incompatible-restore" | "storage-full" => {
                return Err(DriverError::permanent(format!(
                    "RDS instance {id} is {status}"
                )));
            }
            _ if Instant::now() >= deadline => {
                return Err(DriverError::retryable(format!(
                    "RDS instance {id} is `{status}`, not available after {}s",
                    timeout.as_secs()
                )));
            }
            _ => tokio::time::sleep(poll).await,
        }
    }
}

pub async fn observe(client: &Client, stack: &str) -> Result<Vec<ObservedResource>, DriverError> {
    let mut found = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .describe_db_instances()
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| classify(e, "rds:DescribeDBInstances", "the account"))?;
        for instance in page.db_instances() {
            let Some(address) = tracked_address(tag(instance), stack).map(str::to_string) else {
                continue;
            };
            let name = name_of(&address);
            let status = instance.db_instance_status().unwrap_or("");
            let (health, health_message) = match status {
                "available" => (Health::Ready, None),
                "failed" | "incompatible-parameters" | "storage-full" => {
                    (Health::Degraded, Some(format!("RDS instance is {status}")))
                }
                other => (
                    Health::Progressing,
                    Some(format!("RDS instance is {other}")),
                ),
            };
            let expected_version = instance.engine_version().and_then(|v| v.split('.').next());
            found.push(ObservedResource {
                address,
                kind: Kind::Database,
                live: live(instance, expected_version),
                outputs: outputs(instance, &name),
                name,
                inventory: vec![ObjectRef {
                    api_version: "rds".into(),
                    kind: "DBInstance".into(),
                    namespace: None,
                    name: instance.db_instance_identifier().unwrap_or("").to_string(),
                }],
                health,
                health_message,
            });
        }
        marker = page.marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    Ok(found)
}

/// Deletes the instance with a final snapshot (`<identifier>-final`); deletion protection,
/// which `protect` keeps on, is lifted first (the plan already required `--allow-destroy`).
pub async fn delete(client: &Client, id: &str) -> Result<(), DriverError> {
    let Some(_) = describe(client, id).await? else {
        return Ok(());
    };
    client
        .modify_db_instance()
        .db_instance_identifier(id)
        .deletion_protection(false)
        .apply_immediately(true)
        .send()
        .await
        .map_err(|e| classify(e, "rds:ModifyDBInstance", id))?;
    match client
        .delete_db_instance()
        .db_instance_identifier(id)
        .skip_final_snapshot(false)
        .final_db_snapshot_identifier(format!("{id}-final"))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some("DBInstanceNotFound") => Ok(()),
        Err(e) => Err(classify(e, "rds:DeleteDBInstance", id)),
    }
}
