//! The daemon's HTTP API (`docs/RUNNING.md`), serving the contract of the `api` crate. Read
//! endpoints are open (bind to loopback or put them behind your network policy); mutating ones
//! need `Authorization: Bearer <token>`; the webhook needs a valid GitHub-style
//! `X-Hub-Signature-256`.

use crate::reconcile::{Command, Event, Shared};
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
}

pub fn router(api: Api) -> Router {
    Router::new()
        .route(routes::HEALTHZ, get(|| async { "ok\n" }))
        .route(routes::READYZ, get(readyz))
        .route(routes::METRICS, get(metrics))
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
        .with_state(api)
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

#[derive(serde::Deserialize)]
struct PlanQuery {
    /// Preview the plan of rolling back to this applied revision (nothing is changed).
    rollback: Option<String>,
}

async fn plan(
    State(api): State<Api>,
    axum::extract::Query(query): axum::extract::Query<PlanQuery>,
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

/// `None` when the request carries the token; otherwise the response refusing it.
fn refused(api: &Api, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &api.token else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "mutating endpoints are disabled: start the daemon with --token-file",
        ));
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if same(g.trim().as_bytes(), token.as_bytes()) => None,
        _ => Some(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        )),
    }
}

async fn command(api: &Api, command: Command) -> Response {
    let (reply, answer) = oneshot::channel();
    if api
        .shared
        .events
        .send(Event::Command(command, reply))
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
        Ok(Err(message)) => (StatusCode::CONFLICT, Json(Reply::refused(message))).into_response(),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        ),
    }
}

#[derive(serde::Deserialize)]
struct SyncQuery {
    /// `all`, or an address: scan for drift now and correct it (policy `correct`).
    correct: Option<String>,
    /// Apply even while a sync window is closed; the value is the reason, recorded with the
    /// API token as the actor.
    #[serde(rename = "override-window")]
    override_window: Option<String>,
}

async fn sync(
    State(api): State<Api>,
    axum::extract::Query(query): axum::extract::Query<SyncQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refused(&api, &headers) {
        return r;
    }
    match query.correct {
        Some(target) => {
            let only = (target != "all").then_some(target);
            command(&api, Command::CorrectDrift(only)).await
        }
        None => {
            let override_window = match query.override_window {
                Some(reason) if reason.trim().is_empty() => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "override-window needs a reason: ?override-window=why",
                    );
                }
                Some(reason) => Some(crate::reconcile::WindowOverride {
                    actor: "API token holder".into(),
                    reason,
                }),
                None => None,
            };
            command(&api, Command::Sync { override_window }).await
        }
    }
}

async fn rollback(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = refused(&api, &headers) {
        return r;
    }
    let Ok(request) = serde_json::from_slice::<RollbackRequest>(&body) else {
        return error(StatusCode::BAD_REQUEST, "expected {\"revision\": \"REV\"}");
    };
    command(&api, Command::Rollback(request.revision)).await
}

async fn approve(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = refused(&api, &headers) {
        return r;
    }
    let Ok(request) = serde_json::from_slice::<api::ApproveRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"revision\": \"REV\", \"plan_hash\": \"HASH\"}",
        );
    };
    command(
        &api,
        Command::Approve {
            revision: request.revision,
            plan_hash: request.plan_hash,
            actor: "API token holder".into(),
        },
    )
    .await
}

async fn wake(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = refused(&api, &headers) {
        return r;
    }
    let Ok(request) = serde_json::from_slice::<api::WakeRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"address\": \"ai-endpoint/NAME\"}",
        );
    };
    command(
        &api,
        Command::Wake {
            address: request.address,
            actor: "API token holder".into(),
        },
    )
    .await
}

async fn resume(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&api, &headers) {
        return r;
    }
    command(&api, Command::Resume).await
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
    match api.shared.events.try_send(Event::Webhook) {
        Ok(()) | Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
            (StatusCode::ACCEPTED, Json(Reply::done("fetch scheduled"))).into_response()
        }
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        ),
    }
}
