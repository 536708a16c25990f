//! `platformd` with the AWS driver, end to end against a moto server on loopback: buckets are
//! created with their configuration and tags, kept (drift made with the SDK is found and
//! corrected), refused when the name belongs to someone else, and deleted when allowed. Results
//! are read back through the SDK, not from platformd.

mod support;

use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use support::Workspace;
use test_support::moto::MotoServer;

const REGION: &str = "eu-west-1";

/// The platform routing buckets to AWS. The endpoint (moto) is the operator's to set
/// (`AWS_ENDPOINT_URL`, [`workspace`]): a stack may not choose where signed requests go.
fn platform(_moto: &MotoServer) -> String {
    format!(
        "platform \"shop\" {{\n    environment \"test\"\n    driver \"local\" {{\n        path \".platformd/rendered\"\n    }}\n    driver \"aws\" {{\n        region \"{REGION}\"\n    }}\n    route \"bucket\" to=\"aws\"\n}}\n\nteam \"data\" {{\n    owner \"data-oncall@acme.example\"\n}}\n"
    )
}

const EXPORTS: &str = "bucket \"exports\" {\n    team \"data\"\n    versioning #true\n    expire-after-days 30\n    labels cost-center=\"analytics\"\n}\n";

fn workspace(moto: &MotoServer, buckets: &str) -> Workspace {
    let mut ws = Workspace::new();
    ws.env.push(("AWS_ACCESS_KEY_ID".into(), "testing".into()));
    ws.env
        .push(("AWS_SECRET_ACCESS_KEY".into(), "testing".into()));
    ws.env
        .push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
    ws.env.push(("AWS_ENDPOINT_URL".into(), moto.url()));
    ws.stack(&[("platform.kdl", &platform(moto)), ("buckets.kdl", buckets)]);
    ws
}

/// Versioning as the account has it, read with the SDK (moto answers with a root element the SDK
/// does not decode; the status is read from that answer the way the driver does).
fn versioning(rt: &tokio::runtime::Runtime, s3: &aws_sdk_s3::Client, bucket: &str) -> bool {
    match rt.block_on(s3.get_bucket_versioning().bucket(bucket).send()) {
        Ok(out) => out.status() == Some(&BucketVersioningStatus::Enabled),
        Err(e) => drivers_versioning_from_raw(&e).expect("a versioning answer"),
    }
}

use drivers::aws::versioning_from_raw as drivers_versioning_from_raw;

/// A bucket made outside platformd, in the test region.
fn create_bucket_by_hand(rt: &tokio::runtime::Runtime, s3: &aws_sdk_s3::Client, name: &str) {
    rt.block_on(
        s3.create_bucket()
            .bucket(name)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                    .build(),
            )
            .send(),
    )
    .unwrap();
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_bucket_is_created_kept_and_deleted_in_the_account() {
    let moto = MotoServer::start();
    let s3 = moto.s3(REGION);
    let rt = rt();
    let ws = workspace(&moto, EXPORTS);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());

    // Read back through the SDK.
    let bucket = "shop-exports";
    assert!(versioning(&rt, &s3, bucket), "versioning enabled");
    let lifecycle = rt
        .block_on(
            s3.get_bucket_lifecycle_configuration()
                .bucket(bucket)
                .send(),
        )
        .unwrap();
    assert_eq!(
        lifecycle.rules()[0].expiration().and_then(|e| e.days()),
        Some(30)
    );
    let block = rt
        .block_on(s3.get_public_access_block().bucket(bucket).send())
        .unwrap();
    assert_eq!(
        block
            .public_access_block_configuration()
            .and_then(|c| c.block_public_acls()),
        Some(true)
    );
    let encryption = rt
        .block_on(s3.get_bucket_encryption().bucket(bucket).send())
        .unwrap();
    let algorithm = encryption
        .server_side_encryption_configuration()
        .and_then(|c| c.rules().first())
        .and_then(|r| r.apply_server_side_encryption_by_default())
        .map(|d| d.sse_algorithm().as_str().to_string());
    assert_eq!(algorithm.as_deref(), Some("AES256"));
    let tags = rt
        .block_on(s3.get_bucket_tagging().bucket(bucket).send())
        .unwrap();
    let tag = |k: &str| {
        tags.tag_set()
            .iter()
            .find(|t| t.key() == k)
            .map(|t| t.value().to_string())
    };
    assert_eq!(
        tag("app.kubernetes.io/managed-by").as_deref(),
        Some("platformd")
    );
    assert_eq!(
        tag("platformd.dev/address").as_deref(),
        Some("bucket/exports")
    );
    assert_eq!(tag("cost-center").as_deref(), Some("analytics"));

    assert_eq!(
        ws.run(&["plan", "stack", "--detailed-exitcode"]).code,
        0,
        "a second plan is empty"
    );
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 0);

    // Versioning suspended by hand: drift, then corrected.
    rt.block_on(
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Suspended)
                    .build(),
            )
            .send(),
    )
    .unwrap();
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift.stdout.contains("bucket/exports drifted")
            && drift
                .stdout
                .contains("versioning: applied true → live false"),
        "{}",
        drift.stdout
    );
    let fix = ws.run(&["apply", "stack", "--refresh", "--auto-approve"]);
    assert_eq!(fix.code, 0, "{}", fix.all());
    assert!(versioning(&rt, &s3, bucket), "versioning enabled again");

    // Deleting a bucket is a protected delete: blocked, then allowed.
    ws.stack(&[("platform.kdl", &platform(&moto)), ("buckets.kdl", "")]);
    let blocked = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(blocked.code, 3, "{}", blocked.all());
    assert!(rt.block_on(s3.head_bucket().bucket(bucket).send()).is_ok());
    let run = ws.run(&[
        "apply",
        "stack",
        "--auto-approve",
        "--allow-destroy",
        "bucket/exports",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        rt.block_on(s3.head_bucket().bucket(bucket).send()).is_err(),
        "deleted"
    );
}

