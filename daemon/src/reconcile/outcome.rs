//! How a reconcile of one revision ended, and what the loop does next: the reconcile returns a
//! [`SyncOutcome`], and [`SyncOutcome::requeue`] turns it into a [`Requeue`] decision, in the
//! manner of kube-runtime's `Action`. The loop is a scheduler over that decision; the gates
//! (policy, approval, window) decide the outcome once, in `reconcile`.

use super::ApplyMode;
use super::errors::LoopError;

/// How a reconcile of a revision ended when nothing went wrong on the way (a store or plan
/// failure is a [`LoopError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Every change of the plan was applied.
    Applied,
    /// The store already held the revision's state.
    NoChanges,
    /// A `deny` policy or a budget blocks the plan.
    Blocked,
    /// The plan waits for an approval of exactly its hash.
    AwaitingApproval,
    /// A sync window holds the change back.
    WindowClosed { reason: String },
    /// The apply did not reach its end: resources failed or were skipped, the drivers could
    /// not be built, or the daemon is shutting down. What applied is recorded.
    Partial { message: String },
}

/// What the loop does with a revision after reconciling it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Requeue {
    /// Nothing until something changes: a new revision, a webhook, a command.
    #[default]
    AwaitChange,
    /// Look again at every poll tick: the plan of `revision` is applied once approved.
    UntilApproved { revision: String, mode: ApplyMode },
    /// Look again at every poll tick: `revision` is applied once its window opens.
    UntilWindowOpens { revision: String, mode: ApplyMode },
    /// Reconcile the revision again at the next poll, as if it were new: an apply that did not
    /// finish on a stack this replica owns (its lease may have lapsed for a moment; if another
    /// replica took the stack over, this loop is stopped before then).
    NextPoll,
}

impl SyncOutcome {
    /// The loop's next step after this outcome of `revision`, applied in `mode`. `owned`: this
    /// replica holds the stack's lease (a single daemon retries a failed apply only on a new
    /// revision or an operator's sync).
    pub fn requeue(&self, revision: &str, mode: ApplyMode, owned: bool) -> Requeue {
        match self {
            SyncOutcome::Applied | SyncOutcome::NoChanges | SyncOutcome::Blocked => {
                Requeue::AwaitChange
            }
            SyncOutcome::AwaitingApproval => Requeue::UntilApproved {
                revision: revision.to_string(),
                mode,
            },
            SyncOutcome::WindowClosed { .. } => Requeue::UntilWindowOpens {
                revision: revision.to_string(),
                mode,
            },
            SyncOutcome::Partial { .. } if owned => Requeue::NextPoll,
            SyncOutcome::Partial { .. } => Requeue::AwaitChange,
        }
    }

    /// The answer to an operator who asked for this sync: done, or why not, typed for the
    /// API's status.
    pub fn into_result(self, revision: &str) -> Result<(), LoopError> {
        match self {
            SyncOutcome::Applied | SyncOutcome::NoChanges => Ok(()),
            SyncOutcome::Blocked => Err(LoopError::Blocked("plan")),
            SyncOutcome::AwaitingApproval => Err(LoopError::AwaitingApproval {
                revision: revision.to_string(),
            }),
            SyncOutcome::WindowClosed { reason } => Err(LoopError::WindowClosed { reason }),
            SyncOutcome::Partial { message } => Err(LoopError::Failed(message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_decides_the_next_step() {
        let rev = "abc";
        let next = |o: SyncOutcome, owned| o.requeue(rev, ApplyMode::Auto, owned);
        assert_eq!(next(SyncOutcome::Applied, true), Requeue::AwaitChange);
        assert_eq!(next(SyncOutcome::NoChanges, true), Requeue::AwaitChange);
        assert_eq!(next(SyncOutcome::Blocked, true), Requeue::AwaitChange);
        assert_eq!(
            next(SyncOutcome::AwaitingApproval, false),
            Requeue::UntilApproved {
                revision: rev.into(),
                mode: ApplyMode::Auto
            }
        );
        assert_eq!(
            next(
                SyncOutcome::WindowClosed {
                    reason: "freeze".into()
                },
                false
            ),
            Requeue::UntilWindowOpens {
                revision: rev.into(),
                mode: ApplyMode::Auto
            }
        );
        let partial = || SyncOutcome::Partial {
            message: "1 failed".into(),
        };
        assert_eq!(next(partial(), true), Requeue::NextPoll);
        assert_eq!(next(partial(), false), Requeue::AwaitChange);
    }

    #[test]
    fn an_operator_is_told_why_a_sync_stopped_short_with_a_typed_error() {
        use super::super::errors::ErrorClass;
        assert_eq!(SyncOutcome::Applied.into_result("r"), Ok(()));
        assert_eq!(SyncOutcome::NoChanges.into_result("r"), Ok(()));
        let class = |o: SyncOutcome| o.into_result("r").unwrap_err().class();
        assert_eq!(class(SyncOutcome::AwaitingApproval), ErrorClass::Conflict);
        assert_eq!(
            class(SyncOutcome::WindowClosed { reason: "x".into() }),
            ErrorClass::Conflict
        );
        assert_eq!(class(SyncOutcome::Blocked), ErrorClass::Unprocessable);
        assert_eq!(
            class(SyncOutcome::Partial {
                message: "x".into()
            }),
            ErrorClass::Failed
        );
    }
}
