//! End-to-end tests of the `platformd` binary: real processes, real git repositories, exit
//! codes and output as a user or CI sees them.

use std::path::Path;
use std::process::{Command, Output};
use test_support::git::GitRepo;

fn platformd(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_platformd"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("platformd runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

const PLATFORM: &str = r#"platform "shop" {
    environment "prod"
    driver "local" {
        path ".platformd/rendered"
    }
}

team "web" {
    owner "web-oncall@acme.example"
    budget monthly-usd=3000
}
"#;

fn service(name: &str, replicas: u32) -> String {
    format!(
        "service \"{name}\" {{\n    team \"web\"\n    image \"ghcr.io/acme/{name}:1.0.0\"\n    replicas {replicas}\n    env \"DATABASE_URL\" from=\"database/orders-db.url\"\n}}\n"
    )
}

const DATABASE: &str = "database \"orders-db\" {\n    team \"web\"\n    engine \"postgres\"\n    size \"db.t4g.medium\"\n}\n";
const TOPIC: &str = "topic \"old-events\" {\n    team \"web\"\n    partitions 3\n}\n";

/// Commit 1: api (2 replicas), a database and a topic. Commit 2: api at 4 replicas, a new
/// service, the topic removed.
fn two_commit_repo() -> GitRepo {
    let repo = GitRepo::init();
    repo.write("README.md", "state repo\n");
    repo.write("stack/platform.kdl", PLATFORM);
    repo.write("stack/services/api.kdl", &service("api", 2));
    repo.write("stack/data.kdl", &format!("{DATABASE}\n{TOPIC}"));
    repo.commit("initial stack");
    repo.write("stack/services/api.kdl", &service("api", 4));
    repo.write("stack/services/search.kdl", &service("search", 1));
    repo.write("stack/data.kdl", DATABASE);
    repo.commit("scale api, add search, drop old-events");
    repo
}

