//! The daemon's Prometheus metrics (all `platformd_` prefixed), on the `prometheus-client`
//! crate; `/metrics` serves the OpenMetrics text encoding.

use api::ApplyReason;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub driver: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    pub team: String,
    pub kind: String,
}

type CostGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

pub struct Metrics {
    registry: Registry,
    pub revisions_seen: Counter,
    revisions_applied: Counter,
    pub revisions_invalid: Counter,
    pub fetch_failures: Counter,
    /// Reads of the source (polls, webhooks, file events), successful or not.
    pub source_reads: Counter,
    pub drift_findings: Gauge,
    last_successful_sync: Gauge,
    apply_outcomes: Family<OutcomeLabels, Counter>,
    reconcile_duration: Histogram,
    cost: Family<CostLabels, CostGauge>,
    idle_shutdowns: Family<KindLabels, Counter>,
    wakes: Family<TriggerLabels, Counter>,
    pub utilisation_query_failures: Counter,
    savings: Family<CostLabels, CostGauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    trigger: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::in_registry(Registry::default())
    }

    /// The metrics of one stack of a daemon that follows many: every sample labelled
    /// `stack="<name>"`.
    pub fn for_stack(name: &str) -> Metrics {
        Metrics::in_registry(Registry::with_labels(std::iter::once((
            std::borrow::Cow::Borrowed("stack"),
            std::borrow::Cow::Owned(name.to_string()),
        ))))
    }

    fn in_registry(mut registry: Registry) -> Metrics {
        let revisions_seen = Counter::default();
        let revisions_applied = Counter::default();
        let revisions_invalid = Counter::default();
        let fetch_failures = Counter::default();
        let source_reads = Counter::default();
        let drift_findings = Gauge::default();
        let last_successful_sync = Gauge::default();
        let apply_outcomes = Family::<OutcomeLabels, Counter>::default();
        let reconcile_duration = Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0, 60.0]);
        let cost = Family::<CostLabels, CostGauge>::default();
        let idle_shutdowns = Family::<KindLabels, Counter>::default();
        let wakes = Family::<TriggerLabels, Counter>::default();
        let utilisation_query_failures = Counter::default();
        let savings = Family::<CostLabels, CostGauge>::default();
        registry.register(
            "platformd_idle_shutdowns",
            "Resources the cost controller scaled down for being idle, by kind",
            idle_shutdowns.clone(),
        );
        registry.register(
            "platformd_wakes",
            "Scaled-down resources brought back, by trigger (operator, demand)",
            wakes.clone(),
        );
        registry.register(
            "platformd_utilisation_query_failures",
            "Utilisation queries that failed (nothing is scaled down on a failure)",
            utilisation_query_failures.clone(),
        );
        registry.register(
            "platformd_idle_savings_usd",
            "What idle shutdown saved this calendar month (UTC), by team and kind",
            savings.clone(),
        );
        registry.register(
            "platformd_cost_monthly_usd",
            "Monthly cost estimate of the revision in force, by team and kind",
            cost.clone(),
        );
        registry.register(
            "platformd_revisions_seen",
            "Revisions seen on the source",
            revisions_seen.clone(),
        );
        registry.register(
            "platformd_revisions_applied",
            "Revisions applied in full (applies and rollbacks; not drift corrections)",
            revisions_applied.clone(),
        );
        registry.register(
            "platformd_revisions_invalid",
            "Revisions rejected as invalid",
            revisions_invalid.clone(),
        );
        registry.register(
            "platformd_fetch_failures",
            "Failed fetches of the source",
            fetch_failures.clone(),
        );
        registry.register(
            "platformd_source_reads",
            "Reads of the source: polls, webhooks and file events",
            source_reads.clone(),
        );
        registry.register(
            "platformd_drift_findings",
            "Findings of the last drift scan",
            drift_findings.clone(),
        );
        registry.register(
            "platformd_last_successful_sync_timestamp_seconds",
            "When the last apply succeeded",
            last_successful_sync.clone(),
        );
        registry.register(
            "platformd_apply_outcomes",
            "Resource applies by driver and outcome",
            apply_outcomes.clone(),
        );
        registry.register(
            "platformd_reconcile_duration_seconds",
            "Time from a new revision to the end of its apply",
            reconcile_duration.clone(),
        );
        Metrics {
            registry,
            revisions_seen,
            revisions_applied,
            revisions_invalid,
            fetch_failures,
            source_reads,
            drift_findings,
            last_successful_sync,
            apply_outcomes,
            reconcile_duration,
            cost,
            idle_shutdowns,
            wakes,
            utilisation_query_failures,
            savings,
        }
    }

    /// The estimate of the revision in force, by team and kind (replacing the last one, so a
    /// team or kind that is gone stops being reported).
    pub fn set_cost(&self, snapshot: &planner::Snapshot) {
        // Summed first: a labelled gauge per resource was 10,000 label sets on the way to a plan.
        let mut sums: std::collections::BTreeMap<(&str, &str), f64> = Default::default();
        for r in snapshot.resources.values() {
            *sums.entry((r.team.as_str(), r.kind.as_str())).or_default() += r.monthly_cost_usd;
        }
        self.cost.clear();
        for ((team, kind), usd) in sums {
            self.cost
                .get_or_create(&CostLabels {
                    team: team.to_string(),
                    kind: kind.to_string(),
                })
                .set(usd);
        }
    }

    pub fn record_idle_shutdown(&self, kind: &str) {
        self.idle_shutdowns
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn record_wake(&self, trigger: &'static str) {
        self.wakes.get_or_create(&TriggerLabels { trigger }).inc();
    }

    /// This month's savings by team and kind (replacing the last figures).
    pub fn set_savings(&self, savings: &[crate::store::Saving]) {
        self.savings.clear();
        for s in savings {
            let gauge = self.savings.get_or_create(&CostLabels {
                team: s.team.clone(),
                kind: s.kind.clone(),
            });
            gauge.set(gauge.get() + s.usd);
        }
    }

    /// A revision is in force after an apply for `reason`: count it (drift corrections do not
    /// apply a revision) and stamp the time.
    pub fn record_sync(&self, reason: ApplyReason) {
        if reason != ApplyReason::DriftCorrect {
            self.revisions_applied.inc();
        }
        self.last_successful_sync.set(crate::store::now());
    }

    pub fn record_outcome(&self, driver: &str, outcome: &'static str) {
        self.apply_outcomes
            .get_or_create(&OutcomeLabels {
                driver: driver.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn observe_reconcile(&self, d: Duration) {
        self.reconcile_duration.observe(d.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Several stacks' expositions as one: each metric family once (its `# HELP`, `# TYPE` and
/// `# UNIT` from the first exposition that has it), then every stack's samples of it, and one
/// `# EOF`. The samples carry their `stack` label already ([`Metrics::for_stack`]).
pub fn merge(texts: &[String]) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut families: std::collections::HashMap<String, (Vec<String>, Vec<String>)> =
        Default::default();
    for text in texts {
        let mut current: Option<String> = None;
        for line in text.lines() {
            if line == "# EOF" || line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut words = rest.splitn(3, ' ');
                let (Some(_keyword), Some(name)) = (words.next(), words.next()) else {
                    continue;
                };
                let entry = families.entry(name.to_string()).or_insert_with(|| {
                    order.push(name.to_string());
                    Default::default()
                });
                if current.as_deref() != Some(name) {
                    current = Some(name.to_string());
                }
                if !entry.0.iter().any(|l| l == line) {
                    entry.0.push(line.to_string());
                }
            } else if let Some(entry) = current.as_ref().and_then(|n| families.get_mut(n)) {
                entry.1.push(line.to_string());
            }
        }
    }
    let mut out = String::new();
    for name in order {
        if let Some((meta, samples)) = families.get(&name) {
            for line in meta.iter().chain(samples) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_metrics_merge_into_one_exposition_with_each_family_once() {
        let a = Metrics::for_stack("prod");
        let b = Metrics::for_stack("staging");
        a.record_outcome("local", "ok");
        b.record_outcome("local", "ok");
        b.record_outcome("local", "ok");
        let merged = merge(&[a.render(), b.render()]);
        assert_eq!(
            merged.matches("# TYPE platformd_apply_outcomes").count(),
            1,
            "{merged}"
        );
        assert!(merged.contains("stack=\"prod\""), "{merged}");
        assert!(merged.contains("stack=\"staging\""), "{merged}");
        assert_eq!(merged.matches("# EOF").count(), 1);
        assert!(merged.ends_with("# EOF\n"));
        // Samples stay under their family.
        let type_at = merged.find("# TYPE platformd_apply_outcomes").unwrap();
        let sample_at = merged.find("platformd_apply_outcomes_total{").unwrap();
        assert!(sample_at > type_at);
    }
}
