//! The store's test suite, run against both backends: every test below runs once on SQLite (a
//! state directory) and once on PostgreSQL (a database of its own in the test command's
//! cluster). The two must behave the same: same schema, migrations and guarantees.

use api::{ApplyReason, ApplyStatus, Health};
use daemon::store::{
    IntentResult, JournalAction, SCHEMA_VERSION, ScaledDown, Store, StoreError, StoredResource,
    TokenScope,
};
use drivers::{Applied, DesiredResource};
use planner::Snapshot;
use test_support::postgres;

/// A store under test, with what keeps it alive and a way to run raw SQL on it (to set up
/// what only another process or version would write).
struct Backend {
    store: Store,
    raw: Raw,
}

enum Raw {
    Sqlite(tempfile::TempDir),
    Postgres(postgres::Database, String),
}

impl Backend {
    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        Backend {
            store,
            raw: Raw::Sqlite(dir),
        }
    }

    fn postgres() -> Backend {
        let db = postgres::database();
        let store = Store::open_postgres(&db.url, None, "shop").unwrap();
        Backend {
            store,
            raw: Raw::Postgres(db, "shop".into()),
        }
    }

    /// PostgreSQL with the connection shared by two stacks' stores (`PostgresPool`): the other
    /// stack's writes never show in this one's, and its transactions never mix in.
    fn postgres_shared_connection() -> Backend {
        let db = postgres::database();
        let pool = daemon::store::PostgresPool::connect(&db.url, None, 1).unwrap();
        let other = Store::open_in_pool(&pool, "other").unwrap();
        let store = Store::open_in_pool(&pool, "shop").unwrap();
        other.event("note", "the other stack", None).unwrap();
        other.set_pin(Some("elsewhere"), None).unwrap();
        assert!(store.events_of_kind("note").unwrap().is_empty());
        assert_eq!(store.pinned_revision().unwrap(), None);
        Backend {
            store,
            raw: Raw::Postgres(db, "shop".into()),
        }
    }

    /// Runs `sql` on the store's tables outside the store.
    fn exec(&self, sql: &str) {
        match &self.raw {
            Raw::Sqlite(dir) => {
                let conn =
                    rusqlite::Connection::open(dir.path().join("state/platformd.db")).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            Raw::Postgres(db, stack) => {
                postgres::psql(
                    &db.url,
                    &format!(
                        "SET search_path TO \"{}\"; {sql}",
                        daemon::store::postgres_schema(stack)
                    ),
                );
            }
        }
    }

    /// Opens the same store again, as another process would.
    fn reopen(&self) -> Result<Store, StoreError> {
        match &self.raw {
            Raw::Sqlite(dir) => Store::open(&dir.path().join("state")),
            Raw::Postgres(db, stack) => Store::open_postgres(&db.url, None, stack),
        }
    }
}

fn example() -> Snapshot {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-state-example");
    planner::analyze_dir(&dir)
        .unwrap()
        .snapshot
        .expect("the example is valid")
}

fn stored(snapshot: &Snapshot, address: &str) -> StoredResource {
    let r = snapshot.resources[address].clone();
    StoredResource {
        desired: DesiredResource {
            stack: snapshot.stack.clone(),
            address: address.to_string(),
            kind: r.kind,
            name: r.name.clone(),
            spec: planner::resource_spec::ResourceSpec::parse(r.kind, r.spec.as_str()).unwrap(),
            wired: Default::default(),
            resumed: false,
        },
        snapshot: r,
    }
}

fn applied(url: &str) -> Applied {
    Applied {
        outputs: [("url".to_string(), url.to_string())].into(),
        inventory: Vec::new(),
    }
}

