//! The plan is the whole truth (`docs/PLAN_FORMAT.md`, `docs/APPLY.md`): end to end through the
//! `platformd` binary with the embedded local driver — exit codes and closed pipes, outputs
//! known only after apply, driver settings that plan, `moved`, `removed` and `import`.

mod support;

use daemon::store::{IntentResult, JournalAction};
use std::process::Stdio;
use support::Workspace;

/// Runs `args` with its standard output closed before it writes a byte (`platformd … | head`
/// once `head` has what it wants): the command must end quietly, by SIGPIPE or on its own,
/// never with a panic.
fn run_into_a_closed_pipe(ws: &Workspace, args: &[&str]) {
    let mut child = ws
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("platformd runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("platformd ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    let quiet = out.status.success() || out.status.signal() == Some(libc::SIGPIPE);
    assert!(
        quiet && !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{args:?}: {:?}\n{stderr}",
        out.status
    );
}

#[test]
fn every_command_survives_a_closed_pipe() {
    let ws = Workspace::new();
    ws.copy_example();
    apply_ok(&ws, &[]);
    for args in [
        &["validate", "stack"][..],
        &["plan", "stack", "--format", "json"],
        &["graph", "stack"],
        &["cost", "stack"],
        &["templates", "stack"],
        &["drift", "stack"],
        &["history"],
        &["--help"],
    ] {
        run_into_a_closed_pipe(&ws, args);
    }
}

#[test]
fn usage_errors_exit_1_and_help_and_version_exit_0() {
    let ws = Workspace::new();
    for args in [
        &["plan", "--no-such-flag"][..],
        &["no-such-command"],
        &[],
        &["daemon", "--interval", "soon", "--repo", "."],
    ] {
        let run = ws.run(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(run.stderr.contains("error"), "{args:?}: {}", run.all());
    }
    for args in [&["--help"][..], &["--version"], &["plan", "--help"]] {
        let run = ws.run(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.all());
        assert!(!run.stdout.is_empty(), "{args:?}");
    }
}

const PLATFORM: &str = r#"platform "shop" {
    environment "test"
    driver "local" {
        path ".platformd/rendered"
        namespace "shop"
    }
}

team "web" {
    owner "web-oncall@acme.example"
}
"#;

fn database(engine: &str) -> String {
    format!(
        "database \"orders-db\" {{\n    team \"web\"\n    engine \"{engine}\"\n    size \"db.t4g.medium\"\n    protect #false\n}}\n"
    )
}

/// The stack of a database (`engine`) and the service wired to it.
fn orders_stack(ws: &Workspace, engine: &str) {
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        ("data.kdl", &database(engine)),
        ("api.kdl", API),
    ]);
}

/// `platformd apply stack --auto-approve` with `extra`, which must succeed.
fn apply_ok(ws: &Workspace, extra: &[&str]) {
    let mut args = vec!["apply", "stack", "--auto-approve"];
    args.extend_from_slice(extra);
    let run = ws.run(&args);
    assert_eq!(run.code, 0, "{args:?}: {}", run.all());
}

const API: &str = "service \"api\" {\n    team \"web\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    env \"DATABASE_URL\" from=\"database/orders-db.url\"\n}\n";

