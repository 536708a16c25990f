//! The cost controller's loop: on each utilisation tick, read every idle-shutdown candidate's
//! utilisation from the platform's metrics source, track how long it has been idle, scale down
//! what has been idle for its `idle-shutdown-after`, and wake what sees demand again.
//!
//! Safety rules (`docs/COST.md`): a failed or empty query never counts as idle (and restarts the
//! idle count); scale-downs happen only while the stack is synced and its sync windows are open;
//! a wake is always allowed.

use super::Reconciler;
use crate::ops::{IdleObservation, LifecycleReport};
use crate::utilisation::{Prometheus, Reading};
use api::{ScaledDownResource, SyncState};
use planner::model::Kind;
use std::time::Duration;

/// What one reading means for one candidate.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Busy, unknown, or idle for less than its threshold: forget or keep the idle count.
    Busy,
    NoData,
    IdleFor(Duration),
    ScaleDown(Duration),
    Wake,
    StaysDown,
}

/// The decision, pure: `since` is when the candidate was first seen idle (if it was).
fn verdict(
    reading: Reading,
    idle_at_most: f64,
    is_down: bool,
    since: Option<i64>,
    now: i64,
    threshold: Duration,
) -> Verdict {
    match (reading, is_down) {
        (Reading::Value(v), true) if v > idle_at_most => Verdict::Wake,
        (_, true) => Verdict::StaysDown,
        (Reading::NoData, false) => Verdict::NoData,
        (Reading::Value(v), false) if v > idle_at_most => Verdict::Busy,
        (Reading::Value(_), false) => {
            let idle_for = Duration::from_secs((now - since.unwrap_or(now)).max(0) as u64);
            if idle_for >= threshold {
                Verdict::ScaleDown(idle_for)
            } else {
                Verdict::IdleFor(idle_for)
            }
        }
    }
}

/// `GPU utilisation 3% (idle at ≤ 5%)`, `requests 0/s (idle at ≤ 0)`.
fn figure(kind: Kind, value: f64, idle_at_most: f64) -> String {
    match kind {
        Kind::GpuPool => format!("GPU utilisation {value}% (idle at ≤ {idle_at_most}%)"),
        _ => format!("requests {value}/s (idle at ≤ {idle_at_most})"),
    }
}

