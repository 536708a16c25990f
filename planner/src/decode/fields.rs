//! Shape and value checks for one field node (`replicas 3`, `resources cpu="500m"`), shared by
//! every kind's decoder. Each helper pushes a diagnostic and returns `None` on bad input, so a
//! decoder reads as a list of fields and still reports every problem.

use crate::diagnostic::Diagnostic;
use crate::model::Spanned;
use crate::source::Span;
use crate::suggest;
use crate::syntax::{Node, Value};

pub use crate::units::{is_cpu, is_duration, is_memory};

/// A child field of a block: its name, whether it may repeat or must be present, and a usage
/// example shown in help lines.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub name: &'static str,
    pub repeat: bool,
    pub required: bool,
    pub usage: &'static str,
}

pub const fn once(name: &'static str, usage: &'static str) -> FieldDef {
    FieldDef {
        name,
        repeat: false,
        required: false,
        usage,
    }
}

pub const fn required(name: &'static str, usage: &'static str) -> FieldDef {
    FieldDef {
        name,
        repeat: false,
        required: true,
        usage,
    }
}

pub const fn repeated(name: &'static str, usage: &'static str) -> FieldDef {
    FieldDef {
        name,
        repeat: true,
        required: false,
        usage,
    }
}

/// The children of a block, grouped by field after checking for unknown and repeated fields.
pub struct Block<'n> {
    pub owner: String,
    pub owner_span: Span,
    /// The block's fields, ordered by [`name_key`] (stably: a repeated field keeps its order),
    /// beside their nodes. Decoders look up some fifty names per resource, most of them absent:
    /// a binary search over integers answers those without comparing a string.
    keys: Vec<u64>,
    nodes: Vec<&'n Node<'n>>,
    /// The [`name_bit`] of every field present: a name whose bit is clear is absent, which
    /// answers most lookups in a few instructions.
    present: u64,
    defs: &'static [FieldDef],
    extra_defs: &'static [FieldDef],
}

/// A field name as an integer: its length and its first seven bytes. Names of up to seven
/// bytes are equal exactly when their keys are; longer ones are compared as text after.
fn name_key(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut key = [0u8; 8];
    let n = bytes.len().min(7);
    key[..n].copy_from_slice(&bytes[..n]);
    key[7] = bytes.len().min(255) as u8;
    u64::from_be_bytes(key)
}

/// One of 64 bits for a name, from its length and its first and last bytes.
fn name_bit(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let (first, last) = match bytes {
        [] => (0, 0),
        [first, .., last] => (*first, *last),
        [only] => (*only, *only),
    };
    let mix = bytes.len().wrapping_mul(7) ^ usize::from(first).wrapping_mul(3) ^ usize::from(last);
    1 << (mix % 64)
}

/// Whether two names are the same, rejecting on length and first byte before comparing text:
/// each child of a block is matched against its table of fields.
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

