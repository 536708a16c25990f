//! Apply, store, drift, history and rollback, end to end through the `platformd` binary with the
//! embedded local driver.

mod support;

use support::{PLATFORM, Tally, Workspace, kubernetes_validate};

fn db(name: &str, protect: &str) -> String {
    format!(
        "database \"{name}\" {{\n    team \"web\"\n    engine \"postgres\"\n    size \"db.t4g.medium\"\n{protect}}}\n"
    )
}

fn topic(name: &str, partitions: u32) -> String {
    format!("topic \"{name}\" {{\n    team \"web\"\n    partitions {partitions}\n}}\n")
}

fn service(name: &str, replicas: u32, extra: &str) -> String {
    format!(
        "service \"{name}\" {{\n    team \"web\"\n    image \"ghcr.io/acme/{name}:1.0.0\"\n    replicas {replicas}\n    port 8080\n{extra}}}\n"
    )
}

#[test]
fn example_applies_from_empty_then_plans_clean_with_valid_manifests_and_wired_outputs() {
    let ws = Workspace::new();
    ws.copy_example();
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("Apply succeeded: 38 applied, 0 failed, 0 skipped in "),
        "{}",
        run.stdout
    );
    let plan = ws.run(&["plan", "stack", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.stdout.contains("no changes, 38 unchanged"),
        "{}",
        plan.stdout
    );
    // One directory per kind, every file owned by platformd.
    for kind in [
        "service",
        "database",
        "bucket",
        "topic",
        "pipeline",
        "gpu-pool",
        "ai-endpoint",
        "llm-quota",
    ] {
        assert!(ws.rendered(kind).is_dir(), "{kind}");
    }
    let checkout = ws.read_rendered("service/checkout-api.yaml");
    assert!(
        checkout.contains("app.kubernetes.io/managed-by: platformd"),
        "{checkout}"
    );
    // Output wiring: the database's url, resolved when the service was applied.
    assert!(
        checkout.contains(
            "value: postgres://orders_db_app@orders-db.acme-prod.db.internal:5432/orders_db"
        ),
        "{checkout}"
    );
    // Secrets stay references.
    assert!(
        checkout.contains("remoteRef:\n      key: prod/checkout/stripe"),
        "{checkout}"
    );
    let db = ws.read_rendered("database/orders-db.yaml");
    assert!(
        db.contains("apiVersion: platformd.dev/v1") && db.contains("kind: Database"),
        "{db}"
    );
    let valid = kubernetes_validate(&ws.path().join(".platformd/rendered"));
    assert_eq!(valid.code, 0, "{}", valid.all());
    assert!(!valid.all().contains("ERROR"), "{}", valid.all());
    // Rate limits and quotas are gateway objects, not annotations.
    let llm = ws.read_rendered("ai-endpoint/support-llm.yaml");
    for expected in [
        "kind: AIGatewayRoute",
        "value: meta-llama/Llama-3.1-8B-Instruct",
        "kind: BackendTrafficPolicy",
        "name: support-llm-rate-limit",
        "requests: 100000\n          unit: Minute",
    ] {
        assert!(llm.contains(expected), "{expected} in\n{llm}");
    }
    let quota = ws.read_rendered("llm-quota/storefront.yaml");
    for expected in [
        "name: llm-quota-storefront",
        "name: x-platformd-team",
        "value: storefront",
        "requests: 20000000\n          unit: Day",
        "shared: true",
    ] {
        assert!(quota.contains(expected), "{expected} in\n{quota}");
    }
}

