//! `platformd` with the Kubernetes driver, end to end against the API-server emulator (test
//! support): apply, an empty second plan, drift and its correction, removal, GPU pools as
//! Karpenter NodePools. Objects are read back from the emulator, never from platformd.

mod support;

use api::ApplyStatus;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use support::{Tally, Workspace};
use test_support::kube_emulator::KubeEmulator;

const PLATFORM: &str = r#"platform "shop" {
    environment "test"
    driver "kubernetes" {
        context "emulator"
        namespace "shop"
        node-class "gpu"
        kafka-cluster "events"
    }
}

team "web" {
    owner "web-oncall@acme.example"
    llm-key secret="aws-sm:prod/web/llm-key"
}
"#;

const WORKLOADS: &str = r#"gpu-pool "l4" {
    team "web"
    accelerator "nvidia-l4"
    instance-type "g6.xlarge"
    nodes min=0 max=4
    capacity "spot"
    idle-shutdown-after "2h"
}

ai-endpoint "assistant" {
    team "web"
    model "meta-llama/Llama-3.1-8B-Instruct" revision="main"
    runtime "vllm"
    gpu-pool "l4" gpus=1
    replicas 1
}

topic "orders" {
    team "web"
    partitions 6
}

database "orders-db" {
    team "web"
    engine "postgres" version="16"
    size "db.r6g.large"
    storage-gb 50
    high-availability #true
    backup-retention-days 14
}
"#;

fn api(replicas: u32) -> String {
    format!(
        "service \"api\" {{\n    team \"web\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    replicas {replicas}\n    port 8080\n    env \"ASSISTANT_URL\" from=\"ai-endpoint/assistant.url\"\n    env \"DATABASE_URL\" from=\"database/orders-db.url\"\n    autoscale min=2 max=6 cpu-percent=70\n}}\n"
    )
}

fn workspace(emulator: &KubeEmulator, with_api: bool) -> Workspace {
    let mut ws = Workspace::new();
    let kubeconfig = ws.path().join("kubeconfig");
    std::fs::write(&kubeconfig, emulator.kubeconfig()).unwrap();
    ws.env
        .push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    stack(&ws, with_api);
    ws
}

fn stack(ws: &Workspace, with_api: bool) {
    let api = if with_api { api(2) } else { String::new() };
    ws.stack(&[
        ("platform.kdl", PLATFORM),
        ("a.kdl", &format!("{WORKLOADS}{api}")),
    ]);
}

