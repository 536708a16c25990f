//! PostgreSQL for the store tests: a real server from the machine's packages.
//!
//! The test command starts one cluster on a free loopback port and exports its admin URL as
//! `PLATFORMD_TEST_POSTGRES`; every test takes a database of its own there
//! ([`database`]). Without it (a bare `cargo nextest run`), a test starts a private cluster
//! instead. Tests that restart the server always use a private one ([`Cluster::start`]).
//! PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The environment variable holding the shared cluster's admin URL.
pub const URL_VAR: &str = "PLATFORMD_TEST_POSTGRES";

/// The directory of `initdb` and `pg_ctl`: the newest installed version.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .filter(|p| p.join("initdb").exists())
        .expect("PostgreSQL is installed (scripts/test.sh installs the postgresql package)")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid of the `postgres` user.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the postgres user exists (the postgresql package makes it)")
    };
    (id("-u"), id("-g"))
}

/// A command of the PostgreSQL server binaries, as the `postgres` user when we are root.
fn server_command(program: &str) -> Command {
    let path = bin_dir().join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn run(mut command: Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL cluster of the test's own on a free loopback port; stopped and removed when
/// dropped.
pub struct Cluster {
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("platformd-pg-")
            .tempdir()
            .expect("temp dir");
        if is_root() {
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let data = dir.path().join("data");
        let mut initdb = server_command("initdb");
        initdb
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data);
        run(initdb, "initdb");
        let cluster = Cluster {
            port: crate::net::free_port(),
            dir,
        };
        cluster.pg_ctl("start");
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, action: &str) {
        let mut c = server_command("pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "fast", "-l"]);
        c.arg(self.dir.path().join("server.log"));
        if action != "stop" {
            c.arg("-o").arg(format!(
                "-p {} -h 127.0.0.1 -k {} -c fsync=off -c max_connections=200",
                self.port,
                self.dir.path().display()
            ));
        }
        c.arg(action);
        run(c, &format!("pg_ctl {action}"));
        if action != "stop" {
            wait_for_port(self.port);
        }
    }

    /// The admin URL (database `postgres`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn stop(&self) {
        self.pg_ctl("stop");
    }

    pub fn start_again(&self) {
        self.pg_ctl("start");
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut c = server_command("pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = c.status();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "PostgreSQL did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs SQL with `psql` against `url`; the output, unaligned and without headers.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-X",
            "-q",
            "-A",
            "-t",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("psql is installed (the postgresql package)");
    assert!(
        out.status.success(),
        "psql `{sql}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let at = base.rfind('/').expect("a URL with a database");
    format!("{}/{database}", &base[..at])
}

/// A fresh database of the test's own: in the test command's cluster, or in a private cluster
/// when there is none (kept alive by the returned value).
pub struct Database {
    pub url: String,
    _cluster: Option<Cluster>,
}

pub fn database() -> Database {
    static SEQUENCE: AtomicUsize = AtomicUsize::new(0);
    let (admin, cluster) = match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let cluster = Cluster::start();
            (cluster.url(), Some(cluster))
        }
    };
    let name = format!(
        "t{}_{}_{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    psql(&admin, &format!("CREATE DATABASE {name}"));
    Database {
        url: with_database(&admin, &name),
        _cluster: cluster,
    }
}
