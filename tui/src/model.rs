//! What the operator UI shows: the daemon's status, pending plan, drift and revisions, as
//! deserialized from its API (`/api/v1/status`, `/plan`, `/drift`, `/revisions`).

use planner::Plan;
use planner::plan::DriftFinding;
use serde::Deserialize;

pub use planner::history::{Revision, Status};

/// One consistent picture of the platform.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub status: Status,
    pub plan: Option<Plan>,
    pub drift: Vec<DriftFinding>,
    /// Newest first.
    pub revisions: Vec<Revision>,
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
        #[derive(Deserialize)]
        struct Drift {
            findings: Vec<DriftFinding>,
        }
        #[derive(Deserialize)]
        struct Revisions {
            revisions: Vec<Revision>,
        }
        Ok(Model {
            status: serde_json::from_str(status)?,
            plan: plan.map(serde_json::from_str).transpose()?,
            drift: serde_json::from_str::<Drift>(drift)?.findings,
            revisions: serde_json::from_str::<Revisions>(revisions)?.revisions,
        })
    }
}
