//! Data-driven plan tests: `fixtures/plans/<name>/base/` is the prior state, `head/` the desired
//! one, optional `allow-destroy.txt` lists allowed destroys. The text and Markdown renderings are
//! snapshots; the JSON plan's actions are asserted per fixture below.

use planner::plan::{Action, PlanOptions};
use planner::{Plan, Snapshot};
use std::path::Path;

fn fixture(name: &str) -> Plan {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/plans")
        .join(name);
    let load = |part: &str| -> Option<Snapshot> {
        let files = planner::load::read_dir(&dir.join(part)).unwrap();
        if files.is_empty() {
            return None;
        }
        let analysis = planner::analyze(files);
        assert!(
            !analysis.has_errors(),
            "{name}/{part}: {}",
            analysis.render_diagnostics(planner::diagnostic::Colour::Never)
        );
        analysis.snapshot
    };
    let head = load("head").expect("head exists");
    let base = load("base").unwrap_or_else(|| Snapshot::empty(&head.stack));
    let allow_destroy = std::fs::read_to_string(dir.join("allow-destroy.txt"))
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default();
    planner::plan::plan(
        &base,
        &head,
        &PlanOptions {
            allow_destroy,
            ..Default::default()
        },
    )
}

fn actions(plan: &Plan) -> Vec<(String, Action)> {
    plan.resources
        .iter()
        .map(|r| (r.address.clone(), r.action))
        .collect()
}

fn snapshot_renderings(name: &str, plan: &Plan) {
    insta::assert_snapshot!(format!("{name}.text"), planner::render::text(plan, false));
    insta::assert_snapshot!(
        format!("{name}.md"),
        planner::render::markdown(plan, planner::render::MARKDOWN_LIMIT)
    );
}

fn find<'a>(plan: &'a Plan, address: &str) -> &'a planner::plan::ResourceChange {
    plan.resources
        .iter()
        .find(|r| r.address == address)
        .unwrap_or_else(|| panic!("{address} not in plan"))
}

#[test]
fn create_update_delete_in_apply_order() {
    let plan = fixture("create-update-delete");
    snapshot_renderings("create-update-delete", &plan);
    let a = actions(&plan);
    let pos = |addr: &str| a.iter().position(|(x, _)| x == addr).unwrap();
    assert_eq!(find(&plan, "service/api").action, Action::Update);
    assert_eq!(
        find(&plan, "service/api").changed_paths,
        ["replicas", "env.LOG_LEVEL"]
    );
    assert_eq!(find(&plan, "service/search").action, Action::Create);
    assert_eq!(find(&plan, "topic/legacy-events").action, Action::Delete);
    assert_eq!(
        find(&plan, "service/legacy-consumer").action,
        Action::Delete
    );
    // Creates after their dependencies; deletes last, dependents first.
    assert!(pos("topic/order-events") < pos("service/search"));
    assert!(pos("database/orders-db") < pos("service/api"));
    assert!(pos("service/legacy-consumer") < pos("topic/legacy-events"));
    assert!(pos("service/search") < pos("service/legacy-consumer"));
    assert_eq!(
        (
            plan.summary.create,
            plan.summary.update,
            plan.summary.delete
        ),
        (1, 1, 2)
    );
    assert_eq!(plan.exit_code(true), 2);
    assert!(!plan.policy.blocked);
}

#[test]
fn replacements_and_protected_resources_are_blocked_without_an_allow() {
    let plan = fixture("replace-and-protected");
    snapshot_renderings("replace-and-protected", &plan);
    let db = find(&plan, "database/orders-db");
    assert_eq!(db.action, Action::Replace);
    assert!(db.blocked, "protected database replacement must be blocked");
    assert_eq!(db.changes[0].path, "engine");
    assert!(db.changes[0].forces_replacement.is_some());
    let bucket = find(&plan, "bucket/uploads");
    assert_eq!((bucket.action, bucket.blocked), (Action::Delete, true));
    let topic = find(&plan, "topic/order-events");
    assert_eq!(
        topic.action,
        Action::Replace,
        "fewer partitions forces replacement"
    );
    let pool = find(&plan, "gpu-pool/batch");
    assert_eq!((pool.action, pool.blocked), (Action::Replace, false));
    assert!(plan.policy.blocked);
    assert_eq!(plan.policy.violations[0].policy, "protected-delete");
    assert_eq!(plan.exit_code(false), 3);
}