#[test]
fn updates_replacements_and_deletes_in_reverse_dependency_order() {
    let ws = Workspace::new();
    let pipeline = "pipeline \"p\" {\n    team \"web\"\n    source \"topic/t2\"\n    sink \"database/db\" table=\"x\"\n    image \"ghcr.io/acme/p:1.0.0\"\n}\n";
    let consumer = service(
        "consumer",
        1,
        "    env \"EVENTS\" from=\"topic/t2.bootstrap-servers\"\n",
    );
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        (
            "a.kdl",
            &format!(
                "{}{}{}{}{}{}",
                db("db", "    protect #false\n"),
                topic("t", 6),
                topic("t2", 1),
                service("api", 2, "    env \"DB\" from=\"database/db.url\"\n"),
                pipeline,
                consumer
            ),
        ),
    ]);
    assert_eq!(ws.run(&["apply", "stack", "--auto-approve"]).code, 0);
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        (
            "a.kdl",
            &format!(
                "{}{}{}",
                db("db", "    protect #false\n"),
                topic("t", 3),
                service("api", 5, "    env \"DB\" from=\"database/db.url\"\n")
            ),
        ),
    ]);
    let run = ws.run(&["apply", "stack", "--auto-approve", "--parallelism", "4"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("~ service/api"), "{}", run.stdout);
    assert!(run.stdout.contains("-/+ topic/t"), "{}", run.stdout);
    assert!(ws.read_rendered("service/api.yaml").contains("replicas: 5"));
    assert!(ws.read_rendered("topic/t.yaml").contains("partitions: 3"));
    // Dependents are deleted before what they depended on.
    let lines: Vec<&str> = run.stderr.lines().collect();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("{needle} in {}", run.stderr))
    };
    assert!(
        pos("pipeline/p: deleted") < pos("topic/t2: deleted"),
        "{}",
        run.stderr
    );
    assert!(
        pos("service/consumer: deleted") < pos("topic/t2: deleted"),
        "{}",
        run.stderr
    );
    assert!(!ws.rendered("topic/t2.yaml").exists());
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
}

