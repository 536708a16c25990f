//! The kinds of resource a stack declares. A leaf of the model: the template expander and the
//! drivers' descriptions name kinds without the rest of the model.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A resource kind. Order here is the order kinds are listed in docs and summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Service,
    Database,
    Bucket,
    Topic,
    Pipeline,
    GpuPool,
    AiEndpoint,
    /// A team's `llm-quota`, made by the planner from the team (not declared on its own): the
    /// gateway's token rate limits for the team's callers.
    LlmQuota,
    /// Batch and training work: runs to completion, once or on a schedule.
    Job,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Service,
        Kind::Database,
        Kind::Bucket,
        Kind::Topic,
        Kind::Pipeline,
        Kind::GpuPool,
        Kind::AiEndpoint,
        Kind::LlmQuota,
        Kind::Job,
    ];

    /// Whether resources of this kind are declared as top-level nodes (an `llm-quota` is
    /// declared in its team).
    pub fn is_declared(self) -> bool {
        self != Kind::LlmQuota
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Database => "database",
            Kind::Bucket => "bucket",
            Kind::Topic => "topic",
            Kind::Pipeline => "pipeline",
            Kind::GpuPool => "gpu-pool",
            Kind::AiEndpoint => "ai-endpoint",
            Kind::LlmQuota => "llm-quota",
            Kind::Job => "job",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Outputs a resource of this kind publishes once applied, usable in `from="kind/name.output"`.
    pub fn outputs(self) -> &'static [&'static str] {
        match self {
            Kind::Service => &["url", "host", "port"],
            Kind::Database => &["host", "port", "url", "name", "username"],
            Kind::Bucket => &["name", "arn", "url", "region"],
            Kind::Topic => &["name", "bootstrap-servers"],
            Kind::Pipeline => &["name"],
            Kind::GpuPool => &["name", "node-selector"],
            Kind::AiEndpoint => &["url", "model"],
            Kind::LlmQuota => &[],
            Kind::Job => &["name"],
        }
    }

    /// The spec fields an output of this kind is made from, besides its name and its driver's
    /// settings: changing one changes what consumers are wired to (`plan`: "known after apply").
    pub fn output_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Service => &["port"],
            Kind::Database => &["engine"],
            Kind::AiEndpoint => &["runtime", "model"],
            Kind::Bucket
            | Kind::Topic
            | Kind::Pipeline
            | Kind::GpuPool
            | Kind::LlmQuota
            | Kind::Job => &[],
        }
    }

    /// Databases and buckets hold data: deleting them needs an explicit allow unless
    /// `protect #false` was declared.
    pub fn protected_by_default(self) -> bool {
        matches!(self, Kind::Database | Kind::Bucket)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
