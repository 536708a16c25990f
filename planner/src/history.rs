//! Records of the revisions a stack has been through, as plain data: written by the daemon's
//! store, served by its API, shown by the operator UI.

use serde::{Deserialize, Serialize};

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
