//! kill -9 at several points of a large apply, then restart: the state converges, no resource is
//! created twice, no history row is lost, and no journal intent is left open.

mod support;

use api::ApplyStatus;
use daemon::store::{IntentResult, JournalAction};
use support::{Tally, Workspace};

const RESOURCES: usize = 1500;

fn tally(ws: &Workspace) -> Tally {
    Tally::of(&ws.path().join(".platformd")).expect("store exists")
}

#[test]
fn kill_9_during_apply_then_restart_converges_without_duplicates_or_lost_history() {
    let ws = Workspace::new();
    test_support::generate::write_stack(&ws.path().join("stack"), RESOURCES, 11).unwrap();
    ws.local_driver(&[("simulate-latency-ms", "3")]);

    let kill_points = [100, 500, 900, 1300];
    let killed_midway = ws.kill_apply_at(&kill_points, RESOURCES, 16);
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
    let t = tally(&ws);
    assert_eq!(t.applies.len(), kill_points.len() + 1);
    assert_eq!(t.applies_with(ApplyStatus::Interrupted), kill_points.len());
    assert_eq!(t.applies_with(ApplyStatus::Running), 0);
    assert_eq!(t.open_intents(), 0, "no open intents");

    // Nothing duplicated: every resource was created exactly once.
    assert_eq!(t.resources, RESOURCES);
    let created = t.intents(Some(JournalAction::Create), IntentResult::Ok);
    assert_eq!(created.len(), RESOURCES);
    let mut addresses: Vec<&str> = created.iter().map(|j| j.address.as_str()).collect();
    addresses.sort_unstable();
    addresses.dedup();
    assert_eq!(addresses.len(), RESOURCES, "no resource created twice");
    let mut files = 0;
    for kind in std::fs::read_dir(ws.path().join(".platformd/rendered")).unwrap() {
        for f in std::fs::read_dir(kind.unwrap().path()).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            files += usize::from(name.ends_with(".yaml") && !name.starts_with('.'));
        }
    }
    assert_eq!(files, RESOURCES);
}