/// Applies `addresses` of the example as one apply of `revision`; returns the apply id.
fn apply(store: &Store, snapshot: &Snapshot, revision: &str, addresses: &[&str]) -> i64 {
    store.store_snapshot(revision, snapshot).unwrap();
    let id = store
        .begin_apply(revision, ApplyReason::Apply, None, "test", None)
        .unwrap();
    for address in addresses {
        let resource = stored(snapshot, address);
        let j = store
            .journal_intent(id, address, JournalAction::Create, "local", Some(&resource))
            .unwrap();
        store
            .journal_applied(j, id, revision, &resource, &applied(address))
            .unwrap();
    }
    store
        .finish_apply(id, ApplyStatus::Succeeded, "ok", &snapshot.stack)
        .unwrap();
    id
}

fn first_addresses(snapshot: &Snapshot, n: usize) -> Vec<String> {
    snapshot.resources.keys().take(n).cloned().collect()
}

// ---- the suite ----

fn a_new_store_is_migrated_to_the_current_schema(b: Backend) {
    assert_eq!(b.store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(b.store.generation().unwrap(), 0);
    assert!(b.store.history().unwrap().is_empty());
    // Opening it again migrates nothing and keeps what is there.
    b.store.event("note", "kept", None).unwrap();
    let again = b.reopen().unwrap();
    assert_eq!(again.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(again.events_of_kind("note").unwrap().len(), 1);
}

fn a_store_of_a_newer_platformd_is_refused(b: Backend) {
    match &b.raw {
        Raw::Sqlite(_) => b.exec(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1)),
        Raw::Postgres(..) => b.exec(&format!(
            "UPDATE schema_version SET version = {}",
            SCHEMA_VERSION + 1
        )),
    }
    let err = b.reopen().err().expect("refused");
    assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
    assert!(err.to_string().contains("upgrade platformd"), "{err}");
}

fn stores_opened_at_once_migrate_once(b: Backend) {
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let raw = match &b.raw {
                Raw::Sqlite(dir) => (Some(dir.path().join("fresh")), None),
                Raw::Postgres(db, _) => (None, Some(db.url.clone())),
            };
            std::thread::spawn(move || match raw {
                (Some(dir), _) => Store::open(&dir),
                (_, Some(url)) => Store::open_postgres(&url, None, "fresh"),
                _ => unreachable!(),
            })
        })
        .collect();
    for h in handles {
        let store = h.join().unwrap().unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }
}

fn an_apply_journals_each_call_and_moves_the_generation(b: Backend) {
    let s = example();
    let addresses = first_addresses(&s, 3);
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let id = apply(&b.store, &s, "rev1", &refs);
    assert_eq!(b.store.generation().unwrap(), 3);
    assert_eq!(b.store.applied_revision().unwrap().as_deref(), Some("rev1"));
    assert_eq!(
        b.store.stack_name().unwrap().as_deref(),
        Some(s.stack.as_str())
    );
    assert_eq!(b.store.resource_count().unwrap(), 3);
    let journal = b.store.journal().unwrap();
    assert_eq!(journal.len(), 3);
    assert!(journal.iter().all(|j| j.apply_id == id
        && j.action == JournalAction::Create
        && j.result == Some(IntentResult::Ok)
        && j.attempts == 1));
    assert!(b.store.open_intents().unwrap().is_empty());
    let r = b.store.resource(&addresses[0]).unwrap().unwrap();
    assert_eq!(r.snapshot, s.resources[&addresses[0]]);
    assert_eq!(
        b.store.outputs(&addresses[0]).unwrap().unwrap()["url"],
        addresses[0]
    );
    let prior = b.store.prior_snapshot().unwrap();
    assert_eq!(prior.resources.len(), 3);
    assert_eq!(b.store.snapshot("rev1").unwrap().unwrap(), s);
    let history = b.store.history().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, ApplyStatus::Succeeded);
    assert_eq!(history[0].actor.as_deref(), Some("test"));
    assert!(history[0].finished_at.is_some());
}