#[test]
fn a_stack_is_applied_kept_and_pruned_on_a_cluster() {
    let emulator = KubeEmulator::start();
    let ws = workspace(&emulator, true);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());

    let deployment = emulator
        .get("apps", "deployments", "shop", "api")
        .expect("api");
    assert_eq!(deployment["spec"]["replicas"], 2);
    // The endpoint's URL comes from its Service in the cluster, wired into the service.
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    let url = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "ASSISTANT_URL")
        .unwrap()["value"]
        .clone();
    assert!(
        emulator.get("", "services", "shop", "assistant").is_some(),
        "a Service"
    );
    // Through the gateway, which checks the caller's team key and counts its tokens; never
    // the runtime's own Service.
    assert_eq!(url, "http://ai-gateway.shop.svc.cluster.local/v1");
    let endpoint = emulator
        .get("apps", "deployments", "shop", "assistant")
        .expect("assistant");
    let pod = &endpoint["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["platformd.dev/gpu-pool"], "l4");
    let pool = emulator
        .get("karpenter.sh", "nodepools", "", "l4")
        .expect("a NodePool");
    assert_eq!(
        pool["spec"]["template"]["metadata"]["labels"]["platformd.dev/gpu-pool"],
        "l4"
    );
    assert_eq!(pool["spec"]["limits"]["nvidia.com/gpu"], "4");
    assert_eq!(pool["spec"]["disruption"]["consolidateAfter"], "2h");
    assert_eq!(
        pool["spec"]["template"]["spec"]["nodeClassRef"]["name"],
        "gpu"
    );
    let requirements = pool["spec"]["template"]["spec"]["requirements"].to_string();
    assert!(
        requirements.contains("\"spot\"") && requirements.contains("g6.xlarge"),
        "{requirements}"
    );
    assert!(
        emulator
            .get("kafka.strimzi.io", "kafkatopics", "shop", "orders")
            .is_some()
    );
    assert!(
        emulator
            .get("autoscaling", "horizontalpodautoscalers", "shop", "api")
            .is_some()
    );
    for (group, plural, ns, name) in [
        ("apps", "deployments", "shop", "api"),
        ("karpenter.sh", "nodepools", "", "l4"),
    ] {
        let managers = emulator.managers(group, plural, ns, name);
        assert_eq!(
            managers.keys().collect::<Vec<_>>(),
            ["platformd"],
            "{plural}/{name}"
        );
    }

    let plan = ws.run(&["plan", "stack", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "a second plan is empty: {}", plan.all());
    // The store keeps exactly the objects applied for each resource.
    let inventory: Vec<String> = ws
        .store()
        .inventory("service/api")
        .unwrap()
        .iter()
        .map(|o| format!("{}/{}", o.kind, o.name))
        .collect();
    assert_eq!(
        inventory,
        [
            "Deployment/api",
            "Service/api",
            "HorizontalPodAutoscaler/api"
        ]
    );

    // What reached the cluster passes the official schemas (built-in kinds; CRDs have none).
    let manifests = ws.path().join("applied");
    let dir = manifests.join("service");
    std::fs::create_dir_all(&dir).unwrap();
    for (group, plural) in [
        ("apps", "deployments"),
        ("", "services"),
        ("autoscaling", "horizontalpodautoscalers"),
    ] {
        for ((_, name), object) in emulator.list(group, plural) {
            let file = dir.join(format!("{plural}-{name}.yaml"));
            std::fs::write(file, serde_json::to_string_pretty(&object).unwrap()).unwrap();
        }
    }
    let validated = support::kubernetes_validate(&manifests);
    assert_eq!(validated.code, 0, "{}", validated.all());

    // Scaled by hand: drift, then corrected.
    emulator.edit("apps", "deployments", "shop", "api", "kubectl-scale", |d| {
        d["spec"]["replicas"] = json!(9);
    });
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift
            .stdout
            .contains("Deployment/api: spec.replicas: applied 2 → live 9"),
        "{}",
        drift.stdout
    );
    let fix = ws.run(&["apply", "stack", "--refresh", "--auto-approve"]);
    assert_eq!(fix.code, 0, "{}", fix.all());
    let deployment = emulator.get("apps", "deployments", "shop", "api").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 0);

    // Removed from the stack: its objects go, and nothing else.
    stack(&ws, false);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(emulator.get("apps", "deployments", "shop", "api").is_none());
    assert!(emulator.get("", "services", "shop", "api").is_none());
    assert!(
        emulator
            .get("autoscaling", "horizontalpodautoscalers", "shop", "api")
            .is_none()
    );
    assert!(
        emulator
            .get("apps", "deployments", "shop", "assistant")
            .is_some()
    );
    assert!(
        emulator
            .get("karpenter.sh", "nodepools", "", "l4")
            .is_some()
    );
}

