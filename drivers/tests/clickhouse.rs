#![cfg(feature = "kubernetes")]
//! `database` with `engine "clickhouse"` as an Altinity `ClickHouseInstallation`: made from a
//! real stack by the planner, checked against the operator's CRD (its kopium-generated types,
//! vendored in `test_support::crd`), with a clickhouse-backup sidecar and a backup CronJob
//! (valid by `kubernetes-validate --strict`) writing to the stack's bucket; applied by the
//! Kubernetes driver and observed without drift.

mod support;

use drivers::DesiredResource;
use drivers::kubernetes::Settings;
use serde_json::Value;
use test_support::crd::clickhouse_installation::ClickHouseInstallationSpec;
use test_support::kube_emulator::KubeEmulator;

const STACK: &str = r#"platform "data" {
    driver "local" { path ".platformd/rendered" }
    driver "kubernetes" { namespace "analytics"; clickhouse-keeper "keeper" }
}
team "data" { owner "data@acme.example" }
bucket "ch-backups" { team "data" }
database "events" {
    team "data"
    driver "kubernetes"
    engine "clickhouse" version="24.8"
    shards 2
    replicas 2
    resources cpu="4" memory="32Gi"
    storage-gb 500
    retention-days 90
    backup-retention-days 14
    backup bucket="ch-backups" schedule="0 2 * * *"
    user "ingest" password="aws-sm:prod/events/ingest"
    user "analyst" password="aws-sm:analytics/analyst"
}
"#;

fn events() -> (DesiredResource, f64) {
    let snapshot = support::snapshot(STACK);
    let r = &snapshot.resources["database/events"];
    assert_eq!(
        r.depends_on,
        ["bucket/ch-backups"],
        "the backup's bucket is an edge"
    );
    let mut d = support::desired("data", &snapshot)
        .into_iter()
        .find(|d| d.address == "database/events")
        .unwrap();
    d.wired = [
        (
            drivers::render::clickhouse::BACKUP_BUCKET.to_string(),
            "data-ch-backups".to_string(),
        ),
        (
            planner::resource_spec::BACKUP_REGION_WIRE.to_string(),
            "eu-west-1".to_string(),
        ),
    ]
    .into();
    (d, r.monthly_cost_usd)
}

