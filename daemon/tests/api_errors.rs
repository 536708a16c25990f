//! Every error an operator command can meet has its own status (`docs/RUNNING.md`, the OpenAPI
//! document): a malformed body 400, an unknown revision 404, a request the state does not allow
//! now 409 (a stale approval, nothing waiting, a resource that is not scaled down). The 422
//! cases (a plan blocked by policy, an ambiguous revision prefix) are classed in
//! `reconcile/errors.rs`, with its unit test.

mod support;

use support::running::{manual_platform, service};

use support::running::{Daemon, Remote};

#[test]
fn each_command_error_has_its_own_status() {
    let remote = Remote::new();
    let c1 = remote.push(
        &[
            ("platform.kdl", support::PLATFORM),
            ("api.kdl", &service(1)),
        ],
        "first",
    );
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &["--path", "stack", "--interval", "300ms"],
        &[],
    );
    daemon.wait_applied(&c1);

    // Malformed bodies: 400, nothing changed.
    for (path, body) in [
        ("/api/v1/rollback", "not json"),
        ("/api/v1/approve", r#"{"revision": 1}"#),
        ("/api/v1/wake", "{}"),
    ] {
        let (code, reply) = daemon.post(path, body);
        assert_eq!(code, 400, "{path}: {reply}");
    }
    // An unknown revision: 404.
    let (code, reply) = daemon.post("/api/v1/rollback", r#"{"revision": "0123456789abcdef"}"#);
    assert_eq!(code, 404, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no applied revision"),
        "{reply}"
    );
    // Nothing waits for approval: 409.
    let (code, reply) = daemon.post(
        "/api/v1/approve",
        &format!(r#"{{"revision": "{c1}", "plan_hash": "sha256:0"}}"#),
    );
    assert_eq!(code, 409, "{reply}");
    // A resource that is not scaled down: 409.
    let (code, reply) = daemon.post("/api/v1/wake", r#"{"address": "ai-endpoint/none"}"#);
    assert_eq!(code, 409, "{reply}");
    // A rollback to a revision that is not in the history, typed empty: 404 too.
    let (code, reply) = daemon.post("/api/v1/rollback", r#"{"revision": " "}"#);
    assert_eq!(code, 404, "{reply}");
    assert_eq!(
        daemon.status()["applied_revision"],
        c1.as_str(),
        "nothing changed"
    );

    // A manual stack: an approval of another plan than the one waiting is stale, 409.
    let manual = Remote::new();
    let m1 = manual.push(
        &[
            ("platform.kdl", &manual_platform()),
            ("api.kdl", &service(1)),
        ],
        "manual",
    );
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        dir.path(),
        &manual.url(),
        &["--path", "stack", "--interval", "300ms"],
        &[],
    );
    daemon.wait("a plan waiting", |d| {
        d.status()["pending_approval"]["revision"] == m1.as_str()
    });
    let (code, reply) = daemon.post(
        "/api/v1/approve",
        &format!(r#"{{"revision": "{m1}", "plan_hash": "sha256:stale"}}"#),
    );
    assert_eq!(code, 409, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or_default()
            .contains("has changed since"),
        "{reply}"
    );
    // Sync and resume meet the waiting plan: 409, naming it.
    for path in ["/api/v1/sync", "/api/v1/resume"] {
        let (code, reply) = daemon.post(path, "");
        assert_eq!(code, 409, "{path}: {reply}");
        assert!(
            reply["error"]
                .as_str()
                .unwrap_or_default()
                .contains("waits for approval"),
            "{path}: {reply}"
        );
    }
}
