//! Notifications: Slack incoming webhooks, generic webhooks signed with HMAC-SHA256, and GitHub
//! commit statuses. They are derived from the journal, not sent by the apply: the notifier reads
//! finished applies from the store (`Store::enqueue_notifications`), so nothing is announced
//! for an apply that did not finish, and delivers them with exponential backoff from its own
//! task, so a slow or failing receiver never blocks or fails an apply. Target URLs and tokens
//! stay in memory; the store keys deliveries by a hash of the target.

use crate::store::{Delivery, Store};
use std::time::Duration;

/// The header a signed webhook carries: `sha256=<hex HMAC-SHA256 of the body>`.
/// A notification target that cannot be used, or a delivery that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotifyError(String);

impl From<String> for NotifyError {
    fn from(message: String) -> NotifyError {
        NotifyError(message)
    }
}

pub const SIGNATURE_HEADER: &str = "X-Platformd-Signature-256";

/// Attempts before a delivery is given up (with backoff, about an hour in all).
const MAX_ATTEMPTS: i64 = 12;

/// Where notifications go.
#[derive(Clone)]
pub enum Target {
    Slack {
        url: String,
    },
    Webhook {
        url: String,
        secret: Option<Vec<u8>>,
    },
    /// Commit statuses on `owner/repo`, through `api` (https://api.github.com by default).
    GitHub {
        repo: String,
        api: String,
        token: String,
    },
}

impl std::fmt::Debug for Target {
    // URLs and tokens are credentials: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

impl Target {
    /// `slack=URL`, `webhook=URL` (signed with `secret` when given), `github=OWNER/REPO` (the
    /// token from `GITHUB_TOKEN`, the API base from `PLATFORMD_GITHUB_API`).
    pub fn parse(spec: &str, secret: Option<&[u8]>) -> Result<Target, NotifyError> {
        let (kind, value) = spec.split_once('=').ok_or_else(|| {
            format!(
                "`{}` is not KIND=VALUE: use slack=URL, webhook=URL or github=OWNER/REPO",
                redact(spec)
            )
        })?;
        let url = |v: &str| -> Result<String, NotifyError> {
            if v.starts_with("https://") || v.starts_with("http://") {
                Ok(v.to_string())
            } else {
                Err(NotifyError::from(format!("{kind}= needs an http(s) URL")))
            }
        };
        match kind {
            "slack" => Ok(Target::Slack { url: url(value)? }),
            "webhook" => Ok(Target::Webhook {
                url: url(value)?,
                secret: secret.map(<[u8]>::to_vec),
            }),
            "github" => {
                if value.split('/').count() != 2 || value.split('/').any(str::is_empty) {
                    return Err(NotifyError::from(format!(
                        "github= needs OWNER/REPO, not `{value}`"
                    )));
                }
                let token = std::env::var("GITHUB_TOKEN")
                    .map_err(|_| "github= needs a token in GITHUB_TOKEN".to_string())?;
                let api = std::env::var("PLATFORMD_GITHUB_API")
                    .unwrap_or_else(|_| "https://api.github.com".into());
                Ok(Target::GitHub {
                    repo: value.to_string(),
                    api: api.trim_end_matches('/').to_string(),
                    token,
                })
            }
            other => Err(NotifyError::from(format!(
                "unknown notification target `{other}`: use slack, webhook or github"
            ))),
        }
    }

    /// How the store names this target: its kind and a hash of its configuration.
    pub fn key(&self) -> String {
        use sha2::Digest;
        let (kind, config) = match self {
            Target::Slack { url } => ("slack", url.clone()),
            Target::Webhook { url, .. } => ("webhook", url.clone()),
            Target::GitHub { repo, api, .. } => ("github", format!("{api} {repo}")),
        };
        let hash = sha2::Sha256::digest(config.as_bytes());
        let short: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("{kind}-{short}")
    }
}

/// `KIND=<redacted>`: what a bad spec is reported as.
fn redact(spec: &str) -> String {
    match spec.split_once('=') {
        Some((kind, _)) => format!("{kind}=…"),
        None => "…".into(),
    }
}

/// The JSON a generic webhook receives.
fn webhook_body(stack: &str, d: &Delivery) -> serde_json::Value {
    serde_json::json!({
        "event": "apply.finished",
        "stack": stack,
        "apply_id": d.apply.id,
        "revision": d.apply.revision,
        "reason": d.apply.reason.as_str(),
        "status": d.apply.status.as_str(),
        "summary": d.apply.summary,
        "started_at": d.apply.started_at,
        "finished_at": d.apply.finished_at,
    })
}

fn sentence(stack: &str, d: &Delivery) -> String {
    let verb = match d.apply.reason {
        api::ApplyReason::Rollback => "rolled back",
        api::ApplyReason::DriftCorrect => "corrected drift on",
        _ => "applied",
    };
    format!(
        "platformd {verb} {} to {stack}: {} ({})",
        d.apply.revision.get(..12).unwrap_or(&d.apply.revision),
        d.apply.summary.as_deref().unwrap_or("no summary"),
        d.apply.status
    )
}

pub struct Notifier {
    store: Store,
    /// Each target with its store key ([`Target::key`], computed once).
    targets: Vec<(String, Target)>,
    client: reqwest::Client,
}

impl Notifier {
    pub fn new(store: Store, targets: Vec<Target>) -> Result<Notifier, NotifyError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the notification client: {e}"))?;
        store
            .start_outbox()
            .map_err(|e| format!("cannot start notifications: {e}"))?;
        Ok(Notifier {
            store,
            targets: targets.into_iter().map(|t| (t.key(), t)).collect(),
            client,
        })
    }

