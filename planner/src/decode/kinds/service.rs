//! Workload fields: services, with health checks, autoscaling and the image.

use super::super::*;

pub(crate) fn decode_health_check(
    block: &Block<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<HealthCheck> {
    let n = block.one("health-check")?;
    let usage = block.def("health-check").usage;
    if !shape(
        n,
        0,
        0,
        &["path", "port", "initial-delay-seconds", "period-seconds"],
        usage,
        diags,
    ) {
        return None;
    }
    let path = formatted(
        required_prop(n, "path", usage, diags)?,
        |p| p.starts_with('/'),
        "an HTTP path starting with `/`",
        "path=\"/healthz\"",
        diags,
    )?;
    let port = prop(n, "port")
        .and_then(|v| integer(v, 1, 65535, "port=8080", diags))
        .map(|p| p as u16);
    let initial_delay_seconds = prop(n, "initial-delay-seconds")
        .and_then(|v| integer(v, 0, 3600, "initial-delay-seconds=5", diags))
        .unwrap_or(5) as u32;
    let period_seconds = prop(n, "period-seconds")
        .and_then(|v| integer(v, 1, 3600, "period-seconds=10", diags))
        .unwrap_or(10) as u32;
    Some(HealthCheck {
        path: path.value,
        port,
        initial_delay_seconds,
        period_seconds,
    })
}

pub(crate) fn decode_autoscale(
    block: &Block<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Autoscale> {
    let n = block.one("autoscale")?;
    let usage = block.def("autoscale").usage;
    if !shape(n, 0, 0, &["min", "max", "cpu-percent"], usage, diags) {
        return None;
    }
    let range = min_max(
        n,
        "autoscale",
        usage,
        (0, 10_000, "min=2"),
        (1, 10_000, "max=10"),
        diags,
    );
    let cpu_percent = prop(n, "cpu-percent")
        .and_then(|v| integer(v, 1, 100, "cpu-percent=70", diags))
        .unwrap_or(70);
    let (min, max) = range?;
    Some(Autoscale {
        min,
        max,
        cpu_percent: cpu_percent as u32,
    })
}

pub(crate) fn decode_image(block: &Block<'_>, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let v = single(block, "image", diags)?;
    let example = block
        .def("image")
        .usage
        .trim_start_matches("image ")
        .to_string();
    let s = formatted(
        v,
        is_image,
        "an image reference like \"ghcr.io/acme/app:1.0.0\"",
        &example,
        diags,
    )?;
    let tag = s
        .value
        .rsplit_once(':')
        .map(|(_, t)| t)
        .filter(|t| !t.contains('/'));
    if !s.value.contains('@') && matches!(tag, None | Some("latest")) {
        diags.push(
            Diagnostic::warning("mutable-image-tag", format!("image \"{}\" has no fixed tag", s.value))
                .with_label(s.span, "resolves to whatever was pushed last")
                .with_help("pin a version tag or a digest so every revision of the stack deploys the same bits"),
        );
    }
    Some(s.value)
}

pub(crate) fn decode_service(
    block: &Block<'_>,
    references: &mut Vec<Reference>,
    diags: &mut Vec<Diagnostic>,
) -> Option<ServiceSpec> {
    let image = decode_image(block, diags);
    let replicas = single_int(block, "replicas", 0, 1000, diags).unwrap_or(1) as u32;
    let port = single_int(block, "port", 1, 65535, diags).map(|p| p as u16);
    let resources = decode_resources(block, "250m", "256Mi", diags);
    let env = decode_env(block, references, diags);
    let health_check = decode_health_check(block, diags);
    let autoscale = decode_autoscale(block, diags);
    Some(ServiceSpec {
        image: image?,
        replicas,
        port,
        resources,
        env,
        health_check,
        autoscale,
    })
}
