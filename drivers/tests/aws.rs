#![cfg(feature = "aws")]
//! The AWS driver's observation cost against moto: list calls per kind, plus a bounded set of
//! describes per bucket (S3 has no list that returns configuration) and per SageMaker endpoint
//! (tags, endpoint, endpoint config), and none per database (DescribeDBInstances returns it).

use drivers::aws::{AwsDriver, Settings};
use drivers::{DesiredResource, Driver};
use planner::model::Kind;
use serde_json::json;
use test_support::moto::MotoServer;

fn resource(kind: Kind, name: &str, spec: serde_json::Value) -> DesiredResource {
    DesiredResource::from_json("shop", kind, name, &spec).expect("a complete spec")
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
        sagemaker_execution_role: Some(ROLE.into()),
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
            let applied = rt.block_on(driver.apply(&bucket, &[])).unwrap();
            // What a ClickHouse backup into it is wired with: its name and its region.
            assert_eq!(applied.outputs["region"], "eu-west-1");
            let db = resource(
                Kind::Database,
                &format!("d{made}"),
                json!({
                    "team": "data", "engine": "postgres", "version": "16", "size": "db.t4g.medium",
                    "storage-gb": 20, "backup-retention-days": 7, "high-availability": false,
                }),
            );
            rt.block_on(driver.apply(&db, &[])).unwrap();
            let endpoint = resource(
                Kind::AiEndpoint,
                &format!("e{made}"),
                json!({
                    "team": "ml", "runtime": "sagemaker", "instance-type": "ml.g4dn.xlarge",
                    "replicas": 1, "model": { "id": "org/model", "revision": "main" },
                }),
            );
            rt.block_on(driver.apply(&endpoint, &[])).unwrap();
            made += 1;
        }
        let before = driver.calls();
        let found = rt
            .block_on(driver.observe("shop", &[Kind::Bucket, Kind::Database, Kind::AiEndpoint]))
            .unwrap();
        assert_eq!(found.len(), 3 * n);
        costs.push(driver.calls() - before);
    }
    // One ListBuckets, one DescribeDBInstances and one ListEndpoints page, plus five reads per
    // bucket (tags, versioning, lifecycle, public access block, encryption), three per
    // endpoint (tags, endpoint, endpoint config) and none per database.
    assert_eq!(costs, [3 + 8 * 2, 3 + 8 * 20]);
}

// SageMaker's UpdateEndpoint is not implemented by moto, and an emulator never throttles: these
// paths run against recorded answers (test_support::aws_recorded), through the driver's real
// SDK clients.

use test_support::aws_recorded::{Answer, Recorded};

const ROLE: &str = "arn:aws:iam::123456789012:role/sagemaker";

fn chat(revision: &str) -> DesiredResource {
    resource(
        Kind::AiEndpoint,
        "chat",
        json!({
            "team": "ml", "runtime": "sagemaker", "instance-type": "ml.g5.xlarge", "replicas": 2,
            "model": { "id": "meta-llama/Llama-3.1-8B-Instruct", "revision": revision },
        }),
    )
}

fn recorded_driver(recorded: &Recorded) -> AwsDriver {
    // SAFETY: set before any thread of this test process reads the environment.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    AwsDriver::with_http_client(
        Settings {
            region: Some("eu-west-1".into()),
            sagemaker_execution_role: Some(ROLE.into()),
            ..Settings::default()
        },
        recorded.http_client(),
        std::time::Duration::from_millis(1),
    )
}

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:sagemaker:eu-west-1:123456789012:{kind}/{name}")
}

/// ListTags' answer for something platformd made for `ai-endpoint/chat` in stack `shop`.
fn owned_tags() -> Answer {
    Answer::ok(json!({ "Tags": [
        { "Key": "app.kubernetes.io/managed-by", "Value": "platformd" },
        { "Key": "platformd.dev/stack", "Value": "shop" },
        { "Key": "platformd.dev/address", "Value": "ai-endpoint/chat" },
        { "Key": "platformd.dev/team", "Value": "ml" },
    ]}))
}

fn endpoint(config: &str, status: &str) -> Answer {
    Answer::ok(json!({
        "EndpointName": "shop-chat",
        "EndpointArn": arn("endpoint", "shop-chat"),
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "ProductionVariants": [{
            "VariantName": "primary", "CurrentInstanceCount": 2, "DesiredInstanceCount": 2,
        }],
        "CreationTime": 1.7e9,
        "LastModifiedTime": 1.7e9,
    }))
}

