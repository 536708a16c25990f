//! The lease fence: a driver checks it immediately before every change it makes to the world.
//!
//! An apply runs under the stack's lease. A replica paused in the middle of an apply (a long GC
//! pause, SIGSTOP, a VM migration) may wake after another replica has taken the stack over; the
//! changes it was about to make are then older than the new owner's and must not be made. The
//! engine runs every driver call inside [`scope`] with a check that answers from the lease's
//! local deadline (no round trip while the lease is comfortably held) and from the database
//! otherwise; drivers call [`check`] right before each write (a Kubernetes patch or delete, an
//! AWS request, a local file written or removed), so a call that wakes past its lease stops
//! before the write instead of after it.
//!
//! Outside a scope (drift scans, tests that drive a driver directly) there is nothing to fence
//! and [`check`] passes.

use crate::DriverError;
use std::future::Future;
use std::sync::Arc;

/// Why a write may not be made: the lease it was to be made under is lost.
pub type LeaseLost = Box<dyn std::error::Error + Send + Sync>;

/// Whether the apply's lease is still held; the error says why not.
#[derive(Clone)]
pub struct Fence(Arc<dyn Fn() -> Result<(), LeaseLost> + Send + Sync>);

impl Fence {
    pub fn new(check: impl Fn() -> Result<(), LeaseLost> + Send + Sync + 'static) -> Fence {
        Fence(Arc::new(check))
    }
}

tokio::task_local! {
    static FENCE: Fence;
}

/// Runs `call` with `fence` checked before each of its writes.
pub async fn scope<F: Future>(fence: Fence, call: F) -> F::Output {
    FENCE.scope(fence, call).await
}

/// Refuses the write about to be made when the apply's lease is lost. Not retryable: the
/// replica that holds the lease now makes the change.
pub fn check() -> Result<(), DriverError> {
    match FENCE.try_with(|fence| (fence.0)()) {
        Ok(Err(why)) => Err(DriverError::permanent(format!(
            "not written: {why}; the replica that holds the stack's lease now applies it"
        ))),
        Ok(Ok(())) | Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lost_lease_refuses_writes_only_inside_its_scope() {
        assert!(check().is_ok(), "nothing to fence outside an apply");
        let held = Fence::new(|| Ok(()));
        assert!(scope(held, async { check() }).await.is_ok());
        let lost = Fence::new(|| Err("the lease of epoch 3 is no longer ours".into()));
        let err = scope(lost, async { check() }).await.unwrap_err();
        assert!(!err.retryable);
        assert!(err.message.contains("epoch 3"), "{}", err.message);
    }
}
