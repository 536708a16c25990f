//! `platformd daemon` against real git remotes on loopback (`file://` and `git daemon`) and a
//! watched directory, observed through its HTTP API.

mod support;

use api::ApplyStatus;
use daemon::store::IntentResult;
use serde_json::Value;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{PLATFORM, Tally};

use support::running::{Daemon, Remote, SECRET};
use test_support::net::{free_port, request as http};

fn sign(body: &[u8]) -> String {
    test_support::net::github_signature(SECRET.as_bytes(), body)
}

fn service(replicas: u32) -> String {
    format!(
        "service \"api\" {{\n    team \"web\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    replicas {replicas}\n    port 8080\n}}\n"
    )
}

fn work_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn follows_a_file_remote_applies_pushes_and_survives_invalid_commits_force_pushes_and_outages() {
    let remote = Remote::new();
    let c1 = remote.push(
        &[("platform.kdl", PLATFORM), ("api.kdl", &service(2))],
        "first",
    );
    let dir = work_dir();
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &["--path", "stack", "--interval", "1s"],
        &[],
    );
    daemon.wait_applied(&c1);
    let rendered = dir.path().join(".platformd/rendered/service/api.yaml");
    assert!(
        std::fs::read_to_string(&rendered)
            .unwrap()
            .contains("replicas: 2")
    );

    // A pushed commit is applied on the next poll.
    let c2 = remote.push(&[("api.kdl", &service(4))], "scale api");
    daemon.wait_applied(&c2);
    assert!(
        std::fs::read_to_string(&rendered)
            .unwrap()
            .contains("replicas: 4")
    );

    // An invalid commit is recorded and surfaced; the last good revision stays applied.
    let bad = remote.push(
        &[(
            "api.kdl",
            "service \"api\" {\n    team \"web\"\n    replicas 4\n}\n",
        )],
        "break it",
    );
    daemon.wait("the invalid revision", |d| {
        let s = d.status();
        s["tracked_revision"] == bad.as_str() && s["sync_state"] == "invalid"
    });
    let status = daemon.status();
    assert_eq!(status["applied_revision"], c2.as_str());
    assert_eq!(status["sync_state"], "invalid");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("error[missing-field]"),
        "{status}"
    );
    let (_, revisions) = http(daemon.port, "GET", "/api/v1/revisions", &[], b"");
    let revisions: Value = serde_json::from_str(&revisions).unwrap();
    let bad_row = revisions["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["revision"] == bad.as_str())
        .unwrap();
    assert_eq!(bad_row["valid"], false);
    assert_eq!(bad_row["message"], "break it");

    // A force-push (history rewritten) is followed.
    remote.work.git(&["reset", "-q", "--hard", &c2]);
    let c3 = remote.push(&[("api.kdl", &service(6))], "rewritten history");
    daemon.wait_applied(&c3);
    assert!(
        std::fs::read_to_string(&rendered)
            .unwrap()
            .contains("replicas: 6")
    );

    // The remote goes away: the daemon keeps serving the last good revision, then recovers.
    let live = remote.dir.path().join("remote.git");
    let gone = remote.dir.path().join("remote.gone");
    std::fs::rename(&live, &gone).unwrap();
    daemon.wait("the fetch error", |d| {
        d.status()["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("serving"))
    });
    assert_eq!(http(daemon.port, "GET", "/healthz", &[], b"").0, 200);
    assert_eq!(daemon.status()["applied_revision"], c3.as_str());
    std::fs::rename(&gone, &live).unwrap();
    let c4 = remote.push(&[("api.kdl", &service(8))], "after the outage");
    daemon.wait_applied(&c4);

    let (_, metrics) = http(daemon.port, "GET", "/metrics", &[], b"");
    assert!(
        metrics.contains("platformd_revisions_invalid_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("platformd_fetch_failures_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("platformd_reconcile_duration_seconds_count"),
        "{metrics}"
    );
}

#[test]
fn a_signed_webhook_fetches_at_once_and_a_bad_signature_or_a_replay_changes_nothing() {
    let remote = Remote::new();
    let c1 = remote.push(
        &[("platform.kdl", PLATFORM), ("api.kdl", &service(2))],
        "first",
    );
    let dir = work_dir();
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &["--path", "stack", "--interval", "1h"],
        &[],
    );
    daemon.wait_applied(&c1);
    let c2 = remote.push(&[("api.kdl", &service(3))], "second");
    let body = br#"{"ref":"refs/heads/main"}"#;
    let (code, _) = http(
        daemon.port,
        "POST",
        "/hooks/git",
        &[("X-Hub-Signature-256", "sha256=00ff")],
        body,
    );
    assert_eq!(code, 401);
    let (code, _) = http(daemon.port, "POST", "/hooks/git", &[], body);
    assert_eq!(code, 401);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        daemon.status()["applied_revision"],
        c1.as_str(),
        "a bad signature changes nothing"
    );
    let signature = sign(body);
    let sent = Instant::now();
    let (code, _) = http(
        daemon.port,
        "POST",
        "/hooks/git",
        &[("X-Hub-Signature-256", &signature)],
        body,
    );
    assert_eq!(code, 202);
    daemon.wait_applied(&c2);
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "applied without waiting for the hourly poll"
    );
    // A captured delivery replayed, as is or under a new delivery id, is refused (the
    // signature covers only the body); a new delivery is accepted.
    for delivery in ["", "replayed-id-2"] {
        let (code, body_text) = http(
            daemon.port,
            "POST",
            "/hooks/git",
            &[
                ("X-Hub-Signature-256", &signature),
                ("X-GitHub-Delivery", delivery),
            ],
            body,
        );
        assert_eq!(code, 409, "{body_text}");
        assert!(body_text.contains("already received"), "{body_text}");
    }
    let next = br#"{"ref":"refs/heads/main","after":"2"}"#;
    let (code, _) = http(
        daemon.port,
        "POST",
        "/hooks/git",
        &[
            ("X-Hub-Signature-256", &sign(next)),
            ("X-GitHub-Delivery", "delivery-3"),
        ],
        next,
    );
    assert_eq!(code, 202);
    // The same delivery id again (a provider's redelivery) with another body: refused.
    let other = br#"{"ref":"refs/heads/main","after":"3"}"#;
    let (code, _) = http(
        daemon.port,
        "POST",
        "/hooks/git",
        &[
            ("X-Hub-Signature-256", &sign(other)),
            ("X-GitHub-Delivery", "delivery-3"),
        ],
        other,
    );
    assert_eq!(code, 409);
}

