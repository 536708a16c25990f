//! A state directory this user cannot write, and a disk that fills up in the middle of an
//! apply: a clear error, nothing lost, nothing duplicated. The full disk is a real one (a small
//! tmpfs mounted over the state directory), which needs root, as the test command runs.

mod support;

use api::ApplyStatus;
use daemon::store::{IntentResult, JournalAction};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{Run, Tally, Workspace};

/// The uid of `nobody`: a user that cannot write what root made.
const NOBODY: u32 = 65534;

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn make_readable(dir: &Path) {
    let status = Command::new("chmod").args(["-R", "a+rX"]).arg(dir).status();
    assert!(status.unwrap().success());
}

/// `platformd ARGS` in the workspace as `nobody`, from a copy of the binary that user can run.
fn run_as_nobody(ws: &Workspace, binary: &Path, args: &[&str]) -> Run {
    Command::new(binary)
        .args(args)
        .current_dir(ws.path())
        .env("NO_COLOR", "1")
        .env("HOME", ws.path())
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("platformd runs")
        .into()
}

#[test]
fn a_read_only_state_directory_is_still_read_and_never_written() {
    let ws = Workspace::new();
    ws.copy_example();
    let applied = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all());
    let binary = ws.path().join("platformd");
    std::fs::copy(env!("CARGO_BIN_EXE_platformd"), &binary).unwrap();
    // A change to plan: one more replica of the storefront.
    let web = ws.path().join("stack/storefront/web.kdl");
    let text = std::fs::read_to_string(&web).unwrap();
    assert!(text.contains("replicas 3"));
    std::fs::write(&web, text.replacen("replicas 3", "replicas 4", 1)).unwrap();
    make_readable(ws.path());
    let state = ws.path().join(".platformd");
    let (db_before, files_before) = (sha256_of(&state.join("platformd.db")), listing(&state));

    let history = run_as_nobody(&ws, &binary, &["history"]);
    assert_eq!(history.code, 0, "{}", history.all());
    assert!(history.stdout.contains("succeeded"), "{}", history.all());

    let plan = run_as_nobody(&ws, &binary, &["plan", "stack", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "a plan with the change\n{}", plan.all());
    assert!(plan.stdout.contains("replicas"), "{}", plan.all());

    for args in [
        &["apply", "stack", "--auto-approve"][..],
        &["daemon", "--repo", "stack", "--listen", "127.0.0.1:0"][..],
    ] {
        let refused = run_as_nobody(&ws, &binary, args);
        assert_eq!(refused.code, 1, "{args:?}\n{}", refused.all());
        assert!(
            refused.stderr.contains("read-only for this user")
                && refused.stderr.contains("nothing was changed"),
            "{args:?}\n{}",
            refused.all()
        );
        assert!(!refused.stderr.contains("panicked"), "{}", refused.all());
    }
    assert_eq!(sha256_of(&state.join("platformd.db")), db_before);
    assert_eq!(listing(&state), files_before);
}

/// A tmpfs of `size` mounted on `dir` for the test's life.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs as a full disk, which needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            dir: dir.to_path_buf(),
        }
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

const RESOURCES: usize = 600;

#[test]
fn a_disk_that_fills_up_mid_apply_loses_nothing_and_the_next_apply_finishes() {
    let ws = Workspace::new();
    test_support::generate::write_stack(&ws.path().join("stack"), RESOURCES, 7).unwrap();
    let state = ws.path().join(".platformd");
    // Room for the store's first pages and write-ahead log (which grows to about 4 MiB before
    // SQLite checkpoints it), not for the whole apply.
    let disk = SmallDisk::mount(&state, "3m");

    let full = ws.run(&["apply", "stack", "--auto-approve", "--parallelism", "8"]);
    assert_eq!(full.code, 1, "the apply cannot finish\n{}", full.all());
    assert!(
        full.stderr
            .contains("the disk that holds the state directory is full")
            && full.stderr.contains("nothing was lost"),
        "{}",
        full.all()
    );
    assert!(!full.stderr.contains("panicked"), "{}", full.all());
    let during = Tally::of(&state).expect("the store opens on a full disk");
    assert!(
        during.resources > 0 && during.resources < RESOURCES,
        "the disk filled midway: {} of {RESOURCES} applied",
        during.resources
    );
    let history = ws.run(&["history"]);
    assert_eq!(
        history.code,
        0,
        "history reads a full disk\n{}",
        history.all()
    );

    disk.grow("256m");
    let resumed = ws.run(&["apply", "stack", "--auto-approve", "--parallelism", "8"]);
    assert_eq!(resumed.code, 0, "{}", resumed.all());

    let plan = ws.run(&["plan", "stack", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "converged\n{}", plan.all());
    let after = Tally::of(&state).unwrap();
    assert_eq!(after.resources, RESOURCES);
    assert_eq!(after.open_intents(), 0);
    assert_eq!(after.applies_with(ApplyStatus::Running), 0);
    assert_eq!(after.applies.last().unwrap().status, ApplyStatus::Succeeded);
    // Every row the failed apply left is still there.
    for (kept, now) in during.applies.iter().zip(&after.applies) {
        assert_eq!(kept.id, now.id);
        assert_eq!(kept.revision, now.revision);
    }
    assert!(after.applies.len() > during.applies.len());
    let mut created: Vec<&str> = after
        .intents(Some(JournalAction::Create), IntentResult::Ok)
        .iter()
        .map(|j| j.address.as_str())
        .collect();
    created.sort_unstable();
    let total = created.len();
    created.dedup();
    assert_eq!(created.len(), total, "a resource created twice");
    assert_eq!(total, RESOURCES);
}
