//! Idle shutdown, as plain data: which resources the cost controller may scale down, what their
//! scaled-down form is, and how idleness is measured (the default utilisation queries). The
//! daemon decides *when* (it owns the clock and the metrics client); this module only says *what*.
//!
//! A scaled-down resource is an overlay on the desired state: the stack still declares
//! `replicas 2`, the store holds `replicas 0`, and plans against the store apply the same overlay
//! so the scale-down is neither drift nor a pending change. See `docs/COST.md`.

use crate::model::{Kind, UtilisationQuery};
use crate::snapshot::{ResourceSnapshot, SpecJson};
use serde_json::Value;
use std::time::Duration;

/// How long `r` may be idle before it is scaled down, when the cost controller may act on it.
pub fn idle_after(r: &ResourceSnapshot) -> Option<Duration> {
    if !matches!(r.kind, Kind::GpuPool | Kind::AiEndpoint) {
        return None;
    }
    let text = r.spec.value();
    if r.kind == Kind::AiEndpoint && text["runtime"] == "sagemaker" {
        return None;
    }
    let idle = text["idle-shutdown-after"].as_str()?;
    Some(Duration::from_secs(crate::units::duration_seconds(idle)))
}

/// `r` scaled down: an endpoint to 0 replicas (without its autoscaler, which cannot go to 0),
/// a GPU pool to its `nodes min`. The estimate follows. `None` when `r` cannot be scaled down or
/// already is at its floor.
pub fn scaled_down(r: &ResourceSnapshot, why: &str) -> Option<ResourceSnapshot> {
    let mut spec = r.spec.value();
    let factor = match r.kind {
        Kind::AiEndpoint => {
            let replicas = spec["replicas"].as_u64().unwrap_or(0);
            let autoscaled = spec.get("autoscale").is_some();
            if replicas == 0 && !autoscaled {
                return None;
            }
            spec["replicas"] = Value::from(0);
            if let Some(obj) = spec.as_object_mut() {
                obj.remove("autoscale");
            }
            0.0
        }
        Kind::GpuPool => {
            let min = spec["nodes"]["min"].as_u64().unwrap_or(0);
            let max = spec["nodes"]["max"].as_u64().unwrap_or(0);
            if max <= min {
                return None;
            }
            spec["nodes"]["max"] = Value::from(min);
            min as f64 / max as f64
        }
        _ => return None,
    };
    Some(ResourceSnapshot {
        spec: SpecJson::from_value(&spec),
        monthly_cost_usd: r.monthly_cost_usd * factor,
        scaled_down: Some(why.to_string()),
        ..r.clone()
    })
}

/// What plans and history say about a scale-down: `idle 2h13m, cost policy`.
pub fn scale_down_note(idle_for: Duration) -> String {
    format!("idle {}, cost policy", short_duration(idle_for))
}

/// `2h13m`, `45m`, `3d4h`, `30s`: two units at most.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, minutes) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// The utilisation query of `r`'s kind (the platform's override, else the default), with its
/// placeholders filled in.
pub fn query_for(
    r: &ResourceSnapshot,
    overrides: &std::collections::BTreeMap<Kind, UtilisationQuery>,
    stack: &str,
    namespace: &str,
) -> Option<UtilisationQuery> {
    let query = match overrides.get(&r.kind) {
        Some(q) => q.clone(),
        None => default_query(r)?,
    };
    let promql = query
        .promql
        .replace("{name}", &r.name)
        .replace("{stack}", stack)
        .replace("{namespace}", namespace);
    Some(UtilisationQuery { promql, ..query })
}

/// The gateway's request counters of an endpoint's route, which Envoy keeps whether or not the
/// endpoint has pods: requests sent to it, and requests that found no pod to go to (`{name}` is
/// the route, which Envoy Gateway's cluster for it is named after). The runtime's own counters
/// (`vllm:request_success_total`, …) vanish with its pods, so a query over them could never see
/// demand return to an endpoint scaled to zero. Two sums added, not one over a `__name__`
/// pattern: `rate` drops the name, and the two series would collide.
pub const GATEWAY_REQUESTS: &str = r#"sum(rate(envoy_cluster_upstream_rq_total{envoy_cluster_name=~"httproute/{namespace}/{name}/rule/.+"}[5m])) + sum(rate(envoy_cluster_upstream_cx_none_healthy{envoy_cluster_name=~"httproute/{namespace}/{name}/rule/.+"}[5m]))"#;