#[test]
fn a_bucket_name_someone_else_holds_is_refused_not_adopted() {
    let moto = MotoServer::start();
    let s3 = moto.s3(REGION);
    let rt = rt();
    create_bucket_by_hand(&rt, &s3, "shop-exports");
    let ws = workspace(&moto, EXPORTS);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("the bucket name `shop-exports` is taken by a bucket platformd does not own"),
        "{}",
        run.stderr
    );
    let tags = rt.block_on(s3.get_bucket_tagging().bucket("shop-exports").send());
    assert!(
        tags.map(|t| t.tag_set().is_empty()).unwrap_or(true),
        "the other bucket was not tagged as ours"
    );
    let drift = ws.run(&["drift", "stack", "--format", "json"]);
    assert!(!drift.stdout.contains("shop-exports"), "{}", drift.all());
}

/// A bucket and an RDS instance made by hand, then imported: neither is recreated (the
/// bucket keeps its object, the instance its creation time), both carry platformd's tags and
/// are brought to the declaration. `removed` lets them go with their tags off, nothing deleted.
#[test]
fn an_existing_bucket_and_rds_instance_are_imported_without_recreating() {
    let moto = MotoServer::start();
    let s3 = moto.s3(REGION);
    let rds = moto.rds(REGION);
    let rt = rt();
    create_bucket_by_hand(&rt, &s3, "shop-exports");
    rt.block_on(
        s3.put_object()
            .bucket("shop-exports")
            .key("kept.csv")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"a,b\n"))
            .send(),
    )
    .unwrap();
    rt.block_on(
        rds.create_db_instance()
            .db_instance_identifier("shop-orders-db")
            .engine("postgres")
            .db_instance_class("db.t4g.medium")
            .allocated_storage(20)
            .master_username("admin")
            .master_user_password("not-a-real-one-1")
            .send(),
    )
    .unwrap();
    let created = |rt: &tokio::runtime::Runtime| {
        rt.block_on(
            rds.describe_db_instances()
                .db_instance_identifier("shop-orders-db")
                .send(),
        )
        .unwrap()
        .db_instances()[0]
            .clone()
    };
    let before = created(&rt);
    let platform = platform(&moto).replace(
        "route \"bucket\" to=\"aws\"",
        "route \"bucket\" \"database\" to=\"aws\"",
    );
    let database = "database \"orders-db\" {\n    team \"data\"\n    engine \"postgres\"\n    size \"db.r6g.large\"\n    storage-gb 100\n}\n";
    let ws = workspace(&moto, "");
    ws.stack(&[
        ("platform.kdl", &platform),
        ("data.kdl", &format!("{EXPORTS}{database}")),
    ]);
    let refused = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused
            .all()
            .contains("adopt it with `import \"database/orders-db\" id=\"shop-orders-db\"`"),
        "{}",
        refused.all()
    );

    ws.stack(&[
        ("platform.kdl", &platform),
        (
            "data.kdl",
            &format!(
                "{EXPORTS}{database}\nimport \"bucket/exports\" id=\"shop-exports\"\nimport \"database/orders-db\" id=\"shop-orders-db\"\n"
            ),
        ),
    ]);
    let plan = ws.run(&["plan", "stack"]);
    assert!(plan.stdout.contains("2 to import"), "{}", plan.stdout);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let objects = rt
        .block_on(s3.list_objects_v2().bucket("shop-exports").send())
        .unwrap();
    assert_eq!(objects.contents().len(), 1, "the bucket was not recreated");
    assert!(
        versioning(&rt, &s3, "shop-exports"),
        "brought to the declaration"
    );
    let after = created(&rt);
    assert_eq!(
        after.instance_create_time(),
        before.instance_create_time(),
        "the instance was not recreated"
    );
    assert_eq!(after.db_instance_class(), Some("db.r6g.large"));
    assert!(after.tag_list().iter().any(
        |t| t.key() == Some("platformd.dev/address") && t.value() == Some("database/orders-db")
    ));
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 0);

    ws.stack(&[
        ("platform.kdl", &platform),
        (
            "data.kdl",
            "removed \"bucket/exports\"\nremoved \"database/orders-db\"\n",
        ),
    ]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let kept = created(&rt);
    assert!(
        !kept
            .tag_list()
            .iter()
            .any(|t| t.key() == Some("platformd.dev/address")),
        "{:?}",
        kept.tag_list()
    );
    let tags = rt.block_on(s3.get_bucket_tagging().bucket("shop-exports").send());
    assert!(
        tags.map(|t| !t
            .tag_set()
            .iter()
            .any(|t| t.key() == "app.kubernetes.io/managed-by"))
            .unwrap_or(true),
        "the bucket's ownership tags are off"
    );
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 0);
}

