//! Secrets never leak, checked everywhere: every command (plans in all formats, apply, history,
//! drift, cost, graph, saved plans), the daemon (logs in text and JSON at debug level, every API
//! response, the metrics), the store and rendered files byte for byte, and every TUI screen, on a
//! stack full of secret references, with the daemon holding an API token, a webhook secret, a
//! notification key, a GitHub token and a Prometheus bearer token, and with credentials pasted
//! into the stack. A scanner looks for those exact values and for secret-looking shapes.

mod support;

use std::path::Path;
use std::time::Duration;
use support::running::Daemon;
use support::tmux::Tmux;
use support::{Run, Workspace};

/// Secrets the daemon is given (files and environment), and credentials pasted into the stack.
const PROMETHEUS_TOKEN: &str = "prom-9c1e77a2b8d04f3e8a6b5c4d3e2f1a0b";
const NOTIFY_KEY: &str = "notify-hmac-5f4e3d2c1b0a99887766554433221100";
const GITHUB_TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
const PASTED_AWS_KEY: &str = "AKIAZ7Q4XW2PLM9KT3RB";
const PASTED_STRIPE: &str = "sk_live_51NzQ8rT3sV7wX2yZ9aB4cD6e";

fn known_secrets() -> Vec<&'static str> {
    vec![
        support::running::TOKEN,
        support::running::SECRET,
        PROMETHEUS_TOKEN,
        NOTIFY_KEY,
        GITHUB_TOKEN,
        PASTED_AWS_KEY,
        PASTED_STRIPE,
    ]
}

/// A credential's prefix, the least number of characters after it, and which characters.
type Shape = (&'static str, usize, fn(char) -> bool);

/// Where a secret-looking value is in `bytes`, if anywhere: one of the known secrets, or a
/// credential by its shape (AWS access key id, Stripe and GitHub tokens, Slack tokens, private
/// keys, JWTs).
fn scan(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut found = Vec::new();
    for s in known_secrets() {
        if let Some(at) = text.find(s) {
            found.push(format!("`{s}` at byte {at}"));
        }
    }
    let shapes: &[Shape] = &[
        ("AKIA", 16, |c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        ("sk_live_", 16, |c| c.is_ascii_alphanumeric()),
        ("sk_test_", 16, |c| c.is_ascii_alphanumeric()),
        ("ghp_", 36, |c| c.is_ascii_alphanumeric()),
        ("github_pat_", 22, |c| c.is_ascii_alphanumeric() || c == '_'),
        ("xoxb-", 10, |c| c.is_ascii_alphanumeric() || c == '-'),
        ("xoxp-", 10, |c| c.is_ascii_alphanumeric() || c == '-'),
        ("eyJ", 20, |c| {
            c.is_ascii_alphanumeric() || c == '_' || c == '-'
        }),
    ];
    for (prefix, len, allowed) in shapes {
        for (at, _) in text.match_indices(prefix) {
            let tail: String = text[at + prefix.len()..]
                .chars()
                .take_while(|c| allowed(*c))
                .collect();
            if tail.chars().count() >= *len {
                found.push(format!("`{prefix}…` shape at byte {at}"));
            }
        }
    }
    // A JWT: two base64url JSON segments joined by a dot.
    for (at, _) in text.match_indices("eyJ") {
        let run: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .collect();
        if run.len() >= 20 && run[3..].contains(".eyJ") {
            found.push(format!("a JWT at byte {at}"));
        }
    }
    if text.contains("PRIVATE KEY-----") {
        found.push("a private key".into());
    }
    found
}

fn assert_clean(what: &str, bytes: &[u8]) {
    let found = scan(bytes);
    assert!(
        found.is_empty(),
        "{what} shows a secret: {found:?}\n{}",
        String::from_utf8_lossy(bytes)
    );
}

fn assert_run_clean(what: &str, run: &Run) {
    assert_clean(what, run.all().as_bytes());
}

/// Every file under `dir`, byte for byte (the SQLite store and its WAL included).
fn assert_tree_clean(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                assert_clean(&p.display().to_string(), &std::fs::read(&p).unwrap());
            }
        }
    }
    assert!(files > 0, "nothing under {}", dir.display());
}

