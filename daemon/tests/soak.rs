//! The soak: a 2,000-resource stack applied, edited and rolled back for five rounds under
//! injected faults (errors, timeouts, latency and lost answers by a seeded schedule, the
//! `fault-schedule` driver setting) and `kill -9` of the applying process at seeded points. After
//! every round: converged (a plan is empty), nothing duplicated (each resource created once, one
//! rendered file each), no history row lost (one per process started, none left running), no
//! open intent.

mod support;

use api::ApplyStatus;
use daemon::store::{IntentResult, JournalAction};
use support::{Tally, Workspace};

const RESOURCES: usize = 2000;
const ROUNDS: u64 = 5;

fn tally(ws: &Workspace) -> Tally {
    Tally::of(&ws.path().join(".platformd")).expect("a store")
}

/// Every `replicas N` in the stack's files becomes `N+1` (or back to 1 above 5): an edit that
/// updates every workload in place.
fn edit(ws: &Workspace) -> usize {
    let mut edited = 0;
    let mut dirs = vec![ws.path().join("stack")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let mut out = String::with_capacity(text.len());
            for line in text.split_inclusive('\n') {
                match line.trim().strip_prefix("replicas ").map(str::parse::<u32>) {
                    Some(Ok(n)) => {
                        edited += 1;
                        let indent = &line[..line.len() - line.trim_start().len()];
                        out.push_str(&format!("{indent}replicas {}\n", n % 5 + 1));
                    }
                    _ => out.push_str(line),
                }
            }
            std::fs::write(&p, out).unwrap();
        }
    }
    edited
}

/// Rendered objects: the visible `.yaml` files (a write killed midway leaves only a hidden
/// temporary file, never a second object).
fn rendered_files(ws: &Workspace) -> usize {
    std::fs::read_dir(ws.path().join(".platformd/rendered"))
        .unwrap()
        .map(|kind| {
            std::fs::read_dir(kind.unwrap().path())
                .unwrap()
                .filter(|f| {
                    let name = f.as_ref().unwrap().file_name();
                    let name = name.to_string_lossy();
                    !name.starts_with('.') && name.ends_with(".yaml")
                })
                .count()
        })
        .sum()
}

/// Starts an apply and SIGKILLs it once it has journaled `point` more driver calls (or it ends).
fn kill_after_intents(ws: &Workspace, point: usize) {
    let state = ws.path().join(".platformd");
    let journaled = || Tally::of(&state).map_or(0, |t| t.journal.len());
    let base = journaled();
    let mut child = ws
        .command(&["apply", "stack", "--auto-approve", "--parallelism", "16"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while journaled() < base + point
        && std::time::Instant::now() < deadline
        && child.try_wait().ok().flatten().is_none()
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Applies until an apply exits 0; faults are retried by the engine, so one or two suffice.
fn apply_to_the_end(ws: &Workspace, processes: &mut usize) {
    for attempt in 0..5 {
        let run = ws.run(&["apply", "stack", "--auto-approve", "--parallelism", "16"]);
        *processes += 1;
        if run.code == 0 {
            return;
        }
        eprintln!("attempt {attempt} ended {}: {}", run.code, run.stderr);
    }
    panic!("the apply never completed");
}

/// `history` is the store's history at the end of the previous round: every row of it must
/// still be there, unchanged.
fn check_round(ws: &Workspace, round: u64, processes: usize, history: &mut Vec<api::ApplyRecord>) {
    let plan = ws.run(&["plan", "stack", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "round {round}: not converged\n{}", plan.all());
    let t = tally(ws);
    assert_eq!(t.open_intents(), 0, "round {round}: open intents");
    assert_eq!(t.applies_with(ApplyStatus::Running), 0, "round {round}");
    assert!(
        t.applies.len() > history.len() && t.applies.len() <= processes,
        "round {round}: {} history rows for {processes} processes",
        t.applies.len()
    );
    for (kept, now) in history.iter().zip(&t.applies) {
        assert_eq!(
            kept, now,
            "round {round}: a history row changed or went missing"
        );
    }
    let ids: Vec<i64> = t.applies.iter().map(|a| a.id).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "round {round}: {ids:?}"
    );
    *history = t.applies.clone();
    assert_eq!(t.resources, RESOURCES, "round {round}");
    let mut created: Vec<&str> = t
        .intents(Some(JournalAction::Create), IntentResult::Ok)
        .iter()
        .map(|j| j.address.as_str())
        .collect();
    let total = created.len();
    created.sort_unstable();
    created.dedup();
    assert_eq!(
        created.len(),
        total,
        "round {round}: a resource created twice"
    );
    assert_eq!(created.len(), RESOURCES, "round {round}");
    assert_eq!(
        rendered_files(ws),
        RESOURCES,
        "round {round}: duplicate objects"
    );
}

#[test]
fn five_rounds_of_apply_edit_and_rollback_under_faults_and_kill_9() {
    let ws = Workspace::new();
    test_support::generate::write_stack(&ws.path().join("stack"), RESOURCES, 23).unwrap();
    let mut processes = 0;
    let mut history = Vec::new();
    let mut rollback_target: Option<String> = None;
    for round in 0..ROUNDS {
        ws.local_driver(&[
            ("fault-schedule", &format!("seed={round},rate=0.05")),
            ("simulate-latency-ms", "1"),
        ]);
        if round > 0 {
            assert!(edit(&ws) > 100, "the edit touches the workloads");
        }
        if round == 3 {
            // Roll back to the first round's revision, under the same faults and one kill.
            let target = rollback_target.clone().expect("a target");
            let mut child = ws
                .command(&["rollback", &target, "--auto-approve", "--parallelism", "16"])
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(400 + 150 * round));
            let _ = child.kill();
            let _ = child.wait();
            processes += 1;
            let run = ws.run(&["rollback", &target, "--auto-approve", "--parallelism", "16"]);
            processes += 1;
            assert_eq!(run.code, 0, "{}", run.all());
            let t = tally(&ws);
            assert_eq!(t.open_intents(), 0, "rollback: open intents");
            assert_eq!(
                t.applies.last().unwrap().status,
                ApplyStatus::Succeeded,
                "the rollback completed"
            );
            assert!(ws.run(&["resume"]).code == 0);
        }
        // Kills at seeded points of this round's changes, then an apply to the end.
        let first = 200 + (round as usize * 277) % 600;
        let points = [first, first + 700];
        for point in points {
            kill_after_intents(&ws, point);
            processes += 1;
        }
        apply_to_the_end(&ws, &mut processes);
        check_round(&ws, round, processes, &mut history);
        if round == 0 {
            rollback_target = tally(&ws)
                .applies
                .iter()
                .rev()
                .find(|a| a.status == ApplyStatus::Succeeded)
                .map(|a| a.revision.clone());
        }
    }
    // The faults were real: the journal holds failed attempts that the engine retried.
    let t = tally(&ws);
    let failed = t
        .journal
        .iter()
        .filter(|j| j.result == Some(IntentResult::Failed))
        .count();
    assert!(
        failed > 0 || t.journal.iter().any(|j| j.attempts > 1),
        "no fault was injected"
    );
}
