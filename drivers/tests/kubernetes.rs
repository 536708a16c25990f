#![cfg(feature = "kubernetes")]
//! The Kubernetes driver against the API-server emulator (test support): real HTTP, discovery,
//! server-side apply with field ownership, label-selector lists, faults.

use drivers::drift::managed_differences;
use drivers::kubernetes::{KubernetesDriver, Settings};
use drivers::{DesiredResource, Driver};
use planner::model::{DriftPolicy, Kind, Spec};
use planner::resource_spec::LifecycleSpec;
use serde_json::json;
use std::time::Duration;
use test_support::kube_emulator::{BUILT_IN, KubeEmulator, OPERATOR_CRDS};

fn driver(emulator: &KubeEmulator, dir: &tempfile::TempDir) -> KubernetesDriver {
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, emulator.kubeconfig()).unwrap();
    KubernetesDriver::new(Settings {
        kubeconfig: Some(path),
        context: Some("emulator".into()),
        namespace: Some("shop".into()),
        ..Settings::default()
    })
}

fn service(name: &str, replicas: u64, autoscale: bool) -> DesiredResource {
    let mut spec = json!({
        "team": "web", "image": format!("ghcr.io/acme/{name}:1.0.0"), "replicas": replicas, "port": 8080,
        "resources": { "cpu": "250m", "memory": "256Mi" },
        "env": { "LOG_LEVEL": "info", "STRIPE_KEY": { "secret": "aws-sm:prod/stripe" } },
    });
    if autoscale {
        spec["autoscale"] = json!({ "min": 2, "max": 6, "cpu-percent": 70 });
    }
    DesiredResource::from_json("shop", Kind::Service, name, &spec).unwrap()
}

fn topic(name: &str) -> DesiredResource {
    DesiredResource::from_json(
        "shop",
        Kind::Topic,
        name,
        &json!({ "team": "web", "partitions": 6, "retention-hours": 72, "replication-factor": 3 }),
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn applies_with_server_side_apply_observes_without_drift_and_prunes_what_it_no_longer_renders() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&emulator, &dir);
    let rt = runtime();
    let api = service("api", 2, true);
    let applied = rt.block_on(driver.apply(&api, &[])).unwrap();
    assert_eq!(
        applied.outputs["url"],
        "http://api.shop.svc.cluster.local:8080"
    );
    let kinds: Vec<&str> = applied.inventory.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "ExternalSecret"
        ]
    );
    rt.block_on(driver.wait_ready(&api, Duration::from_secs(5)))
        .unwrap();

    // Read back from the cluster, not from the driver.
    let deployment = emulator
        .get("apps", "deployments", "shop", "api")
        .expect("a Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["metadata"]["annotations"]["platformd.dev/address"],
        "service/api"
    );
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "platformd"
    );
    assert!(emulator.get("", "services", "shop", "api").is_some());
    assert!(
        emulator
            .get("autoscaling", "horizontalpodautoscalers", "shop", "api")
            .is_some()
    );
    assert!(
        emulator
            .get(
                "external-secrets.io",
                "externalsecrets",
                "shop",
                "api-secrets"
            )
            .is_some()
    );
    let managers = emulator.managers("apps", "deployments", "shop", "api");
    assert_eq!(managers.keys().collect::<Vec<_>>(), ["platformd"]);

    let observed = rt
        .block_on(driver.observe("shop", &[Kind::Service]))
        .unwrap();
    assert_eq!(observed.len(), 1);
    let expected = driver.expected(&api).unwrap();
    assert_eq!(managed_differences(&expected, &observed[0].live, &[]), []);

    // Someone scales by hand: drift on a managed field; the next apply takes it back.
    emulator.edit("apps", "deployments", "shop", "api", "kubectl-edit", |d| {
        d["spec"]["replicas"] = json!(7);
    });
    let observed = rt
        .block_on(driver.observe("shop", &[Kind::Service]))
        .unwrap();
    let drift = managed_differences(&expected, &observed[0].live, &[]);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0].path, "[0].spec.replicas");
    rt.block_on(driver.apply(&api, &applied.inventory)).unwrap();
    let deployment = emulator.get("apps", "deployments", "shop", "api").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);

    // Autoscale removed: exactly the HPA, from the inventory of the last apply, goes; no list
    // is needed to find it.
    emulator.clear_requests();
    let smaller = rt
        .block_on(driver.apply(&service("api", 2, false), &applied.inventory))
        .unwrap();
    assert_eq!(smaller.inventory.len(), 3);
    let lists = emulator
        .requests()
        .into_iter()
        .filter(|r| r.query.contains("labelSelector"))
        .count();
    assert_eq!(lists, 0);
    assert!(
        emulator
            .get("autoscaling", "horizontalpodautoscalers", "shop", "api")
            .is_none()
    );
    assert!(emulator.get("apps", "deployments", "shop", "api").is_some());
    assert!(emulator.get("", "services", "shop", "api").is_some());
}