fn actions(json: &serde_json::Value) -> Vec<(String, String)> {
    json["resources"]
        .as_array()
        .expect("resources array")
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn validate_accepts_the_example_stack() {
    let out = platformd(&["validate", "platform-state-example"], repo_root());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("stack `acme-prod` is valid"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn validate_reports_errors_with_locations_and_exits_1() {
    let out = platformd(
        &[
            "validate",
            "planner/tests/fixtures/diagnostics/unknown-field",
        ],
        repo_root(),
    );
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("error[unknown-field]: unknown field `replica` in service `api`"),
        "{err}"
    );
    assert!(
        err.contains("--> planner/tests/fixtures/diagnostics/unknown-field/platform.kdl:15:5"),
        "{err}"
    );
    assert!(err.contains("help: did you mean `replicas`?"), "{err}");
}

#[test]
fn validate_json_lists_diagnostics_for_ci_annotations() {
    let out = platformd(
        &[
            "validate",
            "--format",
            "json",
            "planner/tests/fixtures/diagnostics/duplicate-address",
        ],
        repo_root(),
    );
    assert_eq!(code(&out), 1);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["valid"], false);
    let d = &doc["diagnostics"][0];
    assert_eq!(d["code"], "duplicate-address");
    assert_eq!(d["labels"].as_array().unwrap().len(), 2, "both locations");
    assert_eq!(
        d["labels"][1]["file"],
        "planner/tests/fixtures/diagnostics/duplicate-address/more/api.kdl"
    );
}

#[test]
fn pr_plan_between_two_commits_reports_actions_and_exit_2() {
    let repo = two_commit_repo();
    let out = platformd(
        &[
            "plan",
            "stack",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
            "--detailed-exitcode",
            "--format",
            "json",
        ],
        repo.path(),
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let acts = actions(&plan);
    let get = |a: &str| acts.iter().find(|(x, _)| x == a).map(|(_, y)| y.as_str());
    assert_eq!(get("service/api"), Some("update"));
    assert_eq!(get("service/search"), Some("create"));
    assert_eq!(get("topic/old-events"), Some("delete"));
    assert_eq!(get("database/orders-db"), Some("no-op"));
    let api = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "service/api")
        .unwrap();
    assert_eq!(api["changed_paths"], serde_json::json!(["replicas"]));
    assert_eq!(api["before"]["replicas"], 2);
    assert_eq!(api["after"]["replicas"], 4);
    assert_eq!(api["depends_on"], serde_json::json!(["database/orders-db"]));
    assert_eq!(plan["summary"]["create"], 1);
    assert_eq!(
        plan["made_against"]["base_revision"],
        repo.git(&["rev-parse", "HEAD~1"])
    );
    assert_eq!(
        plan["made_against"]["head_revision"],
        repo.git(&["rev-parse", "HEAD"])
    );
}

#[test]
fn pr_plan_defaults_head_to_the_working_tree_and_runs_from_inside_the_stack() {
    let repo = two_commit_repo();
    repo.write("stack/services/api.kdl", &service("api", 9));
    let out = platformd(
        &[
            "plan",
            "--base",
            "HEAD",
            "--format",
            "json",
            "--detailed-exitcode",
        ],
        &repo.join("stack"),
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["made_against"]["head_revision"], "working-tree");
    let changed: Vec<_> = actions(&plan)
        .into_iter()
        .filter(|(_, a)| a != "no-op")
        .collect();
    assert_eq!(changed, [("service/api".to_string(), "update".to_string())]);
}

#[test]
fn identical_revisions_plan_no_changes_and_exit_0() {
    let repo = two_commit_repo();
    let out = platformd(
        &[
            "plan",
            "stack",
            "--base",
            "HEAD",
            "--head",
            "HEAD",
            "--detailed-exitcode",
        ],
        repo.path(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no changes, 3 unchanged"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn budget_breach_exits_3_and_names_team_budget_and_costliest_resources() {
    let repo = two_commit_repo();
    repo.write(
        "stack/gpu.kdl",
        "gpu-pool \"big\" {\n    team \"web\"\n    accelerator \"nvidia-a100\"\n    instance-type \"p4d.24xlarge\"\n    nodes min=0 max=2\n}\n",
    );
    repo.commit("add an A100 pool");
    let out = platformd(
        &[
            "plan",
            "stack",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
            "--detailed-exitcode",
        ],
        repo.path(),
    );
    assert_eq!(code(&out), 3, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("Blocked by policy"), "{text}");
    assert!(
        text.contains("team `web` is over its monthly budget"),
        "{text}"
    );
    assert!(text.contains("against a budget of $3,000.00"), "{text}");
    assert!(text.contains("gpu-pool/big ($47,848.00)"), "{text}");
    // Blocked is exit 3 with or without --detailed-exitcode.
    let out = platformd(
        &["plan", "stack", "--base", "HEAD~1", "--head", "HEAD"],
        repo.path(),
    );
    assert_eq!(code(&out), 3);
}

#[test]
fn deleting_a_protected_database_is_blocked_until_allowed() {
    let repo = two_commit_repo();
    repo.write("stack/data.kdl", "");
    repo.write("stack/services/api.kdl", "");
    repo.write("stack/services/search.kdl", "");
    repo.commit("tear down");
    let args = [
        "plan",
        "stack",
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
        "--detailed-exitcode",
    ];
    let out = platformd(&args, repo.path());
    assert_eq!(code(&out), 3, "{}", stdout(&out));
    assert!(stdout(&out).contains(
        "BLOCKED: protected; deleting destroys it. Allow with --allow-destroy database/orders-db"
    ));
    let mut allowed = args.to_vec();
    allowed.extend(["--allow-destroy", "database/orders-db"]);
    let out = platformd(&allowed, repo.path());
    assert_eq!(code(&out), 2, "{}", stdout(&out));
}

#[test]
fn saved_plan_records_what_it_was_made_against() {
    let repo = two_commit_repo();
    let out_file = repo.join("plan.json");
    let out = platformd(
        &[
            "plan",
            "stack",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
            "--out",
            out_file.to_str().unwrap(),
        ],
        repo.path(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let saved: planner::Plan =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    assert_eq!(
        saved.made_against.head_revision.as_deref(),
        Some(repo.git(&["rev-parse", "HEAD"]).as_str())
    );
    assert_eq!(saved.made_against.state_generation, None);
    assert_eq!(saved.summary.create, 1);
}

#[test]
fn markdown_plan_is_a_pr_comment() {
    let repo = two_commit_repo();
    let out = platformd(
        &[
            "plan", "stack", "--base", "HEAD~1", "--head", "HEAD", "--format", "markdown",
        ],
        repo.path(),
    );
    assert_eq!(code(&out), 0);
    let md = stdout(&out);
    assert!(md.starts_with("### platformd plan: `shop` (prod)"), "{md}");
    assert!(md.contains("| 🟢 create | `service/search` |"), "{md}");
    assert!(
        md.contains("<details><summary><code>service/api</code>"),
        "{md}"
    );
}

#[test]
fn a_stack_that_did_not_exist_at_base_is_all_creates() {
    let repo = GitRepo::init();
    repo.write("README.md", "empty\n");
    repo.commit("empty repo");
    repo.write("stack/platform.kdl", PLATFORM);
    repo.write("stack/db.kdl", DATABASE);
    repo.commit("first stack");
    let out = platformd(
        &[
            "plan", "stack", "--base", "HEAD~1", "--head", "HEAD", "--format", "json",
        ],
        repo.path(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        actions(&plan),
        [("database/orders-db".to_string(), "create".to_string())]
    );
}

#[test]
fn an_invalid_head_revision_fails_with_diagnostics_and_exit_1() {
    let repo = two_commit_repo();
    repo.write("stack/services/api.kdl", "service \"api\" {\n    team \"web\"\n    image \"ghcr.io/acme/api:1\"\n    replicas -1\n}\n");
    repo.commit("broken");
    let out = platformd(
        &["plan", "stack", "--base", "HEAD~1", "--head", "HEAD"],
        repo.path(),
    );
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains("error[out-of-range]"), "{err}");
    assert!(err.contains("--> stack/services/api.kdl:4:14"), "{err}");
}

#[test]
fn an_unknown_base_revision_is_a_clear_error() {
    let repo = two_commit_repo();
    let out = platformd(&["plan", "stack", "--base", "no-such-branch"], repo.path());
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("cannot resolve git revision `no-such-branch`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plan_outside_a_git_repository_with_base_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("platform.kdl"), PLATFORM).unwrap();
    let out = platformd(&["plan", ".", "--base", "HEAD"], dir.path());
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("is not inside a git repository"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn graph_focus_shows_needs_and_blast_radius() {
    let out = platformd(
        &[
            "graph",
            "platform-state-example",
            "--focus",
            "database/orders-db",
        ],
        repo_root(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("database/orders-db [local]"), "{text}");
    assert!(text.contains("needs (0 resources):"), "{text}");
    assert!(
        text.contains("needed by (blast radius: 2 resources):"),
        "{text}"
    );
    assert!(
        text.contains("service/checkout-api (env DATABASE_URL)"),
        "{text}"
    );
    assert!(
        text.contains("service/storefront-web (env CHECKOUT_URL)"),
        "{text}"
    );
}

#[test]
fn graph_dot_is_graphviz_with_a_cluster_per_driver() {
    let out = platformd(
        &["graph", "platform-state-example", "--format", "dot"],
        repo_root(),
    );
    assert_eq!(code(&out), 0);
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph platform {"), "{dot}");
    assert!(dot.contains("label=\"local\""), "{dot}");
    assert!(
        dot.contains(
            "\"service/checkout-api\" -> \"database/orders-db\" [label=\"env DATABASE_URL\"];"
        ),
        "{dot}"
    );
    let out = platformd(
        &[
            "graph",
            "platform-state-example",
            "--focus",
            "databse/orders-db",
        ],
        repo_root(),
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("did you mean `database/orders-db`?"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_deny_policy_blocks_a_pull_request_plan_with_exit_3_in_every_format() {
    let repo = two_commit_repo();
    repo.write(
        "stack/policies.kdl",
        "policy \"no-public-buckets\" {\n    kinds \"bucket\"\n    deny \"self.public\" message=\"buckets are never public\"\n}\n",
    );
    repo.write(
        "stack/assets.kdl",
        "bucket \"assets\" {\n    team \"web\"\n    public #true\n}\n",
    );
    repo.commit("a public bucket");
    let args = ["plan", "stack", "--base", "HEAD~1", "--head", "HEAD"];
    let out = platformd(&args, repo.path());
    assert_eq!(code(&out), 3, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("no-public-buckets: bucket/assets: buckets are never public")
            && text.contains("at assets.kdl:1:1"),
        "{text}"
    );
    let out = platformd(&[&args[..], &["--format", "json"]].concat(), repo.path());
    assert_eq!(code(&out), 3);
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["policy"]["blocked"], true);
    assert_eq!(
        plan["policy"]["violations"][0]["addresses"][0],
        "bucket/assets"
    );
    let out = platformd(
        &[&args[..], &["--format", "markdown"]].concat(),
        repo.path(),
    );
    assert_eq!(code(&out), 3);
    assert!(
        stdout(&out).contains("**no-public-buckets**: bucket/assets: buckets are never public"),
        "{}",
        stdout(&out)
    );

    // Made private: the same policy passes.
    repo.write(
        "stack/assets.kdl",
        "bucket \"assets\" {\n    team \"web\"\n}\n",
    );
    repo.commit("private");
    let out = platformd(&args, repo.path());
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

/// A loopback server speaking the GitHub REST shapes for issue comments: list, create, update.
struct FakeGitHub {
    server: test_support::net::LoopbackServer,
    comments: std::sync::Arc<std::sync::Mutex<Vec<(u64, String)>>>,
}

impl FakeGitHub {
    fn start(token: &'static str) -> FakeGitHub {
        use axum::extract::{Path as UrlPath, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::{get, patch};
        type Comments = std::sync::Arc<std::sync::Mutex<Vec<(u64, String)>>>;
        let comments: Comments = Default::default();
        // A comment of someone else's, which must be left alone.
        comments
            .lock()
            .unwrap()
            .push((7, "LGTM, ship it".to_string()));
        let state = comments.clone();
        let authorized = move |h: &HeaderMap| {
            h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {token}"))
        };
        let server = test_support::net::LoopbackServer::start(1, move |listener| async move {
            let list = {
                move |State(c): State<Comments>, h: HeaderMap| async move {
                    if !authorized(&h) {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    let all: Vec<serde_json::Value> = c
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(id, body)| serde_json::json!({ "id": id, "body": body }))
                        .collect();
                    (StatusCode::OK, serde_json::Value::Array(all).to_string())
                }
            };
            let create = {
                move |State(c): State<Comments>, h: HeaderMap, body: String| async move {
                    if !authorized(&h) {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let mut c = c.lock().unwrap();
                    let id = 100 + c.len() as u64;
                    c.push((id, body["body"].as_str().unwrap().to_string()));
                    let url =
                        format!("https://github.example/acme/state/pull/12#issuecomment-{id}");
                    (
                        StatusCode::CREATED,
                        serde_json::json!({ "id": id, "html_url": url }).to_string(),
                    )
                }
            };
            let update = move |State(c): State<Comments>,
                               UrlPath((_, _, id)): UrlPath<(String, String, u64)>,
                               h: HeaderMap,
                               body: String| async move {
                if !authorized(&h) {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                let mut c = c.lock().unwrap();
                match c.iter_mut().find(|(i, _)| *i == id) {
                    Some(entry) => {
                        entry.1 = body["body"].as_str().unwrap().to_string();
                        (StatusCode::OK, serde_json::json!({ "id": id }).to_string())
                    }
                    None => (StatusCode::NOT_FOUND, String::new()),
                }
            };
            let app = axum::Router::new()
                .route(
                    "/repos/{owner}/{repo}/issues/{number}/comments",
                    get(list).post(create),
                )
                .route("/repos/{owner}/{repo}/issues/comments/{id}", patch(update))
                .with_state(state);
            let _ = axum::serve(listener, app).await;
        });
        FakeGitHub { server, comments }
    }
}

#[test]
fn post_comment_creates_the_plan_comment_once_then_updates_it_in_place() {
    let github = FakeGitHub::start("gh-secret-token");
    let repo = two_commit_repo();
    let post = |repo: &GitRepo| {
        Command::new(env!("CARGO_BIN_EXE_platformd"))
            .args([
                "plan",
                "stack",
                "--base",
                "HEAD~1",
                "--head",
                "HEAD",
                "--post-comment",
                "--github-repo",
                "acme/state",
                "--pr",
                "12",
            ])
            .current_dir(repo.path())
            .env("NO_COLOR", "1")
            .env("GITHUB_TOKEN", "gh-secret-token")
            .env(
                "GITHUB_API_URL",
                format!("http://127.0.0.1:{}", github.server.port),
            )
            .output()
            .unwrap()
    };
    let first = post(&repo);
    assert_eq!(
        code(&first),
        0,
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("posted the plan comment on acme/state#12")
    );
    let comments = github.comments.lock().unwrap().clone();
    assert_eq!(comments.len(), 2, "one new comment beside the reviewer's");
    assert!(
        comments[1].1.contains("### platformd plan"),
        "{}",
        comments[1].1
    );

    // Another push to the pull request: the same comment is updated, not a second one added.
    repo.write(
        "stack/services/search.kdl",
        "service \"search\" {\n    team \"web\"\n    image \"ghcr.io/acme/search:1.0.0\"\n    replicas 5\n}\n",
    );
    repo.commit("more search");
    let second = post(&repo);
    assert_eq!(
        code(&second),
        0,
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("updated the plan comment"));
    let comments = github.comments.lock().unwrap().clone();
    assert_eq!(comments.len(), 2);
    assert_eq!(
        comments[0].1, "LGTM, ship it",
        "someone else's comment is untouched"
    );
    assert!(comments[1].1.contains("replicas"), "{}", comments[1].1);
    // The token is never printed.
    assert!(!String::from_utf8_lossy(&second.stderr).contains("gh-secret-token"));
    assert!(!stdout(&second).contains("gh-secret-token"));
}

#[test]
fn cost_reports_the_plans_estimate_by_team_kind_and_resource() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-state-example");
    let dir = tempfile::tempdir().unwrap();
    let json = platformd(
        &["cost", example.to_str().unwrap(), "--format", "json"],
        dir.path(),
    );
    assert_eq!(code(&json), 0, "{}", String::from_utf8_lossy(&json.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    // The same figures as the plan's estimate (from an empty state, so its `after`).
    let plan = platformd(
        &["plan", example.to_str().unwrap(), "--format", "json"],
        dir.path(),
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(report["total_monthly_usd"], plan["cost"]["after"]);
    for team in plan["cost"]["teams"].as_array().unwrap() {
        let line = report["teams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["team"] == team["team"])
            .unwrap_or_else(|| panic!("team {} in the report", team["team"]));
        assert_eq!(line["monthly_usd"], team["after"], "{line}");
    }
    let kinds: f64 = report["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["monthly_usd"].as_f64().unwrap())
        .sum();
    assert!((kinds - report["total_monthly_usd"].as_f64().unwrap()).abs() < 0.05);
    // Costliest first.
    let resources = report["resources"].as_array().unwrap();
    assert!(resources[0]["monthly_usd"].as_f64() >= resources[1]["monthly_usd"].as_f64());

    let text = platformd(&["cost", example.to_str().unwrap()], dir.path());
    let text = stdout(&text);
    assert!(
        text.contains("Monthly estimate for acme-prod:")
            && text.contains("By team:")
            && text.contains("budget $25,000.00")
            && text.contains("Costliest resources:"),
        "{text}"
    );
    let markdown = platformd(
        &["cost", example.to_str().unwrap(), "--format", "markdown"],
        dir.path(),
    );
    assert!(stdout(&markdown).contains("| team | estimate | budget |"));
}

#[test]
fn cost_exits_3_when_a_team_is_over_its_budget() {
    let repo = two_commit_repo();
    repo.write(
        "stack/gpu.kdl",
        "gpu-pool \"big\" {\n    team \"web\"\n    accelerator \"nvidia-a100\"\n    instance-type \"p4d.24xlarge\"\n    nodes min=0 max=2\n}\n",
    );
    let out = platformd(&["cost", "stack"], repo.path());
    assert_eq!(code(&out), 3, "{}", stdout(&out));
    assert!(stdout(&out).contains("OVER BUDGET"), "{}", stdout(&out));
}

#[test]
fn templates_lists_the_catalog_in_text_json_and_markdown_and_plans_name_the_template() {
    let golden = repo_root().join("planner/tests/fixtures/templates/golden");
    let golden = golden.to_str().unwrap();
    let text = platformd(&["templates", golden], repo_root());
    assert_eq!(code(&text), 0, "{}", stderr(&text));
    assert!(
        stdout(&text).contains("web-service v1 — A stateless HTTP service")
            && stdout(&text).contains("web-service v2")
            && stdout(&text).contains("image     image     required"),
        "{}",
        stdout(&text)
    );
    let json = platformd(&["templates", golden, "--format", "json"], repo_root());
    let catalog: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(catalog["stack"], "golden");
    assert_eq!(catalog["templates"][1]["version"], "2");
    assert_eq!(catalog["templates"][1]["uses"], 1);
    assert_eq!(catalog["templates"][1]["at"], "templates/web.kdl:13:1");
    let md = platformd(&["templates", golden, "--format", "markdown"], repo_root());
    assert!(
        stdout(&md).contains("## `web-service` version 2")
            && stdout(&md).contains("```kdl\nuse \"web-service\" version=\"2\""),
        "{}",
        stdout(&md)
    );

    let plan = platformd(&["plan", golden, "--format", "json"], repo_root());
    let plan: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
    let checkout = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "service/checkout")
        .unwrap();
    assert_eq!(checkout["template"]["template"], "web-service");
    assert_eq!(checkout["template"]["at"], "web/apps.kdl:1:1");

    // A broken product file: reported (exit 1), and the catalog is still listed.
    let dir = tempfile::tempdir().unwrap();
    test_support::copy_dir(Path::new(golden), dir.path());
    std::fs::write(
        dir.path().join("web/broken.kdl"),
        "use \"web-service\" version=\"9\" name=\"x\" team=\"web\" {\n}\n",
    )
    .unwrap();
    let broken = platformd(&["templates", dir.path().to_str().unwrap()], repo_root());
    assert_eq!(code(&broken), 1);
    assert!(stderr(&broken).contains("unknown-template-version"));
    assert!(stdout(&broken).contains("web-service v2"));
}

#[test]
fn a_resource_over_its_own_budget_makes_plan_and_cost_exit_3() {
    let stack = repo_root().join("planner/tests/fixtures/plans/resource-budget-breach/head");
    let stack = stack.to_str().unwrap();
    let plan = platformd(&["plan", stack], repo_root());
    assert_eq!(code(&plan), 3, "{}", stdout(&plan));
    assert!(stdout(&plan).contains("database/warehouse is over its monthly cost budget"));
    let dir = tempfile::tempdir().unwrap();
    let cost = platformd(
        &["--state-dir", dir.path().to_str().unwrap(), "cost", stack],
        repo_root(),
    );
    assert_eq!(code(&cost), 3, "{}", stdout(&cost));
    let line = stdout(&cost)
        .lines()
        .find(|l| l.contains("database/warehouse"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(line.contains("budget $600.00  OVER BUDGET"), "{line}");
}
