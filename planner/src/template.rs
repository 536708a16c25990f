//! Templates, the golden paths of a platform team (`docs/LANGUAGE.md`, "Templates"):
//!
//! ```kdl
//! template "web-service" version="2" {
//!     doc "A stateless HTTP service"
//!     param "image" type="image"
//!     param "replicas" type="int" default=2 min=1 max=50
//!     service "{name}" { image "{image}"; replicas "{replicas}" }
//! }
//! use "web-service" version="2" name="checkout" team="payments" {
//!     image "ghcr.io/acme/checkout:1.4.2"
//! }
//! ```
//!
//! Expansion works on the syntax tree, before decoding: a use becomes the template's resources
//! with every `{param}` substituted, so every check of the language applies to what a template
//! produces. Each expansion has a number that every span of its text carries
//! ([`Span::expansion`]); [`attribute`] uses it to point a diagnostic found in an expansion at
//! the use site, with the template's text as a secondary label.

use crate::diagnostic::{Diagnostic, Label};
use crate::kind::Kind;
use crate::source::{Sources, Span};
use crate::suggest;
use crate::syntax::{Arg, Ident, Node, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The type of a template parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamType {
    String,
    Int,
    Bool,
    /// `90s`, `30d`: what `retention` and the like take.
    Duration,
    /// A container image with a tag or digest.
    Image,
    /// A resource address, `database/orders-db`.
    Reference,
}

impl ParamType {
    pub const ALL: &'static [ParamType] = &[
        ParamType::String,
        ParamType::Int,
        ParamType::Bool,
        ParamType::Duration,
        ParamType::Image,
        ParamType::Reference,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Bool => "bool",
            ParamType::Duration => "duration",
            ParamType::Image => "image",
            ParamType::Reference => "reference",
        }
    }

    fn parse(s: &str) -> Option<ParamType> {
        ParamType::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// An example value, for help lines.
    fn example(self) -> &'static str {
        match self {
            ParamType::String => "\"text\"",
            ParamType::Int => "3",
            ParamType::Bool => "#true",
            ParamType::Duration => "\"30d\"",
            ParamType::Image => "\"ghcr.io/acme/app:1.4.2\"",
            ParamType::Reference => "\"database/orders-db\"",
        }
    }

    /// Why `value` is not of this type, or `None` when it is.
    fn problem(self, value: &Value) -> Option<String> {
        let text = match value {
            Value::String(s) => Some(&**s),
            _ => None,
        };
        match (self, value, text) {
            (ParamType::Int, Value::Integer(_), _) | (ParamType::Bool, Value::Bool(_), _) => None,
            (ParamType::String, _, Some(_)) => None,
            (ParamType::Duration, _, Some(s)) => {
                (!crate::units::is_duration(s)).then(|| format!("\"{s}\" is not a duration"))
            }
            (ParamType::Image, _, Some(s)) => image_problem(s),
            (ParamType::Reference, _, Some(s)) => reference_problem(s),
            (t, v, _) => Some(format!("expected {}, found {}", t.as_str(), v.type_name())),
        }
    }
}

fn image_problem(s: &str) -> Option<String> {
    let last = s.rsplit('/').next().unwrap_or(s);
    if s.is_empty() || s.contains(char::is_whitespace) {
        Some(format!("\"{s}\" is not an image"))
    } else if !last.contains(':') && !s.contains('@') {
        Some(format!("\"{s}\" has no tag or digest"))
    } else {
        None
    }
}

fn reference_problem(s: &str) -> Option<String> {
    match s.split_once('/') {
        Some((kind, name)) if Kind::parse(kind).is_some() && !name.is_empty() => None,
        _ => Some(format!("\"{s}\" is not a resource address (`kind/name`)")),
    }
}

/// One declared parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub name_span: Span,
    pub ty: ParamType,
    pub default: Option<Value<'static>>,
    pub min: Option<i128>,
    pub max: Option<i128>,
    pub allowed: Vec<Value<'static>>,
    pub doc: Option<String>,
    /// The whole `param` line.
    pub span: Span,
}

impl Param {
    /// `int 1..=50`, `string, one of "a", "b"`: the declaration, for labels.
    fn describe(&self) -> String {
        let mut out = match self.ty {
            ParamType::Image => "an image with a tag or digest".to_string(),
            ParamType::Reference => "a resource address".to_string(),
            ParamType::Duration => "a duration".to_string(),
            t => t.as_str().to_string(),
        };
        match (self.min, self.max) {
            (Some(a), Some(b)) => out.push_str(&format!(" from {a} to {b}")),
            (Some(a), None) => out.push_str(&format!(" of at least {a}")),
            (None, Some(b)) => out.push_str(&format!(" of at most {b}")),
            (None, None) => {}
        }
        if !self.allowed.is_empty() {
            out.push_str(&format!(", one of {}", values_list(&self.allowed)));
        }
        out
    }

