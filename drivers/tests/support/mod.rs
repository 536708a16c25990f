//! Desired resources made by the planner from a stack written in the test, as the engine hands
//! them to a driver.

#![allow(dead_code)]

use drivers::DesiredResource;

/// The snapshot of a one-file stack, which must be valid.
pub fn snapshot(text: &str) -> planner::Snapshot {
    let analysis = planner::analyze(vec![planner::StackFile {
        path: "platform.kdl".into(),
        text: text.into(),
    }]);
    assert!(
        !analysis.has_errors(),
        "{}",
        analysis.render_diagnostics(planner::diagnostic::Colour::Never)
    );
    analysis.snapshot.expect("a valid stack has a snapshot")
}

/// Every resource of `snapshot`, for the stack named `stack`, nothing wired yet.
pub fn desired(stack: &str, snapshot: &planner::Snapshot) -> Vec<DesiredResource> {
    snapshot
        .resources
        .iter()
        .map(|(address, r)| DesiredResource {
            stack: stack.into(),
            address: address.clone(),
            kind: r.kind,
            name: r.name.clone(),
            spec: planner::resource_spec::ResourceSpec::parse(r.kind, r.spec.as_str())
                .expect("the planner's spec reads as its kind"),
            wired: Default::default(),
            resumed: false,
        })
        .collect()
}

/// Every resource of `snapshot` (of its own stack), with stand-ins for its wired outputs as the
/// engine would resolve them (`wired-<ENV>`).
pub fn desired_wired(snapshot: &planner::Snapshot) -> Vec<DesiredResource> {
    desired(&snapshot.stack, snapshot)
        .into_iter()
        .map(|mut d| {
            d.wired = d
                .spec
                .wires()
                .iter()
                .map(|wire| (wire.env.to_string(), format!("wired-{}", wire.env)))
                .collect();
            d
        })
        .collect()
}

/// A Kubernetes driver talking to `emulator` through a kubeconfig written into `dir`, with the
/// rest of `settings` as given.
pub fn emulator_driver(
    emulator: &test_support::kube_emulator::KubeEmulator,
    dir: &tempfile::TempDir,
    settings: drivers::kubernetes::Settings,
) -> drivers::kubernetes::KubernetesDriver {
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, emulator.kubeconfig()).expect("write the kubeconfig");
    drivers::kubernetes::KubernetesDriver::new(drivers::kubernetes::Settings {
        kubeconfig: Some(path),
        context: Some("emulator".into()),
        ..settings
    })
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Applies `d`, observes its kind in `stack`, and asserts the live objects hold exactly what
/// the driver expects on the fields it manages.
pub fn apply_and_observe_without_drift(
    rt: &tokio::runtime::Runtime,
    driver: &drivers::kubernetes::KubernetesDriver,
    d: &DesiredResource,
) -> drivers::Applied {
    use drivers::Driver;
    let applied = rt.block_on(driver.apply(d, &[])).expect("applied");
    let observed = rt
        .block_on(driver.observe(&d.stack, &[d.kind]))
        .expect("observed");
    let live = observed
        .iter()
        .find(|o| o.address == d.address)
        .unwrap_or_else(|| panic!("{} not observed", d.address));
    let expected = driver.expected(d).expect("expected");
    assert_eq!(
        drivers::drift::managed_differences(&expected, &live.live, &[]),
        [],
        "{}",
        d.address
    );
    applied
}

/// Checks `files` (manifests, one per file; JSON is YAML) with `kubernetes-validate --strict`,
/// the official schemas offline.
pub fn kubernetes_validate(files: &[std::path::PathBuf]) {
    let out = std::process::Command::new("kubernetes-validate")
        .arg("--strict")
        .args(files)
        .output()
        .expect("kubernetes-validate is installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The repository's root.
pub fn repo() -> &'static std::path::Path {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Every resource of the example's Kubernetes variant that the variant routes to the cluster,
/// wired as by `desired_wired`.
pub fn variant_resources() -> Vec<DesiredResource> {
    let dir = tempfile::tempdir().unwrap();
    test_support::copy_dir(&repo().join("platform-state-example"), dir.path());
    let platform = dir.path().join("platform.kdl");
    let text = std::fs::read_to_string(&platform).unwrap();
    std::fs::write(
        &platform,
        test_support::example_kubernetes_variant(&text, "cluster"),
    )
    .unwrap();
    let snapshot = planner::analyze_dir(dir.path())
        .unwrap()
        .snapshot
        .expect("the variant is valid");
    let routed: Vec<String> = snapshot
        .resources
        .iter()
        .filter(|(_, r)| r.driver == "kubernetes")
        .map(|(address, _)| address.clone())
        .collect();
    desired_wired(&snapshot)
        .into_iter()
        .filter(|d| routed.contains(&d.address))
        .collect()
}
