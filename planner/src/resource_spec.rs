//! A resource's canonical spec, typed: what drivers receive.
//!
//! The snapshot keeps each resource's canonical spec as compact JSON text (`snapshot.rs`: small,
//! compared as text, shown in plans). Drivers do not read that text by key: the engine turns it
//! into a [`ResourceSpec`] once, by the resource's kind, and every renderer matches on the
//! kind's struct. A field a renderer does not read is a field the compiler shows unused, not a
//! key silently missed; a default is the planner's, decided once when the stack was decoded.
//!
//! Serialized, a `ResourceSpec` is the canonical text again, key for key
//! (`tests::the_typed_spec_is_the_canonical_text_again`), so the store can keep what a driver
//! was given and read it back.

use crate::model::{DriftPolicy, EnvValue, Kind, Monitoring, Spec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A resource's canonical spec: the envelope every kind shares around the kind's own fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceSpec {
    pub team: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The kind's own fields, members of the same object when serialized.
    #[serde(flatten)]
    pub fields: Spec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,
    pub lifecycle: LifecycleSpec,
}

/// `protect`, `drift` and `ignore-changes` as decided for the resource (platform defaults
/// applied).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LifecycleSpec {
    #[serde(default)]
    pub protect: bool,
    #[serde(default)]
    pub drift: DriftPolicy,
    #[serde(default)]
    pub ignore_changes: Vec<String>,
}

/// What every kind's canonical spec has besides its own fields.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Envelope {
    #[serde(default)]
    team: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    monitoring: Option<Monitoring>,
    #[serde(default)]
    lifecycle: LifecycleSpec,
}

/// An output of another resource that a spec uses: the environment variable (or the
/// ClickHouse backup's bucket) it becomes, and where the value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire<'a> {
    /// The key of the wired value a driver receives (`DesiredResource::wired`).
    pub env: &'a str,
    pub address: String,
    pub output: &'a str,
}

/// The wired key under which a ClickHouse backup receives its bucket's name.
pub const BACKUP_BUCKET_WIRE: &str = "BACKUP_BUCKET";
/// The wired key under which a ClickHouse backup receives its bucket's region.
pub const BACKUP_REGION_WIRE: &str = "BACKUP_REGION";
/// The wired key under which a Triton endpoint receives its model repository bucket's name.
pub const MODEL_REPOSITORY_WIRE: &str = "MODEL_REPOSITORY_BUCKET";

impl Wire<'_> {
    /// Where the wire is written in the canonical spec (`env.DATABASE_URL`, `backup.bucket`):
    /// the path a plan shows its value at.
    pub fn path(&self) -> String {
        if self.env == BACKUP_BUCKET_WIRE {
            "backup.bucket".to_string()
        } else if self.env == BACKUP_REGION_WIRE {
            "backup.region".to_string()
        } else if self.env == MODEL_REPOSITORY_WIRE {
            "model-repository.bucket".to_string()
        } else {
            format!("env.{}", self.env)
        }
    }
}

impl ResourceSpec {
    /// Reads a canonical spec of `kind` (a snapshot's text, or what the store kept).
    pub fn from_value(kind: Kind, value: &serde_json::Value) -> Result<ResourceSpec, SpecError> {
        let error = |source: serde_json::Error| SpecError {
            kind,
            message: source.to_string(),
        };
        let envelope = Envelope::deserialize(value).map_err(error)?;
        let fields = match kind {
            Kind::Service => Spec::Service(Deserialize::deserialize(value).map_err(error)?),
            Kind::Database => Spec::Database(Deserialize::deserialize(value).map_err(error)?),
            Kind::Bucket => Spec::Bucket(Deserialize::deserialize(value).map_err(error)?),
            Kind::Topic => Spec::Topic(Deserialize::deserialize(value).map_err(error)?),
            Kind::Pipeline => Spec::Pipeline(Deserialize::deserialize(value).map_err(error)?),
            Kind::GpuPool => Spec::GpuPool(Deserialize::deserialize(value).map_err(error)?),
            Kind::AiEndpoint => Spec::AiEndpoint(Deserialize::deserialize(value).map_err(error)?),
            Kind::LlmQuota => Spec::LlmQuota(Deserialize::deserialize(value).map_err(error)?),
            Kind::Job => Spec::Job(Deserialize::deserialize(value).map_err(error)?),
        };
        Ok(ResourceSpec {
            team: envelope.team,
            labels: envelope.labels,
            fields,
            monitoring: envelope.monitoring,
            lifecycle: envelope.lifecycle,
        })
    }