#[test]
fn a_kind_the_cluster_cannot_serve_is_refused_at_plan_time() {
    let emulator = KubeEmulator::start();
    let ws = workspace(&emulator, false);
    std::fs::write(
        ws.path().join("stack/b.kdl"),
        "bucket \"exports\" {\n    team \"web\"\n}\n\ndatabase \"legacy\" {\n    team \"web\"\n    engine \"mysql\" version=\"8.0\"\n    size \"db.t4g.medium\"\n}\n",
    )
    .unwrap();
    let run = ws.run(&["plan", "stack"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("error[unsupported-kind]"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--> stack/b.kdl:1:1"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the default driver `kubernetes` does not support it"),
        "{}",
        run.stderr
    );
    assert!(
        emulator.requests().is_empty(),
        "planning never calls the cluster"
    );
}

/// Against a real cluster when `PLATFORMD_TEST_KUBECONFIG` names a kubeconfig (its current
/// context; a throwaway namespace is used and removed).
#[test]
fn a_real_cluster_when_one_is_configured() {
    let Ok(kubeconfig) = std::env::var("PLATFORMD_TEST_KUBECONFIG") else {
        eprintln!("skipped: set PLATFORMD_TEST_KUBECONFIG to run against a real cluster");
        return;
    };
    let ws = Workspace::new();
    let namespace = format!("platformd-test-{}", std::process::id());
    let platform = format!(
        "platform \"shop\" {{\n    environment \"test\"\n    driver \"kubernetes\" {{\n        namespace \"{namespace}\"\n    }}\n}}\n\nteam \"web\" {{\n    owner \"web-oncall@acme.example\"\n}}\n"
    );
    let mut ws = ws;
    ws.env.push(("KUBECONFIG".into(), kubeconfig.clone()));
    let service = "service \"hello\" {\n    team \"web\"\n    image \"registry.k8s.io/pause:3.10\"\n    replicas 1\n    port 8080\n}\n";
    ws.stack(&[("platform.kdl", &platform), ("a.kdl", service)]);
    let created = std::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            &kubeconfig,
            "create",
            "namespace",
            &namespace,
        ])
        .status();
    assert!(
        created.is_ok_and(|s| s.success()),
        "kubectl create namespace"
    );
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    let plan = ws.run(&["plan", "stack", "--detailed-exitcode"]);
    ws.stack(&[("platform.kdl", &platform)]);
    let removed = ws.run(&["apply", "stack", "--auto-approve"]);
    let _ = std::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            &kubeconfig,
            "delete",
            "namespace",
            &namespace,
            "--wait=false",
        ])
        .status();
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert_eq!(removed.code, 0, "{}", removed.all());
}

/// The kinds the Kubernetes driver serves in a synthetic stack (databases and buckets stay on
/// the local driver).
const CLUSTER_KINDS: &[&str] = &["service", "topic", "pipeline", "ai-endpoint", "gpu-pool"];