#[test]
fn protected_deletes_are_blocked_until_allowed() {
    let ws = Workspace::new();
    ws.stack(&[("platform.kdl", PLATFORM), ("a.kdl", &db("orders", ""))]);
    assert_eq!(ws.run(&["apply", "stack", "--auto-approve"]).code, 0);
    ws.stack(&[("platform.kdl", PLATFORM)]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(
        run.stdout
            .contains("BLOCKED: protected; deleting destroys it"),
        "{}",
        run.stdout
    );
    assert!(
        ws.rendered("database/orders.yaml").exists(),
        "nothing may be deleted"
    );
    let run = ws.run(&[
        "apply",
        "stack",
        "--auto-approve",
        "--allow-destroy",
        "database/orders",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!ws.rendered("database/orders.yaml").exists());
}

#[test]
fn a_failure_skips_its_dependents_and_independent_branches_go_on() {
    let ws = Workspace::new();
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        (
            "a.kdl",
            &format!(
                "{}{}{}{}",
                db("bad", ""),
                service("x", 1, "    env \"DB\" from=\"database/bad.url\"\n"),
                service("y", 1, "    depends-on \"service/x\"\n"),
                service("z", 1, "")
            ),
        ),
    ]);
    ws.local_driver(&[("inject-faults", "database/bad=permanent")]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout
            .contains("Apply partial: 1 applied, 1 failed, 2 skipped in "),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("failed: database/bad: injected permanent fault"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("skipped: service/x: depends on database/bad, which failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("skipped: service/y"), "{}", run.stderr);
    assert!(ws.rendered("service/z.yaml").exists());
    assert!(!ws.rendered("service/x.yaml").exists());
    let history = ws.run(&["history"]);
    assert!(history.stdout.contains("partial"), "{}", history.stdout);
    // Without the fault, the next apply finishes the job.
    std::fs::write(ws.path().join("stack/platform.kdl"), PLATFORM).unwrap();
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("3 applied"), "{}", run.stdout);
}

#[test]
fn retryable_errors_back_off_and_retry() {
    let ws = Workspace::new();
    ws.stack(&[("platform.kdl", PLATFORM), ("a.kdl", &topic("flaky", 3))]);
    ws.local_driver(&[("inject-faults", "topic/flaky=retryable:2")]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        run.stderr.matches("retryable error; backing off").count(),
        2,
        "{}",
        run.stderr
    );
    let journal = ws.store().journal().unwrap();
    let flaky = journal.iter().find(|j| j.address == "topic/flaky").unwrap();
    assert_eq!(flaky.attempts, 3);
}

#[test]
fn a_saved_plan_applies_once_and_is_refused_when_stale() {
    let ws = Workspace::new();
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        ("a.kdl", &service("api", 1, "")),
    ]);
    assert_eq!(ws.run(&["plan", "stack", "--out", "first.json"]).code, 0);
    assert_eq!(ws.run(&["plan", "stack", "--out", "second.json"]).code, 0);
    let run = ws.run(&["apply", "--plan", "first.json", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(ws.rendered("service/api.yaml").exists());
    let run = ws.run(&["apply", "--plan", "second.json", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("the saved plan is stale"),
        "{}",
        run.stderr
    );
}

#[test]
fn drift_missing_and_orphans_are_found_and_policies_honoured() {
    let ws = Workspace::new();
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        (
            "a.kdl",
            &format!(
                "{}{}{}{}{}",
                service("edited", 2, ""),
                service("scaled", 2, "    ignore-changes \"replicas\"\n"),
                service("reported", 2, "    drift \"report\"\n"),
                service("ignored", 2, "    drift \"ignore\"\n"),
                topic("gone", 3)
            ),
        ),
    ]);
    assert_eq!(ws.run(&["apply", "stack", "--auto-approve"]).code, 0);
    for name in ["edited", "scaled", "reported", "ignored"] {
        let p = ws.rendered(&format!("service/{name}.yaml"));
        let text =
            std::fs::read_to_string(&p)
                .unwrap()
                .replacen("  replicas: 2", "  replicas: 9", 1);
        std::fs::write(&p, text).unwrap();
    }
    std::fs::remove_file(ws.rendered("topic/gone.yaml")).unwrap();
    let orphan = ws
        .read_rendered("service/edited.yaml")
        .replace("edited", "stray");
    std::fs::write(ws.rendered("service/stray.yaml"), orphan).unwrap();
    // A file platformd does not own is not an orphan.
    std::fs::write(
        ws.rendered("service/foreign.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: foreign\n",
    )
    .unwrap();

    let run = ws.run(&["drift", "stack", "--detailed-exitcode", "--format", "json"]);
    assert_eq!(run.code, 2, "{}", run.all());
    let findings: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let by: Vec<(String, String)> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["address"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = |a: &str, s: &str| {
        assert!(
            by.contains(&(a.to_string(), s.to_string())),
            "{a} {s} in {by:?}"
        )
    };
    expect("service/edited", "drifted");
    expect("service/reported", "drifted");
    expect("topic/gone", "missing");
    expect("service/stray", "orphan");
    assert_eq!(
        by.len(),
        4,
        "ignore-changes, drift ignore and foreign files are not findings: {by:?}"
    );
    let edited = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["address"] == "service/edited")
        .unwrap();
    assert_eq!(
        edited["changed_paths"],
        serde_json::json!(["Deployment/edited: spec.replicas"])
    );

    // `correct` is corrected, `report` is only reported.
    let run = ws.run(&["apply", "stack", "--refresh", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        ws.read_rendered("service/edited.yaml")
            .contains("  replicas: 2")
    );
    assert!(
        ws.read_rendered("service/reported.yaml")
            .contains("  replicas: 9")
    );
    assert!(ws.rendered("topic/gone.yaml").exists());
    let run = ws.run(&["drift", "stack", "--format", "json"]);
    let after: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let statuses: Vec<&str> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["address"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["service/reported", "service/stray"]);
    let recorded = ws.store().drift_findings_recorded().unwrap();
    assert_eq!(recorded, 6, "both scans are kept");
}

#[test]
fn rollback_pins_until_resume() {
    let ws = Workspace::new();
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        ("a.kdl", &service("api", 2, "")),
    ]);
    assert_eq!(ws.run(&["apply", "stack", "--auto-approve"]).code, 0);
    let v1: String = ws.store().history().unwrap()[0].revision.clone();
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        (
            "a.kdl",
            &format!("{}{}", service("api", 6, ""), topic("new", 3)),
        ),
    ]);
    assert_eq!(ws.run(&["apply", "stack", "--auto-approve"]).code, 0);
    assert!(ws.read_rendered("service/api.yaml").contains("replicas: 6"));

    let run = ws.run(&["rollback", &v1[..16], "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(&format!("Rollback to {v1}:")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("~ service/api") && run.stdout.contains("- topic/new"),
        "{}",
        run.stdout
    );
    assert!(ws.read_rendered("service/api.yaml").contains("replicas: 2"));
    assert!(!ws.rendered("topic/new.yaml").exists());

    // The pin holds: applying the stack again is refused until resume.
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(&format!("pinned to revision {v1}")),
        "{}",
        run.stderr
    );
    let history = ws.run(&["history"]);
    assert!(
        history.stdout.contains("rollback") && history.stdout.contains("(pinned)"),
        "{}",
        history.stdout
    );

    assert_eq!(ws.run(&["resume"]).code, 0);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(ws.read_rendered("service/api.yaml").contains("replicas: 6"));
    let rows = ws.store().history().unwrap().len();
    assert_eq!(rows, 4, "history keeps every apply");
}

