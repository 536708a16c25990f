//! The daemon's configuration file (`platformd daemon --config FILE`, `docs/SCALE_OUT.md`):
//! the stacks one daemon follows, and the store they share. KDL, parsed with the stack
//! language's own parser; every mistake is a diagnostic with `file:line:column`, a label and a
//! help line. Pure: reading the file and the secrets it refers to is the caller's.

use planner::diagnostic::Diagnostic;
use planner::source::{FileId, SourceFile, Sources, Span};
use planner::syntax::{Node, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A configuration file or a secret reference that cannot be used; the message is the rendered
/// diagnostics or names the reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl From<String> for ConfigError {
    fn from(message: String) -> ConfigError {
        ConfigError(message)
    }
}

/// A secret the configuration refers to, never holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable of the daemon's process.
    Env(String),
    /// A file (a mounted Kubernetes Secret).
    File(PathBuf),
}

impl SecretRef {
    /// Reads the secret; an unset variable or an empty file is an error naming the reference.
    pub fn read(&self) -> Result<String, ConfigError> {
        let value = match self {
            SecretRef::Env(name) => std::env::var(name)
                .map_err(|_| format!("the environment variable {name} is not set"))?,
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            return Err(ConfigError::from(format!("{self} is empty")));
        }
        Ok(value)
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env={name}"),
            SecretRef::File(path) => write!(f, "file={}", path.display()),
        }
    }
}

/// The shared PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `postgres://user@host:port/database`, without a password.
    pub url: String,
    pub password: Option<SecretRef>,
}

/// One stack the daemon follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackConfig {
    /// Its name: in API routes (`/api/v1/stacks/<name>/…`), metrics labels and the store.
    pub name: String,
    /// A git URL, or a directory to watch.
    pub repo: String,
    pub branch: String,
    pub path: String,
    pub interval: Option<Duration>,
    pub drift_interval: Option<Duration>,
    pub webhook_secret: Option<SecretRef>,
    /// Settings laid over the stack's own driver settings: where each driver finds its
    /// credentials (a kubeconfig and context, an AWS profile), never the credentials.
    pub drivers: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// The shared store; without one, each stack has a SQLite store in the state directory.
    pub store: Option<StoreConfig>,
    /// How long a replica's ownership of a stack lasts without renewal.
    pub lease_ttl: Duration,
    pub stacks: Vec<StackConfig>,
}

/// The default ownership lease: a dead replica's stacks move within this much.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);

const TOP: &[&str] = &["store", "lease-ttl", "stack"];
const STACK_FIELDS: &[&str] = &[
    "repo",
    "branch",
    "path",
    "interval",
    "drift-interval",
    "webhook-secret",
    "driver",
];

/// A parsed configuration, or its diagnostics rendered against the file.
pub fn parse(path: &str, text: &str) -> Result<DaemonConfig, ConfigError> {
    let mut sources = Sources::new();
    let file = sources.add(SourceFile::new(path, text));
    let nodes = match planner::syntax::parse(file, text) {
        Ok(nodes) => nodes,
        Err(diagnostics) => {
            return Err(ConfigError::from(planner::diagnostic::render(
                &diagnostics,
                &sources,
                planner::diagnostic::Colour::Never,
            )));
        }
    };
    let mut decoder = Decoder {
        file,
        diagnostics: Vec::new(),
    };
    let config = decoder.config(&nodes);
    if decoder.diagnostics.is_empty() {
        Ok(config)
    } else {
        planner::diagnostic::sort(&mut decoder.diagnostics);
        Err(ConfigError::from(planner::diagnostic::render(
            &decoder.diagnostics,
            &sources,
            planner::diagnostic::Colour::Never,
        )))
    }
}

struct Decoder {
    file: FileId,
    diagnostics: Vec<Diagnostic>,
}

/// Names that go into URLs, metrics labels and PostgreSQL schema names.
fn valid_stack_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
}

