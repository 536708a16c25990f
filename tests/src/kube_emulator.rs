//! A Kubernetes API server emulator for tests: real HTTP on loopback, reachable through an
//! ordinary kubeconfig (`server: http://127.0.0.1:PORT`). It serves discovery (`/api`,
//! `/apis`, group versions), namespaced and cluster-scoped objects, server-side apply with field
//! ownership (`application/apply-patch+yaml`, `fieldManager`, `force`, 409 naming the other
//! manager), `resourceVersion` and `generation`, label-selector lists and deletes. Tests can
//! inject faults (a status for the next N matching requests) and latency, count requests, edit
//! objects as another manager would, and act as a controller (mark Deployments available, set
//! `Ready=True` on custom resources) — by default it does so on every apply.
//!
//! Simplifications, stated: lists are atomic in field ownership (a list is one field), and
//! deletion is immediate (no finalizers, foreground or not). As in the API server, a field
//! applied with the value it has is shared among its managers, and a field a manager stops
//! applying is removed only when no other manager owns it.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One resource type the emulator serves.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

impl ResourceType {
    fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Built-in kinds, always served.
pub const BUILT_IN: &[ResourceType] = &[
    ResourceType {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        namespaced: true,
    },
    ResourceType {
        group: "batch",
        version: "v1",
        kind: "CronJob",
        plural: "cronjobs",
        namespaced: true,
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
    },
    ResourceType {
        group: "autoscaling",
        version: "v2",
        kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers",
        namespaced: true,
    },
];

/// The custom resources of the operators platformd renders for, served once installed.
pub const OPERATOR_CRDS: &[ResourceType] = &[
    ResourceType {
        group: "kafka.strimzi.io",
        version: "v1beta2",
        kind: "KafkaConnector",
        plural: "kafkaconnectors",
        namespaced: true,
    },
    ResourceType {
        group: "clickhouse.altinity.com",
        version: "v1",
        kind: "ClickHouseInstallation",
        plural: "clickhouseinstallations",
        namespaced: true,
    },
    ResourceType {
        group: "monitoring.coreos.com",
        version: "v1",
        kind: "PrometheusRule",
        plural: "prometheusrules",
        namespaced: true,
    },
    ResourceType {
        group: "external-secrets.io",
        version: "v1beta1",
        kind: "ExternalSecret",
        plural: "externalsecrets",
        namespaced: true,
    },
    ResourceType {
        group: "kafka.strimzi.io",
        version: "v1beta2",
        kind: "KafkaTopic",
        plural: "kafkatopics",
        namespaced: true,
    },
    ResourceType {
        group: "karpenter.sh",
        version: "v1",
        kind: "NodePool",
        plural: "nodepools",
        namespaced: false,
    },
    ResourceType {
        group: "gateway.envoyproxy.io",
        version: "v1alpha1",
        kind: "Backend",
        plural: "backends",
        namespaced: true,
    },
    ResourceType {
        group: "gateway.envoyproxy.io",
        version: "v1alpha1",
        kind: "BackendTrafficPolicy",
        plural: "backendtrafficpolicies",
        namespaced: true,
    },
    ResourceType {
        group: "gateway.envoyproxy.io",
        version: "v1alpha1",
        kind: "SecurityPolicy",
        plural: "securitypolicies",
        namespaced: true,
    },
    ResourceType {
        group: "aigateway.envoyproxy.io",
        version: "v1alpha1",
        kind: "AIServiceBackend",
        plural: "aiservicebackends",
        namespaced: true,
    },
    ResourceType {
        group: "aigateway.envoyproxy.io",
        version: "v1alpha1",
        kind: "AIGatewayRoute",
        plural: "aigatewayroutes",
        namespaced: true,
    },
    ResourceType {
        group: "postgresql.cnpg.io",
        version: "v1",
        kind: "Cluster",
        plural: "clusters",
        namespaced: true,
    },
];

#[derive(Debug, Clone)]
struct Fault {
    method: Option<Method>,
    path_contains: String,
    status: u16,
    remaining: u32,
}

/// A request as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
}