const ORDERS: &str = "database \"orders-db\" {\n    team \"data\"\n    engine \"postgres\" version=\"16\"\n    size \"db.r6g.large\"\n    storage-gb 100\n    backup-retention-days 14\n    high-availability #true\n}\n\nservice \"api\" {\n    team \"data\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    replicas 1\n    port 8080\n    env \"DATABASE_URL\" from=\"database/orders-db.url\"\n}\n";

#[test]
fn a_database_is_an_rds_instance_whose_endpoint_is_wired_into_its_users() {
    let moto = MotoServer::start();
    let rds = moto.rds(REGION);
    let rt = rt();
    let platform = platform(&moto).replace(
        "route \"bucket\" to=\"aws\"",
        "route \"bucket\" \"database\" to=\"aws\"",
    );
    let ws = workspace(&moto, "");
    ws.stack(&[("platform.kdl", &platform), ("orders.kdl", ORDERS)]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());

    let described = rt
        .block_on(
            rds.describe_db_instances()
                .db_instance_identifier("shop-orders-db")
                .send(),
        )
        .unwrap();
    let instance = &described.db_instances()[0];
    assert_eq!(instance.engine(), Some("postgres"));
    assert_eq!(instance.db_instance_class(), Some("db.r6g.large"));
    assert_eq!(instance.allocated_storage(), Some(100));
    assert_eq!(instance.backup_retention_period(), Some(14));
    assert_eq!(instance.multi_az(), Some(true));
    assert_eq!(
        instance.deletion_protection(),
        Some(true),
        "databases are protected"
    );
    assert!(
        instance
            .tag_list()
            .iter()
            .any(|t| t.key() == Some("platformd.dev/address")
                && t.value() == Some("database/orders-db")),
        "{:?}",
        instance.tag_list()
    );
    // The service, on the local driver, got the real endpoint.
    let host = instance
        .endpoint()
        .and_then(|e| e.address())
        .unwrap()
        .to_string();
    let rendered = ws.read_rendered("service/api.yaml");
    assert!(
        rendered.contains(&host),
        "{host} not wired into:\n{rendered}"
    );
    assert!(!rendered.contains("password"), "no password in the URL");

    assert_eq!(
        ws.run(&["plan", "stack", "--detailed-exitcode"]).code,
        0,
        "a second plan is empty"
    );
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 0);

    // Backups shortened by hand: drift, then corrected with ModifyDBInstance.
    rt.block_on(
        rds.modify_db_instance()
            .db_instance_identifier("shop-orders-db")
            .backup_retention_period(1)
            .apply_immediately(true)
            .send(),
    )
    .unwrap();
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift
            .stdout
            .contains("backup-retention-days: applied 14 → live 1"),
        "{}",
        drift.stdout
    );
    assert_eq!(
        ws.run(&["apply", "stack", "--refresh", "--auto-approve"])
            .code,
        0
    );
    let described = rt
        .block_on(
            rds.describe_db_instances()
                .db_instance_identifier("shop-orders-db")
                .send(),
        )
        .unwrap();
    assert_eq!(
        described.db_instances()[0].backup_retention_period(),
        Some(14)
    );

    // Storage grown outside platformd (storage autoscaling) and `ignore-changes "storage-gb"`:
    // a later change leaves the storage alone at apply, and it is not drift.
    rt.block_on(
        rds.modify_db_instance()
            .db_instance_identifier("shop-orders-db")
            .allocated_storage(200)
            .apply_immediately(true)
            .send(),
    )
    .unwrap();
    let ignoring = ORDERS.replace(
        "    backup-retention-days 14\n",
        "    backup-retention-days 21\n    ignore-changes \"storage-gb\"\n",
    );
    ws.stack(&[("platform.kdl", &platform), ("orders.kdl", &ignoring)]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let described = rt
        .block_on(
            rds.describe_db_instances()
                .db_instance_identifier("shop-orders-db")
                .send(),
        )
        .unwrap();
    let instance = &described.db_instances()[0];
    assert_eq!(instance.allocated_storage(), Some(200), "storage was reset");
    assert_eq!(instance.backup_retention_period(), Some(21));
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 0, "{}", drift.all());

    // Removed from the stack: blocked while protected, then deleted with a final snapshot.
    ws.stack(&[("platform.kdl", &platform), ("orders.kdl", "")]);
    assert_eq!(ws.run(&["apply", "stack", "--auto-approve"]).code, 3);
    let run = ws.run(&[
        "apply",
        "stack",
        "--auto-approve",
        "--allow-destroy",
        "database/orders-db",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    let gone = rt.block_on(
        rds.describe_db_instances()
            .db_instance_identifier("shop-orders-db")
            .send(),
    );
    assert!(gone.is_err(), "deleted");
    let snapshots = rt
        .block_on(
            rds.describe_db_snapshots()
                .db_snapshot_identifier("shop-orders-db-final")
                .send(),
        )
        .unwrap();
    assert_eq!(
        snapshots.db_snapshots().len(),
        1,
        "a final snapshot was taken"
    );
}

const POOL: &str = "gpu-pool \"l4\" {\n    team \"data\"\n    accelerator \"nvidia-l4\"\n    instance-type \"g6.xlarge\"\n    nodes min=0 max=4\n    capacity \"spot\"\n    idle-shutdown-after \"2h\"\n}\n";

/// The platform with `routes` (besides buckets) on `aws` and extra `settings` in its block.
fn platform_routing(moto: &MotoServer, routes: &str, settings: &str) -> String {
    platform(moto)
        .replace(
            "route \"bucket\" to=\"aws\"",
            &format!("route \"bucket\" {routes} to=\"aws\""),
        )
        .replace(
            &format!("region \"{REGION}\"\n"),
            &format!("region \"{REGION}\"\n{settings}"),
        )
}

fn pool_platform(moto: &MotoServer, settings: &str) -> String {
    platform_routing(moto, "\"gpu-pool\"", settings)
}

#[test]
fn a_gpu_pool_needs_its_cluster_settings_at_plan_time() {
    let moto = MotoServer::start();
    let ws = workspace(&moto, "");
    ws.stack(&[
        ("platform.kdl", &pool_platform(&moto, "")),
        ("pool.kdl", POOL),
    ]);
    let run = ws.run(&["plan", "stack"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "error[missing-field]: driver `aws` needs `eks-cluster`, `node-role-arn`, `subnets`"
        ) && run.stderr.contains("--> stack/platform.kdl:")
            && run.stderr.contains("gpu-pool/l4 is routed to `aws`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_gpu_pool_is_an_eks_node_group_with_autoscaler_tags() {
    let moto = MotoServer::start();
    let eks = moto.eks(REGION);
    let rt = rt();
    rt.block_on(
        eks.create_cluster()
            .name("prod")
            .role_arn("arn:aws:iam::123456789012:role/eks")
            .resources_vpc_config(
                aws_sdk_eks::types::VpcConfigRequest::builder()
                    .subnet_ids("subnet-a")
                    .build(),
            )
            .send(),
    )
    .unwrap();
    let settings = "        eks-cluster \"prod\"\n        node-role-arn \"arn:aws:iam::123456789012:role/gpu-nodes\"\n        subnets \"subnet-a,subnet-b\"\n";
    let ws = workspace(&moto, "");
    ws.stack(&[
        ("platform.kdl", &pool_platform(&moto, settings)),
        ("pool.kdl", POOL),
    ]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());

    let describe = || {
        rt.block_on(
            eks.describe_nodegroup()
                .cluster_name("prod")
                .nodegroup_name("shop-l4")
                .send(),
        )
        .unwrap()
        .nodegroup()
        .cloned()
        .unwrap()
    };
    let group = describe();
    let scaling = group.scaling_config().unwrap();
    assert_eq!((scaling.min_size(), scaling.max_size()), (Some(0), Some(4)));
    assert_eq!(group.capacity_type().map(|c| c.as_str()), Some("SPOT"));
    assert_eq!(group.instance_types(), ["g6.xlarge"]);
    assert_eq!(
        group
            .labels()
            .and_then(|l| l.get("platformd.dev/gpu-pool"))
            .map(String::as_str),
        Some("l4")
    );
    assert_eq!(group.taints()[0].key(), Some("nvidia.com/gpu"));
    let tags = group.tags().unwrap();
    assert_eq!(
        tags.get("k8s.io/cluster-autoscaler/prod")
            .map(String::as_str),
        Some("owned")
    );
    assert_eq!(
        tags.get(
            "k8s.io/cluster-autoscaler/node-template/autoscaling-options/scaledownunneededtime"
        )
        .map(String::as_str),
        Some("2h")
    );
    assert_eq!(
        ws.run(&["plan", "stack", "--detailed-exitcode"]).code,
        0,
        "a second plan is empty"
    );
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 0);

    // The maximum changed by hand: drift, then corrected.
    rt.block_on(
        eks.update_nodegroup_config()
            .cluster_name("prod")
            .nodegroup_name("shop-l4")
            .scaling_config(
                aws_sdk_eks::types::NodegroupScalingConfig::builder()
                    .min_size(0)
                    .max_size(9)
                    .desired_size(1)
                    .build(),
            )
            .send(),
    )
    .unwrap();
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift.stdout.contains("max: applied 4 → live 9"),
        "{}",
        drift.stdout
    );
    let fix = ws.run(&["apply", "stack", "--refresh", "--auto-approve"]);
    assert_eq!(fix.code, 0, "{}", fix.all());
    assert_eq!(describe().scaling_config().unwrap().max_size(), Some(4));

    // Idle shutdown holds the pool at `nodes min` 0: EKS keeps a maximum of 1 (its floor) and
    // a desired size of 0, which is neither drift nor a pending change; a wake restores it.
    for (k, v) in &ws.env {
        // SAFETY: nextest runs each test in its own process; no other thread reads the env.
        unsafe { std::env::set_var(k, v) };
    }
    let store = daemon::store::Store::open(&ws.path().join(".platformd")).unwrap();
    let ops = daemon::ops::Ops::new(
        store,
        std::sync::Arc::new(daemon::ops::TracingProgress),
        "test",
    );
    let report = rt
        .block_on(ops.scale_down(&daemon::ops::IdleObservation {
            address: "gpu-pool/l4".into(),
            idle_for: std::time::Duration::from_secs(3 * 3600),
            figure: "GPU utilisation 0% (idle at ≤ 5%)".into(),
            now: 1_795_400_000,
        }))
        .unwrap();
    assert!(
        matches!(&report, daemon::ops::LifecycleReport::Applied { outcome, .. } if outcome.complete())
    );
    let scaling = describe().scaling_config().cloned().unwrap();
    assert_eq!(
        (
            scaling.min_size(),
            scaling.max_size(),
            scaling.desired_size()
        ),
        (Some(0), Some(1), Some(0))
    );
    assert_eq!(ws.run(&["plan", "stack", "--detailed-exitcode"]).code, 0);
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 0);
    let wake = ws.run(&["wake", "gpu-pool/l4"]);
    assert_eq!(wake.code, 0, "{}", wake.all());
    assert!(wake.stdout.contains("Woke gpu-pool/l4."), "{}", wake.stdout);
    assert_eq!(describe().scaling_config().unwrap().max_size(), Some(4));
}

