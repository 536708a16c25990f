//! Finished applies announced to Slack, a signed webhook and GitHub commit statuses, with
//! retries and nothing secret in the store.

mod support;

use support::running::{service, work_dir};

use serde_json::Value;
use std::time::Duration;
use support::PLATFORM;

use support::running::{Daemon, Remote};

#[test]
fn finished_applies_are_announced_to_slack_a_signed_webhook_and_github_with_retries() {
    let slack = Receiver::start(0);
    let webhook = Receiver::start(2); // fails twice, then accepts
    let github = Receiver::start(0);
    let remote = Remote::new();
    let c1 = remote.push(
        &[("platform.kdl", PLATFORM), ("api.kdl", &service(2))],
        "first",
    );
    let dir = work_dir();
    std::fs::write(dir.path().join("notify-secret"), "hmac-key-789").unwrap();
    let slack_url = format!("slack={}/services/T0/B0/x", slack.url());
    let webhook_url = format!("webhook={}/hooks/platformd", webhook.url());
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &[
            "--path",
            "stack",
            "--interval",
            "300ms",
            "--notify",
            &slack_url,
            "--notify",
            &webhook_url,
            "--notify",
            "github=acme/platform-state",
            "--notify-secret-file",
            "notify-secret",
        ],
        &[
            ("GITHUB_TOKEN", "gh-token-abc"),
            ("PLATFORMD_GITHUB_API", &github.url()),
        ],
    );
    // The apply is not held back by the failing receiver.
    daemon.wait_applied(&c1);
    daemon.wait("slack and github", |_| {
        !slack.seen().is_empty() && !github.seen().is_empty()
    });
    let (_, _, text) = &slack.seen()[0];
    let text: Value = serde_json::from_str(text).unwrap();
    assert!(
        text["text"]
            .as_str()
            .unwrap()
            .contains(&format!("platformd applied {} to shop", &c1[..12])),
        "{text}"
    );
    let (path, _, status) = &github.seen()[0];
    assert_eq!(path, &format!("/repos/acme/platform-state/statuses/{c1}"));
    let status: Value = serde_json::from_str(status).unwrap();
    assert_eq!(status["state"], "success");
    assert_eq!(status["context"], "platformd/shop");
    // The webhook failed twice and was retried with backoff until it accepted.
    daemon.wait("the webhook accepted", |_| webhook.seen().len() >= 3);
    for (path, signature, body) in webhook.seen() {
        assert_eq!(path, "/hooks/platformd");
        let expected = test_support::net::github_signature(b"hmac-key-789", body.as_bytes());
        assert_eq!(signature.as_deref(), Some(expected.as_str()), "signed");
        let event: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(event["event"], "apply.finished");
        assert_eq!(event["revision"], c1.as_str());
        assert_eq!(event["status"], "succeeded");
    }
    // Delivered once each: no duplicate after success.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(slack.seen().len(), 1);
    assert_eq!(webhook.seen().len(), 3);
    // Tokens and target URLs stay out of the store (its file and write-ahead log, raw).
    let mut raw = Vec::new();
    for file in ["platformd.db", "platformd.db-wal"] {
        raw.extend(std::fs::read(dir.path().join(".platformd").join(file)).unwrap_or_default());
    }
    let raw = String::from_utf8_lossy(&raw);
    assert!(
        raw.contains("webhook-"),
        "deliveries are recorded by target hash"
    );
    assert!(!raw.contains("gh-token-abc") && !raw.contains("/services/T0/B0/x"));
}

/// A request a receiver got: path, signature header, body.
type Received = (String, Option<String>, String);

/// A loopback HTTP receiver that records every request and answers 500 to the first `failures`.
struct Receiver {
    server: test_support::net::LoopbackServer,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(failures: usize) -> Receiver {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let seen: std::sync::Arc<std::sync::Mutex<Vec<Received>>> = Default::default();
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let record = seen.clone();
        let server = test_support::net::LoopbackServer::start(1, move |listener| async move {
            let app = axum::Router::new().fallback(
                move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
                    let record = record.clone();
                    let count = count.clone();
                    async move {
                        let signature = headers
                            .get("x-platformd-signature-256")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        record
                            .lock()
                            .unwrap()
                            .push((uri.path().to_string(), signature, body));
                        if count.fetch_add(1, Ordering::SeqCst) < failures {
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR
                        } else {
                            axum::http::StatusCode::OK
                        }
                    }
                },
            );
            let _ = axum::serve(listener, app).await;
        });
        Receiver { server, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}
