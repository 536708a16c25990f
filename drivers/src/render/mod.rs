//! Rendering resources into the documents that describe them. Shared by the local driver (which
//! writes them to files) and the Kubernetes driver (which applies them).
//!
//! - `service`, `ai-endpoint` (self-hosted runtimes), `pipeline` → Kubernetes `Deployment`,
//!   `Service`, `HorizontalPodAutoscaler`, and an `ExternalSecret` for secret references;
//! - `topic` → a Strimzi `KafkaTopic`;
//! - `job` → a `batch/v1` `Job`, or a `CronJob` with a schedule;
//! - a ClickHouse `database` → an Altinity `ClickHouseInstallation` (and a backup `CronJob`);
//! - self-hosted `ai-endpoint`s also → Envoy AI Gateway objects, and `llm-quota` → an Envoy
//!   Gateway `BackendTrafficPolicy` (`gateway.rs`);
//! - `database`, `bucket`, `gpu-pool`, SageMaker endpoints → a canonical `platformd.dev/v1`
//!   document (no Kubernetes form);
//! - a `monitoring` block on any resource → a prometheus-operator `PrometheusRule`
//!   (`monitoring.rs`), after the resource's own documents.
//!
//! Every document carries the ownership labels (`app.kubernetes.io/managed-by: platformd`,
//! `platformd.dev/stack`) and the `platformd.dev/address` annotation.

pub mod clickhouse;
pub mod gateway;
pub mod kubernetes;
pub mod monitoring;

use crate::{ADDRESS_ANNOTATION, DesiredResource, MANAGED_BY_LABEL, MANAGED_BY_VALUE, STACK_LABEL};
use planner::model::{DatabaseEngine, Kind, ModelRuntime, Spec};
use serde_json::{Map, Value, json};

/// The documents a resource renders to, in a stable order.
pub fn documents(desired: &DesiredResource, namespace: &str) -> Vec<Value> {
    let mut docs = match desired.fields() {
        Spec::Database(db) if db.engine == DatabaseEngine::Clickhouse => {
            clickhouse::documents(desired, db, namespace, clickhouse::DEFAULT_KEEPER)
        }
        fields if has_kubernetes_form(fields) => kubernetes::manifests(desired, namespace),
        _ => vec![canonical(desired)],
    };
    docs.extend(monitoring::rules(desired, namespace));
    docs
}

/// Whether a resource with these fields renders to Kubernetes manifests.
pub fn has_kubernetes_form(fields: &Spec) -> bool {
    match fields {
        Spec::Service(_)
        | Spec::Pipeline(_)
        | Spec::Topic(_)
        | Spec::LlmQuota(_)
        | Spec::Job(_) => true,
        Spec::AiEndpoint(e) => e.runtime != ModelRuntime::Sagemaker,
        Spec::Database(db) => db.engine == DatabaseEngine::Clickhouse,
        Spec::Bucket(_) | Spec::GpuPool(_) => false,
    }
}

/// Labels on every document of a resource: ownership, stack, team, kind, and the user's labels.
pub fn labels(desired: &DesiredResource) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("app.kubernetes.io/name".into(), desired.name.clone().into());
    m.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    m.insert(STACK_LABEL.into(), desired.stack.clone().into());
    m.insert("platformd.dev/kind".into(), desired.kind.as_str().into());
    m.insert("platformd.dev/team".into(), desired.team().into());
    for (k, v) in &desired.spec.labels {
        m.insert(k.clone(), v.clone().into());
    }
    m
}

/// The secret store a reference names (`aws-sm:prod/app/key` → `aws-sm`).
pub fn secret_store(reference: &str) -> &str {
    reference.split(':').next().unwrap_or("aws-sm")
}

/// The Secret holding the entries of one secret store, of secrets named `base`: `base` itself
/// when the entries come from one store, `<base>-<store>` for each when they come from several
/// (an ExternalSecret reads from exactly one store).
pub fn store_secret_name(base: &str, store: &str, stores: usize) -> String {
    if stores <= 1 {
        base.to_string()
    } else {
        format!("{base}-{store}")
    }
}

/// One `ExternalSecret` per secret store the `(key, reference)` entries name, each filling
/// [`store_secret_name`]`(base, store, …)` with that store's entries.
pub fn external_secrets_by_store<'a>(
    desired: &DesiredResource,
    namespace: &str,
    base: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
) -> Vec<Value> {
    let stores: std::collections::BTreeSet<&str> = entries
        .clone()
        .into_iter()
        .map(|(_, reference)| secret_store(reference))
        .collect();
    stores
        .iter()
        .map(|store| {
            external_secret(
                desired,
                namespace,
                &store_secret_name(base, store, stores.len()),
                store,
                entries
                    .clone()
                    .into_iter()
                    .filter(|(_, reference)| secret_store(reference) == *store),
            )
        })
        .collect()
}

/// A value Kubernetes passes on literally: `$(NAME)` in an env value is otherwise replaced by
/// another variable of the container, and `$$(` is its escape.
pub fn literal_env_value(value: &str) -> String {
    value.replace("$(", "$$(")
}

/// An External Secrets `ExternalSecret` filling the Secret `secret` from the cluster store
/// `store`: each `(key, reference)` becomes the Secret's `key`, read at the reference's path
/// (`aws-sm:prod/app/key` → `prod/app/key`). platformd never sees a value.
fn external_secret<'a>(
    desired: &DesiredResource,
    namespace: &str,
    secret: &str,
    store: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Value {
    let data: Vec<Value> = entries
        .into_iter()
        .map(|(key, reference)| {
            let path = reference.split_once(':').map_or(reference, |(_, p)| p);
            serde_json::json!({ "secretKey": key, "remoteRef": { "key": path } })
        })
        .collect();
    serde_json::json!({
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "ExternalSecret",
        "metadata": metadata(desired, secret, Some(namespace)),
        "spec": {
            "secretStoreRef": { "kind": "ClusterSecretStore", "name": store },
            "target": { "name": secret },
            "data": data,
        },
    })
}