impl Reconciler {
    /// One look at every candidate's utilisation.
    pub(super) async fn utilisation_tick(&mut self) {
        let Some(endpoint) = self.options.metrics.clone() else {
            return;
        };
        // What is applied, not the last valid revision: one awaiting approval, held back by a
        // window or blocked by policy has not been accepted, and its queries are not run.
        let Some(snapshot) = self.applied_snapshot() else {
            return;
        };
        let queries = snapshot
            .metrics
            .as_ref()
            .map(|m| m.queries.clone())
            .unwrap_or_default();
        let now = self.options.clock.now().as_second();
        let (scaled, idle) = match (self.store().scaled_down(), self.store().idle_since()) {
            (Ok(s), Ok(i)) => (s, i),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot read the cost controller's records");
                return;
            }
        };
        // Where a resource's objects are, for `{namespace}`: its driver's namespace (the
        // operator's override first, as the driver reads them), else the stack's name, which
        // both the Kubernetes and the local driver default to.
        let namespace_of = |driver: &str| -> String {
            let of = |settings: Option<&std::collections::BTreeMap<String, String>>| {
                settings.and_then(|s| s.get("namespace")).cloned()
            };
            of(self.ops.driver_settings.get(driver))
                .or_else(|| of(snapshot.drivers.get(driver)))
                .unwrap_or_else(|| snapshot.stack.clone())
        };
        let prometheus = Prometheus::new(&endpoint);
        let mut problems = Vec::new();
        let mut to_scale = Vec::new();
        let mut to_wake = Vec::new();
        for (address, r) in &snapshot.resources {
            let Some(threshold) = planner::lifecycle::idle_after(r) else {
                continue;
            };
            let namespace = namespace_of(&r.driver);
            let Some(query) =
                planner::lifecycle::query_for(r, &queries, &snapshot.stack, &namespace)
            else {
                continue;
            };
            let is_down = scaled.iter().any(|s| &s.address == address);
            let since = idle.get(address).copied();
            // The idle count restarts; a store write only when there is one to forget.
            let forget = || {
                if since.is_some() {
                    let _ = self.store().clear_idle_since(address);
                }
            };
            let reading = match prometheus.query(&query.promql).await {
                Ok(reading) => reading,
                Err(e) => {
                    self.shared.metrics.utilisation_query_failures.inc();
                    problems.push(format!("{address}: {e}"));
                    forget();
                    continue;
                }
            };
            let v = verdict(reading, query.idle_at_most, is_down, since, now, threshold);
            tracing::debug!(address, ?reading, ?v, "utilisation");
            let value = match reading {
                Reading::Value(v) => v,
                Reading::NoData => f64::NAN,
            };
            let seen = figure(r.kind, value, query.idle_at_most);
            match v {
                Verdict::Busy => forget(),
                Verdict::NoData => {
                    problems.push(format!("{address}: no utilisation data"));
                    forget();
                }
                Verdict::IdleFor(_) if since.is_none() => {
                    let _ = self.store().set_idle_since(address, now);
                }
                Verdict::IdleFor(_) | Verdict::StaysDown => {}
                Verdict::ScaleDown(idle_for) => to_scale.push(IdleObservation {
                    address: address.clone(),
                    idle_for,
                    figure: seen,
                    now,
                }),
                Verdict::Wake => to_wake.push((address.clone(), seen)),
            }
        }
        let warning = (!problems.is_empty()).then(|| {
            format!(
                "utilisation unknown, nothing scaled down for it: {}",
                problems.join("; ")
            )
        });
        if let Some(w) = &warning {
            tracing::warn!(warning = %w, "cost controller");
        }
        self.shared
            .update(|s| s.utilisation_warning = warning.clone());
        for (address, seen) in to_wake {
            let why = format!("demand returned: {seen}");
            self.wake(&address, &why, "demand").await.ok();
        }
        if !to_scale.is_empty() {
            self.scale_down(to_scale, &snapshot).await;
        }
        self.publish_lifecycle();
    }

    /// The snapshot of the applied revision: the last valid one when it is the one applied
    /// (no copy), else read from the store.
    fn applied_snapshot(&self) -> Option<std::sync::Arc<planner::Snapshot>> {
        let applied = self.shared.status().applied_revision?;
        match &self.last_good {
            Some((revision, snapshot)) if *revision == applied => Some(snapshot.clone()),
            _ => self
                .store()
                .snapshot(&applied)
                .ok()
                .flatten()
                .map(std::sync::Arc::new),
        }
    }

    async fn scale_down(&mut self, idle: Vec<IdleObservation>, snapshot: &planner::Snapshot) {
        let state = self.shared.status().sync_state;
        if state != SyncState::Synced {
            tracing::info!(%state, "idle resources wait until the stack is synced");
            return;
        }
        if !self.options.clock.window_open(snapshot) {
            tracing::info!("idle resources wait for the sync window");
            return;
        }
        for observation in idle {
            match self.ops.scale_down(&observation).await {
                Ok(LifecycleReport::Applied { outcome, .. }) if outcome.complete() => {
                    let kind = observation.address.split('/').next().unwrap_or("");
                    self.shared.metrics.record_idle_shutdown(kind);
                    tracing::info!(
                        address = observation.address,
                        idle_for = %planner::lifecycle::short_duration(observation.idle_for),
                        figure = observation.figure,
                        "scaled down an idle resource"
                    );
                }
                Ok(LifecycleReport::Applied { outcome, .. }) => {
                    self.set_error(Some(format!(
                        "scaling down {} {}: {}",
                        observation.address,
                        outcome.status(),
                        outcome.summary()
                    )));
                }
                Ok(LifecycleReport::Unchanged(why)) => {
                    tracing::debug!(address = observation.address, why, "not scaled down");
                }
                Err(e) => self.set_error(Some(format!(
                    "cannot scale down {}: {e}",
                    observation.address
                ))),
            }
        }
        self.refresh_prior();
        self.refresh_counts();
    }

    /// Brings `address` back (and the pool it runs on); `trigger` labels the metric.
    pub(super) async fn wake(
        &mut self,
        address: &str,
        why: &str,
        trigger: &'static str,
    ) -> Result<String, super::LoopError> {
        let now = self.options.clock.now().as_second();
        let report = self.ops.wake(address, why, now).await;
        self.refresh_prior();
        self.refresh_counts();
        self.publish_lifecycle();
        match report? {
            LifecycleReport::Applied { outcome, .. } if outcome.complete() => {
                self.shared.metrics.record_wake(trigger);
                tracing::info!(address, why, "woke a scaled-down resource");
                Ok(format!("woke {address}: {}", outcome.summary()))
            }
            LifecycleReport::Applied { outcome, .. } => Err(self.fail(format!(
                "waking {address} {}: {}",
                outcome.status(),
                outcome.summary()
            ))),
            LifecycleReport::Unchanged(why) => Ok(why),
        }
    }

    /// The scaled-down resources into the status, this month's savings into the metrics.
    pub(super) fn publish_lifecycle(&self) {
        let store = self.store();
        let scaled: Vec<ScaledDownResource> = store
            .scaled_down()
            .unwrap_or_default()
            .into_iter()
            .map(|s| ScaledDownResource {
                address: s.address,
                since: s.since,
                note: s.note,
                figure: s.figure,
                monthly_usd_saved: s.monthly_usd_saved,
            })
            .collect();
        let idle = store.idle_since().unwrap_or_default().into_iter().collect();
        let now = self.options.clock.now();
        if let Ok(savings) = store.savings(month_start(now), now.as_second()) {
            self.shared.metrics.set_savings(&savings);
        }
        self.shared.update(|s| {
            s.scaled_down = scaled;
            s.idle_since = idle;
        });
    }
}