    /// Why `value` does not fit this parameter, or `None` when it does.
    fn problem(&self, value: &Value) -> Option<String> {
        if let Some(p) = self.ty.problem(value) {
            return Some(p);
        }
        if let Value::Integer(n) = value
            && (self.min.is_some_and(|m| *n < m) || self.max.is_some_and(|m| *n > m))
        {
            return Some(format!("{n} is out of range"));
        }
        if !self.allowed.is_empty() && !self.allowed.contains(value) {
            return Some(format!("{} is not allowed", text_of(value, true)));
        }
        None
    }
}

fn values_list(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| text_of(v, true))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as text: inside a longer string (`quoted` false) or in a message.
fn text_of(value: &Value, quoted: bool) -> String {
    match value {
        Value::String(s) if quoted => format!("\"{s}\""),
        Value::String(s) => s.to_string(),
        Value::Integer(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) if quoted => format!("#{b}"),
        Value::Bool(b) => b.to_string(),
        Value::Null if quoted => "#null".into(),
        Value::Null => String::new(),
    }
}

/// One version of a template.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub version: String,
    pub doc: Option<String>,
    pub params: Vec<Param>,
    /// The resources it expands to, as written.
    pub body: Vec<Node<'static>>,
    /// `template "name"`.
    pub head_span: Span,
    /// A problem in the template itself: its uses expand to nothing (the problem is reported
    /// once, at the template).
    broken: bool,
}

impl Template {
    fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// One use of a template: what [`attribute`] and the plans say about the resources it made.
#[derive(Debug, Clone)]
pub struct Expansion {
    pub template: String,
    pub version: String,
    /// The use's `name=`.
    pub name: String,
    /// `use "template"`: where diagnostics of the expansion point.
    pub use_span: Span,
    pub template_span: Span,
}

/// Where a resource came from, as plans show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateOrigin {
    pub template: String,
    pub version: String,
    /// The use's `name=`.
    #[serde(rename = "use")]
    pub use_name: String,
    /// The use site, `file:line:column`.
    pub at: String,
}

/// Templates and expansions of a stack.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    pub templates: Vec<Template>,
    /// Expansion `n` is `expansions[n - 1]`.
    pub expansions: Vec<Expansion>,
}

impl Templates {
    pub fn expansion(&self, span: Span) -> Option<&Expansion> {
        (span.expansion as usize)
            .checked_sub(1)
            .and_then(|i| self.expansions.get(i))
    }

    /// Where the resource whose name is at `span` came from.
    pub fn origin(&self, span: Span, sources: &Sources) -> Option<TemplateOrigin> {
        let x = self.expansion(span)?;
        Some(TemplateOrigin {
            template: x.template.clone(),
            version: x.version.clone(),
            use_name: x.name.clone(),
            at: location(sources, x.use_span),
        })
    }
}

/// `file:line:column`, the file relative to the stack's root (the same wherever the stack is).
fn location(sources: &Sources, span: Span) -> String {
    let file = sources.get(span.file);
    let lc = file.line_col(span.start as usize);
    format!("{}:{}:{}", file.path, lc.line, lc.column)
}

/// Whether a file's top level has a template or a use (the rest of the stack needs no pass).
pub fn mentions_templates(nodes: &[Node]) -> bool {
    nodes
        .iter()
        .any(|n| n.name.text == "template" || n.name.text == "use")
}

/// Expands every use in `trees` (file order), removing the templates: the trees decoding sees.
pub fn expand(trees: &mut [Vec<Node>], diags: &mut Vec<Diagnostic>) -> Templates {
    let mut out = Templates::default();
    for tree in trees.iter() {
        for node in tree.iter().filter(|n| n.name.text == "template") {
            if let Some(t) = decode_template(node, diags) {
                if let Some(first) = out
                    .templates
                    .iter()
                    .find(|o| o.name == t.name && o.version == t.version)
                {
                    diags.push(
                        Diagnostic::error(
                            "duplicate-template",
                            format!(
                                "template `{}` version {} is declared twice",
                                t.name, t.version
                            ),
                        )
                        .with_label(t.head_span, "declared again here")
                        .with_label(first.head_span, "first declared here")
                        .with_help("give the new one another version: versions of a template coexist, each use names one"),
                    );
                    continue;
                }
                out.templates.push(t);
            }
        }
    }
    for tree in trees.iter_mut() {
        if !mentions_templates(tree) {
            continue;
        }
        let nodes = std::mem::take(tree);
        for node in nodes {
            match &*node.name.text {
                "template" => {}
                "use" => {
                    let made = expand_use(&node, &mut out, diags);
                    tree.extend(made);
                }
                _ => tree.push(node),
            }
        }
    }
    out
}

fn string_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_string()),
        Value::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `template "name" version="V" { … }`.