fn an_unfinished_intent_is_open_until_closed(b: Backend) {
    let s = example();
    let address = first_addresses(&s, 1).remove(0);
    let id = b
        .store
        .begin_apply("rev1", ApplyReason::Apply, None, "test", None)
        .unwrap();
    let resource = stored(&s, &address);
    let j = b
        .store
        .journal_intent(
            id,
            &address,
            JournalAction::Create,
            "local",
            Some(&resource),
        )
        .unwrap();
    b.store.journal_attempt(j).unwrap();
    let open = b.store.open_intents().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].address, address);
    assert_eq!(open[0].action, JournalAction::Create);
    assert_eq!(
        open[0].desired.as_ref().unwrap().snapshot,
        resource.snapshot
    );
    assert_eq!(b.store.journal().unwrap()[0].attempts, 2);
    b.store
        .journal_failed(j, IntentResult::Abandoned, &address, "killed")
        .unwrap();
    assert!(b.store.open_intents().unwrap().is_empty());
    assert!(b.store.interrupted_create(&address).unwrap());
    assert_eq!(b.store.generation().unwrap(), 0, "nothing changed");
    // A later success ends "interrupted".
    let j = b
        .store
        .journal_intent(
            id,
            &address,
            JournalAction::Create,
            "local",
            Some(&resource),
        )
        .unwrap();
    b.store
        .journal_applied(j, id, "rev1", &resource, &applied("x"))
        .unwrap();
    assert!(!b.store.interrupted_create(&address).unwrap());
    // A delete removes the resource row and keeps the journal.
    let d = b
        .store
        .journal_intent(id, &address, JournalAction::Delete, "local", None)
        .unwrap();
    b.store.journal_deleted(d, &address).unwrap();
    assert_eq!(b.store.resource_count().unwrap(), 0);
    assert_eq!(b.store.journal().unwrap().len(), 3);
    assert_eq!(b.store.generation().unwrap(), 2);
}

fn a_failed_intent_is_an_event(b: Backend) {
    let id = b
        .store
        .begin_apply("rev1", ApplyReason::Apply, None, "test", None)
        .unwrap();
    let j = b
        .store
        .journal_intent(id, "service/api", JournalAction::Update, "local", None)
        .unwrap();
    b.store
        .journal_failed(j, IntentResult::Failed, "service/api", "boom")
        .unwrap();
    let events = b.store.events_of_kind("apply-failed").unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, "service/api: boom");
    b.store
        .finish_apply(id, ApplyStatus::Failed, "1 failed", "shop")
        .unwrap();
    assert_eq!(b.store.applied_revision().unwrap(), None);
}

fn applies_of_a_gone_process_are_marked_interrupted(b: Backend) {
    b.store
        .begin_apply("rev1", ApplyReason::Apply, None, "test", None)
        .unwrap();
    // Ours is not touched.
    assert_eq!(b.store.mark_interrupted().unwrap(), 0);
    b.exec("UPDATE applies SET holder = 'pid 1 on elsewhere'");
    assert_eq!(b.store.mark_interrupted().unwrap(), 1);
    assert_eq!(
        b.store.history().unwrap()[0].status,
        ApplyStatus::Interrupted
    );
}

fn revisions_record_validity_and_what_was_applied(b: Backend) {
    let s = example();
    for (revision, valid) in [("rev1", true), ("rev2", false), ("rev3", true)] {
        b.store
            .record_revision(&api::Revision {
                revision: revision.into(),
                source: "git".into(),
                author: Some("ada".into()),
                message: Some(format!("commit {revision}")),
                seen_at: 0,
                valid,
                errors: (!valid).then(|| "error[unknown-kind]".to_string()),
                applied: false,
                current: false,
            })
            .unwrap();
    }
    apply(&b.store, &s, "rev1", &[]);
    let revisions = b.store.revisions(10).unwrap();
    let names: Vec<&str> = revisions.iter().map(|r| r.revision.as_str()).collect();
    assert_eq!(names, ["rev3", "rev2", "rev1"]);
    assert!(!revisions[1].valid);
    assert_eq!(revisions[1].errors.as_deref(), Some("error[unknown-kind]"));
    assert!(revisions[2].applied && revisions[2].current);
    assert!(!revisions[0].applied && !revisions[0].current);
    assert_eq!(b.store.revisions(1).unwrap().len(), 1);
}

