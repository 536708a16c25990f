//! Sync windows from the operator's side: an emergency override is recorded once, in one form,
//! whoever makes it (`platformd apply --override-window`, the API's `?override-window=`, a drift
//! correction through a closed window), so history shows who overrode which window and why.

use crate::store::{Result, Store};

/// What an override let through a closed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overridden<'a> {
    Apply { revision: &'a str },
    CorrectDrift,
}

/// Records `actor`'s override of the window closed for `window_reason`, with `why`.
pub fn record_override(
    store: &Store,
    actor: &str,
    overridden: Overridden<'_>,
    window_reason: &str,
    why: &str,
) -> Result<()> {
    let what = match overridden {
        Overridden::Apply { revision } => format!("apply {revision}"),
        Overridden::CorrectDrift => "correct drift".to_string(),
    };
    store.event(
        "window-override",
        &format!("{actor} overrode the sync window to {what} ({window_reason}): {why}"),
        None,
    )
}
