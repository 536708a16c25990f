//! Syntax tree → typed model. Decoding is per top-level node and never stops at the first
//! problem: a field that fails to decode falls back to its default (or leaves the resource out of
//! cross-checks) and its diagnostic is recorded.

mod env;
pub mod fields;
mod kinds;
mod lifecycle_blocks;
mod platform;
mod policy;
mod resource;
pub mod secrets;
mod tables;

use crate::diagnostic::Diagnostic;
use crate::model::*;
use crate::source::Span;
use crate::suggest;
use crate::syntax::{Node, Value};
use env::*;
use fields::*;
use kinds::*;
use lifecycle_blocks::*;
use platform::*;
pub use platform::{RESERVED_NAMESPACES, is_contained_relative_path};
use policy::*;
use resource::*;
use std::collections::BTreeMap;
use tables::*;
pub use tables::{ACCELERATORS, common_fields, kind_fields};

/// What one file (or several) decoded to, before cross-file checks.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    pub platforms: Vec<Platform>,
    pub teams: Vec<Team>,
    pub resources: Vec<Resource>,
    pub pricing: PricingOverrides,
    pub policies: Vec<Policy>,
    pub imports: Vec<Import>,
    pub moves: Vec<Moved>,
    pub removals: Vec<Removed>,
}

impl Decoded {
    /// Merges files' results in order, each vector grown once (resources are large, and
    /// growing by doubling copied them several times over).
    pub fn merge_all(parts: impl IntoIterator<Item = Decoded>) -> Decoded {
        let parts: Vec<Decoded> = parts.into_iter().collect();
        let mut out = Decoded::default();
        out.resources
            .reserve(parts.iter().map(|p| p.resources.len()).sum());
        out.teams.reserve(parts.iter().map(|p| p.teams.len()).sum());
        for part in parts {
            out.merge(part);
        }
        out
    }

    pub fn merge(&mut self, other: Decoded) {
        self.platforms.extend(other.platforms);
        self.teams.extend(other.teams);
        self.resources.extend(other.resources);
        self.policies.extend(other.policies);
        self.imports.extend(other.imports);
        self.moves.extend(other.moves);
        self.removals.extend(other.removals);
        self.pricing.instances.extend(other.pricing.instances);
        self.pricing.rates.extend(other.pricing.rates);
    }
}

/// Top-level node names other than resource kinds.
pub(crate) const TOP_LEVEL: &[&str] = &[
    "platform", "team", "pricing", "policy", "import", "moved", "removed",
];

pub fn decode_nodes(nodes: &[Node], diags: &mut Vec<Diagnostic>) -> Decoded {
    let mut out = Decoded::default();
    for node in nodes {
        annotations_unused(node, diags);
        // Resources scan themselves while decoding; the platform, teams, pricing and policies
        // are scanned here.
        if Kind::parse(&node.name.text).is_none() {
            scan_for_secret_literals(node, diags);
        }
        match &*node.name.text {
            "platform" => {
                if let Some(p) = decode_platform(node, diags) {
                    out.platforms.push(p);
                }
            }
            "team" => {
                if let Some(t) = decode_team(node, diags) {
                    out.teams.push(t);
                }
            }
            "pricing" => decode_pricing(node, &mut out.pricing, diags),
            "policy" => {
                if let Some(p) = decode_policy(node, diags) {
                    out.policies.push(p);
                }
            }
            "import" => out.imports.extend(decode_import(node, diags)),
            "moved" => out.moves.extend(decode_moved(node, diags)),
            "removed" => out.removals.extend(decode_removed(node, diags)),
            other => match Kind::parse(other) {
                Some(Kind::LlmQuota) => diags.push(
                    Diagnostic::error("unknown-kind", "`llm-quota` is declared in a team")
                        .with_label(node.name.span, "not a kind you declare")
                        .with_help("write it in the team: `team \"payments\" { llm-quota tokens-per-day=5000000 }`"),
                ),
                Some(kind) => {
                    if let Some(r) = decode_resource(kind, node, diags) {
                        out.resources.push(r);
                    }
                }
                None => {
                    let mut names: Vec<&str> = TOP_LEVEL.to_vec();
                    names.extend(
                        Kind::ALL
                            .iter()
                            .filter(|k| k.is_declared())
                            .map(|k| k.as_str()),
                    );
                    diags.push(
                        Diagnostic::error("unknown-kind", format!("unknown node `{other}`"))
                            .with_label(node.name.span, "not a kind of resource")
                            .with_help(suggest::help_for(other, &names, "top-level nodes")),
                    );
                }
            },
        }
    }
    out
}

