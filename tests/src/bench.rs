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
