//! One daemon following many stacks (`platformd daemon --config FILE`): each stack with its own
//! loop, store, status, routes and metrics label; a stack that cannot be fetched holds nobody
//! back; on SQLite (a store per stack in the state directory) and on the shared PostgreSQL
//! store (a schema per stack).

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::running::{Remote, TOKEN};
use test_support::net::{free_port, request as http};

fn platform(stack: &str) -> String {
    format!(
        "platform \"{stack}\" {{\n    environment \"test\"\n    driver \"local\" {{\n        path \"rendered-{stack}\"\n        namespace \"{stack}\"\n    }}\n}}\n\nteam \"web\" {{\n    owner \"web-oncall@acme.example\"\n}}\n"
    )
}

fn service(name: &str, replicas: u32) -> String {
    format!(
        "service \"{name}\" {{\n    team \"web\"\n    image \"ghcr.io/acme/{name}:1.0.0\"\n    replicas {replicas}\n    port 8080\n}}\n"
    )
}

struct ManyStacks {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl ManyStacks {
    fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> ManyStacks {
        std::fs::write(dir.join("platformd.kdl"), config).unwrap();
        std::fs::write(dir.join("token"), TOKEN).unwrap();
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_platformd"));
        cmd.args([
            "daemon",
            "--config",
            "platformd.kdl",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--token-file",
            "token",
            "--interval",
            "300ms",
        ])
        .current_dir(dir)
        .env("PLATFORMD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        ManyStacks {
            child: cmd.spawn().unwrap(),
            port,
            dir: dir.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> (u16, String) {
        http(self.port, "GET", path, &[], b"")
    }

    fn json(&self, path: &str) -> Value {
        let (code, body) = self.get(path);
        assert_eq!(code, 200, "{path}: {body}\n{}", self.log());
        serde_json::from_str(&body).unwrap()
    }

    fn wait(&self, what: &str, done: impl Fn(&ManyStacks) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() || !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_applied(&self, stack: &str, revision: &str) {
        self.wait(&format!("{stack} at {revision}"), |d| {
            // A replica sharing a store answers 503 until it has taken the stack.
            let (code, body) = d.get(&format!("/api/v1/stacks/{stack}/status"));
            code == 200
                && serde_json::from_str::<Value>(&body)
                    .is_ok_and(|s| s["applied_revision"] == revision)
        });
    }
}

impl Drop for ManyStacks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two stacks on their own remotes and one whose remote does not exist.
fn config(a: &Remote, b: &Remote, store: &str) -> String {
    format!(
        "{store}\nstack \"shop-a\" {{\n    repo \"{}\"\n    path \"stack\"\n}}\nstack \"shop-b\" {{\n    repo \"{}\"\n    path \"stack\"\n    interval \"200ms\"\n}}\nstack \"broken\" {{\n    repo \"file:///nonexistent/remote.git\"\n}}\n",
        a.url(),
        b.url()
    )
}

/// Two stacks on remotes of their own (`shop-a` with `api`, `shop-b` with `web`) and the
/// broken one, followed by a daemon and applied: the first remote, `shop-b`'s first commit and
/// the daemon.
struct TwoStacks {
    a: Remote,
    b1: String,
    daemon: ManyStacks,
}

fn start_two_stacks(dir: &Path, store_line: &str, env: &[(&str, &str)]) -> TwoStacks {
    let (a, b) = (Remote::new(), Remote::new());
    let a1 = a.push(
        &[
            ("platform.kdl", &platform("shop-a")),
            ("api.kdl", &service("api", 2)),
        ],
        "a: first",
    );
    let b1 = b.push(
        &[
            ("platform.kdl", &platform("shop-b")),
            ("web.kdl", &service("web", 1)),
        ],
        "b: first",
    );
    let daemon = ManyStacks::start(dir, &config(&a, &b, store_line), env);
    daemon.wait_applied("shop-a", &a1);
    daemon.wait_applied("shop-b", &b1);
    TwoStacks { a, b1, daemon }
}

fn follow_many_stacks(store_line: &str, env: &[(&str, &str)]) -> (tempfile::TempDir, [String; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let TwoStacks { a, b1, daemon } = start_two_stacks(dir.path(), store_line, env);

    // The stack list: both applied, the broken one in error with why, and none holds the
    // others back (the process is ready).
    let stacks = daemon.json("/api/v1/stacks");
    let names: Vec<&str> = stacks["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop-a", "shop-b", "broken"]);
    daemon.wait("the broken stack reported", |d| {
        let (code, body) = d.get("/api/v1/stacks/broken/status");
        code == 200
            && serde_json::from_str::<Value>(&body).is_ok_and(|s| s["last_error"].is_string())
    });
    let broken = daemon.json("/api/v1/stacks/broken/status");
    assert!(
        broken["last_error"]
            .as_str()
            .unwrap()
            .contains("nonexistent"),
        "{broken}"
    );
    daemon.wait("ready", |d| d.get("/readyz").0 == 200);

    // Each stack renders its own resources.
    for stack in ["shop-a", "shop-b"] {
        let rendered = std::fs::read_dir(dir.path().join(format!("rendered-{stack}")))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(rendered > 0, "{stack} rendered nothing");
    }

    // A push to one stack is applied to it alone.
    let a2 = a.push(&[("api.kdl", &service("api", 5))], "a: scale");
    daemon.wait_applied("shop-a", &a2);
    assert_eq!(
        daemon.json("/api/v1/stacks/shop-b/status")["applied_revision"],
        b1.as_str()
    );
    let a_history = daemon.json("/api/v1/stacks/shop-a/revisions");
    assert_eq!(a_history["applies"].as_array().unwrap().len(), 2);
    let b_history = daemon.json("/api/v1/stacks/shop-b/revisions");
    assert_eq!(b_history["applies"].as_array().unwrap().len(), 1);

    // Mutating routes are per stack and need the token.
    let (code, _) = http(daemon.port, "POST", "/api/v1/stacks/shop-b/sync", &[], b"");
    assert_eq!(code, 401);
    let auth = format!("Bearer {TOKEN}");
    let (code, body) = http(
        daemon.port,
        "POST",
        "/api/v1/stacks/shop-b/sync",
        &[("Authorization", &auth)],
        b"",
    );
    assert!(code < 300, "{code} {body}");
    assert_eq!(daemon.get("/api/v1/stacks/nope/status").0, 404);

    // One exposition: each family once, every sample labelled with its stack.
    let (code, metrics) = daemon.get("/metrics");
    assert_eq!(code, 200);
    assert_eq!(
        metrics
            .matches("# TYPE platformd_revisions_applied counter")
            .count(),
        1,
        "{metrics}"
    );
    assert!(
        metrics.contains("platformd_revisions_applied_total{stack=\"shop-a\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("platformd_revisions_applied_total{stack=\"shop-b\"} 1"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"));
    (dir, [a2, b1, daemon.log()])
}

#[test]
fn one_daemon_follows_many_stacks_each_in_its_own_sqlite_store() {
    let (dir, [a2, b1, _]) = follow_many_stacks("", &[]);
    // Each stack's history is in its own store under the state directory.
    for (stack, revision) in [("shop-a", &a2), ("shop-b", &b1)] {
        let store =
            daemon::store::Store::open_read_only(&dir.path().join(".platformd/stacks").join(stack))
                .unwrap();
        assert_eq!(
            store.applied_revision().unwrap().as_deref(),
            Some(revision.as_str())
        );
    }
}

#[test]
fn one_daemon_follows_many_stacks_on_the_shared_postgres_store() {
    let db = test_support::postgres::database();
    let line = format!("store \"{}\" password-env=\"STORE_PASSWORD\"", db.url);
    let (_dir, [a2, b1, log]) =
        follow_many_stacks(&line, &[("STORE_PASSWORD", "not-used-by-trust-auth")]);
    assert!(
        !log.contains("not-used-by-trust-auth"),
        "the password is never logged"
    );
    for (stack, revision) in [("shop-a", &a2), ("shop-b", &b1)] {
        let store = daemon::store::Store::open_postgres(&db.url, None, stack).unwrap();
        assert_eq!(
            store.applied_revision().unwrap().as_deref(),
            Some(revision.as_str())
        );
        assert!(store.open_intents().unwrap().is_empty());
    }
    assert!(
        !test_support::postgres::psql(
            &db.url,
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name = 'platformd/broken'"
        )
        .is_empty(),
        "the broken stack's store exists too"
    );
}

#[test]
fn a_bad_configuration_is_reported_with_its_location_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("platformd.kdl"),
        "stack \"a\" {\n    repo \"file:///x\"\n    intervall \"30s\"\n}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_platformd"))
        .args(["daemon", "--config", "platformd.kdl"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("platformd.kdl:3:5"), "{stderr}");
    assert!(stderr.contains("did you mean `interval`?"), "{stderr}");
    assert!(
        !dir.path().join(".platformd").exists(),
        "nothing was created"
    );
}

/// `platformd tui` on a daemon that follows many stacks lists them; Enter opens one.
#[test]
fn the_ui_lists_the_stacks_and_opens_the_one_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let TwoStacks { b1, daemon, .. } = start_two_stacks(dir.path(), "", &[]);
    let binary = env!("CARGO_BIN_EXE_platformd");
    let ui = support::tmux::Tmux::start(
        "picker",
        dir.path(),
        &format!("'{binary}' tui --connect http://127.0.0.1:{}", daemon.port),
    );
    ui.wait_for("3 stacks");
    ui.wait_for("shop-a");
    ui.wait_for("broken");
    ui.keys("Down");
    ui.keys("Enter");
    ui.wait_for("Stack           shop-b");
    ui.wait_for(&b1[..8]);
    ui.keys("q");
    ui.wait_for("EXIT=0");
    assert!(!ui.alternate(), "the terminal is restored on quit");

    // --stack opens one directly.
    let ui = support::tmux::Tmux::start(
        "direct",
        dir.path(),
        &format!(
            "'{binary}' tui --connect http://127.0.0.1:{} --stack shop-a",
            daemon.port
        ),
    );
    ui.wait_for("Stack           shop-a");
    ui.keys("q");
    ui.wait_for("EXIT=0");
}

/// Each stack's driver credentials come from the configuration, by reference: two stacks
/// whose platform declares a Kubernetes driver without a kubeconfig, each given its own
/// cluster's kubeconfig by the daemon's configuration, land in their own cluster; the
/// reference is never part of a snapshot.
#[test]
fn each_stack_gets_its_driver_credentials_by_reference() {
    use test_support::kube_emulator::KubeEmulator;
    let dir = tempfile::tempdir().unwrap();
    let clusters = [KubeEmulator::start(), KubeEmulator::start()];
    let mut config = String::new();
    let mut revisions = Vec::new();
    let mut remotes = Vec::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let name = format!("region-{i}");
        let kubeconfig = dir.path().join(format!("kubeconfig-{i}"));
        std::fs::write(&kubeconfig, cluster.kubeconfig()).unwrap();
        let platform = format!(
            "platform \"{name}\" {{\n    environment \"test\"\n    driver \"kubernetes\" {{\n        namespace \"shop\"\n    }}\n}}\n\nteam \"web\" {{\n    owner \"web-oncall@acme.example\"\n}}\n"
        );
        let remote = Remote::new();
        revisions.push(remote.push(
            &[
                ("platform.kdl", &platform),
                ("api.kdl", &service(&format!("api-{i}"), 1)),
            ],
            "first",
        ));
        config.push_str(&format!(
            "stack \"{name}\" {{\n    repo \"{}\"\n    path \"stack\"\n    driver \"kubernetes\" kubeconfig=\"{}\"\n}}\n",
            remote.url(),
            kubeconfig.display()
        ));
        remotes.push(remote);
    }
    // No kubeconfig anywhere else: without the configuration's reference the driver has none.
    let daemon = ManyStacks::start(
        dir.path(),
        &config,
        &[
            ("KUBECONFIG", "/nonexistent/kubeconfig"),
            ("HOME", "/nonexistent"),
        ],
    );
    daemon.wait_applied("region-0", &revisions[0]);
    daemon.wait_applied("region-1", &revisions[1]);
    for (i, cluster) in clusters.iter().enumerate() {
        assert!(
            cluster
                .get("apps", "deployments", "shop", &format!("api-{i}"))
                .is_some()
        );
        assert!(
            cluster
                .get("apps", "deployments", "shop", &format!("api-{}", 1 - i))
                .is_none(),
            "each stack in its own cluster"
        );
    }
    let store =
        daemon::store::Store::open_read_only(&dir.path().join(".platformd/stacks/region-0"))
            .unwrap();
    let snapshot = store.snapshot(&revisions[0]).unwrap().unwrap();
    assert!(
        !serde_json::to_string(&snapshot)
            .unwrap()
            .contains("kubeconfig-0"),
        "the reference stays out of the snapshot"
    );
}
