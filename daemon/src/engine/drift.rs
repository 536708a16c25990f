//! Drift: the world as the drivers observe it, compared with what the store says was applied,
//! on the fields each driver manages.

use super::{Engine, EngineError};
use drivers::ObservedResource;
use drivers::drift::managed_differences;
use planner::Snapshot;
use planner::model::{DriftPolicy, Kind};
use planner::plan::{DriftFinding, DriftStatus, FieldChange};
use std::collections::{BTreeMap, BTreeSet, HashMap};

impl Engine {
    /// Observes every driver for every kind it supports (one call per kind), and compares with
    /// the store: drifted, missing, and orphaned resources. `declared` (the current stack) keeps
    /// resources that are declared but not yet applied from being called orphans.
    pub async fn scan_drift(
        &self,
        stack: &str,
        declared: Option<&Snapshot>,
    ) -> Result<Vec<DriftFinding>, EngineError> {
        Ok(self.scan(stack, declared).await?.findings)
    }

    /// A drift scan that also records each applied resource's health (from what its driver
    /// observed; `missing` when not found) and returns the live documents.
    pub async fn scan(
        &self,
        stack: &str,
        declared: Option<&Snapshot>,
    ) -> Result<DriftScan, EngineError> {
        let stored = self.store.resources()?;
        let outputs = self.store.all_outputs()?;
        let mut observed: HashMap<String, (String, ObservedResource)> = HashMap::new();
        for (name, driver) in &self.drivers {
            let kinds: Vec<Kind> = Kind::ALL
                .into_iter()
                .filter(|k| driver.supports(*k))
                .collect();
            let found =
                driver
                    .observe(stack, &kinds)
                    .await
                    .map_err(|source| EngineError::Observe {
                        driver: name.clone(),
                        source,
                    })?;
            for o in found {
                observed.insert(o.address.clone(), (name.clone(), o));
            }
        }
        let mut findings = Vec::new();
        for (address, s) in &stored {
            let policy = s.snapshot.drift;
            if policy == DriftPolicy::Ignore {
                continue;
            }
            let Some(driver) = self.drivers.get(&s.snapshot.driver) else {
                continue;
            };
            match observed.get(address) {
                None => findings.push(DriftFinding {
                    address: address.clone(),
                    status: DriftStatus::Missing,
                    policy: Some(policy),
                    changed_paths: Vec::new(),
                    changes: Vec::new(),
                }),
                Some((_, o)) => {
                    // Compared with the outputs its producers have now, not the values wired
                    // when it was applied: a consumer left with an old URL is drift.
                    let rewired = super::rewired(&s.desired, &outputs);
                    let expected = driver
                        .expected(rewired.as_ref().unwrap_or(&s.desired))
                        .map_err(|source| EngineError::Observe {
                            driver: s.snapshot.driver.clone(),
                            source,
                        })?;
                    let ignored: Vec<String> = s
                        .snapshot
                        .ignore_changes
                        .iter()
                        .flat_map(|f| driver.live_paths(s.snapshot.kind, f))
                        .collect();
                    let mut diffs = managed_differences(&expected, &o.live, &ignored);
                    for d in &mut diffs {
                        d.path = document_path(&expected, &d.path);
                    }
                    if !diffs.is_empty() {
                        findings.push(DriftFinding {
                            address: address.clone(),
                            status: DriftStatus::Drifted,
                            policy: Some(policy),
                            changed_paths: diffs.iter().map(|d| d.path.clone()).collect(),
                            changes: diffs
                                .into_iter()
                                .map(|d| FieldChange {
                                    path: d.path,
                                    before: Some(d.expected),
                                    after: d.live,
                                    forces_replacement: None,
                                    known_after_apply: false,
                                })
                                .collect(),
                        });
                    }
                }
            }
        }
        let known: BTreeSet<&str> = stored.iter().map(|(a, _)| a.as_str()).collect();
        let mut orphans: Vec<&String> = observed
            .keys()
            .filter(|a| {
                !known.contains(a.as_str())
                    && !declared.is_some_and(|d| d.resources.contains_key(*a))
            })
            .collect();
        orphans.sort();
        for address in orphans {
            findings.push(DriftFinding {
                address: address.clone(),
                status: DriftStatus::Orphan,
                policy: None,
                changed_paths: Vec::new(),
                changes: Vec::new(),
            });
        }
        let mut health = Vec::new();
        let mut live = BTreeMap::new();
        for (address, _) in &stored {
            match observed.get(address) {
                Some((_, o)) => {
                    health.push((
                        address.clone(),
                        api_health(o.health),
                        o.health_message.clone(),
                    ));
                    live.insert(address.clone(), o.live.clone());
                }
                None => health.push((
                    address.clone(),
                    api::Health::Missing,
                    Some("not found by its driver".into()),
                )),
            }
        }
        self.store.record_health(&health)?;
        Ok(DriftScan { findings, live })
    }
}

/// What a drift scan found: findings, and the live documents of every applied resource found.
#[derive(Debug, Default)]
pub struct DriftScan {
    pub findings: Vec<DriftFinding>,
    pub live: BTreeMap<String, serde_json::Value>,
}

fn api_health(h: drivers::Health) -> api::Health {
    match h {
        drivers::Health::Ready => api::Health::Ready,
        drivers::Health::Progressing => api::Health::Progressing,
        drivers::Health::Degraded => api::Health::Degraded,
        drivers::Health::Missing => api::Health::Missing,
    }
}

/// `[1].spec.ports` → `Service/checkout-api: spec.ports`: names the document a path is in.
fn document_path(expected: &serde_json::Value, path: &str) -> String {
    let Some(rest) = path.strip_prefix('[') else {
        return path.to_string();
    };
    let Some((index, tail)) = rest.split_once(']') else {
        return path.to_string();
    };
    let Some(doc) = index.parse::<usize>().ok().and_then(|i| expected.get(i)) else {
        return path.to_string();
    };
    let kind = doc["kind"].as_str().unwrap_or("document");
    let name = doc["metadata"]["name"].as_str().unwrap_or("?");
    format!("{kind}/{name}: {}", tail.trim_start_matches('.'))
}