impl Decoder {
    fn error(&mut self, code: &'static str, span: Span, label: &str, message: String, help: &str) {
        self.diagnostics.push(
            Diagnostic::error(code, message)
                .with_label(span, label)
                .with_help(help),
        );
    }

    /// An error whose labelled text is a secret: the rendering leaves it out.
    fn secret_error(&mut self, span: Span, label: &str, message: String, help: &str) {
        self.diagnostics.push(
            Diagnostic::error("invalid-secret-reference", message)
                .with_redacted_label(span, label)
                .with_help(help),
        );
    }

    fn unknown(&mut self, node: &Node, allowed: &[&str], within: &str) {
        let help = match planner::suggest::did_you_mean(&node.name.text, allowed.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? {within} takes: {}", allowed.join(", ")),
            None => format!("{within} takes: {}", allowed.join(", ")),
        };
        self.error(
            "unknown-config-field",
            node.name.span,
            "not a setting here",
            format!("unknown setting `{}`", node.name.text),
            &help,
        );
    }

    /// The one string argument of `node`.
    fn string(&mut self, node: &Node, example: &str) -> Option<String> {
        match node.args.as_slice() {
            [arg] => match &arg.value {
                Value::String(s) if !s.trim().is_empty() => return Some(s.to_string()),
                other => self.error(
                    "invalid-config-value",
                    arg.span,
                    "expected a non-empty string",
                    format!(
                        "`{}` takes a non-empty string, found {}",
                        node.name.text,
                        other.type_name()
                    ),
                    &format!("for example: {example}"),
                ),
            },
            _ => self.error(
                "invalid-config-value",
                node.span,
                "expected one value",
                format!("`{}` takes exactly one value", node.name.text),
                &format!("for example: {example}"),
            ),
        }
        None
    }

