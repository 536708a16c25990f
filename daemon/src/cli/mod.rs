//! The binary's commands: each parses nothing (clap did), calls the library, and decides what
//! to print. Output is decided here and nowhere below.

pub mod commands;
pub mod daemon;
pub mod github;
mod ownership;
mod progress;
pub mod state;
pub mod tui;