fn decode_template(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Template> {
    let usage = "template \"web-service\" version=\"1\" { param …; service \"{name}\" { … } }";
    let head_span = head_span(node);
    let Some(Arg {
        value: Value::String(name),
        ..
    }) = node.args.first()
    else {
        diags.push(
            Diagnostic::error("invalid-template", "a template needs a name")
                .with_label(node.name.span, "no name")
                .with_help(format!("write it as `{usage}`")),
        );
        return None;
    };
    let mut version = None;
    for p in &node.props {
        match (&*p.key.text, string_value(&p.value)) {
            ("version", Some(v)) => version = Some(v),
            ("version", None) => diags.push(
                Diagnostic::error("invalid-template", "a template's version is a string")
                    .with_label(p.value_span, "not a version")
                    .with_help(format!("write it as `{usage}`")),
            ),
            (other, _) => diags.push(
                Diagnostic::error(
                    "unknown-property",
                    format!("unknown property `{other}` on `template`"),
                )
                .with_label(p.key.span, "unknown property")
                .with_help(format!("write it as `{usage}`")),
            ),
        }
    }
    let Some(version) = version else {
        diags.push(
            Diagnostic::error(
                "invalid-template",
                format!("template `{name}` has no version"),
            )
            .with_label(head_span, "needs version=")
            .with_help(format!(
                "uses pin a version, so a template has one: `{usage}`"
            )),
        );
        return None;
    };
    let mut t = Template {
        name: name.to_string(),
        version,
        doc: None,
        params: Vec::new(),
        body: Vec::new(),
        head_span,
        broken: false,
    };
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    for child in &node.children {
        match &*child.name.text {
            "doc" => match child.args.first().map(|a| &a.value) {
                Some(Value::String(s)) => t.doc = Some(s.to_string()),
                _ => diags.push(
                    Diagnostic::error("invalid-template", "`doc` takes one string")
                        .with_label(child.span, "not a string")
                        .with_help("write it as `doc \"A stateless HTTP service\"`"),
                ),
            },
            "param" => {
                if let Some(p) = decode_param(child, &t, diags) {
                    t.params.push(p);
                }
            }
            other => match Kind::parse(other) {
                Some(kind) if kind.is_declared() => t.body.push(child.to_static()),
                _ => {
                    let mut names = vec!["doc", "param"];
                    names.extend(
                        Kind::ALL
                            .iter()
                            .filter(|k| k.is_declared())
                            .map(|k| k.as_str()),
                    );
                    diags.push(
                        Diagnostic::error(
                            "invalid-template",
                            format!("`{other}` cannot be in a template"),
                        )
                        .with_label(child.name.span, "not a parameter or a resource")
                        .with_help(suggest::help_for(
                            other,
                            &names,
                            "what a template holds: `doc`, `param` and resources",
                        )),
                    )
                }
            },
        }
    }
    for node in &t.body {
        check_body(node, &t, diags);
    }
    t.broken = diags.iter().filter(|d| d.is_error()).count() > errors_before;
    Some(t)
}

/// `template "name"` (or the keyword alone): where template-level labels point.
fn head_span(node: &Node) -> Span {
    let end = node.args.first().map_or(node.name.span.end, |a| a.span.end);
    Span {
        end,
        ..node.name.span
    }
}

const RESERVED: &[&str] = &["name", "team"];

fn decode_param(node: &Node, t: &Template, diags: &mut Vec<Diagnostic>) -> Option<Param> {
    let usage = "param \"replicas\" type=\"int\" default=2 min=1 max=50 doc=\"…\"";
    let Some(Arg {
        value: Value::String(name),
        span: name_span,
    }) = node.args.first()
    else {
        diags.push(
            Diagnostic::error("invalid-template", "a parameter needs a name")
                .with_label(node.name.span, "no name")
                .with_help(format!("write it as `{usage}`")),
        );
        return None;
    };
    if RESERVED.contains(&&**name) {
        diags.push(
            Diagnostic::error(
                "invalid-template",
                format!("`{name}` is given by every use; it is not a parameter"),
            )
            .with_label(*name_span, "reserved")
            .with_help(format!("`{{{name}}}` is always there: the use's `{name}=`")),
        );
        return None;
    }
    if !valid_param_name(name) {
        diags.push(
            Diagnostic::error(
                "invalid-template",
                format!("invalid parameter name \"{name}\""),
            )
            .with_label(*name_span, "not a parameter name")
            .with_help(
                "a parameter name is lowercase letters, digits and `-`, starting with a letter",
            ),
        );
        return None;
    }
    if t.param(name).is_some() {
        diags.push(
            Diagnostic::error(
                "invalid-template",
                format!("parameter `{name}` is declared twice"),
            )
            .with_label(*name_span, "declared again")
            .with_help("keep one declaration"),
        );
        return None;
    }
    let mut ty = None;
    let mut p = Param {
        name: name.to_string(),
        name_span: *name_span,
        ty: ParamType::String,
        default: None,
        min: None,
        max: None,
        allowed: Vec::new(),
        doc: None,
        span: node.span,
    };
    let mut default_span = None;
    for prop in &node.props {
        match (&*prop.key.text, &prop.value) {
            ("type", Value::String(s)) => match ParamType::parse(s) {
                Some(t) => ty = Some(t),
                None => {
                    let names: Vec<&str> = ParamType::ALL.iter().map(|t| t.as_str()).collect();
                    diags.push(
                        Diagnostic::error(
                            "invalid-template",
                            format!("unknown parameter type \"{s}\""),
                        )
                        .with_label(prop.value_span, "not a parameter type")
                        .with_help(suggest::help_for(
                            s,
                            &names,
                            "parameter types",
                        )),
                    );
                    return None;
                }
            },
            ("default", v) => {
                p.default = Some(v.to_static());
                default_span = Some(prop.value_span);
            }
            ("min", Value::Integer(n)) => p.min = Some(*n),
            ("max", Value::Integer(n)) => p.max = Some(*n),
            ("doc", Value::String(s)) => p.doc = Some(s.to_string()),
            (key @ ("type" | "min" | "max" | "doc"), v) => {
                diags.push(
                    Diagnostic::error(
                        "invalid-template",
                        format!("`{key}` of a parameter cannot be {}", v.type_name()),
                    )
                    .with_label(prop.value_span, "wrong type")
                    .with_help(format!("write it as `{usage}`")),
                );
                return None;
            }
            (other, _) => {
                diags.push(
                    Diagnostic::error(
                        "unknown-property",
                        format!("unknown property `{other}` on `param`"),
                    )
                    .with_label(prop.key.span, "unknown property")
                    .with_help(format!(
                        "a parameter takes type=, default=, min=, max= and doc=: `{usage}`"
                    )),
                );
                return None;
            }
        }
    }
    for child in &node.children {
        match &*child.name.text {
            "allowed" => p
                .allowed
                .extend(child.args.iter().map(|a| a.value.to_static())),
            "doc" => {
                if let Some(Value::String(s)) = child.args.first().map(|a| &a.value) {
                    p.doc = Some(s.to_string());
                }
            }
            other => {
                diags.push(
                    Diagnostic::error(
                        "invalid-template",
                        format!("`{other}` cannot be in a parameter"),
                    )
                    .with_label(child.name.span, "unknown")
                    .with_help("a parameter's block holds `allowed \"a\" \"b\"` and `doc \"…\"`"),
                );
                return None;
            }
        }
    }
    let Some(ty) = ty else {
        diags.push(
            Diagnostic::error(
                "invalid-template",
                format!("parameter `{name}` has no type"),
            )
            .with_label(*name_span, "needs type=")
            .with_help(format!(
                "types: string, int, bool, duration, image, reference; `{usage}`"
            )),
        );
        return None;
    };
    p.ty = ty;
    if (p.min.is_some() || p.max.is_some()) && ty != ParamType::Int {
        diags.push(
            Diagnostic::error(
                "invalid-template",
                format!("parameter `{name}` has a range but is not an int"),
            )
            .with_label(*name_span, "min= and max= are for int parameters")
            .with_help("for other types, list the values: `param \"tier\" type=\"string\" { allowed \"a\" \"b\" }`"),
        );
        return None;
    }
    for value in p.allowed.clone() {
        if let Some(problem) = ty.problem(&value) {
            diags.push(
                Diagnostic::error(
                    "invalid-template",
                    format!("an allowed value of `{name}` does not fit its type: {problem}"),
                )
                .with_label(*name_span, format!("declared {}", ty.as_str()))
                .with_help(format!(
                    "allowed values are {}s, e.g. {}",
                    ty.as_str(),
                    ty.example()
                )),
            );
            return None;
        }
    }
    if let (Some(default), Some(span)) = (&p.default, default_span)
        && let Some(problem) = p.problem(default)
    {
        diags.push(
            Diagnostic::error(
                "invalid-template",
                format!("the default of `{name}` does not fit it: {problem}"),
            )
            .with_label(span, format!("`{name}` is {}", p.describe()))
            .with_help(format!(
                "a default it accepts, e.g. default={}",
                ty.example()
            )),
        );
        return None;
    }
    Some(p)
}

fn valid_param_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A piece of a string in a template: text, or a `{param}`.
#[derive(Debug, PartialEq)]
enum Piece<'s> {
    Text(std::borrow::Cow<'s, str>),
    Param(&'s str),
}

/// `"{name}-db"` → `[Param(name), Text(-db)]`. `{{` and `}}` are literal braces; a brace not
/// around a parameter name is text.
fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        text.push_str(&rest[..i]);
        let after = &rest[i..];
        if after.starts_with("{{") || after.starts_with("}}") {
            text.push_str(&after[..1]);
            rest = &after[2..];
            continue;
        }
        if let Some(close) = after.find('}')
            && after.starts_with('{')
            && valid_param_name(&after[1..close])
        {
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text).into()));
            }
            out.push(Piece::Param(&after[1..close]));
            rest = &after[close + 1..];
            continue;
        }
        text.push_str(&after[..1]);
        rest = &after[1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text.into()));
    }
    out
}

