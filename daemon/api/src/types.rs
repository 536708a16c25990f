//! The bodies of the API, shared by the daemon (which serves them), the store (which keeps
//! revisions and applies in these shapes) and the UI.

use planner::model::SyncMode;
use planner::plan::{DriftFinding, DriftStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Defines an enum of states with its wire string (serde, `as_str`, `Display`, `FromStr`): one
/// table per enum, so a state cannot be spelt two ways.
#[macro_export]
macro_rules! string_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = ::std::string::String;

            fn from_str(s: &str) -> ::std::result::Result<$name, ::std::string::String> {
                match s {
                    $($text => ::std::result::Result::Ok($name::$variant),)+
                    other => ::std::result::Result::Err(format!("`{other}` is not a {}", stringify!($name))),
                }
            }
        }
    };
}

string_enum! {
    /// Where the daemon is with its stack.
    #[derive(Default)]
    pub enum SyncState {
        /// Nothing reported yet (a client before its first answer).
        #[default]
        Unknown = "unknown",
        Starting = "starting",
        /// A new revision is being read, validated and planned.
        Planning = "planning",
        /// The applied revision is the tracked one and nothing is left to do.
        Synced = "synced",
        /// Changes are pending and sync is manual.
        OutOfSync = "out-of-sync",
        Applying = "applying",
        /// A rollback holds the stack at an earlier revision.
        Pinned = "pinned",
        /// The plan breaks a policy (budget, protected delete, a `policy` rule).
        Blocked = "blocked",
        /// A sync window forbids applying now; the change waits and is applied when it opens.
        WindowClosed = "window-closed",
        /// The plan waits for an operator to approve exactly it (`sync "manual"` or the
        /// platform's `approval` scope).
        AwaitingApproval = "awaiting-approval",
        /// The newest revision does not validate; the last good one stays in force.
        Invalid = "invalid",
        /// The newest commit is not signed by a trusted key; the last good one stays in force.
        Rejected = "rejected",
        Error = "error",
        /// The UI reads a state directory, with no daemon behind it.
        ReadOnly = "read-only",
    }
}

string_enum! {
    /// How an apply ended (or that it is still running).
    pub enum ApplyStatus {
        Running = "running",
        Succeeded = "succeeded",
        /// Some resources failed, some were applied.
        Partial = "partial",
        Failed = "failed",
        /// The process stopped (SIGTERM, crash) before the apply finished.
        Interrupted = "interrupted",
    }
}

string_enum! {
    /// Why an apply ran.
    pub enum ApplyReason {
        Apply = "apply",
        Rollback = "rollback",
        DriftCorrect = "drift-correct",
        /// The cost controller scaled idle resources down.
        IdleShutdown = "idle-shutdown",
        /// Scaled-down resources brought back (operator, demand).
        Wake = "wake",
        /// Only some resources of the revision (`--target`, `platformd import`): the revision
        /// is not recorded as applied in full.
        Targeted = "targeted",
    }
}

string_enum! {
    /// How a resource is doing in its system.
    #[derive(Default)]
    pub enum Health {
        #[default]
        Ready = "ready",
        /// Being created or changed (a rollout under way).
        Progressing = "progressing",
        /// Failed or stuck; the message says why.
        Degraded = "degraded",
        /// Applied, then not found.
        Missing = "missing",
    }
}

/// One applied resource as the operator sees it (`GET /api/v1/resources`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceStatus {
    pub address: String,
    pub kind: String,
    pub driver: String,
    pub team: String,
    pub health: Health,
    /// Why it is not ready.
    pub message: Option<String>,
    /// The revision it was last applied from, and when (Unix seconds).
    pub revision: String,
    pub applied_at: i64,
    /// The last drift scan's finding for it, if any.
    pub drift: Option<DriftStatus>,
    /// The live objects the last drift scan observed (Kubernetes objects with their
    /// conditions, a rendered file's documents).
    pub live: Vec<serde_json::Value>,
}

/// `GET /api/v1/resources`: every applied resource, by address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesBody {
    pub resources: Vec<ResourceStatus>,
}

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