#[test]
fn kill_9_during_a_cluster_apply_then_restart_converges_with_history_intact() {
    let emulator = KubeEmulator::start();
    emulator.set_latency(Duration::from_millis(2));
    let mut ws = Workspace::new();
    let kubeconfig = ws.path().join("kubeconfig");
    std::fs::write(&kubeconfig, emulator.kubeconfig()).unwrap();
    ws.env
        .push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    let stack = ws.path().join("stack");
    test_support::generate::write_stack(&stack, 400, 23).unwrap();
    test_support::route_to_kubernetes(&stack, "synthetic", CLUSTER_KINDS);
    let state = ws.path().join(".platformd");

    let kill_points = [60usize, 180, 300];
    let killed_midway = ws.kill_apply_at(&kill_points, 400, 8);
    assert!(
        killed_midway >= 2,
        "the kills must land mid-apply ({killed_midway} did)"
    );
    let run = ws.run(&["apply", "stack", "--auto-approve", "--parallelism", "8"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        ws.run(&["plan", "stack", "--detailed-exitcode"]).code,
        0,
        "converged"
    );
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(
        drift.code,
        0,
        "the cluster holds what the store says: {}",
        drift.all()
    );

    let t = Tally::of(&state).unwrap();
    assert_eq!(
        t.applies.len(),
        kill_points.len() + 1,
        "one history row per apply started"
    );
    assert_eq!(t.applies_with(ApplyStatus::Running), 0);
    assert_eq!(t.open_intents(), 0, "no open intents");
    assert_eq!(t.resources, 400);
    // Every object in the cluster belongs to exactly one applied resource of the stack.
    let deployments = emulator.list("apps", "deployments");
    let store = ws.store();
    for ((_, name), object) in &deployments {
        let address = object["metadata"]["annotations"]["platformd.dev/address"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no tracking annotation"));
        assert!(
            store.resource(address).unwrap().is_some(),
            "{address} is applied"
        );
    }
}

/// The RBAC `deploy/kubernetes` ships for platformd's ServiceAccount, with its namespaced role
/// bound in `namespace` (as `namespaces/rolebinding-apps.yaml` is copied per namespace), without
/// the rules for `drop` (a resource's plural), if given.
fn shipped_rbac(namespace: &str, drop: Option<&str>) -> test_support::kube_emulator::Rbac {
    let root = support::repo_root().join("deploy/kubernetes");
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
    let mut roles = read("base/clusterrole.yaml");
    if let Some(plural) = drop {
        let marker = format!("    resources: [\"{plural}\"]\n");
        let at = roles
            .find(&marker)
            .unwrap_or_else(|| panic!("no rule for {plural}"));
        let start = roles[..at].rfind("  - apiGroups").unwrap();
        let end = at + marker.len() + roles[at + marker.len()..].find('\n').unwrap() + 1;
        roles.replace_range(start..end, "");
    }
    let binding = read("namespaces/rolebinding-apps.yaml")
        .replace("namespace: apps", &format!("namespace: {namespace}"));
    test_support::kube_emulator::Rbac::for_service_account(
        &[roles, read("base/clusterrolebinding.yaml"), binding],
        "platformd",
        "platformd",
    )
}

/// The example's commented Kubernetes variant, uncommented: it validates, and applies to a
/// cluster (the emulator, authorizing every request with the RBAC `deploy/kubernetes` ships)
/// with every cluster kind on it and buckets on the local driver. Without one rule of the
/// ClusterRole, the apply fails with the API server's 403.
#[test]
fn the_examples_kubernetes_variant_validates_and_applies() {
    let emulator = KubeEmulator::start();
    emulator.set_rbac(Some(shipped_rbac("platform", None)));
    let ws = Workspace::new();
    ws.copy_example();
    let platform = ws.path().join("stack/platform.kdl");
    let text = std::fs::read_to_string(&platform).unwrap();
    let variant = test_support::example_kubernetes_variant(&text, "emulator");
    let kubeconfig = ws.path().join("kubeconfig");
    std::fs::write(&kubeconfig, emulator.kubeconfig()).unwrap();
    let mut ws = ws;
    ws.env
        .push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    std::fs::write(&platform, variant).unwrap();
    let run = ws.run(&["validate", "stack"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        emulator
            .get("apps", "deployments", "platform", "checkout-api")
            .is_some()
    );
    assert!(
        emulator
            .get("karpenter.sh", "nodepools", "", "l4-inference")
            .is_some()
    );
    assert!(
        emulator
            .get("postgresql.cnpg.io", "clusters", "platform", "orders-db")
            .is_some()
    );
    assert!(
        ws.rendered("bucket").exists(),
        "buckets stay on the local driver"
    );
    // The analytics pipeline makes its table, with the cluster's 90-day retention as its TTL,
    // on every replica of both shards.
    let jobs = emulator.list("batch", "jobs");
    let schema = jobs
        .iter()
        .find(|((_, name), _)| name.starts_with("orders-to-analytics-schema-"))
        .map(|(_, job)| job)
        .expect("the pipeline's schema Job");
    let container = &schema["spec"]["template"]["spec"]["containers"][0];
    let sql = container["env"][0]["value"].as_str().unwrap();
    assert!(
        sql.contains("CREATE TABLE IF NOT EXISTS default.order_events_local (order_id String, customer_id String, amount Decimal(18, 2), created_at DateTime)"),
        "{sql}"
    );
    assert!(sql.contains("TTL created_at + INTERVAL 90 DAY"), "{sql}");
    for host in ["chi-analytics-main-0-0", "chi-analytics-main-1-1"] {
        assert!(container["command"][2].as_str().unwrap().contains(host));
    }
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 0);

    // A rule less: what it granted is refused.
    let fresh = KubeEmulator::start();
    fresh.set_rbac(Some(shipped_rbac("platform", Some("prometheusrules"))));
    std::fs::write(&kubeconfig, fresh.kubeconfig()).unwrap();
    let _ = std::fs::remove_dir_all(ws.path().join(".platformd"));
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all().contains("prometheusrules")
            && run.all().contains("forbidden")
            && run
                .all()
                .contains("system:serviceaccount:platformd:platformd"),
        "{}",
        run.all()
    );
}

/// Every manifest under `deploy/kubernetes` (the base with the driver's ClusterRole, the
/// single-replica form and the replicated form) passes the official schemas; every
/// kustomization names files and directories that exist, without a cycle, and builds; the
/// ServiceMonitor (a CRD the schemas do not know) scrapes the Service's port; and the
/// replicated form's configuration is valid.
#[test]
fn every_shipped_manifest_is_valid_and_every_kustomization_resolves() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    let root = support::repo_root().join("deploy/kubernetes");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let (kustomizations, manifests): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|p| p.file_name().is_some_and(|n| n == "kustomization.yaml"));
    assert!(manifests.len() >= 11, "{manifests:?}");
    let out: support::Run = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--no-warn"])
        .args(&manifests)
        .output()
        .expect("kubernetes-validate is installed (scripts/test.sh installs it)")
        .into();
    assert_eq!(out.code, 0, "{}", out.all());
    for k in kustomizations {
        let dir = k.parent().unwrap();
        let text = std::fs::read_to_string(&k).unwrap();
        let doc: serde_json::Value = serde_norway::from_str(&text).unwrap();
        for r in doc["resources"].as_array().unwrap() {
            let target = dir.join(r.as_str().unwrap());
            assert!(
                target.is_file() || target.join("kustomization.yaml").is_file(),
                "{} names {} which does not exist",
                k.display(),
                target.display()
            );
            // Kustomize refuses files outside a kustomization's root; directories are fine
            // unless they contain the kustomization (a cycle).
            assert!(
                target.is_dir() || target.starts_with(dir),
                "{} names a file outside its root: {}",
                k.display(),
                target.display()
            );
            let target = target.canonicalize().unwrap();
            assert!(
                !(target.is_dir() && dir.canonicalize().unwrap().starts_with(&target)),
                "{} names {}, which contains it: kustomize refuses the cycle",
                k.display(),
                target.display()
            );
        }
        // `kubectl kustomize` builds it, where kubectl is installed.
        if std::process::Command::new("kubectl")
            .arg("version")
            .arg("--client")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            let out: support::Run = std::process::Command::new("kubectl")
                .arg("kustomize")
                .arg(dir)
                .output()
                .unwrap()
                .into();
            assert_eq!(out.code, 0, "{}: {}", dir.display(), out.all());
        }
    }

    let read = |rel: &str| -> serde_json::Value {
        serde_norway::from_str(&std::fs::read_to_string(root.join(rel)).unwrap()).unwrap()
    };
    let service = read("base/service.yaml");
    let monitor = read("replicated/servicemonitor.yaml");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the monitor selects the Service"
        );
    }
    let port = monitor["spec"]["endpoints"][0]["port"].as_str().unwrap();
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == port),
        "the Service has a port named {port}"
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let config = read("replicated/configmap.yaml");
    let text = config["data"]["platformd.kdl"].as_str().unwrap();
    let parsed = daemon::config::parse("configmap.yaml", text).unwrap();
    assert!(parsed.store.is_some() && parsed.stacks.len() >= 2);
    // Every environment variable the configuration refers to is set by the Deployment.
    let deployment = read("replicated/deployment.yaml");
    let env: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for needed in [
        "PLATFORMD_STORE_PASSWORD",
        "PLATFORMD_WEBHOOK_SECRET",
        "PLATFORMD_REPLICA",
    ] {
        assert!(
            env.contains(&needed),
            "{needed} is not set by the Deployment"
        );
    }

    // RBAC is namespaced where it can be (docs/SECURITY.md): the namespaced types are granted
    // only by RoleBindings in named namespaces; cluster-wide, only the cluster-scoped types.
    let mut documents = Vec::new();
    for path in &manifests {
        let text = std::fs::read_to_string(path).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let doc = <serde_json::Value as serde::Deserialize>::deserialize(doc).unwrap();
            documents.push((path.clone(), doc));
        }
    }
    let roles: BTreeMap<String, serde_json::Value> = documents
        .iter()
        .filter(|(_, d)| d["kind"] == "ClusterRole")
        .map(|(_, d)| {
            (
                d["metadata"]["name"].as_str().unwrap().to_string(),
                d.clone(),
            )
        })
        .collect();
    let cluster_scoped = ["nodepools"];
    let mut namespaces_granted = Vec::new();
    for (path, doc) in &documents {
        let role = doc["roleRef"]["name"].as_str().unwrap_or_default();
        match doc["kind"].as_str() {
            Some("ClusterRoleBinding") => {
                for rule in roles[role]["rules"].as_array().unwrap() {
                    for resource in rule["resources"].as_array().unwrap() {
                        assert!(
                            cluster_scoped.contains(&resource.as_str().unwrap()),
                            "{} grants namespaced {resource} cluster-wide",
                            path.display()
                        );
                    }
                }
            }
            Some("RoleBinding") => {
                assert_eq!(role, "platformd-namespaced", "{}", path.display());
                namespaces_granted.push(doc["metadata"]["namespace"].as_str().unwrap().to_string());
            }
            _ => {}
        }
    }
    assert_eq!(namespaces_granted, ["apps"]);
    for resource in ["deployments", "services", "kafkatopics", "clusters"] {
        assert!(
            roles["platformd-namespaced"]["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == resource)),
            "{resource} is not granted in the namespaces"
        );
    }
}