#[test]
fn delete_removes_only_what_carries_the_tracking_annotation() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&emulator, &dir);
    let rt = runtime();
    let api = rt
        .block_on(driver.apply(&service("api", 1, true), &[]))
        .unwrap();
    rt.block_on(driver.apply(&service("web", 1, false), &[]))
        .unwrap();
    // Labelled like ours (copied by another tool) but without the tracking annotation.
    emulator.edit("apps", "deployments", "shop", "lookalike", "helm", |d| {
        *d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "lookalike", "namespace": "shop", "labels": {
                "app.kubernetes.io/managed-by": "platformd", "platformd.dev/stack": "shop" } },
            "spec": { "replicas": 1 },
        });
    });
    rt.block_on(driver.delete("shop", Kind::Service, "api", &api.inventory))
        .unwrap();
    for (group, plural, name) in [
        ("apps", "deployments", "api"),
        ("", "services", "api"),
        ("autoscaling", "horizontalpodautoscalers", "api"),
        ("external-secrets.io", "externalsecrets", "api-secrets"),
    ] {
        assert!(
            emulator.get(group, plural, "shop", name).is_none(),
            "{plural}/{name} left"
        );
    }
    assert!(emulator.get("apps", "deployments", "shop", "web").is_some());
    assert!(
        emulator
            .get("apps", "deployments", "shop", "lookalike")
            .is_some()
    );
    let observed = rt
        .block_on(driver.observe("shop", &[Kind::Service]))
        .unwrap();
    let addresses: Vec<&str> = observed.iter().map(|o| o.address.as_str()).collect();
    assert_eq!(addresses, ["service/web"], "the lookalike is not ours");
    // Deleting what is gone succeeds; without an inventory (a resource applied before they
    // were kept) the objects are found by labels and tracking annotation.
    rt.block_on(driver.delete("shop", Kind::Service, "api", &api.inventory))
        .unwrap();
    rt.block_on(driver.delete("shop", Kind::Service, "web", &[]))
        .unwrap();
    assert!(emulator.get("apps", "deployments", "shop", "web").is_none());
    assert!(
        emulator
            .get("apps", "deployments", "shop", "lookalike")
            .is_some()
    );
}

#[test]
fn observing_costs_one_list_per_type_whatever_the_number_of_resources() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&emulator, &dir);
    let rt = runtime();
    let mut lists = Vec::new();
    for n in [5, 500] {
        for i in 0..n {
            rt.block_on(driver.apply(&service(&format!("s{i}"), 1, false), &[]))
                .unwrap();
            rt.block_on(driver.apply(&topic(&format!("t{i}")), &[]))
                .unwrap();
        }
        emulator.clear_requests();
        let observed = rt
            .block_on(driver.observe("shop", &[Kind::Service, Kind::Topic]))
            .unwrap();
        assert_eq!(observed.len(), 2 * n);
        let requests = emulator.requests();
        assert!(requests.iter().all(|r| r.method == "GET"), "{requests:?}");
        // Discovery of a type not used before is a one-time cost; lists are what scale.
        lists.push(
            requests
                .iter()
                .filter(|r| r.query.contains("labelSelector"))
                .count(),
        );
        assert!(requests.len() <= 6 + 4, "{requests:?}");
    }
    // Deployment, Service, HPA, ExternalSecret, KafkaTopic, PrometheusRule (shared by both
    // kinds): six lists at 10 and at 1,000 resources.
    assert_eq!(lists, [6, 6]);
}