fn plans_get_increasing_ids(b: Backend) {
    let a = b.store.record_plan(Some("rev1"), "{}").unwrap();
    let c = b.store.record_plan(None, "{}").unwrap();
    assert!(c > a);
    let id = b
        .store
        .begin_apply("rev1", ApplyReason::Rollback, Some(c), "ops", Some("why"))
        .unwrap();
    assert!(id > 0);
    let h = &b.store.history().unwrap()[0];
    assert_eq!(h.reason, ApplyReason::Rollback);
    assert_eq!(h.note.as_deref(), Some("why"));
}

fn an_approval_covers_one_plan_once(b: Backend) {
    b.store
        .request_approval("rev1", "hash1", "2 to add")
        .unwrap();
    b.store.request_approval("rev1", "hash1", "again").unwrap();
    let pending = b.store.pending_approval().unwrap().unwrap();
    assert_eq!(pending.summary, "2 to add", "the first request is kept");
    assert!(!b.store.approve("rev1", "other", "ada").unwrap());
    assert!(b.store.approve("rev1", "hash1", "ada").unwrap());
    let a = b.store.approval("rev1", "hash1").unwrap().unwrap();
    assert_eq!(a.approved_by.as_deref(), Some("ada"));
    b.store.approval_applied("rev1", "hash1").unwrap();
    assert!(b.store.pending_approval().unwrap().is_none());
    assert!(
        !b.store.approve("rev1", "hash1", "eve").unwrap(),
        "used once"
    );
}

fn notifications_follow_finished_applies_in_order(b: Backend) {
    let s = example();
    apply(&b.store, &s, "rev0", &[]);
    // A notifier added now does not announce the past.
    b.store.start_outbox().unwrap();
    b.store.start_outbox().unwrap();
    let first = apply(&b.store, &s, "rev1", &[]);
    let running = b
        .store
        .begin_apply("rev2", ApplyReason::Apply, None, "test", None)
        .unwrap();
    let targets = vec!["slack".to_string(), "hook".to_string()];
    assert_eq!(b.store.enqueue_notifications(&targets).unwrap(), 2);
    // The running apply holds the cursor back until it finishes.
    assert_eq!(b.store.enqueue_notifications(&targets).unwrap(), 0);
    b.store
        .finish_apply(running, ApplyStatus::Succeeded, "done", "shop")
        .unwrap();
    assert_eq!(b.store.enqueue_notifications(&targets).unwrap(), 2);
    let due = b.store.due_deliveries(10).unwrap();
    assert_eq!(due.len(), 4);
    assert_eq!(due[0].apply.id, first);
    assert_eq!(due[0].apply.revision, "rev1");
    b.store.delivered(due[0].id).unwrap();
    b.store
        .delivery_failed(due[1].id, "502", Some(i64::MAX - 1))
        .unwrap();
    b.store.delivery_failed(due[2].id, "gone", None).unwrap();
    let due: Vec<i64> = b
        .store
        .due_deliveries(10)
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(due.len(), 1);
}

fn drift_scans_keep_history_and_the_last_is_current(b: Backend) {
    let finding = planner::plan::DriftFinding {
        address: "service/api".into(),
        status: planner::plan::DriftStatus::Drifted,
        policy: None,
        changed_paths: vec!["spec.replicas".into()],
        changes: Vec::new(),
    };
    let first = b
        .store
        .record_drift(std::slice::from_ref(&finding))
        .unwrap();
    assert_eq!(b.store.last_drift_findings().unwrap(), vec![finding]);
    let clean = b.store.record_drift(&[]).unwrap();
    assert!(clean > first);
    assert!(b.store.last_drift_findings().unwrap().is_empty());
    assert_eq!(b.store.drift_findings_recorded().unwrap(), 1);
}

