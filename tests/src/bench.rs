//! Measuring commands as fresh processes: wall time and peak RSS (via `wait4`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sample {
    pub wall: Duration,
    pub max_rss_kib: i64,
    pub exit: i32,
}

/// Spawns the command, waits with `wait4` to read its peak RSS.
#[allow(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4 below"
)]
pub fn run(cmd: &mut Command) -> Sample {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn platformd");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4 failed");
    let wall = start.elapsed();
    let exit = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Sample {
        wall,
        max_rss_kib: usage.ru_maxrss,
        exit,
    }
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Applies `<dir>/stack` from scratch with `binary` at `parallelism`; the engine's makespan, as
/// `apply` prints it ("Apply succeeded: … in 1.23 s.").
pub fn apply_makespan(
    binary: &std::path::Path,
    dir: &std::path::Path,
    parallelism: usize,
) -> Duration {
    let out = Command::new(binary)
        .args([
            "apply",
            "stack",
            "--auto-approve",
            "--parallelism",
            &parallelism.to_string(),
        ])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        // The emulator's kubeconfig, where `route_to_kubernetes` stacks expect it (a stack may
        // not name a kubeconfig; docs/SECURITY.md).
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .output()
        .expect("platformd apply");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "apply failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: f64 = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("Apply succeeded: ")
                .and_then(|l| l.rsplit_once(" in "))
                .map(|(_, t)| t.trim_end_matches(" s.").to_string())
        })
        .and_then(|t| t.parse().ok())
        .expect("apply summary line");
    Duration::from_secs_f64(secs)
}

/// The options the plan benchmarks share: `--runs N` (default 5), `--sizes A,B` (default
/// 1000,10000) and `--platformd PATH` (default: the `platformd` beside the benchmark, which
/// must exist). Any other argument goes to `other` with the arguments after it; it returns
/// whether it knew the argument.
pub struct PlanBenchOptions {
    pub runs: usize,
    pub sizes: Vec<usize>,
    pub binary: std::path::PathBuf,
}

impl PlanBenchOptions {
    pub fn from_args(
        mut other: impl FnMut(&str, &mut dyn Iterator<Item = String>) -> bool,
    ) -> PlanBenchOptions {
        let mut runs = 5usize;
        let mut sizes = vec![1_000usize, 10_000];
        let mut binary: Option<std::path::PathBuf> = None;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
                "--sizes" => {
                    sizes = args
                        .next()
                        .expect("--sizes A,B")
                        .split(',')
                        .map(|s| s.parse().expect("size"))
                        .collect()
                }
                "--platformd" => binary = args.next().map(std::path::PathBuf::from),
                flag => assert!(other(flag, &mut args), "unknown argument {flag}"),
            }
        }
        let binary = binary.unwrap_or_else(|| {
            std::env::current_exe()
                .expect("current exe")
                .with_file_name("platformd")
        });
        assert!(
            binary.exists(),
            "{} not found; build it with cargo build --release -p platformd",
            binary.display()
        );
        PlanBenchOptions {
            runs,
            sizes,
            binary,
        }
    }
}