#[test]
fn errors_say_what_to_do_and_whether_to_retry() {
    let types = BUILT_IN
        .iter()
        .chain(
            OPERATOR_CRDS
                .iter()
                .filter(|t| t.group != "kafka.strimzi.io"),
        )
        .cloned()
        .collect();
    let emulator = KubeEmulator::with_types(types);
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&emulator, &dir);
    let rt = runtime();
    let missing = rt
        .block_on(driver.apply(&topic("orders"), &[]))
        .unwrap_err();
    assert!(!missing.retryable);
    assert!(
        missing.message.contains("install Strimzi"),
        "{}",
        missing.message
    );

    emulator.inject(Some("PATCH"), "/deployments/api", 429, 1);
    let throttled = rt
        .block_on(driver.apply(&service("api", 1, false), &[]))
        .unwrap_err();
    assert!(throttled.retryable, "{}", throttled.message);
    rt.block_on(driver.apply(&service("api", 1, false), &[]))
        .unwrap();

    emulator.inject(Some("PATCH"), "/services/api", 403, 1);
    let forbidden = rt
        .block_on(driver.apply(&service("api", 1, false), &[]))
        .unwrap_err();
    assert!(!forbidden.retryable);
    assert!(
        forbidden
            .message
            .contains("may not patch Service in namespace shop"),
        "{}",
        forbidden.message
    );
    emulator.inject(None, "/deployments", 503, 1);
    assert!(
        rt.block_on(driver.apply(&service("api", 1, false), &[]))
            .unwrap_err()
            .retryable
    );
}

#[test]
fn readiness_waits_for_the_rollout_and_a_stuck_one_fails() {
    let emulator = KubeEmulator::start();
    emulator.set_auto_ready(false);
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&emulator, &dir);
    let rt = runtime();
    let api = service("api", 3, false);
    rt.block_on(driver.apply(&api, &[])).unwrap();
    let waiting = rt
        .block_on(driver.wait_ready(&api, Duration::from_millis(600)))
        .unwrap_err();
    assert!(
        waiting.retryable && waiting.message.contains("not ready"),
        "{}",
        waiting.message
    );

    // The controller catches up while the driver waits.
    let rollout = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(400));
            emulator.edit("apps", "deployments", "shop", "api", "kube-controller-manager", |d| {
                d["status"] = json!({ "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3 });
            });
            emulator.edit("external-secrets.io", "externalsecrets", "shop", "api-secrets", "external-secrets", |e| {
                e["status"] = json!({ "conditions": [{ "type": "Ready", "status": "True" }] });
            });
        });
        rt.block_on(driver.wait_ready(&api, Duration::from_secs(10)))
    });
    rollout.unwrap();

    emulator.edit("apps", "deployments", "shop", "api", "kube-controller-manager", |d| {
        d["status"]["conditions"] = json!([{ "type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"api-7d\" has timed out progressing" }]);
    });
    let stuck = rt
        .block_on(driver.wait_ready(&api, Duration::from_secs(10)))
        .unwrap_err();
    assert!(!stuck.retryable);
    assert!(
        stuck.message.contains("ProgressDeadlineExceeded"),
        "{}",
        stuck.message
    );
}

