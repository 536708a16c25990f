//! The example stack's policies (`platform-state-example/policies.kdl`, shipped as written):
//! each has a resource that passes and one that breaks it, and a `deny` finding blocks the plan
//! while a `warn` finding does not.

use planner::load::StackFile;
use planner::model::PolicyLevel;
use planner::plan::PlanOptions;
use planner::policy::PolicyFinding;
use planner::{Snapshot, analyze};
use std::path::Path;

fn example_policies() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-state-example/policies.kdl"),
    )
    .expect("the example stack ships policies.kdl")
}

/// The example policies over `resources`, on a platform in `environment`.
fn stack(environment: &str, resources: &str) -> planner::Analysis {
    let platform = format!(
        "platform \"acme\" {{\n    environment \"{environment}\"\n    driver \"local\" {{\n        path \".platformd/rendered\"\n    }}\n}}\n\nteam \"data\" {{\n    owner \"data@acme.example\"\n}}\n"
    );
    analyze(vec![
        StackFile {
            path: "platform.kdl".into(),
            text: platform,
        },
        StackFile {
            path: "policies.kdl".into(),
            text: example_policies(),
        },
        StackFile {
            path: "resources.kdl".into(),
            text: resources.into(),
        },
    ])
}

fn findings(environment: &str, resources: &str) -> Vec<PolicyFinding> {
    let analysis = stack(environment, resources);
    assert!(
        !analysis.has_errors(),
        "{}",
        analysis.render_diagnostics(planner::diagnostic::Colour::Never)
    );
    analysis.snapshot.expect("valid").policy_findings
}

/// (policy, environment, passing resource, breaking resource, level, message start)
const CASES: &[(&str, &str, &str, &str, PolicyLevel, &str)] = &[
    (
        "no-public-buckets",
        "prod",
        "bucket \"b\" {\n    team \"data\"\n    public #true\n    labels public-access=\"approved\"\n}\n",
        "bucket \"b\" {\n    team \"data\"\n    public #true\n}\n",
        PolicyLevel::Deny,
        "buckets are private",
    ),
    (
        "gpu-pools-spot-outside-prod",
        "staging",
        "gpu-pool \"p\" {\n    team \"data\"\n    accelerator \"nvidia-l4\"\n    instance-type \"g6.xlarge\"\n    nodes min=0 max=2\n    capacity \"spot\"\n}\n",
        "gpu-pool \"p\" {\n    team \"data\"\n    accelerator \"nvidia-l4\"\n    instance-type \"g6.xlarge\"\n    nodes min=0 max=2\n    capacity \"on-demand\"\n}\n",
        PolicyLevel::Deny,
        "GPU pools outside prod run on spot capacity",
    ),
    (
        "databases-backed-up",
        "staging",
        "database \"d\" {\n    team \"data\"\n    engine \"postgres\" version=\"16\"\n    size \"db.t4g.medium\"\n    backup-retention-days 7\n}\n",
        "database \"d\" {\n    team \"data\"\n    engine \"postgres\" version=\"16\"\n    size \"db.t4g.medium\"\n    backup-retention-days 3\n}\n",
        PolicyLevel::Deny,
        "databases keep at least 7 days of backups",
    ),
    (
        "databases-backed-up",
        "prod",
        "database \"d\" {\n    team \"data\"\n    engine \"postgres\" version=\"16\"\n    size \"db.t4g.medium\"\n    high-availability #true\n}\n",
        "database \"d\" {\n    team \"data\"\n    engine \"postgres\" version=\"16\"\n    size \"db.t4g.medium\"\n}\n",
        PolicyLevel::Warn,
        "a production database without high-availability",
    ),
];

#[test]
fn each_example_policy_passes_a_compliant_resource_and_finds_a_breaking_one() {
    for (policy, environment, passing, breaking, level, message) in CASES {
        assert_eq!(
            findings(environment, passing),
            [],
            "{policy} in {environment} passes:\n{passing}"
        );
        let found = findings(environment, breaking);
        assert_eq!(found.len(), 1, "{policy}: {found:?}");
        let f = &found[0];
        assert_eq!(&f.policy, policy);
        assert_eq!(f.level, *level);
        assert!(f.message.starts_with(message), "{}", f.message);
        assert_eq!(
            f.location, "resources.kdl:1:1",
            "the resource's declaration"
        );
    }
}

#[test]
fn a_gpu_pool_on_demand_is_allowed_in_prod() {
    let on_demand = CASES[1].3;
    assert_eq!(findings("prod", on_demand), []);
}

#[test]
fn deny_findings_block_the_plan_and_warnings_do_not() {
    let plan = |environment: &str, resources: &str| {
        let head = stack(environment, resources).snapshot.expect("valid");
        planner::plan::plan(&Snapshot::empty("acme"), &head, &PlanOptions::default())
    };
    let denied = plan("prod", CASES[0].3);
    assert!(denied.policy.blocked);
    assert_eq!(denied.policy.violations[0].policy, "no-public-buckets");
    assert_eq!(
        denied.policy.violations[0].location.as_deref(),
        Some("resources.kdl:1:1")
    );
    let text = planner::render::text(&denied, false);
    assert!(
        text.contains("✗ no-public-buckets: bucket/b: buckets are private")
            && text.contains("(at resources.kdl:1:1)"),
        "{text}"
    );
    let markdown = planner::render::markdown(&denied, planner::render::MARKDOWN_LIMIT);
    assert!(
        markdown.contains("**Blocked by policy.**")
            && markdown.contains("> - **no-public-buckets**: bucket/b: buckets are private")
            && markdown.contains("(`resources.kdl:1:1`)"),
        "{markdown}"
    );
    let json = serde_json::to_value(&denied).unwrap();
    assert_eq!(
        json["policy"]["violations"][0]["location"],
        "resources.kdl:1:1"
    );

    let warned = plan("prod", CASES[3].3);
    assert!(!warned.policy.blocked);
    assert_eq!(warned.policy.warnings[0].policy, "databases-backed-up");
}