impl<'n> Block<'n> {
    /// `owner` names the block in messages ("service `checkout-api`").
    pub fn new(
        owner: String,
        owner_span: Span,
        children: &'n [Node],
        defs: &'static [FieldDef],
        extra_defs: &'static [FieldDef],
        diags: &mut Vec<Diagnostic>,
    ) -> Block<'n> {
        let mut fields: Vec<(u64, &'n Node)> = Vec::with_capacity(children.len());
        // Which definitions were set, by position among `defs` then `extra_defs` (a table has
        // far fewer than 128 fields; past that, the fields so far are searched).
        let mut set: u128 = 0;
        let all = || defs.iter().chain(extra_defs.iter());
        for child in children {
            annotations_unused(child, diags);
            let Some((position, def)) = all()
                .enumerate()
                .find(|(_, d)| same_name(d.name, &child.name.text))
            else {
                let names: Vec<&str> = all().map(|d| d.name).collect();
                diags.push(
                    Diagnostic::error(
                        "unknown-field",
                        format!("unknown field `{}` in {owner}", child.name.text),
                    )
                    .with_label(child.name.span, "unknown field")
                    .with_help(suggest::help_for(
                        &child.name.text,
                        &names,
                        "fields",
                    )),
                );
                continue;
            };
            let seen = match 1u128.checked_shl(position as u32) {
                Some(bit) => {
                    let was_set = set & bit != 0;
                    set |= bit;
                    was_set
                }
                None => fields.iter().any(|(_, n)| n.name.text == def.name),
            };
            if !def.repeat
                && seen
                && let Some((_, first)) = fields.iter().find(|(_, n)| n.name.text == def.name)
            {
                diags.push(
                    Diagnostic::error(
                        "duplicate-field",
                        format!("`{}` is set twice in {owner}", def.name),
                    )
                    .with_label(child.name.span, "set again here")
                    .with_label(first.name.span, "first set here")
                    .with_help(format!("keep one `{}`; it takes a single value", def.name)),
                );
                continue;
            }
            fields.push((name_key(def.name), child));
        }
        // Keys tie only for long names sharing their first seven bytes: those are ordered by
        // name, so each name's nodes stay together.
        fields.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.name.text.cmp(&b.1.name.text))
        });
        let present = fields
            .iter()
            .fold(0, |bits, (_, n)| bits | name_bit(&n.name.text));
        let (keys, nodes) = fields.into_iter().unzip();
        let block = Block {
            owner,
            owner_span,
            keys,
            nodes,
            present,
            defs,
            extra_defs,
        };
        // Reported in the order of their names.
        let mut missing: Vec<&FieldDef> = all()
            .filter(|d| d.required && block.all(d.name).is_empty())
            .collect();
        missing.sort_by_key(|d| d.name);
        for def in missing {
            diags.push(missing_field(&block.owner, block.owner_span, def));
        }
        block
    }

    pub fn one(&self, name: &str) -> Option<&'n Node<'n>> {
        self.all(name).first().copied()
    }

    pub fn all(&self, name: &str) -> &[&'n Node<'n>] {
        if self.present & name_bit(name) == 0 {
            return &[];
        }
        let key = name_key(name);
        let start = self.keys.partition_point(|k| *k < key);
        let end = start + self.keys[start..].partition_point(|k| *k == key);
        let same_key = &self.nodes[start..end];
        if name.len() <= 7 || same_key.is_empty() {
            return same_key;
        }
        let from = same_key.partition_point(|n| &*n.name.text < name);
        let to = from + same_key[from..].partition_point(|n| n.name.text == name);
        &same_key[from..to]
    }

    pub fn def(&self, name: &str) -> FieldDef {
        *self
            .defs
            .iter()
            .chain(self.extra_defs)
            .find(|d| same_name(d.name, name))
            .unwrap_or(&FieldDef {
                name: "?",
                repeat: false,
                required: false,
                usage: "",
            })
    }
}

pub fn missing_field(owner: &str, span: Span, def: &FieldDef) -> Diagnostic {
    Diagnostic::error(
        "missing-field",
        format!("{owner} is missing required field `{}`", def.name),
    )
    .with_label(span, format!("needs `{}`", def.name))
    .with_help(format!("add `{}` inside the block", def.usage))
}

pub fn annotations_unused(node: &Node, diags: &mut Vec<Diagnostic>) {
    let spans = node
        .type_annotation
        .iter()
        .map(|t| t.span)
        .chain(node.entry_annotations.iter().copied());
    for span in spans {
        diags.push(
            Diagnostic::warning("type-annotation", "type annotations are ignored")
                .with_label(span, "ignored")
                .with_help("remove the `(type)` annotation; field types are fixed by the language"),
        );
    }
}

/// Checks the number of arguments and the property names of a field node.
pub fn shape(
    node: &Node,
    min_args: usize,
    max_args: usize,
    props: &[&'static str],
    usage: &str,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let mut ok = true;
    let n = node.args.len();
    if n < min_args || n > max_args {
        ok = false;
        let expected = match (min_args, max_args) {
            (0, 0) => "no arguments".to_string(),
            (a, b) if a == b => format!("{a} argument{}", if a == 1 { "" } else { "s" }),
            (a, usize::MAX) => format!("at least {a} argument{}", if a == 1 { "" } else { "s" }),
            (a, b) => format!("{a} to {b} arguments"),
        };
        let span = if n > max_args {
            node.args[max_args].span
        } else {
            node.name.span
        };
        let label = if n > max_args {
            "unexpected argument"
        } else {
            "missing argument"
        };
        diags.push(
            Diagnostic::error(
                "wrong-arguments",
                format!("`{}` takes {expected}, found {n}", node.name.text),
            )
            .with_label(span, label)
            .with_help(format!("write it as `{usage}`")),
        );
    }
    for prop in &node.props {
        if !props.contains(&&*prop.key.text) {
            ok = false;
            let help = if props.is_empty() {
                format!(
                    "`{}` takes no properties; write it as `{usage}`",
                    node.name.text
                )
            } else {
                suggest::help_for(&prop.key.text, props, "properties")
            };
            diags.push(
                Diagnostic::error(
                    "unknown-property",
                    format!(
                        "unknown property `{}` on `{}`",
                        prop.key.text, node.name.text
                    ),
                )
                .with_label(prop.key.span, "unknown property")
                .with_help(help),
            );
        }
    }
    if node.has_block && !node.children.is_empty() {
        ok = false;
        diags.push(
            Diagnostic::error(
                "unknown-field",
                format!("`{}` takes no child block", node.name.text),
            )
            .with_label(node.children[0].name.span, "unexpected child")
            .with_help(format!("write it as `{usage}`")),
        );
    }
    ok
}

/// A value with what it was, for typed extraction of args and props alike.
pub struct Val<'a> {
    pub value: &'a Value<'a>,
    pub span: Span,
    /// What the value is, in messages: "`replicas`" or "`min` of `nodes`".
    pub what: What<'a>,
}

