//! The AWS driver (`drivers/src/aws/`).

use crate::{
    Descriptor, FieldRule, Kinds, Needs, OnChange, OperatorOnly, Owner, Setting, ValueRule,
    Variants, When,
};

/// Why a stack's AWS resources cannot follow a change of account or region.
const AWS_ELSEWHERE: &str = "AWS resources cannot move to another account or region: bucket names are global and data does not follow; declare a second `aws` driver for the new place and route new resources to it";

pub const AWS: Descriptor = Descriptor {
    driver: "aws",
    kinds: Kinds::Only(&["bucket", "database", "gpu-pool", "ai-endpoint"]),
    settings: &[
        Setting {
            name: "profile",
            owner: Owner::Both,
            doc: "a profile of the operator's AWS configuration, by name",
            refusal: None,
            value: None,
            on_change: OnChange::Refused(AWS_ELSEWHERE),
        },
        Setting {
            name: "region",
            owner: Owner::Both,
            doc: "the AWS region",
            refusal: None,
            value: None,
            on_change: OnChange::Refused(AWS_ELSEWHERE),
        },
        Setting {
            name: "endpoint-url",
            owner: Owner::Operator,
            doc: "an emulator or S3-compatible endpoint (also AWS_ENDPOINT_URL)",
            refusal: Some(OperatorOnly {
                what: "the AWS endpoint",
                label: "where requests signed with the operator's credentials are sent",
                help: "remove it: an emulator or S3-compatible endpoint is the operator's to set, with AWS_ENDPOINT_URL in the daemon's environment or `driver \"aws\" endpoint-url=…` in its configuration",
            }),
            value: None,
            on_change: OnChange::Nothing,
        },
        Setting {
            name: "eks-cluster",
            owner: Owner::Stack,
            doc: "the EKS cluster GPU pools' node groups join",
            refusal: None,
            value: None,
            on_change: OnChange::Move,
        },
        Setting {
            name: "node-role-arn",
            owner: Owner::Stack,
            doc: "the IAM role of GPU pools' nodes",
            refusal: None,
            value: Some(ValueRule {
                valid: is_role_arn,
                expected: "an IAM role ARN",
                example: "node-role-arn \"arn:aws:iam::123456789012:role/gpu-nodes\"",
            }),
            on_change: OnChange::Replace(&["gpu-pool"]),
        },
        Setting {
            name: "subnets",
            owner: Owner::Stack,
            doc: "the subnets of GPU pools' nodes, comma-separated",
            refusal: None,
            value: Some(ValueRule {
                valid: |v| v.split(',').all(|s| !s.trim().is_empty()),
                expected: "subnet ids separated by commas",
                example: "subnets \"subnet-a,subnet-b\"",
            }),
            on_change: OnChange::Replace(&["gpu-pool"]),
        },
        Setting {
            name: "sagemaker-execution-role",
            owner: Owner::Stack,
            doc: "the IAM role SageMaker endpoints run as",
            refusal: None,
            value: Some(ValueRule {
                valid: is_role_arn,
                expected: "an IAM role ARN",
                example: "sagemaker-execution-role \"arn:aws:iam::123456789012:role/sagemaker\"",
            }),
            on_change: OnChange::Update(&["ai-endpoint"]),
        },
        Setting {
            name: "sagemaker-image",
            owner: Owner::Stack,
            doc: "the serving image of SageMaker endpoints (default: the TGI image)",
            refusal: None,
            value: None,
            on_change: OnChange::Update(&["ai-endpoint"]),
        },
    ],
    variants: &[
        Variants {
            kind: "database",
            field: "engine",
            served: &["postgres", "mysql", "mariadb"],
            message: "driver `aws` does not serve ClickHouse (RDS has no ClickHouse engine)",
            help: "give it `driver \"kubernetes\"` (the Altinity clickhouse-operator runs it) or route `database` there",
        },
        // Model endpoints through SageMaker only.
        Variants {
            kind: "ai-endpoint",
            field: "runtime",
            served: &["sagemaker"],
            message: "driver `aws` serves runtime \"sagemaker\", not `{value}`",
            help: "route self-hosted runtimes to `kubernetes`, or use `runtime \"sagemaker\"` with an `instance-type`",
        },
    ],
    // SageMaker endpoints need an instance and scale through the endpoint's instance count.
    field_rules: &[
        FieldRule {
            kind: "ai-endpoint",
            when: When::Zero("replicas"),
            message: "a SageMaker endpoint needs at least one instance",
            help: "set `replicas 1` or more",
        },
        FieldRule {
            kind: "ai-endpoint",
            when: When::Set(&["idle-shutdown-after"]),
            message: "`idle-shutdown-after` is not served for SageMaker endpoints: they cannot scale to zero instances",
            help: "remove it, or serve the model with `runtime \"vllm\"` on `kubernetes`, where idle endpoints scale to 0",
        },
        FieldRule {
            kind: "ai-endpoint",
            when: When::Set(&["env"]),
            message: "`env` is not served for SageMaker endpoints: the serving container's environment is the driver's",
            help: "remove it, or serve the model with `runtime \"vllm\"` on `kubernetes`, where `env` (and secret references) reach the runtime",
        },
        FieldRule {
            kind: "ai-endpoint",
            when: When::Set(&["autoscale", "canary"]),
            message: "`autoscale` and `canary` are not served for SageMaker endpoints",
            help: "remove them and size the endpoint with `replicas`, or serve the model with `runtime \"vllm\"` on `kubernetes`",
        },
    ],
    // Account placement from the driver's settings: GPU pools are EKS node groups (cluster,
    // node role, subnets); SageMaker endpoints run as an execution role.
    needs: &[
        Needs {
            kind: "gpu-pool",
            settings: &["eks-cluster", "node-role-arn", "subnets"],
            what: "to make GPU pools (EKS node groups)",
            example: "`eks-cluster \"prod\"`, `node-role-arn \"arn:aws:iam::123456789012:role/gpu-nodes\"`, `subnets \"subnet-a,subnet-b\"`",
        },
        Needs {
            kind: "ai-endpoint",
            settings: &["sagemaker-execution-role"],
            what: "to make SageMaker endpoints",
            example: "`sagemaker-execution-role \"arn:aws:iam::123456789012:role/sagemaker\"`",
        },
    ],
    renames: Kinds::Only(&[]),
};

fn is_role_arn(v: &str) -> bool {
    v.starts_with("arn:") && v.contains(":role/")
}