fn stack_files() -> Vec<(&'static str, String)> {
    let platform = String::from(
        r#"platform "vault" {
    environment "test"
    driver "local" {
        path ".platformd/rendered"
        namespace "vault"
    }
}

team "payments" {
    owner "payments-oncall@acme.example"
    budget monthly-usd=50000
    llm-quota tokens-per-day=1000000
}
"#,
    );
    let resources = r#"service "checkout" {
    team "payments"
    image "ghcr.io/acme/checkout:1.4.2"
    replicas 2
    port 8080
    env "STRIPE_KEY" secret="aws-sm:prod/checkout/stripe"
    env "DB_PASSWORD" secret="vault:secret/data/checkout/db#password"
    env "SIGNING_KEY" secret="k8s:checkout-signing/key"
    env "GCP_KEY" secret="gcp-sm:projects/acme/secrets/checkout"
    env "AZURE_KEY" secret="azure-kv:acme/checkout-key"
    env "SSM_TOKEN" secret="aws-ssm:/prod/checkout/token"
    env "DATABASE_URL" from="database/orders.url"
}

database "orders" {
    team "payments"
    engine "postgres" version="16"
    size "db.r6g.large"
    storage-gb 50
}

gpu-pool "l4" {
    team "payments"
    accelerator "nvidia-l4"
    instance-type "g6.xlarge"
    nodes min=0 max=2
    idle-shutdown-after "1h"
}

ai-endpoint "assistant" {
    team "payments"
    model "meta-llama/Llama-3.1-8B-Instruct" revision="main"
    runtime "vllm"
    gpu-pool "l4" gpus=1
    replicas 1
    rate-limit tokens-per-minute=50000
    idle-shutdown-after "2h"
}
"#;
    vec![
        ("platform.kdl", platform),
        ("resources.kdl", resources.to_string()),
    ]
}