/// The first second of `now`'s calendar month, UTC.
pub fn month_start(now: jiff::Timestamp) -> i64 {
    let zoned = now.to_zoned(jiff::tz::TimeZone::UTC);
    zoned
        .first_of_month()
        .and_then(|z| z.start_of_day())
        .map_or(now.as_second(), |z| z.timestamp().as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn idle_is_counted_from_the_first_idle_look_and_acted_on_at_the_threshold() {
        let idle = Reading::Value(0.0);
        assert_eq!(
            verdict(idle, 0.0, false, None, 1000, HOUR),
            Verdict::IdleFor(Duration::ZERO)
        );
        assert_eq!(
            verdict(idle, 0.0, false, Some(1000), 1000 + 3599, HOUR),
            Verdict::IdleFor(Duration::from_secs(3599))
        );
        assert_eq!(
            verdict(idle, 0.0, false, Some(1000), 1000 + 3600, HOUR),
            Verdict::ScaleDown(HOUR)
        );
    }

    #[test]
    fn traffic_or_no_data_never_scales_down_and_demand_wakes() {
        assert_eq!(
            verdict(Reading::Value(0.2), 0.0, false, Some(0), 99_999, HOUR),
            Verdict::Busy
        );
        assert_eq!(
            verdict(Reading::NoData, 0.0, false, Some(0), 99_999, HOUR),
            Verdict::NoData
        );
        assert_eq!(
            verdict(Reading::Value(4.0), 5.0, true, None, 0, HOUR),
            Verdict::StaysDown
        );
        assert_eq!(
            verdict(Reading::NoData, 0.0, true, None, 0, HOUR),
            Verdict::StaysDown
        );
        assert_eq!(
            verdict(Reading::Value(0.5), 0.0, true, None, 0, HOUR),
            Verdict::Wake
        );
    }

    #[test]
    fn months_start_on_the_first_at_midnight_utc() {
        let now: jiff::Timestamp = "2026-11-28T22:15:00Z".parse().unwrap();
        let start: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        assert_eq!(month_start(now), start.as_second());
    }
}