/// Every `{param}` in `value` names a parameter of `t`.
fn check_placeholders(value: &Value, span: Span, t: &Template, diags: &mut Vec<Diagnostic>) {
    let Value::String(s) = value else { return };
    let mut known: Vec<&str> = t.params.iter().map(|p| p.name.as_str()).collect();
    known.extend(RESERVED);
    for piece in pieces(s) {
        if let Piece::Param(name) = piece
            && !known.contains(&name)
        {
            diags.push(
                Diagnostic::error(
                    "unknown-template-parameter",
                    format!("template `{}` has no parameter `{name}`", t.name),
                )
                .with_label(span, "not a parameter of this template")
                .with_help(suggest::help_for(
                    name,
                    &known,
                    &format!(
                        "its parameters; declare it with `param \"{name}\" type=\"string\"`, or write `{{{{` for a literal brace"
                    ),
                )),
            );
        }
    }
}

/// Every `{param}` in the body names a parameter; every `when=` is one bool parameter.
fn check_body(node: &Node, t: &Template, diags: &mut Vec<Diagnostic>) {
    let check = |value: &Value, span: Span, diags: &mut Vec<Diagnostic>| {
        check_placeholders(value, span, t, diags)
    };
    for a in &node.args {
        check(&a.value, a.span, diags);
    }
    for p in &node.props {
        if p.key.text == "when" {
            let ok = match &p.value {
                Value::Bool(_) => true,
                Value::String(s) => matches!(
                    pieces(s).as_slice(),
                    [Piece::Param(name)] if t.param(name).is_some_and(|p| p.ty == ParamType::Bool)
                ),
                _ => false,
            };
            if !ok {
                let bools: Vec<&str> = t
                    .params
                    .iter()
                    .filter(|p| p.ty == ParamType::Bool)
                    .map(|p| p.name.as_str())
                    .collect();
                diags.push(
                    Diagnostic::error("invalid-template", "`when=` takes one bool parameter")
                        .with_label(p.value_span, "not a bool parameter")
                        .with_help(match bools.first() {
                            Some(b) => format!("write it as when=\"{{{b}}}\""),
                            None => "declare one: `param \"database\" type=\"bool\" default=#false`, then when=\"{database}\"".into(),
                        }),
                );
            }
            continue;
        }
        check(&p.value, p.value_span, diags);
    }
    for child in &node.children {
        if matches!(&*child.name.text, "use" | "template") {
            diags.push(
                Diagnostic::error(
                    "invalid-template",
                    format!("`{}` cannot be inside a template", child.name.text),
                )
                .with_label(child.name.span, "nested")
                .with_help(
                    "templates expand to resources; compose them with several uses side by side",
                ),
            );
            continue;
        }
        check_body(child, t, diags);
    }
}

