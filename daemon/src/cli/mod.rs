//! The binary's commands: each parses nothing (clap did), calls the library, and decides what
//! to print. Output is decided here and nowhere below.

pub mod commands;
pub mod daemon;
pub mod github;
pub mod output;
mod progress;
pub mod state;
pub mod tui;

/// Frees a large value (a 10,000-resource analysis, snapshot or plan) on a thread of its own:
/// a command that is about to exit need not wait for it, and freeing one took a tenth of a
/// cold plan (`docs/PERFORMANCE.md`).
pub(crate) fn free_in_background<T: Send + 'static>(value: T) {
    if let Err(e) = std::thread::Builder::new()
        .name("free".into())
        .spawn(move || drop(value))
    {
        tracing::debug!(error = %e, "no thread to free a value on; it is leaked until exit");
    }
}

/// Leaves a large value to be reclaimed with the process, which is about to exit: where memory
/// has already peaked, even freeing on another thread only takes a core from what is left to
/// do (a pull request's plan: 133–138 → 125–131 ms at 10,000 resources, `docs/PERFORMANCE.md`).
/// Only for plain data: nothing with a file, lock or connection to close.
pub(crate) fn leave_to_exit<T>(value: T) {
    std::mem::forget(value);
}
