//! The daemon's HTTP API (`docs/RUNNING.md`), serving the contract of the `api` crate. Read
//! endpoints are open (bind to loopback or put them behind your network policy); mutating ones
//! need `Authorization: Bearer <token>` of a write-scoped token (named tokens in the store,
//! `platformd token`, or the `--token-file` token), are logged with the token's name and are rate
//! limited per token; request bodies are limited in size; the webhook needs a valid GitHub-style
//! `X-Hub-Signature-256`.

use crate::reconcile::{Command, ErrorClass, Event, Shared};
use crate::store::TokenScope;
use api::{DriftBody, Reply, RevisionsBody, RollbackRequest, routes};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::oneshot;

#[derive(Clone)]
pub struct Api {
    pub shared: Arc<Shared>,
    pub token: Option<String>,
    pub webhook_secret: Option<Vec<u8>>,
    /// Mutating requests per token: a bucket of `rate.burst` refilled at `rate.per_second`.
    pub limiter:
        Arc<std::sync::Mutex<std::collections::HashMap<String, (f64, std::time::Instant)>>>,
    pub rate: RateLimit,
    /// Webhook deliveries already accepted: a replayed one is refused.
    pub deliveries: Arc<std::sync::Mutex<Deliveries>>,
}

/// The signed webhook deliveries seen lately, by the digest of their signed body and by their
/// delivery id (`X-GitHub-Delivery`, `X-Gitlab-Event-UUID`, `X-Platformd-Delivery`). The
/// signature covers only the body, so the body's digest is what a replay cannot change; the id
/// also catches a provider's redelivery. The last [`Deliveries::KEPT`] are kept, for a day; an
/// older replay only makes the daemon fetch the real remote again.
#[derive(Default)]
pub struct Deliveries {
    seen: std::collections::HashMap<String, std::time::Instant>,
    order: std::collections::VecDeque<String>,
}

impl Deliveries {
    pub const KEPT: usize = 4096;
    const FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

    /// Records the delivery's keys; false when one of them was seen within the window.
    fn first_time(&mut self, keys: &[String]) -> bool {
        let now = std::time::Instant::now();
        if keys.iter().any(|k| {
            self.seen
                .get(k)
                .is_some_and(|at| now.duration_since(*at) < Self::FOR)
        }) {
            return false;
        }
        for key in keys {
            self.seen.insert(key.clone(), now);
            self.order.push_back(key.clone());
        }
        while self.order.len() > Self::KEPT {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

/// Headers that name a webhook delivery, by provider.
const DELIVERY_HEADERS: [&str; 3] = [
    "x-github-delivery",
    "x-gitlab-event-uuid",
    "x-platformd-delivery",
];

/// Mutating requests a token may make: sustained per second, and in a burst.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 2.0,
            burst: 10.0,
        }
    }
}

impl Api {
    pub fn new(shared: Arc<Shared>, token: Option<String>, webhook_secret: Option<Vec<u8>>) -> Api {
        Api {
            shared,
            token,
            webhook_secret,
            limiter: Arc::default(),
            rate: RateLimit::default(),
            deliveries: Arc::default(),
        }
    }
}

/// The largest request body accepted (a rollback, approval or wake is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Who is calling: the name history records as the actor.
struct Caller {
    actor: String,
}

