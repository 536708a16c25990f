//! The operator terminal UI (DESIGN §6), in the style of gitui: [`model`] is the data (from the
//! daemon's API), [`app`] the state and its transitions on keys (pure), [`ui`] the drawing
//! (a pure function of the state). The terminal loop and the daemon client that feed them are
//! the next step (issue 5); the TUI never calls a driver.

pub mod app;
pub mod model;
pub mod ui;