/// A database replaced by another engine: its consumer is planned as an update whose URL is
/// known after apply (text and JSON), and the new URL reaches it in the same apply.
#[test]
fn a_replaced_databases_url_reaches_its_consumer_in_the_same_apply() {
    let ws = Workspace::new();
    orders_stack(&ws, "postgres");
    apply_ok(&ws, &[]);
    assert!(
        ws.read_rendered("service/api.yaml")
            .contains("value: postgres://")
    );

    orders_stack(&ws, "mysql");
    let plan = ws.run(&["plan", "stack", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(
        plan.stdout.contains(
            "~ env.DATABASE_URL = {\"from\":\"database/orders-db.url\"} → (known after apply)"
        ),
        "{}",
        plan.stdout
    );
    let json = ws.run(&["plan", "stack", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("a JSON plan");
    let api = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "service/api")
        .expect("the consumer is in the plan");
    assert_eq!(api["action"], "update");
    assert_eq!(api["changes"][0]["known_after_apply"], true);

    apply_ok(&ws, &[]);
    let rendered = ws.read_rendered("service/api.yaml");
    assert!(
        rendered.contains("value: mysql://orders_db_app@orders-db."),
        "{rendered}"
    );
    let again = ws.run(&["plan", "stack", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", again.all());
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
}

/// A consumer whose update failed while its producer was replaced keeps the old URL; drift
/// compares it with the producer's outputs as they are now, so it is found and corrected.
#[test]
fn drift_compares_a_consumer_with_the_outputs_its_producers_have_now() {
    let ws = Workspace::new();
    orders_stack(&ws, "postgres");
    apply_ok(&ws, &[]);
    orders_stack(&ws, "mysql");
    ws.local_driver(&[("inject-faults", "service/api=permanent")]);
    let failed = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    assert!(
        ws.read_rendered("service/api.yaml")
            .contains("value: postgres://")
    );

    orders_stack(&ws, "mysql");
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(drift.stdout.contains("service/api"), "{}", drift.stdout);
    let corrected = ws.run(&["apply", "stack", "--refresh", "--auto-approve"]);
    assert_eq!(corrected.code, 0, "{}", corrected.all());
    assert!(
        ws.read_rendered("service/api.yaml")
            .contains("value: mysql://")
    );
    let clean = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(clean.code, 0, "{}", clean.all());
}

const WEB: &str = "service \"web\" {\n    team \"web\"\n    image \"ghcr.io/acme/web:1.0.0\"\n    env \"API_URL\" from=\"service/api.url\"\n}\n";

/// The local driver's `namespace` is part of what it renders and of its outputs: a change plans
/// an update of every resource and the wired URL as known after apply, and once applied there
/// is no drift and no change left. Its `path` moves the files: each is written in the new
/// directory, then removed from the old one.
#[test]
fn driver_settings_are_planned_and_applied_with_no_drift_left() {
    let ws = Workspace::new();
    let files = |platform: &str| {
        ws.stack(&[
            ("platform.kdl", platform),
            ("data.kdl", &database("postgres")),
            ("api.kdl", API),
            ("web.kdl", WEB),
        ])
    };
    files(PLATFORM);
    apply_ok(&ws, &[]);

    let renamed = PLATFORM.replace("namespace \"shop\"", "namespace \"shop-v2\"");
    files(&renamed);
    let plan = ws.run(&["plan", "stack", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(
        plan.stdout.contains("3 to update")
            && plan
                .stdout
                .contains("~ driver.namespace = \"shop\" → \"shop-v2\"")
            && plan.stdout.contains(
                "~ env.API_URL      = {\"from\":\"service/api.url\"} → (known after apply)"
            ),
        "{}",
        plan.stdout
    );
    apply_ok(&ws, &[]);
    let web = ws.read_rendered("service/web.yaml");
    assert!(
        web.contains("value: http://api.shop-v2.svc.cluster.local:80"),
        "{web}"
    );
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 0, "{}", drift.all());

    let moved = renamed.replace(".platformd/rendered", ".platformd/v2");
    files(&moved);
    let plan = ws.run(&["plan", "stack"]);
    assert!(
        plan.stdout
            .contains("+/- service/api [local] will be moved")
            && plan.stdout.contains("3 to replace"),
        "{}",
        plan.stdout
    );
    apply_ok(&ws, &[]);
    for file in [
        "service/api.yaml",
        "service/web.yaml",
        "database/orders-db.yaml",
    ] {
        assert!(
            !ws.rendered(file).exists(),
            "{file} is left in the old path"
        );
        assert!(
            ws.path().join(".platformd/v2").join(file).exists(),
            "{file} in the new path"
        );
    }
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
}

fn named_service(name: &str, extra: &str) -> String {
    format!(
        "service \"{name}\" {{\n    team \"web\"\n    image \"ghcr.io/acme/{name}:1.0.0\"\n{extra}}}\n"
    )
}

/// `moved`: a rename is planned as one resource renamed, not a delete and a create; the local
/// driver renames its file; the store keeps the resource under its new address; a consumer's
/// wiring follows.
#[test]
fn a_moved_resource_is_renamed_with_no_delete() {
    let ws = Workspace::new();
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        ("api.kdl", &named_service("api", "")),
        (
            "web.kdl",
            &named_service("web", "    env \"API_URL\" from=\"service/api.url\"\n"),
        ),
    ]);
    apply_ok(&ws, &[]);

    let renamed = named_service("orders-api", "").replace("orders-api:1.0.0", "api:1.0.0");
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        (
            "api.kdl",
            &format!("{renamed}\nmoved from=\"service/api\" to=\"service/orders-api\"\n"),
        ),
        (
            "web.kdl",
            &named_service(
                "web",
                "    env \"API_URL\" from=\"service/orders-api.url\"\n",
            ),
        ),
    ]);
    let plan = ws.run(&["plan", "stack", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("a JSON plan");
    let actions: Vec<(String, String)> = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("service/orders-api".into(), "update".into()))
            && !actions.iter().any(|(_, a)| a == "delete" || a == "create"),
        "{actions:?}"
    );
    let text = ws.run(&["plan", "stack"]);
    assert!(
        text.stdout.contains(
            "~ service/orders-api [local] will be updated in place (renamed from service/api)"
        ),
        "{}",
        text.stdout
    );
    apply_ok(&ws, &[]);
    assert!(!ws.rendered("service/api.yaml").exists());
    let moved = ws.read_rendered("service/orders-api.yaml");
    assert!(
        moved.contains("platformd.dev/address: service/orders-api"),
        "{moved}"
    );
    assert!(
        ws.read_rendered("service/web.yaml")
            .contains("http://orders-api.shop.svc.cluster.local"),
        "the consumer follows the new address"
    );
    let store = ws.store();
    assert!(store.resource("service/api").unwrap().is_none());
    assert!(store.resource("service/orders-api").unwrap().is_some());
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
}

const LOGS: &str = "bucket \"logs\" {\n    team \"web\"\n}\n";

/// `removed`: a protected bucket let go is not deleted and not blocked; its file stays without
/// platformd's marks, and nothing is left in the store or found as drift.
#[test]
fn a_removed_resource_is_forgotten_with_nothing_deleted() {
    let ws = Workspace::new();
    ws.stack(&[("platform.kdl", PLATFORM), ("logs.kdl", LOGS)]);
    apply_ok(&ws, &[]);

    ws.stack(&[
        ("platform.kdl", PLATFORM),
        ("logs.kdl", "removed \"bucket/logs\"\n"),
    ]);
    let plan = ws.run(&["plan", "stack", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(
        plan.stdout.contains("1 to forget")
            && plan
                .stdout
                .contains("x bucket/logs [local] will no longer be managed (removed)"),
        "{}",
        plan.stdout
    );
    apply_ok(&ws, &[]);
    let left = ws.read_rendered("bucket/logs.yaml");
    assert!(!left.contains("app.kubernetes.io/managed-by"), "{left}");
    assert!(ws.store().resource("bucket/logs").unwrap().is_none());
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
}

/// `import`: a file that exists and is not platformd's is refused at apply, naming the import
/// that adopts it; with the import it is adopted (not recreated) and brought to its
/// declaration.
#[test]
fn an_existing_object_is_refused_then_imported() {
    let ws = Workspace::new();
    let existing = "apiVersion: platformd.dev/v1\nkind: Bucket\nmetadata:\n  name: logs\n  labels:\n    owner: ops\nspec:\n  note: made by hand\n";
    std::fs::create_dir_all(ws.rendered("bucket")).unwrap();
    std::fs::write(ws.rendered("bucket/logs.yaml"), existing).unwrap();
    ws.stack(&[("platform.kdl", PLATFORM), ("logs.kdl", LOGS)]);
    let refused = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused
            .all()
            .contains("adopt it with `import \"bucket/logs\" id=\"bucket/logs.yaml\"`"),
        "{}",
        refused.all()
    );
    assert_eq!(
        std::fs::read_to_string(ws.rendered("bucket/logs.yaml")).unwrap(),
        existing,
        "the file was not touched"
    );

    ws.stack(&[
        ("platform.kdl", PLATFORM),
        (
            "logs.kdl",
            &format!("{LOGS}\nimport \"bucket/logs\" id=\"bucket/logs.yaml\"\n"),
        ),
    ]);
    let plan = ws.run(&["plan", "stack"]);
    assert!(
        plan.stdout.contains("1 to import")
            && plan.stdout.contains(
                "<= bucket/logs [local] will be imported (id `bucket/logs.yaml`), then updated to its declaration"
            ),
        "{}",
        plan.stdout
    );
    apply_ok(&ws, &[]);
    let adopted = ws.read_rendered("bucket/logs.yaml");
    assert!(
        adopted.contains("platformd.dev/address: bucket/logs"),
        "{adopted}"
    );
    let tally = support::Tally::of(&ws.path().join(".platformd")).expect("a store");
    assert_eq!(
        tally
            .intents(Some(JournalAction::Import), IntentResult::Ok)
            .len(),
        1,
        "journaled as an import"
    );
    assert!(
        tally
            .intents(Some(JournalAction::Create), IntentResult::Ok)
            .is_empty(),
        "not created"
    );
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
}

const TOPIC: &str = "topic \"events\" {\n    team \"web\"\n    partitions 3\n}\n";

/// `--target`: only the target and what it needs are applied (a service, the service it is
/// wired to, that one's database), the rest waits; the revision is not recorded as applied in
/// full until a plain apply. `--replace` replaces what nothing forced, its consumers known after
/// apply, and a protected resource only when allowed. An address that names nothing is refused.
#[test]
fn targeted_and_replacing_applies_do_only_what_they_name() {
    let ws = Workspace::new();
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        (
            "data.kdl",
            &database("postgres").replace("    protect #false\n", ""),
        ),
        ("api.kdl", API),
        ("web.kdl", WEB),
        ("topic.kdl", TOPIC),
    ]);
    let unknown = ws.run(&["plan", "stack", "--target", "service/wbe"]);
    assert_eq!(unknown.code, 1, "{}", unknown.all());
    assert!(
        unknown
            .stderr
            .contains("service/wbe is neither declared nor applied")
            && unknown.stderr.contains("service/web"),
        "{}",
        unknown.stderr
    );
    let plan = ws.run(&["plan", "stack", "--target", "service/web"]);
    assert!(
        plan.stdout.contains("Plan for shop (test): 3 to create")
            && plan
                .stdout
                .contains("Targeting is in effect: only service/web"),
        "{}",
        plan.stdout
    );
    let applied = ws.run(&[
        "apply",
        "stack",
        "--target",
        "service/web",
        "--auto-approve",
    ]);
    assert_eq!(applied.code, 0, "{}", applied.all());
    for made in [
        "service/web.yaml",
        "service/api.yaml",
        "database/orders-db.yaml",
    ] {
        assert!(ws.rendered(made).exists(), "{made}");
    }
    assert!(!ws.rendered("topic/events.yaml").exists(), "not targeted");
    let store = ws.store();
    assert_eq!(
        store.applied_revision().unwrap(),
        None,
        "not applied in full"
    );
    let history = ws.run(&["history", "--format", "json"]);
    assert!(
        history.stdout.contains("\"targeted\""),
        "{}",
        history.stdout
    );
    let rest = ws.run(&["plan", "stack"]);
    assert!(
        rest.stdout.contains("1 to create") && rest.stdout.contains("+ topic/events"),
        "{}",
        rest.stdout
    );
    apply_ok(&ws, &[]);
    assert!(ws.store().applied_revision().unwrap().is_some());

    let replace = ws.run(&["plan", "stack", "--replace", "service/api"]);
    assert!(
        replace
            .stdout
            .contains("-/+ service/api [local] must be replaced (replaced on request (--replace))")
            && replace
                .stdout
                .contains("~ env.API_URL = {\"from\":\"service/api.url\"} → (known after apply)"),
        "{}",
        replace.stdout
    );
    let applied = ws.run(&[
        "apply",
        "stack",
        "--replace",
        "service/api",
        "--auto-approve",
    ]);
    assert_eq!(applied.code, 0, "{}", applied.all());
    let tally = support::Tally::of(&ws.path().join(".platformd")).expect("a store");
    assert_eq!(
        tally
            .intents(Some(JournalAction::Replace), IntentResult::Ok)
            .len(),
        1
    );
    let protected = ws.run(&[
        "apply",
        "stack",
        "--replace",
        "database/orders-db",
        "--auto-approve",
    ]);
    assert_eq!(protected.code, 3, "{}", protected.all());
    let allowed = ws.run(&[
        "apply",
        "stack",
        "--replace",
        "database/orders-db",
        "--allow-destroy",
        "database/orders-db",
        "--auto-approve",
    ]);
    assert_eq!(allowed.code, 0, "{}", allowed.all());
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
}

/// `platformd import ADDRESS ID`: the one object is adopted and applied; nothing else in the
/// stack changes.
#[test]
fn the_import_command_adopts_one_object_and_applies_nothing_else() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.rendered("bucket")).unwrap();
    std::fs::write(
        ws.rendered("bucket/logs.yaml"),
        "apiVersion: platformd.dev/v1\nkind: Bucket\nmetadata:\n  name: logs\n",
    )
    .unwrap();
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        ("logs.kdl", LOGS),
        ("topic.kdl", TOPIC),
    ]);
    let undeclared = ws.run(&["import", "bucket/other", "bucket/other.yaml", "stack"]);
    assert_eq!(undeclared.code, 1, "{}", undeclared.all());
    assert!(
        undeclared.stderr.contains("bucket/other is not declared"),
        "{}",
        undeclared.stderr
    );
    let run = ws.run(&[
        "import",
        "bucket/logs",
        "bucket/logs.yaml",
        "stack",
        "--auto-approve",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("<= bucket/logs [local] will be imported"),
        "{}",
        run.stdout
    );
    assert!(
        ws.read_rendered("bucket/logs.yaml")
            .contains("platformd.dev/address: bucket/logs")
    );
    assert!(!ws.rendered("topic/events.yaml").exists());
    let rest = ws.run(&["plan", "stack"]);
    assert!(
        rest.stdout.contains("1 to create") && rest.stdout.contains("+ topic/events"),
        "{}",
        rest.stdout
    );
}
