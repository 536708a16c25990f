//! The RBAC shipped for the Kubernetes driver covers exactly what it writes: every document it
//! renders for the example's Kubernetes variant (and a connector pipeline and jobs) is one of
//! `OBJECT_TYPES`, every one of those is rendered, and the ClusterRoles in
//! `deploy/kubernetes/base/clusterrole.yaml` grant exactly those types with exactly `VERBS`. A
//! new rendered type cannot ship ungranted; a grant nothing renders cannot stay. (That a cluster
//! honours the grants is `daemon/tests/kubernetes.rs`, against the emulator's RBAC.)

mod support;

use drivers::Driver;
use drivers::kubernetes::{KubernetesDriver, OBJECT_TYPES, ObjectType, Settings, VERBS};
use serde_json::Value;
use std::collections::BTreeSet;

/// What the example does not render on the cluster: a connector pipeline and jobs.
const EXTRA: &str = r#"platform "data" {
    driver "local" { path ".platformd/rendered" }
    driver "kubernetes" { namespace "platform" }
    route "pipeline" "database" "topic" "job" to="kubernetes"
}
team "data" { owner "data@acme.example" }
topic "orders" { team "data"; }
database "events" {
    team "data"
    engine "clickhouse"
    user "ingest" password="aws-sm:prod/events/ingest"
}
pipeline "orders-raw" {
    team "data"
    source "topic/orders"
    sink "database/events" table="orders_raw" columns="order_id String, amount Decimal(18, 2), created_at DateTime"
    image "ghcr.io/acme/ingest:2.0.0"
}
job "once" {
    team "data"
    image "ghcr.io/acme/reports:1.0.0"
}
job "nightly" {
    team "data"
    image "ghcr.io/acme/reports:1.0.0"
    schedule "0 3 * * *"
}
"#;

#[test]
fn every_rendered_type_is_granted_and_every_granted_type_is_rendered() {
    let driver = KubernetesDriver::new(Settings {
        namespace: Some("platform".into()),
        ..Settings::default()
    });
    let mut resources = support::variant_resources();
    assert!(resources.len() > 15, "{}", resources.len());
    resources.extend(support::desired("data", &support::snapshot(EXTRA)));
    let mut rendered: BTreeSet<&'static str> = BTreeSet::new();
    for r in &resources {
        let Value::Array(docs) = driver.expected(r).unwrap() else {
            panic!("{} renders a list", r.address)
        };
        for doc in &docs {
            let t = drivers::kubernetes::object_type_of(doc).unwrap_or_else(|| {
                panic!(
                    "{} renders {} {}, which OBJECT_TYPES (and so the ClusterRole) lacks",
                    r.address, doc["apiVersion"], doc["kind"]
                )
            });
            assert_eq!(
                t.namespaced,
                doc["metadata"]["namespace"].is_string(),
                "{}: {}",
                r.address,
                t.kind
            );
            rendered.insert(t.kind);
        }
    }
    let granted: BTreeSet<&str> = OBJECT_TYPES.iter().map(|t| t.kind).collect();
    assert_eq!(
        rendered, granted,
        "a granted type nothing renders, or the reverse"
    );
}

/// (group, resource, verbs) of every rule of the ClusterRole `name`.
fn rules(manifests: &str, name: &str) -> BTreeSet<(String, String, Vec<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let mut out = BTreeSet::new();
    for doc in manifests.split("\n---") {
        let doc: Value = serde_norway::from_str(doc).unwrap();
        if doc["kind"] != "ClusterRole" || doc["metadata"]["name"] != name {
            continue;
        }
        for rule in doc["rules"].as_array().unwrap() {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    out.insert((group.clone(), resource, strings(&rule["verbs"])));
                }
            }
        }
    }
    out
}

#[test]
fn the_shipped_cluster_roles_grant_exactly_the_driver_s_types_and_verbs() {
    let manifests =
        std::fs::read_to_string(support::repo().join("deploy/kubernetes/base/clusterrole.yaml"))
            .unwrap();
    let wanted = |namespaced: bool| -> BTreeSet<(String, String, Vec<String>)> {
        OBJECT_TYPES
            .iter()
            .filter(|t: &&ObjectType| t.namespaced == namespaced)
            .map(|t| {
                (
                    t.group.to_string(),
                    t.resource.to_string(),
                    VERBS.iter().map(|v| v.to_string()).collect(),
                )
            })
            .collect()
    };
    assert_eq!(rules(&manifests, "platformd-namespaced"), wanted(true));
    assert_eq!(rules(&manifests, "platformd-cluster"), wanted(false));
}

/// `docs/DRIVERS.md` lists the operator of every API group the driver writes, and the version of
/// each schema vendored in `tests/src/crd/` is the one it names.
#[test]
fn the_operators_table_names_every_group_and_the_vendored_schemas() {
    let doc = std::fs::read_to_string(support::repo().join("docs/DRIVERS.md")).unwrap();
    let table: Vec<&str> = doc
        .split("**Operators a cluster needs**")
        .nth(1)
        .expect("the operators section")
        .lines()
        .filter(|l| l.starts_with("| `"))
        .collect();
    let built_in = ["", "apps", "batch", "autoscaling"];
    for t in OBJECT_TYPES.iter().filter(|t| !built_in.contains(&t.group)) {
        let row = table
            .iter()
            .find(|row| row.starts_with(&format!("| `{}` |", t.group)))
            .unwrap_or_else(|| panic!("no operator row for {}", t.group));
        assert!(row.contains(t.kind), "{row} lacks {}", t.kind);
        assert!(row.contains(t.version), "{row} lacks {}", t.version);
    }
    let crd = support::repo().join("tests/src/crd");
    for entry in std::fs::read_dir(&crd).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(at) = text.find("crate `kcr_") else {
            continue;
        };
        let named: Vec<&str> = text[at + "crate `".len()..]
            .split_whitespace()
            .filter(|word| *word != "//!")
            .take(2)
            .collect();
        let (krate, version) = (named[0].trim_end_matches('`'), named[1]);
        assert!(
            table
                .iter()
                .any(|row| row.contains(&format!("`{krate}` {version}"))),
            "{} is vendored from {krate} {version}, which the table does not name",
            path.display()
        );
    }
}