#[derive(Default)]
struct Stored {
    object: Value,
    /// Field manager → the field paths it owns.
    managers: BTreeMap<String, BTreeSet<String>>,
}

struct Inner {
    types: Vec<ResourceType>,
    /// (group, plural, namespace or "", name) → object.
    objects: BTreeMap<(String, String, String, String), Stored>,
    resource_version: u64,
    faults: Vec<Fault>,
    latency: Duration,
    seen: Vec<Seen>,
    /// Act as the controllers on every apply (Deployments available, custom resources ready).
    auto_ready: bool,
    /// When set, every request is the kubeconfig's user's and is authorized as the API server
    /// would: a request its roles do not grant is a 403 Status.
    rbac: Option<Rbac>,
}

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone)]
struct Rule {
    groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

impl Rule {
    fn grants(&self, verb: &str, group: &str, resource: &str) -> bool {
        let has = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        has(&self.verbs, verb) && has(&self.groups, group) && has(&self.resources, resource)
    }
}

/// Role-based access control for one ServiceAccount, from the ClusterRoles, Roles and their
/// bindings in Kubernetes manifests (what `deploy/kubernetes` ships).
#[derive(Debug, Clone, Default)]
pub struct Rbac {
    /// `system:serviceaccount:<namespace>:<name>`.
    pub user: String,
    /// Granted everywhere (ClusterRoleBindings).
    cluster: Vec<Rule>,
    /// Granted in one namespace (RoleBindings): namespace → rules.
    namespaced: BTreeMap<String, Vec<Rule>>,
}

impl Rbac {
    /// The rules `manifests` (YAML, any number of documents each) grant the ServiceAccount
    /// `namespace/name`.
    pub fn for_service_account(manifests: &[String], namespace: &str, name: &str) -> Rbac {
        let docs: Vec<Value> = manifests
            .iter()
            .flat_map(|text| {
                text.split("\n---")
                    .filter_map(|doc| serde_norway::from_str::<Value>(doc).ok())
                    .filter(|doc| doc.is_object())
                    .collect::<Vec<_>>()
            })
            .collect();
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let rules_of = |kind: &str, role: &str, role_namespace: Option<&str>| -> Vec<Rule> {
            docs.iter()
                .filter(|d| {
                    d["kind"] == kind
                        && d["metadata"]["name"] == role
                        && role_namespace.is_none_or(|ns| d["metadata"]["namespace"] == ns)
                })
                .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
                .map(|r| Rule {
                    groups: strings(&r["apiGroups"]),
                    resources: strings(&r["resources"]),
                    verbs: strings(&r["verbs"]),
                })
                .collect()
        };
        let binds_us = |binding: &Value| {
            binding["subjects"].as_array().is_some_and(|subjects| {
                subjects.iter().any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"] == name
                        && s["namespace"] == namespace
                })
            })
        };
        let mut rbac = Rbac {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            ..Rbac::default()
        };
        for binding in docs.iter().filter(|d| binds_us(d)) {
            let role = binding["roleRef"]["name"].as_str().unwrap_or("");
            let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or("");
            match binding["kind"].as_str() {
                Some("ClusterRoleBinding") if role_kind == "ClusterRole" => {
                    rbac.cluster.extend(rules_of("ClusterRole", role, None));
                }
                Some("RoleBinding") => {
                    let ns = binding["metadata"]["namespace"].as_str().unwrap_or("");
                    let rules = match role_kind {
                        "ClusterRole" => rules_of("ClusterRole", role, None),
                        _ => rules_of("Role", role, Some(ns)),
                    };
                    rbac.namespaced
                        .entry(ns.to_string())
                        .or_default()
                        .extend(rules);
                }
                _ => {}
            }
        }
        rbac
    }

    /// Whether `verb` on `resource` of `group` in `namespace` ("" for the cluster scope, or a
    /// list across namespaces) is granted.
    pub fn allows(&self, verb: &str, group: &str, resource: &str, namespace: &str) -> bool {
        let granted = |rules: &[Rule]| rules.iter().any(|r| r.grants(verb, group, resource));
        granted(&self.cluster)
            || (!namespace.is_empty()
                && self
                    .namespaced
                    .get(namespace)
                    .is_some_and(|rules| granted(rules)))
    }
}

