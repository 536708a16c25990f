//! The driver contract and its implementations.
//!
//! A driver makes resources of some kinds exist in one system (a directory, a Kubernetes
//! cluster, an AWS account). The contract (`docs/DRIVERS.md`) is built for remote systems:
//!
//! - async throughout; a driver is shared by concurrent apply tasks (`Send + Sync`);
//! - [`Driver::observe`] lists everything the driver owns for a set of kinds in a few calls
//!   (one list per kind, filtered by the ownership label), never one call per resource;
//! - [`Driver::apply`] is idempotent (create-or-update to the desired state, safe to repeat
//!   after a crash) and returns the resource's outputs and inventory (the objects it made,
//!   which the store keeps so removal deletes exactly those);
//! - [`Driver::wait_ready`] waits for slow operations with a timeout;
//! - errors say whether they are retryable ([`DriverError::retryable`]).

#[cfg(feature = "aws")]
pub mod aws;
pub mod drift;
pub mod faults;
pub mod fence;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
#[cfg(feature = "local")]
pub mod local;
pub mod registry;
pub mod render;

use async_trait::async_trait;
use planner::model::{Kind, Spec};
use planner::resource_spec::ResourceSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Outputs a resource publishes once applied (`url`, `host`, `arn`, …).
pub type Outputs = BTreeMap<String, String>;

/// Ownership label every driver puts on what it creates.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "platformd";
pub const STACK_LABEL: &str = "platformd.dev/stack";
pub const ADDRESS_ANNOTATION: &str = "platformd.dev/address";

/// What a driver is asked to make true for one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredResource {
    pub stack: String,
    pub address: String,
    pub kind: Kind,
    pub name: String,
    /// The canonical spec, typed by kind (`planner::resource_spec`; its JSON form is in
    /// `docs/PLAN_FORMAT.md`). Every default in it was decided by the planner.
    pub spec: ResourceSpec,
    /// Wired values, resolved from the outputs of applied dependencies: env name → value.
    pub wired: BTreeMap<String, String>,
    /// An earlier attempt to create this resource was interrupted (a crash between a create and
    /// the call that marks ownership): an unmarked object of its exact name in the account is
    /// that attempt's, not someone else's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
}

impl DesiredResource {
    pub fn team(&self) -> &str {
        &self.spec.team
    }

    /// The kind's own fields.
    pub fn fields(&self) -> &Spec {
        &self.spec.fields
    }

    /// A resource to make from a canonical spec written out as JSON (tools and tests; the
    /// engine builds them from a snapshot). The spec must be complete: defaults are the
    /// planner's, never filled in here.
    pub fn from_json(
        stack: &str,
        kind: Kind,
        name: &str,
        spec: &serde_json::Value,
    ) -> Result<DesiredResource, planner::resource_spec::SpecError> {
        Ok(DesiredResource {
            stack: stack.to_string(),
            address: format!("{kind}/{name}"),
            kind,
            name: name.to_string(),
            spec: ResourceSpec::from_value(kind, spec)?,
            wired: BTreeMap::new(),
            resumed: false,
        })
    }
}

/// Read back as written: the spec is typed by the `kind` beside it.
impl<'de> Deserialize<'de> for DesiredResource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored {
            stack: String,
            address: String,
            kind: Kind,
            name: String,
            spec: serde_json::Value,
            #[serde(default)]
            wired: BTreeMap<String, String>,
            #[serde(default)]
            resumed: bool,
        }
        let stored = Stored::deserialize(d)?;
        let spec = ResourceSpec::from_value(stored.kind, &stored.spec)
            .map_err(serde::de::Error::custom)?;
        Ok(DesiredResource {
            stack: stored.stack,
            address: stored.address,
            kind: stored.kind,
            name: stored.name,
            spec,
            wired: stored.wired,
            resumed: stored.resumed,
        })
    }
}

/// One object a driver made for a resource (a Kubernetes object, a cloud resource): what the
/// store keeps as the resource's inventory, so removal deletes exactly what was applied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

/// What an apply made: the resource's outputs and its inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub outputs: Outputs,
    pub inventory: Vec<ObjectRef>,
}

