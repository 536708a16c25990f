//! `policy "name" { kinds …; teams …; environments …; deny|warn "<CEL>" message="…" }`: the
//! rules are compiled here so a broken expression is a located diagnostic; they are evaluated
//! against resources in `crate::policy`.

use super::*;

pub(crate) const POLICY_FIELDS: &[FieldDef] = &[
    once("kinds", "kinds \"bucket\" \"database\""),
    once("teams", "teams \"payments\" \"data\""),
    once("environments", "environments \"prod\""),
    repeated(
        "deny",
        "deny \"self.public\" message=\"buckets are never public\"",
    ),
    repeated(
        "warn",
        "warn \"self.replicas < 2\" message=\"one replica is a single point of failure\"",
    ),
];

/// The kinds of a scope's `kinds "bucket" "database"` field (a policy's, an approval's).
pub(crate) fn scope_kinds(block: &Block<'_>, what: &str, diags: &mut Vec<Diagnostic>) -> Vec<Kind> {
    let mut kinds = Vec::new();
    if let Some(n) = block.one("kinds")
        && shape(n, 1, usize::MAX, &[], block.def("kinds").usage, diags)
    {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        for a in &n.args {
            let v = Val {
                value: &a.value,
                span: a.span,
                what: what.into(),
            };
            if let Some(k) = one_of(v, &names, diags).and_then(|k| Kind::parse(&k)) {
                kinds.push(k);
            }
        }
    }
    kinds
}

/// The string arguments of a scope field (`teams "a" "b"`).
pub(crate) fn scope_strings(
    block: &Block<'_>,
    field: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<String> {
    let Some(n) = block.one(field) else {
        return Vec::new();
    };
    let usage = block.def(field).usage;
    if !shape(n, 1, usize::MAX, &[], usage, diags) {
        return Vec::new();
    }
    (0..n.args.len())
        .filter_map(|i| string(arg(n, i)?, usage, diags))
        .map(|s| s.value)
        .collect()
}

pub(crate) fn decode_policy(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Policy> {
    let name = decode_name(node, "policy", diags)?;
    let block = Block::new(
        format!("policy `{}`", name.value),
        node.name.span,
        &node.children,
        POLICY_FIELDS,
        &[],
        diags,
    );
    let kinds = scope_kinds(&block, "policy kind", diags);
    let teams = scope_strings(&block, "teams", diags);
    let environments = scope_strings(&block, "environments", diags);
    let mut rules = Vec::new();
    for (level, field) in [(PolicyLevel::Deny, "deny"), (PolicyLevel::Warn, "warn")] {
        for n in block.all(field) {
            let usage = block.def(field).usage;
            if !shape(n, 1, 1, &["message"], usage, diags) {
                continue;
            }
            let Some(expression) = arg(n, 0).and_then(|v| string(v, usage, diags)) else {
                continue;
            };
            let message = required_prop(n, "message", usage, diags)
                .and_then(|v| string(v, "message=\"why this is not allowed\"", diags));
            if let Err(e) = cel::Program::compile(&expression.value) {
                diags.push(
                    Diagnostic::error(
                        "invalid-policy",
                        format!("the {field} rule of policy `{}` is not valid CEL", name.value),
                    )
                    .with_label(expression.span, first_line(&e.to_string()))
                    .with_help(
                        "write a CEL expression over `self` (the resource's fields, `-` written `_`) and `environment`, true when the resource breaks the rule: `self.public`, `self.nodes.max > 8`",
                    ),
                );
                continue;
            }
            let Some(message) = message else {
                continue;
            };
            rules.push(PolicyRule {
                level,
                expression,
                message: message.value,
            });
        }
    }
    Some(Policy {
        name,
        kinds,
        teams,
        environments,
        rules,
    })
}

/// The parser's first line (its report repeats the expression and a caret below it), with its
/// `ERROR: <input>:1:16: ` prefix turned into a position inside the expression.
fn first_line(message: &str) -> String {
    let line = message
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("does not parse")
        .trim();
    let Some(rest) = line.strip_prefix("ERROR: <input>:") else {
        return line.to_string();
    };
    let mut parts = rest.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_line), Some(column), Some(text)) => {
            format!("at character {column} of the expression:{text}")
        }
        _ => line.to_string(),
    }
}
