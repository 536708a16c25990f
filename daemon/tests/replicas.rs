//! Three daemons, one PostgreSQL store, six stacks on git remotes (`docs/SCALE_OUT.md`): every
//! stack is applied by exactly one replica (the journal's epochs show it), the stacks are
//! spread evenly, a push is applied once; a replica killed with SIGKILL has its stacks taken
//! over with nothing applied twice or lost; a replica paused past its lease (SIGSTOP) and woken
//! (SIGCONT) writes nothing.

mod support;

use daemon::store::Store;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::running::{Remote, TOKEN};
use test_support::net::{free_port, request as http};

const STACKS: usize = 6;
const LEASE: Duration = Duration::from_secs(2);

/// The stack's platform. Where the local driver writes is the operator's (a stack may not name
/// a host path; docs/SECURITY.md): `stack_config` gives it.
fn platform(stack: &str) -> String {
    format!(
        "platform \"{stack}\" {{\n    environment \"test\"\n    driver \"local\" {{\n        namespace \"{stack}\"\n    }}\n}}\n\nteam \"web\" {{\n    owner \"web-oncall@acme.example\"\n}}\n"
    )
}

/// A stack's entry in the replicas' configuration, its local driver writing under `world`.
fn stack_config(name: &str, remote: &Remote, world: &Path) -> String {
    format!(
        "stack \"{name}\" {{\n    repo \"{}\"\n    path \"stack\"\n    driver \"local\" path=\"{}\"\n}}\n",
        remote.url(),
        world.join(name).display()
    )
}

fn service(replicas: u32) -> String {
    format!(
        "service \"api\" {{\n    team \"web\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    replicas {replicas}\n    port 8080\n}}\n"
    )
}