#[test]
fn a_store_from_the_first_schema_version_is_migrated_and_a_newer_one_refused() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path().join(".platformd")).unwrap();
    {
        let conn = old_binary_store(&ws);
        conn.execute_batch(include_str!("../src/store/migrations/0001_initial.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO applies (revision, reason, started_at, finished_at, status, summary, generation_before, holder)
             VALUES ('content-0000000000000001', 'apply', 1700000000, 1700000001, 'succeeded', '1 applied, 0 failed, 0 skipped', 0, 'pid 1')",
            [],
        )
        .unwrap();
    }
    let run = ws.run(&["history"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("content-0000000000000001")
            && run.stdout.contains("2023-11-14 22:13:20 UTC"),
        "{}",
        run.stdout
    );
    let version = ws.store().schema_version().unwrap();
    assert_eq!(version, daemon::store::SCHEMA_VERSION);
    // The schema itself is what this test checks, and only SQL can look at it.
    let has_data_column: i64 = old_binary_store(&ws)
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'data'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(has_data_column, 1);

    old_binary_store(&ws)
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let run = ws.run(&["history"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(&format!(
            "has schema version 99, newer than this platformd supports ({})",
            daemon::store::SCHEMA_VERSION
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn two_concurrent_appliers_never_apply_at_once_and_the_state_converges() {
    let ws = Workspace::new();
    let mut text = String::new();
    for i in 0..60 {
        text.push_str(&topic(&format!("t{i}"), 3));
    }
    ws.stack(&[("platform.kdl", PLATFORM), ("a.kdl", &text)]);
    ws.local_driver(&[("simulate-latency-ms", "50")]);
    let first = ws
        .command(&["apply", "stack", "--auto-approve", "--parallelism", "2"])
        .spawn()
        .unwrap();
    wait_for_lease(&ws, first.id());
    let second = ws.run(&["apply", "stack", "--auto-approve"]);
    let first: support::Run = first.wait_with_output().unwrap().into();
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(
        second
            .stderr
            .contains("the state directory is locked by platformd apply (pid"),
        "{}",
        second.stderr
    );
    // Waiting for the lock instead: the second applier finds nothing left to do.
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        ("a.kdl", &text.replace("partitions 3", "partitions 4")),
    ]);
    let third = ws
        .command(&["apply", "stack", "--auto-approve", "--parallelism", "2"])
        .spawn()
        .unwrap();
    wait_for_lease(&ws, third.id());
    let fourth = ws.run(&["apply", "stack", "--auto-approve", "--lock-timeout", "60s"]);
    let third: support::Run = third.wait_with_output().unwrap().into();
    assert_eq!(
        (third.code, fourth.code),
        (0, 0),
        "{}\n{}",
        third.all(),
        fourth.all()
    );
    assert!(fourth.stdout.contains("No changes."), "{}", fourth.all());
    let applies = ws.store().history().unwrap().len();
    assert_eq!(applies, 2, "the waiting appliers found nothing to do");
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
}

/// Waits until process `pid` holds the applier lease.
fn wait_for_lease(ws: &Workspace, pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let lease = Tally::of(&ws.path().join(".platformd")).and_then(|t| t.lease);
        if lease.is_some_and(|l| l.pid == i64::from(pid)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("process {pid} never took the lease");
}

#[test]
fn secret_values_never_reach_output_store_or_rendered_files() {
    let ws = Workspace::new();
    let leaked = "sk_live_51HxYzAbCdEfGhIjKlMn";
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        (
            "a.kdl",
            &service(
                "api",
                1,
                "    env \"STRIPE_KEY\" secret=\"aws-sm:prod/api/stripe\"\n",
            ),
        ),
    ]);
    assert_eq!(ws.run(&["apply", "stack", "--auto-approve"]).code, 0);
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        (
            "a.kdl",
            &service("api", 1, &format!("    env \"STRIPE_KEY\" \"{leaked}\"\n")),
        ),
    ]);
    for args in [
        &["apply", "stack", "--auto-approve"][..],
        &["plan", "stack"],
        &["plan", "stack", "--format", "json"],
        &["validate", "stack"],
    ] {
        let run = ws.run(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(
            run.stderr.contains("error[secret-literal]"),
            "{}",
            run.stderr
        );
        assert!(!run.all().contains(leaked), "{args:?} printed the secret");
    }
    // Nothing under the state directory (store, WAL, rendered files) holds the value; the
    // reference is there, as a reference.
    let mut found_reference = false;
    let mut stack = vec![ws.path().join(".platformd")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes.windows(leaked.len()).any(|w| w == leaked.as_bytes()),
                "{} holds the secret",
                p.display()
            );
            found_reference |= bytes
                .windows(18)
                .any(|w| w == b"prod/api/stripe\",\"" || w == b"key: prod/api/stri");
        }
    }
    assert!(found_reference, "the secret reference is kept");

    // A credential pasted into a driver setting or a policy is refused the same way, with its
    // location and without the value.
    let aws_key = "AKIAIOSFODNN7EXAMPLE";
    let platform = PLATFORM.replace(
        "        namespace \"shop\"\n",
        &format!("        namespace \"shop\"\n    }}\n    driver \"aws\" {{\n        profile \"{aws_key}\"\n        node-role-arn \"{aws_key}\"\n    }}\n    window \"deny\" schedule=\"{aws_key}\" duration=\"1h\"\n    driver \"kubernetes\" {{\n"),
    );
    let policy =
        format!("policy \"p\" {{\n    warn \"self.replicas > 1\" message=\"{leaked}\"\n}}\n");
    ws.stack(&[
        ("platform.kdl", &platform),
        ("policy.kdl", &policy),
        ("a.kdl", &service("api", 1, "")),
    ]);
    for args in [
        &["validate", "stack"][..],
        &["plan", "stack", "--format", "json"],
    ] {
        let run = ws.run(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(
            run.stderr
                .contains("error[secret-literal]: `profile` contains what looks like")
                && run.stderr.contains("--> stack/platform.kdl:")
                && run
                    .stderr
                    .contains("error[secret-literal]: `message` of `warn`"),
            "{}",
            run.stderr
        );
        assert!(
            !run.all().contains(aws_key) && !run.all().contains(leaked),
            "{args:?} printed a secret"
        );
    }
}

#[test]
fn appliers_started_together_on_a_new_state_directory_never_collide() {
    let ws = Workspace::new();
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&topic(&format!("t{i}"), 3));
    }
    ws.stack(&[("platform.kdl", PLATFORM), ("a.kdl", &text)]);
    let children: Vec<_> = (0..4)
        .map(|_| {
            ws.command(&["apply", "stack", "--auto-approve", "--lock-timeout", "60s"])
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let run: support::Run = child.wait_with_output().unwrap().into();
        assert_eq!(run.code, 0, "{}", run.all());
        assert!(
            !run.stderr.contains("store:"),
            "no raw store errors: {}",
            run.stderr
        );
    }
    let applies = ws.store().history().unwrap().len();
    assert_eq!(
        applies, 1,
        "exactly one applied; the others found nothing to do"
    );
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
}