/// How a resource is doing in its system, by the system's own signals (Kubernetes conditions
/// and rollout counts, a cloud resource's state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    #[default]
    Ready,
    /// Being created or changed (a rollout under way, a database starting).
    Progressing,
    /// Failed or stuck (a rollout past its deadline, `Ready=False` with a terminal reason).
    Degraded,
    /// Applied, then not found.
    Missing,
}

/// A resource as the driver found it in the world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedResource {
    pub address: String,
    pub kind: Kind,
    pub name: String,
    /// The live document, in the same shape as [`Driver::expected`] returns.
    pub live: serde_json::Value,
    pub outputs: Outputs,
    /// The objects found for it (what an interrupted apply made, for recovery).
    #[serde(default)]
    pub inventory: Vec<ObjectRef>,
    #[serde(default)]
    pub health: Health,
    /// Why it is not ready, in the system's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DriverError {
    pub message: String,
    /// A retry may succeed (a timeout, throttling, a conflict); the engine backs off and retries.
    pub retryable: bool,
}

impl DriverError {
    pub fn retryable(message: impl Into<String>) -> DriverError {
        DriverError {
            message: message.into(),
            retryable: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> DriverError {
        DriverError {
            message: message.into(),
            retryable: false,
        }
    }
}

#[async_trait]
pub trait Driver: Send + Sync {
    /// The name routes use (`local`, `kubernetes`, `aws`).
    fn name(&self) -> &str;

    fn supports(&self, kind: Kind) -> bool;

    /// Everything this driver owns for `stack` among `kinds`, found by ownership label.
    async fn observe(
        &self,
        stack: &str,
        kinds: &[Kind],
    ) -> Result<Vec<ObservedResource>, DriverError>;

    /// What [`ObservedResource::live`] should be once `desired` is applied: the fields the
    /// driver manages. Drift is any difference on these fields.
    fn expected(&self, desired: &DesiredResource) -> Result<serde_json::Value, DriverError>;

    /// Paths of the live document that a spec field renders to, for `ignore-changes`.
    fn live_paths(&self, kind: Kind, field: &str) -> Vec<String>;

    /// Create or update `desired`; idempotent. `previous` is the inventory of the last apply
    /// (empty for a new resource): what it no longer renders is deleted. Returns the outputs
    /// and the new inventory.
    async fn apply(
        &self,
        desired: &DesiredResource,
        previous: &[ObjectRef],
    ) -> Result<Applied, DriverError>;

    /// Waits until the resource is ready to be used by its dependents.
    async fn wait_ready(
        &self,
        _desired: &DesiredResource,
        _timeout: Duration,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    /// Brings an object that exists outside platformd under management as `desired` (an
    /// `import`): checks that `id` names the object the driver makes for `desired` (a driver
    /// never adopts under another name), that it exists, and that no other resource owns it,
    /// then marks it (and any other object `desired` renders that exists) as this resource's.
    /// Returns their inventory; the engine then applies `desired` over it.
    async fn adopt(
        &self,
        desired: &DesiredResource,
        id: &str,
    ) -> Result<Vec<ObjectRef>, DriverError>;

    /// Lets a resource go (a `removed` block): takes platformd's ownership marks off the
    /// objects of `inventory` (labels, annotations, tags), which stay as they are; idempotent.
    async fn release(
        &self,
        stack: &str,
        kind: Kind,
        name: &str,
        inventory: &[ObjectRef],
    ) -> Result<(), DriverError>;

    /// Renames a resource where its system can (a `moved` block, for the kinds the driver's
    /// descriptor lists in `renames`; the planner makes anything else anew under the new name):
    /// what was `from` is afterwards found as `to`'s. Returns the inventory; the engine then
    /// applies `to` over it.
    async fn rename(
        &self,
        _stack: &str,
        kind: Kind,
        from: &str,
        to: &str,
        _inventory: &[ObjectRef],
    ) -> Result<Vec<ObjectRef>, DriverError> {
        Err(DriverError::permanent(format!(
            "driver `{}` does not rename {kind}/{from} to {kind}/{to} in place (its descriptor lists no such kind in `renames`)",
            self.name()
        )))
    }

    /// Deletes the resource: exactly the objects of `inventory` (what the store says was
    /// applied); deleting what does not exist succeeds.
    async fn delete(
        &self,
        stack: &str,
        kind: Kind,
        name: &str,
        inventory: &[ObjectRef],
    ) -> Result<(), DriverError>;
}
