//! `platformd tui` end to end in tmux: a daemon on a temporary stack, the UI connected to it,
//! every view, a rollback through the confirmation dialog checked through the daemon's API, and
//! the terminal restored on quit and on SIGTERM.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::PLATFORM;
use support::tmux::Tmux;
use test_support::net::{free_port, request};

struct Daemon(Child, u16);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status(port: u16) -> serde_json::Value {
    serde_json::from_str(&request(port, "GET", "/api/v1/status", &[], b"").1).unwrap_or_default()
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn service(replicas: u32) -> String {
    format!(
        "service \"api\" {{\n    team \"web\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    replicas {replicas}\n    port 8080\n}}\n"
    )
}

fn start_daemon(dir: &std::path::Path) -> Daemon {
    std::fs::write(dir.join("token"), "tui-token").unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_platformd"))
        .args([
            "daemon",
            "--repo",
            "stack",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--token-file",
            "token",
            "--debounce",
            "100ms",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait("the daemon", || {
        request(port, "GET", "/readyz", &[], b"").0 == 200
    });
    Daemon(child, port)
}

#[test]
fn operator_walks_every_view_rolls_back_through_the_dialog_and_quits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(stack.join("platform.kdl"), PLATFORM).unwrap();
    std::fs::write(stack.join("api.kdl"), service(2)).unwrap();
    let daemon = start_daemon(dir.path());
    let port = daemon.1;
    wait("the first revision applied", || {
        status(port)["sync_state"] == "synced"
    });
    let first = status(port)["applied_revision"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(stack.join("api.kdl"), service(5)).unwrap();
    wait("the second revision applied", || {
        let s = status(port);
        s["applied_revision"] != first.as_str() && s["sync_state"] == "synced"
    });

    let binary = env!("CARGO_BIN_EXE_platformd");
    let ui = Tmux::start(
        "walk",
        dir.path(),
        &format!("'{binary}' tui --connect http://127.0.0.1:{port} --token-file token"),
    );
    ui.wait_for("Stack           shop");
    for (key, title) in [
        ("2", "Plan:"),
        ("3", "Drift: 0 findings"),
        ("5", "Dependencies"),
        ("6", "Resources: 1 applied, 0 not ready"),
        ("7", "Cost by team"),
        ("4", "History (newest first)"),
        ("1", "Source"),
    ] {
        ui.keys(key);
        ui.wait_for(title);
    }
    ui.keys("?");
    ui.wait_for("this help");
    // Typed right after Escape, a key arrives as Alt+key (ESC is the Alt prefix): wait.
    ui.keys("Escape");
    ui.wait_gone("this help");
    ui.keys("4");
    ui.wait_for("History (newest first)");
    ui.keys("j");
    ui.keys("r");
    ui.wait_for("Roll back?");
    // The rollback plan is shown before confirming: api goes back from 5 replicas to 2.
    ui.wait_for("Plan: 1 to update, 0 unchanged");
    ui.wait_for("~ service/api");
    ui.keys("y");
    ui.wait_for("rolled back to");
    let s = status(port);
    assert_eq!(
        s["applied_revision"],
        first.as_str(),
        "the rollback happened"
    );
    assert_eq!(s["pinned_revision"], first.as_str());
    assert!(ui.alternate(), "the UI runs in the alternate screen");
    ui.keys("q");
    ui.wait_for("EXIT=0");
    assert!(!ui.alternate(), "the terminal is restored on quit");
}

#[test]
fn sigterm_restores_the_terminal_and_read_only_mode_explains_actions_need_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(stack.join("platform.kdl"), PLATFORM).unwrap();
    std::fs::write(stack.join("api.kdl"), service(2)).unwrap();
    {
        let daemon = start_daemon(dir.path());
        wait("applied", || status(daemon.1)["sync_state"] == "synced");
    }
    let binary = env!("CARGO_BIN_EXE_platformd");
    let ui = Tmux::start("ro", dir.path(), &format!("'{binary}' tui"));
    ui.wait_for("(read-only)");
    ui.keys("s");
    ui.wait_for("actions need a running daemon");
    // SIGTERM to the UI process (the pane's shell runs it as a child).
    let shell = ui.pane_pid();
    let out = Command::new("pgrep")
        .args(["-P", &shell.to_string()])
        .output()
        .unwrap();
    let pid: i32 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe { libc::kill(pid, libc::SIGTERM) };
    ui.wait_for("EXIT=0");
    assert!(!ui.alternate(), "the terminal is restored on SIGTERM");
}

#[test]
fn drift_is_seen_and_corrected_from_the_drift_view() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(stack.join("platform.kdl"), PLATFORM).unwrap();
    // Policy `report`: the daemon shows the drift and leaves it; the operator corrects it.
    std::fs::write(
        stack.join("api.kdl"),
        service(2).replace("    port 8080\n", "    port 8080\n    drift \"report\"\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("token"), "tui-token").unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_platformd"))
        .args([
            "daemon",
            "--repo",
            "stack",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--token-file",
            "token",
            "--drift-interval",
            "1s",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _daemon = Daemon(child, port);
    wait("the daemon", || {
        request(port, "GET", "/readyz", &[], b"").0 == 200
    });
    wait("applied", || status(port)["sync_state"] == "synced");
    // Someone scales the rendered Deployment by hand.
    let rendered = dir.path().join(".platformd/rendered/service/api.yaml");
    let text =
        std::fs::read_to_string(&rendered)
            .unwrap()
            .replacen("  replicas: 2", "  replicas: 9", 1);
    std::fs::write(&rendered, text).unwrap();

    let binary = env!("CARGO_BIN_EXE_platformd");
    let ui = Tmux::start(
        "drift",
        dir.path(),
        &format!("'{binary}' tui --connect http://127.0.0.1:{port} --token-file token"),
    );
    ui.wait_for("Stack           shop");
    ui.keys("3");
    ui.wait_for("~ service/api drifted");
    ui.keys("c");
    ui.wait_for("Correct drift?");
    ui.wait_for("spec.replicas: live 9 → 2");
    ui.keys("y");
    ui.wait_for("corrected drift of 1 resource");
    assert!(
        std::fs::read_to_string(&rendered)
            .unwrap()
            .contains("  replicas: 2"),
        "the manifest is back to what was applied"
    );
    ui.keys("q");
    ui.wait_for("EXIT=0");
}

#[test]
fn closing_the_terminal_ends_the_ui() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(stack.join("platform.kdl"), PLATFORM).unwrap();
    std::fs::write(stack.join("api.kdl"), service(2)).unwrap();
    {
        let daemon = start_daemon(dir.path());
        wait("applied", || status(daemon.1)["sync_state"] == "synced");
    }
    let binary = env!("CARGO_BIN_EXE_platformd");
    let ui = Tmux::start("hangup", dir.path(), &format!("'{binary}' tui"));
    ui.wait_for("(read-only)");
    let shell = ui.pane_pid();
    let out = Command::new("pgrep")
        .args(["-P", &shell.to_string()])
        .output()
        .unwrap();
    let pid: i32 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    drop(ui); // kills the tmux session: the terminal hangs up
    // A UI left behind on a dead terminal would spin; it must exit instead.
    wait("the UI to exit", || unsafe { libc::kill(pid, 0) } != 0);
}

#[test]
fn the_ui_reaches_a_daemon_behind_a_tls_terminator_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(stack.join("platform.kdl"), PLATFORM).unwrap();
    std::fs::write(stack.join("api.kdl"), service(2)).unwrap();
    let daemon = start_daemon(dir.path());
    wait("the first revision applied", || {
        status(daemon.1)["sync_state"] == "synced"
    });
    let certificate = test_support::tls::SelfSigned::create(dir.path());
    let proxy = test_support::tls::TlsProxy::start(&certificate, daemon.1);
    let url = format!("https://127.0.0.1:{}", proxy.port);

    // The certificate is really checked: without the operator's CA the client refuses.
    let untrusted = api::Client::new(&url, None, None).unwrap();
    let refused = untrusted.status().unwrap_err().to_string();
    assert!(refused.contains("certificate"), "{refused}");
    let ca = std::fs::read(&certificate.cert).unwrap();
    let trusted = api::Client::new(&url, Some("tui-token".into()), Some(&ca)).unwrap();
    assert_eq!(trusted.status().unwrap().stack.as_deref(), Some("shop"));

    let binary = env!("CARGO_BIN_EXE_platformd");
    let ui = Tmux::start(
        "https",
        dir.path(),
        &format!("'{binary}' tui --connect {url} --ca-file tls-cert.pem --token-file token"),
    );
    ui.wait_for("Stack           shop");
    ui.wait_for("shop · synced");
    // An action goes through the terminator too.
    ui.keys("s");
    ui.wait_for("Sync now?");
    ui.keys("y");
    ui.wait_for("synced to");
    ui.keys("q");
    ui.wait_for("EXIT=0");
}
