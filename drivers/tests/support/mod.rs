//! Desired resources made by the planner from a stack written in the test, as the engine hands
//! them to a driver.

#![allow(dead_code)]

use drivers::DesiredResource;

/// The snapshot of a one-file stack, which must be valid.
pub fn snapshot(text: &str) -> planner::Snapshot {
    let analysis = planner::analyze(vec![planner::StackFile {
        path: "platform.kdl".into(),
        text: text.into(),
    }]);
    assert!(
        !analysis.has_errors(),
        "{}",
        analysis.render_diagnostics(planner::diagnostic::Colour::Never)
    );
    analysis.snapshot.expect("a valid stack has a snapshot")
}

/// Every resource of `snapshot`, for the stack named `stack`, nothing wired yet.
pub fn desired(stack: &str, snapshot: &planner::Snapshot) -> Vec<DesiredResource> {
    snapshot
        .resources
        .iter()
        .map(|(address, r)| DesiredResource {
            stack: stack.into(),
            address: address.clone(),
            kind: r.kind,
            name: r.name.clone(),
            spec: r.spec.value(),
            wired: Default::default(),
            resumed: false,
        })
        .collect()
}
