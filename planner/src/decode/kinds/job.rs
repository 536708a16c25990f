//! `job`: batch and training work, once or on a schedule, optionally on a GPU pool.

use super::super::*;

pub(crate) fn decode_job(
    block: &Block<'_>,
    references: &mut Vec<Reference>,
    diags: &mut Vec<Diagnostic>,
) -> Option<JobSpec> {
    let image = decode_image(block, diags);
    let command = block
        .one("command")
        .map(|n| {
            let usage = block.def("command").usage;
            if !shape(n, 1, usize::MAX, &[], usage, diags) {
                return Vec::new();
            }
            n.args
                .iter()
                .filter_map(|a| {
                    string(
                        Val {
                            value: &a.value,
                            span: a.span,
                            what: "`command`".into(),
                        },
                        "\"python\"",
                        diags,
                    )
                    .map(|s| s.value)
                })
                .collect()
        })
        .unwrap_or_default();
    let resources = decode_resources(block, "500m", "1Gi", diags);
    let env = decode_env(block, references, diags);
    let gpu_pool = decode_pool_placement(block, "\"a100-training\"", references, diags)
        .map(|(placement, _)| placement);
    let schedule = single(block, "schedule", diags).and_then(|v| {
        let s = string(v, "\"0 3 * * *\"", diags)?;
        match crate::window::Cron::parse(&s.value) {
            Ok(_) => Some(s.value),
            Err(problem) => {
                diags.push(
                    Diagnostic::error("invalid-value", format!("schedule \"{}\" is not valid: {problem}", s.value))
                        .with_label(s.span, "not a cron schedule")
                        .with_help("five fields: minute hour day-of-month month day-of-week, e.g. `schedule \"0 3 * * *\"` (03:00 every day, UTC)"),
                );
                None
            }
        }
    });
    let completions = single_int(block, "completions", 1, 10_000, diags).unwrap_or(1) as u32;
    let parallelism = single_int(block, "parallelism", 1, 1_000, diags).unwrap_or(1) as u32;
    let backoff_limit = single_int(block, "backoff-limit", 0, 100, diags).unwrap_or(3) as u32;
    let timeout = single(block, "timeout", diags).and_then(|v| {
        formatted(
            v,
            crate::units::is_duration,
            "a duration such as `6h`",
            "\"6h\"",
            diags,
        )
        .map(|s| s.value)
    });
    Some(JobSpec {
        image: image?,
        command,
        resources,
        env,
        gpu_pool,
        schedule,
        completions,
        parallelism,
        backoff_limit,
        timeout,
    })
}
