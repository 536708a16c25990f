//! A `platformd daemon` process on loopback, observed through its HTTP API, and a bare git
//! remote with a working clone that pushes to it.

use serde_json::Value;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use test_support::net::{free_port, request as http};

pub const TOKEN: &str = "test-token-123";
pub const SECRET: &str = "webhook-secret-456";

pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Daemon {
    pub fn start(dir: &Path, repo: &str, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let daemon = Daemon::spawn(dir, repo, extra, env);
        daemon.wait("ready", |d| {
            TcpStream::connect(("127.0.0.1", d.port)).is_ok()
                && http(d.port, "GET", "/readyz", &[], b"").0 == 200
        });
        daemon
    }

    /// Started, but not waiting for readiness (which follows the first reconcile).
    pub fn spawn(dir: &Path, repo: &str, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        std::fs::write(dir.join("token"), TOKEN).unwrap();
        std::fs::write(dir.join("secret"), SECRET).unwrap();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_platformd"));
        cmd.args([
            "daemon",
            "--repo",
            repo,
            "--listen",
            &listen,
            "--token-file",
            "token",
            "--webhook-secret-file",
            "secret",
        ])
        .args(extra)
        .current_dir(dir)
        .env("PLATFORMD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Daemon {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&http(self.port, "GET", "/api/v1/status", &[], b"").1).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn wait(&self, what: &str, done: impl Fn(&Daemon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_applied(&self, revision: &str) {
        self.wait(&format!("{revision} applied"), |d| {
            d.status()["applied_revision"] == revision
        });
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let auth = format!("Bearer {TOKEN}");
        let (code, body) = http(
            self.port,
            "POST",
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        (code, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub fn terminate(&mut self) -> i32 {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare "remote" and a working clone that pushes to it.
pub struct Remote {
    pub dir: tempfile::TempDir,
    pub work: test_support::git::GitRepo,
}

impl Remote {
    pub fn new() -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("git")
            .args(["init", "-q", "--bare", "-b", "main", "remote.git"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let work = test_support::git::GitRepo::init();
        work.git(&[
            "remote",
            "add",
            "origin",
            dir.path().join("remote.git").to_str().unwrap(),
        ]);
        Remote { dir, work }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().join("remote.git").display())
    }

    pub fn push(&self, files: &[(&str, &str)], message: &str) -> String {
        for (p, t) in files {
            self.work.write(&format!("stack/{p}"), t);
        }
        let id = self.work.commit(message);
        self.work.git(&["push", "-q", "--force", "origin", "main"]);
        id
    }
}

/// A stack's one service, `api`, with `replicas`.
pub fn service(replicas: u32) -> String {
    format!(
        "service \"api\" {{\n    team \"web\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    replicas {replicas}\n    port 8080\n}}\n"
    )
}

/// The test platform with `sync "manual"`: every plan waits for approval.
pub fn manual_platform() -> String {
    super::PLATFORM.replace(
        "    environment \"test\"\n",
        "    environment \"test\"\n    sync \"manual\"\n",
    )
}

/// A scratch directory for a daemon's state.
pub fn work_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