#[test]
fn kill_9_during_an_aws_apply_then_restart_converges_without_duplicates() {
    let moto = MotoServer::start();
    let ws = workspace(&moto, "");
    let stack = ws.path().join("stack");
    test_support::generate::write_stack(&stack, 300, 31).unwrap();
    let platform = std::fs::read_to_string(stack.join("platform.kdl")).unwrap();
    let aws = format!(
        "    driver \"aws\" {{\n        region \"{REGION}\"\n    }}\n    route \"bucket\" \"database\" to=\"aws\"\n}}\n"
    );
    let at = platform.find("\n}\n").unwrap() + 1;
    std::fs::write(
        stack.join("platform.kdl"),
        format!("{}{aws}{}", &platform[..at], &platform[at + 2..]),
    )
    .unwrap();
    let state = ws.path().join(".platformd");
    let killed_midway = ws.kill_apply_at(&[20, 60, 120], 300, 4);
    assert!(
        killed_midway >= 2,
        "the kills must land mid-apply ({killed_midway} did)"
    );
    let run = ws.run(&["apply", "stack", "--auto-approve", "--parallelism", "4"]);
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
        "the account holds what the store says: {}",
        drift.all()
    );
    let t = support::Tally::of(&state).unwrap();
    assert_eq!(t.applies.len(), 4, "one history row per apply started");
    assert_eq!(t.open_intents(), 0);
    // One bucket per declared bucket, none twice (names are identifiers; nothing else appeared).
    let s3 = moto.s3(REGION);
    let buckets = rt().block_on(s3.list_buckets().send()).unwrap();
    let declared = ws
        .store()
        .resource_statuses()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "bucket")
        .count();
    assert_eq!(buckets.buckets().len(), declared);
}

