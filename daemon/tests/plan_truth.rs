//! The plan is the whole truth (`docs/PLAN_FORMAT.md`, `docs/APPLY.md`): end to end through the
//! `platformd` binary with the embedded local driver — exit codes and closed pipes, outputs
//! known only after apply, driver settings that plan, `moved`, `removed` and `import`.

mod support;

use std::process::Stdio;
use support::Workspace;

/// Runs `args` with its standard output closed before it writes a byte (`platformd … | head`
/// once `head` has what it wants): the command must end quietly, by SIGPIPE or on its own,
/// never with a panic.
fn run_into_a_closed_pipe(ws: &Workspace, args: &[&str]) {
    let mut child = ws
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("platformd runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("platformd ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    let quiet = out.status.success() || out.status.signal() == Some(libc::SIGPIPE);
    assert!(
        quiet && !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{args:?}: {:?}\n{stderr}",
        out.status
    );
}

#[test]
fn every_command_survives_a_closed_pipe() {
    let ws = Workspace::new();
    ws.copy_example();
    let applied = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all());
    for args in [
        &["validate", "stack"][..],
        &["plan", "stack", "--format", "json"],
        &["graph", "stack"],
        &["cost", "stack"],
        &["templates", "stack"],
        &["drift", "stack"],
        &["history"],
        &["--help"],
    ] {
        run_into_a_closed_pipe(&ws, args);
    }
}

#[test]
fn usage_errors_exit_1_and_help_and_version_exit_0() {
    let ws = Workspace::new();
    for args in [
        &["plan", "--no-such-flag"][..],
        &["no-such-command"],
        &[],
        &["daemon", "--interval", "soon", "--repo", "."],
    ] {
        let run = ws.run(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(run.stderr.contains("error"), "{args:?}: {}", run.all());
    }
    for args in [&["--help"][..], &["--version"], &["plan", "--help"]] {
        let run = ws.run(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.all());
        assert!(!run.stdout.is_empty(), "{args:?}");
    }
}
