//! A gpu-pool as a Karpenter `NodePool` (karpenter.sh/v1): nodes labelled
//! `platformd.dev/gpu-pool=<pool>` (what AI endpoints select on), the instance type and
//! capacity type (spot or on-demand) as requirements, the `nvidia.com/gpu` taint (endpoints
//! tolerate it), `nodes max` as the pool's GPU limit, and empty nodes consolidated after
//! `idle-shutdown-after` — the idle-GPU cost enforcer. The node class comes from the driver's
//! `node-class` setting (an `EC2NodeClass`, `default` when unset).

use crate::DesiredResource;
use crate::render::{metadata, str_at};
use serde_json::{Value, json};

pub const POOL_LABEL: &str = "platformd.dev/gpu-pool";

pub fn node_pool(d: &DesiredResource, node_class: &str) -> Value {
    let max_nodes = d.spec["nodes"]["max"].as_u64().unwrap_or(1);
    let instance_type = str_at(&d.spec, "instance-type");
    let gpus = planner::cost::gpus_per_instance(instance_type).unwrap_or(1);
    let capacity = match str_at(&d.spec, "capacity") {
        "spot" => "spot",
        _ => "on-demand",
    };
    let consolidate_after = match str_at(&d.spec, "idle-shutdown-after") {
        "" => "Never",
        after => after,
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