const CHAT: &str = "ai-endpoint \"chat\" {\n    team \"data\"\n    model \"meta-llama/Llama-3.1-8B-Instruct\" revision=\"main\"\n    runtime \"sagemaker\"\n    instance-type \"ml.g4dn.xlarge\"\n    replicas 1\n}\n\nservice \"assistant\" {\n    team \"data\"\n    image \"ghcr.io/acme/assistant:1.0.0\"\n    replicas 1\n    port 8080\n    env \"MODEL_URL\" from=\"ai-endpoint/chat.url\"\n}\n";

const SAGEMAKER_ROLE: &str = "arn:aws:iam::123456789012:role/sagemaker";

fn endpoint_platform(moto: &MotoServer, settings: &str) -> String {
    platform_routing(moto, "\"ai-endpoint\"", settings)
}

#[test]
fn an_ai_endpoint_needs_a_sagemaker_runtime_and_role_at_plan_time() {
    let moto = MotoServer::start();
    let ws = workspace(&moto, "");
    ws.stack(&[
        ("platform.kdl", &endpoint_platform(&moto, "")),
        ("chat.kdl", CHAT),
    ]);
    let run = ws.run(&["plan", "stack"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "error[missing-field]: driver `aws` needs `sagemaker-execution-role` to make SageMaker endpoints"
        ) && run.stderr.contains("ai-endpoint/chat is routed to `aws`"),
        "{}",
        run.stderr
    );

    let bad_role = "        sagemaker-execution-role \"sagemaker\"\n";
    ws.stack(&[
        ("platform.kdl", &endpoint_platform(&moto, bad_role)),
        ("chat.kdl", CHAT),
    ]);
    let run = ws.run(&["plan", "stack"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "error[invalid-value]: `sagemaker-execution-role` \"sagemaker\" is not valid: an IAM role ARN"
        ) && run.stderr.contains("--> stack/platform.kdl:8:"),
        "{}",
        run.stderr
    );

    let role = format!("        sagemaker-execution-role \"{SAGEMAKER_ROLE}\"\n");
    ws.stack(&[
        ("platform.kdl", &endpoint_platform(&moto, &role)),
        (
            "chat.kdl",
            &CHAT.replace(
                "runtime \"sagemaker\"\n    instance-type \"ml.g4dn.xlarge\"",
                "runtime \"vllm\"\n    gpu-pool \"l4\" gpus=1",
            ),
        ),
        ("pool.kdl", POOL),
    ]);
    let run = ws.run(&["plan", "stack"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "error[unsupported-kind]: driver `aws` serves runtime \"sagemaker\", not `vllm`"
        ) && run.stderr.contains("--> stack/chat.kdl:1:1"),
        "{}",
        run.stderr
    );
}

