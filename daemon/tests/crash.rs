//! kill -9 at several points of a large apply, then restart: the state converges, no resource is
//! created twice, no history row is lost, and no journal intent is left open.

mod support;

use std::time::{Duration, Instant};
use support::Workspace;

const RESOURCES: usize = 1500;

fn count(ws: &Workspace, sql: &str) -> i64 {
    ws.db().query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

/// Waits until the store holds at least `n` applied resources (or the process exits).
fn wait_for_progress(ws: &Workspace, child: &mut std::process::Child, n: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let applied = if ws.path().join(".platformd/platformd.db").exists() {
            count(ws, "SELECT COUNT(*) FROM resources")
        } else {
            0
        };
        if applied >= n || Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            return applied;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn kill_9_during_apply_then_restart_converges_without_duplicates_or_lost_history() {
    let mut ws = Workspace::new();
    test_support::generate::write_stack(&ws.path().join("stack"), RESOURCES, 11).unwrap();
    ws.env
        .push(("PLATFORMD_LOCAL_LATENCY_MS".into(), "3".into()));

    let kill_points = [100i64, 500, 900, 1300];
    let mut killed_midway = 0;
    for point in kill_points {
        let mut child = ws
            .command(&["apply", "stack", "--auto-approve", "--parallelism", "16"])
            .spawn()
            .unwrap();
        let reached = wait_for_progress(&ws, &mut child, point);
        // SIGKILL: no destructors, no journal bookkeeping, no lease release.
        child.kill().unwrap();
        child.wait().unwrap();
        let applied = count(&ws, "SELECT COUNT(*) FROM resources");
        if applied < RESOURCES as i64 {
            killed_midway += 1;
        }
        assert!(
            reached >= point.min(RESOURCES as i64) || applied == RESOURCES as i64,
            "reached {reached} for {point}"
        );
    }
    assert!(
        killed_midway >= 3,
        "the kills must land mid-apply ({killed_midway} did)"
    );

    let run = ws.run(&["apply", "stack", "--auto-approve", "--parallelism", "16"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        ws.run(&["plan", "stack", "--detailed-exitcode"]).code,
        0,
        "converged"
    );

    // Nothing lost: one history row per apply started, the killed ones marked interrupted.
    let rows = count(&ws, "SELECT COUNT(*) FROM applies");
    assert_eq!(rows, kill_points.len() as i64 + 1);
    assert_eq!(
        count(
            &ws,
            "SELECT COUNT(*) FROM applies WHERE status = 'interrupted'"
        ),
        kill_points.len() as i64
    );
    assert_eq!(
        count(&ws, "SELECT COUNT(*) FROM applies WHERE status = 'running'"),
        0
    );
    assert_eq!(
        count(&ws, "SELECT COUNT(*) FROM journal WHERE result IS NULL"),
        0,
        "no open intents"
    );

    // Nothing duplicated: every resource was created exactly once.
    assert_eq!(
        count(&ws, "SELECT COUNT(*) FROM resources"),
        RESOURCES as i64
    );
    assert_eq!(
        count(
            &ws,
            "SELECT COUNT(*) FROM journal WHERE action = 'create' AND result = 'ok'"
        ),
        RESOURCES as i64
    );
    assert_eq!(
        count(
            &ws,
            "SELECT COUNT(*) FROM (SELECT address FROM journal WHERE action = 'create' AND result = 'ok' GROUP BY address HAVING COUNT(*) > 1)"
        ),
        0
    );
    let mut files = 0;
    for kind in std::fs::read_dir(ws.path().join(".platformd/rendered")).unwrap() {
        for f in std::fs::read_dir(kind.unwrap().path()).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            files += usize::from(name.ends_with(".yaml") && !name.starts_with('.'));
        }
    }
    assert_eq!(files, RESOURCES);
}
