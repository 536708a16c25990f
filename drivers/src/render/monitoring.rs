//! `monitoring { alert …; notify … }` → a prometheus-operator `PrometheusRule`
//! (`monitoring.coreos.com/v1`, field names as in the operator's CRD: `spec.groups[].rules[]`
//! with `alert`, `expr`, `for`, `labels`, `annotations`).
//!
//! Each rule carries `severity`, `team`, `platformd_address` and one routing label per notify
//! target (`slack_channel`, `pagerduty_service`, `opsgenie_team`, `email_to`), so an
//! Alertmanager route can send it on without knowing the stack. The queries follow the metric
//! names of the exporters a cluster usually runs (`docs/DRIVERS.md`, "Monitoring").

use super::metadata;
use crate::DesiredResource;
use planner::model::{Alert, AlertMetric, DatabaseEngine, Spec};
use serde_json::{Map, Value, json};

/// The rule object's name: `KIND-NAME-alerts`. Names are unique per kind only (a service and a
/// topic may both be `orders`), and every kind's rules are PrometheusRules, so the kind is part
/// of the name; otherwise two resources would overwrite one object.
pub fn alerts_name(desired: &DesiredResource) -> String {
    format!("{}-{}-alerts", desired.kind.as_str(), desired.name)
}

/// The rule document of `desired`, if it declares monitoring.
pub fn rules(desired: &DesiredResource, namespace: &str) -> Option<Value> {
    let monitoring = desired.spec.monitoring.as_ref()?;
    let mut routing = Map::new();
    for target in &monitoring.notify {
        let Some((scheme, to)) = target.split_once(':') else {
            continue;
        };
        let label = match scheme {
            "slack" => "slack_channel",
            "pagerduty" => "pagerduty_service",
            "opsgenie" => "opsgenie_team",
            "email" => "email_to",
            _ => continue,
        };
        let joined = match routing.get(label).and_then(Value::as_str) {
            Some(before) => format!("{before},{to}"),
            None => to.to_string(),
        };
        routing.insert(label.into(), joined.into());
    }
    let rules: Vec<Value> = monitoring
        .alerts
        .iter()
        .filter_map(|a| rule(desired, namespace, a, &routing))
        .collect();
    if rules.is_empty() {
        return None;
    }
    Some(json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(desired, &alerts_name(desired), Some(namespace)),
        "spec": {
            "groups": [{
                "name": format!("platformd.{}.{}", desired.kind.as_str(), desired.name),
                "rules": rules,
            }],
        },
    }))
}

fn rule(
    desired: &DesiredResource,
    namespace: &str,
    alert: &Alert,
    routing: &Map<String, Value>,
) -> Option<Value> {
    let metric = alert.metric.as_str();
    let above = alert.above;
    let expr = format!(
        "{} > {}",
        query(desired, namespace, alert.metric)?,
        number(above)
    );
    let mut labels = Map::new();
    labels.insert("severity".into(), alert.severity.as_str().into());
    labels.insert("team".into(), desired.team().into());
    labels.insert("platformd_address".into(), desired.address.clone().into());
    for (k, v) in routing {
        labels.insert(k.clone(), v.clone());
    }
    let unit = if alert.metric == AlertMetric::Backlog {
        " messages"
    } else {
        "%"
    };
    let mut annotations = json!({
        "summary": format!("{} {metric} above {}{unit}", desired.address, number(above)),
        "description": format!(
            "{} ({} team) has had {metric} above {}{unit} for {}.",
            desired.address,
            desired.team(),
            number(above),
            alert.for_
        ),
    });
    if let Some(runbook) = desired
        .spec
        .monitoring
        .as_ref()
        .and_then(|m| m.runbook.as_ref())
    {
        annotations["runbook_url"] = json!(runbook);
    }
    Some(json!({
        "alert": alert_name(&desired.name, metric),
        "expr": expr,
        "for": alert.for_,
        "labels": Value::Object(labels),
        "annotations": annotations,
    }))
}