pub fn router(api: Api) -> Router {
    let one = vec![StackEntry {
        name: None,
        shared: api.shared.clone(),
    }];
    Router::new()
        .route(routes::HEALTHZ, get(|| async { "ok\n" }))
        .route(routes::READYZ, get(readyz))
        .route(routes::METRICS, get(metrics))
        .route(routes::STACKS, get(list_stacks).with_state(Arc::new(one)))
        .route(routes::STATUS, get(status))
        .route(routes::REVISIONS, get(revisions))
        .route(routes::PLAN, get(plan))
        .route(routes::DRIFT, get(drift))
        .route(routes::RESOURCES, get(resources))
        .route(routes::SYNC, post(sync))
        .route(routes::APPROVE, post(approve))
        .route(routes::WAKE, post(wake))
        .route(routes::ROLLBACK, post(rollback))
        .route(routes::RESUME, post(resume))
        .route(routes::WEBHOOK, post(webhook))
        .route(
            routes::OPENAPI,
            get(|| async {
                (
                    [("content-type", "application/json")],
                    api::OPENAPI_DOCUMENT,
                )
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

/// One stack of a daemon, for the endpoints about all of them.
#[derive(Clone)]
pub struct StackEntry {
    /// `None` in the single-stack form.
    pub name: Option<String>,
    pub shared: Arc<Shared>,
}

/// The router of a daemon that follows many stacks (`--config`): each stack's endpoints under
/// `/api/v1/stacks/<name>` (the single-stack form's paths, `/api/v1` dropped), and the stack
/// list, health, readiness and every stack's metrics (labelled `stack`) at the top.
pub fn multi_router(stacks: Vec<(String, Api)>) -> Router {
    let entries: Arc<Vec<StackEntry>> = Arc::new(
        stacks
            .iter()
            .map(|(name, api)| StackEntry {
                name: Some(name.clone()),
                shared: api.shared.clone(),
            })
            .collect(),
    );
    let mut router = Router::new()
        .route(routes::HEALTHZ, get(|| async { "ok\n" }))
        .route(routes::READYZ, get(all_ready))
        .route(routes::METRICS, get(all_metrics))
        .route(routes::STACKS, get(list_stacks))
        .route(
            routes::OPENAPI,
            get(|| async {
                (
                    [("content-type", "application/json")],
                    api::OPENAPI_DOCUMENT,
                )
            }),
        )
        .with_state(entries);
    for (name, api) in stacks {
        router = router.nest(&routes::stack_prefix(&name), stack_router(api));
    }
    router
}

/// One stack's endpoints, relative to its prefix.
fn stack_router(api: Api) -> Router {
    let rel = |path: &'static str| path.strip_prefix("/api/v1").unwrap_or(path);
    Router::new()
        .route(routes::METRICS, get(metrics))
        .route(rel(routes::STATUS), get(status))
        .route(rel(routes::REVISIONS), get(revisions))
        .route(rel(routes::PLAN), get(plan))
        .route(rel(routes::DRIFT), get(drift))
        .route(rel(routes::RESOURCES), get(resources))
        .route(rel(routes::SYNC), post(sync))
        .route(rel(routes::APPROVE), post(approve))
        .route(rel(routes::WAKE), post(wake))
        .route(rel(routes::ROLLBACK), post(rollback))
        .route(rel(routes::RESUME), post(resume))
        .route(routes::WEBHOOK, post(webhook))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            owned_here,
        ))
        .with_state(api)
}

/// A stack another replica reconciles is not answered here: its state lives in that
/// replica's loop. 503 with the owner's name (also in `X-Platformd-Owner`), so a client or a
/// proxy can go there.
async fn owned_here(
    State(api): State<Api>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let elsewhere = api
        .shared
        .elsewhere
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match elsewhere {
        None => next.run(request).await,
        Some(owner) => {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "this stack is reconciled by replica `{owner}`; ask it (GET /api/v1/stacks on any replica shows who owns what)"
                ),
            );
            if let Ok(value) = axum::http::HeaderValue::from_str(&owner) {
                response.headers_mut().insert("x-platformd-owner", value);
            }
            response
        }
    }
}

/// The stacks and where each stands.
fn stack_summaries(entries: &[StackEntry]) -> api::StacksBody {
    api::StacksBody {
        stacks: entries
            .iter()
            .map(|e| {
                let status = e.shared.status();
                api::StackSummary {
                    name: e.name.clone().or(status.stack.clone()).unwrap_or_default(),
                    source: status.source,
                    sync_state: status.sync_state,
                    applied_revision: status.applied_revision,
                    last_error: status.last_error,
                    ready: e.shared.ready.load(Ordering::SeqCst),
                    owner: e
                        .shared
                        .elsewhere
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone(),
                }
            })
            .collect(),
    }
}

async fn list_stacks(State(entries): State<Arc<Vec<StackEntry>>>) -> Response {
    Json(stack_summaries(&entries)).into_response()
}

/// Ready once every stack has reconciled its first revision, refused it as invalid, or failed
/// to read it: a stack that cannot be fetched keeps only itself out of sync, never the process
/// out of service.
async fn all_ready(State(entries): State<Arc<Vec<StackEntry>>>) -> Response {
    let waiting: Vec<String> = entries
        .iter()
        .filter(|e| {
            e.shared
                .elsewhere
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
        })
        .filter(|e| {
            !e.shared.ready.load(Ordering::SeqCst) && e.shared.status().last_error.is_none()
        })
        .filter_map(|e| e.name.clone())
        .collect();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("starting: {}\n", waiting.join(", ")),
        )
            .into_response()
    }
}

async fn all_metrics(State(entries): State<Arc<Vec<StackEntry>>>) -> Response {
    let texts: Vec<String> = entries.iter().map(|e| e.shared.metrics.render()).collect();
    (
        [("content-type", crate::reconcile::metrics::CONTENT_TYPE)],
        crate::reconcile::metrics::merge(&texts),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(Reply::error(message))).into_response()
}

async fn readyz(State(api): State<Api>) -> Response {
    if api.shared.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    (
        [("content-type", crate::reconcile::metrics::CONTENT_TYPE)],
        api.shared.metrics.render(),
    )
        .into_response()
}

async fn status(State(api): State<Api>) -> Response {
    Json(api.shared.status()).into_response()
}