/// What a value is, in messages. Written out only when a message needs it: decoding a large
/// stack reads millions of values, and almost none of them is wrong.
#[derive(Clone, Debug)]
pub enum What<'a> {
    /// A node's argument: "`replicas`".
    Arg(&'a str),
    /// A node's property: "`min` of `nodes`".
    Prop {
        key: &'a str,
        node: &'a str,
    },
    /// A label's value: "label `tier`".
    Label(&'a str),
    Text(std::borrow::Cow<'a, str>),
}

impl std::fmt::Display for What<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            What::Arg(node) => write!(f, "`{node}`"),
            What::Prop { key, node } => write!(f, "`{key}` of `{node}`"),
            What::Label(key) => write!(f, "label `{key}`"),
            What::Text(text) => f.write_str(text),
        }
    }
}

impl<'a> From<&'a str> for What<'a> {
    fn from(text: &'a str) -> What<'a> {
        What::Text(text.into())
    }
}

impl From<String> for What<'_> {
    fn from(text: String) -> Self {
        What::Text(text.into())
    }
}

pub fn arg<'a>(node: &'a Node, i: usize) -> Option<Val<'a>> {
    node.args.get(i).map(|a| Val {
        value: &a.value,
        span: a.span,
        what: What::Arg(&node.name.text),
    })
}

pub fn prop<'a>(node: &'a Node, key: &'a str) -> Option<Val<'a>> {
    node.prop(key).map(|p| Val {
        value: &p.value,
        span: p.value_span,
        what: What::Prop {
            key,
            node: &node.name.text,
        },
    })
}

/// A required property; reports `missing-field` when absent.
pub fn required_prop<'a>(
    node: &'a Node,
    key: &'a str,
    usage: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Val<'a>> {
    let v = prop(node, key);
    if v.is_none() {
        diags.push(
            Diagnostic::error(
                "missing-field",
                format!("`{}` is missing required property `{key}`", node.name.text),
            )
            .with_label(node.name.span, format!("needs `{key}=`"))
            .with_help(format!("write it as `{usage}`")),
        );
    }
    v
}

fn wrong_type(v: &Val<'_>, expected: &str, example: &str) -> Diagnostic {
    Diagnostic::error(
        "wrong-type",
        format!(
            "{} must be {expected}, found {}",
            v.what,
            v.value.type_name()
        ),
    )
    .with_label(v.span, format!("expected {expected}"))
    .with_help(format!("for example `{example}`"))
}

pub fn string(v: Val<'_>, example: &str, diags: &mut Vec<Diagnostic>) -> Option<Spanned<String>> {
    match v.value {
        Value::String(s) => Some(Spanned::new(s.to_string(), v.span)),
        _ => {
            diags.push(wrong_type(&v, "a string", example));
            None
        }
    }
}

/// An optional string property: its value when present and a string (a wrong type is reported).
pub fn string_prop(
    node: &Node,
    key: &str,
    example: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    prop(node, key)
        .and_then(|v| string(v, example, diags))
        .map(|s| s.value)
}

