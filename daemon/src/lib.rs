//! The platformd core: the store, the apply engine, the use cases (`ops`), the revision
//! sources, the reconcile loop and the HTTP server. The `platformd` binary (`main.rs`, `cli/`)
//! is a thin layer over it that decides what to print. Layering, bottom up (no module imports
//! one above it):
//!
//! ```text
//! store ◀── engine ◀── ops ◀── reconcile ◀── server
//!                       source ◀──┘
//! ```
//!
//! See `docs/ARCHITECTURE.md`.

pub mod clock;
pub mod config;
pub mod engine;
pub mod notify;
pub mod ops;
pub mod ownership;
pub mod reconcile;
pub mod runtime;
pub mod serve;
pub mod server;
pub mod source;
pub mod store;
pub mod tls;
pub mod utilisation;