fn health_and_statuses_read_the_team_from_the_snapshot(b: Backend) {
    let s = example();
    let addresses = first_addresses(&s, 2);
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    apply(&b.store, &s, "rev1", &refs);
    b.store
        .record_health(&[(
            addresses[1].clone(),
            Health::Degraded,
            Some("crash loop".into()),
        )])
        .unwrap();
    let statuses = b.store.resource_statuses().unwrap();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0].address, addresses[0]);
    assert_eq!(statuses[0].team, s.resources[&addresses[0]].team);
    assert!(!statuses[0].team.is_empty());
    assert_eq!(statuses[0].health, Health::Ready);
    assert_eq!(statuses[1].health, Health::Degraded);
    assert_eq!(statuses[1].message.as_deref(), Some("crash loop"));
    assert_eq!(statuses[1].revision, "rev1");
    let counts = b.store.resource_counts().unwrap();
    assert_eq!(counts.values().sum::<usize>(), 2);
}

fn tokens_are_kept_hashed_and_named_once(b: Backend) {
    b.store
        .create_token("ci", TokenScope::Read, "pdt_secret_one")
        .unwrap();
    let err = b
        .store
        .create_token("ci", TokenScope::Write, "pdt_other")
        .unwrap_err();
    assert!(matches!(err, StoreError::TokenExists(_)), "{err}");
    assert_eq!(
        b.store.authenticate("pdt_secret_one").unwrap(),
        Some(("ci".to_string(), TokenScope::Read))
    );
    assert_eq!(b.store.authenticate("pdt_wrong").unwrap(), None);
    let tokens = b.store.tokens().unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].last_used_at.is_some());
    assert!(b.store.revoke_token("ci").unwrap());
    assert!(!b.store.revoke_token("ci").unwrap());
    assert_eq!(b.store.authenticate("pdt_secret_one").unwrap(), None);
}

fn the_applier_lease_is_exclusive_and_expires(b: Backend) {
    b.store
        .acquire_lease("platformd apply", std::time::Duration::from_secs(60))
        .unwrap();
    // Taking it again is ours to take.
    b.store
        .acquire_lease("platformd apply", std::time::Duration::from_secs(60))
        .unwrap();
    assert_eq!(b.store.lease().unwrap().unwrap().holder, "platformd apply");
    assert!(
        b.store
            .renew_lease(std::time::Duration::from_secs(60))
            .unwrap()
    );
    // Another host's live lease is refused, with who holds it.
    b.exec("UPDATE lease SET holder = 'platformd daemon', pid = 7, host = 'node-b'");
    let err = b
        .store
        .acquire_lease("platformd apply", std::time::Duration::from_secs(60))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("platformd daemon (pid 7 on node-b"),
        "{err}"
    );
    assert!(
        !b.store
            .renew_lease(std::time::Duration::from_secs(60))
            .unwrap()
    );
    // Once it has run out, it is taken over.
    b.exec("UPDATE lease SET expires_at = 0");
    b.store
        .acquire_lease("platformd apply", std::time::Duration::from_secs(60))
        .unwrap();
    assert_eq!(b.store.lease().unwrap().unwrap().holder, "platformd apply");
    b.store.release_lease().unwrap();
    assert!(b.store.lease().unwrap().is_none());
}