/// The same stack with credentials pasted where references belong.
fn pasted(files: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut files = files.to_vec();
    files[1].1 = files[1]
        .1
        .replace(
            r#"env "STRIPE_KEY" secret="aws-sm:prod/checkout/stripe""#,
            &format!(r#"env "STRIPE_KEY" "{PASTED_STRIPE}""#),
        )
        .replace(
            r#"    port 8080
"#,
            &format!("    port 8080\n    labels aws-key=\"{PASTED_AWS_KEY}\"\n"),
        );
    files
}

fn write(dir: &Path, files: &[(&str, String)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

#[test]
fn the_scanner_catches_a_planted_secret() {
    for planted in known_secrets() {
        let text = format!("plan ok\nvalue = {planted}\n");
        assert!(!scan(text.as_bytes()).is_empty(), "{planted}");
    }
    for shaped in [
        "AKIAABCDEFGHIJKLMNOP",
        "sk_test_aaaaaaaaaaaaaaaaaaaa",
        "xoxb-1234567890-abcdef",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
    ] {
        assert!(!scan(shaped.as_bytes()).is_empty(), "{shaped}");
    }
    // References and ordinary output are not secrets.
    assert!(scan(b"secret=\"aws-sm:prod/checkout/stripe\" image ghcr.io/acme/a:1.0").is_empty());
}

#[test]
fn no_command_daemon_log_api_response_store_or_screen_shows_a_secret() {
    let ws = Workspace::new();
    let token_file = ws.path().join("prometheus-token");
    std::fs::write(&token_file, PROMETHEUS_TOKEN).unwrap();
    let files = stack_files();
    let stack = ws.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    write(&stack, &files);

    // Every command, in every format, logging at debug level in text and JSON.
    let mut ws = ws;
    ws.env.push(("PLATFORMD_LOG".into(), "debug".into()));
    ws.env.push(("GITHUB_TOKEN".into(), GITHUB_TOKEN.into()));
    let plan_file = ws.path().join("saved-plan.json");
    let plan_file = plan_file.to_str().unwrap();
    let commands: &[&[&str]] = &[
        &["validate", "stack"],
        &["validate", "stack", "--format", "json"],
        &["plan", "stack"],
        &["plan", "stack", "--format", "json"],
        &["plan", "stack", "--format", "markdown"],
        &["plan", "stack", "--out", plan_file],
        &["apply", "--plan", plan_file, "--auto-approve"],
        &["plan", "stack", "--refresh"],
        &["apply", "stack", "--auto-approve", "--refresh"],
        &["drift", "stack"],
        &["history"],
        &["history", "--format", "json"],
        &["cost", "stack"],
        &["cost", "stack", "--format", "json"],
        &["cost", "stack", "--format", "markdown"],
        &["graph", "stack"],
        &["graph", "stack", "--format", "dot"],
        &["wake", "ai-endpoint/assistant"],
    ];
    for log_format in ["text", "json"] {
        for args in commands {
            let mut all = vec!["--log-format", log_format];
            all.extend_from_slice(args);
            let run = ws.run(&all);
            assert!(run.code <= 3, "{all:?}: {}", run.all());
            assert_run_clean(&format!("platformd {all:?}"), &run);
        }
    }
    assert_clean("the saved plan", &std::fs::read(plan_file).unwrap());

    // Credentials pasted into the stack: refused, and never echoed.
    write(&stack, &pasted(&files));
    for args in [
        &["validate", "stack"][..],
        &["plan", "stack", "--format", "json"],
        &["plan", "stack", "--format", "markdown"],
        &["apply", "stack", "--auto-approve"],
    ] {
        let run = ws.run(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(run.stderr.contains("secret-literal"), "{}", run.stderr);
        assert_run_clean(&format!("platformd {args:?} on pasted credentials"), &run);
    }
    write(&stack, &files);
    assert_tree_clean(&ws.path().join(".platformd"));

    // The daemon, watching the stack directory, with every secret it can hold.
    let daemon_dir = tempfile::tempdir().unwrap();
    std::fs::write(daemon_dir.path().join("notify-key"), NOTIFY_KEY).unwrap();
    let notify_closed = format!(
        "webhook=http://127.0.0.1:{}/hook",
        test_support::net::free_port()
    );
    let daemon = Daemon::start(
        daemon_dir.path(),
        stack.to_str().unwrap(),
        &[
            "--log-format",
            "json",
            "--debounce",
            "100ms",
            "--utilisation-interval",
            "200ms",
            "--metrics-url",
            "http://127.0.0.1:9",
            "--metrics-token-file",
            token_file.to_str().unwrap(),
            "--notify",
            &notify_closed,
            "--notify",
            "github=acme/platform-state",
            "--notify-secret-file",
            "notify-key",
        ],
        &[("PLATFORMD_LOG", "debug"), ("GITHUB_TOKEN", GITHUB_TOKEN)],
    );
    daemon.wait("applied", |d| d.status()["applied_revision"].is_string());
    let applied = daemon.status()["applied_revision"]
        .as_str()
        .unwrap()
        .to_string();
    daemon.wait("a utilisation warning", |d| {
        d.status()["utilisation_warning"].is_string()
    });
    // Pasted credentials reach the daemon: refused, reported without the values.
    write(&stack, &pasted(&files));
    daemon.wait("the pasted revision refused", |d| {
        d.status()["sync_state"] == "invalid"
    });
    let port = daemon.port;
    let get = |path: &str| test_support::net::request(port, "GET", path, &[], b"");
    for path in [
        "/api/v1/status",
        "/api/v1/plan",
        &format!("/api/v1/plan?rollback={applied}"),
        "/api/v1/revisions",
        "/api/v1/drift",
        "/api/v1/resources",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        let (code, body) = get(path);
        assert!(code == 200 || code == 503, "{path}: {code} {body}");
        assert_clean(&format!("GET {path}"), body.as_bytes());
    }
    let (code, body) = daemon.post("/api/v1/sync?correct=all", "");
    assert_clean("POST /api/v1/sync?correct=all", body.to_string().as_bytes());
    assert!(code == 200 || code == 409, "{code} {body}");
    let (_, body) = test_support::net::request(
        port,
        "POST",
        "/api/v1/sync",
        &[("Authorization", "Bearer wrong-token")],
        b"",
    );
    assert_clean("a refused request", body.as_bytes());
    let (_, body) = test_support::net::request(
        port,
        "POST",
        "/hooks/git",
        &[("X-Hub-Signature-256", "sha256=00")],
        b"{}",
    );
    assert_clean("a refused webhook", body.as_bytes());

    // Every view of the UI, connected with the token.
    let binary = env!("CARGO_BIN_EXE_platformd");
    let ui = Tmux::start(
        "secrets",
        daemon_dir.path(),
        &format!("'{binary}' tui --connect http://127.0.0.1:{port} --token-file token"),
    );
    ui.wait_for("Overview");
    for key in ["1", "2", "3", "4", "5", "6", "7", "?"] {
        ui.keys(key);
        std::thread::sleep(Duration::from_millis(300));
        assert_clean(&format!("the UI after `{key}`"), ui.screen().as_bytes());
        if key == "?" {
            ui.keys("Escape");
        }
    }
    ui.keys("q");

    let mut daemon = daemon;
    daemon.terminate();
    let log = daemon.log();
    assert!(
        log.contains("\"level\":\"DEBUG\""),
        "debug logs were written"
    );
    assert_clean("the daemon's JSON log", log.as_bytes());
    // The store, WAL and rendered files.
    assert_tree_clean(&daemon_dir.path().join(".platformd"));

    // The scanner is not blind: the files that hold the secrets are flagged.
    assert!(!scan(&std::fs::read(daemon_dir.path().join("notify-key")).unwrap()).is_empty());
    assert!(!scan(&std::fs::read(&token_file).unwrap()).is_empty());
}
