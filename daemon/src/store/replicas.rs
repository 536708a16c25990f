//! Replicas sharing a PostgreSQL store: who is alive, and which stacks each should own.
//!
//! Each replica writes a heartbeat into the cluster-wide schema `platformd`; a replica whose
//! heartbeat is older than the lease time is dead. Every replica computes the same assignment
//! of stacks from the same list of live replicas ([`assign`]), and takes a stack only through
//! the stack's fenced lease (`lease.rs`), so a moment of disagreement never gives a stack two
//! owners.

use super::postgres::PgClient;
use super::sql::{Conn, args};
use super::{Result, now};
use sha2::Digest;
use std::collections::BTreeMap;
use std::time::Duration;

/// The schema of what replicas share besides the stacks' own stores.
pub const CLUSTER_SCHEMA: &str = "platformd";

/// The live replicas of a shared store, through this replica's connection.
pub struct Replicas {
    conn: Conn,
}

impl Replicas {
    pub fn open(url: &str, password: Option<&str>) -> Result<Replicas> {
        let conn = Conn::Postgres(PgClient::connect(url, password, CLUSTER_SCHEMA)?);
        super::ensure_schema(
            &conn,
            CLUSTER_SCHEMA,
            "replicas",
            "CREATE TABLE replicas (
                 replica TEXT PRIMARY KEY,
                 started_at BIGINT NOT NULL,
                 heartbeat_at BIGINT NOT NULL
             )",
        )?;
        Ok(Replicas { conn })
    }

    /// Says this replica is alive.
    pub fn heartbeat(&self, replica: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO replicas (replica, started_at, heartbeat_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (replica) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            args![replica, now()],
        )?;
        Ok(())
    }

    /// Replicas whose heartbeat is younger than `ttl`, sorted.
    pub fn live(&self, ttl: Duration) -> Result<Vec<String>> {
        self.conn.query_map(
            "SELECT replica FROM replicas WHERE heartbeat_at >= ?1 ORDER BY replica",
            args![now() - ttl.as_secs().max(1) as i64],
            |r| r.get(0),
        )
    }

    /// Leaves the set at once (a clean shutdown), so the others need not wait for the lease.
    pub fn leave(&self, replica: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM replicas WHERE replica = ?1", args![replica])?;
        Ok(())
    }
}

fn score(stack: &str, replica: &str) -> u64 {
    let digest = sha2::Sha256::digest(format!("{stack}\n{replica}").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]))
}

/// Which replica should own each stack: rendezvous hashing with bounded load. Stacks are taken
/// in name order; each goes to the replica with the highest score for it among those still
/// below their share (⌊stacks / replicas⌋, one more for as many replicas as the remainder). The result depends only on the two lists, so every replica
/// computes the same one; the counts differ by at most one; and a replica joining or leaving
/// moves few stacks.
pub fn assign(stacks: &[String], replicas: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if replicas.is_empty() {
        return out;
    }
    // `extra` replicas hold one more than `base`; the rest hold `base`.
    let (base, extra) = (stacks.len() / replicas.len(), stacks.len() % replicas.len());
    let mut load: BTreeMap<&str, usize> = replicas.iter().map(|r| (r.as_str(), 0)).collect();
    let mut full = 0;
    let mut sorted: Vec<&String> = stacks.iter().collect();
    sorted.sort();
    for stack in sorted {
        let best = replicas
            .iter()
            .filter(|r| {
                let l = load[r.as_str()];
                l < base || (l == base && full < extra)
            })
            .max_by_key(|r| (score(stack, r), r.as_str()));
        if let Some(r) = best {
            let l = load.entry(r.as_str()).or_default();
            *l += 1;
            if *l == base + 1 {
                full += 1;
            }
            out.insert(stack.clone(), r.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn the_assignment_is_even_and_the_same_for_everyone() {
        for (stacks, replicas) in [(6, 3), (100, 3), (7, 3), (5, 5), (2, 4)] {
            let (s, r) = (names("stack-", stacks), names("replica-", replicas));
            let a = assign(&s, &r);
            assert_eq!(a.len(), stacks);
            let mut reversed = r.clone();
            reversed.reverse();
            assert_eq!(a, assign(&s, &reversed), "independent of the list's order");
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for owner in a.values() {
                *counts.entry(owner.as_str()).or_default() += 1;
            }
            let max = counts.values().max().copied().unwrap_or(0);
            let min = if counts.len() < replicas {
                0
            } else {
                counts.values().min().copied().unwrap_or(0)
            };
            assert!(max - min <= 1, "{stacks} over {replicas}: {counts:?}");
        }
    }

    #[test]
    fn a_replica_leaving_moves_its_stacks_and_few_others() {
        let s = names("stack-", 60);
        let r = names("replica-", 3);
        let before = assign(&s, &r);
        let after = assign(&s, &r[..2]);
        let moved = s.iter().filter(|x| before[*x] != after[*x]).count();
        let orphaned = s.iter().filter(|x| before[*x] == r[2]).count();
        assert!(moved >= orphaned);
        assert!(moved <= orphaned + 12, "moved {moved}, orphaned {orphaned}");
        assert!(after.values().all(|o| o != &r[2]));
    }
}