/// The model, endpoint config and endpoint as SageMaker has them, read with the SDK.
struct Deployed {
    status: String,
    config: String,
    desired_count: Option<i32>,
    instance_type: String,
    model: String,
    image: String,
    model_id: String,
    tags: Vec<(String, String)>,
}

fn deployed(
    rt: &tokio::runtime::Runtime,
    sm: &aws_sdk_sagemaker::Client,
    name: &str,
) -> Option<Deployed> {
    let endpoint = rt
        .block_on(sm.describe_endpoint().endpoint_name(name).send())
        .ok()?;
    let config_name = endpoint.endpoint_config_name().unwrap().to_string();
    let config = rt
        .block_on(
            sm.describe_endpoint_config()
                .endpoint_config_name(&config_name)
                .send(),
        )
        .unwrap();
    let variant = &config.production_variants()[0];
    let model_name = variant.model_name().unwrap().to_string();
    let model = rt
        .block_on(sm.describe_model().model_name(&model_name).send())
        .unwrap();
    let container = model.primary_container().unwrap();
    let tags = rt
        .block_on(
            sm.list_tags()
                .resource_arn(endpoint.endpoint_arn().unwrap())
                .send(),
        )
        .unwrap();
    Some(Deployed {
        status: endpoint
            .endpoint_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        config: config_name,
        desired_count: endpoint.production_variants()[0].desired_instance_count(),
        instance_type: variant
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        model: model_name,
        image: container.image().unwrap_or("").to_string(),
        model_id: container
            .environment()
            .and_then(|e| e.get("HF_MODEL_ID"))
            .cloned()
            .unwrap_or_default(),
        tags: tags
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or("").to_string(),
                    t.value().unwrap_or("").to_string(),
                )
            })
            .collect(),
    })
}