    /// Queues and delivers until `stop` is set, every `tick`.
    pub async fn run(self, stop: std::sync::Arc<std::sync::atomic::AtomicBool>, tick: Duration) {
        let keys: Vec<String> = self.targets.iter().map(|(k, _)| k.clone()).collect();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            if let Err(e) = self.store.enqueue_notifications(&keys) {
                tracing::warn!(error = %e, "cannot queue notifications");
            }
            self.deliver_due().await;
            tokio::time::sleep(tick).await;
        }
    }

    async fn deliver_due(&self) {
        let due = match self.store.due_deliveries(32) {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read notifications");
                return;
            }
        };
        let stack = self.store.stack_name().ok().flatten().unwrap_or_default();
        for d in due {
            let Some((_, target)) = self.targets.iter().find(|(k, _)| *k == d.target) else {
                // A target no longer configured: dropped.
                let _ = self
                    .store
                    .delivery_failed(d.id, "target no longer configured", None);
                continue;
            };
            match self.send(target, &stack, &d).await {
                Ok(()) => {
                    tracing::info!(target = %d.target, apply = d.apply.id, "notification delivered");
                    if let Err(e) = self.store.delivered(d.id) {
                        tracing::warn!(error = %e, "cannot record a delivery");
                    }
                }
                Err(e) => {
                    let attempts = d.attempts + 1;
                    let retry_at = (attempts < MAX_ATTEMPTS)
                        .then(|| crate::store::now() + (1i64 << attempts.min(8)).min(300));
                    tracing::warn!(target = %d.target, apply = d.apply.id, attempts, error = %e, gave_up = retry_at.is_none(), "notification failed");
                    if let Err(e) = self.store.delivery_failed(d.id, &e.to_string(), retry_at) {
                        tracing::warn!(error = %e, "cannot record a failed delivery");
                    }
                }
            }
        }
    }

    async fn send(&self, target: &Target, stack: &str, d: &Delivery) -> Result<(), NotifyError> {
        let request = match target {
            Target::Slack { url } => self
                .client
                .post(url)
                .header("content-type", "application/json")
                .body(serde_json::json!({ "text": sentence(stack, d) }).to_string()),
            Target::Webhook { url, secret } => {
                let body = webhook_body(stack, d).to_string();
                let mut request = self
                    .client
                    .post(url)
                    .header("content-type", "application/json");
                if let Some(secret) = secret {
                    request = request.header(
                        SIGNATURE_HEADER,
                        api::webhook::sign(secret, body.as_bytes()),
                    );
                }
                request.body(body)
            }
            Target::GitHub { repo, api, token } => {
                // Statuses belong to commits: content revisions of a directory have none.
                let is_commit = d.apply.revision.len() == 40
                    && d.apply.revision.bytes().all(|b| b.is_ascii_hexdigit());
                if !is_commit {
                    return Ok(());
                }
                let state = match d.apply.status {
                    api::ApplyStatus::Succeeded => "success",
                    _ => "failure",
                };
                self.client
                    .post(format!("{api}/repos/{repo}/statuses/{}", d.apply.revision))
                    .bearer_auth(token)
                    .header("accept", "application/vnd.github+json")
                    .header("user-agent", "platformd")
                    .header("content-type", "application/json")
                    .body(
                        serde_json::json!({
                            "state": state,
                            "context": format!("platformd/{stack}"),
                            "description": sentence(stack, d).chars().take(140).collect::<String>(),
                        })
                        .to_string(),
                    )
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(NotifyError::from(format!(
                "the receiver answered {}",
                response.status()
            )))
        }
    }
}
