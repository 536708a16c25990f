//! GPU pools as EKS managed node groups on the driver's `eks-cluster` (node role and subnets from
//! the driver's settings): scaling min/max (the desired size is left to the autoscaler),
//! capacity type, instance type, the NVIDIA AMI, the `platformd.dev/gpu-pool` label and the GPU
//! taint (so endpoints on the Kubernetes driver land on it), and Cluster Autoscaler tags,
//! including the scale-down time from `idle-shutdown-after`. Changes go through
//! UpdateNodegroupConfig; the planner already replaces a pool whose instance type changes.

use super::errors::{classify, code};
use super::{
    OWNERSHIP_KEYS, Settings, Tags, adoptable, expect_id, marked_as, name_of, owned_by,
    physical_name, tracked_address,
};
use crate::{Applied, DesiredResource, DriverError, Health, ObjectRef, ObservedResource, Outputs};
use aws_sdk_eks::Client;
use aws_sdk_eks::types::{
    AmiTypes, CapacityTypes, Nodegroup, NodegroupScalingConfig, Taint, TaintEffect,
    UpdateLabelsPayload, UpdateTaintsPayload,
};
use planner::model::{Capacity, GpuPoolSpec, Kind};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const POOL_LABEL: &str = "platformd.dev/gpu-pool";

/// The cluster, node role and subnets a pool needs, or what is missing.
fn placement(settings: &Settings) -> Result<(String, String, Vec<String>), DriverError> {
    let missing = |what: &str| {
        DriverError::permanent(format!(
            "the aws driver needs `{what}` to make GPU pools (EKS node groups)"
        ))
    };
    let cluster = settings
        .eks_cluster
        .clone()
        .ok_or_else(|| missing("eks-cluster"))?;
    let role = settings
        .node_role_arn
        .clone()
        .ok_or_else(|| missing("node-role-arn"))?;
    let subnets: Vec<String> = settings
        .subnets
        .as_deref()
        .ok_or_else(|| missing("subnets"))?
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    Ok((cluster, role, subnets))
}

fn capacity(pool: &GpuPoolSpec) -> &'static str {
    match pool.capacity {
        Capacity::Spot => "SPOT",
        Capacity::OnDemand => "ON_DEMAND",
    }
}

fn tags(desired: &DesiredResource, pool: &GpuPoolSpec, cluster: &str) -> BTreeMap<String, String> {
    let mut t = super::ownership_tags(desired);
    t.insert("k8s.io/cluster-autoscaler/enabled".into(), "true".into());
    t.insert(
        format!("k8s.io/cluster-autoscaler/{cluster}"),
        "owned".into(),
    );
    t.insert(
        format!("k8s.io/cluster-autoscaler/node-template/label/{POOL_LABEL}"),
        desired.name.clone(),
    );
    t.insert(
        "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu".into(),
        "true:NoSchedule".into(),
    );
    if let Some(idle) = &pool.idle_shutdown_after {
        t.insert(
            "k8s.io/cluster-autoscaler/node-template/autoscaling-options/scaledownunneededtime"
                .into(),
            idle.to_string(),
        );
    }
    t
}

fn to_json(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// The pool's size bounds as EKS takes them: a node group's maximum is at least 1, so a pool held
/// at `nodes min=0` (`max` 0, scaled down by the cost controller) keeps maximum 1 and desired 0.
fn bounds(pool: &GpuPoolSpec) -> (i32, i32, i32) {
    let min = i32::try_from(pool.nodes.min).unwrap_or(i32::MAX);
    let max = i32::try_from(pool.nodes.max).unwrap_or(i32::MAX);
    (min, max.max(1), max)
}

pub fn expected(desired: &DesiredResource, pool: &GpuPoolSpec, settings: &Settings) -> Value {
    let cluster = settings.eks_cluster.clone().unwrap_or_default();
    json!({
        "name": physical_name(&desired.stack, &desired.name),
        "cluster": cluster,
        "min": pool.nodes.min,
        "max": bounds(pool).1,
        "instance-types": [pool.instance_type],
        "capacity": capacity(pool),
        "labels": { POOL_LABEL: desired.name },
        "taints": [{ "key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE" }],
        "tags": to_json(&tags(desired, pool, &cluster)),
    })
}

fn live(group: &Nodegroup) -> Value {
    let scaling = group.scaling_config();
    let sorted = |m: Option<&HashMap<String, String>>| -> BTreeMap<String, String> {
        m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let taints: Vec<Value> = group
        .taints()
        .iter()
        .map(|t| {
            json!({
                "key": t.key().unwrap_or(""),
                "value": t.value().unwrap_or(""),
                "effect": t.effect().map(|e| e.as_str()).unwrap_or(""),
            })
        })
        .collect();
    json!({
        "name": group.nodegroup_name().unwrap_or(""),
        "cluster": group.cluster_name().unwrap_or(""),
        "min": scaling.and_then(|s| s.min_size()).unwrap_or(0),
        "max": scaling.and_then(|s| s.max_size()).unwrap_or(0),
        "instance-types": group.instance_types(),
        "capacity": group.capacity_type().map(|c| c.as_str()).unwrap_or(""),
        "labels": to_json(&sorted(group.labels())),
        "taints": taints,
        "tags": to_json(&sorted(group.tags())),
    })
}

fn outputs(name: &str, group: Option<&Nodegroup>) -> Outputs {
    let mut out = Outputs::new();
    out.insert("name".into(), name.into());
    out.insert("node-selector".into(), format!("{POOL_LABEL}={name}"));
    if let Some(arn) = group.and_then(|g| g.nodegroup_arn()) {
        out.insert("arn".into(), arn.to_string());
    }
    out
}

async fn describe(
    client: &Client,
    cluster: &str,
    name: &str,
) -> Result<Option<Nodegroup>, DriverError> {
    match client
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.nodegroup().cloned()),
        Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(classify(e, "eks:DescribeNodegroup", name)),
    }
}

