//! Scale-out benchmark (`docs/PERFORMANCE.md`, `docs/SCALE_OUT.md`): N stacks of M resources
//! (synthetic, local driver) followed by R replicas sharing one PostgreSQL store. Measures the
//! time from starting the replicas on an empty store until every stack is applied, and then
//! each replica's CPU over a steady-state window (nothing changes; the replicas poll, renew
//! their leases and heartbeat).
//!
//! ```sh
//! cargo build --release -p platformd -p platformd-test-support
//! $CARGO_TARGET_DIR/release/replicas-bench [--stacks 100] [--resources 100] [--replicas 3] [--steady 60]
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use test_support::postgres::{Cluster, psql, with_database};

struct Replica {
    child: Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    utime + stime
}

fn applied_count(url: &str, stacks: &[String]) -> usize {
    let query = stacks
        .iter()
        .map(|s| {
            format!("SELECT count(*) FROM \"platformd/{s}\".meta WHERE key = 'applied_revision'")
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    // Schemas not made yet make the query fail: nothing applied then.
    let out = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-d", url, "-c"])
        .arg(format!("SELECT sum(count) FROM ({query}) AS applied"))
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        _ => 0,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let stacks_n = arg(&args, "--stacks", 100) as usize;
    let resources = arg(&args, "--resources", 100) as usize;
    let replicas_n = arg(&args, "--replicas", 3) as usize;
    let steady = Duration::from_secs(arg(&args, "--steady", 60));
    let binary: PathBuf = std::env::current_exe().unwrap().with_file_name("platformd");

    let pg = Cluster::start();
    psql(&pg.url(), "CREATE DATABASE bench");
    let url = with_database(&pg.url(), "bench");
    let work = tempfile::tempdir().unwrap();
    let world = work.path().join("world");
    let mut config = format!("store \"{url}\"\nlease-ttl \"15s\"\n");
    let mut names = Vec::new();
    for i in 0..stacks_n {
        let name = format!("stack-{i:03}");
        let dir = work.path().join("stacks").join(&name);
        test_support::generate::write_stack(&dir, resources, i as u64).unwrap();
        let rendered = world.join(&name);
        test_support::set_local_driver(&dir, &[("path", &rendered.display().to_string())]);
        config.push_str(&format!(
            "stack \"{name}\" {{\n    repo \"{}\"\n}}\n",
            dir.display()
        ));
        names.push(name);
    }
    eprintln!(
        "{stacks_n} stacks of {resources} resources, {replicas_n} replicas, PostgreSQL on port {}",
        pg.port
    );
    let started = Instant::now();
    let replicas: Vec<Replica> = (0..replicas_n)
        .map(|r| {
            let dir = work.path().join(format!("replica-{r}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("platformd.kdl"), &config).unwrap();
            let child = Command::new(&binary)
                .args([
                    "daemon",
                    "--config",
                    "platformd.kdl",
                    "--replica",
                    &format!("r{r}"),
                    "--listen",
                    &format!("127.0.0.1:{}", test_support::net::free_port()),
                    "--interval",
                    "30s",
                    "--drift-interval",
                    "10m",
                ])
                .current_dir(&dir)
                .env("PLATFORMD_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
                .spawn()
                .unwrap();
            Replica { child }
        })
        .collect();
    let deadline = started + Duration::from_secs(1800);
    loop {
        let n = applied_count(&url, &names);
        if n == stacks_n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {stacks_n} stacks applied after 30 minutes; logs in {}",
            work.path().display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let converged = started.elapsed();
    println!(
        "converge from empty: {:.1} s ({stacks_n} stacks × {resources} resources, {replicas_n} replicas)",
        converged.as_secs_f64()
    );

    let mut replicas = replicas;
    for (i, r) in replicas.iter_mut().enumerate() {
        assert!(
            r.child.try_wait().unwrap().is_none(),
            "replica r{i} exited; its log is in {}",
            work.path()
                .join(format!("replica-{i}/daemon.log"))
                .display()
        );
    }
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let before: Vec<u64> = replicas.iter().map(|r| cpu_ticks(r.child.id())).collect();
    std::thread::sleep(steady);
    for (i, r) in replicas.iter().enumerate() {
        let used = (cpu_ticks(r.child.id()) - before[i]) as f64 / ticks_per_second;
        println!(
            "replica r{i}: steady-state CPU {:.2} % of one core over {} s",
            100.0 * used / steady.as_secs_f64(),
            steady.as_secs()
        );
    }
}