#[test]
fn without_force_a_field_another_manager_owns_is_a_conflict_naming_it() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, emulator.kubeconfig()).unwrap();
    let driver = KubernetesDriver::new(Settings {
        kubeconfig: Some(path),
        namespace: Some("shop".into()),
        force_conflicts: false,
        ..Settings::default()
    });
    let rt = runtime();
    let api = service("api", 2, false);
    let applied = rt.block_on(driver.apply(&api, &[])).unwrap();
    emulator.edit("apps", "deployments", "shop", "api", "kubectl-scale", |d| {
        d["spec"]["replicas"] = json!(5);
    });
    let conflict = rt
        .block_on(driver.apply(&api, &applied.inventory))
        .unwrap_err();
    assert!(!conflict.retryable, "a conflict does not clear by waiting");
    assert!(
        conflict.message.contains("kubectl-scale") && conflict.message.contains("spec.replicas"),
        "{}",
        conflict.message
    );
    assert_eq!(
        emulator.get("apps", "deployments", "shop", "api").unwrap()["spec"]["replicas"],
        5,
        "nothing was taken"
    );
}

/// A kubeconfig whose user gets its token by running a program: refused unless the operator
/// allows credential plugins, and the program never runs (`docs/SECURITY.md`).
#[test]
fn a_kubeconfig_credential_plugin_runs_only_when_the_operator_allows_it() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("plugin-ran");
    let plugin = dir.path().join("plugin.sh");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\ntouch {}\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"emulator-token\"}}}}'\n",
            marker.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o700)).unwrap();
    let kubeconfig = emulator.kubeconfig().replace(
        "    token: emulator-token\n",
        &format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
            plugin.display()
        ),
    );
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig).unwrap();
    let rt = runtime();
    let refused = KubernetesDriver::new(Settings {
        kubeconfig: Some(path.clone()),
        namespace: Some("shop".into()),
        ..Settings::default()
    });
    let err = rt
        .block_on(refused.apply(&service("api", 1, false), &[]))
        .unwrap_err();
    assert!(err.to_string().contains("allow-exec-credentials"), "{err}");
    assert!(!err.retryable, "{err}");
    assert!(!marker.exists(), "the credential plugin ran");

    let allowed = KubernetesDriver::new(Settings {
        kubeconfig: Some(path),
        namespace: Some("shop".into()),
        allow_exec_credentials: true,
        ..Settings::default()
    });
    rt.block_on(allowed.apply(&service("api", 1, false), &[]))
        .unwrap();
    assert!(marker.exists(), "the operator allowed the plugin");
}