pub fn integer(
    v: Val<'_>,
    min: i128,
    max: i128,
    example: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<i128> {
    let n = match v.value {
        Value::Integer(n) => *n,
        Value::String(s) if s.trim().parse::<i128>().is_ok() => {
            diags.push(
                wrong_type(&v, "an integer", example)
                    .with_help(format!("remove the quotes: `{}`", s.trim())),
            );
            return None;
        }
        _ => {
            diags.push(wrong_type(&v, "an integer", example));
            return None;
        }
    };
    if n < min || n > max {
        diags.push(out_of_range(&v, n, min, max));
        return None;
    }
    Some(n)
}

/// The `min=` and `max=` of `node` (`what` in messages), each in its range, with min at most
/// max; reported at `min` otherwise.
pub fn min_max(
    node: &Node,
    what: &str,
    usage: &str,
    min_range: (i128, i128, &str),
    max_range: (i128, i128, &str),
    diags: &mut Vec<Diagnostic>,
) -> Option<(u32, u32)> {
    let min = required_prop(node, "min", usage, diags)
        .and_then(|v| integer(v, min_range.0, min_range.1, min_range.2, diags));
    let max = required_prop(node, "max", usage, diags)
        .and_then(|v| integer(v, max_range.0, max_range.1, max_range.2, diags));
    let (min, max) = (min?, max?);
    if min > max {
        let span = node.prop("min").map_or(node.name.span, |p| p.value_span);
        diags.push(
            Diagnostic::error(
                "out-of-range",
                format!("`{what}` min {min} is greater than max {max}"),
            )
            .with_label(span, "greater than max")
            .with_help("min must be at most max"),
        );
        return None;
    }
    Some((min as u32, max as u32))
}

fn out_of_range<T: std::fmt::Display>(v: &Val<'_>, n: T, min: T, max: T) -> Diagnostic {
    Diagnostic::error(
        "out-of-range",
        format!("{} is {n}, outside {min}..={max}", v.what),
    )
    .with_label(v.span, format!("must be between {min} and {max}"))
    .with_help(format!("use a value from {min} to {max}"))
}

pub fn number(
    v: Val<'_>,
    min: f64,
    max: f64,
    example: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<f64> {
    let n = match v.value {
        Value::Integer(n) => *n as f64,
        Value::Float(f) => *f,
        _ => {
            diags.push(wrong_type(&v, "a number", example));
            return None;
        }
    };
    if !(min..=max).contains(&n) || n.is_nan() {
        diags.push(out_of_range(&v, n, min, max));
        return None;
    }
    Some(n)
}

pub fn boolean(v: Val<'_>, example: &str, diags: &mut Vec<Diagnostic>) -> Option<bool> {
    match v.value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" || s == "false" => {
            diags.push(
                wrong_type(&v, "a boolean", example)
                    .with_help(format!("KDL v2 booleans are written `#{s}`")),
            );
            None
        }
        _ => {
            diags.push(wrong_type(&v, "a boolean", example));
            None
        }
    }
}

pub fn one_of(v: Val<'_>, allowed: &[&'static str], diags: &mut Vec<Diagnostic>) -> Option<String> {
    let Value::String(value) = v.value else {
        diags.push(wrong_type(&v, "a string", &format!("\"{}\"", allowed[0])));
        return None;
    };
    if allowed.contains(&&**value) {
        return Some(value.to_string());
    }
    diags.push(
        Diagnostic::error(
            "invalid-value",
            format!(
                "{} is \"{}\", which is not one of its values",
                v.what, value
            ),
        )
        .with_label(v.span, "not a valid value")
        .with_help(suggest::help_for(value, allowed, "values")),
    );
    None
}

/// A string checked by a predicate; `rule` explains what is accepted.
/// A value as a message quotes it: `"value"`, or `(redacted)` for what looks like a credential
/// (reported as `secret-literal` on its own; a message never echoes it).
pub fn shown_value(value: &str) -> String {
    if crate::decode::secrets::literal_looks_secret(value).is_some() {
        "(redacted)".to_string()
    } else {
        format!("\"{value}\"")
    }
}

/// Stack content choosing what only the operator may (`docs/SECURITY.md`): a host path, a
/// credential, a kubeconfig, a metrics endpoint. `what` is what was chosen, `label` marks it,
/// `help` says where the operator sets it.
pub fn operator_setting(what: &str, span: Span, label: &str, help: &str) -> Diagnostic {
    Diagnostic::error(
        "operator-setting",
        format!("stack content may not choose {what}"),
    )
    .with_label(span, label.to_string())
    .with_help(help.to_string())
    .with_note("stack content is untrusted input: see docs/SECURITY.md for what a stack may decide")
}