#[test]
fn allow_destroy_unblocks_named_resources() {
    let plan = fixture("allowed-destroy");
    assert!(!plan.policy.blocked, "{:?}", plan.policy);
    assert_eq!(plan.summary.blocked, 0);
    assert_eq!(plan.exit_code(true), 2);
}

#[test]
fn budget_breach_blocks_and_names_team_budget_and_top_resources() {
    let plan = fixture("budget-breach");
    snapshot_renderings("budget-breach", &plan);
    assert!(plan.policy.blocked);
    let v = &plan.policy.violations[0];
    assert_eq!(v.policy, "budget");
    assert!(v.message.contains("team `ml`"), "{}", v.message);
    assert!(v.message.contains("$2,000.00"), "{}", v.message);
    assert!(v.message.contains("gpu-pool/l4"), "{}", v.message);
    let ml = plan.cost.teams.iter().find(|t| t.team == "ml").unwrap();
    assert!(ml.over_budget && ml.delta > 0.0);
    // The pool's cost is split with the endpoint on it, never counted twice.
    let total: f64 = plan.resources.iter().map(|r| r.cost.after).sum();
    assert!((total - plan.cost.after).abs() < 0.01);
    assert_eq!(plan.exit_code(true), 3);
}

#[test]
fn ignored_fields_do_not_make_changes() {
    let plan = fixture("ignore-changes");
    let api = find(&plan, "service/api");
    assert_eq!(api.action, Action::NoOp);
    assert_eq!(api.ignored_paths, ["replicas"]);
    assert_eq!(plan.exit_code(true), 0);
}

#[test]
fn deletes_run_dependents_first() {
    let plan = fixture("delete-order");
    snapshot_renderings("delete-order", &plan);
    let deletes: Vec<&str> = plan
        .resources
        .iter()
        .filter(|r| r.action == Action::Delete)
        .map(|r| r.address.as_str())
        .collect();
    let mut sorted = deletes.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "pipeline/events-to-db",
            "service/reader",
            "topic/order-events"
        ]
    );
    let pos = |a: &str| deletes.iter().position(|d| *d == a).unwrap();
    assert!(
        pos("pipeline/events-to-db") < pos("topic/order-events"),
        "{deletes:?}"
    );
    assert!(
        !plan.policy.blocked,
        "reader declared protect #false, topics are unprotected"
    );
}

#[test]
fn no_changes_is_exit_zero_even_with_detailed_exitcode() {
    let plan = fixture("no-changes");
    snapshot_renderings("no-changes", &plan);
    assert!(!plan.summary.has_changes);
    assert_eq!(plan.exit_code(true), 0);
}

#[test]
fn plan_from_empty_state_creates_everything_and_keeps_secrets_as_references() {
    let plan = fixture("from-empty");
    snapshot_renderings("from-empty", &plan);
    assert!(plan.resources.iter().all(|r| r.action == Action::Create));
    let json = planner::render::json(&plan);
    assert!(
        json.contains("\"secret\":\"aws-sm:staging/api/stripe\""),
        "{json}"
    );
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["format_version"], "1");
    for key in [
        "address",
        "kind",
        "driver",
        "action",
        "reason",
        "before",
        "after",
        "changed_paths",
        "depends_on",
    ] {
        assert!(parsed["resources"][0].get(key).is_some(), "missing {key}");
    }
    for key in ["drift", "policy", "cost", "summary"] {
        assert!(parsed.get(key).is_some(), "missing {key}");
    }
    // A saved plan round-trips.
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn markdown_stays_under_the_comment_limit_and_says_it_was_truncated() {
    let mut text = String::from("platform \"big\" {\n    driver \"local\"\n}\nteam \"t\"\n");
    for i in 0..3000 {
        text.push_str(&format!(
            "service \"svc-{i}\" {{\n    team \"t\"\n    image \"ghcr.io/acme/svc-{i}:1.0.{i}\"\n    env \"A\" \"{}\"\n}}\n",
            "x".repeat(40)
        ));
    }
    let analysis = planner::analyze(vec![planner::StackFile {
        path: "platform.kdl".into(),
        text,
    }]);
    let snapshot = analysis.snapshot.expect("valid");
    let plan = planner::plan::plan(&Snapshot::empty("big"), &snapshot, &PlanOptions::default());
    let md = planner::render::markdown(&plan, planner::render::MARKDOWN_LIMIT);
    assert!(
        md.chars().count() <= planner::render::MARKDOWN_LIMIT,
        "{}",
        md.len()
    );
    assert!(md.contains("Truncated"), "truncation must be noted");
    assert!(md.starts_with("### platformd plan"));
    assert!(md.contains("3000 to create"));
}

