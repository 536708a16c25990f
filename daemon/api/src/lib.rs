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

pub use client::{Client, ClientError, Response};
pub use types::*;

/// The plan and drift types, as the planner defines them: a plan is plain data, shared by the
/// CLI, the store, the API and the UI.
pub use planner::Plan;
/// Rendering helpers the UI shares with the CLI, so both say the same thing the same way.
pub use planner::cost::format_usd;
pub use planner::model::{DriftPolicy, SyncMode};
pub use planner::plan::{Action, DriftFinding, DriftStatus, FieldChange, ResourceChange};
pub use planner::render::{format_unix_time, summary_line};
