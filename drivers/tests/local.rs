//! The local driver against a real directory.

mod support;

use drivers::drift::managed_differences;
use drivers::local::LocalDriver;
use drivers::{DesiredResource, Driver};
use planner::model::Kind;
use std::path::Path;

fn example_resources() -> Vec<DesiredResource> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-state-example");
    let snapshot = planner::analyze_dir(&dir)
        .unwrap()
        .snapshot
        .expect("the example is valid");
    support::desired_wired(&snapshot)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn applied_resources_observe_back_without_drift_for_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let driver = LocalDriver::new(dir.path(), None);
    let resources = example_resources();
    rt().block_on(async {
        for r in &resources {
            let outputs = driver.apply(r, &[]).await.unwrap().outputs;
            assert_eq!(
                outputs.is_empty(),
                r.kind.outputs().is_empty(),
                "{} publishes its kind's outputs",
                r.address
            );
        }
        let observed = driver.observe("acme-prod", &Kind::ALL).await.unwrap();
        assert_eq!(observed.len(), resources.len());
        for r in &resources {
            let o = observed
                .iter()
                .find(|o| o.address == r.address)
                .unwrap_or_else(|| panic!("{} observed", r.address));
            let expected = driver.expected(r).unwrap();
            let diffs = managed_differences(&expected, &o.live, &[]);
            assert!(
                diffs.is_empty(),
                "{} drifted right after apply: {diffs:?}",
                r.address
            );
            assert_eq!(
                o.outputs,
                drivers::local::synthesize_outputs(r, "acme-prod")
            );
        }
    });
}

#[test]
fn apply_is_idempotent_and_delete_of_nothing_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let driver = LocalDriver::new(dir.path(), Some("shop".into()));
    let r = example_resources()
        .into_iter()
        .find(|r| r.address == "database/orders-db")
        .unwrap();
    rt().block_on(async {
        let first = driver.apply(&r, &[]).await.unwrap().outputs;
        let file = dir.path().join("database/orders-db.yaml");
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let second = driver.apply(&r, &[]).await.unwrap().outputs;
        assert_eq!(first, second);
        assert_eq!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            modified,
            "unchanged content is not rewritten"
        );
        assert_eq!(
            first["url"],
            "postgres://orders_db_app@orders-db.acme-prod.db.internal:5432/orders_db"
        );
        driver
            .delete("acme-prod", Kind::Database, "orders-db", &[])
            .await
            .unwrap();
        assert!(!file.exists());
        driver
            .delete("acme-prod", Kind::Database, "orders-db", &[])
            .await
            .unwrap();
    });
}

#[test]
fn observe_lists_only_what_this_stack_owns() {
    let dir = tempfile::tempdir().unwrap();
    let driver = LocalDriver::new(dir.path(), None);
    let r = example_resources()
        .into_iter()
        .find(|r| r.address == "topic/order-events")
        .unwrap();
    let mut other_stack = r.clone();
    other_stack.stack = "other-stack".into();
    other_stack.name = "theirs".into();
    other_stack.address = "topic/theirs".into();
    rt().block_on(async {
        driver.apply(&r, &[]).await.unwrap();
        driver.apply(&other_stack, &[]).await.unwrap();
        std::fs::write(
            dir.path().join("topic/foreign.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: foreign\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("topic/.half-written.yaml.tmp-1"), "garbage").unwrap();
        let observed = driver
            .observe("acme-prod", &[Kind::Topic, Kind::Service])
            .await
            .unwrap();
        let addresses: Vec<&str> = observed.iter().map(|o| o.address.as_str()).collect();
        assert_eq!(addresses, ["topic/order-events"]);
    });
}

#[test]
fn secret_references_render_as_references() {
    let dir = tempfile::tempdir().unwrap();
    let driver = LocalDriver::new(dir.path(), None);
    let r = example_resources()
        .into_iter()
        .find(|r| r.address == "service/checkout-api")
        .unwrap();
    rt().block_on(driver.apply(&r, &[])).unwrap();
    let text = std::fs::read_to_string(dir.path().join("service/checkout-api.yaml")).unwrap();
    assert!(text.contains("kind: ExternalSecret"), "{text}");
    assert!(text.contains("key: prod/checkout/stripe"), "{text}");
    assert!(text.contains("secretKeyRef:"), "{text}");
}

/// Rendered files can name internal hosts and secret references: they are the daemon user's
/// only (files 0600, directories 0700), written through a temporary file created exclusively
/// under an unpredictable name, so a link planted where the old predictable name was is never
/// written through (`docs/SECURITY.md`).
#[test]
fn rendered_files_are_private_and_never_written_through_a_planted_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    let driver = LocalDriver::new(&root, None);
    let resource = example_resources()
        .into_iter()
        .find(|r| r.kind == Kind::Service)
        .unwrap();
    let kind_dir = root.join("service");
    std::fs::create_dir_all(&kind_dir).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let planted = kind_dir.join(format!(
        ".{}.yaml.tmp-{}",
        resource.name,
        std::process::id()
    ));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    rt().block_on(async { driver.apply(&resource, &[]).await.unwrap() });
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let file = kind_dir.join(format!("{}.yaml", resource.name));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains(&resource.name),
        "the resource was rendered"
    );
    // Directories the driver creates are private too.
    let fresh = dir.path().join("fresh");
    let driver = LocalDriver::new(&fresh, None);
    rt().block_on(async { driver.apply(&resource, &[]).await.unwrap() });
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("service")), 0o700);
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(fresh.join("service"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `ignore-changes` holds at apply in the local driver too: what the file holds on an ignored
/// field stays; other fields follow the declaration.
#[test]
fn ignore_changes_keeps_what_the_file_holds() {
    let dir = tempfile::tempdir().unwrap();
    let driver = LocalDriver::new(dir.path(), None);
    let mut resource = example_resources()
        .into_iter()
        .find(|r| r.kind == Kind::Service)
        .unwrap();
    rt().block_on(async { driver.apply(&resource, &[]).await.unwrap() });
    let file = dir
        .path()
        .join("service")
        .join(format!("{}.yaml", resource.name));
    let replicas = |text: &str| -> serde_json::Value {
        drivers::local::from_yaml(text).unwrap()[0]["spec"]["replicas"].clone()
    };
    let declared = match resource.fields() {
        planner::model::Spec::Service(s) => s.replicas,
        other => panic!("a service's spec: {other:?}"),
    };
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(replicas(&text), declared);
    // Scaled by hand (or by a controller) to 15.
    let scaled = text.replacen(&format!("replicas: {declared}"), "replicas: 15", 1);
    assert_ne!(scaled, text);
    std::fs::write(&file, &scaled).unwrap();
    resource.spec.lifecycle.ignore_changes = vec!["replicas".into()];
    resource.spec.labels.insert("tier".into(), "web".into());
    rt().block_on(async { driver.apply(&resource, &[]).await.unwrap() });
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(replicas(&text), 15, "{text}");
    assert!(
        text.contains("tier: web"),
        "the rest follows the declaration: {text}"
    );
    resource.spec.lifecycle.ignore_changes.clear();
    rt().block_on(async { driver.apply(&resource, &[]).await.unwrap() });
    assert_eq!(replicas(&std::fs::read_to_string(&file).unwrap()), declared);
}