#[test]
fn a_resource_over_its_own_cost_budget_blocks_the_plan_naming_it() {
    let plan = fixture("resource-budget-breach");
    snapshot_renderings("resource-budget-breach", &plan);
    assert!(plan.policy.blocked);
    let over: Vec<&planner::plan::Violation> = plan
        .policy
        .violations
        .iter()
        .filter(|v| v.policy == "budget")
        .collect();
    assert_eq!(over.len(), 1, "{:?}", plan.policy);
    assert_eq!(over[0].addresses, ["database/warehouse"]);
    assert!(
        over[0]
            .message
            .starts_with("database/warehouse is over its monthly cost budget")
            && over[0].message.contains("$600.00"),
        "{}",
        over[0].message
    );
    // The bucket is within its budget.
    assert!(
        !plan
            .policy
            .violations
            .iter()
            .any(|v| v.addresses.contains(&"bucket/exports".to_string()))
    );
    assert_eq!(plan.exit_code(true), 3);
}

#[test]
fn a_changed_one_off_job_runs_again_and_a_scheduled_one_updates_in_place() {
    let plan = fixture("jobs");
    snapshot_renderings("jobs", &plan);
    let train = find(&plan, "job/train-ranker");
    assert_eq!(train.action, Action::Replace, "{}", train.reason);
    assert!(
        train.reason.contains("runs again as a new job"),
        "{}",
        train.reason
    );
    let eval = find(&plan, "job/nightly-eval");
    assert_eq!(eval.action, Action::Update);
    // 365/12 runs a month of 30 minutes on the default 500m CPU / 1Gi.
    assert!(
        eval.cost.after > 0.0 && eval.cost.after < 5.0,
        "{}",
        eval.cost.after
    );
    // One six-hour run on 4 of the pool's 8 A100s is charged to the job, not also to the pool.
    let pool = find(&plan, "gpu-pool/a100");
    assert!(train.cost.after > 0.0);
    let total: f64 = plan.resources.iter().map(|r| r.cost.after).sum();
    assert!((total - plan.cost.after).abs() < 0.01);
    assert!(pool.cost.after > train.cost.after);
}

/// A replaced database and a service whose port changes: every resource wired to one of their
/// outputs is updated, with the value known after apply; one wired only to an unchanged bucket
/// stays unchanged.
#[test]
fn consumers_of_changing_outputs_are_planned_with_values_known_after_apply() {
    let plan = fixture("known-after-apply");
    snapshot_renderings("known-after-apply", &plan);
    assert_eq!(
        actions(&plan),
        [
            ("bucket/reports".to_string(), Action::NoOp),
            ("database/orders-db".to_string(), Action::Replace),
            ("service/api".to_string(), Action::Update),
            ("service/exporter".to_string(), Action::NoOp),
            ("service/web".to_string(), Action::Update),
        ]
    );
    let api = find(&plan, "service/api");
    let wired = api
        .changes
        .iter()
        .find(|c| c.path == "env.DATABASE_URL")
        .expect("the wired env is a change");
    assert!(wired.known_after_apply && wired.after.is_none());
    assert_eq!(
        wired.before,
        Some(serde_json::json!({"from": "database/orders-db.url"}))
    );
    let web = find(&plan, "service/web");
    assert_eq!(web.changed_paths, ["env.API_URL"]);
    assert!(
        web.reason.contains("service/api.url changes port"),
        "{}",
        web.reason
    );
    let json = planner::render::json(&plan);
    assert!(json.contains("\"known_after_apply\": true"), "{json}");
    assert_eq!(plan.exit_code(true), 2);
}

