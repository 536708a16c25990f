//! `env` children: literal values, output wiring (`from=`) and secret references (`secret=`).

use super::*;

pub(crate) fn decode_env(
    block: &Block<'_>,
    references: &mut Vec<Reference>,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, EnvValue> {
    let mut env = BTreeMap::new();
    // Each name set so far, borrowed from its node (a service has a handful of env: a list is
    // searched faster than a map is built).
    let mut first_span: Vec<(&str, Span)> = Vec::new();
    let usage = "env \"NAME\" \"value\" | env \"NAME\" from=\"kind/name.output\" | env \"NAME\" secret=\"aws-sm:path\"";
    for e in block.all("env") {
        if !shape(e, 1, 2, &["from", "secret"], usage, diags) {
            continue;
        }
        let Some(name) = string(arg(e, 0).expect("shape checked"), "\"LOG_LEVEL\"", diags) else {
            continue;
        };
        let valid_name = name
            .value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            diags.push(
                Diagnostic::error(
                    "invalid-name",
                    format!("invalid environment variable name \"{}\"", name.value),
                )
                .with_label(name.span, "not a variable name")
                .with_help(
                    "use letters, digits and `_`, not starting with a digit, e.g. \"LOG_LEVEL\"",
                ),
            );
            continue;
        }
        if let Some((_, first)) = first_span.iter().find(|(n, _)| *n == name.value) {
            diags.push(
                Diagnostic::error(
                    "duplicate-field",
                    format!("env `{}` is set twice in {}", name.value, block.owner),
                )
                .with_label(name.span, "set again here")
                .with_label(*first, "first set here")
                .with_help("keep one of them"),
            );
            continue;
        }
        if let Value::String(set) = &e.args[0].value {
            first_span.push((set, name.span));
        }
        let sources = usize::from(e.args.len() == 2)
            + usize::from(e.prop("from").is_some())
            + usize::from(e.prop("secret").is_some());
        if sources != 1 {
            diags.push(
                Diagnostic::error(
                    "wrong-arguments",
                    format!(
                        "env `{}` needs exactly one of a value, `from=` or `secret=`",
                        name.value
                    ),
                )
                .with_label(
                    e.name.span,
                    if sources == 0 {
                        "no value"
                    } else {
                        "more than one value"
                    },
                )
                .with_help(format!("write it as `{usage}`")),
            );
            continue;
        }
        let value = if let Some(v) = arg(e, 1) {
            let Some(s) = string(v, "\"info\"", diags) else {
                continue;
            };
            if secrets::name_looks_secret(&name.value)
                && !s.value.is_empty()
                && secrets::literal_looks_secret(&s.value).is_none()
            {
                diags.push(
                    Diagnostic::error("secret-literal", format!("`{}` looks like a credential but is given a literal value", name.value))
                        .with_redacted_label(s.span, "literal value where a secret reference is required")
                        .with_help(format!("store it in a secret manager and reference it: `env \"{}\" secret=\"aws-sm:prod/app/{}\"`", name.value, name.value.to_lowercase().replace('_', "-"))),
                );
                continue;
            }
            EnvValue::Literal(s.value)
        } else if let Some(v) = prop(e, "from") {
            let Some(s) = string(v, "from=\"database/orders-db.url\"", diags) else {
                continue;
            };
            let Some((addr_text, output)) = split_output(&s.value) else {
                diags.push(
                    Diagnostic::error(
                        "invalid-address",
                        format!("invalid output reference \"{}\"", s.value),
                    )
                    .with_label(s.span, "expected `kind/name.output`")
                    .with_help("wire an output as `from=\"database/orders-db.url\"`"),
                );
                continue;
            };
            let Some(target) = parse_address_at(addr_text, s.span, &[], diags) else {
                continue;
            };
            references.push(Reference {
                target: target.clone(),
                output: Some(output.to_string()),
                via: EdgeVia::Env(name.value.clone()),
                span: s.span,
                allowed_kinds: &[],
            });
            EnvValue::From {
                address: target.key(),
                output: output.to_string(),
            }
        } else {
            let v = prop(e, "secret").expect("counted above");
            let Some(s) = string(v, "secret=\"aws-sm:prod/app/key\"", diags) else {
                continue;
            };
            if let Err((label, help)) = secrets::check_reference(&s.value) {
                diags.push(
                    Diagnostic::error(
                        "invalid-secret-ref",
                        format!("invalid secret reference for env `{}`", name.value),
                    )
                    .with_label(s.span, label)
                    .with_help(help),
                );
                continue;
            }
            EnvValue::Secret(s.value)
        };
        env.insert(name.value, value);
    }
    env
}

/// Splits `kind/name.output` at the dot after the name.
pub(crate) fn split_output(s: &str) -> Option<(&str, &str)> {
    let slash = s.find('/')?;
    let dot = s[slash..].find('.')? + slash;
    let (addr, output) = (&s[..dot], &s[dot + 1..]);
    (!output.is_empty()).then_some((addr, output))
}
