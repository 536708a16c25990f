//! A scratch workspace for end-to-end tests: a stack directory, a state directory, and the
//! real `platformd` binary run with the workspace as its working directory.

#![allow(dead_code)]

pub mod running;
pub mod tmux;

use api::{ApplyRecord, ApplyStatus};
use daemon::store::{IntentResult, JournalAction, JournalEntry, Store};
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
        c.args(args).current_dir(self.path()).env("NO_COLOR", "1");
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

    /// The store, read-only, through its API.
    pub fn store(&self) -> Store {
        Store::open_read_only(&self.path().join(".platformd")).expect("store exists")
    }

    /// Asks the local driver for latency or faults (`simulate-latency-ms`, `inject-faults`).
    pub fn local_driver(&self, settings: &[(&str, &str)]) {
        test_support::set_local_driver(&self.path().join("stack"), settings);
    }
}

impl Workspace {
    /// For each of `points`: starts `apply stack --parallelism P`, waits until the store holds
    /// that many applied resources (or the apply ends), and SIGKILLs it: no destructors, no
    /// journal bookkeeping, no lease release. Returns how many kills landed before all `total`
    /// resources were applied.
    pub fn kill_apply_at(&self, points: &[usize], total: usize, parallelism: usize) -> usize {
        let state = self.path().join(".platformd");
        let parallelism = parallelism.to_string();
        let mut killed_midway = 0;
        for &point in points {
            let mut child = self
                .command(&[
                    "apply",
                    "stack",
                    "--auto-approve",
                    "--parallelism",
                    &parallelism,
                ])
                .spawn()
                .expect("platformd runs");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            let applied = || Tally::of(&state).map_or(0, |t| t.resources);
            while applied() < point
                && std::time::Instant::now() < deadline
                && child.try_wait().ok().flatten().is_none()
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let reached = applied();
            child.kill().expect("kill");
            child.wait().expect("reap");
            let after = applied();
            assert!(
                reached >= point.min(total) || after == total,
                "reached {reached} for {point}"
            );
            killed_midway += usize::from(after < total);
        }
        killed_midway
    }
}

/// What a test checks in a store: counts by state, through the store's API.
pub struct Tally {
    pub resources: usize,
    pub applies: Vec<ApplyRecord>,
    pub journal: Vec<JournalEntry>,
    pub lease: Option<daemon::store::Lease>,
}

impl Tally {
    /// The store in `state_dir`, or `None` while it does not exist yet.
    pub fn of(state_dir: &Path) -> Option<Tally> {
        let store = Store::open_read_only(state_dir).ok()?;
        Some(Tally {
            resources: store.resource_count().ok()?,
            applies: store.history().ok()?,
            journal: store.journal().ok()?,
            lease: store.lease().ok()?,
        })
    }

    pub fn applies_with(&self, status: ApplyStatus) -> usize {
        self.applies.iter().filter(|a| a.status == status).count()
    }

    /// Journal entries whose outcome is unknown.
    pub fn open_intents(&self) -> usize {
        self.journal.iter().filter(|j| j.result.is_none()).count()
    }

    pub fn intents(
        &self,
        action: Option<JournalAction>,
        result: IntentResult,
    ) -> Vec<&JournalEntry> {
        self.journal
            .iter()
            .filter(|j| action.is_none_or(|a| j.action == a) && j.result == Some(result))
            .collect()
    }
}

/// Every rendered Kubernetes manifest under `dir`, checked with `kubernetes-validate --strict`.
pub fn kubernetes_validate(dir: &Path) -> Run {
    let mut files = Vec::new();
    for kind in [
        "service",
        "ai-endpoint",
        "pipeline",
        "topic",
        "llm-quota",
        "job",
    ] {
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