    /// [`ResourceSpec::from_value`] from the canonical text.
    pub fn parse(kind: Kind, text: &str) -> Result<ResourceSpec, SpecError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| SpecError {
            kind,
            message: e.to_string(),
        })?;
        ResourceSpec::from_value(kind, &value)
    }

    /// The environment the resource's workload gets (services, pipelines, jobs, endpoints).
    pub fn env(&self) -> Option<&BTreeMap<String, EnvValue>> {
        match &self.fields {
            Spec::Service(s) => Some(&s.env),
            Spec::Pipeline(p) => Some(&p.env),
            Spec::Job(j) => Some(&j.env),
            Spec::AiEndpoint(e) => Some(&e.env),
            _ => None,
        }
    }

    /// Every output of another resource this spec is wired to, in a stable order: its
    /// environment's `from=` values, then a ClickHouse backup's bucket name (which the backup
    /// job receives as [`BACKUP_BUCKET_WIRE`]).
    pub fn wires(&self) -> Vec<Wire<'_>> {
        let mut wires: Vec<Wire<'_>> = self
            .env()
            .into_iter()
            .flatten()
            .filter_map(|(env, value)| match value {
                EnvValue::From { address, output } => Some(Wire {
                    env,
                    address: address.clone(),
                    output,
                }),
                _ => None,
            })
            .collect();
        if let Spec::Database(db) = &self.fields
            && let Some(backup) = &db.backup
        {
            wires.push(Wire {
                env: BACKUP_BUCKET_WIRE,
                address: format!("{}/{}", Kind::Bucket, backup.bucket),
                output: "name",
            });
            wires.push(Wire {
                env: BACKUP_REGION_WIRE,
                address: format!("{}/{}", Kind::Bucket, backup.bucket),
                output: "region",
            });
        }
        if let Spec::AiEndpoint(e) = &self.fields
            && let Some(repository) = &e.model_repository
        {
            wires.push(Wire {
                env: MODEL_REPOSITORY_WIRE,
                address: format!("{}/{}", Kind::Bucket, repository.bucket),
                output: "name",
            });
        }
        wires
    }
}

/// A canonical spec that does not read as its kind: a store written by a platformd whose specs
/// had other fields, or a hand-made document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored spec of a {kind} does not read as one: {message}")]
pub struct SpecError {
    pub kind: Kind,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typed_spec_is_the_canonical_text_again() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-state-example");
        let analysis = crate::analyze_dir(&dir).expect("the example reads");
        let snapshot = analysis.snapshot.expect("the example plans");
        assert!(snapshot.resources.len() > 10);
        let mut kinds = std::collections::BTreeSet::new();
        for (address, r) in &snapshot.resources {
            let typed = ResourceSpec::parse(r.kind, r.spec.as_str())
                .unwrap_or_else(|e| panic!("{address}: {e}"));
            let again = serde_json::to_string(&typed).unwrap();
            assert_eq!(again, r.spec.as_str(), "{address}");
            kinds.insert(r.kind);
        }
        // Every kind the example has went through both ways.
        assert!(kinds.len() >= 8, "{kinds:?}");
    }

    #[test]
    fn a_spec_of_another_kind_is_refused_with_the_kind() {
        let e = ResourceSpec::parse(Kind::Topic, r#"{"team":"web","image":"x"}"#).unwrap_err();
        assert_eq!(e.kind, Kind::Topic);
        assert!(e.message.contains("partitions"), "{}", e.message);
    }

    #[test]
    fn wires_name_the_outputs_a_spec_uses() {
        let spec = ResourceSpec::parse(
            Kind::Service,
            r#"{"team":"web","image":"a","replicas":1,"resources":{"cpu":"1","memory":"1Gi"},
               "env":{"A":"x","DB":{"from":"database/orders.url"},"K":{"secret":"vault:k"}},
               "lifecycle":{"protect":false,"drift":"correct","ignore-changes":[]}}"#,
        )
        .unwrap();
        let wires = spec.wires();
        assert_eq!(wires[0].path(), "env.DB");
        assert_eq!(
            wires,
            vec![Wire {
                env: "DB",
                address: "database/orders".into(),
                output: "url"
            }]
        );
    }
}