/// The store's database opened with SQL, as a platformd of another schema version would: only
/// the migration test, which builds and inspects schemas, needs it.
fn old_binary_store(ws: &Workspace) -> rusqlite::Connection {
    rusqlite::Connection::open(ws.path().join(".platformd/platformd.db")).unwrap()
}

#[test]
fn a_clean_drift_scan_replaces_the_findings_of_the_last_one() {
    let ws = Workspace::new();
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        ("a.kdl", &service("api", 2, "")),
    ]);
    assert_eq!(ws.run(&["apply", "stack", "--auto-approve"]).code, 0);
    let p = ws.rendered("service/api.yaml");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replacen("  replicas: 2", "  replicas: 9", 1)).unwrap();
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 2);
    assert_eq!(ws.store().last_drift_findings().unwrap().len(), 1);

    let run = ws.run(&["apply", "stack", "--refresh", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let run = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("No drift"), "{}", run.stdout);
    assert_eq!(
        ws.store().last_drift_findings().unwrap(),
        [],
        "the clean scan is the last scan"
    );
    assert_eq!(
        ws.store().drift_findings_recorded().unwrap(),
        1,
        "history kept"
    );
}

#[test]
fn rollback_takes_a_unique_prefix_or_a_history_id_and_lists_the_candidates_of_an_ambiguous_one() {
    let ws = Workspace::new();
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        ("a.kdl", &service("api", 2, "")),
    ]);
    assert_eq!(ws.run(&["apply", "stack", "--auto-approve"]).code, 0);
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        ("a.kdl", &service("api", 4, "")),
    ]);
    assert_eq!(ws.run(&["apply", "stack", "--auto-approve"]).code, 0);
    let history = ws.store().history().unwrap();
    let (v1, v2) = (history[0].revision.clone(), history[1].revision.clone());

    // The id in the first column of `platformd history`.
    let run = ws.run(&["rollback", "1", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(&format!("Rollback to {v1}:")),
        "{}",
        run.stdout
    );
    assert!(ws.read_rendered("service/api.yaml").contains("replicas: 2"));
    assert_eq!(ws.run(&["resume"]).code, 0);

    // A unique prefix of the hash, as in git (without the `content-` of directory revisions).
    let hash = v2.strip_prefix("content-").unwrap();
    let run = ws.run(&["rollback", &hash[..7], "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(&format!("Rollback to {v2}:")),
        "{}",
        run.stdout
    );
    assert!(ws.read_rendered("service/api.yaml").contains("replicas: 4"));

    // Ambiguous: every candidate is named, nothing changes.
    let run = ws.run(&["rollback", "content-", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("ambiguous") && run.stderr.contains(&v1) && run.stderr.contains(&v2),
        "{}",
        run.stderr
    );
    let run = ws.run(&["rollback", "zzz", "--auto-approve"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no applied revision `zzz`"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_read_only_store_creates_migrates_and_writes_nothing() {
    let ws = Workspace::new();
    let run = ws.run(&["--state-dir", "nothing-here", "tui"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("no store in nothing-here"),
        "{}",
        run.stderr
    );
    assert!(
        !ws.path().join("nothing-here").exists(),
        "no directory created"
    );

    ws.stack(&[("platform.kdl", PLATFORM), ("a.kdl", &topic("t", 3))]);
    assert_eq!(ws.run(&["apply", "stack", "--auto-approve"]).code, 0);
    let store = ws.store();
    assert!(store.record_plan(None, "{}").is_err(), "writes are refused");
    assert_eq!(store.resource_count().unwrap(), 1);

    // A store of an older schema is not migrated by a reader.
    old_binary_store(&ws)
        .pragma_update(None, "user_version", 1)
        .unwrap();
    let refused = daemon::store::Store::open_read_only(&ws.path().join(".platformd"))
        .err()
        .expect("an older schema is refused")
        .to_string();
    assert!(refused.contains("schema version 1"), "{refused}");
    assert_eq!(
        old_binary_store(&ws)
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        1
    );
}

#[test]
fn a_store_write_that_fails_stops_the_apply_with_an_error_and_loses_nothing() {
    let ws = Workspace::new();
    let text = format!("{}{}{}", topic("a", 3), topic("b", 3), topic("c", 3));
    ws.stack(&[("platform.kdl", PLATFORM), ("a.kdl", &text)]);
    // A store that can no longer record: the intent for topic/b cannot be written (as on a full
    // disk).
    drop(daemon::store::Store::open(&ws.path().join(".platformd")).unwrap());
    old_binary_store(&ws)
        .execute_batch(
            "CREATE TRIGGER full_disk BEFORE INSERT ON journal WHEN NEW.address = 'topic/b'
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
        )
        .unwrap();
    let run = ws.run(&["apply", "stack", "--auto-approve", "--parallelism", "1"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("database or disk is full"),
        "{}",
        run.stderr
    );
    assert!(ws.rendered("topic/a.yaml").exists());
    assert!(
        !ws.rendered("topic/b.yaml").exists() && !ws.rendered("topic/c.yaml").exists(),
        "nothing is done that the store could not record"
    );
    let store = ws.store();
    let history = store.history().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, api::ApplyStatus::Failed);
    assert!(
        store.open_intents().unwrap().is_empty(),
        "no intent left open"
    );
    drop(store);

    // Once the store records again, the next apply finishes the job.
    old_binary_store(&ws)
        .execute_batch("DROP TRIGGER full_disk")
        .unwrap();
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("2 applied"), "{}", run.stdout);
}

/// The weekend freeze: Fridays 22:00 Berlin for 60 hours.
fn frozen_platform() -> String {
    PLATFORM.replace(
        "    environment \"test\"\n",
        "    environment \"test\"\n    window \"deny\" schedule=\"0 22 * * fri\" duration=\"60h\" timezone=\"Europe/Berlin\"\n",
    )
}

const API: &str = "service \"api\" {\n    team \"web\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    replicas 2\n}\n";

#[test]
fn apply_inside_a_deny_window_is_refused_unless_overridden_with_a_reason() {
    let mut ws = Workspace::new();
    ws.stack(&[("platform.kdl", &frozen_platform()), ("api.kdl", API)]);
    // Saturday noon: inside the freeze.
    ws.env
        .push(("PLATFORMD_FAKE_NOW".into(), "2026-11-28T12:00:00Z".into()));
    ws.env.push(("USER".into(), "alice".into()));
    let plan = ws.run(&["plan", "stack"]);
    assert!(
        plan.stdout.contains("Sync window: closed: the deny window \"0 22 * * fri\" for 60h (Europe/Berlin) is in force; opens at 2026-11-30T09:00:00Z"),
        "{}",
        plan.stdout
    );
    let json = ws.run(&["plan", "stack", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["window"]["open"], false);
    let refused = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(refused.code, 3, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("a sync window forbids applying now")
            && refused.stderr.contains("--override-window"),
        "{}",
        refused.stderr
    );
    assert!(!ws.rendered("service/api.yaml").exists());
    // An override needs a reason: a usage error, exit 1.
    let no_reason = ws.run(&["apply", "stack", "--auto-approve", "--override-window"]);
    assert_eq!(no_reason.code, 1, "{}", no_reason.all());
    let run = ws.run(&[
        "apply",
        "stack",
        "--auto-approve",
        "--override-window",
        "--reason",
        "INC-42 checkout is down",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(ws.rendered("service/api.yaml").exists());
    let history = ws.run(&["history"]);
    assert!(
        history
            .stdout
            .contains("alice overrode the sync window to apply")
            && history.stdout.contains("INC-42 checkout is down"),
        "{}",
        history.stdout
    );
    let json = ws.run(&["history", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        rows.as_array().unwrap().last().unwrap()["actor"],
        "alice",
        "the apply records who ran it"
    );
    // Monday after 10:00 Berlin the window is open: no override needed.
    ws.env.retain(|(k, _)| k != "PLATFORMD_FAKE_NOW");
    ws.env
        .push(("PLATFORMD_FAKE_NOW".into(), "2026-11-30T09:00:00Z".into()));
    ws.stack(&[
        ("platform.kdl", &frozen_platform()),
        ("api.kdl", &API.replace("replicas 2", "replicas 3")),
    ]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
}

#[test]
fn a_bad_sync_window_is_refused_with_its_location() {
    let ws = Workspace::new();
    let platform = PLATFORM.replace(
        "    environment \"test\"\n",
        "    environment \"test\"\n    window \"deny\" schedule=\"0 25 * * fri\" duration=\"60h\" timezone=\"Europe/Berlinn\"\n",
    );
    ws.stack(&[("platform.kdl", &platform), ("api.kdl", API)]);
    let run = ws.run(&["plan", "stack"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("`schedule` \"0 25 * * fri\" is not valid: hour 25 is outside 0-23")
            && run.stderr.contains("--> stack/platform.kdl:3:28")
            && run
                .stderr
                .contains("\"Europe/Berlinn\" is not valid: `Europe/Berlinn` is not a time zone"),
        "{}",
        run.stderr
    );
}

/// The store holds plans, token hashes and commit messages, and rendered files can name internal
/// hosts: both are the user's only (directories 0700, files 0600), the store's write-ahead log
/// included (`docs/SECURITY.md`).
#[test]
fn the_store_and_rendered_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new();
    ws.copy_example();
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let mode =
        |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    let state = ws.path().join(".platformd");
    assert_eq!(mode(&state), 0o700);
    let db = state.join("platformd.db");
    assert_eq!(mode(&db), 0o600);
    for log in ["platformd.db-wal", "platformd.db-shm"] {
        if state.join(log).exists() {
            assert_eq!(mode(&state.join(log)), 0o600, "{log}");
        }
    }
    let rendered = [
        ws.path().join(".platformd/rendered"),
        ws.path().join("stack/.platformd/rendered"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("rendered files");
    let mut files = 0;
    let mut dirs = vec![rendered];
    while let Some(dir) = dirs.pop() {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files += 1;
            }
        }
    }
    assert!(files >= 30, "{files} rendered files");
}