/// Ownership before change (`docs/SECURITY.md`): a same-named object another tool made is never
/// patched over, even with forced apply; an object of ours replaced by someone else's is neither
/// deleted nor pruned; an object of ours left by an interrupted create is taken up again. The
/// emulator checks apply and delete preconditions as the API server does.
#[test]
fn objects_without_this_stacks_tracking_annotation_are_never_overwritten_or_deleted() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&emulator, &dir);
    let rt = runtime();
    let theirs = |name: &str| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": name, "namespace": "shop", "labels": { "team": "billing" } },
            "spec": { "replicas": 7 },
        })
    };
    // Someone else's Deployment by the name the resource renders: refused, untouched.
    emulator.edit("apps", "deployments", "shop", "api", "helm", |d| {
        *d = theirs("api")
    });
    let err = rt
        .block_on(driver.apply(&service("api", 2, false), &[]))
        .unwrap_err();
    assert!(!err.retryable);
    assert!(
        err.message
            .contains("Deployment shop/api already exists and is not managed by this stack"),
        "{}",
        err.message
    );
    let live = emulator.get("apps", "deployments", "shop", "api").unwrap();
    assert_eq!(live["spec"]["replicas"], 7);
    assert_eq!(live["metadata"]["labels"]["team"], "billing");
    assert!(
        !emulator
            .managers("apps", "deployments", "shop", "api")
            .contains_key("platformd"),
        "no field taken over"
    );
    // Labelled as ours for another resource of the stack: not ours either.
    emulator.remove("apps", "deployments", "shop", "api");
    rt.block_on(driver.apply(&service("web", 1, false), &[]))
        .unwrap();
    let mut web_as_api = service("web", 1, false);
    web_as_api.address = "service/api".into();
    assert!(rt.block_on(driver.apply(&web_as_api, &[])).is_err());

    // Ours, left by an interrupted create (not in any inventory yet): applied again.
    let first = rt
        .block_on(driver.apply(&service("api", 2, true), &[]))
        .unwrap();
    let again = rt
        .block_on(driver.apply(&service("api", 3, true), &[]))
        .unwrap();
    assert_eq!(again.inventory, first.inventory);
    let live = emulator.get("apps", "deployments", "shop", "api").unwrap();
    assert_eq!(live["spec"]["replicas"], 3);

    // Our HPA replaced by someone else's; autoscaling removed: the prune leaves theirs.
    emulator.remove("autoscaling", "horizontalpodautoscalers", "shop", "api");
    emulator.edit(
        "autoscaling",
        "horizontalpodautoscalers",
        "shop",
        "api",
        "kubectl",
        |h| {
            *h = json!({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": { "name": "api", "namespace": "shop" },
                "spec": { "minReplicas": 1, "maxReplicas": 3 },
            })
        },
    );
    let pruned = rt
        .block_on(driver.apply(&service("api", 3, false), &again.inventory))
        .unwrap();
    assert!(
        emulator
            .get("autoscaling", "horizontalpodautoscalers", "shop", "api")
            .is_some(),
        "someone else's HPA was pruned"
    );
    // Our Deployment replaced by someone else's: deleting the resource leaves it.
    emulator.remove("apps", "deployments", "shop", "api");
    emulator.edit("apps", "deployments", "shop", "api", "helm", |d| {
        *d = theirs("api")
    });
    rt.block_on(driver.delete("shop", Kind::Service, "api", &pruned.inventory))
        .unwrap();
    assert_eq!(
        emulator.get("apps", "deployments", "shop", "api").unwrap()["spec"]["replicas"],
        7,
        "someone else's Deployment was deleted"
    );
    assert!(
        emulator.get("", "services", "shop", "api").is_none(),
        "our Service is deleted"
    );
}

/// `ignore-changes` holds at apply, not only in the plan: an image bump kept the replicas an
/// autoscaler had set (15) instead of resetting them to the declared 4, as forced server-side
/// apply of the full object did. Without `ignore-changes` the declared value is applied.
#[test]
fn ignore_changes_keeps_the_live_value_of_a_field_at_apply() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&emulator, &dir);
    let rt = runtime();
    let first = rt
        .block_on(driver.apply(&service("api", 4, false), &[]))
        .unwrap();
    // An autoscaler scales the Deployment up.
    emulator.edit(
        "apps",
        "deployments",
        "shop",
        "api",
        "horizontal-pod-autoscaler",
        |d| d["spec"]["replicas"] = json!(15),
    );
    let mut bumped = service("api", 4, false);
    if let Spec::Service(s) = &mut bumped.spec.fields {
        s.image = "ghcr.io/acme/api:1.1.0".into();
    }
    bumped.spec.lifecycle = LifecycleSpec {
        protect: false,
        drift: DriftPolicy::Report,
        ignore_changes: vec!["replicas".into()],
    };
    let again = rt
        .block_on(driver.apply(&bumped, &first.inventory))
        .unwrap();
    let live = emulator.get("apps", "deployments", "shop", "api").unwrap();
    assert_eq!(
        live["spec"]["replicas"], 15,
        "the autoscaler's replicas were reset"
    );
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/acme/api:1.1.0"
    );
    // platformd gave the field up: the autoscaler owns it, platformd's manager does not.
    let owners = |path: &str| -> Vec<String> {
        emulator
            .managers("apps", "deployments", "shop", "api")
            .into_iter()
            .filter(|(_, owned)| owned.contains(path))
            .map(|(manager, _)| manager)
            .collect()
    };
    let replicas_owners = owners("spec.replicas");
    assert!(
        !replicas_owners.contains(&"platformd".to_string())
            && replicas_owners.contains(&"horizontal-pod-autoscaler".to_string()),
        "{replicas_owners:?}"
    );
    assert_eq!(
        owners("spec.template.spec.containers"),
        ["platformd"],
        "the image is still platformd's"
    );
    // The autoscaler scales again, and another apply keeps that too.
    emulator.edit(
        "apps",
        "deployments",
        "shop",
        "api",
        "horizontal-pod-autoscaler",
        |d| d["spec"]["replicas"] = json!(11),
    );
    let again = rt
        .block_on(driver.apply(&bumped, &again.inventory))
        .unwrap();
    let live = emulator.get("apps", "deployments", "shop", "api").unwrap();
    assert_eq!(live["spec"]["replicas"], 11);
    // Not ignored: the declared value is what is applied.
    bumped.spec.lifecycle.ignore_changes.clear();
    rt.block_on(driver.apply(&bumped, &again.inventory))
        .unwrap();
    let live = emulator.get("apps", "deployments", "shop", "api").unwrap();
    assert_eq!(live["spec"]["replicas"], 4);
}

