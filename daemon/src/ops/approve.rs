//! Approving a plan: the one use case behind `platformd approve`, `POST /api/v1/approve` and the
//! UI. Only the plan waiting now can be approved, named by its revision and its hash (a unique
//! prefix of either will do for a person at a terminal; the API sends them whole), and an
//! approval is recorded once, with who gave it.

use crate::store::{Result as StoreResult, Store};

/// The plan waiting for approval, as the caller knows it (the store's, or the loop's status).
pub use api::PendingApproval as Waiting;

/// Why an approval was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("no plan waits for approval")]
    NothingWaits,
    #[error("{asked} does not wait for approval; {} does ({})", waiting.revision, waiting.summary)]
    OtherRevision { asked: String, waiting: Waiting },
    #[error(
        "the plan for {} has changed since {asked}: it is now {} ({}); review it and approve that one",
        waiting.revision,
        api::short_hash(&waiting.plan_hash),
        waiting.summary
    )]
    PlanChanged { asked: String, waiting: Waiting },
    #[error("the plan was applied or replaced meanwhile; nothing approved")]
    Replaced,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// How much of the revision and hash must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Exactly, as the API's clients send them.
    Exact,
    /// A prefix (of at least 8 characters for the hash), as a person types them.
    Prefix,
}

/// Checks that `revision` and `plan_hash` name the plan `waiting`, without recording anything:
/// what a caller shows before asking for confirmation.
pub fn check(
    waiting: Option<&Waiting>,
    revision: &str,
    plan_hash: Option<&str>,
    naming: Naming,
) -> Result<Waiting, ApproveError> {
    let Some(waiting) = waiting else {
        return Err(ApproveError::NothingWaits);
    };
    let revision_named = match naming {
        Naming::Exact => waiting.revision == revision,
        Naming::Prefix => !revision.is_empty() && waiting.revision.starts_with(revision),
    };
    if !revision_named {
        return Err(ApproveError::OtherRevision {
            asked: revision.to_string(),
            waiting: waiting.clone(),
        });
    }
    let hash_named = match (naming, plan_hash) {
        (Naming::Exact, Some(h)) => waiting.plan_hash == h,
        (Naming::Exact, None) => false,
        (Naming::Prefix, Some(h)) => h.len() >= 8 && waiting.plan_hash.starts_with(h),
        (Naming::Prefix, None) => true,
    };
    if !hash_named {
        return Err(ApproveError::PlanChanged {
            asked: plan_hash.unwrap_or_default().to_string(),
            waiting: waiting.clone(),
        });
    }
    Ok(waiting.clone())
}

/// Records `actor`'s approval of exactly `waiting` (as [`check`] returned it), with its event.
pub fn record(store: &Store, waiting: &Waiting, actor: &str) -> Result<(), ApproveError> {
    if !store.approve(&waiting.revision, &waiting.plan_hash, actor)? {
        return Err(ApproveError::Replaced);
    }
    store.event(
        "approved",
        &format!(
            "{actor} approved plan {} for {}",
            api::short_hash(&waiting.plan_hash),
            waiting.revision
        ),
        None,
    )?;
    Ok(())
}

/// The plan the store says waits for approval.
pub fn waiting_in(store: &Store) -> StoreResult<Option<Waiting>> {
    Ok(store.pending_approval()?.map(|a| Waiting {
        revision: a.revision,
        plan_hash: a.plan_hash,
        summary: a.summary,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting() -> Waiting {
        Waiting {
            revision: "abc123def".into(),
            plan_hash: "sha256:0123456789abcdef".into(),
            summary: "1 to change".into(),
        }
    }

    #[test]
    fn only_the_waiting_plan_named_as_the_caller_must_name_it_is_approved() {
        let w = waiting();
        assert!(matches!(
            check(None, "abc", None, Naming::Prefix),
            Err(ApproveError::NothingWaits)
        ));
        assert!(check(Some(&w), "abc", None, Naming::Prefix).is_ok());
        assert!(check(Some(&w), "abc", Some("sha256:0123"), Naming::Prefix).is_ok());
        assert!(matches!(
            check(Some(&w), "abc", Some("sha256"), Naming::Prefix),
            Err(ApproveError::PlanChanged { .. })
        ));
        assert!(matches!(
            check(Some(&w), "", None, Naming::Prefix),
            Err(ApproveError::OtherRevision { .. })
        ));
        // The API names both whole.
        assert!(matches!(
            check(Some(&w), "abc", Some(&w.plan_hash), Naming::Exact),
            Err(ApproveError::OtherRevision { .. })
        ));
        assert!(matches!(
            check(Some(&w), &w.revision, Some("sha256:0123"), Naming::Exact),
            Err(ApproveError::PlanChanged { .. })
        ));
        assert!(check(Some(&w), &w.revision, Some(&w.plan_hash), Naming::Exact).is_ok());
    }
}