/// `80`, `99.5`: no trailing `.0`.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// `checkout-api` + `cpu` → `CheckoutApiCpuHigh`.
fn alert_name(name: &str, metric: &str) -> String {
    let mut out = String::new();
    for word in name.split('-').chain([metric, "high"]) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// The PromQL of one metric of one resource (without the threshold), on the series the
/// exporters a cluster runs publish (`docs/DRIVERS.md`, "Monitoring"): cAdvisor and
/// kube-state-metrics for CPU, the kubelet for volumes, kafka-exporter for consumer groups and
/// topics, the application's (or vLLM's) `http_requests_total` for errors. `promtool test
/// rules` checks each against series of those shapes (`drivers/tests/alerts.rs`).
fn query(desired: &DesiredResource, namespace: &str, metric: AlertMetric) -> Option<String> {
    let name = &desired.name;
    // Pods by the names their controllers give them; exact patterns keep `orders` from
    // matching `orders-db`'s pods. A Deployment's are NAME-<replicaset hash>-<pod hash>; a
    // CloudNativePG cluster's NAME-<ordinal>, its volumes too; the Altinity operator's
    // chi-NAME-<cluster>-<shard>-<replica>-0, its volumes data-<pod>.
    let (pods, volumes) = match desired.fields() {
        Spec::Database(db) if db.engine == DatabaseEngine::Clickhouse => {
            let pods = format!(
                "chi-{name}-{}-[0-9]+-[0-9]+-0",
                crate::render::clickhouse::CLUSTER
            );
            let volumes = format!("data-{pods}");
            (pods, volumes)
        }
        Spec::Database(_) => (format!("{name}-[0-9]+"), format!("{name}-[0-9]+")),
        _ => (format!("{name}-[a-z0-9]+-[a-z0-9]{{5}}"), String::new()),
    };
    let scope = format!("namespace=\"{namespace}\",pod=~\"{pods}\"");
    Some(match (desired.fields(), metric) {
        (_, AlertMetric::Cpu) => format!(
            "100 * sum(rate(container_cpu_usage_seconds_total{{{scope},container!=\"\"}}[5m])) / sum(kube_pod_container_resource_requests{{{scope},resource=\"cpu\"}})"
        ),
        (Spec::Database(_), AlertMetric::Disk) => format!(
            "100 * max(1 - kubelet_volume_stats_available_bytes{{namespace=\"{namespace}\",persistentvolumeclaim=~\"{volumes}\"}} / kubelet_volume_stats_capacity_bytes{{namespace=\"{namespace}\",persistentvolumeclaim=~\"{volumes}\"}})"
        ),
        // Consumer lag from kafka-exporter: of every group on a topic, or of the pipeline's
        // own consumer group.
        (Spec::Topic(_), AlertMetric::Backlog) => {
            format!("sum(kafka_consumergroup_lag{{topic=\"{name}\"}})")
        }
        (Spec::Pipeline(p), AlertMetric::Backlog) => format!(
            "sum(kafka_consumergroup_lag{{consumergroup=\"{}\"}})",
            crate::render::kubernetes::consumer_group(desired, p)
        ),
        // A pipeline's errors are the records it dead-letters, as a share of what it reads.
        (Spec::Pipeline(p), AlertMetric::Errors) => {
            let dead_letters = topic_name(p.dead_letter_topic.as_deref()?);
            let source = topic_name(&p.source);
            let group = crate::render::kubernetes::consumer_group(desired, p);
            format!(
                "100 * sum(rate(kafka_topic_partition_current_offset{{topic=\"{dead_letters}\"}}[5m])) / sum(rate(kafka_consumergroup_current_offset{{consumergroup=\"{group}\",topic=\"{source}\"}}[5m]))"
            )
        }
        // vLLM's OpenAI server counts requests by status class (`5xx`) per pod.
        (Spec::AiEndpoint(_), AlertMetric::Errors) => format!(
            "100 * sum(rate(http_requests_total{{{scope},status=\"5xx\"}}[5m])) / sum(rate(http_requests_total{{{scope}}}[5m]))"
        ),
        (_, AlertMetric::Errors) => format!(
            "100 * sum(rate(http_requests_total{{namespace=\"{namespace}\",service=\"{name}\",code=~\"5..\"}}[5m])) / sum(rate(http_requests_total{{namespace=\"{namespace}\",service=\"{name}\"}}[5m]))"
        ),
        _ => return None,
    })
}

/// `topic/orders` → `orders`: the Kafka topic a topic resource makes.
fn topic_name(address: &str) -> &str {
    address.split_once('/').map_or(address, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_are_camel_case() {
        assert_eq!(alert_name("checkout-api", "cpu"), "CheckoutApiCpuHigh");
        assert_eq!(number(80.0), "80");
        assert_eq!(number(99.5), "99.5");
    }
}
