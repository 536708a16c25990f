//! The Kubernetes driver (`drivers/src/kubernetes/`).

use crate::{Descriptor, Kinds, OnChange, OperatorOnly, Owner, Setting, ValueRule, Variants};

pub const KUBERNETES: Descriptor = Descriptor {
    driver: "kubernetes",
    kinds: Kinds::Only(&[
        "service",
        "ai-endpoint",
        "topic",
        "pipeline",
        "gpu-pool",
        "database",
        "llm-quota",
        "job",
    ]),
    settings: &[
        Setting {
            name: "context",
            owner: Owner::Both,
            doc: "a context of the operator's kubeconfig, by name",
            refusal: None,
            value: None,
            on_change: OnChange::Move,
        },
        Setting {
            name: "namespace",
            owner: Owner::Both,
            doc: "the namespace the stack's objects go to (never the cluster's own)",
            refusal: None,
            value: None,
            on_change: OnChange::Move,
        },
        Setting {
            name: "kubeconfig",
            owner: Owner::Operator,
            doc: "the kubeconfig file: a host path holding credentials",
            refusal: Some(OperatorOnly {
                what: "the kubeconfig",
                label: "a host path and credentials chosen by stack content",
                help: "remove it: the daemon's KUBECONFIG, its in-cluster service account, or `driver \"kubernetes\" kubeconfig=…` in its configuration gives the credentials; `context` may name one of its contexts",
            }),
            value: None,
            on_change: OnChange::Nothing,
        },
        Setting {
            name: "allowed-namespaces",
            owner: Owner::Operator,
            doc: "the namespaces the driver may write, comma-separated; every namespaced call outside them is refused",
            refusal: Some(OperatorOnly {
                what: "the namespaces it may write",
                label: "the operator's limit on the stack itself",
                help: "remove it: the operator sets `driver \"kubernetes\" allowed-namespaces=…` in the daemon's configuration",
            }),
            value: None,
            on_change: OnChange::Nothing,
        },
        Setting {
            name: "allow-exec-credentials",
            owner: Owner::Operator,
            doc: "\"true\" lets a kubeconfig credential plugin (exec, auth-provider) run",
            refusal: Some(OperatorOnly {
                what: "to run credential plugins",
                label: "a command run on the daemon's host",
                help: "remove it: only the operator may allow credential plugins, with `driver \"kubernetes\" allow-exec-credentials=\"true\"` in the daemon's configuration",
            }),
            value: None,
            on_change: OnChange::Nothing,
        },
        Setting {
            name: "node-class",
            owner: Owner::Stack,
            doc: "the Karpenter EC2NodeClass GPU pools use",
            refusal: None,
            value: None,
            on_change: OnChange::Update(&["gpu-pool"]),
        },
        Setting {
            name: "kafka-cluster",
            owner: Owner::Stack,
            doc: "the Strimzi Kafka cluster topics belong to",
            refusal: None,
            value: None,
            on_change: OnChange::Update(&["topic", "pipeline"]),
        },
        Setting {
            name: "ai-gateway",
            owner: Owner::Stack,
            doc: "the Envoy AI Gateway that routes to AI endpoints",
            refusal: None,
            value: None,
            on_change: OnChange::Update(&["ai-endpoint", "llm-quota"]),
        },
        Setting {
            name: "ai-gateway-url",
            owner: Owner::Stack,
            doc: "where workloads reach the AI gateway (the `url` of AI endpoints), default the Gateway's Service in the namespace",
            refusal: None,
            value: Some(ValueRule {
                valid: |v| v.starts_with("http://") || v.starts_with("https://"),
                expected: "an http:// or https:// URL",
                example: "ai-gateway-url \"http://envoy-ai.envoy-gateway-system.svc.cluster.local/v1\"",
            }),
            on_change: OnChange::Update(&["ai-endpoint"]),
        },
        runtime_image("vllm-image", "the vLLM serving image of AI endpoints"),
        runtime_image(
            "tgi-image",
            "the Text Generation Inference serving image of AI endpoints",
        ),
        runtime_image(
            "triton-image",
            "the Triton Inference Server image of AI endpoints",
        ),
        Setting {
            name: "clickhouse-keeper",
            owner: Owner::Stack,
            doc: "the ClickHouse Keeper ClickHouse databases coordinate through",
            refusal: None,
            value: None,
            on_change: OnChange::Update(&["database"]),
        },
        Setting {
            name: "kafka-connect-cluster",
            owner: Owner::Stack,
            doc: "the Kafka Connect cluster pipelines' connectors run on",
            refusal: None,
            value: None,
            on_change: OnChange::Update(&["pipeline"]),
        },
        Setting {
            name: "image-pull-secrets",
            owner: Owner::Stack,
            doc: "Secrets in the namespace every pod pulls its images with, comma-separated",
            refusal: None,
            value: Some(ValueRule {
                valid: |v| v.split(',').all(|name| is_object_name(name.trim())),
                expected: "Secret names (lowercase letters, digits, `-` and `.`) separated by commas",
                example: "image-pull-secrets \"ghcr-pull,mirror-pull\"",
            }),
            on_change: OnChange::Update(&["service", "pipeline", "job", "database", "ai-endpoint"]),
        },
        Setting {
            name: "force-conflicts",
            owner: Owner::Stack,
            doc: "\"false\" makes a field another manager owns a conflict instead of taking it",
            refusal: None,
            value: Some(ValueRule {
                valid: |v| v == "true" || v == "false",
                expected: "\"true\" or \"false\"",
                example: "force-conflicts \"false\"",
            }),
            on_change: OnChange::Nothing,
        },
    ],
    // PostgreSQL through CloudNativePG, ClickHouse through the Altinity operator, and
    // self-hosted model runtimes; other engines and SageMaker live in the cloud account.
    variants: &[
        Variants {
            kind: "database",
            field: "engine",
            served: &["postgres", "clickhouse"],
            message: "driver `kubernetes` serves postgres databases (CloudNativePG) and ClickHouse clusters (Altinity), not `{value}`",
            help: "route `database` to `aws` (RDS serves every engine), or use `engine \"postgres\"`",
        },
        Variants {
            kind: "ai-endpoint",
            field: "runtime",
            served: &["vllm", "tgi", "triton"],
            message: "driver `kubernetes` serves self-hosted runtimes (vllm, tgi, triton), not `{value}`",
            help: "route `ai-endpoint` to `aws` for SageMaker, or serve it with `runtime \"vllm\"`",
        },
    ],
    field_rules: &[],
    needs: &[],
    renames: Kinds::Only(&[]),
};

