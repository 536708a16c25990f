//! GPU pools and AI endpoints.

use super::super::*;

pub(crate) fn decode_gpu_pool(
    block: &Block<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<GpuPoolSpec> {
    let accelerator = single_enum(block, "accelerator", ACCELERATORS, diags);
    let instance_type = single_string(block, "instance-type", diags).map(|s| s.value);
    let nodes = block.one("nodes").and_then(|n| {
        let usage = block.def("nodes").usage;
        if !shape(n, 0, 0, &["min", "max"], usage, diags) {
            return None;
        }
        let (min, max) = min_max(
            n,
            "nodes",
            usage,
            (0, 1000, "min=0"),
            (1, 1000, "max=8"),
            diags,
        )?;
        Some(NodeRange { min, max })
    });
    let capacity = single_enum(block, "capacity", Capacity::NAMES, diags)
        .and_then(|c| Capacity::parse(&c))
        .unwrap_or(Capacity::OnDemand);
    let idle_shutdown_after = idle_shutdown_after(block, diags);
    Some(GpuPoolSpec {
        accelerator: accelerator?,
        instance_type: instance_type?,
        nodes: nodes?,
        capacity,
        idle_shutdown_after,
    })
}

/// `idle-shutdown-after "2h"`: how long a resource may sit idle before the cost controller
/// scales it down.
fn idle_shutdown_after(block: &Block<'_>, diags: &mut Vec<Diagnostic>) -> Option<String> {
    single(block, "idle-shutdown-after", diags)
        .and_then(|v| {
            formatted(
                v,
                is_duration,
                "a duration like \"30m\", \"2h\" or \"1h30m\"",
                "\"2h\"",
                diags,
            )
        })
        .map(|s| s.value)
}

pub(crate) fn decode_ai_endpoint(
    block: &Block<'_>,
    references: &mut Vec<Reference>,
    diags: &mut Vec<Diagnostic>,
) -> Option<AiEndpointSpec> {
    let model = block.one("model").and_then(|n| {
        let usage = block.def("model").usage;
        if !shape(n, 1, 1, &["revision"], usage, diags) {
            return None;
        }
        let id = string(arg(n, 0)?, "\"meta-llama/Llama-3.1-8B-Instruct\"", diags)?;
        let revision = prop(n, "revision")
            .and_then(|v| string(v, "revision=\"main\"", diags))
            .map_or("main".into(), |s| s.value);
        Some(ModelRef {
            id: id.value,
            revision,
        })
    });
    let runtime = single_enum(block, "runtime", ModelRuntime::NAMES, diags)
        .and_then(|r| ModelRuntime::parse(&r));
    let gpu_pool = decode_pool_placement(block, "\"l4-inference\"", references, diags);
    let instance_type = single_string(block, "instance-type", diags);
    let replicas = single_int(block, "replicas", 0, 100, diags).unwrap_or(1) as u32;
    let env = decode_env(block, references, diags);
    let rate_limit = block.one("rate-limit").and_then(|n| {
        let usage = block.def("rate-limit").usage;
        if !shape(
            n,
            0,
            0,
            &["tokens-per-minute", "requests-per-minute"],
            usage,
            diags,
        ) {
            return None;
        }
        let tokens_per_minute = prop(n, "tokens-per-minute")
            .and_then(|v| integer(v, 1, 1_000_000_000_000, "tokens-per-minute=100000", diags))
            .map(|x| x as u64);
        let requests_per_minute = prop(n, "requests-per-minute")
            .and_then(|v| integer(v, 1, 1_000_000_000, "requests-per-minute=600", diags))
            .map(|x| x as u64);
        if tokens_per_minute.is_none() && requests_per_minute.is_none() {
            diags.push(
                Diagnostic::error("missing-field", "`rate-limit` sets no limit")
                    .with_label(
                        n.name.span,
                        "needs `tokens-per-minute=` or `requests-per-minute=`",
                    )
                    .with_help(format!("write it as `{usage}`")),
            );
        }
        Some(RateLimit {
            tokens_per_minute,
            requests_per_minute,
        })
    });
    let autoscale = decode_autoscale(block, diags);
    let canary = block.one("canary").and_then(|n| {
        let usage = block.def("canary").usage;
        if !shape(n, 0, 0, &["revision", "weight-percent"], usage, diags) {
            return None;
        }
        let revision = required_prop(n, "revision", usage, diags)
            .and_then(|v| string(v, "revision=\"v2\"", diags));
        let weight = required_prop(n, "weight-percent", usage, diags)
            .and_then(|v| integer(v, 1, 99, "weight-percent=10", diags));
        Some(Canary {
            revision: revision?.value,
            weight_percent: weight? as u32,
        })
    });
    let idle_shutdown_after = idle_shutdown_after(block, diags);
    let model_repository = block.one("model-repository").and_then(|n| {
        let usage = block.def("model-repository").usage;
        if !shape(n, 1, 1, &["prefix"], usage, diags) {
            return None;
        }
        let s = string(arg(n, 0)?, "\"bucket/model-artifacts\"", diags)?;
        let target = parse_address(&s, &[Kind::Bucket], diags)?;
        let prefix = prop(n, "prefix")
            .and_then(|v| string(v, "prefix=\"triton/\"", diags))
            .map_or(String::new(), |s| s.value);
        references.push(Reference {
            target: target.clone(),
            output: Some("name".into()),
            via: EdgeVia::DependsOn,
            span: s.span,
            allowed_kinds: &[Kind::Bucket],
        });
        Some((
            ModelRepository {
                bucket: target.name.clone(),
                prefix,
            },
            n.name.span,
        ))
    });
    let runtime = runtime?;
    // Triton serves only from a model repository; vLLM and TGI may (a model of one's own, not
    // on Hugging Face); SageMaker brings its own model store.
    let model_repository = match (runtime, model_repository) {
        (ModelRuntime::Triton, Some((repository, _))) => Some(repository),
        (ModelRuntime::Triton, None) => {
            diags.push(missing_field(
                &block.owner,
                block.owner_span,
                &block.def("model-repository"),
            ));
            return None;
        }
        (ModelRuntime::Sagemaker, Some((_, span))) => {
            diags.push(
                Diagnostic::error(
                    "wrong-arguments",
                    "`model-repository` is not for runtime \"sagemaker\"",
                )
                .with_label(span, "not used by sagemaker")
                .with_help("SageMaker serves the model of its image (`sagemaker-image`) by its id"),
            );
            return None;
        }
        (_, repository) => repository.map(|(r, _)| r),
    };
    // Self-hosted runtimes run on a GPU pool; SageMaker brings its own instances.
    let (gpu_pool, instance_type) = match (runtime, gpu_pool, instance_type) {
        (ModelRuntime::Sagemaker, Some((_, span)), _) => {
            diags.push(
                Diagnostic::error("wrong-arguments", "runtime \"sagemaker\" does not run on a gpu-pool")
                    .with_label(span, "not used by sagemaker")
                    .with_help("give the endpoint an `instance-type \"ml.g5.xlarge\"` instead, or choose runtime \"vllm\""),
            );
            return None;
        }
        (ModelRuntime::Sagemaker, None, Some(it)) => (None, Some(it.value)),
        (ModelRuntime::Sagemaker, None, None) => {
            diags.push(missing_field(
                &block.owner,
                block.owner_span,
                &block.def("instance-type"),
            ));
            return None;
        }
        (_, Some((placement, _)), None) => (Some(placement), None),
        (_, _, Some(it)) => {
            diags.push(
                Diagnostic::error(
                    "wrong-arguments",
                    format!("`instance-type` is only for runtime \"sagemaker\", not \"{runtime}\""),
                )
                .with_label(it.span, "not used by this runtime")
                .with_help("self-hosted runtimes run on a `gpu-pool \"name\" gpus=1`"),
            );
            return None;
        }
        (_, None, None) => {
            diags.push(missing_field(
                &block.owner,
                block.owner_span,
                &block.def("gpu-pool"),
            ));
            return None;
        }
    };
    Some(AiEndpointSpec {
        model: model?,
        runtime,
        gpu_pool,
        instance_type,
        replicas,
        env,
        rate_limit,
        autoscale,
        canary,
        idle_shutdown_after,
        model_repository,
        callers: BTreeMap::new(),
    })
}

/// `gpu-pool "name" gpus=N`: where a workload runs, and the edge to its pool; with the span of
/// the `gpu-pool` field.
pub(crate) fn decode_pool_placement(
    block: &Block<'_>,
    example: &str,
    references: &mut Vec<Reference>,
    diags: &mut Vec<Diagnostic>,
) -> Option<(PoolPlacement, Span)> {
    let n = block.one("gpu-pool")?;
    let usage = block.def("gpu-pool").usage;
    if !shape(n, 1, 1, &["gpus"], usage, diags) {
        return None;
    }
    let pool = string(arg(n, 0)?, example, diags)?;
    let gpus = prop(n, "gpus")
        .and_then(|v| integer(v, 1, 64, "gpus=1", diags))
        .unwrap_or(1) as u32;
    references.push(Reference {
        target: Address::new(Kind::GpuPool, pool.value.clone()),
        output: None,
        via: EdgeVia::GpuPool,
        span: pool.span,
        allowed_kinds: &[Kind::GpuPool],
    });
    Some((
        PoolPlacement {
            pool: pool.value,
            gpus,
        },
        n.name.span,
    ))
}