#[test]
fn follows_a_git_daemon_remote() {
    let remote = Remote::new();
    let c1 = remote.push(
        &[("platform.kdl", PLATFORM), ("api.kdl", &service(2))],
        "first",
    );
    let port = free_port();
    let base = remote.dir.path().to_str().unwrap().to_string();
    // Its own process group, so the connection handlers it forks are stopped with it.
    let git_daemon = Command::new("git")
        .args([
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={base}"),
            &base,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let _stop = StopGroup(git_daemon);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "git daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = work_dir();
    let daemon = Daemon::start(
        dir.path(),
        &format!("git://127.0.0.1:{port}/remote.git"),
        &["--path", "stack", "--interval", "1s"],
        &[],
    );
    daemon.wait_applied(&c1);
    let c2 = remote.push(&[("api.kdl", &service(5))], "second");
    daemon.wait_applied(&c2);
    drop(daemon);
}

struct StopGroup(Child);

impl Drop for StopGroup {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

#[test]
fn rollback_through_the_api_pins_until_a_new_commit_or_resume() {
    let remote = Remote::new();
    let c1 = remote.push(
        &[("platform.kdl", PLATFORM), ("api.kdl", &service(2))],
        "first",
    );
    let dir = work_dir();
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &["--path", "stack", "--interval", "300ms"],
        &[],
    );
    daemon.wait_applied(&c1);
    let c2 = remote.push(&[("api.kdl", &service(7))], "second");
    daemon.wait_applied(&c2);

    let (code, _) = http(
        daemon.port,
        "POST",
        "/api/v1/rollback",
        &[],
        br#"{"revision":"x"}"#,
    );
    assert_eq!(code, 401, "mutations need the token");
    let (code, body) = daemon.post(
        "/api/v1/rollback",
        &format!("{{\"revision\":\"{}\"}}", &c1[..12]),
    );
    assert_eq!(code, 200, "{body}");
    let status = daemon.status();
    assert_eq!(status["applied_revision"], c1.as_str());
    assert_eq!(status["pinned_revision"], c1.as_str());
    // Polls of the same tip do not undo the rollback.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(daemon.status()["applied_revision"], c1.as_str());
    let rendered = dir.path().join(".platformd/rendered/service/api.yaml");
    assert!(
        std::fs::read_to_string(&rendered)
            .unwrap()
            .contains("replicas: 2")
    );

    // Resume follows the branch again.
    let (code, body) = daemon.post("/api/v1/resume", "");
    assert_eq!(code, 200, "{body}");
    daemon.wait_applied(&c2);

    // Roll back again; this time a new commit on the branch ends the pin.
    let (code, _) = daemon.post("/api/v1/rollback", &format!("{{\"revision\":\"{c1}\"}}"));
    assert_eq!(code, 200);
    let c3 = remote.push(&[("api.kdl", &service(9))], "third");
    daemon.wait_applied(&c3);
    assert_eq!(daemon.status()["pinned_revision"], Value::Null);
}

#[test]
fn sigterm_mid_apply_finishes_calls_in_flight_and_exits_0_with_a_consistent_journal() {
    let dir = work_dir();
    let stack = dir.path().join("stack");
    test_support::generate::write_stack(&stack, 300, 9).unwrap();
    test_support::set_local_driver(&stack, &[("simulate-latency-ms", "40")]);
    let mut daemon = Daemon::spawn(dir.path(), "stack", &["--parallelism", "4"], &[]);
    let state_dir = dir.path().join(".platformd");
    daemon.wait("apply under way", |_| {
        Tally::of(&state_dir).is_some_and(|t| t.resources >= 20)
    });
    assert_eq!(daemon.terminate(), 0, "{}", daemon.log());
    let t = Tally::of(&state_dir).expect("store exists");
    assert!(t.resources < 300, "stopped mid-apply");
    assert_eq!(t.open_intents(), 0, "no open intents");
    assert_eq!(t.intents(None, IntentResult::Ok).len(), t.resources);
    assert_eq!(t.applies_with(ApplyStatus::Interrupted), 1);
    assert_eq!(t.lease, None, "the lease is released");
}

#[test]
fn directory_mode_applies_an_edit_after_the_debounce_and_a_burst_is_one_revision() {
    let dir = work_dir();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(stack.join("platform.kdl"), PLATFORM).unwrap();
    std::fs::write(stack.join("api.kdl"), service(1)).unwrap();
    let daemon = Daemon::start(
        dir.path(),
        "stack",
        &["--debounce", "400ms", "--interval", "1h"],
        &[],
    );
    daemon.wait("first apply", |d| d.status()["sync_state"] == "synced");
    let rendered = dir.path().join(".platformd/rendered/service/api.yaml");
    // A burst of edits 50 ms apart settles into one revision.
    for replicas in 2..=6 {
        std::fs::write(stack.join("api.kdl"), service(replicas)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.wait("the burst applied", |_| {
        std::fs::read_to_string(&rendered)
            .unwrap_or_default()
            .contains("replicas: 6")
    });
    std::thread::sleep(Duration::from_millis(800));
    let (_, body) = http(daemon.port, "GET", "/api/v1/revisions", &[], b"");
    let revisions: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        revisions["revisions"].as_array().unwrap().len(),
        2,
        "one revision for the start, one for the burst: {revisions}"
    );
}

/// The debounce reads and analyses the directory ahead of time. An edit made while that is
/// under way is not lost to it: the last of a burst of edits is what gets applied, as one
/// revision.
#[test]
fn directory_mode_an_edit_during_the_read_ahead_is_what_gets_applied() {
    let dir = work_dir();
    let stack = dir.path().join("stack");
    // Large enough that analysing it takes a while in a debug build.
    test_support::generate::write_stack(&stack, 2000, 5).unwrap();
    let daemon = Daemon::start(
        dir.path(),
        "stack",
        &["--debounce", "300ms", "--interval", "1h"],
        &[],
    );
    daemon.wait("first apply", |d| d.status()["sync_state"] == "synced");
    let file = stack.join("team-0/part-00.kdl");
    let original = std::fs::read_to_string(&file).unwrap();
    assert!(original.contains("topic \"topic-0-10\""));
    let retention = |hours: u32| {
        original.replacen("retention-hours 72", &format!("retention-hours {hours}"), 1)
    };
    // Edits a few milliseconds apart: a read ahead is nearly always under way when the next
    // (and the last) one lands.
    for hours in 100..140 {
        std::fs::write(&file, retention(hours)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::write(&file, retention(200)).unwrap();
    let rendered = dir.path().join(".platformd/rendered/topic/topic-0-10.yaml");
    let hours_200 = format!("retention.ms: '{}'", 200u64 * 3_600_000);
    daemon.wait("the last edit applied", |_| {
        std::fs::read_to_string(&rendered)
            .unwrap_or_default()
            .contains(&hours_200)
    });
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        std::fs::read_to_string(&rendered)
            .unwrap()
            .contains(&hours_200)
    );
    let (_, body) = http(daemon.port, "GET", "/api/v1/revisions", &[], b"");
    let revisions: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        revisions["revisions"].as_array().unwrap().len(),
        2,
        "one revision for the start, one for the edits: {revisions}"
    );
}

/// Reading the watched directory (each poll does) is not a change: an idle directory is read
/// once per interval, not again because of the reads' own file events.
#[test]
fn directory_mode_does_not_wake_itself_up_by_reading_the_stack() {
    let dir = work_dir();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(stack.join("platform.kdl"), PLATFORM).unwrap();
    std::fs::write(stack.join("api.kdl"), service(1)).unwrap();
    let daemon = Daemon::start(
        dir.path(),
        "stack",
        &["--debounce", "50ms", "--interval", "1h"],
        &[],
    );
    daemon.wait("first apply", |d| d.status()["sync_state"] == "synced");
    let reads = || {
        let (_, metrics) = http(daemon.port, "GET", "/metrics", &[], b"");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("platformd_source_reads_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("the source_reads metric")
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = reads();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(reads(), before, "an idle directory was read again");
    // An edit is still one read (after the debounce) and applied.
    std::fs::write(stack.join("api.kdl"), service(3)).unwrap();
    daemon.wait("the edit applied", |_| {
        std::fs::read_to_string(dir.path().join(".platformd/rendered/service/api.yaml"))
            .unwrap_or_default()
            .contains("replicas: 3")
    });
    std::thread::sleep(Duration::from_millis(500));
    let after_edit = reads();
    assert!(after_edit > before);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(reads(), after_edit, "quiet again after the edit");
}

#[test]
fn a_deleted_branch_keeps_the_last_good_revision_and_logs_are_json_when_asked() {
    let remote = Remote::new();
    let c1 = remote.push(
        &[("platform.kdl", PLATFORM), ("api.kdl", &service(2))],
        "first",
    );
    let dir = work_dir();
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &[
            "--path",
            "stack",
            "--interval",
            "300ms",
            "--log-format",
            "json",
        ],
        &[],
    );
    daemon.wait_applied(&c1);
    // Delete the branch on the remote (a bare repository refuses deleting its HEAD branch by push).
    let bare = remote.dir.path().join("remote.git");
    let status = Command::new("git")
        .args(["update-ref", "-d", "refs/heads/main"])
        .current_dir(&bare)
        .status()
        .unwrap();
    assert!(status.success());
    daemon.wait("the missing branch", |d| {
        d.status()["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("branch `main` does not exist"))
    });
    assert_eq!(
        daemon.status()["applied_revision"],
        c1.as_str(),
        "the last good revision stays in force"
    );
    let c2 = remote.push(&[("api.kdl", &service(3))], "branch is back");
    daemon.wait_applied(&c2);

    let log = daemon.log();
    let json_lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        json_lines
            .iter()
            .any(|l| l["fields"]["message"] == "plan ready"
                && l["fields"]["revision"] == c2.as_str()),
        "structured log lines with key/value fields:\n{log}"
    );
}

#[test]
fn readyz_stays_503_until_a_revision_is_reconciled_even_when_the_source_is_down() {
    let dir = work_dir();
    let nowhere = format!("file://{}/nowhere.git", dir.path().display());
    let daemon = Daemon::spawn(dir.path(), &nowhere, &["--interval", "200ms"], &[]);
    daemon.wait("a failed fetch", |d| {
        TcpStream::connect(("127.0.0.1", d.port)).is_ok()
            && d.status()["last_error"].as_str().is_some()
    });
    // Serving, but nothing reconciled: alive, not ready.
    assert_eq!(http(daemon.port, "GET", "/healthz", &[], b"").0, 200);
    assert_eq!(http(daemon.port, "GET", "/readyz", &[], b"").0, 503);
    daemon.wait("a second failed fetch", |d| {
        http(d.port, "GET", "/metrics", &[], b"")
            .1
            .contains("platformd_fetch_failures_total 2")
    });
    assert_eq!(http(daemon.port, "GET", "/readyz", &[], b"").0, 503);
}

#[test]
fn a_drift_correction_is_not_counted_as_an_applied_revision() {
    let dir = work_dir();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(stack.join("platform.kdl"), PLATFORM).unwrap();
    std::fs::write(stack.join("api.kdl"), service(2)).unwrap();
    let daemon = Daemon::start(dir.path(), "stack", &[], &[]);
    daemon.wait("the stack applied", |d| {
        d.status()["sync_state"] == "synced"
    });
    let metrics = || http(daemon.port, "GET", "/metrics", &[], b"").1;
    assert!(
        metrics().contains("platformd_revisions_applied_total 1"),
        "{}",
        metrics()
    );
    let rendered = dir.path().join(".platformd/rendered/service/api.yaml");
    let text = std::fs::read_to_string(&rendered).unwrap();
    std::fs::write(&rendered, text.replace("replicas: 2", "replicas: 7")).unwrap();
    let (code, answer) = daemon.post("/api/v1/sync?correct=all", "");
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["message"], "corrected drift of 1 resource");
    assert!(
        std::fs::read_to_string(&rendered)
            .unwrap()
            .contains("replicas: 2")
    );
    let after = metrics();
    assert!(
        after.contains("platformd_revisions_applied_total 1"),
        "a correction applies no new revision:\n{after}"
    );
}

#[test]
fn follows_a_git_remote_onto_a_cluster() {
    let emulator = test_support::kube_emulator::KubeEmulator::start();
    let dir = work_dir();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, emulator.kubeconfig()).unwrap();
    let platform = "platform \"shop\" {\n    environment \"test\"\n    driver \"kubernetes\" {\n        namespace \"shop\"\n    }\n}\n\nteam \"web\" {\n    owner \"web-oncall@acme.example\"\n}\n";
    let remote = Remote::new();
    let c1 = remote.push(
        &[("platform.kdl", platform), ("api.kdl", &service(1))],
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
            "500ms",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    daemon.wait_applied(&c1);
    let replicas = || {
        emulator
            .get("apps", "deployments", "shop", "api")
            .map(|d| d["spec"]["replicas"].clone())
    };
    assert_eq!(replicas(), Some(serde_json::json!(1)));
    let c2 = remote.push(&[("api.kdl", &service(3))], "scale api");
    daemon.wait_applied(&c2);
    assert_eq!(replicas(), Some(serde_json::json!(3)));
    assert_eq!(daemon.status()["sync_state"], "synced");

    // A stuck rollout shows as the resource's health, with the live conditions, at the API.
    emulator.edit("apps", "deployments", "shop", "api", "kube-controller-manager", |d| {
        d["status"]["conditions"] = serde_json::json!([{ "type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet has timed out progressing" }]);
    });
    let client = test_support::net::client(daemon.port, None);
    daemon.wait("the drift scan to see the stuck rollout", |_| {
        client.resources().is_ok_and(|body| {
            body.resources.iter().any(|r| {
                r.address == "service/api"
                    && r.team == "web"
                    && r.health == api::Health::Degraded
                    && r.message
                        .as_deref()
                        .is_some_and(|m| m.contains("ProgressDeadlineExceeded"))
                    && r.live.iter().any(|o| o["kind"] == "Deployment")
            })
        })
    });
}

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

fn manual_platform() -> String {
    PLATFORM.replace(
        "    environment \"test\"\n",
        "    environment \"test\"\n    sync \"manual\"\n",
    )
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

/// Runs a tool in `dir`, panicking with its output on failure; returns stdout.
fn tool(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (scripts/test.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn only_commits_signed_by_trusted_ssh_or_openpgp_keys_are_applied() {
    let keys = tempfile::tempdir().unwrap();
    let k = keys.path();
    // SSH: a trusted key and a stranger's.
    for name in ["trusted", "stranger"] {
        tool(
            k,
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", name],
        );
    }
    let trusted_pub = std::fs::read_to_string(k.join("trusted.pub")).unwrap();
    std::fs::write(
        k.join("allowed_signers"),
        format!("ops@acme.example {}", trusted_pub.trim()),
    )
    .unwrap();
    // OpenPGP: a release key, in a keyring of the test's own.
    let gnupg = k.join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let home = gnupg.to_str().unwrap();
    // git runs gpg to sign: it finds this keyring through the environment.
    // SAFETY: set before this test starts any thread.
    unsafe { std::env::set_var("GNUPGHOME", home) };
    tool(
        k,
        "gpg",
        &[
            "--homedir",
            home,
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Release Bot <release@acme.example>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    let listing = tool(
        k,
        "gpg",
        &["--homedir", home, "--with-colons", "--list-secret-keys"],
    );
    let fingerprint = listing
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .unwrap()
        .to_string();
    let armored = tool(
        k,
        "gpg",
        &["--homedir", home, "--armor", "--export", &fingerprint],
    );
    std::fs::write(k.join("trusted.asc"), armored).unwrap();
    // A second OpenPGP key in the same keyring, which is not exported as trusted.
    tool(
        k,
        "gpg",
        &[
            "--homedir",
            home,
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Mallory <mallory@evil.example>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    let listing = tool(
        k,
        "gpg",
        &["--homedir", home, "--with-colons", "--list-secret-keys"],
    );
    let stranger_pgp = listing
        .lines()
        .filter(|l| l.starts_with("fpr:"))
        .filter_map(|l| l.split(':').nth(9))
        .find(|f| *f != fingerprint)
        .unwrap()
        .to_string();

    let remote = Remote::new();
    let sign_ssh = |key: &str| {
        vec![
            "-c".to_string(),
            "gpg.format=ssh".to_string(),
            "-c".to_string(),
            format!("user.signingkey={}", k.join(key).display()),
        ]
    };
    let push = |files: &[(&str, &str)], signing: Vec<String>, message: &str| {
        for (p, t) in files {
            remote.work.write(&format!("stack/{p}"), t);
        }
        remote.work.git(&["add", "-A"]);
        let mut args: Vec<String> = signing;
        args.extend(["commit", "-q", "-m", message].map(str::to_string));
        if args.iter().any(|a| a.starts_with("user.signingkey")) {
            args.push("-S".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        remote.work.git(&args);
        remote
            .work
            .git(&["push", "-q", "--force", "origin", "main"]);
        remote.work.git(&["rev-parse", "HEAD"])
    };
    let c1 = push(
        &[("platform.kdl", PLATFORM), ("api.kdl", &service(2))],
        sign_ssh("trusted"),
        "signed by ops",
    );
    let dir = work_dir();
    let signers = k.join("allowed_signers");
    let trusted = k.join("trusted.asc");
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &[
            "--path",
            "stack",
            "--interval",
            "300ms",
            "--verify-commits",
            "head",
            "--allowed-signers",
            signers.to_str().unwrap(),
            "--trusted-keys",
            trusted.to_str().unwrap(),
        ],
        &[],
    );
    daemon.wait_applied(&c1);

    // Unsigned: rejected, and the signed revision stays in force.
    let c2 = push(&[("api.kdl", &service(3))], Vec::new(), "unsigned");
    daemon.wait("c2 rejected", |d| {
        d.status()["tracked_revision"] == c2.as_str()
    });
    let status = daemon.status();
    assert_eq!(status["sync_state"], "rejected", "{status}");
    assert_eq!(status["applied_revision"], c1.as_str());
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("is not signed"),
        "{status}"
    );
    // Signed by a key nobody trusts: rejected too.
    let c3 = push(
        &[("api.kdl", &service(4))],
        sign_ssh("stranger"),
        "a stranger",
    );
    daemon.wait("c3 rejected", |d| {
        d.status()["tracked_revision"] == c3.as_str()
    });
    let status = daemon.status();
    assert_eq!(status["sync_state"], "rejected");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("not in the allowed signers"),
        "{status}"
    );
    assert_eq!(status["applied_revision"], c1.as_str());
    // Signed with the trusted OpenPGP key (git runs gpg to sign; platformd verifies in process).
    let c4 = push(
        &[("api.kdl", &service(5))],
        vec![
            "-c".into(),
            "gpg.program=gpg".into(),
            "-c".into(),
            format!("user.signingkey={fingerprint}"),
        ],
        "signed by the release key",
    );
    daemon.wait_applied(&c4);
    // Signed with an OpenPGP key that is not trusted: rejected.
    let c5 = push(
        &[("api.kdl", &service(6))],
        vec![
            "-c".into(),
            "gpg.program=gpg".into(),
            "-c".into(),
            format!("user.signingkey={stranger_pgp}"),
        ],
        "signed by mallory",
    );
    daemon.wait("c5 rejected", |d| {
        d.status()["tracked_revision"] == c5.as_str()
    });
    let status = daemon.status();
    assert_eq!(status["sync_state"], "rejected", "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("signed by an OpenPGP key that is not trusted"),
        "{status}"
    );
    assert_eq!(status["applied_revision"], c4.as_str());
    // The branch reset to an older commit that is signed by a trusted key: it does not descend
    // from what is applied, so it is refused (a downgrade), and c4 stays in force.
    remote.work.git(&["reset", "-q", "--hard", &c1]);
    remote
        .work
        .git(&["push", "-q", "--force", "origin", "main"]);
    daemon.wait("the reset rejected", |d| {
        d.status()["tracked_revision"] == c1.as_str()
    });
    let status = daemon.status();
    assert_eq!(status["sync_state"], "rejected", "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("does not descend from the applied revision"),
        "{status}"
    );
    assert_eq!(status["applied_revision"], c4.as_str());
    let (_, body) = http(daemon.port, "GET", "/api/v1/revisions", &[], b"");
    let revisions: Value = serde_json::from_str(&body).unwrap();
    let rejected: Vec<&Value> = revisions["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["errors"]
                .as_str()
                .is_some_and(|e| e.starts_with("rejected:"))
        })
        .collect();
    assert!(rejected.len() >= 3, "{revisions}");
}

#[test]
fn in_tag_mode_a_commit_is_applied_once_a_trusted_signed_tag_points_at_it() {
    let keys = tempfile::tempdir().unwrap();
    let k = keys.path();
    tool(
        k,
        "ssh-keygen",
        &[
            "-q", "-t", "ed25519", "-N", "", "-C", "release", "-f", "release",
        ],
    );
    let public = std::fs::read_to_string(k.join("release.pub")).unwrap();
    std::fs::write(
        k.join("allowed_signers"),
        format!("release@acme.example namespaces=\"git\" {}", public.trim()),
    )
    .unwrap();
    let signing = format!("user.signingkey={}", k.join("release").display());
    let remote = Remote::new();
    let c1 = remote.push(
        &[("platform.kdl", PLATFORM), ("api.kdl", &service(2))],
        "release 1",
    );
    remote.work.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &signing,
        "tag",
        "-s",
        "v1",
        "-m",
        "v1",
    ]);
    remote.work.git(&["push", "-q", "origin", "v1"]);
    let dir = work_dir();
    let signers = k.join("allowed_signers");
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &[
            "--path",
            "stack",
            "--interval",
            "300ms",
            "--verify-commits",
            "tag",
            "--allowed-signers",
            signers.to_str().unwrap(),
        ],
        &[],
    );
    daemon.wait_applied(&c1);
    // A commit nobody tagged yet: rejected until its signed tag arrives.
    let c2 = remote.push(&[("api.kdl", &service(3))], "release 2");
    daemon.wait("c2 rejected", |d| d.status()["sync_state"] == "rejected");
    assert!(
        daemon.status()["last_error"]
            .as_str()
            .unwrap()
            .contains("has no annotated tag"),
        "{}",
        daemon.status()
    );
    assert_eq!(daemon.status()["applied_revision"], c1.as_str());
    // The signed tag arrives: the same commit is checked again and applied.
    remote.work.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &signing,
        "tag",
        "-s",
        "v2",
        "-m",
        "v2",
    ]);
    remote.work.git(&["push", "-q", "origin", "v2"]);
    daemon.wait_applied(&c2);
    // Rejected once in the history, not once per poll.
    let (_, body) = http(daemon.port, "GET", "/api/v1/revisions", &[], b"");
    let revisions: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        revisions["revisions"].as_array().unwrap().len(),
        2,
        "{revisions}"
    );
}