fn not_found(what: &str) -> Answer {
    Answer::error(
        400,
        "ValidationException",
        &format!("Could not find {what}"),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_model_change_moves_the_endpoint_onto_a_new_config_with_update_endpoint() {
    let probe = AwsDriver::new(Settings {
        region: Some("eu-west-1".into()),
        sagemaker_execution_role: Some(ROLE.into()),
        ..Settings::default()
    });
    let revision = |d: &DesiredResource| {
        probe.expected(d).unwrap()["endpoint-config"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (old, new) = (revision(&chat("main")), revision(&chat("v2")));
    assert_ne!(old, new, "a model revision is a new SageMaker revision");
    let recorded = Recorded::new([
        // apply
        endpoint(&old, "InService"),
        owned_tags(),
        not_found("model"),
        Answer::ok(json!({ "ModelArn": arn("model", &new) })),
        not_found("endpoint configuration"),
        Answer::ok(json!({ "EndpointConfigArn": arn("endpoint-config", &new) })),
        Answer::ok(json!({ "EndpointArn": arn("endpoint", "shop-chat") })),
        endpoint(&new, "Updating"),
        // wait_ready: SageMaker swaps the fleet, then the old revision is deleted
        endpoint(&new, "Updating"),
        endpoint(&new, "InService"),
        Answer::ok(json!({ "EndpointConfigs": [
            { "EndpointConfigName": old, "EndpointConfigArn": arn("endpoint-config", &old), "CreationTime": 1.7e9 },
            { "EndpointConfigName": new, "EndpointConfigArn": arn("endpoint-config", &new), "CreationTime": 1.7e9 },
        ]})),
        owned_tags(),
        Answer::ok(json!({})),
        Answer::ok(json!({ "Models": [
            { "ModelName": old, "ModelArn": arn("model", &old), "CreationTime": 1.7e9 },
            { "ModelName": new, "ModelArn": arn("model", &new), "CreationTime": 1.7e9 },
        ]})),
        owned_tags(),
        Answer::ok(json!({})),
    ]);
    let driver = recorded_driver(&recorded);
    let rt = rt();
    let applied = rt.block_on(driver.apply(&chat("v2"), &[])).unwrap();
    assert_eq!(
        applied.outputs["url"],
        "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/shop-chat/invocations"
    );
    rt.block_on(driver.wait_ready(&chat("v2"), std::time::Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        recorded.operations(),
        [
            "DescribeEndpoint",
            "ListTags",
            "DescribeModel",
            "CreateModel",
            "DescribeEndpointConfig",
            "CreateEndpointConfig",
            "UpdateEndpoint",
            "DescribeEndpoint",
            "DescribeEndpoint",
            "DescribeEndpoint",
            "ListEndpointConfigs",
            "ListTags",
            "DeleteEndpointConfig",
            "ListModels",
            "ListTags",
            "DeleteModel",
        ]
    );
    assert_eq!(recorded.unused(), 0);
    let model = recorded.body("CreateModel", 0);
    assert_eq!(model["ModelName"], new);
    assert_eq!(model["ExecutionRoleArn"], ROLE);
    assert_eq!(
        model["PrimaryContainer"]["Environment"]["HF_MODEL_REVISION"],
        "v2"
    );
    let config = recorded.body("CreateEndpointConfig", 0);
    let variant = &config["ProductionVariants"][0];
    assert_eq!(
        (
            &variant["ModelName"],
            &variant["InstanceType"],
            &variant["InitialInstanceCount"]
        ),
        (&json!(new), &json!("ml.g5.xlarge"), &json!(2))
    );
    let update = recorded.body("UpdateEndpoint", 0);
    assert_eq!(update["EndpointName"], "shop-chat");
    assert_eq!(update["EndpointConfigName"], new);
    assert_eq!(
        recorded.body("DeleteEndpointConfig", 0)["EndpointConfigName"],
        old
    );
    assert_eq!(recorded.body("DeleteModel", 0)["ModelName"], old);
}

#[test]
fn an_endpoint_that_is_still_updating_is_retried_not_updated_again() {
    let old = "shop-chat-00000000";
    let recorded = Recorded::new([endpoint(old, "Updating"), owned_tags()]);
    let driver = recorded_driver(&recorded);
    let err = rt().block_on(driver.apply(&chat("v2"), &[])).unwrap_err();
    assert!(err.retryable, "{err:?}");
    assert!(err.message.contains("is Updating"), "{}", err.message);
    assert_eq!(recorded.operations(), ["DescribeEndpoint", "ListTags"]);
}

#[test]
fn throttling_and_5xx_are_retryable_after_a_single_request() {
    for answer in [
        Answer::error(400, "ThrottlingException", "Rate exceeded"),
        Answer::error(503, "ServiceUnavailable", "Service is unavailable"),
        Answer::error(500, "InternalFailure", "internal error"),
    ] {
        let recorded = Recorded::new([answer.clone()]);
        let driver = recorded_driver(&recorded);
        let err = rt().block_on(driver.apply(&chat("main"), &[])).unwrap_err();
        assert!(err.retryable, "{answer:?}: {err:?}");
        assert!(
            err.message.contains("sagemaker:DescribeEndpoint shop-chat"),
            "{}",
            err.message
        );
        // The engine's backoff is the one retry loop: the SDK did not retry.
        assert_eq!(recorded.operations(), ["DescribeEndpoint"], "{answer:?}");
    }
}

#[test]
fn access_denied_names_the_action_and_the_resource() {
    let recorded = Recorded::new([Answer::error(
        400,
        "AccessDeniedException",
        "User: arn:aws:sts::123456789012:assumed-role/platformd is not authorized",
    )]);
    let driver = recorded_driver(&recorded);
    let err = rt().block_on(driver.apply(&chat("main"), &[])).unwrap_err();
    assert!(!err.retryable);
    assert!(
        err.message.starts_with(
            "access denied: platformd may not sagemaker:DescribeEndpoint on shop-chat; grant `sagemaker:DescribeEndpoint` to its role"
        ),
        "{}",
        err.message
    );
}
