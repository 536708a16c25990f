//! Benchmark of `validate` and `plan` at several stack sizes (`docs/PERFORMANCE.md`).
//!
//! Runs the release `platformd` binary as a fresh process for every sample (cold: nothing is
//! cached between runs), measuring wall time and peak RSS with `wait4`. Also times the
//! in-process phases (read, parse+decode, validate, snapshot, plan, render) to show where time
//! goes. Usage:
//!
//! ```sh
//! cargo build --release -p platformd -p platformd-test-support
//! $CARGO_TARGET_DIR/release/plan-bench [--runs N] [--sizes 1000,10000] [--platformd PATH]
//!     [--template-uses 1000]
//! ```
//!
//! With `--template-uses N`, it also plans the largest size with N of its resources made by
//! uses of a template, against the same size written out, and prints what expansion adds.

use std::process::Command;
use std::time::{Duration, Instant};
use test_support::bench::{PlanBenchOptions, median, ms, run};
use test_support::git::run as git;

fn main() {
    let mut template_uses: Option<usize> = None;
    let PlanBenchOptions {
        runs,
        sizes,
        binary,
    } = PlanBenchOptions::from_args(|flag, args| {
        if flag != "--template-uses" {
            return false;
        }
        template_uses = Some(
            args.next()
                .and_then(|v| v.parse().ok())
                .expect("--template-uses N"),
        );
        true
    });

    println!("platformd: {}", binary.display());
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!();
    println!("| resources | files | bytes | command | median wall | min wall | peak RSS |");
    println!("|---:|---:|---:|---|---:|---:|---:|");
    let mut medians: Vec<(usize, Duration)> = Vec::new();
    for &n in &sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let stack = dir.path().join("stack");
        test_support::generate::write_stack(&stack, n, 42).expect("write stack");
        let files = planner::load::read_dir(&stack).expect("read stack");
        let bytes: usize = files.iter().map(|f| f.text.len()).sum();
        let file_count = files.len();

        // A git repository with the stack and a one-file change on top, for the PR flow.
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "stack"]);
        let edited = stack.join("team-0/part-03.kdl");
        let text =
            std::fs::read_to_string(&edited)
                .expect("read")
                .replacen("replicas 1", "replicas 2", 1);
        std::fs::write(&edited, text).expect("write");
        git(dir.path(), &["commit", "-q", "-am", "edit"]);

        let commands: Vec<(&str, Vec<String>)> = vec![
            (
                "validate",
                vec!["validate".into(), stack.display().to_string()],
            ),
            (
                "plan --format json",
                vec![
                    "plan".into(),
                    stack.display().to_string(),
                    "--format".into(),
                    "json".into(),
                ],
            ),
            (
                "plan --base HEAD~1 --head HEAD",
                vec![
                    "plan".into(),
                    "stack".into(),
                    "--base".into(),
                    "HEAD~1".into(),
                    "--head".into(),
                    "HEAD".into(),
                ],
            ),
        ];
        for (label, cmd_args) in commands {
            let mut walls = Vec::new();
            let mut rss = 0;
            for _ in 0..runs {
                let s = run(Command::new(&binary)
                    .args(&cmd_args)
                    .current_dir(dir.path()));
                assert!(s.exit == 0 || s.exit == 2, "{label} exited {}", s.exit);
                walls.push(s.wall);
                rss = rss.max(s.max_rss_kib);
            }
            let min = *walls.iter().min().expect("samples");
            let med = median(walls);
            if label.starts_with("plan --format") {
                medians.push((n, med));
            }
            println!(
                "| {n} | {file_count} | {bytes} | `platformd {label}` | {} | {} | {:.1} MiB |",
                ms(med),
                ms(min),
                rss as f64 / 1024.0
            );
        }

        // In-process phase breakdown (one run; the process numbers above are the bar).
        let t = Instant::now();
        let files = planner::load::read_dir(&stack).expect("read");
        let read = t.elapsed();
        let t = Instant::now();
        let parsed = planner::load::parse_files(files);
        let parse = t.elapsed();
        let t = Instant::now();
        let mut diags = parsed.diagnostics;
        let st = planner::validate::check(
            parsed.sources,
            parsed.decoded,
            parsed.syntax_errors,
            &mut diags,
        );
        let validate = t.elapsed();
        let t = Instant::now();
        let (costs, _) = planner::cost::estimate(&st);
        let snapshot = planner::Snapshot::from_stack(&st, &costs);
        let snap = t.elapsed();
        let t = Instant::now();
        let plan = planner::plan::plan(
            &planner::Snapshot::empty("x"),
            &snapshot,
            &Default::default(),
        );
        let planning = t.elapsed();
        let t = Instant::now();
        let json = planner::render::json(&plan);
        let render = t.elapsed();
        eprintln!(
            "  {n}: read {} · parse+decode {} · validate+graph {} · snapshot+cost {} · plan {} · render json {} ({} bytes)",
            ms(read),
            ms(parse),
            ms(validate),
            ms(snap),
            ms(planning),
            ms(render),
            json.len()
        );
    }
    if let (Some((n1, t1)), Some((n2, t2))) = (medians.first(), medians.last())
        && n2 > n1
    {
        println!();
        println!(
            "time ratio {n2}/{n1}: {:.1} (size ratio {:.0})",
            t2.as_secs_f64() / t1.as_secs_f64(),
            *n2 as f64 / *n1 as f64
        );
    }
    if let (Some(uses), Some(&n)) = (template_uses, sizes.iter().max()) {
        template_cost(&binary, n, uses, runs);
    }
}

/// Cold `plan --format json` of `n` resources written out, then of `n` resources of which `uses`
/// come from template uses.
fn template_cost(binary: &std::path::Path, n: usize, uses: usize, runs: usize) {
    println!();
    println!("| stack | resources | median wall | min wall | peak RSS |");
    println!("|---|---:|---:|---:|---:|");
    let mut medians = Vec::new();
    for (label, files) in [
        (
            "written out".to_string(),
            test_support::generate::stack_files(n, 42),
        ),
        (
            format!("{uses} from template uses"),
            test_support::generate::stack_files_with_uses(n, 42, uses),
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let stack = dir.path().join("stack");
        test_support::generate::write_files(&stack, files).expect("write stack");
        let mut walls = Vec::new();
        let mut rss = 0;
        for _ in 0..runs {
            let s = run(Command::new(binary)
                .args(["plan", "stack", "--format", "json"])
                .current_dir(dir.path()));
            assert!(s.exit == 0 || s.exit == 2, "{label} exited {}", s.exit);
            walls.push(s.wall);
            rss = rss.max(s.max_rss_kib);
        }
        let min = *walls.iter().min().expect("samples");
        let med = median(walls);
        medians.push(med);
        println!(
            "| {label} | {n} | {} | {} | {:.1} MiB |",
            ms(med),
            ms(min),
            rss as f64 / 1024.0
        );
    }
    println!();
    println!(
        "template expansion adds {:+.1}% to the cold plan",
        (medians[1].as_secs_f64() / medians[0].as_secs_f64() - 1.0) * 100.0
    );
}
