//! `platformd` with the AWS driver, end to end against a moto server on loopback: buckets are
//! created with their configuration and tags, kept (drift made with the SDK is found and
//! corrected), refused when the name belongs to someone else, and deleted when allowed. Results
//! are read back through the SDK, not from platformd.

mod support;

use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use support::Workspace;
use test_support::moto::MotoServer;

const REGION: &str = "eu-west-1";

fn platform(moto: &MotoServer) -> String {
    format!(
        "platform \"shop\" {{\n    environment \"test\"\n    driver \"local\" {{\n        path \".platformd/rendered\"\n    }}\n    driver \"aws\" {{\n        region \"{REGION}\"\n        endpoint-url \"{}\"\n    }}\n    route \"bucket\" to=\"aws\"\n}}\n\nteam \"data\" {{\n    owner \"data-oncall@acme.example\"\n}}\n",
        moto.url()
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
    rt.block_on(
        s3.create_bucket()
            .bucket("shop-exports")
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                    .build(),
            )
            .send(),
    )
    .unwrap();
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
