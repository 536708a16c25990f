//! What the operator UI shows: the daemon's status, pending plan, drift and revisions, in the
//! types of the API contract (`api`).

use api::{DriftBody, DriftFinding, Plan, ResourceStatus, RevisionsBody};

pub use api::{Revision, Status};

/// One consistent picture of the platform.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub status: Status,
    pub plan: Option<Plan>,
    pub drift: Vec<DriftFinding>,
    /// Newest first.
    pub revisions: Vec<Revision>,
    /// Every applied resource with its health, by address.
    pub resources: Vec<ResourceStatus>,
}

impl Model {
    /// Builds the model from the daemon API's JSON bodies (`plan` is absent before the first
    /// plan).
    pub fn from_api(
        status: &str,
        plan: Option<&str>,
        drift: &str,
        revisions: &str,
    ) -> Result<Model, serde_json::Error> {
        Ok(Model {
            status: serde_json::from_str(status)?,
            plan: plan.map(serde_json::from_str).transpose()?,
            drift: serde_json::from_str::<DriftBody>(drift)?.findings,
            revisions: serde_json::from_str::<RevisionsBody>(revisions)?.revisions,
            resources: Vec::new(),
        })
    }

    /// Reads everything from the daemon's API.
    pub fn fetch(client: &api::Client) -> Result<Model, api::ClientError> {
        Ok(Model {
            status: client.status()?,
            plan: client.plan()?,
            drift: client.drift()?.findings,
            revisions: client.revisions()?.revisions,
            resources: client.resources()?.resources,
        })
    }
}

/// Why a source could not fetch, act or preview: shown to the operator as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError(pub String);

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceError {}

impl From<String> for SourceError {
    fn from(message: String) -> SourceError {
        SourceError(message)
    }
}

impl From<&str> for SourceError {
    fn from(message: &str) -> SourceError {
        SourceError(message.to_string())
    }
}
