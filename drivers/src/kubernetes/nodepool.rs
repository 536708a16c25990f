//! A gpu-pool as a Karpenter `NodePool` (karpenter.sh/v1): nodes labelled
//! `platformd.dev/gpu-pool=<pool>` (what AI endpoints select on), the instance type and
//! capacity type (spot or on-demand) as requirements, the `nvidia.com/gpu` taint (endpoints
//! tolerate it), `nodes max` as the pool's GPU limit, and empty nodes consolidated after
//! `idle-shutdown-after` — the idle-GPU cost enforcer. The node class comes from the driver's
//! `node-class` setting (an `EC2NodeClass`, `default` when unset).

use crate::DesiredResource;
use crate::render::metadata;
use planner::model::GpuPoolSpec;
use serde_json::{Value, json};

pub const POOL_LABEL: &str = "platformd.dev/gpu-pool";

pub fn node_pool(d: &DesiredResource, pool: &GpuPoolSpec, node_class: &str) -> Value {
    let max_nodes = u64::from(pool.nodes.max);
    let instance_type = pool.instance_type.as_str();
    let gpus = planner::cost::gpus_per_instance(instance_type).unwrap_or(1);
    // Karpenter's capacity types are the language's names.
    let capacity = pool.capacity.as_str();
    let consolidate_after = match pool.idle_shutdown_after.as_deref() {
        None | Some("") => "Never",
        Some(after) => after,
    };
    let mut meta = metadata(d, &d.name, None);
    meta["labels"][POOL_LABEL] = json!(d.name);
    json!({
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": meta,
        "spec": {
            "template": {
                "metadata": { "labels": { POOL_LABEL: d.name, "platformd.dev/stack": d.stack } },
                "spec": {
                    "nodeClassRef": { "group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": node_class },
                    "requirements": [
                        { "key": "node.kubernetes.io/instance-type", "operator": "In", "values": [instance_type] },
                        { "key": "karpenter.sh/capacity-type", "operator": "In", "values": [capacity] },
                    ],
                    "taints": [{ "key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule" }],
                },
            },
            "limits": { "nvidia.com/gpu": (max_nodes * u64::from(gpus)).to_string() },
            "disruption": { "consolidationPolicy": "WhenEmpty", "consolidateAfter": consolidate_after },
        },
    })
}
