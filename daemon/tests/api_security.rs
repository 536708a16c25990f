//! The locked-down API: the daemon serving HTTPS itself (rustls), reached with curl and the TUI;
//! named tokens with read and write scopes kept only as hashes; unauthenticated and read-scoped
//! mutating requests refused with 401 and 403 and changing nothing; every mutating request logged
//! with its token's name; bodies limited in size; mutating requests rate limited per token;
//! revocation taking effect at once.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::running::Daemon;
use support::tmux::Tmux;
use test_support::tls::SelfSigned;

/// `curl` against the daemon over HTTPS, trusting only the test's certificate: (status, body).
fn curl(ca: &Path, url: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn platformd(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_platformd"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// A manual stack: only an operator's sync applies it.
fn service(replicas: u32) -> String {
    format!(
        "{}service \"api\" {{\n    team \"web\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    replicas {replicas}\n    port 8080\n}}\n",
        support::PLATFORM.replace(
            "    environment \"test\"\n",
            "    environment \"test\"\n    sync \"manual\"\n"
        )
    )
}

#[test]
fn https_named_scoped_tokens_logging_body_and_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(stack.join("platform.kdl"), service(2)).unwrap();
    let tls = SelfSigned::create(dir.path());

    // Tokens made before the daemon starts, and one while it runs: both work.
    let made = platformd(
        dir.path(),
        &["token", "create", "ci-bot", "--scope", "write"],
    );
    assert!(made.status.success(), "{made:?}");
    let writer = String::from_utf8_lossy(&made.stdout).trim().to_string();
    assert!(writer.starts_with("pdt_") && writer.len() == 44, "{writer}");
    assert!(String::from_utf8_lossy(&made.stderr).contains("shown this once"));
    let again = platformd(dir.path(), &["token", "create", "ci-bot"]);
    assert_eq!(again.status.code(), Some(1), "a name is taken once");

    let daemon = Daemon::spawn(
        dir.path(),
        stack.to_str().unwrap(),
        &[
            "--tls-cert",
            tls.cert.to_str().unwrap(),
            "--tls-key",
            tls.key.to_str().unwrap(),
            "--debounce",
            "100ms",
            // Low enough that the burst below meets the limit however slowly curl runs.
            "--api-rate-limit",
            "0.5",
        ],
        &[],
    );
    let base = format!("https://127.0.0.1:{}", daemon.port);
    let deadline = Instant::now() + Duration::from_secs(60);
    while curl(&tls.cert, &format!("{base}/readyz"), &[]).0 != 200 {
        assert!(Instant::now() < deadline, "never ready:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let made = platformd(dir.path(), &["token", "create", "viewer"]);
    let reader = String::from_utf8_lossy(&made.stdout).trim().to_string();

    // Plain HTTP on the TLS port gets nothing; HTTPS without trusting the certificate fails.
    assert_eq!(
        test_support::net::request(daemon.port, "GET", "/api/v1/status", &[], b"").0,
        0
    );
    let untrusted = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("{base}/healthz"))
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
    let (code, body) = curl(&tls.cert, &format!("{base}/api/v1/status"), &[]);
    assert_eq!(code, 200, "{body}");
    let history_len = || {
        let (_, body) = curl(&tls.cert, &format!("{base}/api/v1/revisions"), &[]);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["applies"].as_array().map_or(0, Vec::len)
    };
    let before = history_len();

    // No token: 401. A read-scoped token: 403. Neither changes anything.
    let sync = format!("{base}/api/v1/sync?override-window=test");
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let (code, body) = curl(&tls.cert, &sync, &["-X", "POST"]);
    assert_eq!(code, 401, "{body}");
    let (code, body) = curl(
        &tls.cert,
        &sync,
        &["-X", "POST", "-H", &bearer("pdt_wrong")],
    );
    assert_eq!(code, 401, "{body}");
    let (code, body) = curl(&tls.cert, &sync, &["-X", "POST", "-H", &bearer(&reader)]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("token `viewer` is read-only"), "{body}");
    assert_eq!(history_len(), before, "refused requests change nothing");

    // The write-scoped token's sync does not skip the stack's approval (`sync "manual"`); its
    // approval of the waiting plan applies it, recorded as its name, and logged.
    std::fs::write(stack.join("platform.kdl"), service(3)).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let (code, body) = curl(&tls.cert, &sync, &["-X", "POST", "-H", &bearer(&writer)]);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("waits for approval"), "{body}");
    let (_, status) = curl(&tls.cert, &format!("{base}/api/v1/status"), &[]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let approve = format!(
        r#"{{"revision": "{}", "plan_hash": "{}"}}"#,
        status["pending_approval"]["revision"].as_str().unwrap(),
        status["pending_approval"]["plan_hash"].as_str().unwrap()
    );
    let (code, body) = curl(
        &tls.cert,
        &format!("{base}/api/v1/approve"),
        &[
            "-X",
            "POST",
            "-H",
            &bearer(&writer),
            "-H",
            "content-type: application/json",
            "--data-binary",
            &approve,
        ],
    );
    assert_eq!(code, 200, "{body}");
    let out = platformd(dir.path(), &["history"]);
    let history = String::from_utf8_lossy(&out.stdout);
    assert!(history.contains("token ci-bot"), "{history}");
    let log = daemon.log();
    let accepted = log
        .lines()
        .find(|l| l.contains("API request") && l.contains("ci-bot"))
        .unwrap_or_else(|| panic!("no log line for the request:\n{log}"));
    assert!(accepted.contains("sync"), "{accepted}");
    assert!(log.contains("read-scoped token refused"), "{log}");

    // A body over 64 KiB is refused before it is read.
    let big = "x".repeat(70 * 1024);
    let (code, _) = curl(
        &tls.cert,
        &format!("{base}/api/v1/rollback"),
        &["-X", "POST", "-H", &bearer(&writer), "--data-binary", &big],
    );
    assert_eq!(code, 413);

    // Mutating requests are rate limited per token: a burst, then 429 with Retry-After.
    // The refused response itself is checked: a separate request after the burst could find
    // the bucket refilled on a loaded machine (each TLS request takes a while).
    // The bucket first refills from the sync and the approval above (2.5 at 0.5 a second).
    std::thread::sleep(Duration::from_secs(5));
    let resume = format!("{base}/api/v1/resume");
    let mut codes = Vec::new();
    let mut refused = None;
    for _ in 0..32 {
        let (code, response) = curl(
            &tls.cert,
            &resume,
            &["-i", "-X", "POST", "-H", &bearer(&writer)],
        );
        codes.push(code);
        if code == 429 {
            refused = Some(response.to_lowercase());
            break;
        }
    }
    assert!(codes.contains(&200), "{codes:?}");
    let head = refused.unwrap_or_else(|| panic!("no 429 in a burst of 32: {codes:?}"));
    assert!(head.contains("retry-after: 1"), "{head}");

    // The TUI over the daemon's own TLS, with the read token.
    std::fs::write(dir.path().join("viewer-token"), &reader).unwrap();
    let binary = env!("CARGO_BIN_EXE_platformd");
    let ui = Tmux::start(
        "tls",
        dir.path(),
        &format!(
            "'{binary}' tui --connect {base} --ca-file '{}' --token-file viewer-token",
            tls.cert.display()
        ),
    );
    let screen = ui.wait_for("synced");
    assert!(screen.contains("Overview"), "{screen}");
    ui.keys("q");

    // Tokens are kept as hashes only; revoking one stops it at once.
    let db = std::fs::read(dir.path().join(".platformd/platformd.db")).unwrap();
    for t in [&writer, &reader] {
        assert!(
            !db.windows(t.len()).any(|w| w == t.as_bytes()),
            "a raw token in the store"
        );
    }
    let list = platformd(dir.path(), &["token", "list"]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("ci-bot") && list.contains("write") && list.contains("viewer"),
        "{list}"
    );
    assert!(
        platformd(dir.path(), &["token", "revoke", "ci-bot"])
            .status
            .success()
    );
    std::thread::sleep(Duration::from_millis(1100));
    let (code, _) = curl(&tls.cert, &resume, &["-X", "POST", "-H", &bearer(&writer)]);
    assert_eq!(code, 401);
}

/// `Bearer` is matched without case (RFC 7235), and guessing tokens is throttled: failed
/// authentications share one bucket, and past it the answer is 429 before the next guess is
/// checked; a right token still works once the bucket refills.
#[test]
fn the_bearer_scheme_is_case_insensitive_and_failed_authentication_is_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    // Auto-synced: a sync with a good token applies (200) rather than waiting for approval.
    std::fs::write(
        stack.join("platform.kdl"),
        format!("{}{}", support::PLATFORM, support::running::service(1)),
    )
    .unwrap();
    let daemon = support::running::Daemon::start(
        dir.path(),
        stack.to_str().unwrap(),
        &["--debounce", "100ms"],
        &[],
    );
    let token = support::running::TOKEN;
    let sync = |authorization: &str| {
        test_support::net::request(
            daemon.port,
            "POST",
            "/api/v1/sync",
            &[("authorization", authorization)],
            b"",
        )
    };
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let (code, body) = sync(&format!("{scheme}  {token}"));
        assert_eq!(code, 200, "{scheme}: {body}");
    }
    let mut codes = Vec::new();
    for i in 0..64 {
        let (code, _) = sync(&format!("Bearer wrong-{i}"));
        codes.push(code);
        if code == 429 {
            break;
        }
    }
    assert!(codes.contains(&401), "{codes:?}");
    assert_eq!(
        codes.last(),
        Some(&429),
        "no throttling in 64 guesses: {codes:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let (code, body) = sync(&format!("Bearer {token}"));
    assert_eq!(code, 200, "{body}");
}

/// What the server answers on `stream` before it closes: `Some(text)` once it closed, `None` if
/// it is still open after `wait`.
fn closed_within(stream: &mut std::net::TcpStream, wait: Duration) -> Option<String> {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&got).into_owned());
            }
            Err(_) => {}
        }
    }
    None
}