#[test]
fn a_driver_setting_with_a_bad_value_is_refused_with_its_location() {
    let emulator = KubeEmulator::start();
    let ws = workspace(&emulator, false);
    let platform = PLATFORM.replace(
        "node-class \"gpu\"",
        "node-class \"gpu\"\n        force-conflicts \"maybe\"",
    );
    ws.stack(&[("platform.kdl", &platform), ("a.kdl", WORKLOADS)]);
    let run = ws.run(&["plan", "stack"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "error[invalid-value]: `force-conflicts` \"maybe\" is not valid: \"true\" or \"false\""
        ) && run.stderr.contains("--> stack/platform.kdl:7:25"),
        "{}",
        run.stderr
    );
}

/// A change of the stack's namespace is planned as moves (the protected database blocked until
/// allowed: a new namespace means a new database), and applied: every object is made in the
/// new namespace, then removed from the old one; the cluster-scoped NodePool stays; no drift
/// and no change is left.
#[test]
fn a_namespace_change_moves_every_object_and_leaves_no_drift() {
    let emulator = KubeEmulator::start();
    let ws = workspace(&emulator, true);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    ws.stack(&[
        (
            "platform.kdl",
            &PLATFORM.replace("namespace \"shop\"", "namespace \"shop-v2\""),
        ),
        ("a.kdl", &format!("{WORKLOADS}{}", api(2))),
    ]);
    let plan = ws.run(&["plan", "stack", "--detailed-exitcode"]);
    assert_eq!(plan.code, 3, "{}", plan.all());
    assert!(
        plan.stdout
            .contains("+/- service/api [kubernetes] will be moved")
            && plan
                .stdout
                .contains("~ driver.namespace = \"shop\" → \"shop-v2\"")
            && plan
                .stdout
                .contains("BLOCKED: protected; replacing destroys it. Allow with --allow-destroy database/orders-db"),
        "{}",
        plan.stdout
    );
    let run = ws.run(&[
        "apply",
        "stack",
        "--auto-approve",
        "--allow-destroy",
        "database/orders-db",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    for (group, plural, name) in [
        ("apps", "deployments", "api"),
        ("", "services", "api"),
        ("autoscaling", "horizontalpodautoscalers", "api"),
        ("apps", "deployments", "assistant"),
        ("kafka.strimzi.io", "kafkatopics", "orders"),
        ("postgresql.cnpg.io", "clusters", "orders-db"),
    ] {
        assert!(
            emulator.get(group, plural, "shop-v2", name).is_some(),
            "{plural}/{name} in the new namespace"
        );
        assert!(
            emulator.get(group, plural, "shop", name).is_none(),
            "{plural}/{name} left in the old namespace"
        );
    }
    assert!(
        emulator
            .get("karpenter.sh", "nodepools", "", "l4")
            .is_some()
    );
    let deployment = emulator
        .get("apps", "deployments", "shop-v2", "api")
        .unwrap();
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(
        env.contains("http://ai-gateway.shop-v2.svc.cluster.local/v1"),
        "{env}"
    );
    let plan = ws.run(&["plan", "stack", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
}

/// A Deployment made by hand: the apply refuses it and names the import; with the import it is
/// adopted (same uid: not recreated) and brought to the declaration. `removed` then lets it go:
/// the objects stay, without platformd's marks.
#[test]
fn an_existing_deployment_is_imported_then_let_go() {
    let emulator = KubeEmulator::start();
    let ws = workspace(&emulator, false);
    // Made by hand with the labels platformd selects by (a Deployment's selector cannot change:
    // one selecting by other labels cannot be imported, below).
    let selector = json!({ "matchLabels": { "app.kubernetes.io/name": "api", "platformd.dev/stack": "shop" } });
    emulator.edit("apps", "deployments", "shop", "api", "kubectl", |d| {
        *d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "api", "namespace": "shop", "uid": "uid-by-hand",
                "labels": { "team": "web" } },
            "spec": { "replicas": 1, "selector": selector,
                "template": { "metadata": { "labels": selector["matchLabels"] },
                    "spec": { "containers": [{ "name": "api", "image": "ghcr.io/acme/api:0.9.0" }] } } },
        });
    });
    let service = "service \"api\" {\n    team \"web\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    replicas 2\n    port 8080\n}\n";
    ws.stack(&[("platform.kdl", PLATFORM), ("a.kdl", service)]);
    let refused = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused
            .all()
            .contains("adopt it with `import \"service/api\" id=\"Deployment/shop/api\"`"),
        "{}",
        refused.all()
    );

    let imported = format!("{service}\nimport \"service/api\" id=\"Deployment/shop/api\"\n");
    ws.stack(&[("platform.kdl", PLATFORM), ("a.kdl", &imported)]);
    let plan = ws.run(&["plan", "stack"]);
    assert!(
        plan.stdout
            .contains("<= service/api [kubernetes] will be imported (id `Deployment/shop/api`)"),
        "{}",
        plan.stdout
    );
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let deployment = emulator
        .get("apps", "deployments", "shop", "api")
        .expect("api");
    assert_eq!(
        deployment["metadata"]["uid"], "uid-by-hand",
        "not recreated"
    );
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["metadata"]["annotations"]["platformd.dev/address"],
        "service/api"
    );
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 0);

    ws.stack(&[
        ("platform.kdl", PLATFORM),
        ("a.kdl", "removed \"service/api\"\n"),
    ]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    for (group, plural) in [("apps", "deployments"), ("", "services")] {
        let object = emulator
            .get(group, plural, "shop", "api")
            .unwrap_or_else(|| panic!("{plural}/api was deleted"));
        assert!(
            object["metadata"]["labels"]
                .get("app.kubernetes.io/managed-by")
                .is_none()
                && object["metadata"]["annotations"]
                    .get("platformd.dev/address")
                    .is_none(),
            "{object}"
        );
    }
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 0);

    // A Deployment selecting by other labels: importing it would recreate it (its selector
    // cannot change), so the import is refused and nothing is touched.
    emulator.edit("apps", "deployments", "shop", "web", "kubectl", |d| {
        *d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web", "namespace": "shop", "uid": "uid-web" },
            "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "web" } },
                "template": { "metadata": { "labels": { "app": "web" } },
                    "spec": { "containers": [{ "name": "web", "image": "ghcr.io/acme/web:0.9.0" }] } } },
        });
    });
    let web = "service \"web\" {\n    team \"web\"\n    image \"ghcr.io/acme/web:1.0.0\"\n}\nimport \"service/web\" id=\"Deployment/shop/web\"\n";
    ws.stack(&[("platform.kdl", PLATFORM), ("a.kdl", web)]);
    let refused = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(
        refused
            .all()
            .contains("a Deployment's selector cannot change"),
        "{}",
        refused.all()
    );
    let untouched = emulator.get("apps", "deployments", "shop", "web").unwrap();
    assert_eq!(untouched["metadata"]["uid"], "uid-web");
    assert!(
        untouched["metadata"]
            .get("annotations")
            .is_none_or(|a| a.get("platformd.dev/address").is_none()),
        "{untouched}"
    );
}
