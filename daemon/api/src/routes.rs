//! The daemon's route paths. Read endpoints are open; mutating ones need
//! `Authorization: Bearer <token>`; the webhook needs a valid `X-Hub-Signature-256`.

pub const HEALTHZ: &str = "/healthz";
/// 200 once the first revision has been reconciled (applied, found in sync, or refused as
/// invalid); 503 before.
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
pub const STATUS: &str = "/api/v1/status";
pub const REVISIONS: &str = "/api/v1/revisions";
/// The pending plan; `?rollback=REV` previews the plan of rolling back to REV.
pub const PLAN: &str = "/api/v1/plan";
pub const DRIFT: &str = "/api/v1/drift";
/// Every applied resource with its health, drift and live objects.
pub const RESOURCES: &str = "/api/v1/resources";
/// Sync now; `?correct=all|ADDR` scans for drift and corrects it.
pub const SYNC: &str = "/api/v1/sync";
pub const APPROVE: &str = "/api/v1/approve";
pub const WAKE: &str = "/api/v1/wake";
pub const ROLLBACK: &str = "/api/v1/rollback";
pub const RESUME: &str = "/api/v1/resume";
pub const WEBHOOK: &str = "/hooks/git";
/// The stacks this daemon follows (one in the single-stack form), with their state.
pub const STACKS: &str = "/api/v1/stacks";
/// Where one stack's endpoints live in a daemon that follows many (`--config`): every
/// `/api/v1/…` endpoint, `/metrics` and `/hooks/git` of the single-stack form, under
/// `/api/v1/stacks/<name>`.
pub fn stack_prefix(name: &str) -> String {
    format!("{STACKS}/{name}")
}

/// The OpenAPI document of this API.
pub const OPENAPI: &str = "/api/v1/openapi.json";