async fn revisions(State(api): State<Api>) -> Response {
    let store = api.shared.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::store::StoreError>(RevisionsBody {
            revisions: store.revisions(200)?,
            applies: store.history()?,
        })
    })
    .await;
    match result {
        Ok(Ok(body)) => Json(body).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn plan(
    State(api): State<Api>,
    axum::extract::Query(query): axum::extract::Query<api::PlanQuery>,
) -> Response {
    if let Some(revision) = query.rollback {
        let store = api.shared.store.clone();
        let preview = tokio::task::spawn_blocking(move || {
            crate::ops::rollback_preview(&store, &revision, Vec::new())
                .map(|(_, _, planned)| planned.plan)
                .map_err(|e| e.to_string())
        })
        .await;
        return match preview {
            Ok(Ok(plan)) => (
                [("content-type", "application/json")],
                planner::render::json(&plan),
            )
                .into_response(),
            Ok(Err(e)) => error(StatusCode::NOT_FOUND, &e),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
    }
    match api
        .shared
        .plan
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        Some(plan) => (
            [("content-type", "application/json")],
            planner::render::json(plan),
        )
            .into_response(),
        None => error(StatusCode::NOT_FOUND, "no plan yet"),
    }
}

async fn drift(State(api): State<Api>) -> Response {
    let findings = api
        .shared
        .drift
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Json(DriftBody { findings }).into_response()
}

async fn resources(State(api): State<Api>) -> Response {
    let shared = api.shared.clone();
    let result = tokio::task::spawn_blocking(move || {
        let findings = shared
            .drift
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let live = shared
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        crate::ops::resource_statuses(&shared.store, &findings, &live)
    })
    .await;
    match result {
        Ok(Ok(resources)) => Json(api::ResourcesBody { resources }).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Constant-time comparison, so response timing does not reveal the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The caller of a mutating request, or the response refusing it: 401 without a known token,
/// 403 for a read-scoped one, 429 over the rate limit. Every accepted request is logged with its
/// token's name.
async fn authorize(api: &Api, headers: &HeaderMap, what: &str) -> Result<Caller, Response> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_string);
    let legacy = given
        .as_deref()
        .zip(api.token.as_deref())
        .is_some_and(|(g, t)| same(g.as_bytes(), t.as_bytes()));
    let (name, scope) = if legacy {
        ("API token holder".to_string(), TokenScope::Write)
    } else {
        let store = api.shared.store.clone();
        let presented = given.clone();
        let found = tokio::task::spawn_blocking(move || match presented {
            Some(t) => store.authenticate(&t),
            None => Ok(None),
        })
        .await;
        match found {
            Ok(Ok(Some(found))) => found,
            Ok(Ok(None)) => {
                let configured = api.token.is_some()
                    || api
                        .shared
                        .store
                        .tokens()
                        .map(|t| !t.is_empty())
                        .unwrap_or(true);
                tracing::warn!(request = what, "API request without a valid token refused");
                // Guessing is throttled: failures share one bucket, so a client that keeps
                // presenting wrong tokens is answered 429 before its next guess is checked.
                if !take_one(api, FAILED_AUTHENTICATION) {
                    let mut r = error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too many failed authentications; retry in a second",
                    );
                    r.headers_mut()
                        .insert("retry-after", axum::http::HeaderValue::from_static("1"));
                    return Err(r);
                }
                return Err(if configured {
                    error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
                } else {
                    error(
                        StatusCode::FORBIDDEN,
                        "mutating endpoints are disabled: make a token with `platformd token create NAME`, or start the daemon with --token-file",
                    )
                });
            }
            Ok(Err(e)) => return Err(error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())),
            Err(e) => return Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
        }
    };
    if scope != TokenScope::Write {
        tracing::warn!(token = %name, request = what, "read-scoped token refused a mutating request");
        return Err(error(
            StatusCode::FORBIDDEN,
            &format!("token `{name}` is read-only; this request needs a write-scoped token"),
        ));
    }
    if !take_one(api, &name) {
        tracing::warn!(token = %name, request = what, "rate limit reached");
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many mutating requests for this token; retry in a second",
        );
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return Err(r);
    }
    tracing::info!(token = %name, request = what, "API request");
    Ok(Caller {
        actor: if legacy {
            name
        } else {
            format!("token {name}")
        },
    })
}

/// The rate-limit bucket every failed authentication takes from.
const FAILED_AUTHENTICATION: &str = "\u{0}failed authentication";

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 7235), and any run of spaces may follow it.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Takes one request from `key`'s bucket; false when it is empty.
fn take_one(api: &Api, key: &str) -> bool {
    let mut buckets = api.limiter.lock().unwrap_or_else(|e| e.into_inner());
    let now = std::time::Instant::now();
    let RateLimit { per_second, burst } = api.rate;
    let (tokens, at) = buckets.entry(key.to_string()).or_insert((burst, now));
    *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
    *at = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        true
    } else {
        false
    }
}