/// A driver setting that changes what its resources render (the local driver's `namespace`)
/// plans an update of every resource it affects, at `driver.namespace`; one that changes
/// nothing made (a testing knob) plans nothing. Consumers of outputs made from it are known
/// after apply.
#[test]
fn a_changed_driver_setting_updates_what_it_affects() {
    let plan = fixture("driver-setting-update");
    snapshot_renderings("driver-setting-update", &plan);
    assert!(plan.resources.iter().all(|r| r.action == Action::Update));
    let api = find(&plan, "service/api");
    assert_eq!(api.changed_paths, ["driver.namespace"]);
    assert_eq!(api.reason, "driver `local` setting `namespace` changes");
    let web = find(&plan, "service/web");
    assert_eq!(web.changed_paths, ["driver.namespace", "env.API_URL"]);
    assert!(web.changes[1].known_after_apply);
}

/// A setting that puts resources elsewhere (the local driver's `path`) plans each as a replace
/// that moves it, made in the new place first; a protected bucket is blocked like any replace.
#[test]
fn a_driver_setting_that_moves_resources_plans_moves_and_blocks_protected_ones() {
    let plan = fixture("driver-setting-move");
    snapshot_renderings("driver-setting-move", &plan);
    assert!(
        plan.resources
            .iter()
            .all(|r| r.action == Action::Replace && r.moves)
    );
    let bucket = find(&plan, "bucket/reports");
    assert!(bucket.blocked, "{}", bucket.reason);
    assert!(!find(&plan, "service/api").blocked);
    assert_eq!(plan.exit_code(true), 3);
    let json = planner::render::json(&plan);
    assert!(json.contains("\"moves\": true"), "{json}");
}

/// AWS resources cannot follow a change of region: the plan is blocked, naming them.
#[test]
fn a_driver_setting_its_resources_cannot_follow_blocks_the_plan() {
    let plan = fixture("driver-setting-refused");
    let violation = plan
        .policy
        .violations
        .iter()
        .find(|v| v.policy == "driver-setting")
        .expect("a driver-setting violation");
    assert_eq!(violation.addresses, ["bucket/reports"]);
    assert!(
        violation.message.contains("setting `region`"),
        "{}",
        violation.message
    );
    assert_eq!(find(&plan, "service/api").action, Action::NoOp);
    assert_eq!(plan.exit_code(false), 3);
}

/// `moved`, `removed` and `import` in a pull request's plan: a rename the driver can make in
/// place is an update (no delete, no create); one it cannot is a move, made anew first; a
/// removal forgets a protected bucket without a block; an import adopts instead of creating.
#[test]
fn moved_removed_and_imported_resources_are_planned_as_such() {
    let plan = fixture("moved-removed-import");
    snapshot_renderings("moved-removed-import", &plan);
    assert_eq!(
        actions(&plan),
        [
            ("bucket/logs".to_string(), Action::Import),
            ("job/reports".to_string(), Action::Replace),
            ("service/orders-api".to_string(), Action::Update),
            ("bucket/old-logs".to_string(), Action::Forget),
        ]
    );
    let api = find(&plan, "service/orders-api");
    assert_eq!(api.moved_from.as_deref(), Some("service/api"));
    let job = find(&plan, "job/reports");
    assert!(
        job.moves && job.reason.contains("cannot rename"),
        "{}",
        job.reason
    );
    assert_eq!(
        find(&plan, "bucket/logs").import_id.as_deref(),
        Some("bucket/logs.yaml")
    );
    assert!(!plan.policy.blocked, "{:?}", plan.policy);
    assert_eq!(plan.summary.import, 1);
    assert_eq!(plan.summary.forget, 1);
}

