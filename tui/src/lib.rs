//! The operator terminal UI (`docs/ARCHITECTURE.md`), in the style of gitui: [`model`] is the data (from the
//! daemon's API), [`app`] the state and its transitions on keys (pure), [`ui`] the drawing
//! (a pure function of the state), [`terminal`] the loop that feeds them. The TUI never calls a
//! driver: data comes from the daemon's API ([`source::ApiSource`], through the `api` crate's
//! client) or a state directory.

pub mod app;
pub mod model;
pub mod picker;
pub mod source;
pub mod terminal;
pub mod ui;
