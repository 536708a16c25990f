#![cfg(feature = "aws")]
//! The AWS driver's observation cost against moto: list calls per kind, plus a bounded set of
//! describes per bucket (S3 has no list that returns configuration) and none per database
//! (DescribeDBInstances returns it).

use drivers::aws::{AwsDriver, Settings};
use drivers::{DesiredResource, Driver};
use planner::model::Kind;
use serde_json::json;
use test_support::moto::MotoServer;

fn resource(kind: Kind, name: &str, spec: serde_json::Value) -> DesiredResource {
    DesiredResource {
        stack: "shop".into(),
        address: format!("{kind}/{name}"),
        kind,
        name: name.into(),
        spec,
        wired: Default::default(),
        resumed: false,
    }
}

#[test]
fn a_drift_scan_costs_lists_per_kind_and_bounded_describes() {
    let moto = MotoServer::start();
    // SAFETY: set before any thread of this test process reads the environment.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let driver = AwsDriver::new(Settings {
        region: Some("eu-west-1".into()),
        endpoint_url: Some(moto.url()),
        ..Settings::default()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut costs = Vec::new();
    let mut made = 0;
    for n in [2usize, 20] {
        while made < n {
            let bucket = resource(
                Kind::Bucket,
                &format!("b{made}"),
                json!({ "team": "data", "versioning": true, "public": false }),
            );
            rt.block_on(driver.apply(&bucket, &[])).unwrap();
            let db = resource(
                Kind::Database,
                &format!("d{made}"),
                json!({
                    "team": "data", "engine": "postgres", "version": "16", "size": "db.t4g.medium",
                    "storage-gb": 20, "backup-retention-days": 7, "high-availability": false,
                }),
            );
            rt.block_on(driver.apply(&db, &[])).unwrap();
            made += 1;
        }
        let before = driver.calls();
        let found = rt
            .block_on(driver.observe("shop", &[Kind::Bucket, Kind::Database]))
            .unwrap();
        assert_eq!(found.len(), 2 * n);
        costs.push(driver.calls() - before);
    }
    // One ListBuckets and one DescribeDBInstances page, plus five reads per bucket (tags,
    // versioning, lifecycle, public access block, encryption) and none per database.
    assert_eq!(costs, [2 + 5 * 2, 2 + 5 * 20]);
}