pub fn metadata(desired: &DesiredResource, name: &str, namespace: Option<&str>) -> Value {
    let mut meta = Map::new();
    meta.insert("name".into(), name.into());
    if let Some(ns) = namespace {
        meta.insert("namespace".into(), ns.into());
    }
    meta.insert("labels".into(), Value::Object(labels(desired)));
    meta.insert(
        "annotations".into(),
        json!({ ADDRESS_ANNOTATION: desired.address }),
    );
    Value::Object(meta)
}

/// `platformd.dev/v1` document for kinds with no Kubernetes form: the spec's own fields
/// (without `team`, `labels` and `lifecycle`, which live in metadata or stay in platformd).
pub fn canonical(desired: &DesiredResource) -> Value {
    let spec = serde_json::to_value(desired.fields()).unwrap_or_default();
    let kind = match desired.kind {
        Kind::Database => "Database",
        Kind::Bucket => "Bucket",
        Kind::GpuPool => "GpuPool",
        Kind::AiEndpoint => "SageMakerEndpoint",
        Kind::Service => "Service",
        Kind::Topic => "Topic",
        Kind::Pipeline => "Pipeline",
        Kind::LlmQuota => "LlmQuota",
        Kind::Job => "Job",
    };
    json!({
        "apiVersion": "platformd.dev/v1",
        "kind": kind,
        "metadata": metadata(desired, &desired.name, None),
        "spec": spec,
    })
}

/// Paths of the rendered documents that a spec field renders to, for `ignore-changes` (the
/// workload's Deployment is the first document).
pub fn live_paths(kind: Kind, field: &str) -> Vec<String> {
    let container = "[0].spec.template.spec.containers[0]";
    match (kind, field) {
        (_, "labels") => vec!["[0].metadata.labels".into()],
        (Kind::Service | Kind::Pipeline | Kind::AiEndpoint, "replicas") => {
            vec!["[0].spec.replicas".into()]
        }
        (Kind::Service | Kind::Pipeline, "image") => vec![format!("{container}.image")],
        (Kind::Service | Kind::Pipeline, "env") => vec![format!("{container}.env")],
        (Kind::Service | Kind::Pipeline, "resources") => vec![format!("{container}.resources")],
        (Kind::Topic, "partitions") => vec!["[0].spec.partitions".into()],
        (Kind::Topic, "replication-factor") => vec!["[0].spec.replicas".into()],
        (Kind::Topic, "retention-hours") => vec!["[0].spec.config".into()],
        (_, f) => vec![format!("[0].spec.{f}")],
    }
}

/// The rendered paths (document index, path in it) of the fields `ignore-changes` names.
pub(crate) fn ignored_paths(desired: &DesiredResource) -> Vec<(usize, String)> {
    desired
        .spec
        .lifecycle
        .ignore_changes
        .iter()
        .flat_map(|field| live_paths(desired.kind, field))
        .filter_map(|path| {
            let rest = path.strip_prefix('[')?;
            let (index, path) = rest.split_once(']')?;
            Some((
                index.parse().ok()?,
                path.trim_start_matches('.').to_string(),
            ))
        })
        .collect()
}

/// One step of a rendered path: a key, or an index into an array.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `spec.template.spec.containers[0].image` as steps.
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Step::Index(i));
            }
            rest = after.trim_start_matches('[');
        }
    }
    out
}

pub(crate) fn value_at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    steps(path).iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get(*k),
        Step::Index(i) => v.get(*i),
    })
}

pub(crate) fn value_at_mut<'a>(value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    steps(path).iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get_mut(*k),
        Step::Index(i) => v.get_mut(*i),
    })
}

/// Whether `path` names a field outside any list (`spec.replicas`, not
/// `spec.template.spec.containers[0].image`): such a field can be left out of an apply and owned
/// by someone else alone. A field inside a list is kept at its live value instead (lists are
/// merged by key, which a field path here does not carry).
pub(crate) fn outside_lists(path: &str) -> bool {
    steps(path).iter().all(|s| matches!(s, Step::Key(_)))
}

/// Removes the field at `path` (outside lists) from `doc`, returning its value.
pub(crate) fn take_value(doc: &mut Value, path: &str) -> Option<Value> {
    let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
    let parent = if parent.is_empty() {
        Some(doc)
    } else {
        value_at_mut(doc, parent)
    };
    parent?.as_object_mut()?.remove(last)
}

/// Sets the field at `path` (outside lists) in `doc`, making the objects on the way.
pub(crate) fn put_value(doc: &mut Value, path: &str, value: Value) {
    let mut cur = doc;
    let keys: Vec<&str> = path.split('.').filter(|k| !k.is_empty()).collect();
    for (i, key) in keys.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == keys.len() {
            map.insert(key.to_string(), value);
            return;
        }
        cur = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

/// Gives `doc` the value `live` has at `path`, where both have the field: what `ignore-changes`
/// keeps at apply.
pub(crate) fn keep_live_value(doc: &mut Value, live: &Value, path: &str) {
    if let (Some(value), Some(slot)) = (value_at(live, path), value_at_mut(doc, path)) {
        *slot = value.clone();
    }
}