/// `ignore-changes` added to a field only platformd owned (no autoscaler yet): the field keeps
/// its value, owned by the handover manager rather than platformd, until an autoscaler takes it.
#[test]
fn ignore_changes_hands_a_field_over_without_resetting_it() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&emulator, &dir);
    let rt = runtime();
    let first = rt
        .block_on(driver.apply(&service("api", 4, false), &[]))
        .unwrap();
    let mut ignoring = service("api", 4, false);
    ignoring.spec.lifecycle.ignore_changes = vec!["replicas".into()];
    rt.block_on(driver.apply(&ignoring, &first.inventory))
        .unwrap();
    let live = emulator.get("apps", "deployments", "shop", "api").unwrap();
    assert_eq!(
        live["spec"]["replicas"], 4,
        "the field was removed with its owner"
    );
    let managers = emulator.managers("apps", "deployments", "shop", "api");
    assert!(
        !managers["platformd"].contains("spec.replicas"),
        "{managers:?}"
    );
    assert!(
        managers["platformd-handover"].contains("spec.replicas"),
        "{managers:?}"
    );
}

/// Applies ask for strict field validation, and the emulator holds custom objects to their
/// operator's schema then: a field the CRD lacks is a 400, not silently pruned as a cluster
/// would without it.
#[test]
fn applies_are_strict_and_a_field_the_crd_lacks_is_refused() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&emulator, &dir);
    runtime()
        .block_on(driver.apply(&service("api", 2, false), &[]))
        .unwrap();
    let patches: Vec<_> = emulator
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert!(!patches.is_empty());
    assert!(
        patches
            .iter()
            .all(|r| r.query.contains("fieldValidation=Strict")),
        "{patches:?}"
    );

    let chi = |extra: serde_json::Value| {
        let mut body = json!({
            "apiVersion": "clickhouse.altinity.com/v1", "kind": "ClickHouseInstallation",
            "metadata": { "name": "events" },
            "spec": { "configuration": { "clusters": [{ "name": "main", "layout": { "shardsCount": 1 } }] } },
        });
        body["spec"]["configuration"]["clusters"][0]["layout"]
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body.to_string()
    };
    let path = "/apis/clickhouse.altinity.com/v1/namespaces/shop/clickhouseinstallations/events?fieldManager=test&fieldValidation=Strict";
    let send = |body: String| {
        test_support::net::request(
            emulator.port,
            "PATCH",
            path,
            &[("Content-Type", "application/apply-patch+yaml")],
            body.as_bytes(),
        )
    };
    let (code, body) = send(chi(json!({ "shardCount": 2 })));
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("unknown field") && body.contains("shardCount"),
        "{body}"
    );
    let (code, body) = send(chi(json!({ "replicasCount": 2 })));
    assert_eq!(code, 200, "{body}");
}

