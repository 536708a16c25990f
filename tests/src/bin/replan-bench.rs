//! Where a watch-mode re-plan goes (`docs/PERFORMANCE.md`): the daemon's path after a one-file
//! edit of a large stack, phase by phase, in process.
//!
//! The daemon keeps a `ParseCache` and the applied snapshot between revisions; this does the
//! same: one analysis warms the cache and becomes the prior state, then each run edits one file
//! and times every phase of `planner::analyze_cached` and the plan against the prior. Usage:
//!
//! ```sh
//! cargo build --release -p platformd-test-support --bin replan-bench
//! $CARGO_TARGET_DIR/release/replan-bench [--runs N] [--sizes 10000]
//! ```
//!
//! It allocates with mimalloc, as `platformd` does; run it with `MIMALLOC_ARENA_EAGER_COMMIT=0
//! MIMALLOC_PURGE_DELAY=0` for the options the daemon sets.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use planner::load::ParseCache;
use planner::{Diagnostic, StackFile, diagnostic, policy, template, validate};
use std::time::{Duration, Instant};
use test_support::bench::{PlanBenchOptions, median, ms};

const PHASES: [&str; 9] = [
    "parse and decode (cached)",
    "validate::check",
    "templates, monitoring, sinks",
    "graph and cycles, costs beside them",
    "Snapshot::from_stack",
    "policy::evaluate",
    "attribute and sort diagnostics",
    "plan against the prior",
    "free the analysis and plan",
];

fn main() {
    let PlanBenchOptions { runs, sizes, .. } = PlanBenchOptions::from_args(|_, _| false);
    println!("| resources | phase | median | min |\n|---:|---|---:|---:|");
    for &n in &sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let stack = dir.path().join("stack");
        test_support::generate::write_stack(&stack, n, 42).expect("write stack");
        let mut files = planner::load::read_dir(&stack).expect("read stack");
        let cache = ParseCache::new();
        let first = planner::analyze_cached(files.clone(), Some(&cache));
        let prior = first.snapshot.expect("the generated stack is valid");
        let edited = files
            .iter()
            .position(|f| f.path == "team-0/part-00.kdl")
            .expect("the generated stack has team-0/part-00.kdl");
        let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); PHASES.len()];
        let mut totals = Vec::new();
        for run in 0..runs {
            files[edited].text = files[edited].text.replacen(
                &format!("retention-hours {}", if run == 0 { 72 } else { 72 + run }),
                &format!("retention-hours {}", 73 + run),
                1,
            );
            let times = replan(files.clone(), &cache, &prior);
            totals.push(times.iter().sum());
            for (i, t) in times.into_iter().enumerate() {
                samples[i].push(t);
            }
        }
        for (phase, s) in PHASES.iter().zip(samples) {
            let min = *s.iter().min().expect("runs");
            println!("| {n} | {phase} | {} | {} |", ms(median(s)), ms(min));
        }
        let min = *totals.iter().min().expect("runs");
        println!("| {n} | **total** | {} | {} |", ms(median(totals)), ms(min));
    }
}

/// The phases of `planner::analyze_cached` and the plan, timed one by one.
fn replan(files: Vec<StackFile>, cache: &ParseCache, prior: &planner::Snapshot) -> Vec<Duration> {
    let mut times = Vec::new();
    let mut lap = {
        let mut t = Instant::now();
        move |times: &mut Vec<Duration>| {
            times.push(t.elapsed());
            t = Instant::now();
        }
    };
    let parsed = planner::load::parse_files_cached(files, Some(cache));
    lap(&mut times);
    let mut diagnostics = parsed.diagnostics;
    let mut stack = validate::check(
        parsed.sources,
        parsed.decoded,
        parsed.syntax_errors,
        &mut diagnostics,
    );
    lap(&mut times);
    stack.templates = parsed.templates;
    validate::check_templates_only(&stack, &mut diagnostics);
    validate::check_monitoring_drivers(&stack, &mut diagnostics);
    validate::check_sinks(&mut stack, &mut diagnostics);
    lap(&mut times);
    let (graph, (costs, warnings)) = planner::graph_and_costs(&stack);
    validate::check_cycles(&graph, &mut diagnostics);
    diagnostics.extend(warnings);
    lap(&mut times);
    let mut snapshot = planner::Snapshot::from_stack(&stack, &costs);
    lap(&mut times);
    snapshot.policy_findings = policy::evaluate(&stack, &snapshot, &mut diagnostics);
    lap(&mut times);
    template::attribute(&mut diagnostics, &stack.templates, &stack.sources);
    diagnostic::sort(&mut diagnostics);
    lap(&mut times);
    assert!(!diagnostics.iter().any(Diagnostic::is_error));
    let plan = planner::plan::plan(prior, &snapshot, &Default::default());
    assert_eq!(plan.summary.update, 1, "one resource changes");
    lap(&mut times);
    drop((stack, graph, snapshot, plan, diagnostics));
    lap(&mut times);
    times
}