#[test]
fn an_ai_endpoint_is_a_sagemaker_endpoint_scaled_in_place_and_deleted_with_its_revisions() {
    let moto = MotoServer::start();
    let sm = moto.sagemaker(REGION);
    let rt = rt();
    let role = format!("        sagemaker-execution-role \"{SAGEMAKER_ROLE}\"\n");
    let ws = workspace(&moto, "");
    ws.stack(&[
        ("platform.kdl", &endpoint_platform(&moto, &role)),
        ("chat.kdl", CHAT),
    ]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());

    // Read back through the SDK.
    let live = deployed(&rt, &sm, "shop-chat").expect("the endpoint exists");
    assert_eq!(live.status, "InService");
    assert!(
        live.config.starts_with("shop-chat-") && live.config.len() == "shop-chat-".len() + 8,
        "a revision-named endpoint config: {}",
        live.config
    );
    assert_eq!(
        live.model, live.config,
        "model and config share the revision"
    );
    assert_eq!(live.instance_type, "ml.g4dn.xlarge");
    assert_eq!(live.desired_count, Some(1));
    assert!(
        live.image.contains("huggingface-pytorch-tgi-inference"),
        "{}",
        live.image
    );
    assert_eq!(live.model_id, "meta-llama/Llama-3.1-8B-Instruct");
    assert!(
        live.tags
            .contains(&("platformd.dev/address".into(), "ai-endpoint/chat".into())),
        "{:?}",
        live.tags
    );
    let model = rt
        .block_on(sm.describe_model().model_name(&live.model).send())
        .unwrap();
    assert_eq!(model.execution_role_arn(), Some(SAGEMAKER_ROLE));
    // The endpoint's URL reached the service on the local driver.
    let rendered = ws.read_rendered("service/assistant.yaml");
    assert!(
        rendered.contains(&format!(
            "https://runtime.sagemaker.{REGION}.amazonaws.com/endpoints/shop-chat/invocations"
        )),
        "{rendered}"
    );
    assert_eq!(
        ws.run(&["plan", "stack", "--detailed-exitcode"]).code,
        0,
        "a second plan is empty"
    );
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 0);

    // Scaled by hand: drift, then corrected in place.
    rt.block_on(
        sm.update_endpoint_weights_and_capacities()
            .endpoint_name("shop-chat")
            .desired_weights_and_capacities(
                aws_sdk_sagemaker::types::DesiredWeightAndCapacity::builder()
                    .variant_name("primary")
                    .desired_instance_count(3)
                    .build(),
            )
            .send(),
    )
    .unwrap();
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift.stdout.contains("ai-endpoint/chat drifted")
            && drift.stdout.contains("replicas: applied 1 → live 3"),
        "{}",
        drift.stdout
    );
    let fix = ws.run(&["apply", "stack", "--refresh", "--auto-approve"]);
    assert_eq!(fix.code, 0, "{}", fix.all());
    let after = deployed(&rt, &sm, "shop-chat").unwrap();
    assert_eq!(after.desired_count, Some(1));
    assert_eq!(after.config, live.config, "scaling keeps the revision");

    // A declared replica change is also in place.
    let platform = endpoint_platform(&moto, &role);
    ws.stack(&[
        ("platform.kdl", &platform),
        ("chat.kdl", &CHAT.replace("replicas 1\n}", "replicas 2\n}")),
    ]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let scaled = deployed(&rt, &sm, "shop-chat").unwrap();
    assert_eq!(scaled.desired_count, Some(2));
    assert_eq!(scaled.config, live.config);

    // Removed from the stack: the endpoint, its configs and its models go.
    ws.stack(&[
        ("platform.kdl", &platform),
        (
            "chat.kdl",
            "service \"assistant\" {\n    team \"data\"\n    image \"ghcr.io/acme/assistant:1.0.0\"\n    replicas 1\n    port 8080\n}\n",
        ),
    ]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        deployed(&rt, &sm, "shop-chat").is_none(),
        "endpoint deleted"
    );
    let configs = rt.block_on(sm.list_endpoint_configs().send()).unwrap();
    assert!(configs.endpoint_configs().is_empty(), "{configs:?}");
    let models = rt.block_on(sm.list_models().send()).unwrap();
    assert!(models.models().is_empty(), "{models:?}");
}

