//! The API against its OpenAPI document (`/api/v1/openapi.json`), with schemathesis (PyPI) as a
//! property-based tester on a running daemon: generated valid and invalid requests for every
//! operation, every check (no 500, status codes, content types and response bodies as documented,
//! invalid data rejected, valid data accepted), bounded and seeded.

mod support;

use std::process::Command;
use support::running::{Daemon, TOKEN};

#[test]
fn schemathesis_finds_no_failure_against_a_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(
        stack.join("platform.kdl"),
        format!(
            "{}service \"api\" {{\n    team \"web\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    replicas 2\n    port 8080\n}}\n",
            support::PLATFORM
        ),
    )
    .unwrap();
    // The rate limit is raised so the generated requests reach the logic behind it.
    let daemon = Daemon::start(
        dir.path(),
        stack.to_str().unwrap(),
        &["--api-rate-limit", "1000"],
        &[],
    );
    daemon.wait("applied", |d| d.status()["sync_state"] == "synced");
    let (code, body) =
        test_support::net::request(daemon.port, "GET", "/api/v1/openapi.json", &[], b"");
    assert_eq!(code, 200);
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["openapi"], "3.1.0");

    let out = Command::new("schemathesis")
        .args(["run"])
        .arg(format!(
            "http://127.0.0.1:{}/api/v1/openapi.json",
            daemon.port
        ))
        .args(["--checks", "all", "--max-examples", "30", "--seed", "7"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .output()
        .expect("schemathesis is installed (scripts/test.sh installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}\ndaemon log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );
    assert!(report.contains("15 selected / 15 total"), "{report}");
    assert!(daemon.status()["sync_state"] == "synced" || daemon.status()["sync_state"] == "pinned");
}
