//! One decoder per resource kind, from its block of children to its typed spec.

mod ai;
mod data;
mod job;
mod service;

pub(crate) use ai::*;
pub(crate) use data::*;
pub(crate) use job::*;
pub(crate) use service::*;