    fn duration(&mut self, node: &Node, example: &str) -> Option<Duration> {
        let text = self.string(node, example)?;
        match planner::units::parse_flag_duration(&text) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                let span = node.args[0].span;
                self.error(
                    "invalid-config-value",
                    span,
                    "not a duration",
                    format!("`{}` is not a positive duration: `{text}`", node.name.text),
                    &format!("write a duration such as {example}"),
                );
                None
            }
        }
    }

    /// `name env="VAR"` or `name file="/path"`.
    fn secret(&mut self, node: &Node, example: &str) -> Option<SecretRef> {
        let found: Vec<_> = node
            .props
            .iter()
            .filter_map(|p| match (&p.key.text[..], &p.value) {
                ("env", Value::String(v)) if !v.is_empty() => Some(SecretRef::Env(v.to_string())),
                ("file", Value::String(v)) if !v.is_empty() => {
                    Some(SecretRef::File(PathBuf::from(&**v)))
                }
                _ => None,
            })
            .collect();
        if found.len() == 1 && node.props.len() == 1 && node.args.is_empty() {
            return found.into_iter().next();
        }
        let literal = node
            .args
            .iter()
            .any(|a| matches!(a.value, Value::String(_)));
        self.secret_error(
            node.span,
            if literal {
                "a secret written into the file"
            } else {
                "expected env= or file="
            },
            format!(
                "`{}` takes a reference to a secret, never the secret",
                node.name.text
            ),
            &format!(
                "name where the daemon reads it: an environment variable or a mounted file, for example {example}"
            ),
        );
        None
    }

    fn config(&mut self, nodes: &[Node]) -> DaemonConfig {
        let mut config = DaemonConfig {
            store: None,
            lease_ttl: DEFAULT_LEASE_TTL,
            stacks: Vec::new(),
        };
        let mut seen: std::collections::BTreeMap<String, Span> = Default::default();
        for node in nodes {
            match &*node.name.text {
                "store" => {
                    let url = self.string(node, "store \"postgres://platformd@db:5432/platformd\"");
                    let password = node.props.iter().find(|p| p.key.text == "password");
                    if let Some(password) = password {
                        self.secret_error(
                            password.span,
                            "a secret written into the file",
                            "the store's password is a reference, never the password".into(),
                            "write password-env=\"PLATFORMD_STORE_PASSWORD\" or password-file=\"/etc/platformd/store-password\"",
                        );
                    }
                    let reference =
                        node.props
                            .iter()
                            .find_map(|p| match (&p.key.text[..], &p.value) {
                                ("password-env", Value::String(v)) => {
                                    Some(SecretRef::Env(v.to_string()))
                                }
                                ("password-file", Value::String(v)) => {
                                    Some(SecretRef::File(PathBuf::from(&**v)))
                                }
                                _ => None,
                            });
                    if let Some(url) = url {
                        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                            self.error(
                                "invalid-config-value",
                                node.args[0].span,
                                "not a PostgreSQL URL",
                                "the shared store is PostgreSQL".into(),
                                "write store \"postgres://user@host:5432/database\"; leave `store` out for a SQLite store per stack in the state directory",
                            );
                        } else if url
                            .split_once("://")
                            .and_then(|(_, rest)| rest.split_once('@'))
                            .is_some_and(|(user, _)| user.contains(':'))
                        {
                            self.secret_error(
                                node.args[0].span,
                                "a password in the URL",
                                "the store's URL holds a password".into(),
                                "remove it from the URL and give password-env= or password-file=",
                            );
                        } else {
                            config.store = Some(StoreConfig {
                                url,
                                password: reference,
                            });
                        }
                    }
                }
                "lease-ttl" => {
                    if let Some(d) = self.duration(node, "lease-ttl \"15s\"") {
                        config.lease_ttl = d;
                    }
                }
                "stack" => {
                    if let Some(stack) = self.stack(node) {
                        if let Some(first) = seen.get(&stack.name) {
                            let first = *first;
                            self.diagnostics.push(
                                Diagnostic::error(
                                    "duplicate-stack",
                                    format!("stack `{}` is declared twice", stack.name),
                                )
                                .with_label(node.args[0].span, "declared again here")
                                .with_label(first, "first declared here")
                                .with_help("give each stack a name of its own"),
                            );
                        } else {
                            seen.insert(stack.name.clone(), node.args[0].span);
                            config.stacks.push(stack);
                        }
                    }
                }
                _ => self.unknown(node, TOP, "the configuration"),
            }
        }
        if config.stacks.is_empty() && self.diagnostics.is_empty() {
            self.diagnostics.push(
                Diagnostic::error("no-stacks", "the configuration declares no stack")
                    .with_label(Span::new(self.file, 0, 0), "no `stack` here")
                    .with_help(
                        "add one: stack \"prod\" { repo \"https://github.com/acme/platform-state.git\"; path \"stacks/prod\" }",
                    ),
            );
        }
        config
    }

    /// `driver "kubernetes" kubeconfig="/etc/platformd/kube/prod" context="prod"`.
    fn driver(&mut self, node: &Node) -> Option<(String, BTreeMap<String, String>)> {
        let example =
            "driver \"kubernetes\" kubeconfig=\"/etc/platformd/kube/prod\" context=\"prod\"";
        let name = self.string(node, example)?;
        // A stack's entry gives what the operator decides for a driver (`descriptors`): where it
        // finds its credentials and targets, never what is built.
        let Some(descriptor) = descriptors::find(&name) else {
            let drivers: Vec<&str> = descriptors::ALL.iter().map(|d| d.driver).collect();
            self.error(
                "unknown-config-field",
                node.args[0].span,
                "not a driver",
                format!("unknown driver `{name}`"),
                &format!("the drivers are: {}", drivers.join(", ")),
            );
            return None;
        };
        let allowed: Vec<&str> = descriptor.operator_settings().map(|s| s.name).collect();
        let mut settings = BTreeMap::new();
        for prop in &node.props {
            if !allowed.contains(&&*prop.key.text) {
                self.error(
                    "unknown-config-field",
                    prop.key.span,
                    "not a setting of this driver here",
                    format!("driver `{name}` takes no `{}` here", prop.key.text),
                    &format!(
                        "a stack's entry sets where the driver finds its credentials and targets: {}; everything else belongs in the stack's platform.kdl",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            match &prop.value {
                Value::String(v) if !v.is_empty() => {
                    settings.insert(prop.key.text.to_string(), v.to_string());
                }
                other => self.error(
                    "invalid-config-value",
                    prop.value_span,
                    "expected a non-empty string",
                    format!(
                        "`{}` takes a string, found {}",
                        prop.key.text,
                        other.type_name()
                    ),
                    example,
                ),
            }
        }
        Some((name, settings))
    }

    fn stack(&mut self, node: &Node) -> Option<StackConfig> {
        let name = self.string(node, "stack \"prod-eu\" { … }")?;
        if !valid_stack_name(&name) {
            self.error(
                "invalid-stack-name",
                node.args[0].span,
                "not a stack name",
                format!("`{name}` cannot name a stack"),
                "use 1 to 40 lowercase letters, digits and dashes (it goes into URLs, metrics labels and the store)",
            );
            return None;
        }
        let mut stack = StackConfig {
            name,
            repo: String::new(),
            branch: "main".into(),
            path: ".".into(),
            interval: None,
            drift_interval: None,
            webhook_secret: None,
            drivers: BTreeMap::new(),
        };
        for child in &node.children {
            match &*child.name.text {
                "repo" => {
                    stack.repo = self
                        .string(child, "repo \"https://github.com/acme/platform-state.git\"")
                        .unwrap_or_default();
                }
                "branch" => {
                    stack.branch = self.string(child, "branch \"main\"").unwrap_or_default();
                }
                "path" => {
                    stack.path = self
                        .string(child, "path \"stacks/prod\"")
                        .unwrap_or_default();
                }
                "interval" => stack.interval = self.duration(child, "interval \"30s\""),
                "drift-interval" => {
                    stack.drift_interval = self.duration(child, "drift-interval \"5m\"");
                }
                "webhook-secret" => {
                    stack.webhook_secret =
                        self.secret(child, "webhook-secret env=\"PROD_WEBHOOK_SECRET\"");
                }
                "driver" => {
                    if let Some((name, settings)) = self.driver(child) {
                        stack.drivers.insert(name, settings);
                    }
                }
                _ => self.unknown(child, STACK_FIELDS, "a stack"),
            }
        }
        if stack.repo.is_empty() && !node.children.iter().any(|c| c.name.text == "repo") {
            self.error(
                "missing-config-field",
                node.name.span,
                "this stack has no `repo`",
                format!("stack `{}` needs a `repo`", stack.name),
                "add repo \"https://github.com/acme/platform-state.git\" (or a directory to watch)",
            );
            return None;
        }
        Some(stack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_with_stacks_and_a_shared_store() {
        let config = parse(
            "platformd.kdl",
            r#"
store "postgres://platformd@db:5432/platformd" password-env="PLATFORMD_STORE_PASSWORD"
lease-ttl "20s"
stack "prod-eu" {
    repo "https://github.com/acme/platform-state.git"
    path "stacks/prod-eu"
    interval "30s"
    webhook-secret env="PROD_EU_WEBHOOK_SECRET"
    driver "kubernetes" kubeconfig="/etc/platformd/kube/prod-eu" context="prod-eu"
    driver "aws" profile="prod-eu"
}
stack "staging" {
    repo "/srv/state"
    branch "next"
    drift-interval "10m"
}
"#,
        )
        .unwrap();
        assert_eq!(
            config.store,
            Some(StoreConfig {
                url: "postgres://platformd@db:5432/platformd".into(),
                password: Some(SecretRef::Env("PLATFORMD_STORE_PASSWORD".into())),
            })
        );
        assert_eq!(config.lease_ttl, Duration::from_secs(20));
        assert_eq!(config.stacks.len(), 2);
        assert_eq!(config.stacks[0].path, "stacks/prod-eu");
        assert_eq!(config.stacks[0].branch, "main");
        assert_eq!(config.stacks[0].interval, Some(Duration::from_secs(30)));
        assert_eq!(
            config.stacks[0].webhook_secret,
            Some(SecretRef::Env("PROD_EU_WEBHOOK_SECRET".into()))
        );
        assert_eq!(
            config.stacks[0].drivers["kubernetes"]["kubeconfig"],
            "/etc/platformd/kube/prod-eu"
        );
        assert_eq!(config.stacks[0].drivers["aws"]["profile"], "prod-eu");
        assert!(config.stacks[1].drivers.is_empty());
        assert_eq!(config.stacks[1].path, ".");
        assert_eq!(config.stacks[1].branch, "next");
        assert_eq!(
            config.stacks[1].drift_interval,
            Some(Duration::from_secs(600))
        );
    }

    /// Each mistake: its location, its label and its help.
    #[test]
    fn mistakes_are_located_labelled_and_helped() {
        let cases: &[(&str, &[&str])] = &[
            (
                "stack \"a\" { repo \"r\"; brnch \"main\" }\n",
                &[
                    "platformd.kdl:1:23",
                    "unknown setting `brnch`",
                    "did you mean `branch`?",
                ],
            ),
            (
                "stack \"a\" { repo \"r\" }\nstack \"a\" { repo \"s\" }\n",
                &[
                    "platformd.kdl:2:7",
                    "stack `a` is declared twice",
                    "first declared here",
                ],
            ),
            (
                "stack \"Prod EU\" { repo \"r\" }\n",
                &[
                    "platformd.kdl:1:7",
                    "cannot name a stack",
                    "lowercase letters",
                ],
            ),
            (
                "stack \"a\" { path \"x\" }\n",
                &["platformd.kdl:1:1", "needs a `repo`"],
            ),
            (
                "stack \"a\" { repo \"r\"; interval \"soon\" }\n",
                &["platformd.kdl:1:32", "not a positive duration", "30s"],
            ),
            (
                "stack \"a\" { repo \"r\"; webhook-secret \"hunter2\" }\n",
                &["platformd.kdl:1:23", "never the secret", "env"],
            ),
            (
                "store \"postgres://u:hunter2@db/p\"\nstack \"a\" { repo \"r\" }\n",
                &["platformd.kdl:1:7", "holds a password", "password-env="],
            ),
            (
                "store \"mysql://db/p\"\nstack \"a\" { repo \"r\" }\n",
                &["platformd.kdl:1:7", "the shared store is PostgreSQL"],
            ),
            ("// nothing\n", &["no stack", "stack \"prod\""]),
            (
                "stack \"a\" { repo \"r\"; driver \"gcp\" project=\"x\" }\n",
                &[
                    "platformd.kdl:1:30",
                    "unknown driver `gcp`",
                    "kubernetes, aws, local",
                ],
            ),
            (
                "stack \"a\" { repo \"r\"; driver \"aws\" subnets=\"x\" }\n",
                &[
                    "platformd.kdl:1:36",
                    "takes no `subnets` here",
                    "profile, region",
                ],
            ),
            ("stack \"a\" {\n", &["platformd.kdl:1"]),
        ];
        for (text, expected) in cases {
            let err = parse("platformd.kdl", text).expect_err(text);
            for e in *expected {
                assert!(err.to_string().contains(e), "{text}: `{e}` not in\n{err}");
            }
            assert!(
                !err.to_string().contains("hunter2"),
                "the secret is not repeated: {err}"
            );
        }
    }
}
