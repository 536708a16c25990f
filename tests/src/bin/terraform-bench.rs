//! platformd against Terraform on the same graph, same machine, same run (`docs/PERFORMANCE.md`).
//!
//! For each size, the synthetic stack of `plan-bench` (seed 42) is written for both tools: the
//! KDL stack for platformd, and one `terraform_data` resource per platformd resource for
//! Terraform, carrying the resource's canonical spec as its input and one `depends_on` entry per
//! edge of platformd's graph. Both plan from empty state as fresh processes:
//! `platformd plan STACK --format json` and `terraform plan -refresh=false` (after one
//! `terraform init`, not timed). Skips Terraform, saying so, when `terraform` is not on PATH.
//!
//! ```sh
//! cargo build --release -p platformd -p platformd-test-support
//! $CARGO_TARGET_DIR/release/terraform-bench [--runs N] [--sizes 1000,10000] [--platformd PATH]
//! ```

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use test_support::bench::{PlanBenchOptions, median, ms, run};

fn main() {
    let PlanBenchOptions {
        runs,
        sizes,
        binary,
    } = PlanBenchOptions::from_args(|_, _| false);
    let terraform = Command::new("terraform")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        });
    println!("platformd: {}", binary.display());
    match &terraform {
        Some(v) => println!("terraform: {v}"),
        None => println!("terraform: not installed; platformd only"),
    }
    println!(
        "cores: {}, runs per figure: {runs}",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!();
    println!(
        "| resources | edges | platformd median | platformd RSS | terraform median | terraform RSS | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let stack = dir.path().join("stack");
        test_support::generate::write_stack(&stack, n, 42).expect("write stack");
        let analysis = planner::analyze_dir(&stack).expect("read stack");
        let snapshot = analysis.snapshot.expect("the generated stack is valid");

        let (ours, our_rss) = sample(runs, || {
            let mut cmd = Command::new(&binary);
            cmd.arg("plan")
                .arg(&stack)
                .args(["--format", "json"])
                .current_dir(dir.path());
            cmd
        });

        let tf_dir = dir.path().join("terraform");
        let edges = write_terraform(&tf_dir, &snapshot);
        let theirs = terraform.as_ref().map(|_| {
            let init = Command::new("terraform")
                .args(["init", "-input=false", "-no-color"])
                .current_dir(&tf_dir)
                .output()
                .expect("terraform init");
            assert!(
                init.status.success(),
                "terraform init failed: {}",
                String::from_utf8_lossy(&init.stderr)
            );
            sample(runs, || {
                let mut cmd = Command::new("terraform");
                cmd.args([
                    "plan",
                    "-refresh=false",
                    "-input=false",
                    "-lock=false",
                    "-no-color",
                ])
                .current_dir(&tf_dir);
                cmd
            })
        });
        let (tf_median, tf_rss, ratio) = match theirs {
            Some((t, rss)) => (
                ms(t),
                format!("{:.1} MiB", rss as f64 / 1024.0),
                format!("{:.0}×", t.as_secs_f64() / ours.as_secs_f64()),
            ),
            None => ("—".into(), "—".into(), "—".into()),
        };
        println!(
            "| {n} | {edges} | {} | {:.1} MiB | {tf_median} | {tf_rss} | {ratio} |",
            ms(ours),
            our_rss as f64 / 1024.0,
        );
    }
}

/// The median wall time and the largest peak RSS (KiB) of `runs` fresh processes, each of
/// which must succeed.
fn sample(runs: usize, command: impl Fn() -> Command) -> (Duration, i64) {
    let mut walls = Vec::new();
    let mut rss = 0;
    for _ in 0..runs {
        let s = run(&mut command());
        assert_eq!(s.exit, 0, "{:?} failed", command());
        walls.push(s.wall);
        rss = rss.max(s.max_rss_kib);
    }
    (median(walls), rss)
}

/// The stack as Terraform: one `terraform_data` per resource, its input the resource's
/// canonical spec, its `depends_on` the resource's edges. Returns the number of edges.
fn write_terraform(dir: &Path, snapshot: &planner::Snapshot) -> usize {
    std::fs::create_dir_all(dir).expect("terraform dir");
    let name = |address: &str| format!("r_{}", address.replace(['/', '-', '.'], "_"));
    let mut edges = 0;
    let mut files: Vec<String> = vec![String::new(); 1 + snapshot.resources.len() / 20];
    for (i, (address, r)) in snapshot.resources.iter().enumerate() {
        let out = &mut files[i / 20];
        // A JSON string is an HCL string once template sequences are escaped.
        let spec = serde_json::to_string(r.spec.as_str())
            .expect("a string serializes")
            .replace("${", "$${")
            .replace("%{", "%%{");
        let _ = writeln!(out, "resource \"terraform_data\" \"{}\" {{", name(address));
        let _ = writeln!(
            out,
            "  input = {{ kind = \"{}\", team = \"{}\", spec = {spec} }}",
            r.kind, r.team
        );
        if !r.depends_on.is_empty() {
            let deps: Vec<String> = r
                .depends_on
                .iter()
                .map(|d| format!("terraform_data.{}", name(d)))
                .collect();
            edges += deps.len();
            let _ = writeln!(out, "  depends_on = [{}]", deps.join(", "));
        }
        let _ = writeln!(out, "}}\n");
    }
    for (i, text) in files.iter().enumerate() {
        std::fs::write(dir.join(format!("r{i:04}.tf")), text).expect("write .tf");
    }
    edges
}