/// The default queries: the busiest GPU of a pool (DCGM exporter; idle at ≤ 5 %), and requests
/// per second reaching an endpoint's route at the AI gateway (idle at 0), whatever its runtime.
fn default_query(r: &ResourceSnapshot) -> Option<UtilisationQuery> {
    let (promql, idle_at_most) = match r.kind {
        Kind::GpuPool => (
            r#"max(DCGM_FI_DEV_GPU_UTIL{gpu_pool="{name}"})"#.to_string(),
            5.0,
        ),
        Kind::AiEndpoint => (GATEWAY_REQUESTS.to_string(), 0.0),
        _ => return None,
    };
    Some(UtilisationQuery {
        promql,
        idle_at_most,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DriftPolicy;

    fn resource(kind: Kind, spec: Value) -> ResourceSnapshot {
        ResourceSnapshot {
            kind,
            name: "x".into(),
            driver: "local".into(),
            team: "ml".into(),
            spec: SpecJson::from_value(&spec),
            depends_on: Vec::new(),
            protect: false,
            drift: DriftPolicy::Correct,
            ignore_changes: Vec::new(),
            monthly_cost_usd: 100.0,
            scaled_down: None,
            template: None,
            budget_monthly_usd: None,
        }
    }

    #[test]
    fn an_endpoint_scales_to_zero_without_its_autoscaler() {
        let r = resource(
            Kind::AiEndpoint,
            serde_json::json!({"runtime": "vllm", "replicas": 2, "autoscale": {"min": 1, "max": 4}, "idle-shutdown-after": "2h"}),
        );
        assert_eq!(idle_after(&r), Some(Duration::from_secs(7200)));
        let down = scaled_down(&r, "idle 2h, cost policy").unwrap();
        let spec = down.spec.value();
        assert_eq!(spec["replicas"], 0);
        assert!(spec.get("autoscale").is_none());
        assert_eq!(down.monthly_cost_usd, 0.0);
        assert_eq!(down.scaled_down.as_deref(), Some("idle 2h, cost policy"));
        assert!(
            scaled_down(&down, "again").is_none(),
            "already at its floor"
        );
    }

    #[test]
    fn a_pool_shrinks_to_its_minimum_and_its_estimate_follows() {
        let r = resource(
            Kind::GpuPool,
            serde_json::json!({"nodes": {"min": 1, "max": 4}, "idle-shutdown-after": "30m"}),
        );
        let down = scaled_down(&r, "idle").unwrap();
        assert_eq!(
            down.spec.value()["nodes"],
            serde_json::json!({"min": 1, "max": 1})
        );
        assert_eq!(down.monthly_cost_usd, 25.0);
    }

    #[test]
    fn sagemaker_endpoints_and_other_kinds_are_never_scaled_down() {
        let sm = resource(
            Kind::AiEndpoint,
            serde_json::json!({"runtime": "sagemaker", "replicas": 1, "idle-shutdown-after": "1h"}),
        );
        assert_eq!(idle_after(&sm), None);
        let svc = resource(Kind::Service, serde_json::json!({"replicas": 2}));
        assert_eq!(idle_after(&svc), None);
        assert!(scaled_down(&svc, "idle").is_none());
    }

    #[test]
    fn the_plan_of_a_scale_down_says_why_on_the_line_it_changes() {
        let mut prior = crate::Snapshot::empty("ml");
        let r = resource(
            Kind::AiEndpoint,
            serde_json::json!({"runtime": "vllm", "replicas": 2, "idle-shutdown-after": "2h"}),
        );
        prior.resources.insert("ai-endpoint/x".into(), r.clone());
        let mut desired = prior.clone();
        let note = scale_down_note(Duration::from_secs(2 * 3600 + 13 * 60));
        desired
            .resources
            .insert("ai-endpoint/x".into(), scaled_down(&r, &note).unwrap());
        let plan = crate::plan::plan(&prior, &desired, &Default::default());
        let text = crate::render::text(&plan, false);
        assert!(
            text.contains("~ replicas = 2 → 0 (idle 2h13m, cost policy)"),
            "{text}"
        );
        assert!(
            text.contains("will be updated in place (idle 2h13m, cost policy)"),
            "{text}"
        );
        // Back: the plan says it wakes.
        let back = crate::plan::plan(&desired, &prior, &Default::default());
        assert_eq!(back.resources[0].reason, "wakes from idle shutdown");
    }

    #[test]
    fn queries_fill_in_the_resource() {
        for runtime in ["vllm", "tgi", "triton"] {
            let r = resource(Kind::AiEndpoint, serde_json::json!({ "runtime": runtime }));
            let q = query_for(&r, &Default::default(), "acme", "platform").unwrap();
            assert_eq!(
                q.promql,
                r#"sum(rate(envoy_cluster_upstream_rq_total{envoy_cluster_name=~"httproute/platform/x/rule/.+"}[5m])) + sum(rate(envoy_cluster_upstream_cx_none_healthy{envoy_cluster_name=~"httproute/platform/x/rule/.+"}[5m]))"#,
                "{runtime}: the gateway's counters, which outlive the pods"
            );
        }
        assert_eq!(
            short_duration(Duration::from_secs(2 * 3600 + 13 * 60 + 5)),
            "2h13m"
        );
        assert_eq!(short_duration(Duration::from_secs(45)), "45s");
        assert_eq!(
            short_duration(Duration::from_secs(86_400 * 3 + 3600)),
            "3d1h"
        );
    }
}
