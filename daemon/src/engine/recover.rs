//! Recovery after a crash: every intent without a result is closed by observing the world.

use super::{Engine, EngineError};
use crate::store::{IntentResult, JournalAction};
use drivers::drift::managed_differences;
use drivers::{Applied, ObservedResource};
use planner::model::Kind;
use std::collections::{BTreeMap, BTreeSet, HashMap};

const ABANDONED: &str = "interrupted before the driver call completed; re-planned";

impl Engine {
    /// Closes every unfinished intent left by a crash, by observing the world. Returns how many
    /// intents were found.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let intents = self.store.open_intents()?;
        if !intents.is_empty() {
            tracing::warn!(
                count = intents.len(),
                "recovering unfinished driver calls from an interrupted apply"
            );
        }
        // One observe per driver, for the kinds involved.
        let mut by_driver: BTreeMap<String, (String, BTreeSet<Kind>)> = BTreeMap::new();
        for i in &intents {
            if let Some(d) = &i.desired {
                let e = by_driver
                    .entry(i.driver.clone())
                    .or_insert_with(|| (d.desired.stack.clone(), BTreeSet::new()));
                e.1.insert(d.desired.kind);
            }
        }
        let mut observed: HashMap<(String, String), ObservedResource> = HashMap::new();
        for (driver_name, (stack, kinds)) in &by_driver {
            let driver = self.driver(driver_name)?;
            let kinds: Vec<Kind> = kinds.iter().copied().collect();
            let found =
                driver
                    .observe(stack, &kinds)
                    .await
                    .map_err(|source| EngineError::Observe {
                        driver: driver_name.clone(),
                        source,
                    })?;
            for o in found {
                observed.insert((driver_name.clone(), o.address.clone()), o);
            }
        }
        for intent in &intents {
            let store = &self.store;
            let live = observed.get(&(intent.driver.clone(), intent.address.clone()));
            match (intent.action, &intent.desired) {
                // Deleted, or released (no longer found as platformd's): done.
                (JournalAction::Delete | JournalAction::Forget, _) if live.is_none() => {
                    store.journal_deleted(intent.id, &intent.address)?
                }
                (
                    JournalAction::Create
                    | JournalAction::Update
                    | JournalAction::Replace
                    | JournalAction::Import,
                    Some(stored),
                ) => {
                    let matches = match (live, self.drivers.get(&intent.driver)) {
                        (Some(o), Some(d)) => d
                            .expected(&stored.desired)
                            .map(|exp| managed_differences(&exp, &o.live, &[]).is_empty())
                            .unwrap_or(false),
                        _ => false,
                    };
                    if matches {
                        let applied = live
                            .map(|o| Applied {
                                outputs: o.outputs.clone(),
                                inventory: o.inventory.clone(),
                            })
                            .unwrap_or_default();
                        let revision = store
                            .history()?
                            .into_iter()
                            .find(|a| a.id == intent.apply_id)
                            .map(|a| a.revision)
                            .unwrap_or_default();
                        store.journal_applied(
                            intent.id,
                            intent.apply_id,
                            &revision,
                            stored,
                            &applied,
                        )?;
                        tracing::info!(resource = %intent.address, "recovered: the interrupted call had completed");
                    } else {
                        store.journal_failed(
                            intent.id,
                            IntentResult::Abandoned,
                            &intent.address,
                            ABANDONED,
                        )?;
                    }
                }
                _ => store.journal_failed(
                    intent.id,
                    IntentResult::Abandoned,
                    &intent.address,
                    ABANDONED,
                )?,
            }
        }
        self.store.mark_interrupted()?;
        Ok(intents.len())
    }
}