/// One apply (or rollback, or drift correction) in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRecord {
    pub id: i64,
    pub revision: String,
    pub reason: ApplyReason,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub status: ApplyStatus,
    pub summary: Option<String>,
    /// Who started it: an OS user, the daemon, an API token, an approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Why it was made, when more than its reason says (`idle 2h13m, cost policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
    pub sync_state: SyncState,
    pub sync_mode: Option<SyncMode>,
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
    /// Findings of the last drift scan per status.
    pub drift: BTreeMap<DriftStatus, usize>,
    /// The sync windows' verdict while they hold a change back (`None` when applying is open).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<planner::window::WindowState>,
    /// The plan waiting for approval: approve exactly this revision and hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<PendingApproval>,
    /// Resources the cost controller holds scaled down.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scaled_down: Vec<ScaledDownResource>,
    /// Candidates for idle shutdown seen idle at every look since (address → Unix seconds).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub idle_since: BTreeMap<String, i64>,
    /// Why the cost controller could not read utilisation (nothing is scaled down meanwhile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilisation_warning: Option<String>,
}

/// A resource the cost controller scaled down: since when (Unix seconds), why, what was seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScaledDownResource {
    pub address: String,
    pub since: i64,
    /// `idle 2h13m, cost policy`.
    pub note: String,
    /// `requests 0/s (idle at ≤ 0)`.
    pub figure: String,
    /// Monthly estimate taken off while it stays down.
    pub monthly_usd_saved: f64,
}

/// The query of `GET /api/v1/plan`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanQuery {
    /// Preview the plan of rolling back to this applied revision (nothing is changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
}

/// The query of `POST /api/v1/sync`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncQuery {
    /// `all`, or an address: scan for drift now and correct it (policy `correct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<String>,
    /// Apply even while a sync window is closed; the value is the reason, recorded with the
    /// API token as the actor.
    #[serde(
        rename = "override-window",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub override_window: Option<String>,
}

/// `POST /api/v1/wake`: bring a scaled-down resource back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeRequest {
    pub address: String,
}

/// A plan that waits for approval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingApproval {
    pub revision: String,
    /// `Plan::approval_hash` of the plan: an approval names it, so a changed plan is not
    /// approved by an earlier approval.
    pub plan_hash: String,
    pub summary: String,
}

/// A plan hash as people read it: its first 12 hex digits.
pub fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// `POST /api/v1/approve`: approve exactly this plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproveRequest {
    pub revision: String,
    pub plan_hash: String,
}

/// `GET /api/v1/stacks`: the stacks the daemon follows, in the order it was given them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StacksBody {
    pub stacks: Vec<StackSummary>,
}

/// One stack at a glance; its endpoints are under `routes::stack_prefix(name)` in a daemon
/// that follows many.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StackSummary {
    pub name: String,
    pub source: String,
    pub sync_state: SyncState,
    pub applied_revision: Option<String>,
    pub last_error: Option<String>,
    /// It has reconciled its first revision.
    pub ready: bool,
    /// The replica that reconciles it, when it is not the one answering (replicas sharing a
    /// store).
    pub owner: Option<String>,
}

/// `GET /api/v1/revisions`: newest revision first; applies oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RevisionsBody {
    pub revisions: Vec<Revision>,
    pub applies: Vec<ApplyRecord>,
}

/// `GET /api/v1/drift`: the findings of the last scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriftBody {
    pub findings: Vec<DriftFinding>,
}

/// `POST /api/v1/rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRequest {
    pub revision: String,
}

/// The answer of a mutating endpoint: `{"ok": true, "message": …}` or
/// `{"ok": false, "error": …}`; errors of read endpoints carry `error` only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reply {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub fn done(message: impl Into<String>) -> Reply {
        Reply {
            ok: Some(true),
            message: Some(message.into()),
            error: None,
        }
    }

    pub fn refused(error: impl Into<String>) -> Reply {
        Reply {
            ok: Some(false),
            message: None,
            error: Some(error.into()),
        }
    }

    pub fn error(error: impl Into<String>) -> Reply {
        Reply {
            ok: None,
            message: None,
            error: Some(error.into()),
        }
    }
}