/// Everything the AWS driver serves, in one graph with services on the local driver.
#[test]
fn one_stack_of_bucket_database_gpu_pool_and_sagemaker_endpoint_converges_and_keeps_its_tags() {
    let moto = MotoServer::start();
    let (s3, rds, eks, sm) = (
        moto.s3(REGION),
        moto.rds(REGION),
        moto.eks(REGION),
        moto.sagemaker(REGION),
    );
    let rt = rt();
    rt.block_on(
        eks.create_cluster()
            .name("prod")
            .role_arn("arn:aws:iam::123456789012:role/eks")
            .resources_vpc_config(
                aws_sdk_eks::types::VpcConfigRequest::builder()
                    .subnet_ids("subnet-a")
                    .build(),
            )
            .send(),
    )
    .unwrap();
    let settings = format!(
        "        eks-cluster \"prod\"\n        node-role-arn \"arn:aws:iam::123456789012:role/gpu-nodes\"\n        subnets \"subnet-a\"\n        sagemaker-execution-role \"{SAGEMAKER_ROLE}\"\n"
    );
    let platform = platform_routing(
        &moto,
        "\"database\" \"gpu-pool\" \"ai-endpoint\"",
        &settings,
    );
    let chat = CHAT.replace(
        "    replicas 1\n}",
        "    replicas 1\n    labels cost-center=\"ml\"\n}",
    );
    let ws = workspace(&moto, "");
    ws.stack(&[
        ("platform.kdl", &platform),
        ("buckets.kdl", EXPORTS),
        ("orders.kdl", ORDERS),
        ("pool.kdl", POOL),
        ("chat.kdl", &chat),
    ]);
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("6 applied"),
        "bucket, database, pool, endpoint and two services: {}",
        run.stdout
    );

    // Each exists in the account, read back through the SDK.
    assert!(
        rt.block_on(s3.head_bucket().bucket("shop-exports").send())
            .is_ok()
    );
    let instances = rt
        .block_on(
            rds.describe_db_instances()
                .db_instance_identifier("shop-orders-db")
                .send(),
        )
        .unwrap();
    assert_eq!(instances.db_instances().len(), 1);
    assert!(
        rt.block_on(
            eks.describe_nodegroup()
                .cluster_name("prod")
                .nodegroup_name("shop-l4")
                .send()
        )
        .is_ok()
    );
    let endpoint = deployed(&rt, &sm, "shop-chat").expect("the endpoint exists");
    assert!(endpoint.tags.contains(&("cost-center".into(), "ml".into())));
    assert_eq!(
        ws.run(&["plan", "stack", "--detailed-exitcode"]).code,
        0,
        "a second plan is empty"
    );

    // A label tag removed by hand from the endpoint: drift, then tagged again.
    rt.block_on(
        sm.delete_tags()
            .resource_arn(format!(
                "arn:aws:sagemaker:{REGION}:123456789012:endpoint/shop-chat"
            ))
            .tag_keys("cost-center")
            .send(),
    )
    .unwrap();
    let drift = ws.run(&["drift", "stack", "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift.stdout.contains("ai-endpoint/chat drifted")
            && drift.stdout.contains("tags.cost-center"),
        "{}",
        drift.stdout
    );
    let fix = ws.run(&["apply", "stack", "--refresh", "--auto-approve"]);
    assert_eq!(fix.code, 0, "{}", fix.all());
    let endpoint = deployed(&rt, &sm, "shop-chat").unwrap();
    assert!(
        endpoint.tags.contains(&("cost-center".into(), "ml".into())),
        "{:?}",
        endpoint.tags
    );
    assert_eq!(ws.run(&["drift", "stack", "--detailed-exitcode"]).code, 0);
}