/// A use's bound parameters: given, else the default.
type Bindings = BTreeMap<String, Value<'static>>;

/// `use "name" version="V" name="…" team="…" { param value … }` → the template's resources.
fn expand_use(node: &Node, out: &mut Templates, diags: &mut Vec<Diagnostic>) -> Vec<Node<'static>> {
    let usage =
        "use \"web-service\" version=\"2\" name=\"checkout\" team=\"payments\" { image \"…\" }";
    let use_span = head_span(node);
    let Some(Arg {
        value: Value::String(template_name),
        span: template_name_span,
    }) = node.args.first()
    else {
        diags.push(
            Diagnostic::error("wrong-arguments", "`use` takes the template's name")
                .with_label(node.name.span, "which template?")
                .with_help(format!("write it as `{usage}`")),
        );
        return Vec::new();
    };
    let mut version = None;
    let mut name = None;
    let mut team = None;
    let mut ok = true;
    for p in &node.props {
        match &*p.key.text {
            "version" => version = string_value(&p.value).map(|v| (v, p.value_span)),
            key @ ("name" | "team") => match &p.value {
                Value::String(s) => {
                    let slot = if key == "name" { &mut name } else { &mut team };
                    *slot = Some((s.to_string(), p.value_span));
                }
                v => {
                    ok = false;
                    diags.push(
                        Diagnostic::error(
                            "wrong-type",
                            format!("`{key}` of a use is a string, found {}", v.type_name()),
                        )
                        .with_label(p.value_span, "not a string")
                        .with_help(format!("write it as `{usage}`")),
                    );
                }
            },
            other => {
                ok = false;
                diags.push(
                    Diagnostic::error("unknown-property", format!("unknown property `{other}` on `use`"))
                        .with_label(p.key.span, "unknown property")
                        .with_help(format!(
                            "a use takes version=, name= and team=; parameters go in its block: `{usage}`"
                        )),
                );
            }
        }
    }
    let versions: Vec<&Template> = out
        .templates
        .iter()
        .filter(|t| &t.name == template_name)
        .collect();
    if versions.is_empty() {
        let mut names: Vec<&str> = out.templates.iter().map(|t| t.name.as_str()).collect();
        names.dedup();
        diags.push(
            Diagnostic::error(
                "unknown-template",
                format!("no template named `{template_name}`"),
            )
            .with_label(*template_name_span, "not a template of this stack")
            .with_help(suggest::help_for(
                template_name,
                &names,
                "templates (`platformd templates` lists them)",
            )),
        );
        return Vec::new();
    }
    let available = versions
        .iter()
        .map(|t| format!("\"{}\"", t.version))
        .collect::<Vec<_>>()
        .join(", ");
    let Some((version, version_span)) = version else {
        diags.push(
            Diagnostic::error(
                "unknown-template-version",
                format!("the use of `{template_name}` names no version"),
            )
            .with_label(use_span, "needs version=")
            .with_help(format!(
                "pin one of its versions ({available}): version=\"{}\"",
                versions.last().map_or("1", |t| t.version.as_str())
            )),
        );
        return Vec::new();
    };
    let Some(template) = versions.iter().find(|t| t.version == version).copied() else {
        diags.push(
            Diagnostic::error(
                "unknown-template-version",
                format!("template `{template_name}` has no version \"{version}\""),
            )
            .with_label(version_span, "no such version")
            .with_help(format!("its versions: {available}")),
        );
        return Vec::new();
    };
    let Some((use_name, _)) = name.clone() else {
        diags.push(
            Diagnostic::error(
                "missing-field",
                format!("the use of `{template_name}` has no name"),
            )
            .with_label(use_span, "needs name=")
            .with_help(format!(
                "the name becomes `{{name}}` in the template: `{usage}`"
            )),
        );
        return Vec::new();
    };
    let mut bindings = Bindings::new();
    bindings.insert("name".into(), Value::String(use_name.clone().into()));
    if let Some((t, _)) = &team {
        bindings.insert("team".into(), Value::String(t.clone().into()));
    }
    for child in &node.children {
        let pname = &child.name.text;
        let Some(param) = template.param(pname) else {
            ok = false;
            let names: Vec<&str> = template.params.iter().map(|p| p.name.as_str()).collect();
            diags.push(
                Diagnostic::error(
                    "unknown-template-parameter",
                    format!(
                        "template `{}` version {} has no parameter `{pname}`",
                        template.name, template.version
                    ),
                )
                .with_label(child.name.span, "not a parameter of this template")
                .with_label(template.head_span, "the template")
                .with_help(suggest::help_for(pname, &names, "its parameters")),
            );
            continue;
        };
        if child.args.len() != 1 || !child.props.is_empty() || child.has_block {
            ok = false;
            diags.push(
                Diagnostic::error(
                    "wrong-arguments",
                    format!("parameter `{pname}` takes one value"),
                )
                .with_label(child.span, "one value")
                .with_help(format!("write it as `{pname} {}`", param.ty.example())),
            );
            continue;
        }
        if bindings.contains_key(&**pname) {
            ok = false;
            diags.push(
                Diagnostic::error(
                    "duplicate-field",
                    format!("parameter `{pname}` is given twice"),
                )
                .with_label(child.name.span, "given again")
                .with_help("keep one"),
            );
            continue;
        }
        let value = &child.args[0];
        if let Some(problem) = param.problem(&value.value) {
            ok = false;
            // Given, if wrongly: not also reported as missing.
            bindings.insert(pname.to_string(), value.value.to_static());
            diags.push(
                Diagnostic::error(
                    "invalid-template-parameter",
                    format!(
                        "parameter `{pname}` of template `{}`: {problem}",
                        template.name
                    ),
                )
                .with_label(value.span, format!("expected {}", param.describe()))
                .with_label(param.span, "declared here")
                .with_help(format!("for example `{pname} {}`", param.ty.example())),
            );
            continue;
        }
        bindings.insert(pname.to_string(), value.value.to_static());
    }
    for param in &template.params {
        if bindings.contains_key(&param.name) {
            continue;
        }
        match &param.default {
            Some(v) => {
                bindings.insert(param.name.clone(), v.clone());
            }
            None => {
                ok = false;
                diags.push(
                    Diagnostic::error(
                        "missing-template-parameter",
                        format!(
                            "the use of `{}` does not give `{}`, which has no default",
                            template.name, param.name
                        ),
                    )
                    .with_label(use_span, format!("needs `{}`", param.name))
                    .with_label(param.span, "declared here")
                    .with_help(format!(
                        "give it in the use's block: `{} {}`",
                        param.name,
                        param.ty.example()
                    )),
                );
            }
        }
    }
    if !ok || template.broken {
        return Vec::new();
    }
    out.expansions.push(Expansion {
        template: template.name.clone(),
        version: template.version.clone(),
        name: use_name.to_string(),
        use_span,
        template_span: template.head_span,
    });
    let id = out.expansions.len() as u32;
    let tag = |s: Span| Span { expansion: id, ..s };
    let mut made = Vec::new();
    for body in &template.body {
        let Some(mut node) = substitute(body, &bindings) else {
            continue;
        };
        node = node.map_spans(&tag);
        // The use's team goes to every resource that does not name its own.
        if let Some((team, span)) = &team
            && !node.children.iter().any(|c| c.name.text == "team")
        {
            node.children.insert(
                0,
                Node {
                    name: Ident {
                        text: "team".into(),
                        span: *span,
                    },
                    type_annotation: None,
                    entry_annotations: Vec::new(),
                    args: vec![Arg {
                        value: Value::String(team.clone().into()),
                        span: *span,
                    }],
                    props: Vec::new(),
                    children: Vec::new(),
                    has_block: false,
                    span: *span,
                },
            );
        }
        made.push(node);
    }
    made
}

