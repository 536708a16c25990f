#![cfg(feature = "kubernetes")]
//! `job` as `batch/v1` Job (one-off) and CronJob (scheduled): made from a real stack by the
//! planner, valid against the Kubernetes schemas (`kubernetes-validate --strict`), placed on its
//! GPU pool, and applied by the Kubernetes driver, then observed without drift.

mod support;

use drivers::DesiredResource;
use drivers::kubernetes::Settings;
use serde_json::Value;
use test_support::kube_emulator::KubeEmulator;

const STACK: &str = r#"platform "ml" {
    driver "local" { path ".platformd/rendered" }
}
team "ml" { owner "ml@acme.example" }
gpu-pool "a100" {
    team "ml"
    accelerator "nvidia-a100"
    instance-type "p4d.24xlarge"
    nodes min=0 max=2
}
bucket "artifacts" { team "ml" }
job "train-ranker" {
    team "ml"
    image "ghcr.io/acme/ranker-train:2.1.0"
    command "python" "train.py" "--epochs=3"
    resources cpu="8" memory="64Gi"
    gpu-pool "a100" gpus=4
    env "ARTIFACTS" from="bucket/artifacts.url"
    env "WANDB_API_KEY" secret="aws-sm:ml/wandb"
    completions 1
    backoff-limit 2
    timeout "6h"
}
job "nightly-eval" {
    team "ml"
    image "ghcr.io/acme/ranker-eval:2.1.0"
    schedule "30 2 * * *"
    parallelism 2
    completions 4
}
"#;

fn desired() -> Vec<DesiredResource> {
    support::desired("ml", &support::snapshot(STACK))
        .into_iter()
        .filter(|d| d.kind == planner::model::Kind::Job)
        .map(|mut d| {
            d.wired = [("ARTIFACTS".to_string(), "s3://ml-artifacts".to_string())].into();
            d
        })
        .collect()
}

fn rendered(address: &str) -> Vec<Value> {
    let d = desired()
        .into_iter()
        .find(|d| d.address == address)
        .unwrap();
    drivers::render::documents(&d, "ml")
}

#[test]
fn a_one_off_job_is_a_job_on_its_gpu_pool_and_a_scheduled_one_a_cronjob() {
    let train = rendered("job/train-ranker");
    assert_eq!(train[0]["kind"], "Job");
    let spec = &train[0]["spec"];
    assert_eq!(spec["backoffLimit"], 2);
    assert_eq!(spec["activeDeadlineSeconds"], 6 * 3600);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["nodeSelector"]["platformd.dev/gpu-pool"], "a100");
    let container = &pod["containers"][0];
    assert_eq!(
        container["command"],
        serde_json::json!(["python", "train.py", "--epochs=3"])
    );
    assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], "4");
    assert_eq!(container["resources"]["requests"]["cpu"], "8");
    assert!(
        train.iter().any(|d| d["kind"] == "ExternalSecret"),
        "the secret env comes from an ExternalSecret"
    );
    let eval = rendered("job/nightly-eval");
    assert_eq!(eval[0]["kind"], "CronJob");
    assert_eq!(eval[0]["spec"]["schedule"], "30 2 * * *");
    assert_eq!(eval[0]["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(eval[0]["spec"]["jobTemplate"]["spec"]["parallelism"], 2);
    assert_eq!(eval[0]["spec"]["jobTemplate"]["spec"]["completions"], 4);
}

#[test]
fn job_manifests_pass_kubernetes_validate_strict() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for address in ["job/train-ranker", "job/nightly-eval"] {
        for (i, doc) in rendered(address)
            .iter()
            .filter(|d| d["apiVersion"] == "batch/v1")
            .enumerate()
        {
            let path = dir
                .path()
                .join(format!("{}-{i}.yaml", address.replace('/', "-")));
            // JSON is YAML.
            std::fs::write(&path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
            files.push(path);
        }
    }
    assert_eq!(files.len(), 2);
    support::kubernetes_validate(&files);
}

#[test]
fn the_kubernetes_driver_applies_jobs_and_observes_them_without_drift() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = support::emulator_driver(
        &emulator,
        &dir,
        Settings {
            namespace: Some("ml".into()),
            ..Settings::default()
        },
    );
    let rt = support::runtime();
    for d in desired() {
        support::apply_and_observe_without_drift(&rt, &driver, &d);
    }
    assert!(
        emulator
            .get("batch", "jobs", "ml", "train-ranker")
            .is_some()
    );
    assert!(
        emulator
            .get("batch", "cronjobs", "ml", "nightly-eval")
            .is_some()
    );
}
