//! What the daemon knows about a stack's revisions and state, as plain data: written by the
//! daemon (store and reconcile loop), served by its API, shown by the operator UI.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One revision of a stack as seen by the daemon (a commit, or a directory's content).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Revision {
    pub revision: String,
    /// `git`, `directory`, `saved plan`.
    pub source: String,
    pub author: Option<String>,
    pub message: Option<String>,
    /// Unix seconds.
    pub seen_at: i64,
    pub valid: bool,
    /// Rendered diagnostics of an invalid revision.
    pub errors: Option<String>,
    /// Applied in full at some point (a rollback target).
    pub applied: bool,
    /// The revision in force now.
    pub current: bool,
}

/// What the daemon reports at `/api/v1/status`: the stack, its revisions, sync state, pin,
/// last error and counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub stack: Option<String>,
    pub source: String,
    /// The newest revision seen on the source (valid or not).
    pub tracked_revision: Option<String>,
    pub applied_revision: Option<String>,
    /// `starting`, `planning`, `synced`, `out-of-sync`, `applying`, `pinned`, `blocked`, `invalid`, `error`
    pub sync_state: String,
    pub sync_mode: Option<crate::model::SyncMode>,
    pub pinned_revision: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub last_sync_at: Option<i64>,
    /// When the last plan was ready (Unix ms) and how long it took from reading the revision.
    pub last_plan_ready_ms: Option<u64>,
    pub last_plan_duration_ms: Option<u64>,
    /// When the last apply started (Unix ms).
    pub last_apply_started_ms: Option<u64>,
    /// Applied resources per kind.
    pub resources: BTreeMap<String, usize>,
    /// Drift findings of the last scan per status (`drifted`, `missing`, `orphan`).
    pub drift: BTreeMap<String, usize>,
}