fn journal_intents_are_fenced_by_the_lease_epoch(b: Backend) {
    let ttl = std::time::Duration::from_secs(60);
    let first = b.store.acquire_lease("platformd daemon", ttl).unwrap();
    assert_eq!(
        b.store.acquire_lease("platformd daemon", ttl).unwrap(),
        first,
        "still ours"
    );
    let fenced = b.store.fenced(first);
    let id = fenced
        .begin_apply("rev1", ApplyReason::Apply, None, "test", None)
        .unwrap();
    fenced
        .journal_intent(id, "service/api", JournalAction::Create, "local", None)
        .unwrap();
    assert_eq!(b.store.journal().unwrap()[0].epoch, Some(first));
    // Another replica takes the lease over while this one is paused.
    b.exec(&format!(
        "UPDATE lease SET holder = 'platformd daemon', pid = 7, host = 'node-b', epoch = {}",
        first + 1
    ));
    let err = fenced
        .journal_intent(id, "service/web", JournalAction::Create, "local", None)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::LeaseLost(e) if e == first),
        "{err}"
    );
    assert_eq!(b.store.journal().unwrap().len(), 1, "nothing written");
    // Nor does it start another apply.
    assert!(matches!(
        fenced.begin_apply("rev2", ApplyReason::Apply, None, "test", None),
        Err(StoreError::LeaseLost(_))
    ));
    assert_eq!(b.store.history().unwrap().len(), 1);
    // Nor does it record the result of a call made under the lost lease, count a retry, or
    // end its apply: the new owner finds the intent open and the apply interrupted.
    let journal_id = b.store.journal().unwrap()[0].id;
    let lost = |r: Result<(), StoreError>| matches!(r, Err(StoreError::LeaseLost(e)) if e == first);
    assert!(lost(fenced.journal_failed(
        journal_id,
        IntentResult::Failed,
        "service/api",
        "boom"
    )));
    assert!(lost(fenced.journal_deleted(journal_id, "service/api")));
    assert!(lost(fenced.journal_attempt(journal_id)));
    assert!(lost(fenced.finish_apply(
        id,
        ApplyStatus::Succeeded,
        "1 applied",
        "shop"
    )));
    let entry = &b.store.journal().unwrap()[0];
    assert_eq!((entry.result, entry.attempts), (None, 1));
    assert_eq!(b.store.history().unwrap()[0].status, ApplyStatus::Running);
    assert_eq!(b.store.applied_revision().unwrap(), None);
    // Our own lease, run out, fences too.
    b.exec("UPDATE lease SET pid = 0, host = 'gone', expires_at = 0");
    let second = b.store.acquire_lease("platformd daemon", ttl).unwrap();
    assert_eq!(second, first + 2);
    b.exec("UPDATE lease SET expires_at = 1");
    assert!(matches!(
        b.store.fenced(second).journal_intent(
            id,
            "service/web",
            JournalAction::Create,
            "local",
            None
        ),
        Err(StoreError::LeaseLost(_))
    ));
    // A released lease keeps its epoch: the next holder's is higher.
    let third = b.store.acquire_lease("platformd daemon", ttl).unwrap();
    b.store.release_lease().unwrap();
    assert!(b.store.lease().unwrap().is_none());
    assert_eq!(
        b.store.acquire_lease("platformd apply", ttl).unwrap(),
        third + 1
    );
}

fn driver_calls_ask_the_lease_by_its_deadline_then_the_database(b: Backend) {
    let ttl = std::time::Duration::from_secs(1);
    let epoch = b.store.acquire_lease("platformd daemon", ttl).unwrap();
    let fenced = b.store.fenced(epoch);
    fenced.check_lease().unwrap();
    // Past the local deadline, the database answers: still ours while it has not run out.
    b.exec("UPDATE lease SET expires_at = expires_at + 2");
    std::thread::sleep(ttl);
    fenced.check_lease().unwrap();
    // Taken over (what a replica woken after a pause finds): refused, and the handle's
    // deadline is forgotten, so the next call asks again.
    b.exec(&format!(
        "UPDATE lease SET pid = 7, host = 'node-b', epoch = {}",
        epoch + 1
    ));
    std::thread::sleep(ttl * 3);
    for _ in 0..2 {
        assert!(matches!(
            fenced.check_lease(),
            Err(StoreError::LeaseLost(e)) if e == epoch
        ));
    }
    // An unfenced handle (a drift scan, a read) is not asked about any lease.
    b.store.check_lease().unwrap();
}

fn the_pin_and_its_events_change_together(b: Backend) {
    b.store.set_pin(Some("rev1"), Some("rev3")).unwrap();
    assert_eq!(b.store.pinned_revision().unwrap().as_deref(), Some("rev1"));
    assert_eq!(b.store.pinned_at_tip().unwrap().as_deref(), Some("rev3"));
    b.store.set_pin(None, None).unwrap();
    assert_eq!(b.store.pinned_revision().unwrap(), None);
    assert_eq!(b.store.events_of_kind("pin").unwrap().len(), 1);
    assert_eq!(b.store.events_of_kind("resume").unwrap().len(), 1);
}