/// An endpoint behind the gateway admits the keys of exactly the teams whose workloads wire it:
/// a new caller adds its team's key (an update of the endpoint, in the plan), a caller gone
/// takes it away, and the reference never shows the key itself.
#[test]
fn an_endpoint_s_callers_follow_the_graph() {
    let stack = |callers: &str| {
        format!(
            r#"platform "shop" {{ driver "local" {{ path ".platformd/rendered" }} }}
team "ml" {{ owner "ml@acme.example" }}
team "web" {{
    owner "web@acme.example"
    llm-key secret="aws-sm:prod/web/llm-key"
}}
team "ops" {{
    owner "ops@acme.example"
    llm-key secret="vault:ops/llm-key"
}}
gpu-pool "l4" {{
    team "ml"
    accelerator "nvidia-l4"
    instance-type "g6.xlarge"
    nodes min=0 max=2
}}
ai-endpoint "chat" {{
    team "ml"
    model "meta-llama/Llama-3.1-8B-Instruct"
    runtime "vllm"
    gpu-pool "l4" gpus=1
}}
{callers}"#
        )
    };
    let web = r#"service "web" {
    team "web"
    image "ghcr.io/acme/web:1.0.0"
    env "CHAT_URL" from="ai-endpoint/chat.url"
}
"#;
    let ops = r#"job "triage" {
    team "ops"
    image "ghcr.io/acme/triage:1.0.0"
    env "CHAT_URL" from="ai-endpoint/chat.url"
}
"#;
    let snapshot = |text: String| -> Snapshot {
        let analysis = planner::analyze(vec![planner::StackFile {
            path: "platform.kdl".into(),
            text,
        }]);
        assert!(
            !analysis.has_errors(),
            "{}",
            analysis.render_diagnostics(planner::diagnostic::Colour::Never)
        );
        analysis.snapshot.unwrap()
    };
    let callers = |s: &Snapshot| -> serde_json::Value {
        let spec: serde_json::Value =
            serde_json::from_str(s.resources["ai-endpoint/chat"].spec.as_str()).unwrap();
        spec["callers"].clone()
    };
    let one = snapshot(stack(web));
    assert_eq!(
        callers(&one),
        serde_json::json!({ "web": "aws-sm:prod/web/llm-key" })
    );
    let two = snapshot(stack(&format!("{web}{ops}")));
    assert_eq!(
        callers(&two),
        serde_json::json!({ "web": "aws-sm:prod/web/llm-key", "ops": "vault:ops/llm-key" })
    );
    let plan = planner::plan::plan(&one, &two, &PlanOptions::default());
    let chat = find(&plan, "ai-endpoint/chat");
    assert_eq!(chat.action, Action::Update);
    assert!(
        chat.changes.iter().any(|c| c.path == "callers.ops"),
        "{:?}",
        chat.changes
    );
    let none = snapshot(stack(""));
    assert!(
        callers(&none).is_null(),
        "nobody calls it: no key is accepted"
    );
}

/// A canary's pods cost and take GPUs like any others: a 10 % canary of a two-replica endpoint
/// adds one pod's GPUs to its estimate and to its pool's demand.
#[test]
fn a_canary_is_counted_in_cost_and_gpu_capacity() {
    let stack = |canary: &str| {
        format!(
            r#"platform "shop" {{ driver "local" {{ path ".platformd/rendered" }} }}
team "ml" {{ owner "ml@acme.example" }}
gpu-pool "l4" {{
    team "ml"
    accelerator "nvidia-l4"
    instance-type "g6.xlarge"
    nodes min=0 max=2
}}
ai-endpoint "chat" {{
    team "ml"
    model "meta-llama/Llama-3.1-8B-Instruct"
    runtime "vllm"
    gpu-pool "l4" gpus=1
    replicas 2
    {canary}
}}
"#
        )
    };
    let analyse = |text: String| {
        planner::analyze(vec![planner::StackFile {
            path: "platform.kdl".into(),
            text,
        }])
    };
    let endpoint_cost = |a: &planner::Analysis| -> f64 {
        let snapshot = a.snapshot.as_ref().unwrap();
        let plan = planner::plan::plan(
            &Snapshot::empty(&snapshot.stack),
            snapshot,
            &PlanOptions::default(),
        );
        find(&plan, "ai-endpoint/chat").cost.after
    };
    let without = analyse(stack(""));
    let with = analyse(stack(r#"canary revision="a1b2c3d" weight-percent=10"#));
    let (before, after) = (endpoint_cost(&without), endpoint_cost(&with));
    assert!(
        (after - before * 1.5).abs() < 0.01,
        "three pods instead of two: {before} → {after}"
    );
    // Two nodes of one GPU: two stable pods fit, a canary beside them does not.
    let capacity = |a: &planner::Analysis| a.diagnostics.iter().any(|d| d.code == "gpu-capacity");
    assert!(!capacity(&without));
    assert!(capacity(&with));
}