pub fn formatted(
    v: Val<'_>,
    valid: impl Fn(&str) -> bool,
    rule: &str,
    example: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Spanned<String>> {
    let what = v.what.clone();
    let s = string(v, example, diags)?;
    if valid(&s.value) {
        return Some(s);
    }
    diags.push(
        Diagnostic::error(
            "invalid-value",
            format!("{what} {} is not valid: {rule}", shown_value(&s.value)),
        )
        .with_label(s.span, "invalid value")
        .with_help(format!("for example `{example}`")),
    );
    None
}

pub fn is_dns_label(s: &str) -> bool {
    dns_label_problem(s).is_none()
}

/// Why a name is not a DNS-1123 label, in words.
pub fn dns_label_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("it is empty")
    } else if s.len() > 63 {
        Some("it is longer than 63 characters")
    } else if s.chars().any(|c| c.is_ascii_uppercase()) {
        Some("it contains uppercase letters")
    } else if s.contains('_') {
        Some("it contains `_`")
    } else if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        Some("it contains characters other than a-z, 0-9 and `-`")
    } else if s.starts_with('-') || s.ends_with('-') {
        Some("it starts or ends with `-`")
    } else {
        None
    }
}

/// A valid name close to an invalid one, for the help line.
pub fn fix_dns_label(s: &str) -> String {
    let mut out: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-');
    let mut out: String = out.chars().take(63).collect();
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "my-resource".to_string()
    } else {
        out
    }
}

pub fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((user, domain)) => {
            !user.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// An OCI image reference: `registry/repo[:tag][@digest]`, no whitespace, lowercase repository.
pub fn is_image(s: &str) -> bool {
    if s.is_empty() || s.contains(char::is_whitespace) {
        return false;
    }
    let name = s.split('@').next().unwrap_or(s);
    let repo = match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => {
            if tag.is_empty() {
                return false;
            }
            repo
        }
        _ => name,
    };
    !repo.is_empty() && !repo.ends_with('/') && repo.chars().all(|c| !c.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{cpu_millis, duration_seconds, memory_bytes};

    #[test]
    fn value_formats() {
        assert!(
            is_duration("2h")
                && is_duration("1h30m")
                && !is_duration("2 hours")
                && !is_duration("h")
        );
        assert_eq!(duration_seconds("1h30m"), 5400);
        assert_eq!(cpu_millis("500m"), Some(500));
        assert_eq!(cpu_millis("1.5"), Some(1500));
        assert_eq!(memory_bytes("512Mi"), Some(512 << 20));
        assert!(!is_memory("lots"));
        assert!(
            is_image("ghcr.io/acme/checkout:1.4.2")
                && is_image("localhost:5000/x")
                && !is_image("Acme/X")
        );
        assert_eq!(
            dns_label_problem("Checkout_API"),
            Some("it contains uppercase letters")
        );
        assert_eq!(fix_dns_label("Checkout_API"), "checkout-api");
        assert!(is_email("a@b.example") && !is_email("a@b"));
    }

    /// Names longer than the key's seven bytes, of one length and one prefix, share a key: a
    /// lookup still finds each name's own nodes, in their order, and nothing for a name absent.
    #[test]
    fn fields_sharing_a_key_are_told_apart_by_name() {
        const DEFS: &[FieldDef] = &[
            repeated("abcdefgh-1", "abcdefgh-1 1"),
            once("abcdefgh-2", "abcdefgh-2 2"),
            once("abcdefgh-3", "abcdefgh-3 3"),
            repeated("short", "short 4"),
        ];
        let text = "x {\n    abcdefgh-1 1\n    short 4\n    abcdefgh-2 2\n    abcdefgh-1 3\n    short 5\n}\n";
        let nodes = crate::syntax::parse(crate::source::FileId(0), text).expect("parses");
        let mut diags = Vec::new();
        let block = Block::new(
            "x".into(),
            nodes[0].name.span,
            &nodes[0].children,
            DEFS,
            &[],
            &mut diags,
        );
        assert!(diags.is_empty(), "{diags:?}");
        let args = |name: &str| -> Vec<i128> {
            block
                .all(name)
                .iter()
                .map(|n| match n.args[0].value {
                    Value::Integer(i) => i,
                    _ => panic!("an integer"),
                })
                .collect()
        };
        assert_eq!(args("abcdefgh-1"), [1, 3]);
        assert_eq!(args("abcdefgh-2"), [2]);
        assert_eq!(args("abcdefgh-3"), [] as [i128; 0]);
        assert_eq!(args("short"), [4, 5]);
        assert_eq!(args("shore"), [] as [i128; 0]);
        assert_eq!(args("absent"), [] as [i128; 0]);
        assert!(block.one("abcdefgh-2").is_some() && block.one("abcdefgh-4").is_none());
    }
}