type Shared = Arc<Mutex<Inner>>;

/// The emulator; it stops when dropped.
pub struct KubeEmulator {
    pub port: u16,
    inner: Shared,
    _server: crate::net::LoopbackServer,
}

fn lock(inner: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

impl KubeEmulator {
    /// Starts with the built-in kinds and the operators' custom resources installed.
    pub fn start() -> KubeEmulator {
        KubeEmulator::with_types(BUILT_IN.iter().chain(OPERATOR_CRDS).cloned().collect())
    }

    /// Starts serving exactly `types` (leave out a CRD to test its absence).
    pub fn with_types(types: Vec<ResourceType>) -> KubeEmulator {
        let inner = Arc::new(Mutex::new(Inner {
            types,
            objects: BTreeMap::new(),
            resource_version: 1,
            faults: Vec::new(),
            latency: Duration::ZERO,
            seen: Vec::new(),
            auto_ready: true,
            rbac: None,
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let server = crate::net::LoopbackServer::start(2, |listener| async move {
            let _ = axum::serve(listener, app).await;
        });
        KubeEmulator {
            port: server.port,
            inner,
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A kubeconfig pointing at the emulator, with context `emulator`.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: {}\ncontexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: tester\n    namespace: default\ncurrent-context: emulator\nusers:\n- name: tester\n  user:\n    token: emulator-token\n",
            self.url()
        )
    }

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.inner).latency = latency;
    }

    /// Authorizes every request from now on as `rbac` grants (`None`: everything is allowed).
    pub fn set_rbac(&self, rbac: Option<Rbac>) {
        lock(&self.inner).rbac = rbac;
    }

    pub fn set_auto_ready(&self, on: bool) {
        lock(&self.inner).auto_ready = on;
    }

    /// The next `times` requests whose method is `method` (any when `None`) and whose path
    /// contains `path_contains` are answered with `status`.
    pub fn inject(&self, method: Option<&str>, path_contains: &str, status: u16, times: u32) {
        lock(&self.inner).faults.push(Fault {
            method: method.map(|m| Method::from_bytes(m.as_bytes()).expect("a method")),
            path_contains: path_contains.to_string(),
            status,
            remaining: times,
        });
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.inner).seen.clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.inner).seen.clear();
    }

    /// An object, as stored.
    pub fn get(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.inner)
            .objects
            .get(&(group.into(), plural.into(), namespace.into(), name.into()))
            .map(|s| s.object.clone())
    }

    /// Every object of a type: (namespace, name) → object.
    pub fn list(&self, group: &str, plural: &str) -> BTreeMap<(String, String), Value> {
        lock(&self.inner)
            .objects
            .iter()
            .filter(|((g, p, _, _), _)| g == group && p == plural)
            .map(|((_, _, ns, name), s)| ((ns.clone(), name.clone()), s.object.clone()))
            .collect()
    }

    /// Creates or changes an object as another field manager (`kubectl`, a controller) would:
    /// `change` edits the object; the fields it set are owned by `manager`.
    pub fn edit(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        manager: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let mut inner = lock(&self.inner);
        inner.resource_version += 1;
        let rv = inner.resource_version;
        let key = (
            group.to_string(),
            plural.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let stored = inner.objects.entry(key).or_default();
        let before = escape_keys(&stored.object);
        change(&mut stored.object);
        let changed: BTreeSet<String> = leaf_paths(&escape_keys(&stored.object))
            .into_iter()
            .filter(|(p, v)| lookup(&before, p) != Some(v))
            .map(|(p, _)| p)
            .collect();
        for owned in stored.managers.values_mut() {
            owned.retain(|p| !changed.contains(p));
        }
        stored
            .managers
            .entry(manager.to_string())
            .or_default()
            .extend(changed);
        if escape_keys(&stored.object).get("spec") != before.get("spec") {
            bump_generation(&mut stored.object);
        }
        stored.object["metadata"]["resourceVersion"] = json!(rv.to_string());
    }

    /// Deletes an object out of band.
    pub fn remove(&self, group: &str, plural: &str, namespace: &str, name: &str) -> bool {
        lock(&self.inner)
            .objects
            .remove(&(group.into(), plural.into(), namespace.into(), name.into()))
            .is_some()
    }

    /// The field managers of an object and what each owns.
    pub fn managers(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> BTreeMap<String, BTreeSet<String>> {
        lock(&self.inner)
            .objects
            .get(&(group.into(), plural.into(), namespace.into(), name.into()))
            .map(|s| s.managers.clone())
            .unwrap_or_default()
    }
}

fn delete_object(
    i: &mut Inner,
    key: &(String, String, String, String),
    plural: &str,
    group: &str,
    name: &str,
) -> Response {
    match i.objects.remove(key) {
        Some(s) => ok(s.object),
        None => status(
            404,
            "NotFound",
            &format!("{plural}.{group} \"{name}\" not found"),
        ),
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn ok(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

/// `a.b.c` paths of every leaf (scalars and whole lists) outside identity fields.
fn leaf_paths(v: &Value) -> Vec<(String, Value)> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(child, &path, out);
                }
            }
            _ => out.push((prefix.to_string(), v.clone())),
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out.retain(|(p, _)| {
        !matches!(
            p.as_str(),
            "apiVersion"
                | "kind"
                | "metadata.name"
                | "metadata.namespace"
                | "metadata.resourceVersion"
                | "metadata.generation"
                | "metadata.uid"
                | "metadata.creationTimestamp"
        ) && !p.starts_with("status")
            && !p.starts_with("metadata.managedFields")
    });
    out
}

// Paths are split on `.`; label and annotation keys contain dots, so paths are taken over
// objects whose keys are escaped (see `escape_keys`).
fn split(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    split(path).iter().try_fold(v, |v, k| v.get(k.as_str()))
}

fn set(v: &mut Value, path: &str, value: Value) {
    let keys = split(path);
    let mut cur = v;
    for k in &keys[..keys.len() - 1] {
        if !cur.get(k.as_str()).is_some_and(Value::is_object) {
            cur[k.as_str()] = json!({});
        }
        cur = &mut cur[k.as_str()];
    }
    cur[keys[keys.len() - 1].as_str()] = value;
}

fn unset(v: &mut Value, path: &str) {
    let keys = split(path);
    let mut cur = v;
    for k in &keys[..keys.len() - 1] {
        match cur.get_mut(k.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(keys[keys.len() - 1].as_str());
    }
}

/// Escapes dots inside map keys so a path splits only between levels.
fn escape_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.replace('.', "\u{1}"), escape_keys(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

fn unescape_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.replace('\u{1}', "."), unescape_keys(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// The `spec` of an object of `kind` read by its operator's published schema (vendored in
/// `crate::crd`; the gateways' transcribed): a field of the wrong type or one the schema lacks is
/// an error, as the API server's strict field validation reports it. Kinds without a schema pass.
fn strict_spec(kind: &str, spec: &Value) -> Result<(), String> {
    fn by<T: serde::de::DeserializeOwned + serde::Serialize>(spec: &Value) -> Result<(), String> {
        let typed: T = serde_json::from_value(spec.clone()).map_err(|e| e.to_string())?;
        let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
        match first_unknown(spec, &back, "spec") {
            Some(path) => Err(format!("unknown field \"{path}\"")),
            None => Ok(()),
        }
    }
    match kind {
        "ClickHouseInstallation" => {
            by::<crate::crd::clickhouse_installation::ClickHouseInstallationSpec>(spec)
        }
        "KafkaConnector" => by::<crate::crd::kafka_connector::KafkaConnectorSpec>(spec),
        "PrometheusRule" => by::<crate::crd::prometheus_rule::PrometheusRuleSpec>(spec),
        // The gateways, External Secrets, Karpenter, CloudNativePG: their schemas' paths,
        // enums and patterns, transcribed.
        kind => match crate::crd::transcribed::problem(kind, spec) {
            Some(problem) => Err(problem),
            None => Ok(()),
        },
    }
}

/// The first path of `sent` that the schema's reading (`kept`) dropped.
fn first_unknown(sent: &Value, kept: &Value, path: &str) -> Option<String> {
    match (sent, kept) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| match b.get(k) {
            None if !v.is_null() => Some(format!("{path}.{k}")),
            None => None,
            Some(w) => first_unknown(v, w, &format!("{path}.{k}")),
        }),
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| first_unknown(v, w, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// RFC 7386: objects merge key by key, `null` removes a key, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Some(map) = target.as_object_mut() else {
        return;
    };
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn bump_generation(object: &mut Value) {
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
    object["metadata"]["generation"] = json!(generation);
}

/// Sets what a controller would once the object is reconciled.
fn reconcile(object: &mut Value) {
    let generation = object["metadata"]["generation"].clone();
    match object["kind"].as_str() {
        Some("Deployment") => {
            let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
            object["status"] = json!({
                "observedGeneration": generation, "replicas": replicas,
                "updatedReplicas": replicas, "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": [{ "type": "Available", "status": "True" }],
            });
        }
        Some("ClickHouseInstallation") => {
            object["status"] = json!({ "status": "Completed", "observedGeneration": generation });
        }
        Some("Service" | "ConfigMap" | "Namespace" | "HorizontalPodAutoscaler") | None => {}
        Some(_) => {
            object["status"] = json!({
                "observedGeneration": generation,
                "conditions": [{ "type": "Ready", "status": "True", "reason": "Reconciled" }],
            });
        }
    }
}

/// Parses `/api/v1/...` or `/apis/{group}/{version}/...` into (group, version, rest).
fn split_api_path(path: &str) -> Option<(String, String, Vec<String>)> {
    let parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    match parts.first().map(String::as_str) {
        Some("api") => Some((String::new(), parts.get(1)?.clone(), parts[2..].to_vec())),
        Some("apis") => Some((
            parts.get(1)?.clone(),
            parts.get(2)?.clone(),
            parts.get(3..)?.to_vec(),
        )),
        _ => None,
    }
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `k=v,k2=v2` (equality selectors only).
fn matches_selector(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        let v = v.trim_start_matches('=');
        object["metadata"]["labels"][k].as_str() == Some(v)
    })
}

async fn handle(State(inner): State<Shared>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Bytes = axum::body::to_bytes(request.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let latency = {
        let mut i = lock(&inner);
        i.seen.push(Seen {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
        });
        i.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut i = lock(&inner);
    if let Some(f) = i.faults.iter_mut().find(|f| {
        f.remaining > 0
            && f.method.as_ref().is_none_or(|m| *m == method)
            && path.contains(&f.path_contains)
    }) {
        f.remaining -= 1;
        let code = f.status;
        let reason = match code {
            404 => "NotFound",
            409 => "Conflict",
            429 => "TooManyRequests",
            403 => "Forbidden",
            _ => "InternalError",
        };
        return status(code, reason, &format!("injected fault {code}"));
    }
    serve(&mut i, &method, &path, &query, &content_type, &body)
}

fn serve(
    i: &mut Inner,
    method: &Method,
    path: &str,
    query: &str,
    content_type: &str,
    body: &[u8],
) -> Response {
    if path == "/api" {
        return ok(
            json!({ "kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [] }),
        );
    }
    if path == "/apis" {
        let mut groups: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for t in i.types.iter().filter(|t| !t.group.is_empty()) {
            groups.entry(t.group).or_default().insert(t.version);
        }
        let groups: Vec<Value> = groups
            .iter()
            .map(|(g, versions)| {
                let vs: Vec<Value> = versions
                    .iter()
                    .map(|v| json!({ "groupVersion": format!("{g}/{v}"), "version": v }))
                    .collect();
                json!({ "name": g, "versions": vs, "preferredVersion": vs[0] })
            })
            .collect();
        return ok(json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }));
    }
    let Some((group, version, rest)) = split_api_path(path) else {
        return status(
            404,
            "NotFound",
            &format!("the server could not find {path}"),
        );
    };
    if rest.is_empty() {
        let resources: Vec<Value> = i
            .types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .map(|t| {
                json!({
                    "name": t.plural, "singularName": t.kind.to_lowercase(), "namespaced": t.namespaced,
                    "kind": t.kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                })
            })
            .collect();
        if resources.is_empty() {
            return status(
                404,
                "NotFound",
                &format!("no group version {group}/{version}"),
            );
        }
        let gv = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        return ok(
            json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources }),
        );
    }
    let (namespace, plural, name) = match rest.as_slice() {
        [ns_word, ns, plural] if ns_word == "namespaces" => (ns.clone(), plural.clone(), None),
        [ns_word, ns, plural, name] if ns_word == "namespaces" => {
            (ns.clone(), plural.clone(), Some(name.clone()))
        }
        [plural] => (String::new(), plural.clone(), None),
        [plural, name] => (String::new(), plural.clone(), Some(name.clone())),
        _ => {
            return status(
                404,
                "NotFound",
                &format!("the server could not find {path}"),
            );
        }
    };
    if let Some(rbac) = &i.rbac {
        let verb = match (method.as_str(), &name) {
            ("GET", None) if query_param(query, "watch").as_deref() == Some("true") => "watch",
            ("GET", None) => "list",
            ("GET", Some(_)) => "get",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", None) => "deletecollection",
            ("DELETE", Some(_)) => "delete",
            (other, _) => other,
        };
        if !rbac.allows(verb, &group, &plural, &namespace) {
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{namespace}\"")
            };
            return status(
                403,
                "Forbidden",
                &format!(
                    "{plural}.{group} is forbidden: User \"{}\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}",
                    rbac.user
                ),
            );
        }
    }
    let Some(t) = i
        .types
        .iter()
        .find(|t| t.group == group && t.version == version && t.plural == plural)
        .cloned()
    else {
        return status(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({plural}.{group})"),
        );
    };
    let key = |name: &str| {
        (
            group.clone(),
            plural.clone(),
            namespace.clone(),
            name.to_string(),
        )
    };
    match (method.as_str(), name) {
        ("GET", None) => {
            let selector = query_param(query, "labelSelector").unwrap_or_default();
            let items: Vec<Value> = i
                .objects
                .iter()
                .filter(|((g, p, ns, _), s)| {
                    g == &group
                        && p == &plural
                        && (namespace.is_empty() || ns == &namespace)
                        && matches_selector(&s.object, &selector)
                })
                .map(|(_, s)| s.object.clone())
                .collect();
            ok(json!({
                "apiVersion": t.group_version(), "kind": format!("{}List", t.kind),
                "metadata": { "resourceVersion": i.resource_version.to_string() }, "items": items,
            }))
        }
        ("GET", Some(name)) => match i.objects.get(&key(&name)) {
            Some(s) => ok(s.object.clone()),
            None => status(
                404,
                "NotFound",
                &format!("{plural}.{group} \"{name}\" not found"),
            ),
        },
        ("DELETE", Some(name)) => {
            // DeleteOptions preconditions, as the API server checks them: a uid or version that
            // is not the object's refuses the delete.
            let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            if let Some(stored) = i.objects.get(&key(&name)) {
                for (field, path) in [("uid", "uid"), ("resourceVersion", "resourceVersion")] {
                    let wanted = &options["preconditions"][field];
                    if !wanted.is_null() && wanted != &stored.object["metadata"][path] {
                        return status(
                            409,
                            "Conflict",
                            &format!(
                                "Precondition failed: {field} in precondition: {wanted}, {field} in object meta: {}",
                                stored.object["metadata"][path]
                            ),
                        );
                    }
                }
            }
            delete_object(i, &key(&name), &plural, &group, &name)
        }
        ("PATCH", Some(name)) if content_type.starts_with("application/merge-patch") => {
            // A JSON merge patch (RFC 7386), an update: the fields it changes become the
            // manager's alone, the ones it removes (null) are nobody's.
            let patch: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => {
                    return status(400, "BadRequest", &format!("cannot decode the patch: {e}"));
                }
            };
            let manager = query_param(query, "fieldManager").unwrap_or_else(|| "unknown".into());
            i.resource_version += 1;
            let rv = i.resource_version;
            let Some(stored) = i.objects.get_mut(&key(&name)) else {
                return status(
                    404,
                    "NotFound",
                    &format!("{plural}.{group} \"{name}\" not found"),
                );
            };
            let before = escape_keys(&stored.object);
            merge_patch(&mut stored.object, &patch);
            let after = escape_keys(&stored.object);
            let changed: BTreeSet<String> = leaf_paths(&after)
                .into_iter()
                .filter(|(p, v)| lookup(&before, p) != Some(v))
                .map(|(p, _)| p)
                .collect();
            let removed: BTreeSet<String> = leaf_paths(&before)
                .into_iter()
                .filter(|(p, _)| lookup(&after, p).is_none())
                .map(|(p, _)| p)
                .collect();
            for owned in stored.managers.values_mut() {
                owned.retain(|p| !changed.contains(p) && !removed.contains(p));
            }
            if !changed.is_empty() {
                stored.managers.entry(manager).or_default().extend(changed);
            }
            if after.get("spec") != before.get("spec") {
                bump_generation(&mut stored.object);
            }
            stored.object["metadata"]["resourceVersion"] = json!(rv.to_string());
            ok(stored.object.clone())
        }
        ("PATCH", Some(name)) if content_type.starts_with("application/apply-patch") => {
            let applied: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => match serde_norway::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => {
                        return status(
                            400,
                            "BadRequest",
                            &format!("cannot decode the apply patch: {e}"),
                        );
                    }
                },
            };
            let Some(manager) = query_param(query, "fieldManager") else {
                return status(
                    400,
                    "BadRequest",
                    "fieldManager is required for apply patch",
                );
            };
            let force = query_param(query, "force").as_deref() == Some("true");
            // A resourceVersion in the applied object is a precondition, as in the API server.
            if let Some(wanted) = applied["metadata"]["resourceVersion"].as_str() {
                let current = i
                    .objects
                    .get(&key(&name))
                    .map(|s| s.object["metadata"]["resourceVersion"].clone());
                match current {
                    Some(rv) if rv.as_str() == Some(wanted) => {}
                    Some(_) => {
                        return status(
                            409,
                            "Conflict",
                            &format!(
                                "Operation cannot be fulfilled on {plural}.{group} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                            ),
                        );
                    }
                    None => {
                        return status(
                            404,
                            "NotFound",
                            &format!("{plural}.{group} \"{name}\" not found"),
                        );
                    }
                }
            }
            if applied["kind"].as_str() != Some(t.kind) {
                return status(
                    400,
                    "BadRequest",
                    "the kind in the body does not match the path",
                );
            }
            // Fields the API server never changes once set: a Deployment's selector, a Job's
            // pod template. A change is a 422, as on a cluster.
            if let Some(existing) = i.objects.get(&key(&name))
                && let Some(field) = immutable_change(t.kind, &existing.object, &applied)
            {
                return status(
                    422,
                    "Invalid",
                    &format!(
                        "{}.{} \"{name}\" is invalid: {field}: Invalid value: {}: field is immutable",
                        t.kind,
                        if group.is_empty() {
                            "core"
                        } else {
                            group.as_str()
                        },
                        lookup_path(&applied, field)
                    ),
                );
            }
            // `fieldValidation=Strict`: a field the type's schema does not define is refused,
            // where the API server would otherwise prune it silently (the operators' CRDs,
            // by their vendored schemas).
            if query_param(query, "fieldValidation").as_deref() == Some("Strict")
                && let Err(problem) = strict_spec(t.kind, &applied["spec"])
            {
                return status(
                    400,
                    "BadRequest",
                    &format!(
                        "{} \"{name}\" is invalid: strict decoding error: {problem}",
                        t.kind
                    ),
                );
            }
            i.resource_version += 1;
            let rv = i.resource_version;
            let auto = i.auto_ready;
            let stored = i.objects.entry(key(&name)).or_default();
            let escaped_applied = escape_keys(&applied);
            let mut current = escape_keys(&stored.object);
            let fields: Vec<(String, Value)> = leaf_paths(&escaped_applied);
            let field_set: BTreeSet<String> = fields.iter().map(|(p, _)| p.clone()).collect();
            let mut conflicts = Vec::new();
            for (other, owned) in &stored.managers {
                if other == &manager {
                    continue;
                }
                for (p, v) in &fields {
                    if owned.contains(p) && lookup(&current, p) != Some(v) {
                        conflicts.push((other.clone(), p.replace('\u{1}', ".")));
                    }
                }
            }
            if !conflicts.is_empty() && !force {
                let list: Vec<String> = conflicts
                    .iter()
                    .map(|(m, p)| format!("conflict with \"{m}\": .{p}"))
                    .collect();
                return status(
                    409,
                    "Conflict",
                    &format!(
                        "Apply failed with {} conflict(s): {}",
                        conflicts.len(),
                        list.join(", ")
                    ),
                );
            }
            // A field applied with the value it has is shared with the managers that own it;
            // one whose value the apply changes (forced, past a conflict) is taken from them.
            let changed: BTreeSet<&String> = fields
                .iter()
                .filter(|(p, v)| lookup(&current, p) != Some(v))
                .map(|(p, _)| p)
                .collect();
            for owned in stored
                .managers
                .iter_mut()
                .filter(|(m, _)| *m != &manager)
                .map(|(_, o)| o)
            {
                owned.retain(|p| !changed.contains(p));
            }
            let before_spec = current.get("spec").cloned();
            // A field the manager applied before and leaves out now is removed, unless another
            // manager owns it too: then it stays, theirs alone (how ownership is handed over).
            if let Some(previous) = stored.managers.get(&manager) {
                for p in previous.difference(&field_set) {
                    let shared = stored
                        .managers
                        .iter()
                        .any(|(m, owned)| *m != manager && owned.contains(p));
                    if !shared {
                        unset(&mut current, p);
                    }
                }
            }
            if current.is_null() {
                current = json!({});
            }
            for (p, v) in &fields {
                set(&mut current, p, v.clone());
            }
            current["apiVersion"] = applied["apiVersion"].clone();
            current["kind"] = applied["kind"].clone();
            current["metadata"]["name"] = json!(name);
            if t.namespaced {
                current["metadata"]["namespace"] = json!(namespace);
            }
            if current["metadata"]["uid"].is_null() {
                current["metadata"]["uid"] = json!(format!("uid-{rv}"));
                current["metadata"]["generation"] = json!(1);
            } else if current.get("spec").cloned() != before_spec {
                bump_generation(&mut current);
            }
            current["metadata"]["resourceVersion"] = json!(rv.to_string());
            let mut object = unescape_keys(&current);
            if auto {
                reconcile(&mut object);
            }
            stored.object = object.clone();
            stored.managers.insert(manager, field_set);
            ok(object)
        }
        (m, _) => status(
            405,
            "MethodNotAllowed",
            &format!("{m} is not supported by the emulator"),
        ),
    }
}

/// The immutable field an apply would change, by the API server's validation: a Deployment's
/// `spec.selector`, a Job's `spec.template` (compared on what the apply sets).
fn immutable_change(kind: &str, existing: &Value, applied: &Value) -> Option<&'static str> {
    let field = match kind {
        "Deployment" => "spec.selector",
        "Job" => "spec.template",
        _ => return None,
    };
    let before = lookup_path(existing, field);
    let after = lookup_path(applied, field);
    (!before.is_null() && !after.is_null() && before != after).then_some(field)
}

fn lookup_path(doc: &Value, dotted: &str) -> Value {
    dotted.split('.').fold(doc, |v, k| &v[k]).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_paths() {
        let o = json!({ "metadata": { "labels": { "a": "1", "b.io/x": "2" } } });
        assert!(matches_selector(&o, "a=1,b.io/x=2"));
        assert!(!matches_selector(&o, "a=2"));
        assert_eq!(percent_decode("a%3D1%2Cb"), "a=1,b");
        let (g, v, rest) = split_api_path("/apis/apps/v1/namespaces/x/deployments").unwrap();
        assert_eq!((g.as_str(), v.as_str(), rest.len()), ("apps", "v1", 3));
    }
}
