//! `platformd daemon` against real git remotes on loopback (`file://` and `git daemon`) and a
//! watched directory, observed through its HTTP API.

mod support;

use support::running::{service, work_dir};

use api::ApplyStatus;
use daemon::store::IntentResult;
use serde_json::Value;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{PLATFORM, Tally};

use support::running::{Daemon, Remote, SECRET};
use test_support::net::{free_port, request as http};

fn sign(body: &[u8]) -> String {
    test_support::net::github_signature(SECRET.as_bytes(), body)
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