#[test]
fn the_installation_uses_only_the_crds_fields_with_the_layout_keeper_and_backups() {
    let (d, monthly) = events();
    let docs = drivers::render::documents(&d, "analytics");
    let chi = &docs[0];
    assert_eq!(chi["apiVersion"], "clickhouse.altinity.com/v1");
    assert_eq!(chi["kind"], "ClickHouseInstallation");
    let typed: ClickHouseInstallationSpec = serde_json::from_value(chi["spec"].clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), chi["spec"]);
    let spec = &chi["spec"];
    let layout = &spec["configuration"]["clusters"][0]["layout"];
    assert_eq!(
        (
            layout["shardsCount"].as_u64(),
            layout["replicasCount"].as_u64()
        ),
        (Some(2), Some(2))
    );
    // Replicated: coordinated through the keeper (the local driver renders the default one).
    assert_eq!(
        spec["configuration"]["zookeeper"]["nodes"][0]["host"],
        "clickhouse-keeper"
    );
    let containers = spec["templates"]["podTemplates"][0]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers[0]["image"], "clickhouse/clickhouse-server:24.8");
    assert_eq!(containers[0]["resources"]["requests"]["memory"], "32Gi");
    let env = |name: &str| -> Value {
        containers[1]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        env("S3_BUCKET"),
        "data-ch-backups",
        "the bucket's real name, wired"
    );
    assert_eq!(env("BACKUPS_TO_KEEP_REMOTE"), "14");
    assert_eq!(env("S3_REGION"), "eu-west-1", "the bucket's region, wired");
    // Credentials are the pod's workload identity: no key is rendered.
    assert!(
        !containers[1]["env"].to_string().contains("ACCESS_KEY"),
        "{}",
        containers[1]["env"]
    );
    assert_eq!(
        spec["templates"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "500Gi"
    );
    assert_eq!(
        chi["metadata"]["annotations"]["platformd.dev/retention-days"],
        "90"
    );
    // Four pods of 4 vCPU / 32 GiB with 500 GB each.
    assert!(monthly > 1000.0, "{monthly}");

    // Each shard's backups go to a path of its own.
    assert_eq!(env("S3_PATH"), "data/events/shard-{shard}");
    let backup = &docs[1];
    assert_eq!(backup["kind"], "CronJob");
    assert_eq!(backup["spec"]["schedule"], "0 2 * * *");
    // Every shard is backed up, each through its first replica; one failure fails the job.
    let script =
        backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][2]
            .as_str()
            .unwrap();
    assert!(script.starts_with("set -e;"), "{script}");
    for host in ["chi-events-main-0-0", "chi-events-main-1-0"] {
        assert!(script.contains(host), "{host} in {script}");
    }
    assert!(!script.contains("chi-events-main-2-0"), "{script}");
    // As the cluster's first user, its password from the users Secret.
    assert!(
        script.contains("--password \"$CLICKHOUSE_PASSWORD\""),
        "{script}"
    );
    let backup_env =
        &backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        backup_env[0],
        serde_json::json!({ "name": "CLICKHOUSE_USER", "value": "ingest" })
    );
    assert_eq!(
        backup_env[1]["valueFrom"]["secretKeyRef"],
        serde_json::json!({ "name": "events-users", "key": "ingest" })
    );

    // The users: passwords from the users Secret, which an ExternalSecret fills by reference.
    let users = &spec["configuration"]["users"];
    assert_eq!(users["ingest/k8s_secret_password"], "events-users/ingest");
    assert_eq!(users["analyst/k8s_secret_password"], "events-users/analyst");
    assert_eq!(users["ingest/profile"], "default");
    let external = docs
        .iter()
        .find(|d| d["kind"] == "ExternalSecret")
        .expect("the users' ExternalSecret");
    assert_eq!(external["spec"]["target"]["name"], "events-users");
    assert_eq!(
        external["spec"]["data"],
        serde_json::json!([
            { "secretKey": "ingest", "remoteRef": { "key": "prod/events/ingest" } },
            { "secretKey": "analyst", "remoteRef": { "key": "analytics/analyst" } },
        ])
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.yaml");
    std::fs::write(&file, serde_json::to_string_pretty(backup).unwrap()).unwrap();
    support::kubernetes_validate(&[file]);
}

#[test]
fn the_kubernetes_driver_applies_the_installation_with_its_keeper_and_observes_no_drift() {
    let (d, _) = events();
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = support::emulator_driver(
        &emulator,
        &dir,
        Settings {
            namespace: Some("analytics".into()),
            clickhouse_keeper: Some("keeper".into()),
            ..Settings::default()
        },
    );
    let rt = support::runtime();
    let applied = support::apply_and_observe_without_drift(&rt, &driver, &d);
    assert_eq!(applied.outputs["host"], "clickhouse-events.analytics.svc");
    assert_eq!(applied.outputs["port"], "9000");
    let chi = emulator
        .get(
            "clickhouse.altinity.com",
            "clickhouseinstallations",
            "analytics",
            "events",
        )
        .expect("applied");
    assert_eq!(
        chi["spec"]["configuration"]["zookeeper"]["nodes"][0]["host"],
        "keeper"
    );
    assert!(
        emulator
            .get("batch", "cronjobs", "analytics", "events-backup")
            .is_some()
    );
}

#[test]
fn clickhouse_is_refused_on_aws_and_postgres_fields_are_refused_on_it() {
    let analysis = planner::analyze(vec![planner::StackFile {
        path: "platform.kdl".into(),
        text: r#"platform "data" {
    driver "aws" { region "eu-west-1" }
}
team "data" { owner "data@acme.example" }
database "events" {
    team "data"
    engine "clickhouse"
    size "db.r6g.large"
}
"#
        .into(),
    }]);
    let codes: Vec<&str> = analysis.diagnostics.iter().map(|d| d.code).collect();
    assert!(codes.contains(&"unsupported-kind"), "{codes:?}");
    assert!(codes.contains(&"wrong-arguments"), "{codes:?}");
    let text = analysis.render_diagnostics(planner::diagnostic::Colour::Never);
    assert!(text.contains("RDS has no ClickHouse engine"), "{text}");
    assert!(
        text.contains("`size` is not for a ClickHouse cluster"),
        "{text}"
    );
}