struct Replica {
    name: String,
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Replica {
    fn start(name: &str, config: &str) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("platformd.kdl"), config).unwrap();
        std::fs::write(dir.path().join("token"), TOKEN).unwrap();
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_platformd"))
            .args([
                "daemon",
                "--config",
                "platformd.kdl",
                "--replica",
                name,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--token-file",
                "token",
                "--interval",
                "300ms",
            ])
            .current_dir(dir.path())
            .env("PLATFORMD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("daemon.log")).unwrap())
            .spawn()
            .unwrap();
        Replica {
            name: name.to_string(),
            child,
            port,
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    replicas: Vec<Replica>,
    stores: BTreeMap<String, Store>,
}

impl Cluster {
    /// The replicas, and each stack's store read directly (opening one creates and migrates
    /// it, whichever of the replicas gets there first).
    fn new(url: &str, replicas: Vec<Replica>, stacks: &[String]) -> Cluster {
        Cluster {
            replicas,
            stores: stacks
                .iter()
                .map(|n| (n.clone(), Store::open_postgres(url, None, n).unwrap()))
                .collect(),
        }
    }

    fn logs(&self) -> String {
        self.replicas
            .iter()
            .map(|r| format!("--- {} ---\n{}", r.name, r.log()))
            .collect()
    }

    fn wait(&self, what: &str, done: impl Fn(&Cluster) -> bool) -> Duration {
        let started = Instant::now();
        while !done(self) {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        started.elapsed()
    }

    fn applied(&self, stack: &str) -> Option<String> {
        self.stores[stack].applied_revision().ok().flatten()
    }

    /// The replica holding each stack's lease.
    fn owners(&self) -> BTreeMap<String, String> {
        self.stores
            .iter()
            .filter_map(|(stack, store)| {
                let lease = store.lease().ok()??;
                Some((
                    stack.clone(),
                    lease
                        .holder
                        .trim_start_matches("platformd daemon ")
                        .to_string(),
                ))
            })
            .collect()
    }

    /// Every stack's journal: all intents closed, and each apply's intents under one epoch.
    fn check_journals(&self) {
        for (stack, store) in &self.stores {
            assert!(
                store.open_intents().unwrap().is_empty(),
                "{stack}: an open intent"
            );
            let mut epochs: BTreeMap<i64, Vec<Option<i64>>> = BTreeMap::new();
            for entry in store.journal().unwrap() {
                assert!(entry.epoch.is_some(), "{stack}: an unfenced intent");
                epochs.entry(entry.apply_id).or_default().push(entry.epoch);
            }
            for (apply, e) in epochs {
                assert!(
                    e.windows(2).all(|w| w[0] == w[1]),
                    "{stack}: apply {apply} under two epochs: {e:?}"
                );
            }
        }
    }

    /// How many applies of `revision` the stack's history holds.
    fn applies_of(&self, stack: &str, revision: &str) -> usize {
        self.stores[stack]
            .history()
            .unwrap()
            .iter()
            .filter(|a| a.revision == revision)
            .count()
    }
}

#[test]
fn three_replicas_share_six_stacks_take_over_the_dead_and_fence_the_paused() {
    let db = test_support::postgres::database();
    let world = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..STACKS).map(|i| format!("stack-{i}")).collect();
    let remotes: Vec<Remote> = names.iter().map(|_| Remote::new()).collect();
    let mut first = BTreeMap::new();
    for (name, remote) in names.iter().zip(&remotes) {
        let c = remote.push(
            &[("platform.kdl", &platform(name)), ("api.kdl", &service(1))],
            "first",
        );
        first.insert(name.clone(), c);
    }
    let mut config = format!("store \"{}\"\nlease-ttl \"{}s\"\n", db.url, LEASE.as_secs());
    for (name, remote) in names.iter().zip(&remotes) {
        config.push_str(&stack_config(name, remote, world.path()));
    }
    let replicas: Vec<Replica> = ["r1", "r2", "r3"]
        .iter()
        .map(|n| Replica::start(n, &config))
        .collect();
    let mut cluster = Cluster::new(&db.url, replicas, &names);

    // Every stack applied, by exactly one replica, and the stacks spread two by two (the
    // replicas start a moment apart: the first may own more for a tick, then hands over).
    cluster.wait("every stack applied", |c| {
        names.iter().all(|n| c.applied(n) == Some(first[n].clone()))
    });
    cluster.wait("an even spread", |c| {
        let owners = c.owners();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for o in owners.values() {
            *counts.entry(o.as_str()).or_default() += 1;
        }
        owners.len() == STACKS && counts.len() == 3 && counts.values().all(|&n| n == 2)
    });
    for name in &names {
        assert_eq!(
            cluster.applies_of(name, &first[name]),
            1,
            "{name} applied once"
        );
    }
    cluster.check_journals();

    // Any replica lists every stack and who owns it; a stack owned elsewhere answers 503
    // naming its owner.
    let owners = cluster.owners();
    let r1 = &cluster.replicas[0];
    let (code, body) = http(r1.port, "GET", "/api/v1/stacks", &[], b"");
    assert_eq!(code, 200, "{body}");
    let elsewhere = names.iter().find(|n| owners[*n] != "r1").unwrap();
    let (code, body) = http(
        r1.port,
        "GET",
        &format!("/api/v1/stacks/{elsewhere}/status"),
        &[],
        b"",
    );
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(&format!("replica `{}`", owners[elsewhere])),
        "{body}"
    );
    let mine = names.iter().find(|n| owners[*n] == "r1").unwrap();
    let (code, _) = http(
        r1.port,
        "GET",
        &format!("/api/v1/stacks/{mine}/status"),
        &[],
        b"",
    );
    assert_eq!(code, 200);

    // A push is applied once, by the stack's owner.
    let pushed = remotes[0].push(&[("api.kdl", &service(2))], "scale");
    cluster.wait("the push applied", |c| {
        c.applied(&names[0]) == Some(pushed.clone())
    });
    assert_eq!(cluster.applies_of(&names[0], &pushed), 1);

    // SIGKILL one replica: its stacks move to the others, and pushes to them are applied once.
    let victim = cluster.replicas.remove(1);
    let orphaned: Vec<String> = owners
        .iter()
        .filter(|(_, o)| **o == victim.name)
        .map(|(s, _)| s.clone())
        .collect();
    assert_eq!(orphaned.len(), 2);
    victim.signal(libc::SIGKILL);
    drop(victim);
    let took = cluster.wait("the dead replica's stacks taken over", |c| {
        let owners = c.owners();
        orphaned
            .iter()
            .all(|s| owners.get(s).is_some_and(|o| o != "r2"))
    });
    eprintln!("take-over after SIGKILL: {took:?}");
    let mut moved = BTreeMap::new();
    for stack in &orphaned {
        let i = names.iter().position(|n| n == stack).unwrap();
        moved.insert(
            stack.clone(),
            remotes[i].push(&[("api.kdl", &service(3))], "after the kill"),
        );
    }
    cluster.wait("pushes to the moved stacks applied", |c| {
        moved.iter().all(|(s, r)| c.applied(s) == Some(r.clone()))
    });
    for (stack, revision) in &moved {
        assert_eq!(cluster.applies_of(stack, revision), 1, "{stack}");
        assert_eq!(
            cluster.applies_of(stack, &first[stack]),
            1,
            "{stack}: history kept"
        );
    }
    cluster.check_journals();

    // SIGSTOP the owner of a stack past its lease: the other replica takes the stack (a new
    // epoch) and applies a push; the paused one, woken, writes nothing.
    let owners = cluster.owners();
    let stack = names
        .iter()
        .find(|n| owners[*n] == cluster.replicas[0].name)
        .unwrap()
        .clone();
    let paused = &cluster.replicas[0];
    let paused_name = paused.name.clone();
    let old_epoch = cluster.stores[&stack].lease().unwrap().unwrap().epoch;
    paused.signal(libc::SIGSTOP);
    let i = names.iter().position(|n| *n == stack).unwrap();
    let while_paused = remotes[i].push(&[("api.kdl", &service(4))], "while paused");
    cluster.wait(
        "the paused replica's stack taken over and the push applied",
        |c| c.applied(&stack) == Some(while_paused.clone()),
    );
    let new_epoch = cluster.stores[&stack].lease().unwrap().unwrap().epoch;
    assert!(new_epoch > old_epoch);
    let journal_before = cluster.stores[&stack].journal().unwrap().len();
    let history_before = cluster.stores[&stack].history().unwrap().len();
    // Wake it with yet another commit waiting for it to see.
    let after_wake = remotes[i].push(&[("api.kdl", &service(5))], "after the wake");
    cluster.replicas[0].signal(libc::SIGCONT);
    cluster.wait("the push after the wake applied", |c| {
        c.applied(&stack) == Some(after_wake.clone())
    });
    std::thread::sleep(LEASE);
    let store = &cluster.stores[&stack];
    let journal = store.journal().unwrap();
    assert!(
        journal[journal_before..]
            .iter()
            .all(|j| j.epoch == Some(new_epoch) || j.epoch > Some(new_epoch)),
        "an intent under the paused replica's old epoch {old_epoch}: {:?}",
        &journal[journal_before..]
    );
    assert!(
        journal
            .iter()
            .filter(|j| j.epoch == Some(old_epoch))
            .count()
            <= journal_before
    );
    assert_eq!(cluster.applies_of(&stack, &after_wake), 1);
    assert_eq!(store.history().unwrap().len(), history_before + 1);
    for line in cluster.replicas[0].log().lines() {
        if line.contains("lease") || line.contains("handing") || line.contains("took the stack") {
            eprintln!("{paused_name}: {line}");
        }
    }
    assert!(
        cluster.replicas[0].log().contains("lease was taken over")
            || cluster.replicas[0]
                .log()
                .contains("lease is no longer ours")
            || cluster.replicas[0].log().contains("handing the stack over"),
        "the paused replica noticed: {}",
        cluster.replicas[0].log()
    );
    // Alive again, it may be given the stack back by the assignment; then only through a
    // take-over, under a newer epoch still.
    let lease = store.lease().unwrap().unwrap();
    if lease.holder.ends_with(&paused_name) {
        assert!(lease.epoch > new_epoch, "{lease:?}");
    }
    cluster.check_journals();
}

/// PostgreSQL restarted under two running replicas: they reconnect and carry on; nothing is
/// lost or applied twice.
#[test]
fn replicas_carry_on_after_postgres_restarts() {
    let pg = test_support::postgres::Cluster::start();
    let url = pg.url();
    let world = tempfile::tempdir().unwrap();
    let names = ["alpha".to_string(), "beta".to_string()];
    let remotes: Vec<Remote> = names.iter().map(|_| Remote::new()).collect();
    let mut config = format!("store \"{url}\"\nlease-ttl \"2s\"\n");
    let mut first = BTreeMap::new();
    for (name, remote) in names.iter().zip(&remotes) {
        first.insert(
            name.clone(),
            remote.push(
                &[("platform.kdl", &platform(name)), ("api.kdl", &service(1))],
                "first",
            ),
        );
        config.push_str(&stack_config(name, remote, world.path()));
    }
    let replicas: Vec<Replica> = ["r1", "r2"]
        .iter()
        .map(|n| Replica::start(n, &config))
        .collect();
    let cluster = Cluster::new(&url, replicas, &names);
    cluster.wait("both applied", |c| {
        names.iter().all(|n| c.applied(n) == Some(first[n].clone()))
    });

    pg.stop();
    // A push while the store is down, applied once it is back.
    let pushed: BTreeMap<String, String> = names
        .iter()
        .zip(&remotes)
        .map(|(n, r)| {
            (
                n.clone(),
                r.push(&[("api.kdl", &service(2))], "during the outage"),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    pg.start_again();
    cluster.wait("the pushes applied after the restart", |c| {
        names
            .iter()
            .all(|n| c.applied(n) == Some(pushed[n].clone()))
    });
    for name in &names {
        assert_eq!(
            cluster.applies_of(name, &first[name]),
            1,
            "{name}: history kept"
        );
        assert_eq!(
            cluster.applies_of(name, &pushed[name]),
            1,
            "{name}: applied once"
        );
    }
    cluster.check_journals();
    for r in &cluster.replicas {
        assert!(
            r.log().contains("cannot be reached") || r.log().contains("cannot"),
            "{} saw the outage: {}",
            r.name,
            r.log()
        );
    }
}

/// A replica that loses a stack's lease and takes it back reconciles again: it read the
/// shutdown left from losing the lease, ended its new loop at once while it kept renewing the
/// lease, and a later commit was never applied (`docs/SECURITY.md`). The lease is taken from
/// it by another holder in the store, then left to expire.
#[test]
fn a_replica_that_loses_a_lease_and_takes_it_back_reconciles_again() {
    let db = test_support::postgres::database();
    let world = tempfile::tempdir().unwrap();
    let name = "solo".to_string();
    let remote = Remote::new();
    let first = remote.push(
        &[("platform.kdl", &platform(&name)), ("api.kdl", &service(1))],
        "first",
    );
    let config = format!(
        "store \"{}\"\nlease-ttl \"{}s\"\n{}",
        db.url,
        LEASE.as_secs(),
        stack_config(&name, &remote, world.path())
    );
    let cluster = Cluster::new(
        &db.url,
        vec![Replica::start("r1", &config)],
        std::slice::from_ref(&name),
    );
    cluster.wait("the first commit applied", |c| {
        c.applied(&name) == Some(first.clone())
    });
    let store = &cluster.stores[&name];
    // Twice: whether the shutdown is left over depends on what the loop was doing.
    for round in 1..=2 {
        let epoch = store.lease().unwrap().unwrap().epoch;
        let stops = |c: &Cluster| {
            c.replicas[0]
                .log()
                .matches("stopped reconciling the stack")
                .count()
        };
        let stopped_before = stops(&cluster);
        // Another holder takes the lease for four seconds: the replica stops reconciling.
        test_support::postgres::psql(
            &db.url,
            &format!(
                "SET search_path TO \"{}\"; UPDATE lease SET holder = 'intruder', pid = 1, host = 'elsewhere', expires_at = extract(epoch from now())::bigint + 4, epoch = epoch + 1",
                daemon::store::postgres_schema(&name)
            ),
        );
        cluster.wait("the replica noticed the loss", |c| {
            stops(c) > stopped_before
        });
        // Expired, the lease is taken back; a later commit is applied.
        cluster.wait("the lease taken back", |_| {
            store
                .lease()
                .unwrap()
                .is_some_and(|l| l.holder.ends_with("r1") && l.epoch > epoch + 1)
        });
        let later = remote.push(&[("api.kdl", &service(round + 1))], "after the take-back");
        cluster.wait("the later commit applied", |c| {
            c.applied(&name) == Some(later.clone())
        });
        assert_eq!(cluster.applies_of(&name, &later), 1);
    }
    cluster.check_journals();
}

/// A replica stopped in the middle of a driver call, past its lease: another replica takes the
/// stack over and applies newer commits; woken, the old owner's call writes nothing (the driver
/// asks the lease fence right before its write), its result is not recorded over the new
/// owner's, and its apply is never marked succeeded (`docs/SECURITY.md`, fencing). The local
/// driver's latency keeps the call in flight long enough to stop the process inside it.
#[test]
fn a_replica_paused_mid_call_writes_nothing_once_woken() {
    let db = test_support::postgres::database();
    let world = tempfile::tempdir().unwrap();
    let name = "paused".to_string();
    let remote = Remote::new();
    let slow_platform = platform(&name).replace(
        "namespace \"paused\"",
        "namespace \"paused\"\n        simulate-latency-ms \"1500\"",
    );
    let first = remote.push(
        &[("platform.kdl", &slow_platform), ("api.kdl", &service(1))],
        "first",
    );
    let config = format!(
        "store \"{}\"\nlease-ttl \"{}s\"\n{}",
        db.url,
        LEASE.as_secs(),
        stack_config(&name, &remote, world.path())
    );
    let mut cluster = Cluster::new(
        &db.url,
        vec![Replica::start("a", &config)],
        std::slice::from_ref(&name),
    );
    cluster.wait("the first commit applied by a", |c| {
        c.applied(&name) == Some(first.clone())
    });
    let old_epoch = cluster.stores[&name].lease().unwrap().unwrap().epoch;

    // Stop `a` inside its call for the second commit: its intent is journaled and the driver
    // is waiting out its latency.
    let second = remote.push(&[("api.kdl", &service(2))], "second");
    cluster.wait("a's call for the second commit in flight", |c| {
        !c.stores[&name].open_intents().unwrap().is_empty()
    });
    cluster.replicas[0].signal(libc::SIGSTOP);
    let stopped_history = cluster.stores[&name].history().unwrap();
    let a_apply = stopped_history.last().unwrap().id;

    // `b` takes the stack over once the lease runs out, and applies a third commit.
    cluster.replicas.push(Replica::start("b", &config));
    cluster.wait("b took the stack over", |c| {
        c.owners().get(&name).map(String::as_str) == Some("b")
    });
    let third = remote.push(&[("api.kdl", &service(3))], "third");
    cluster.wait("the third commit applied by b", |c| {
        c.applied(&name) == Some(third.clone())
    });
    let new_epoch = cluster.stores[&name].lease().unwrap().unwrap().epoch;
    assert!(new_epoch > old_epoch);
    let rendered = world.path().join(&name).join("service").join("api.yaml");
    let applied_by_b = std::fs::read_to_string(&rendered).unwrap();
    assert!(applied_by_b.contains("replicas: 3"), "{applied_by_b}");
    let journal_before = cluster.stores[&name].journal().unwrap();

    // Woken, `a` finishes waiting out its latency: its write and its result are refused.
    cluster.replicas[0].signal(libc::SIGCONT);
    cluster.wait("a noticed", |c| {
        let log = c.replicas[0].log();
        log.contains("not written") || log.contains("is no longer ours")
    });
    std::thread::sleep(LEASE * 2);
    assert_eq!(
        std::fs::read_to_string(&rendered).unwrap(),
        applied_by_b,
        "the woken replica overwrote the new owner's apply\n{}",
        cluster.logs()
    );
    let store = &cluster.stores[&name];
    assert_eq!(store.applied_revision().unwrap(), Some(third.clone()));
    let resource = store.resource("service/api").unwrap().unwrap();
    let planner::model::Spec::Service(kept) = &resource.desired.spec.fields else {
        panic!("a service's spec: {:?}", resource.desired.spec);
    };
    assert_eq!(kept.replicas, 3, "b's state kept");
    let history = store.history().unwrap();
    let a_record = history.iter().find(|h| h.id == a_apply).unwrap();
    assert_ne!(
        a_record.status,
        api::ApplyStatus::Succeeded,
        "the woken replica's apply of {second} marked succeeded: {a_record:?}"
    );
    // Nothing under the old epoch changed after b's apply: no result written, no row flipped.
    let journal = store.journal().unwrap();
    assert_eq!(journal.len(), journal_before.len(), "{journal:?}");
    for (before, after) in journal_before.iter().zip(&journal) {
        assert_eq!(before.result, after.result, "{after:?} changed");
    }
    assert!(
        journal
            .iter()
            .filter(|j| j.epoch == Some(old_epoch))
            .all(|j| j.apply_id != a_apply || j.result != Some(daemon::store::IntentResult::Ok)),
        "{journal:?}"
    );
    cluster.check_journals();
}
