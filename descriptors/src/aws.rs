//! The AWS driver (`drivers/src/aws/`).

use crate::{Descriptor, Kinds, OperatorOnly, Owner, Setting, ValueRule};

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
        },
        Setting {
            name: "region",
            owner: Owner::Both,
            doc: "the AWS region",
            refusal: None,
            value: None,
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
        },
        Setting {
            name: "eks-cluster",
            owner: Owner::Stack,
            doc: "the EKS cluster GPU pools' node groups join",
            refusal: None,
            value: None,
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
        },
        Setting {
            name: "sagemaker-image",
            owner: Owner::Stack,
            doc: "the serving image of SageMaker endpoints (default: the TGI image)",
            refusal: None,
            value: None,
        },
    ],
};

fn is_role_arn(v: &str) -> bool {
    v.starts_with("arn:") && v.contains(":role/")
}
