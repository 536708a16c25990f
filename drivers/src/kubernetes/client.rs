//! The client: from a kubeconfig (`kubeconfig` setting, which only the operator's daemon
//! configuration can give, else `KUBECONFIG`, else `~/.kube/config`) with `context` choosing the
//! context, or the in-cluster service account when there is no kubeconfig at all. Credentials
//! stay inside kube-rs: never logged or stored.
//!
//! A kubeconfig user that runs a program for its credentials (`exec`, or a legacy
//! `auth-provider`) is refused unless the operator allows it (`allow-exec-credentials "true"`,
//! daemon configuration only; `docs/SECURITY.md`): running a command is not something reading a
//! kubeconfig should do by surprise.

use crate::DriverError;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The settings of a `driver "kubernetes" { … }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Where namespaced objects go; the stack's name when absent.
    pub namespace: Option<String>,
    /// The Karpenter node class of GPU pools (`default` when absent).
    pub node_class: Option<String>,
    /// The Strimzi Kafka cluster topics belong to (label `strimzi.io/cluster`).
    pub kafka_cluster: Option<String>,
    /// The Gateway AI endpoints' routes attach to (`ai-gateway`, default `ai-gateway`).
    pub ai_gateway: Option<String>,
    /// Where workloads reach the AI gateway (`ai-gateway-url`); by default the Gateway's Service
    /// in the namespace (`render::gateway::default_url`).
    pub ai_gateway_url: Option<String>,
    /// Serving images replacing the runtimes' defaults (`vllm-image`, `tgi-image`,
    /// `triton-image`), by runtime name: how an operator pins them by digest.
    pub runtime_images: BTreeMap<String, String>,
    /// The Strimzi Kafka Connect cluster pipelines' connectors run on (`kafka-connect-cluster`,
    /// default `platform-connect`).
    pub kafka_connect_cluster: Option<String>,
    /// The ClickHouse Keeper service replicated ClickHouse clusters coordinate through
    /// (`clickhouse-keeper`, default `clickhouse-keeper`).
    pub clickhouse_keeper: Option<String>,
    /// Take fields another field manager owns (`force-conflicts "true"`, the default); with
    /// `"false"` such an apply fails naming the other manager.
    pub force_conflicts: bool,
    /// Let the kubeconfig's user run a credential plugin (`allow-exec-credentials "true"`; an
    /// operator's setting, refused in a stack).
    pub allow_exec_credentials: bool,
    /// The namespaces the operator lets this stack use (`allowed-namespaces "a,b"`, daemon
    /// configuration only); `None`: any but the cluster's own (`kube-*`).
    pub allowed_namespaces: Option<Vec<String>>,
    /// Secrets in the namespace every pod pulls its images with (`image-pull-secrets "a,b"`).
    pub image_pull_secrets: Vec<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            kubeconfig: None,
            context: None,
            namespace: None,
            node_class: None,
            kafka_cluster: None,
            ai_gateway: None,
            ai_gateway_url: None,
            runtime_images: BTreeMap::new(),
            clickhouse_keeper: None,
            kafka_connect_cluster: None,
            force_conflicts: true,
            allow_exec_credentials: false,
            allowed_namespaces: None,
            image_pull_secrets: Vec::new(),
        }
    }
}

/// A comma-separated list of names, trimmed, empty entries left out.
fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

impl Settings {
    pub fn from_map(settings: &BTreeMap<String, String>) -> Settings {
        Settings {
            kubeconfig: settings.get("kubeconfig").map(PathBuf::from),
            context: settings.get("context").cloned(),
            namespace: settings.get("namespace").cloned(),
            node_class: settings.get("node-class").cloned(),
            kafka_cluster: settings.get("kafka-cluster").cloned(),
            ai_gateway: settings.get("ai-gateway").cloned(),
            ai_gateway_url: settings.get("ai-gateway-url").cloned(),
            runtime_images: ["vllm", "tgi", "triton"]
                .into_iter()
                .filter_map(|runtime| {
                    let image = settings.get(&format!("{runtime}-image"))?;
                    Some((runtime.to_string(), image.clone()))
                })
                .collect(),
            clickhouse_keeper: settings.get("clickhouse-keeper").cloned(),
            kafka_connect_cluster: settings.get("kafka-connect-cluster").cloned(),
            force_conflicts: settings.get("force-conflicts").is_none_or(|v| v != "false"),
            allow_exec_credentials: settings
                .get("allow-exec-credentials")
                .is_some_and(|v| v == "true"),
            allowed_namespaces: settings.get("allowed-namespaces").map(|list| names(list)),
            image_pull_secrets: settings
                .get("image-pull-secrets")
                .map(|list| names(list))
                .unwrap_or_default(),
        }
    }

    /// Whether the driver may touch namespaced objects in `namespace`: never the cluster's
    /// own, and only the operator's list when it set one (`docs/SECURITY.md`). Checked before
    /// every namespaced API call, whatever decided the namespace (the stack's `namespace`, its
    /// name, a stored inventory).
    pub fn permits_namespace(&self, namespace: &str) -> Result<(), DriverError> {
        let reserved = planner::decode::RESERVED_NAMESPACES.contains(&namespace);
        let listed = self
            .allowed_namespaces
            .as_ref()
            .is_none_or(|list| list.iter().any(|n| n == namespace));
        if reserved || !listed {
            return Err(DriverError::permanent(format!(
                "namespace `{namespace}` is not one this stack may use ({}); the operator sets the list with `allowed-namespaces` on the stack's kubernetes driver in the daemon's configuration (docs/SECURITY.md)",
                match &self.allowed_namespaces {
                    Some(list) if !reserved => format!("allowed: {}", list.join(", ")),
                    _ => "it belongs to the cluster's own components".to_string(),
                }
            )));
        }
        Ok(())
    }
}

fn kubeconfig_path(settings: &Settings) -> Option<PathBuf> {
    if let Some(p) = &settings.kubeconfig {
        return Some(p.clone());
    }
    if let Some(p) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        // The first file of a KUBECONFIG list.
        return std::env::split_paths(&p).next();
    }
    let home = std::env::var_os("HOME")?;
    let default = PathBuf::from(home).join(".kube/config");
    default.exists().then_some(default)
}

/// The user of the context in use (`context`, else the current one), when it runs a program to
/// get its credentials.
fn runs_a_credential_plugin(kubeconfig: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let context = context.or(kubeconfig.current_context.as_deref())?;
    let user = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?
        .user
        .clone()?;
    let auth = kubeconfig
        .auth_infos
        .iter()
        .find(|a| a.name == user)?
        .auth_info
        .as_ref()?;
    (auth.exec.is_some() || auth.auth_provider.is_some()).then_some(user)
}

pub(super) async fn connect(settings: &Settings) -> Result<kube::Client, DriverError> {
    let config = match kubeconfig_path(settings) {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(&path).map_err(|e| {
                DriverError::permanent(format!("cannot read kubeconfig {}: {e}", path.display()))
            })?;
            if !settings.allow_exec_credentials
                && let Some(user) = runs_a_credential_plugin(&kubeconfig, settings.context.as_deref())
            {
                return Err(DriverError::permanent(format!(
                    "kubeconfig {}: user `{user}` gets its credentials by running a program (`exec` or `auth-provider`), which platformd does not do unless the operator allows it: set `allow-exec-credentials=\"true\"` on the stack's kubernetes driver in the daemon's configuration (docs/SECURITY.md)",
                    path.display()
                )));
            }
            let options = KubeConfigOptions {
                context: settings.context.clone(),
                ..KubeConfigOptions::default()
            };
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| {
                    DriverError::permanent(format!(
                        "kubeconfig {}{}: {e}",
                        path.display(),
                        settings
                            .context
                            .as_deref()
                            .map(|c| format!(" (context `{c}`)"))
                            .unwrap_or_default()
                    ))
                })?
        }
        None => kube::Config::incluster().map_err(|e| {
            DriverError::permanent(format!(
                "no kubeconfig (set `kubeconfig` in the driver, or KUBECONFIG) and not in a cluster: {e}"
            ))
        })?,
    };
    let mut config = config;
    // The engine's backoff is the one retry loop: a second one in the client would multiply it.
    config.default_retry = false;
    kube::Client::try_from(config)
        .map_err(|e| DriverError::permanent(format!("cannot build the Kubernetes client: {e}")))
}