/// The name argument of `kind "name" { ... }`, checked as a DNS-1123 label.
pub(crate) fn decode_name(
    node: &Node,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Spanned<String>> {
    // The usage and the example are written only for a message: every resource passes here.
    if node.args.len() != 1 || !node.props.is_empty() {
        let usage = format!("{} \"my-{what}\" {{ … }}", node.name.text);
        shape_of_declaration(node, &usage, diags);
        return None;
    }
    let value = arg(node, 0)?;
    let name = match value.value {
        Value::String(s) => Spanned::new(s.to_string(), value.span),
        _ => string(value, &format!("\"my-{what}\""), diags)?,
    };
    if let Some(problem) = dns_label_problem(&name.value) {
        diags.push(
            Diagnostic::error("invalid-name", format!("invalid name \"{}\": {problem}", name.value))
                .with_label(name.span, "not a DNS-1123 label")
                .with_help(format!(
                    "names become Kubernetes and cloud identifiers: lowercase letters, digits and `-`, at most 63 characters; try \"{}\"",
                    fix_dns_label(&name.value)
                )),
        );
        return None;
    }
    Some(name)
}

pub(crate) fn shape_of_declaration(node: &Node, usage: &str, diags: &mut Vec<Diagnostic>) -> bool {
    let mut ok = true;
    if node.args.len() != 1 {
        ok = false;
        let (span, label) = match node.args.get(1) {
            Some(a) => (a.span, "unexpected argument"),
            None => (node.name.span, "needs a name"),
        };
        diags.push(
            Diagnostic::error(
                "wrong-arguments",
                format!(
                    "`{}` takes one name argument, found {}",
                    node.name.text,
                    node.args.len()
                ),
            )
            .with_label(span, label)
            .with_help(format!("write it as `{usage}`")),
        );
    }
    for p in &node.props {
        ok = false;
        diags.push(
            Diagnostic::error(
                "unknown-property",
                format!("unknown property `{}` on `{}`", p.key.text, node.name.text),
            )
            .with_label(p.key.span, "unknown property")
            .with_help(format!("settings go inside the block: `{usage}`")),
        );
    }
    ok
}

pub(crate) fn single<'n>(
    block: &Block<'n>,
    name: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Val<'n>> {
    let node = block.one(name)?;
    let usage = block.def(name).usage;
    if !shape(node, 1, 1, &[], usage, diags) {
        return None;
    }
    arg(node, 0)
}

pub(crate) fn single_string(
    block: &Block<'_>,
    name: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Spanned<String>> {
    let value = single(block, name, diags)?;
    let usage = block.def(name).usage;
    let example = usage.split_once(' ').map_or("\"…\"", |(_, e)| e);
    string(value, example, diags)
}

pub(crate) fn single_int(
    block: &Block<'_>,
    name: &str,
    min: i128,
    max: i128,
    diags: &mut Vec<Diagnostic>,
) -> Option<i128> {
    let value = single(block, name, diags)?;
    integer(value, min, max, block.def(name).usage, diags)
}

pub(crate) fn single_bool(
    block: &Block<'_>,
    name: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<bool> {
    let value = single(block, name, diags)?;
    boolean(value, block.def(name).usage, diags)
}

pub(crate) fn single_enum(
    block: &Block<'_>,
    name: &str,
    allowed: &[&'static str],
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    one_of(single(block, name, diags)?, allowed, diags)
}

/// Refuses string values that look like credentials anywhere under a top-level node (a
/// resource, the platform and its driver settings, a team, a policy), except in `secret=`
/// references. The label is redacted so the diagnostic does not leak the value.
pub(crate) fn scan_for_secret_literals(node: &Node, diags: &mut Vec<Diagnostic>) {
    for child in &node.children {
        // `what` names the value only for a finding: every value of a stack passes through.
        let mut check = |value: &Value, span: Span, what: &dyn Fn() -> String| {
            if let Value::String(s) = value
                && let Some(kind) = secrets::literal_looks_secret(s)
            {
                diags.push(
                    Diagnostic::error("secret-literal", format!("{} contains what looks like {kind}", what()))
                        .with_redacted_label(span, "secret value in the stack")
                        .with_help("remove it from git history, rotate it, and reference it instead: `secret=\"aws-sm:prod/app/key\"`"),
                );
            }
        };
        for a in &child.args {
            check(&a.value, a.span, &|| format!("`{}`", child.name.text));
        }
        for p in child.props.iter().filter(|p| p.key.text != "secret") {
            check(&p.value, p.value_span, &|| {
                format!("`{}` of `{}`", p.key.text, child.name.text)
            });
        }
        // Nested blocks too: driver settings, a policy's rules, a resource's sub-blocks.
        scan_for_secret_literals(child, diags);
    }
}
