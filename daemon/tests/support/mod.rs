//! A scratch workspace for end-to-end tests: a stack directory, a state directory, and the
//! real `platformd` binary run with the workspace as its working directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub const PLATFORM: &str = r#"platform "shop" {
    environment "test"
    driver "local" {
        path ".platformd/rendered"
        namespace "shop"
    }
}

team "web" {
    owner "web-oncall@acme.example"
}
"#;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("tempdir"),
            env: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the stack with `files` (path → text).
    pub fn stack(&self, files: &[(&str, &str)]) {
        let stack = self.path().join("stack");
        let _ = std::fs::remove_dir_all(&stack);
        for (path, text) in files {
            let p = stack.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    pub fn copy_example(&self) {
        let src = repo_root().join("platform-state-example");
        test_support::copy_dir(&src, &self.path().join("stack"));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_platformd"));
        c.args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("PLATFORMD_LOCAL_FAULTS")
            .env_remove("PLATFORMD_LOCAL_LATENCY_MS");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("platformd runs").into()
    }

    pub fn rendered(&self, rel: &str) -> PathBuf {
        self.path().join(".platformd/rendered").join(rel)
    }

    pub fn read_rendered(&self, rel: &str) -> String {
        std::fs::read_to_string(self.rendered(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path().join(".platformd/platformd.db"))
            .expect("store exists")
    }
}

/// Every rendered Kubernetes manifest under `dir`, checked with `kubernetes-validate --strict`.
pub fn kubernetes_validate(dir: &Path) -> Run {
    let mut files = Vec::new();
    for kind in ["service", "ai-endpoint", "pipeline", "topic"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(kind)) {
            for e in entries {
                files.push(e.unwrap().path());
            }
        }
    }
    assert!(!files.is_empty(), "no manifests under {}", dir.display());
    Command::new("kubernetes-validate")
        .arg("--strict")
        .arg("--no-warn")
        .args(&files)
        .output()
        .expect("kubernetes-validate is installed (scripts/test.sh installs it)")
        .into()
}