fn idle_shutdown_records_periods_and_savings(b: Backend) {
    let scaled = ScaledDown {
        address: "endpoint/chat".into(),
        kind: "endpoint".into(),
        team: "ml".into(),
        since: 1_000,
        note: "idle 2h, cost policy".into(),
        figure: "requests 0/s".into(),
        spec_before: "{}".into(),
        monthly_usd_before: 730.0,
        monthly_usd_saved: 730.0,
    };
    b.store.set_idle_since("endpoint/chat", 500).unwrap();
    b.store.set_idle_since("endpoint/chat", 900).unwrap();
    assert_eq!(
        b.store.idle_since().unwrap()["endpoint/chat"],
        500,
        "first seen kept"
    );
    b.store.record_scaled_down(&scaled).unwrap();
    b.store.record_scaled_down(&scaled).unwrap();
    assert!(b.store.idle_since().unwrap().is_empty());
    assert_eq!(b.store.scaled_down().unwrap(), vec![scaled.clone()]);
    // 730 $/month is 1 $/hour: two hours running.
    let savings = b.store.savings(1_000, 1_000 + 7_200).unwrap();
    assert_eq!(savings.len(), 1);
    assert!((savings[0].usd - 2.0).abs() < 1e-9, "{savings:?}");
    assert!(
        b.store
            .end_scaled_down("endpoint/chat", 1_000 + 3_600, "commit")
            .unwrap()
    );
    assert!(
        !b.store
            .end_scaled_down("endpoint/chat", 9_999, "commit")
            .unwrap()
    );
    let savings = b.store.savings(0, 100_000).unwrap();
    assert!((savings[0].usd - 1.0).abs() < 1e-9, "{savings:?}");
    b.store.record_scaled_down(&scaled).unwrap();
    b.store.forget_scaled_down("endpoint/chat", 42).unwrap();
    assert!(b.store.scaled_down().unwrap().is_empty());
    assert_eq!(b.store.idle_since().unwrap()["endpoint/chat"], 42);
    b.store.clear_idle_since("endpoint/chat").unwrap();
    assert!(b.store.idle_since().unwrap().is_empty());
}

fn corrupt_rows_are_errors_not_panics(b: Backend) {
    let s = example();
    let address = first_addresses(&s, 1).remove(0);
    apply(&b.store, &s, "rev1", &[&address]);
    b.exec("UPDATE resources SET health = 'weird'");
    assert!(matches!(
        b.store.resource_statuses().unwrap_err(),
        StoreError::Corrupt(_)
    ));
    b.exec("UPDATE resources SET snapshot = 'not json'");
    assert!(matches!(
        b.store.resources().unwrap_err(),
        StoreError::Corrupt(_)
    ));
    // The database itself refuses to read a team out of it: an error too.
    assert!(b.store.resource_statuses().is_err());
}

/// Each test once per backend.
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $test() { super::$test(super::Backend::sqlite()) })*
        }
        mod postgresql {
            $(#[test] fn $test() { super::$test(super::Backend::postgres()) })*
        }
        mod postgresql_shared_connection {
            $(#[test] fn $test() { super::$test(super::Backend::postgres_shared_connection()) })*
        }
    };
}

suite!(
    a_new_store_is_migrated_to_the_current_schema,
    a_store_of_a_newer_platformd_is_refused,
    stores_opened_at_once_migrate_once,
    an_apply_journals_each_call_and_moves_the_generation,
    an_unfinished_intent_is_open_until_closed,
    a_failed_intent_is_an_event,
    applies_of_a_gone_process_are_marked_interrupted,
    revisions_record_validity_and_what_was_applied,
    plans_get_increasing_ids,
    an_approval_covers_one_plan_once,
    notifications_follow_finished_applies_in_order,
    drift_scans_keep_history_and_the_last_is_current,
    health_and_statuses_read_the_team_from_the_snapshot,
    tokens_are_kept_hashed_and_named_once,
    the_applier_lease_is_exclusive_and_expires,
    journal_intents_are_fenced_by_the_lease_epoch,
    driver_calls_ask_the_lease_by_its_deadline_then_the_database,
    the_pin_and_its_events_change_together,
    idle_shutdown_records_periods_and_savings,
    corrupt_rows_are_errors_not_panics,
);

