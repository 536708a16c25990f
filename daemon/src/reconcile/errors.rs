//! Why the loop did not bring a revision, or an operator's command, to its end: typed, so the
//! API answers each with its own status (`docs/RUNNING.md`, the OpenAPI document) and the loop
//! decides what to do next from the kind, not from a message.

use crate::ops::OpsError;
use crate::ops::approve::ApproveError;

/// Why a reconcile or a command stopped short. Each message says what the operator can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoopError {
    /// The plan needs an approval of exactly its hash.
    #[error("the plan for {revision} waits for approval: platformd approve {revision}")]
    AwaitingApproval { revision: String },
    /// A sync window holds the change back.
    #[error("a sync window is closed: {reason}")]
    WindowClosed { reason: String },
    /// Drift was found; correcting it waits for a sync window.
    #[error("drift found; correcting it waits for the sync window: {reason}")]
    DriftWaitsForWindow { reason: String },
    /// The plan breaks a `deny` policy.
    #[error("the {0} is blocked by policy")]
    Blocked(&'static str),
    /// A rollback pins the stack.
    #[error("pinned to {0} by a rollback; resume first")]
    Pinned(String),
    /// Nothing valid has been read from the source yet.
    #[error("no valid revision yet")]
    NoValidRevision,
    /// A revision or resource the request names is not known.
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the stack's state now (a stale approval, a resource that is
    /// not scaled down, a revision that is not a rollback target).
    #[error("{0}")]
    Conflict(String),
    /// The request cannot be carried out as written (an ambiguous revision prefix).
    #[error("{0}")]
    Invalid(String),
    /// The store, a plan or an apply failed.
    #[error("{0}")]
    Failed(String),
}

/// What kind of answer a [`LoopError`] is, for the API's status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 404.
    NotFound,
    /// 409: the request is fine, the state is not ready for it.
    Conflict,
    /// 422: the request cannot be carried out as written, or a rule refuses it.
    Unprocessable,
    /// 500: something failed while carrying it out.
    Failed,
}

impl LoopError {
    pub fn class(&self) -> ErrorClass {
        match self {
            LoopError::NotFound(_) => ErrorClass::NotFound,
            LoopError::AwaitingApproval { .. }
            | LoopError::WindowClosed { .. }
            | LoopError::DriftWaitsForWindow { .. }
            | LoopError::Pinned(_)
            | LoopError::NoValidRevision
            | LoopError::Conflict(_) => ErrorClass::Conflict,
            LoopError::Blocked(_) | LoopError::Invalid(_) => ErrorClass::Unprocessable,
            LoopError::Failed(_) => ErrorClass::Failed,
        }
    }
}

impl From<OpsError> for LoopError {
    fn from(e: OpsError) -> LoopError {
        match e {
            OpsError::UnknownRevision(_) => LoopError::NotFound(e.to_string()),
            OpsError::AmbiguousRevision { .. } | OpsError::UnknownAddress { .. } => {
                LoopError::Invalid(e.to_string())
            }
            OpsError::NotRollbackTarget(_)
            | OpsError::NotScaledDown { .. }
            | OpsError::StalePlan { .. }
            | OpsError::PlanNotFromStore => LoopError::Conflict(e.to_string()),
            OpsError::Pinned(revision) => LoopError::Pinned(revision),
            OpsError::NoRevision => LoopError::NoValidRevision,
            OpsError::Blocked(what) => LoopError::Blocked(what),
            OpsError::Store(_)
            | OpsError::Engine(_)
            | OpsError::Drivers(_)
            | OpsError::DriftScan(_) => LoopError::Failed(e.to_string()),
        }
    }
}

impl From<ApproveError> for LoopError {
    fn from(e: ApproveError) -> LoopError {
        match e {
            ApproveError::Store(_) => LoopError::Failed(e.to_string()),
            ApproveError::NothingWaits
            | ApproveError::OtherRevision { .. }
            | ApproveError::PlanChanged { .. }
            | ApproveError::Replaced => LoopError::Conflict(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ops_error_has_the_class_its_cause_calls_for() {
        let class = |e: OpsError| LoopError::from(e).class();
        assert_eq!(
            class(OpsError::UnknownRevision("abc".into())),
            ErrorClass::NotFound
        );
        assert_eq!(
            class(OpsError::AmbiguousRevision {
                prefix: "a".into(),
                candidates: vec!["ab".into(), "ac".into()]
            }),
            ErrorClass::Unprocessable
        );
        assert_eq!(
            class(OpsError::NotRollbackTarget("abc".into())),
            ErrorClass::Conflict
        );
        assert_eq!(
            class(OpsError::Blocked("rollback")),
            ErrorClass::Unprocessable
        );
        assert_eq!(class(OpsError::NoRevision), ErrorClass::Conflict);
        assert_eq!(
            LoopError::from(OpsError::Blocked("rollback")).to_string(),
            "the rollback is blocked by policy"
        );
    }
}