/// A server that holds (`docs/SECURITY.md`, "The API"): a client trickling its headers or its
/// body is cut off, idle connections are closed, connections past the cap are refused while
/// the API keeps answering, and SIGTERM does not wait on open connections longer than the
/// grace. Each bound here is the daemon's setting; the waits allow several times as much.
#[test]
fn slow_and_idle_clients_are_cut_off_connections_capped_and_shutdown_bounded() {
    use std::io::Write;
    use std::net::TcpStream;
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(stack.join("platform.kdl"), support::PLATFORM).unwrap();
    let mut daemon = Daemon::start(
        dir.path(),
        stack.to_str().unwrap(),
        &[
            "--http-header-timeout",
            "1s",
            "--http-body-timeout",
            "1s",
            "--http-max-connections",
            "6",
            "--http-shutdown-grace",
            "1s",
        ],
        &[],
    );
    let connect = || TcpStream::connect(("127.0.0.1", daemon.port)).unwrap();

    // Headers trickled a line at a time: cut off, never answered.
    let mut slow = connect();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut closed = None;
    while closed.is_none() && started.elapsed() < Duration::from_secs(8) {
        if slow.write_all(b"X-Slow: 1\r\n").is_err() {
            closed = Some(String::new());
            break;
        }
        closed = closed_within(&mut slow, Duration::from_millis(300));
    }
    let answered = closed.expect("a client trickling headers for 8s was still connected");
    assert!(!answered.contains("200 OK"), "{answered}");

    // A body that does not arrive: 408.
    let mut slow_body = connect();
    slow_body
        .write_all(
            format!(
                "POST /api/v1/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n{{\"a\":",
                support::running::TOKEN
            )
            .as_bytes(),
        )
        .unwrap();
    let answer = closed_within(&mut slow_body, Duration::from_secs(8))
        .expect("a client sending a body slowly was still connected after 8s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // Six idle connections fill the cap: a seventh is closed unanswered...
    let idle: Vec<TcpStream> = (0..6).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = connect();
    let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let answer = closed_within(&mut over, Duration::from_secs(3))
        .expect("a connection past the cap was kept");
    assert!(!answer.contains("200 OK"), "{answer}");
    // ...until the idle ones are closed for idleness, and the API answers again.
    for mut c in idle {
        assert!(
            closed_within(&mut c, Duration::from_secs(8)).is_some(),
            "an idle connection was kept"
        );
    }
    let (code, _) = test_support::net::request(daemon.port, "GET", "/healthz", &[], b"");
    assert_eq!(code, 200);

    // SIGTERM with a request still receiving its body: the daemon exits after the grace,
    // not after the body timeout or never.
    let mut pending = connect();
    pending
        .write_all(b"POST /hooks/git HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0), "{}", daemon.log());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 20s after SIGTERM\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(pending);
}

/// A webhook that finds the loop's event queue full is coalesced into a fetch after the loop's
/// next event, not dropped: the API answers 202 and marks the fetch as owed (the loop makes it
/// after its next event, `reconcile/mod.rs`). Served in-process on a one-event queue that is
/// already full.
#[test]
fn a_webhook_meeting_a_full_queue_is_coalesced_not_dropped() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = daemon::store::Store::open(dir.path()).unwrap();
    let (events, mut queue) = tokio::sync::mpsc::channel(1);
    events.try_send(daemon::reconcile::Event::PollTick).unwrap();
    let shared = std::sync::Arc::new(daemon::reconcile::Shared::new(store, "test".into(), events));
    let secret = b"coalesce-secret".to_vec();
    let app = daemon::server::router(daemon::server::Api::new(
        shared.clone(),
        None,
        Some(secret.clone()),
    ));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_stop, stop) = tokio::sync::watch::channel(false);
    rt.spawn(daemon::serve::serve(
        listener,
        app,
        daemon::serve::ServeLimits::default(),
        stop,
    ));
    let body = br#"{"ref":"refs/heads/main","after":"full"}"#;
    let signature = test_support::net::github_signature(&secret, body);
    let (code, text) = test_support::net::request(
        port,
        "POST",
        "/hooks/git",
        &[("X-Hub-Signature-256", &signature)],
        body,
    );
    assert_eq!(code, 202, "{text}");
    assert!(
        shared
            .fetch_requested
            .load(std::sync::atomic::Ordering::SeqCst),
        "the webhook was dropped"
    );
    // The queue holds only what was there before.
    assert!(matches!(
        queue.try_recv(),
        Ok(daemon::reconcile::Event::PollTick)
    ));
    assert!(queue.try_recv().is_err());
}
