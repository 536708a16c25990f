//! Shared test support for platformd's test suites and benchmarks: real git repositories
//! built with the `git` CLI, and a generator of synthetic stacks of any size.

pub mod bench;
pub mod generate;
pub mod git;
pub mod http;