/// A Kubernetes object name (a DNS-1123 subdomain): at most 253 of lowercase letters, digits,
/// `-` and `.`, starting and ending with a letter or digit.
/// A setting replacing a runtime's serving image, so an operator can pin it by digest.
const fn runtime_image(name: &'static str, doc: &'static str) -> Setting {
    Setting {
        name,
        owner: Owner::Stack,
        doc,
        refusal: None,
        value: Some(ValueRule {
            valid: is_image_reference,
            expected: "an image reference, best pinned by digest (`repo@sha256:…`)",
            example: "vllm-image \"vllm/vllm-openai@sha256:<digest>\"",
        }),
        on_change: OnChange::Update(&["ai-endpoint"]),
    }
}

/// `registry/repo[:tag][@sha256:digest]`: no whitespace, a lowercase repository, and a digest,
/// when given, of 64 hex digits.
fn is_image_reference(s: &str) -> bool {
    let (name, digest) = match s.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (s, None),
    };
    let digest_ok = digest.is_none_or(|d| {
        d.strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    let repo = match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !tag.is_empty() => repo,
        _ => name,
    };
    digest_ok
        && !repo.is_empty()
        && !s.contains(char::is_whitespace)
        && !repo.ends_with('/')
        && repo.chars().all(|c| !c.is_ascii_uppercase())
}

fn is_object_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    name.len() <= 253
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}