/// One tag of a node group.
fn tag<'a>(group: &'a Nodegroup) -> impl Fn(&str) -> Option<&'a str> + 'a {
    |k| group.tags().and_then(|t| t.get(k)).map(String::as_str)
}

fn tags_of(group: &Nodegroup) -> Tags {
    group
        .tags()
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// `import`: the node group `id` (the name platformd gives the pool) on the driver's cluster is
/// tagged as `desired`'s; the apply that follows brings its scaling, labels and taint to the
/// declaration.
pub async fn adopt(
    client: &Client,
    settings: &Settings,
    desired: &DesiredResource,
    id: &str,
) -> Result<Vec<ObjectRef>, DriverError> {
    let (cluster, _, _) = placement(settings)?;
    let name = physical_name(&desired.stack, &desired.name);
    expect_id(id, &name, desired, "node group")?;
    let Some(group) = describe(client, &cluster, &name).await? else {
        return Err(DriverError::permanent(format!(
            "nothing to import for {}: no node group `{name}` on cluster {cluster}",
            desired.address
        )));
    };
    adoptable(
        &tags_of(&group),
        desired,
        &format!("node group `{name}` on cluster {cluster}"),
    )?;
    let arn = group.nodegroup_arn().unwrap_or_default();
    client
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(super::ownership_tags(desired).into_iter().collect()))
        .send()
        .await
        .map_err(|e| classify(e, "eks:TagResource", &name))?;
    Ok(vec![ObjectRef {
        api_version: "eks".into(),
        kind: "Nodegroup".into(),
        namespace: Some(cluster),
        name,
    }])
}

/// `removed`: platformd's tags come off the node group, which keeps its nodes.
pub async fn release(
    client: &Client,
    settings: &Settings,
    stack: &str,
    address: &str,
    name: &str,
) -> Result<(), DriverError> {
    let (cluster, _, _) = placement(settings)?;
    let Some(group) = describe(client, &cluster, name).await? else {
        return Ok(());
    };
    if !marked_as(&tags_of(&group), stack, address) {
        return Ok(());
    }
    client
        .untag_resource()
        .resource_arn(group.nodegroup_arn().unwrap_or_default())
        .set_tag_keys(Some(OWNERSHIP_KEYS.iter().map(|k| k.to_string()).collect()))
        .send()
        .await
        .map_err(|e| classify(e, "eks:UntagResource", name))?;
    Ok(())
}

