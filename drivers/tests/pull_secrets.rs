#![cfg(feature = "kubernetes")]
//! `image-pull-secrets`, a Kubernetes driver setting added in three files (its descriptor,
//! `Settings`, and the driver's documents; `docs/ARCHITECTURE.md`, "Adding a driver setting"):
//! every pod the driver makes pulls its images with the named Secrets, the manifests stay
//! valid (`kubernetes-validate --strict`), and the applied objects show no drift. A name that
//! is not a Secret name is refused where it is written.

mod support;

use drivers::kubernetes::Settings;
use drivers::{DesiredResource, Driver};
use serde_json::{Value, json};
use test_support::kube_emulator::KubeEmulator;

const STACK: &str = r#"platform "shop" {
    driver "local" { path ".platformd/rendered" }
}
team "web" { owner "web@acme.example" }
service "api" {
    team "web"
    image "ghcr.io/acme/api:1.4.0"
    replicas 2
    port 8080
}
job "reindex" {
    team "web"
    image "ghcr.io/acme/reindex:1.4.0"
}
job "nightly-report" {
    team "web"
    image "ghcr.io/acme/report:1.4.0"
    schedule "0 3 * * *"
}
"#;

fn settings() -> Settings {
    Settings::from_map(
        &[(
            "image-pull-secrets".to_string(),
            "ghcr-pull, mirror-pull".to_string(),
        )]
        .into(),
    )
}

/// The pod specs of `docs`: a Deployment's and a Job's template, a CronJob's job template's.
fn pod_specs(docs: &[Value]) -> Vec<(String, Value)> {
    docs.iter()
        .filter_map(|d| {
            let pod = match d["kind"].as_str()? {
                "Deployment" | "Job" => &d["spec"]["template"]["spec"],
                "CronJob" => &d["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                _ => return None,
            };
            Some((d["kind"].as_str()?.to_string(), pod.clone()))
        })
        .collect()
}

fn workloads() -> Vec<DesiredResource> {
    support::desired("shop", &support::snapshot(STACK))
}

#[test]
fn every_pod_pulls_with_the_named_secrets_and_the_manifests_stay_valid() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = support::emulator_driver(&emulator, &dir, settings());
    let without = support::emulator_driver(&emulator, &dir, Settings::default());
    let mut kinds = Vec::new();
    let mut files = Vec::new();
    for d in workloads() {
        let docs = driver.expected(&d).unwrap();
        let docs = docs.as_array().unwrap();
        for (kind, pod) in pod_specs(docs) {
            assert_eq!(
                pod["imagePullSecrets"],
                json!([{ "name": "ghcr-pull" }, { "name": "mirror-pull" }]),
                "{} ({kind})",
                d.address
            );
            kinds.push(kind);
        }
        // Without the setting, nothing is added.
        let plain = without.expected(&d).unwrap();
        for (kind, pod) in pod_specs(plain.as_array().unwrap()) {
            assert!(pod.get("imagePullSecrets").is_none(), "{kind}");
        }
        for (i, doc) in docs.iter().enumerate() {
            if doc["apiVersion"] == "apps/v1" || doc["apiVersion"] == "batch/v1" {
                let path = dir.path().join(format!("{}-{i}.json", d.name));
                std::fs::write(&path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
                files.push(path);
            }
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["CronJob", "Deployment", "Job"]);
    support::kubernetes_validate(&files);
}

#[test]
fn applied_pods_keep_their_pull_secrets_without_drift() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = support::emulator_driver(&emulator, &dir, settings());
    let rt = support::runtime();
    let api = workloads()
        .into_iter()
        .find(|d| d.address == "service/api")
        .unwrap();
    support::apply_and_observe_without_drift(&rt, &driver, &api);
    let live = emulator.get("apps", "deployments", "shop", "api").unwrap();
    assert_eq!(
        live["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"],
        "ghcr-pull"
    );
}

#[test]
fn a_name_that_is_not_a_secret_name_is_refused_where_it_is_written() {
    let stack = STACK.replace(
        "driver \"local\" { path \".platformd/rendered\" }",
        "driver \"kubernetes\" {\n        image-pull-secrets \"ghcr-pull,Registry_Creds\"\n    }",
    );
    let files = vec![planner::StackFile {
        path: "platform.kdl".into(),
        text: stack,
    }];
    let analysis = planner::analyze(files);
    let found: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.code == "invalid-value")
        .collect();
    assert_eq!(found.len(), 1, "{:#?}", analysis.diagnostics);
    let rendered = analysis.render_diagnostics(planner::diagnostic::Colour::Never);
    assert!(rendered.contains("image-pull-secrets"), "{rendered}");
    assert!(rendered.contains("platform.kdl:3:28"), "{rendered}");
}
