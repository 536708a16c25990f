//! The driver registry: builds the drivers a snapshot declares from their settings. Each
//! driver is behind its cargo feature; a build without it says which feature is missing.

use crate::Driver;
use planner::Snapshot;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "driver `{0}` is not available in this build yet; route these kinds to `local` for now"
    )]
    NotAvailable(String),
    #[error(
        "driver `{driver}` is not built into this platformd: rebuild with cargo feature `{feature}`"
    )]
    FeatureOff { driver: String, feature: String },
}

/// The drivers a snapshot declares, by name. A declared driver that no resource uses and this
/// build cannot make is left out rather than failing the apply.
pub fn build(snapshot: &Snapshot) -> Result<BTreeMap<String, Arc<dyn Driver>>, RegistryError> {
    build_with(snapshot, &BTreeMap::new())
}

/// [`build`], with `overrides` laid over the settings of the drivers the snapshot declares:
/// where a daemon that follows many stacks gives each stack its own credentials by reference
/// (a kubeconfig, an AWS profile). They never enter the snapshot, so plans and the store do
/// not hold them.
pub fn build_with(
    snapshot: &Snapshot,
    overrides: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<BTreeMap<String, Arc<dyn Driver>>, RegistryError> {
    let mut out: BTreeMap<String, Arc<dyn Driver>> = BTreeMap::new();
    for (name, declared) in &snapshot.drivers {
        match build_driver(name, declared, overrides) {
            Ok(driver) => {
                out.insert(name.clone(), driver);
            }
            Err(e) => {
                if snapshot.resources.values().any(|r| &r.driver == name) {
                    return Err(e);
                }
            }
        }
    }
    Ok(out)
}

/// One driver, from the settings a snapshot declares for it with `overrides` laid over them:
/// also the driver as it was set before a change of its settings, which removes what moved.
pub fn build_driver(
    name: &str,
    declared: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<Arc<dyn Driver>, RegistryError> {
    let merged;
    let settings = match overrides.get(name) {
        Some(extra) => {
            merged = declared
                .iter()
                .chain(extra.iter())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>();
            &merged
        }
        None => declared,
    };
    let driver = make(name, settings)?;
    // A testing knob: faults by a seeded schedule (`crate::faults`).
    Ok(
        match settings
            .get("fault-schedule")
            .and_then(|s| crate::faults::Schedule::parse(s))
        {
            Some(schedule) => {
                Arc::new(crate::faults::FaultyDriver::new(driver, schedule)) as Arc<dyn Driver>
            }
            None => driver,
        },
    )
}

/// The driver `name` names, built from its settings. A driver is built only if it has a
/// descriptor (`descriptors::find`): the planner checked the stack's settings against the same
/// declaration.
fn make(name: &str, settings: &BTreeMap<String, String>) -> Result<Arc<dyn Driver>, RegistryError> {
    let Some(descriptor) = descriptors::find(name) else {
        return Err(RegistryError::NotAvailable(name.to_string()));
    };
    match descriptor.driver {
        #[cfg(feature = "local")]
        "local" => Ok(Arc::new(crate::local::LocalDriver::from_settings(settings))),
        #[cfg(not(feature = "local"))]
        "local" => {
            let _ = settings;
            Err(RegistryError::FeatureOff {
                driver: name.into(),
                feature: "local".into(),
            })
        }
        #[cfg(feature = "kubernetes")]
        "kubernetes" => Ok(Arc::new(
            crate::kubernetes::KubernetesDriver::from_settings(settings),
        )),
        #[cfg(not(feature = "kubernetes"))]
        "kubernetes" => Err(RegistryError::FeatureOff {
            driver: name.into(),
            feature: "kubernetes".into(),
        }),
        #[cfg(feature = "aws")]
        "aws" => Ok(Arc::new(crate::aws::AwsDriver::from_settings(settings))),
        #[cfg(not(feature = "aws"))]
        "aws" => Err(RegistryError::FeatureOff {
            driver: name.into(),
            feature: "aws".into(),
        }),
        other => {
            let _ = settings;
            Err(RegistryError::NotAvailable(other.to_string()))
        }
    }
}