/// The operators' kinds without a vendored type are held to their transcribed schemas under
/// strict field validation (`test_support::crd::transcribed`): what platformd renders for a
/// database and a GPU pool is accepted, a field or enum value the CRD lacks is refused, and a
/// database that keeps no backups renders no retention CloudNativePG would refuse (`0d`).
#[test]
fn cloudnativepg_karpenter_and_external_secrets_objects_meet_their_schemas() {
    let emulator = KubeEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&emulator, &dir);
    let rt = runtime();
    let resource = |kind: Kind, name: &str, spec: serde_json::Value| {
        DesiredResource::from_json("shop", kind, name, &spec).unwrap()
    };
    for retention in [7, 0] {
        let db = resource(
            Kind::Database,
            &format!("orders-{retention}"),
            json!({
                "team": "web", "engine": "postgres", "version": "16", "storage-gb": 50,
                "backup-retention-days": retention, "high-availability": false,
            }),
        );
        let applied = rt.block_on(driver.apply(&db, &[]));
        assert!(applied.is_ok(), "retention {retention}: {applied:?}");
        let live = emulator
            .get(
                "postgresql.cnpg.io",
                "clusters",
                "shop",
                &format!("orders-{retention}"),
            )
            .unwrap();
        let policy = &live["spec"]["backup"]["retentionPolicy"];
        if retention == 0 {
            assert!(policy.is_null(), "{live}");
        } else {
            assert_eq!(policy, "7d");
        }
    }
    let pool = resource(
        Kind::GpuPool,
        "l4",
        json!({
            "team": "web", "accelerator": "nvidia-l4", "instance-type": "g6.xlarge",
            "nodes": { "min": 0, "max": 2 }, "capacity": "spot",
        }),
    );
    let applied = rt.block_on(driver.apply(&pool, &[]));
    assert!(applied.is_ok(), "{applied:?}");
    let web = resource(
        Kind::Service,
        "web",
        json!({
            "team": "web", "image": "ghcr.io/acme/web:1.0.0", "replicas": 1,
            "resources": { "cpu": "250m", "memory": "256Mi" },
            "env": { "TOKEN": { "secret": "aws-sm:prod/web/token" } },
        }),
    );
    let applied = rt.block_on(driver.apply(&web, &[]));
    assert!(applied.is_ok(), "{applied:?}");

    // What the schemas refuse.
    let strict = |path: &str, body: serde_json::Value| {
        test_support::net::request(
            emulator.port,
            "PATCH",
            &format!("{path}?fieldManager=test&fieldValidation=Strict"),
            &[("content-type", "application/apply-patch+yaml")],
            body.to_string().as_bytes(),
        )
    };
    let (code, body) = strict(
        "/apis/karpenter.sh/v1/nodepools/bad",
        json!({ "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": { "name": "bad" },
            "spec": { "disruption": { "consolidationPolicy": "WhenUnderutilized" } } }),
    );
    assert_eq!(code, 400, "a v1beta1 policy name: {body}");
    let (code, body) = strict(
        "/apis/postgresql.cnpg.io/v1/namespaces/shop/clusters/bad",
        json!({ "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": { "name": "bad", "namespace": "shop" },
            "spec": { "instances": 1, "backup": { "retentionPolicy": "0d" } } }),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("retentionPolicy"), "{body}");
    let (code, body) = strict(
        "/apis/external-secrets.io/v1beta1/namespaces/shop/externalsecrets/bad",
        json!({ "apiVersion": "external-secrets.io/v1beta1", "kind": "ExternalSecret",
            "metadata": { "name": "bad", "namespace": "shop" },
            "spec": { "secretStoreRef": { "kind": "ClusterSecretStore", "name": "aws-sm" },
                "data": [{ "secretKey": "a", "remoteRef": { "key": "k", "version": "AWSCURRENT" } }] } }),
    );
    assert_eq!(code, 400, "a field platformd never sends: {body}");
}
