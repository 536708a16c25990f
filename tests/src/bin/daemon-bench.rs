//! Daemon latency benchmarks (`docs/PERFORMANCE.md`):
//!
//! 1. New commit to apply start with the webhook (target < 1 s): a commit is pushed to a bare
//!    remote, a signed webhook is sent, and the time until the daemon reports the apply started
//!    (`last_apply_started_ms` in `/api/v1/status`) is measured.
//! 2. Directory mode, one-file edit to plan ready on a large stack (target < 50 ms): the time
//!    from writing the file to `last_plan_ready_ms`, and the re-plan alone
//!    (`last_plan_duration_ms`: read, parse with the cache, validate, plan), with a 20 ms debounce.
//!
//! ```sh
//! cargo build --release -p platformd -p platformd-test-support
//! $CARGO_TARGET_DIR/release/daemon-bench [--runs 10] [--resources 10000]
//! ```

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use test_support::git::run as git;
use test_support::net::{free_port, github_signature, request};

const SECRET: &str = "bench-secret";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn status(port: u16) -> Value {
    serde_json::from_str(&request(port, "GET", "/api/v1/status", &[], b"").1).unwrap_or(Value::Null)
}

fn wait(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn start(binary: &Path, dir: &Path, args: &[&str]) -> (Daemon, u16) {
    std::fs::write(dir.join("secret"), SECRET).unwrap();
    let port = free_port();
    let child = Command::new(binary)
        .args([
            "daemon",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--webhook-secret-file",
            "secret",
        ])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("platformd daemon");
    let daemon = Daemon(child);
    wait("readiness", Duration::from_secs(600), || {
        request(port, "GET", "/readyz", &[], b"").0 == 200
    });
    (daemon, port)
}

fn stats(label: &str, mut v: Vec<u64>) {
    v.sort();
    println!(
        "| {label} | {} ms | {} ms | {} ms |",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    );
}

fn main() {
    let mut runs = 10usize;
    let mut resources = 10_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().unwrap().parse().unwrap(),
            "--resources" => resources = args.next().unwrap().parse().unwrap(),
            other => panic!("unknown argument {other}"),
        }
    }
    let binary: PathBuf = std::env::current_exe().unwrap().with_file_name("platformd");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-state-example");

    // 1. Webhook: commit → apply start.
    let root = tempfile::tempdir().unwrap();
    git(
        root.path(),
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    test_support::copy_dir(&example, &work.join("stack"));
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "stack"]);
    git(
        &work,
        &[
            "remote",
            "add",
            "origin",
            root.path().join("remote.git").to_str().unwrap(),
        ],
    );
    git(&work, &["push", "-q", "origin", "main"]);
    let state = root.path().join("daemon");
    std::fs::create_dir_all(&state).unwrap();
    let url = format!("file://{}", root.path().join("remote.git").display());
    let (daemon, port) = start(
        &binary,
        &state,
        &["--repo", &url, "--path", "stack", "--interval", "1h"],
    );
    let mut to_start = Vec::new();
    let mut to_applied = Vec::new();
    for i in 0..runs {
        // Growing a topic's partitions is an in-place update: every commit has one change.
        let text = format!(
            "topic \"bench-events\" {{\n    team \"payments\"\n    partitions {}\n}}\n",
            3 + i
        );
        std::fs::write(work.join("stack/bench.kdl"), text).unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-am", &format!("scale {i}")]);
        git(&work, &["push", "-q", "origin", "main"]);
        let before = status(port)["last_apply_started_ms"].as_u64().unwrap_or(0);
        let body = br#"{"ref":"refs/heads/main"}"#;
        let signature = github_signature(SECRET.as_bytes(), body);
        // The daemon limits webhooks per second (429, "retry in a second"): more runs than its
        // burst wait for their turn, and are timed from the delivery it accepted.
        let t0 = loop {
            let t0 = now_ms();
            let (code, _) = request(
                port,
                "POST",
                "/hooks/git",
                &[("X-Hub-Signature-256", &signature)],
                body,
            );
            if code != 429 {
                assert_eq!(code, 202);
                break t0;
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        let mut started = 0;
        wait("apply start", Duration::from_secs(60), || {
            started = status(port)["last_apply_started_ms"].as_u64().unwrap_or(0);
            started > before
        });
        to_start.push(started.saturating_sub(t0));
        wait("applied", Duration::from_secs(60), || {
            status(port)["sync_state"] == "synced"
        });
        to_applied.push(now_ms() - t0);
    }
    drop(daemon);
    println!("webhook on a git remote (file://), example stack ({runs} commits):\n");
    println!("| measure | median | min | max |\n|---|---:|---:|---:|");
    stats("webhook received → apply started", to_start);
    stats("webhook received → applied", to_applied);

    // 2. Directory mode: one-file edit → plan ready, on a large stack.
    let dir = tempfile::tempdir().unwrap();
    test_support::generate::write_stack(&dir.path().join("stack"), resources, 42).unwrap();
    let (daemon, port) = start(
        &binary,
        dir.path(),
        &["--repo", "stack", "--debounce", "20ms", "--interval", "1h"],
    );
    let mut end_to_end = Vec::new();
    let mut replan = Vec::new();
    let file = dir.path().join("stack/team-0/part-00.kdl");
    let original = std::fs::read_to_string(&file).unwrap();
    for i in 0..runs {
        // The same topic each time, a new value each time: any number of runs.
        let text = original.replacen(
            "retention-hours 72",
            &format!("retention-hours {}", 73 + i),
            1,
        );
        let before = status(port)["last_plan_ready_ms"].as_u64().unwrap_or(0);
        let t0 = now_ms();
        std::fs::write(&file, text).unwrap();
        let mut ready = 0;
        wait("plan ready", Duration::from_secs(120), || {
            let s = status(port);
            ready = s["last_plan_ready_ms"].as_u64().unwrap_or(0);
            ready > before
        });
        end_to_end.push(ready.saturating_sub(t0));
        replan.push(status(port)["last_plan_duration_ms"].as_u64().unwrap_or(0));
        // Applied means this revision is in force, not just "synced" from the previous one.
        wait("applied", Duration::from_secs(120), || {
            let s = status(port);
            s["sync_state"] == "synced" && s["applied_revision"] == s["tracked_revision"]
        });
    }
    drop(daemon);
    println!(
        "\ndirectory mode, {resources}-resource stack, one-file edit ({runs} edits, debounce 20 ms):\n"
    );
    println!("| measure | median | min | max |\n|---|---:|---:|---:|");
    stats(
        "file written → plan ready (includes the debounce)",
        end_to_end,
    );
    stats("re-plan: read, parse (cached), validate, plan", replan);
}
