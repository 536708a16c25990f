//! The synthetic stacks used by the benchmarks are valid, large, and plan deterministically.

#[test]
fn generated_stacks_validate_clean_and_plan_deterministically() {
    let files: Vec<planner::StackFile> = test_support::generate::stack_files(2_000, 7)
        .into_iter()
        .map(|(path, text)| planner::StackFile { path, text })
        .collect();
    let analysis = planner::analyze(files.clone());
    assert!(
        !analysis.has_errors(),
        "{}",
        analysis.render_diagnostics(planner::diagnostic::Colour::Never)
    );
    assert_eq!(analysis.stack.resources.len(), 2_000);
    assert!(
        analysis.graph.edge_count() > 2_000,
        "fan-out: {}",
        analysis.graph.edge_count()
    );
    let snapshot = analysis.snapshot.unwrap();
    let empty = planner::Snapshot::empty("synthetic");
    let a = planner::plan::plan(&empty, &snapshot, &Default::default());
    let b = planner::plan::plan(
        &empty,
        &planner::analyze(files).snapshot.unwrap(),
        &Default::default(),
    );
    assert_eq!(planner::render::json(&a), planner::render::json(&b));
    assert_eq!(a.summary.create, 2_000);
}