pub async fn apply(
    client: &Client,
    settings: &Settings,
    desired: &DesiredResource,
    pool: &GpuPoolSpec,
) -> Result<Applied, DriverError> {
    let (cluster, role, subnets) = placement(settings)?;
    let name = physical_name(&desired.stack, &desired.name);
    let (min, max, ceiling) = bounds(pool);
    let labels: HashMap<String, String> = [(POOL_LABEL.to_string(), desired.name.clone())].into();
    let taint = Taint::builder()
        .key("nvidia.com/gpu")
        .value("true")
        .effect(TaintEffect::NoSchedule)
        .build();
    let tags: HashMap<String, String> = tags(desired, pool, &cluster).into_iter().collect();
    match describe(client, &cluster, &name).await? {
        Some(group) if !owned_by(tag(&group), desired) => {
            return Err(DriverError::permanent(format!(
                "the node group `{name}` on cluster {cluster} exists and platformd does not own it; platformd takes over nothing it did not make: adopt it with `import \"{}\" id=\"{name}\"`, or rename the pool",
                desired.address
            )));
        }
        Some(group) => {
            // The autoscaler owns the desired size; keep it within the new bounds.
            let current = group
                .scaling_config()
                .and_then(|s| s.desired_size())
                .unwrap_or(min);
            client
                .update_nodegroup_config()
                .cluster_name(&cluster)
                .nodegroup_name(&name)
                .scaling_config(
                    NodegroupScalingConfig::builder()
                        .min_size(min)
                        .max_size(max)
                        .desired_size(current.clamp(min, ceiling.max(min)))
                        .build(),
                )
                .labels(
                    UpdateLabelsPayload::builder()
                        .set_add_or_update_labels(Some(labels))
                        .build(),
                )
                .taints(
                    UpdateTaintsPayload::builder()
                        .add_or_update_taints(taint)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| classify(e, "eks:UpdateNodegroupConfig", &name))?;
            // Tags are rewritten only when they differ (a tag removed by hand).
            let current = group.tags().cloned().unwrap_or_default();
            let stale = tags.iter().any(|(k, v)| current.get(k) != Some(v));
            if let Some(arn) = group.nodegroup_arn().filter(|_| stale) {
                client
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| classify(e, "eks:TagResource", &name))?;
            }
        }
        None => {
            let created = client
                .create_nodegroup()
                .cluster_name(&cluster)
                .nodegroup_name(&name)
                .node_role(&role)
                .set_subnets(Some(subnets))
                .scaling_config(
                    NodegroupScalingConfig::builder()
                        .min_size(min)
                        .max_size(max)
                        .desired_size(min.max(if ceiling > 0 { 1 } else { 0 }).min(ceiling))
                        .build(),
                )
                .instance_types(&pool.instance_type)
                .capacity_type(CapacityTypes::from(capacity(pool)))
                .ami_type(AmiTypes::Al2X8664Gpu)
                .set_labels(Some(labels))
                .taints(taint)
                .set_tags(Some(tags))
                .send()
                .await;
            match created {
                Ok(_) => {}
                // A crashed apply created it: its tags are checked by the next apply.
                Err(e) if code(&e) == Some("ResourceInUseException") => {}
                Err(e) => return Err(classify(e, "eks:CreateNodegroup", &name)),
            }
        }
    }
    let group = describe(client, &cluster, &name).await?;
    Ok(Applied {
        outputs: outputs(&desired.name, group.as_ref()),
        inventory: vec![ObjectRef {
            api_version: "eks".into(),
            kind: "Nodegroup".into(),
            namespace: Some(cluster),
            name,
        }],
    })
}

pub async fn wait_active(
    client: &Client,
    settings: &Settings,
    desired: &DesiredResource,
    timeout: Duration,
    poll: Duration,
) -> Result<(), DriverError> {
    let (cluster, _, _) = placement(settings)?;
    let name = physical_name(&desired.stack, &desired.name);
    let deadline = Instant::now() + timeout;
    loop {
        let status = describe(client, &cluster, &name)
            .await?
            .and_then(|g| g.status().map(|s| s.as_str().to_string()))
            .unwrap_or_default();
        match status.as_str() {
            "ACTIVE" => return Ok(()),
            "CREATE_FAILED" | "DEGRADED" | "DELETE_FAILED" => {
                return Err(DriverError::permanent(format!(
                    "node group {name} is {status}"
                )));
            }
            _ if Instant::now() >= deadline => {
                return Err(DriverError::retryable(format!(
                    "node group {name} is `{status}`, not ACTIVE after {}s",
                    timeout.as_secs()
                )));
            }
            _ => tokio::time::sleep(poll).await,
        }
    }
}

/// One ListNodegroups (paginated) and a DescribeNodegroup per node group named like the stack's:
/// EKS has no list that returns configuration.
pub async fn observe(
    client: &Client,
    settings: &Settings,
    stack: &str,
) -> Result<Vec<ObservedResource>, DriverError> {
    let Some(cluster) = settings.eks_cluster.clone() else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_nodegroups()
            .cluster_name(&cluster)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| classify(e, "eks:ListNodegroups", &cluster))?;
        names.extend(
            page.nodegroups()
                .iter()
                .filter(|n| n.starts_with(&format!("{stack}-")))
                .cloned(),
        );
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let mut found = Vec::new();
    for name in names {
        let Some(group) = describe(client, &cluster, &name).await? else {
            continue;
        };
        let Some(address) = tracked_address(tag(&group), stack).map(str::to_string) else {
            continue;
        };
        let short = name_of(&address);
        let status = group
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let (health, health_message) = match status.as_str() {
            "ACTIVE" => (Health::Ready, None),
            "CREATE_FAILED" | "DEGRADED" | "DELETE_FAILED" => {
                (Health::Degraded, Some(format!("node group is {status}")))
            }
            other => (Health::Progressing, Some(format!("node group is {other}"))),
        };
        found.push(ObservedResource {
            address,
            kind: Kind::GpuPool,
            live: live(&group),
            outputs: outputs(&short, Some(&group)),
            name: short,
            inventory: vec![ObjectRef {
                api_version: "eks".into(),
                kind: "Nodegroup".into(),
                namespace: Some(cluster.clone()),
                name,
            }],
            health,
            health_message,
        });
    }
    Ok(found)
}

pub async fn delete(client: &Client, settings: &Settings, name: &str) -> Result<(), DriverError> {
    let Some(cluster) = settings.eks_cluster.clone() else {
        return Ok(());
    };
    match client
        .delete_nodegroup()
        .cluster_name(&cluster)
        .nodegroup_name(name)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(classify(e, "eks:DeleteNodegroup", name)),
    }
}