/// The node with every `{param}` replaced, or `None` when its `when=` is false.
fn substitute(node: &Node<'static>, bindings: &Bindings) -> Option<Node<'static>> {
    let mut out = Node {
        name: node.name.clone(),
        type_annotation: node.type_annotation.clone(),
        entry_annotations: node.entry_annotations.clone(),
        args: Vec::with_capacity(node.args.len()),
        props: Vec::with_capacity(node.props.len()),
        children: Vec::with_capacity(node.children.len()),
        has_block: node.has_block,
        span: node.span,
    };
    for p in &node.props {
        let value = interpolate(&p.value, bindings);
        if p.key.text == "when" {
            if value == Value::Bool(false) {
                return None;
            }
            continue;
        }
        let mut p = p.clone();
        p.value = value;
        out.props.push(p);
    }
    for a in &node.args {
        out.args.push(Arg {
            value: interpolate(&a.value, bindings),
            span: a.span,
        });
    }
    out.children = node
        .children
        .iter()
        .filter_map(|c| substitute(c, bindings))
        .collect();
    Some(out)
}

/// A string that is exactly one `{param}` takes the parameter's value and type; inside a
/// longer string a parameter is text.
fn interpolate(value: &Value<'static>, bindings: &Bindings) -> Value<'static> {
    let Value::String(s) = value else {
        return value.clone();
    };
    if !s.contains(['{', '}']) {
        return value.clone();
    }
    let pieces = pieces(s);
    if let [Piece::Param(name)] = pieces.as_slice()
        && let Some(v) = bindings.get(*name)
    {
        return v.clone();
    }
    let mut text = String::with_capacity(s.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => text.push_str(&t),
            Piece::Param(name) => match bindings.get(name) {
                Some(v) => text.push_str(&text_of(v, false)),
                None => {
                    text.push('{');
                    text.push_str(name);
                    text.push('}');
                }
            },
        }
    }
    Value::String(text.into())
}

/// Points every diagnostic found in an expansion at its use site: the use becomes the primary
/// label, the template's text stays as secondary labels, and a note names the template.
pub fn attribute(diags: &mut [Diagnostic], templates: &Templates, sources: &Sources) {
    if templates.expansions.is_empty() {
        return;
    }
    for d in diags {
        let Some(x) = d.labels.iter().find_map(|l| templates.expansion(l.span)) else {
            continue;
        };
        for l in &mut d.labels {
            l.primary = false;
        }
        d.labels.insert(
            0,
            Label {
                span: x.use_span,
                message: format!(
                    "in this use of template `{}` version {}",
                    x.template, x.version
                ),
                primary: true,
                redact: false,
            },
        );
        d.notes.push(format!(
            "`{}` is made by template `{}` version {} ({})",
            x.name,
            x.template,
            x.version,
            location(sources, x.template_span)
        ));
    }
}

/// The catalog entry of one template version, as `platformd templates` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    /// Where it is declared, `file:line:column`.
    pub at: String,
    pub params: Vec<CatalogParam>,
    /// The kinds of resource it makes.
    pub makes: Vec<String>,
    /// How many uses of this version the stack has.
    pub uses: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogParam {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ParamType,
    pub required: bool,
    /// The default as KDL text (`2`, `"standard"`, `#false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i128>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i128>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
}

/// What `platformd templates` shows: every template version of a stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub stack: String,
    pub templates: Vec<CatalogEntry>,
}

