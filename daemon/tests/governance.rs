//! The daemon's gates end to end: sync windows (a change waits, an override applies and is
//! recorded), approvals (manual stacks, approval scopes, sync and resume never skipping one).

mod support;

use support::running::{manual_platform, service, work_dir};

use serde_json::Value;
use std::process::Command;
use support::PLATFORM;

use support::running::{Daemon, Remote};
use test_support::net::request as http;

/// The weekend freeze: Fridays 22:00 Berlin for 60 hours, so until Monday 10:00 Berlin
/// (09:00 UTC).
fn frozen_platform() -> String {
    PLATFORM.replace(
        "    environment \"test\"\n",
        "    environment \"test\"\n    window \"deny\" schedule=\"0 22 * * fri\" duration=\"60h\" timezone=\"Europe/Berlin\"\n",
    )
}

#[test]
fn a_commit_during_a_deny_window_waits_and_is_applied_when_the_window_ends() {
    let remote = Remote::new();
    let c1 = remote.push(
        &[
            ("platform.kdl", &frozen_platform()),
            ("api.kdl", &service(2)),
        ],
        "during the freeze",
    );
    let dir = work_dir();
    // Eight seconds before the freeze ends.
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &["--path", "stack", "--interval", "300ms"],
        &[("PLATFORMD_FAKE_NOW", "2026-11-30T08:59:52Z")],
    );
    let status = daemon.status();
    assert_eq!(status["sync_state"], "window-closed", "{status}");
    assert_eq!(status["applied_revision"], Value::Null);
    assert_eq!(status["window"]["opens_at"], "2026-11-30T09:00:00Z");
    assert!(
        status["window"]["reason"]
            .as_str()
            .unwrap()
            .contains("deny window \"0 22 * * fri\" for 60h (Europe/Berlin)"),
        "{status}"
    );
    let rendered = dir.path().join(".platformd/rendered/service/api.yaml");
    assert!(!rendered.exists(), "nothing applied during the freeze");
    // Not dropped: applied once the window ends.
    daemon.wait_applied(&c1);
    let status = daemon.status();
    assert_eq!(status["sync_state"], "synced");
    assert_eq!(status["window"], Value::Null);
    assert!(rendered.exists());
}