/// PostgreSQL restarted under a running store: the statement in flight fails with a clear
/// error, nothing of its transaction is kept, and the next statement reconnects and carries on.
#[test]
fn a_restarted_postgres_loses_nothing_and_the_store_reconnects() {
    let cluster = postgres::Cluster::start();
    let url = cluster.url();
    let s = example();
    let addresses = first_addresses(&s, 2);
    let store = Store::open_postgres(&url, None, "shop").unwrap();
    apply(&store, &s, "rev1", &[&addresses[0]]);
    let id = store
        .begin_apply("rev2", ApplyReason::Apply, None, "test", None)
        .unwrap();
    let resource = stored(&s, &addresses[1]);
    let intent = store
        .journal_intent(
            id,
            &addresses[1],
            JournalAction::Create,
            "local",
            Some(&resource),
        )
        .unwrap();

    cluster.stop();
    let err = store
        .journal_applied(intent, id, "rev2", &resource, &applied("x"))
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    cluster.start_again();

    // The failed transaction left nothing: the intent is still open, the resource not written.
    assert_eq!(store.resource_count().unwrap(), 1, "{}", cluster.log());
    assert_eq!(store.open_intents().unwrap().len(), 1);
    assert_eq!(store.generation().unwrap(), 1);
    // And the store carries on where it stopped.
    store
        .journal_applied(intent, id, "rev2", &resource, &applied("x"))
        .unwrap();
    store
        .finish_apply(id, ApplyStatus::Succeeded, "ok", &s.stack)
        .unwrap();
    assert_eq!(store.resource_count().unwrap(), 2);
    assert_eq!(store.history().unwrap().len(), 2);
    assert_eq!(store.applied_revision().unwrap().as_deref(), Some("rev2"));
}

/// A PostgreSQL address that accepts connections and then says nothing (a hung server, a
/// half-open proxy): opening the store fails with a clear error once the connect timeout has
/// passed, instead of waiting for ever (`docs/SECURITY.md`).
#[test]
fn a_postgres_that_never_answers_fails_at_the_connect_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().take(4) {
            open.push(stream);
        }
        std::thread::sleep(std::time::Duration::from_secs(30));
    });
    let started = std::time::Instant::now();
    let err = Store::open_postgres(
        &format!("postgres://platformd@127.0.0.1:{port}/platformd?connect_timeout=1"),
        None,
        "shop",
    )
    .err()
    .expect("a silent server is an error");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(
        err.to_string()
            .contains("no answer to the connection within 1s"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    drop(held);
}

/// A row lock held by another session (a replica stopped inside a transaction, an operator's
/// psql): a statement waiting for it fails at the lock timeout with PostgreSQL's own words,
/// instead of blocking the caller for ever.
#[test]
fn a_statement_waiting_on_a_lock_fails_at_the_lock_timeout() {
    let db = postgres::database();
    let store = Store::open_postgres(&db.url, None, "shop").unwrap();
    let ttl = std::time::Duration::from_secs(60);
    store.acquire_lease("platformd daemon", ttl).unwrap();
    let url = db.url.clone();
    let holder = std::thread::spawn(move || {
        postgres::psql(
            &url,
            &format!(
                "SET search_path TO \"{}\"; BEGIN; SELECT epoch FROM lease WHERE id = 1 FOR UPDATE; SELECT pg_sleep(15); COMMIT;",
                daemon::store::postgres_schema("shop")
            ),
        )
    });
    // Until the other session holds the lock.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let started = std::time::Instant::now();
    let err = store.renew_lease(ttl).unwrap_err();
    assert!(err.to_string().contains("lock timeout"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // The connection carries on.
    assert!(store.lease().unwrap().is_some());
    let _ = holder.join();
}
