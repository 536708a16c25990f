//! The contract of the daemon's HTTP API (`docs/RUNNING.md`): what travels over the wire
//! ([`Status`], [`Revision`], [`ApplyRecord`], the plan and drift types), the route paths
//! ([`routes`]), and the one client ([`Client`]) the operator UI, the tests and the benchmarks
//! use. The daemon serves these types; the UI depends on this crate and never on the daemon.
//!
//! Every state is an enum serialised as the same kebab-case string the API and the store have
//! always used, so older clients and stored rows stay readable.

mod client;
pub mod routes;
mod types;
pub mod webhook;

/// The OpenAPI 3.1 document of the daemon's API (served at `routes::OPENAPI`).
pub const OPENAPI_DOCUMENT: &str = include_str!("../openapi/openapi.json");

pub use client::{Client, ClientError, Response};
pub use types::*;

/// The plan and drift types, as the planner defines them: a plan is plain data, shared by the
/// CLI, the store, the API and the UI.
pub use planner::Plan;
/// Rendering helpers the UI shares with the CLI, so both say the same thing the same way.
pub use planner::cost::format_usd;
pub use planner::model::{DriftPolicy, SyncMode};
pub use planner::plan::{
    Action, DriftFinding, DriftStatus, FieldChange, KNOWN_AFTER_APPLY, ResourceChange,
};
pub use planner::render::{format_unix_time, summary_line, template_line};

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_describes_every_route() {
        let doc: serde_json::Value = serde_json::from_str(crate::OPENAPI_DOCUMENT).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for route in [
            crate::routes::HEALTHZ,
            crate::routes::READYZ,
            crate::routes::METRICS,
            crate::routes::STATUS,
            crate::routes::REVISIONS,
            crate::routes::PLAN,
            crate::routes::DRIFT,
            crate::routes::RESOURCES,
            crate::routes::SYNC,
            crate::routes::APPROVE,
            crate::routes::WAKE,
            crate::routes::ROLLBACK,
            crate::routes::RESUME,
            crate::routes::WEBHOOK,
            crate::routes::OPENAPI,
            crate::routes::STACKS,
        ] {
            assert!(paths.contains_key(route), "{route} is not in the document");
        }
        assert_eq!(
            paths.len(),
            16,
            "a documented path the daemon does not serve"
        );
    }
}