#[test]
fn an_api_override_applies_inside_a_deny_window_and_is_recorded() {
    let remote = Remote::new();
    let c1 = remote.push(
        &[
            ("platform.kdl", &frozen_platform()),
            ("api.kdl", &service(2)),
        ],
        "hotfix",
    );
    let dir = work_dir();
    // Saturday noon: deep in the freeze.
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &["--path", "stack", "--interval", "300ms"],
        &[("PLATFORMD_FAKE_NOW", "2026-11-28T12:00:00Z")],
    );
    assert_eq!(daemon.status()["sync_state"], "window-closed");
    // A plain sync is held back too.
    let (code, body) = daemon.post("/api/v1/sync", "");
    assert_eq!(code, 409, "{body}");
    assert!(
        body.to_string().contains("a sync window is closed"),
        "{body}"
    );
    let (code, _) = daemon.post("/api/v1/sync?override-window=", "");
    assert_eq!(code, 400, "an override needs a reason");
    let (code, body) = daemon.post("/api/v1/sync?override-window=checkout%20is%20down", "");
    assert_eq!(code, 200, "{body}");
    daemon.wait_applied(&c1);
    let out = Command::new(env!("CARGO_BIN_EXE_platformd"))
        .args(["history"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let history = String::from_utf8_lossy(&out.stdout);
    assert!(
        history.contains("Sync window overrides:")
            && history.contains("API token holder overrode the sync window to apply")
            && history.contains("checkout is down"),
        "{history}"
    );
}

fn pending(daemon: &Daemon) -> (String, String) {
    let status = daemon.status();
    (
        status["pending_approval"]["revision"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        status["pending_approval"]["plan_hash"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Any write token turned `awaiting-approval` into `synced` through `POST /sync` or `/resume`,
/// recorded with no approval (`docs/SECURITY.md`): both go through the same approval as the
/// loop's own applies, and only an approval of the waiting plan applies it.
#[test]
fn sync_and_resume_do_not_skip_a_waiting_approval() {
    let remote = Remote::new();
    let c1 = remote.push(
        &[
            ("platform.kdl", &manual_platform()),
            ("api.kdl", &service(2)),
        ],
        "first",
    );
    let dir = work_dir();
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &["--path", "stack", "--interval", "300ms"],
        &[],
    );
    assert_eq!(daemon.status()["sync_state"], "awaiting-approval");
    let rendered = dir.path().join(".platformd/rendered/service/api.yaml");
    for path in ["/api/v1/sync", "/api/v1/resume"] {
        let (code, body) = daemon.post(path, "");
        assert_eq!(code, 409, "{path}: {body}");
        assert!(
            body.to_string().contains("waits for approval"),
            "{path}: {body}"
        );
        let status = daemon.status();
        assert_eq!(
            status["sync_state"], "awaiting-approval",
            "{path}: {status}"
        );
        assert_eq!(status["pending_approval"]["revision"], c1.as_str());
        assert!(!rendered.exists(), "{path} applied without an approval");
    }
    let (_, hash) = pending(&daemon);
    let (code, body) = daemon.post(
        "/api/v1/approve",
        &format!(r#"{{"revision": "{c1}", "plan_hash": "{hash}"}}"#),
    );
    assert_eq!(code, 200, "{body}");
    daemon.wait_applied(&c1);
    assert!(rendered.exists());
}

#[test]
fn a_manual_stack_applies_only_the_exact_plan_that_was_approved() {
    let remote = Remote::new();
    let c1 = remote.push(
        &[
            ("platform.kdl", &manual_platform()),
            ("api.kdl", &service(2)),
        ],
        "first",
    );
    let dir = work_dir();
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &["--path", "stack", "--interval", "300ms"],
        &[],
    );
    let status = daemon.status();
    assert_eq!(status["sync_state"], "awaiting-approval", "{status}");
    let (revision, h1) = pending(&daemon);
    assert_eq!(revision, c1);
    assert_eq!(h1.len(), 64);
    let rendered = dir.path().join(".platformd/rendered/service/api.yaml");
    assert!(!rendered.exists(), "nothing applied before approval");

    // A new commit changes the plan: the earlier approval target is gone.
    let c2 = remote.push(&[("api.kdl", &service(3))], "three replicas");
    daemon.wait("the new plan waits", |d| pending(d).0 == c2);
    let (_, h2) = pending(&daemon);
    assert_ne!(h1, h2);
    let (code, body) = daemon.post(
        "/api/v1/approve",
        &format!(r#"{{"revision": "{c1}", "plan_hash": "{h1}"}}"#),
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body.to_string().contains("does not wait for approval"),
        "{body}"
    );
    // The CLI refuses a hash that is not the waiting plan's.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_platformd"))
            .args(args)
            .current_dir(dir.path())
            .env("USER", "bob")
            .output()
            .unwrap()
    };
    let stale = cli(&["approve", &c2, "--plan-hash", &h1[..12], "--yes"]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("has changed since"),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    assert!(!rendered.exists());
    // Approved with the CLI: the daemon applies it at its next poll.
    let ok = cli(&["approve", &c2[..10], "--plan-hash", &h2[..12], "--yes"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("Approved by bob"));
    daemon.wait_applied(&c2);
    assert!(
        std::fs::read_to_string(&rendered)
            .unwrap()
            .contains("replicas: 3")
    );

    // Approved through the API: applied at once.
    let c3 = remote.push(&[("api.kdl", &service(4))], "four replicas");
    daemon.wait("c3 waits", |d| pending(d).0 == c3);
    let (_, h3) = pending(&daemon);
    let (code, body) = daemon.post(
        "/api/v1/approve",
        &format!(r#"{{"revision": "{c3}", "plan_hash": "{h3}"}}"#),
    );
    assert_eq!(code, 200, "{body}");
    daemon.wait_applied(&c3);
    assert_eq!(daemon.status()["pending_approval"], Value::Null);
    // Each apply records who let it happen.
    let (_, body) = http(daemon.port, "GET", "/api/v1/revisions", &[], b"");
    let revisions: Value = serde_json::from_str(&body).unwrap();
    let actors: Vec<&str> = revisions["applies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["actor"].as_str())
        .collect();
    assert_eq!(
        actors,
        ["bob (approval)", "API token holder (approval)"],
        "{revisions}"
    );
}

#[test]
fn an_approval_scope_holds_back_only_plans_that_touch_it() {
    let scoped = PLATFORM.replace(
        "    environment \"test\"\n",
        "    environment \"test\"\n    approval {\n        kinds \"database\"\n    }\n",
    );
    let remote = Remote::new();
    let c1 = remote.push(
        &[("platform.kdl", &scoped), ("api.kdl", &service(2))],
        "first",
    );
    let dir = work_dir();
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &["--path", "stack", "--interval", "300ms"],
        &[],
    );
    // A service change applies by itself.
    daemon.wait_applied(&c1);
    // The estimate of the revision in force is a metric by team and kind.
    let (_, metrics) = http(daemon.port, "GET", "/metrics", &[], b"");
    assert!(
        metrics.contains("platformd_cost_monthly_usd{team=\"web\",kind=\"service\"}"),
        "{metrics}"
    );
    // A database waits for approval.
    let db = "database \"orders\" {\n    team \"web\"\n    engine \"postgres\" version=\"16\"\n    size \"db.t4g.medium\"\n}\n";
    let c2 = remote.push(&[("db.kdl", db)], "a database");
    daemon.wait("the database waits", |d| pending(d).0 == c2);
    assert_eq!(daemon.status()["sync_state"], "awaiting-approval");
    assert_eq!(daemon.status()["applied_revision"], c1.as_str());
}

/// The daemon's scheduled drift correction puts back what is applied and nothing more: a hand
/// edit is undone at the next drift tick, and while a newer revision waits for approval a
/// correction neither applies it nor ends the wait.
#[test]
fn scheduled_drift_correction_restores_what_is_applied_and_applies_nothing_waiting() {
    let dir = work_dir();
    let remote = Remote::new();
    let c1 = remote.push(
        &[("platform.kdl", PLATFORM), ("api.kdl", &service(1))],
        "first",
    );
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &[
            "--path",
            "stack",
            "--interval",
            "300ms",
            "--drift-interval",
            "300ms",
        ],
        &[],
    );
    daemon.wait_applied(&c1);
    let file = dir.path().join(".platformd/rendered/service/api.yaml");
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    assert!(read().contains("replicas: 1"), "{}", read());
    let tamper = || std::fs::write(&file, read().replace("replicas: 1", "replicas: 9")).unwrap();
    tamper();
    daemon.wait("the scheduled correction", |_| {
        read().contains("replicas: 1")
    });

    let c2 = remote.push(
        &[
            ("platform.kdl", &manual_platform()),
            ("api.kdl", &service(5)),
        ],
        "scale api, manual sync",
    );
    daemon.wait("the new revision to wait for approval", |d| {
        d.status()["sync_state"] == "awaiting-approval"
    });
    tamper();
    daemon.wait("the correction while a revision waits", |_| {
        read().contains("replicas: 1")
    });
    // A few more drift ticks: still what c1 applied, and c2 still waits.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert!(!read().contains("replicas: 5"), "{}", read());
    let status = daemon.status();
    assert_eq!(status["applied_revision"], c1, "{status}");
    assert_eq!(status["sync_state"], "awaiting-approval", "{status}");
    assert!(daemon.log().contains("corrected drift"), "{}", daemon.log());
    let _ = c2;
}