async fn command(api: &Api, caller: Caller, command: Command) -> Response {
    let (reply, answer) = oneshot::channel();
    if api
        .shared
        .events
        .send(Event::Command(command, caller.actor, reply))
        .await
        .is_err()
    {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        );
    }
    match answer.await {
        Ok(Ok(message)) => Json(Reply::done(message)).into_response(),
        Ok(Err(refused)) => {
            let status = match refused.class() {
                ErrorClass::NotFound => StatusCode::NOT_FOUND,
                ErrorClass::Conflict => StatusCode::CONFLICT,
                ErrorClass::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
                ErrorClass::Failed => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, Json(Reply::refused(refused.to_string()))).into_response()
        }
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        ),
    }
}

async fn sync(
    State(api): State<Api>,
    axum::extract::Query(query): axum::extract::Query<api::SyncQuery>,
    headers: HeaderMap,
) -> Response {
    let caller = match authorize(&api, &headers, "sync").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if query
        .override_window
        .as_deref()
        .is_some_and(|r| r.trim().is_empty())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "override-window needs a reason: ?override-window=why",
        );
    }
    let override_window = query
        .override_window
        .map(|reason| crate::reconcile::WindowOverride {
            actor: caller.actor.clone(),
            reason,
        });
    match query.correct {
        Some(target) if target.trim().is_empty() => error(
            StatusCode::BAD_REQUEST,
            "correct= needs `all` or an address: ?correct=service/api",
        ),
        Some(target) => {
            let only = (target != "all").then_some(target);
            let correct = Command::CorrectDrift {
                only,
                override_window,
            };
            command(&api, caller, correct).await
        }
        None => command(&api, caller, Command::Sync { override_window }).await,
    }
}

async fn rollback(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match authorize(&api, &headers, "rollback").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(request) = serde_json::from_slice::<RollbackRequest>(&body) else {
        return error(StatusCode::BAD_REQUEST, "expected {\"revision\": \"REV\"}");
    };
    command(&api, caller, Command::Rollback(request.revision)).await
}

async fn approve(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match authorize(&api, &headers, "approve").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(request) = serde_json::from_slice::<api::ApproveRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"revision\": \"REV\", \"plan_hash\": \"HASH\"}",
        );
    };
    let actor = caller.actor.clone();
    command(
        &api,
        caller,
        Command::Approve {
            revision: request.revision,
            plan_hash: request.plan_hash,
            actor,
        },
    )
    .await
}

async fn wake(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match authorize(&api, &headers, "wake").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(request) = serde_json::from_slice::<api::WakeRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"address\": \"ai-endpoint/NAME\"}",
        );
    };
    let actor = caller.actor.clone();
    command(
        &api,
        caller,
        Command::Wake {
            address: request.address,
            actor,
        },
    )
    .await
}

async fn resume(State(api): State<Api>, headers: HeaderMap) -> Response {
    let caller = match authorize(&api, &headers, "resume").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    command(&api, caller, Command::Resume).await
}

/// GitHub-style push webhook: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
async fn webhook(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &api.webhook_secret else {
        return error(
            StatusCode::FORBIDDEN,
            "webhooks are disabled: start the daemon with --webhook-secret-file",
        );
    };
    let header = headers
        .get(api::webhook::SIGNATURE_HEADER)
        .map(|v| v.as_bytes());
    if !api::webhook::signature_is_valid(secret, header, &body) {
        tracing::warn!("webhook with a missing or bad signature rejected");
        return error(StatusCode::UNAUTHORIZED, "bad signature");
    }
    if !take_one(&api, "webhook") {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many webhooks; retry in a second",
        );
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&body);
    let mut keys = vec![format!(
        "body:{}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )];
    keys.extend(DELIVERY_HEADERS.iter().filter_map(|h| {
        let id = headers.get(*h)?.to_str().ok()?.trim();
        (!id.is_empty()).then(|| format!("id:{id}"))
    }));
    let first = api
        .deliveries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .first_time(&keys);
    if !first {
        tracing::warn!("webhook delivery replayed; refused");
        return error(StatusCode::CONFLICT, "this delivery was already received");
    }
    match api.shared.events.try_send(Event::Webhook) {
        Ok(()) => (StatusCode::ACCEPTED, Json(Reply::done("fetch scheduled"))).into_response(),
        // A full queue: the fetch is coalesced into the loop's next event, never dropped.
        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
            api.shared.fetch_requested.store(true, Ordering::SeqCst);
            (StatusCode::ACCEPTED, Json(Reply::done("fetch scheduled"))).into_response()
        }
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        ),
    }
}