impl CatalogParam {
    /// `int from 1 to 50`, `string, one of "a", "b"`.
    fn kind_text(&self) -> String {
        let mut out = self.ty.as_str().to_string();
        match (self.min, self.max) {
            (Some(a), Some(b)) => out.push_str(&format!(" {a}–{b}")),
            (Some(a), None) => out.push_str(&format!(" ≥ {a}")),
            (None, Some(b)) => out.push_str(&format!(" ≤ {b}")),
            (None, None) => {}
        }
        if !self.allowed.is_empty() {
            out.push_str(&format!(", one of {}", self.allowed.join(", ")));
        }
        out
    }

    fn default_text(&self) -> String {
        self.default
            .clone()
            .unwrap_or_else(|| "required".to_string())
    }
}

impl CatalogEntry {
    /// A use with the required parameters filled with examples: what a developer copies.
    pub fn example_use(&self) -> String {
        let mut out = format!(
            "use \"{}\" version=\"{}\" name=\"my-app\" team=\"my-team\" {{\n",
            self.name, self.version
        );
        for p in self.params.iter().filter(|p| p.required) {
            let example = p
                .allowed
                .first()
                .cloned()
                .unwrap_or_else(|| p.ty.example().to_string());
            out.push_str(&format!("    {} {example}\n", p.name));
        }
        out.push_str("}\n");
        out
    }
}

