//! Apply benchmarks (`docs/PERFORMANCE.md`):
//!
//! 1. Makespan against the critical path: a synthetic stack applied with the local driver
//!    adding a fixed latency to every call (the local driver's `simulate-latency-ms`). With parallelism that
//!    covers the graph's width, the makespan should be within 10% of the critical path
//!    (longest dependency chain × latency).
//! 2. A no-op plan of an applied 10,000-resource stack (prior state read from the store).
//!
//! ```sh
//! cargo build --release -p platformd -p platformd-test-support
//! $CARGO_TARGET_DIR/release/apply-bench [--resources 500] [--latency-ms 50] [--noop-resources 10000]
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use test_support::bench::{median, ms, run};

fn apply(binary: &Path, dir: &Path, parallelism: usize, latency_ms: u64) -> Duration {
    test_support::set_local_driver(
        &dir.join("stack"),
        &[("simulate-latency-ms", &latency_ms.to_string())],
    );
    test_support::bench::apply_makespan(binary, dir, parallelism)
}

fn main() {
    let mut resources = 500usize;
    let mut latency_ms = 50u64;
    let mut noop_resources = 10_000usize;
    let mut binary: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().expect("a value");
        match a.as_str() {
            "--resources" => resources = value().parse().expect("number"),
            "--latency-ms" => latency_ms = value().parse().expect("number"),
            "--noop-resources" => noop_resources = value().parse().expect("number"),
            "--platformd" => binary = Some(PathBuf::from(value())),
            other => panic!("unknown argument {other}"),
        }
    }
    let binary =
        binary.unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("platformd"));

    // The graph: critical path (longest chain) and width (largest level).
    let files: Vec<planner::StackFile> = test_support::generate::stack_files(resources, 5)
        .into_iter()
        .map(|(path, text)| planner::StackFile { path, text })
        .collect();
    let analysis = planner::analyze(files);
    let graph = &analysis.graph;
    let mut level = vec![0usize; graph.len()];
    for n in graph.topo_order() {
        level[n.index()] = graph
            .needs(n)
            .iter()
            .map(|(m, _)| level[m.index()] + 1)
            .max()
            .unwrap_or(1);
    }
    let depth = level.iter().copied().max().unwrap_or(0);
    let mut per_level = vec![0usize; depth + 1];
    for l in &level {
        per_level[*l] += 1;
    }
    let width = per_level.iter().copied().max().unwrap_or(0);
    let critical = Duration::from_millis(latency_ms * depth as u64);
    println!(
        "stack: {resources} resources, longest chain {depth}, widest level {width}, latency {latency_ms} ms per driver call"
    );
    println!("critical path: {}\n", ms(critical));
    println!("| parallelism | makespan | lower bound | makespan / bound |");
    println!("|---:|---:|---:|---:|");
    for parallelism in [width, 64, 16] {
        let dir = tempfile::tempdir().unwrap();
        test_support::generate::write_stack(&dir.path().join("stack"), resources, 5).unwrap();
        let makespan = apply(&binary, dir.path(), parallelism, latency_ms);
        // No schedule beats the critical path, nor total work spread over the workers.
        let by_work = Duration::from_millis(latency_ms * resources.div_ceil(parallelism) as u64);
        let bound = critical.max(by_work);
        println!(
            "| {parallelism} | {} | {} | {:.3} |",
            ms(makespan),
            ms(bound),
            makespan.as_secs_f64() / bound.as_secs_f64()
        );
    }

    println!(
        "\nno-op plan of an applied {noop_resources}-resource stack (prior state from the store):\n"
    );
    let dir = tempfile::tempdir().unwrap();
    test_support::generate::write_stack(&dir.path().join("stack"), noop_resources, 42).unwrap();
    let full = apply(&binary, dir.path(), 64, 0);
    println!(
        "initial apply of {noop_resources} resources (no latency): {}",
        ms(full)
    );
    let mut walls = Vec::new();
    let mut rss = 0;
    for _ in 0..5 {
        let s = run(Command::new(&binary)
            .args(["plan", "stack", "--detailed-exitcode"])
            .current_dir(dir.path()));
        assert_eq!(s.exit, 0, "a no-op plan exits 0");
        walls.push(s.wall);
        rss = rss.max(s.max_rss_kib);
    }
    let min = *walls.iter().min().unwrap();
    println!(
        "| resources | command | median wall | min wall | peak RSS |\n|---:|---|---:|---:|---:|"
    );
    println!(
        "| {noop_resources} | `platformd plan stack` (no-op, from the store) | {} | {} | {:.1} MiB |",
        ms(median(walls)),
        ms(min),
        rss as f64 / 1024.0
    );
}