impl Catalog {
    pub fn text(&self) -> String {
        if self.templates.is_empty() {
            return format!("Stack `{}` has no templates.\n", self.stack);
        }
        let mut out = String::new();
        for t in &self.templates {
            out.push_str(&format!("{} v{}", t.name, t.version));
            if let Some(doc) = &t.doc {
                out.push_str(&format!(" — {doc}"));
            }
            out.push('\n');
            let uses = match t.uses {
                1 => "1 use".to_string(),
                n => format!("{n} uses"),
            };
            out.push_str(&format!(
                "  makes {} · {uses} · declared at {}\n",
                t.makes.join(", "),
                t.at
            ));
            let name_width = t.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
            let kinds: Vec<String> = t.params.iter().map(CatalogParam::kind_text).collect();
            let kind_width = kinds.iter().map(|k| k.chars().count()).max().unwrap_or(0);
            let defaults: Vec<String> = t.params.iter().map(CatalogParam::default_text).collect();
            let default_width = defaults
                .iter()
                .map(|d| d.chars().count())
                .max()
                .unwrap_or(0);
            for ((p, kind), default) in t.params.iter().zip(&kinds).zip(&defaults) {
                let line = format!(
                    "  {:name_width$}  {kind}{}  {default}{}  {}",
                    p.name,
                    " ".repeat(kind_width - kind.chars().count()),
                    " ".repeat(default_width - default.chars().count()),
                    p.doc.as_deref().unwrap_or("")
                );
                out.push_str(line.trim_end());
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    /// A page for a developer portal: each template, its parameters and a use to copy.
    pub fn markdown(&self) -> String {
        let mut out = format!("# Templates of `{}`\n\n", self.stack);
        if self.templates.is_empty() {
            out.push_str("This stack has no templates.\n");
            return out;
        }
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        for t in &self.templates {
            out.push_str(&format!("## `{}` version {}\n\n", t.name, t.version));
            if let Some(doc) = &t.doc {
                out.push_str(&format!("{}\n\n", cell(doc)));
            }
            out.push_str(&format!(
                "Makes {} · used {} time{} · declared in `{}`\n\n",
                t.makes
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                t.uses,
                if t.uses == 1 { "" } else { "s" },
                t.at
            ));
            if !t.params.is_empty() {
                out.push_str("| Parameter | Type | Default | Description |\n|---|---|---|---|\n");
                for p in &t.params {
                    out.push_str(&format!(
                        "| `{}` | {} | {} | {} |\n",
                        p.name,
                        cell(&p.kind_text()),
                        match &p.default {
                            Some(d) => format!("`{}`", cell(d)),
                            None => "**required**".to_string(),
                        },
                        cell(p.doc.as_deref().unwrap_or(""))
                    ));
                }
                out.push('\n');
            }
            out.push_str(&format!("```kdl\n{}```\n\n", t.example_use()));
        }
        out
    }
}

impl Templates {
    /// Every template version, by name then version (numeric versions in numeric order).
    pub fn catalog(&self, sources: &Sources) -> Vec<CatalogEntry> {
        let mut entries: Vec<CatalogEntry> = self
            .templates
            .iter()
            .map(|t| {
                let mut makes: Vec<String> =
                    t.body.iter().map(|n| n.name.text.to_string()).collect();
                makes.dedup();
                CatalogEntry {
                    name: t.name.clone(),
                    version: t.version.clone(),
                    doc: t.doc.clone(),
                    at: location(sources, t.head_span),
                    params: t
                        .params
                        .iter()
                        .map(|p| CatalogParam {
                            name: p.name.clone(),
                            ty: p.ty,
                            required: p.default.is_none(),
                            default: p.default.as_ref().map(|v| text_of(v, true)),
                            min: p.min,
                            max: p.max,
                            allowed: p.allowed.iter().map(|v| text_of(v, true)).collect(),
                            doc: p.doc.clone(),
                        })
                        .collect(),
                    makes,
                    uses: self
                        .expansions
                        .iter()
                        .filter(|x| x.template == t.name && x.version == t.version)
                        .count(),
                }
            })
            .collect();
        let version_key = |v: &str| (v.parse::<u64>().unwrap_or(u64::MAX), v.to_string());
        entries.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| version_key(&a.version).cmp(&version_key(&b.version)))
        });
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_split_parameters_from_text_and_keep_other_braces() {
        assert_eq!(
            pieces("{name}-db"),
            vec![Piece::Param("name"), Piece::Text("-db".into())]
        );
        assert_eq!(pieces("{{name}}"), vec![Piece::Text("{name}".into())]);
        assert_eq!(pieces("{\"a\": 1}"), vec![Piece::Text("{\"a\": 1}".into())]);
        assert_eq!(pieces("x{"), vec![Piece::Text("x{".into())]);
    }

    #[test]
    fn a_lone_parameter_keeps_its_type_and_a_longer_string_is_text() {
        let mut b = Bindings::new();
        b.insert("replicas".into(), Value::Integer(3));
        b.insert("name".into(), Value::String("checkout".into()));
        assert_eq!(
            interpolate(&Value::String("{replicas}".into()), &b),
            Value::Integer(3)
        );
        assert_eq!(
            interpolate(&Value::String("{name}-{replicas}".into()), &b),
            Value::String("checkout-3".into())
        );
    }
}
