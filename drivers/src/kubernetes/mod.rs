//! The Kubernetes driver (`docs/DRIVERS.md`), on kube-rs: every document the renderer makes is
//! server-side applied with field manager `platformd` (forced by default), arbitrary kinds are
//! reached through discovery and dynamic objects, and what the driver owns is found with one
//! list per resource type and namespace, filtered by the ownership labels. The
//! `platformd.dev/address` annotation is the tracking id: an object merely labelled like ours is
//! never observed as ours, nor deleted.
//!
//! `client.rs` builds the client (kubeconfig, context, in-cluster); `errors.rs` classifies API
//! errors; `health.rs` decides readiness (kstatus rules).

mod client;
mod cnpg;
mod errors;
mod health;
mod nodepool;

use crate::render;
use crate::{
    ADDRESS_ANNOTATION, Applied, DesiredResource, Driver, DriverError, Health, MANAGED_BY_LABEL,
    MANAGED_BY_VALUE, ObjectRef, ObservedResource, Outputs, STACK_LABEL,
};
use async_trait::async_trait;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, Preconditions, ValidationDirective,
};
use kube::discovery::Scope;
use planner::model::{DatabaseEngine, Kind, Spec};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

pub use client::Settings;

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "platformd";

/// The alert rules of a resource's `monitoring` block, after its own objects.
const PROMETHEUS_RULE: (&str, &str, &str) = ("monitoring.coreos.com", "v1", "PrometheusRule");

/// One type of object the driver writes, as RBAC names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectType {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The resource (plural) RBAC rules name.
    pub resource: &'static str,
    pub namespaced: bool,
}

const fn namespaced(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    resource: &'static str,
) -> ObjectType {
    ObjectType {
        group,
        version,
        kind,
        resource,
        namespaced: true,
    }
}

/// Every type of object the driver writes, and so what its ServiceAccount must be granted:
/// the ClusterRoles in `deploy/kubernetes/base/clusterrole.yaml` grant exactly these, with
/// [`VERBS`] (checked by `drivers/tests/rbac.rs`, with every document rendered).
pub const OBJECT_TYPES: &[ObjectType] = &[
    namespaced("apps", "v1", "Deployment", "deployments"),
    namespaced("", "v1", "Service", "services"),
    namespaced(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    namespaced("batch", "v1", "Job", "jobs"),
    namespaced("batch", "v1", "CronJob", "cronjobs"),
    namespaced(
        "external-secrets.io",
        "v1beta1",
        "ExternalSecret",
        "externalsecrets",
    ),
    namespaced(
        "monitoring.coreos.com",
        "v1",
        "PrometheusRule",
        "prometheusrules",
    ),
    namespaced("kafka.strimzi.io", "v1beta2", "KafkaTopic", "kafkatopics"),
    namespaced(
        "kafka.strimzi.io",
        "v1beta2",
        "KafkaConnector",
        "kafkaconnectors",
    ),
    namespaced("postgresql.cnpg.io", "v1", "Cluster", "clusters"),
    namespaced(
        "clickhouse.altinity.com",
        "v1",
        "ClickHouseInstallation",
        "clickhouseinstallations",
    ),
    namespaced("gateway.envoyproxy.io", "v1alpha1", "Backend", "backends"),
    namespaced(
        "gateway.envoyproxy.io",
        "v1alpha1",
        "BackendTrafficPolicy",
        "backendtrafficpolicies",
    ),
    namespaced(
        "gateway.envoyproxy.io",
        "v1alpha1",
        "SecurityPolicy",
        "securitypolicies",
    ),
    namespaced(
        "aigateway.envoyproxy.io",
        "v1alpha1",
        "AIServiceBackend",
        "aiservicebackends",
    ),
    namespaced(
        "aigateway.envoyproxy.io",
        "v1alpha1",
        "AIGatewayRoute",
        "aigatewayroutes",
    ),
    ObjectType {
        group: "karpenter.sh",
        version: "v1",
        kind: "NodePool",
        resource: "nodepools",
        namespaced: false,
    },
];

/// What the driver does with its objects: read one (`get`), list them by label (`list`),
/// server-side apply (`patch`, and `create` for an object that does not exist yet), remove
/// (`delete`). Nothing else is granted.
pub const VERBS: &[&str] = &["get", "list", "create", "patch", "delete"];

/// The type of `doc` among [`OBJECT_TYPES`].
pub fn object_type_of(doc: &Value) -> Option<&'static ObjectType> {
    let api_version = doc["apiVersion"].as_str()?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = doc["kind"].as_str()?;
    OBJECT_TYPES
        .iter()
        .find(|t| t.group == group && t.version == version && t.kind == kind)
}

/// The object types each kind renders to, in the order the renderer emits them.
fn object_types(kind: Kind) -> &'static [(&'static str, &'static str, &'static str)] {
    match kind {
        Kind::Service => &[
            ("apps", "v1", "Deployment"),
            ("", "v1", "Service"),
            ("autoscaling", "v2", "HorizontalPodAutoscaler"),
            ("external-secrets.io", "v1beta1", "ExternalSecret"),
            PROMETHEUS_RULE,
        ],
        Kind::Pipeline => &[
            ("batch", "v1", "Job"),
            ("apps", "v1", "Deployment"),
            ("kafka.strimzi.io", "v1beta2", "KafkaConnector"),
            ("", "v1", "Service"),
            ("autoscaling", "v2", "HorizontalPodAutoscaler"),
            ("external-secrets.io", "v1beta1", "ExternalSecret"),
            PROMETHEUS_RULE,
        ],
        Kind::AiEndpoint => &[
            ("apps", "v1", "Deployment"),
            ("", "v1", "Service"),
            ("gateway.envoyproxy.io", "v1alpha1", "Backend"),
            ("aigateway.envoyproxy.io", "v1alpha1", "AIServiceBackend"),
            ("aigateway.envoyproxy.io", "v1alpha1", "AIGatewayRoute"),
            ("gateway.envoyproxy.io", "v1alpha1", "SecurityPolicy"),
            ("gateway.envoyproxy.io", "v1alpha1", "BackendTrafficPolicy"),
            ("autoscaling", "v2", "HorizontalPodAutoscaler"),
            ("external-secrets.io", "v1beta1", "ExternalSecret"),
            PROMETHEUS_RULE,
        ],
        Kind::LlmQuota => &[("gateway.envoyproxy.io", "v1alpha1", "BackendTrafficPolicy")],
        Kind::Job => &[
            ("batch", "v1", "Job"),
            ("batch", "v1", "CronJob"),
            ("external-secrets.io", "v1beta1", "ExternalSecret"),
        ],
        Kind::Topic => &[
            ("kafka.strimzi.io", "v1beta2", "KafkaTopic"),
            PROMETHEUS_RULE,
        ],
        Kind::GpuPool => &[("karpenter.sh", "v1", "NodePool")],
        Kind::Database => &[
            ("postgresql.cnpg.io", "v1", "Cluster"),
            ("clickhouse.altinity.com", "v1", "ClickHouseInstallation"),
            ("batch", "v1", "CronJob"),
            ("external-secrets.io", "v1beta1", "ExternalSecret"),
            PROMETHEUS_RULE,
        ],
        // Buckets live in the cloud account (the `aws` driver).
        Kind::Bucket => &[],
    }
}

fn gvk_of(doc: &Value) -> GroupVersionKind {
    let api_version = doc["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, doc["kind"].as_str().unwrap_or(""))
}

/// Group, version and kind of an object type.
type TypeKey = (String, String, String);
/// What discovery said of a type: its resource, and whether it is namespaced.
type Discovered = (ApiResource, bool);

pub struct KubernetesDriver {
    settings: Settings,
    client: tokio::sync::OnceCell<kube::Client>,
    /// Discovery results, per group/version/kind.
    resources: tokio::sync::Mutex<HashMap<TypeKey, Discovered>>,
    /// How often readiness is polled.
    poll: Duration,
}

impl KubernetesDriver {
    pub fn new(settings: Settings) -> KubernetesDriver {
        KubernetesDriver {
            settings,
            client: tokio::sync::OnceCell::new(),
            resources: tokio::sync::Mutex::new(HashMap::new()),
            poll: Duration::from_millis(250),
        }
    }

    /// The driver a stack's `driver "kubernetes" { … }` block declares.
    pub fn from_settings(settings: &BTreeMap<String, String>) -> KubernetesDriver {
        KubernetesDriver::new(Settings::from_map(settings))
    }

    async fn client(&self) -> Result<&kube::Client, DriverError> {
        self.client
            .get_or_try_init(|| client::connect(&self.settings))
            .await
    }

    fn namespace<'a>(&'a self, stack: &'a str) -> &'a str {
        self.settings.namespace.as_deref().unwrap_or(stack)
    }

    /// The objects `desired` is made of in the cluster.
    fn documents(&self, desired: &DesiredResource) -> Vec<Value> {
        let mut docs = self.rendered(desired);
        if !self.settings.image_pull_secrets.is_empty() {
            with_pull_secrets(&mut docs, &self.settings.image_pull_secrets);
        }
        docs
    }

    /// The documents of `desired` with this driver's cluster-wide choices (node class, Kafka
    /// and Connect clusters, keeper, gateway).
    fn rendered(&self, desired: &DesiredResource) -> Vec<Value> {
        let namespace = self.namespace(&desired.stack);
        match desired.fields() {
            Spec::GpuPool(pool) => vec![nodepool::node_pool(
                desired,
                pool,
                self.settings.node_class.as_deref().unwrap_or("default"),
            )],
            Spec::Database(db) if db.engine == DatabaseEngine::Clickhouse => {
                let keeper = self
                    .settings
                    .clickhouse_keeper
                    .as_deref()
                    .unwrap_or(render::clickhouse::DEFAULT_KEEPER);
                let mut docs = render::clickhouse::documents(desired, db, namespace, keeper);
                docs.extend(render::monitoring::rules(desired, namespace));
                docs
            }
            Spec::Database(db) => std::iter::once(cnpg::cluster(desired, db, namespace))
                .chain(render::monitoring::rules(desired, namespace))
                .collect(),
            Spec::AiEndpoint(e) => {
                let mut docs = render::documents(desired, self.namespace(&desired.stack));
                if let Some(gateway) = &self.settings.ai_gateway {
                    render::gateway::attach_to(&mut docs, gateway);
                }
                // The operator's pinned serving image, for the stable and the canary revision.
                if let Some(image) = self.settings.runtime_images.get(&e.runtime.to_string()) {
                    for doc in docs.iter_mut().filter(|d| d["kind"] == "Deployment") {
                        doc["spec"]["template"]["spec"]["containers"][0]["image"] =
                            image.clone().into();
                    }
                }
                docs
            }
            Spec::Topic(_) => {
                let mut docs = render::documents(desired, self.namespace(&desired.stack));
                if let Some(cluster) = &self.settings.kafka_cluster {
                    for doc in &mut docs {
                        doc["metadata"]["labels"]["strimzi.io/cluster"] = cluster.clone().into();
                    }
                }
                docs
            }
            Spec::Pipeline(_) => {
                let mut docs = render::documents(desired, namespace);
                if let Some(cluster) = &self.settings.kafka_connect_cluster {
                    for doc in docs.iter_mut().filter(|d| d["kind"] == "KafkaConnector") {
                        doc["metadata"]["labels"]["strimzi.io/cluster"] = cluster.clone().into();
                    }
                }
                docs
            }
            _ => render::documents(desired, self.namespace(&desired.stack)),
        }
    }

    /// The API of one object type in `namespace` (ignored for cluster-scoped types).
    async fn api(
        &self,
        gvk: &GroupVersionKind,
        namespace: &str,
    ) -> Result<Api<DynamicObject>, DriverError> {
        let client = self.client().await?.clone();
        let key = (gvk.group.clone(), gvk.version.clone(), gvk.kind.clone());
        let mut cache = self.resources.lock().await;
        let (resource, namespaced) = match cache.get(&key) {
            Some(found) => found.clone(),
            None => {
                let (resource, caps) = kube::discovery::pinned_kind(&client, gvk)
                    .await
                    .map_err(|e| errors::discovery(gvk, e))?;
                let found = (resource, caps.scope == Scope::Namespaced);
                cache.insert(key, found.clone());
                found
            }
        };
        Ok(if namespaced {
            self.settings.permits_namespace(namespace)?;
            Api::namespaced_with(client, namespace, &resource)
        } else {
            Api::all_with(client, &resource)
        })
    }

    /// Everything of one type that carries this stack's ownership labels and a tracking
    /// annotation: address → objects.
    async fn owned(
        &self,
        stack: &str,
        gvk: &GroupVersionKind,
    ) -> Result<Vec<(String, DynamicObject)>, DriverError> {
        let api = self.api(gvk, self.namespace(stack)).await?;
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{STACK_LABEL}={stack}");
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| errors::api(e, "list", &gvk.kind, self.namespace(stack)))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|o| {
                let address = o
                    .metadata
                    .annotations
                    .as_ref()?
                    .get(ADDRESS_ANNOTATION)?
                    .clone();
                Some((address, o))
            })
            .collect())
    }

    /// Deletes one object of `address`; one that is already gone is fine. An object by that name
    /// that is not this stack's `address` (someone replaced ours) is left alone: ours is gone.
    /// The delete is conditional on the uid and version read, so an object replaced between
    /// the read and the delete is not deleted either.
    async fn delete_object(
        &self,
        stack: &str,
        address: &str,
        object: &ObjectRef,
    ) -> Result<(), DriverError> {
        let gvk =
            gvk_of(&serde_json::json!({ "apiVersion": object.api_version, "kind": object.kind }));
        let namespace = object.namespace.as_deref().unwrap_or("");
        let api = self.api(&gvk, namespace).await?;
        let live = match api.get_opt(&object.name).await {
            Ok(Some(live)) => live,
            Ok(None) => return Ok(()),
            Err(e) => return Err(errors::api(e, "get", &object.kind, namespace)),
        };
        if !owned_by(&live, stack, address) {
            tracing::warn!(
                kind = %object.kind,
                namespace,
                name = %object.name,
                address,
                "not deleted: the object by this name is not this stack's (its tracking annotation is missing or names another resource)"
            );
            return Ok(());
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: live.metadata.uid.clone(),
                resource_version: live.metadata.resource_version.clone(),
            }),
            ..DeleteParams::foreground()
        };
        crate::fence::check()?;
        match api.delete(&object.name, &params).await {
            Ok(_) => Ok(()),
            Err(e) if errors::status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(errors::api(e, "delete", &object.kind, namespace)),
        }
    }

    /// The objects of `address` found by ownership labels and tracking annotation: the
    /// inventory of a resource applied before inventories were kept.
    async fn found_objects(
        &self,
        stack: &str,
        address: &str,
        kind: Kind,
    ) -> Result<Vec<ObjectRef>, DriverError> {
        let mut found = Vec::new();
        for (group, version, kind_name) in object_types(kind) {
            let gvk = GroupVersionKind::gvk(group, version, kind_name);
            let owned = match self.owned(stack, &gvk).await {
                Ok(o) => o,
                // A type whose CRD is not installed holds nothing of ours.
                Err(e) if errors::is_missing_type(&e) => continue,
                Err(e) => return Err(e),
            };
            for (owner, object) in owned {
                if owner == address {
                    found.push(object_ref(
                        &serde_json::to_value(&object).unwrap_or_default(),
                    ));
                }
            }
        }
        Ok(found)
    }
}

/// A resource's health: its worst object's, with that object's reason.
fn overall_health(live: &[Value]) -> (Health, Option<String>) {
    let mut worst = (Health::Ready, None);
    for doc in live {
        let what = format!(
            "{} {}",
            doc["kind"].as_str().unwrap_or(""),
            doc["metadata"]["name"].as_str().unwrap_or("")
        );
        match health::assess(doc) {
            health::Health::Failed(why) => {
                return (Health::Degraded, Some(format!("{what}: {why}")));
            }
            health::Health::Progressing(why) if worst.0 == Health::Ready => {
                worst = (Health::Progressing, Some(format!("{what}: {why}")));
            }
            _ => {}
        }
    }
    worst
}

/// The inventory entry of an object (rendered or live).
/// `object` with the live value of each of `paths` (where both have the field).
/// The field manager that holds the fields `ignore-changes` hands over, until the autoscaler or
/// operator that changes them takes them (its update makes it their only owner).
const HANDOVER_FIELD_MANAGER: &str = "platformd-handover";

impl KubernetesDriver {
    /// `ignore-changes` at apply: platformd stops owning the ignored fields of an existing
    /// object, so the HPA or operator that changes them owns them, as Kubernetes' documented
    /// transfer of ownership does. Each field outside a list that the object has is applied
    /// with its live value under a manager of its own (a field platformd alone owned would
    /// otherwise be removed when left out), then left out of platformd's apply; a conflict there
    /// means another manager owns it already. A field inside a list (a container's image) is
    /// sent with its live value instead. Returns what platformd applies.
    async fn hand_over_ignored(
        &self,
        api: &Api<DynamicObject>,
        gvk: &GroupVersionKind,
        namespace: &str,
        object: DynamicObject,
        live: &DynamicObject,
        paths: &[&str],
    ) -> Result<DynamicObject, DriverError> {
        let name = live.metadata.name.clone().unwrap_or_default();
        let refused =
            |e: serde_json::Error| DriverError::permanent(format!("{} {name}: {e}", gvk.kind));
        let live_value = serde_json::to_value(live).map_err(refused)?;
        let mut body = serde_json::to_value(&object).map_err(refused)?;
        let mut handover = serde_json::json!({
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "metadata": { "name": body["metadata"]["name"] },
        });
        let mut handed = false;
        for path in paths {
            match render::value_at(&live_value, path) {
                Some(value) if render::outside_lists(path) => {
                    render::take_value(&mut body, path);
                    render::put_value(&mut handover, path, value.clone());
                    handed = true;
                }
                Some(_) => render::keep_live_value(&mut body, &live_value, path),
                None => {}
            }
        }
        if handed {
            let handover: DynamicObject = serde_json::from_value(handover).map_err(refused)?;
            crate::fence::check()?;
            match api
                .patch(
                    &name,
                    &PatchParams::apply(HANDOVER_FIELD_MANAGER),
                    &Patch::Apply(&handover),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if errors::status_code(&e) == Some(409) => {}
                Err(e) => return Err(errors::api(e, "patch", &gvk.kind, namespace)),
            }
        }
        serde_json::from_value(body).map_err(refused)
    }
}

/// Whether a live object is `address` of `stack`: managed by platformd, labelled with the stack,
/// annotated with the address. Only such objects are patched over or deleted.
fn owned_by(live: &DynamicObject, stack: &str, address: &str) -> bool {
    let labels = live.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    label(MANAGED_BY_LABEL) == Some(MANAGED_BY_VALUE)
        && label(STACK_LABEL) == Some(stack)
        && live
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ADDRESS_ANNOTATION))
            .map(String::as_str)
            == Some(address)
}

/// What an `import` names a Kubernetes object by: `Kind/namespace/name`, or `Kind/name` for a
/// cluster-scoped one.
fn import_id(doc: &Value) -> String {
    let kind = doc["kind"].as_str().unwrap_or("");
    let name = doc["metadata"]["name"].as_str().unwrap_or("");
    match doc["metadata"]["namespace"].as_str() {
        Some(namespace) => format!("{kind}/{namespace}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// A live object labelled by platformd for some resource, but not `address` of `stack`.
fn owned_elsewhere(live: &DynamicObject, stack: &str, address: &str) -> Option<String> {
    let labels = live.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        return None;
    }
    let other_stack = labels.get(STACK_LABEL).cloned().unwrap_or_default();
    let other = live
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ADDRESS_ANNOTATION))
        .cloned()
        .unwrap_or_default();
    (other_stack != stack || other != address).then(|| format!("{other} of stack {other_stack}"))
}

fn object_ref(doc: &Value) -> ObjectRef {
    ObjectRef {
        api_version: doc["apiVersion"].as_str().unwrap_or("").to_string(),
        kind: doc["kind"].as_str().unwrap_or("").to_string(),
        namespace: doc["metadata"]["namespace"].as_str().map(str::to_string),
        name: doc["metadata"]["name"].as_str().unwrap_or("").to_string(),
    }
}

/// Gives every pod template in `docs` the image pull secrets `secrets` (Deployments, Jobs,
/// CronJobs, ClickHouse pod templates).
fn with_pull_secrets(docs: &mut [Value], secrets: &[String]) {
    let refs: Vec<Value> = secrets
        .iter()
        .map(|name| serde_json::json!({ "name": name }))
        .collect();
    for doc in docs.iter_mut() {
        let pods: Vec<&mut Value> = match doc["kind"].as_str() {
            Some("Deployment" | "Job") => vec![&mut doc["spec"]["template"]["spec"]],
            Some("CronJob") => vec![&mut doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]],
            Some("ClickHouseInstallation") => {
                match doc["spec"]["templates"]["podTemplates"].as_array_mut() {
                    Some(templates) => templates.iter_mut().map(|t| &mut t["spec"]).collect(),
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        };
        for pod in pods.into_iter().filter(|p| p.is_object()) {
            pod["imagePullSecrets"] = Value::Array(refs.clone());
        }
    }
}

#[async_trait]
impl Driver for KubernetesDriver {
    fn name(&self) -> &str {
        "kubernetes"
    }

    fn supports(&self, kind: Kind) -> bool {
        !object_types(kind).is_empty()
    }

    async fn observe(
        &self,
        stack: &str,
        kinds: &[Kind],
    ) -> Result<Vec<ObservedResource>, DriverError> {
        // One list per object type, shared by the kinds that render to it.
        let mut types: Vec<(&str, &str, &str)> = Vec::new();
        for kind in kinds {
            for t in object_types(*kind) {
                if !types.contains(t) {
                    types.push(*t);
                }
            }
        }
        let mut by_address: BTreeMap<String, Vec<DynamicObject>> = BTreeMap::new();
        for (group, version, kind_name) in types {
            let gvk = GroupVersionKind::gvk(group, version, kind_name);
            let owned = match self.owned(stack, &gvk).await {
                Ok(o) => o,
                Err(e) if errors::is_missing_type(&e) => continue,
                Err(e) => return Err(e),
            };
            for (address, object) in owned {
                by_address.entry(address).or_default().push(object);
            }
        }
        let mut found = Vec::new();
        for (address, objects) in by_address {
            let Some((kind, name)) = address
                .split_once('/')
                .and_then(|(k, n)| Some((Kind::parse(k)?, n.to_string())))
            else {
                continue;
            };
            if !kinds.contains(&kind) {
                continue;
            }
            // In the order `expected` renders them, so paths line up.
            let mut live: Vec<Value> = objects
                .iter()
                .map(|o| serde_json::to_value(o).unwrap_or_default())
                .collect();
            let order = |doc: &Value| {
                object_types(kind)
                    .iter()
                    .position(|(_, _, k)| doc["kind"].as_str() == Some(k))
                    .unwrap_or(usize::MAX)
            };
            live.sort_by_key(|d| {
                (
                    order(d),
                    d["metadata"]["name"].as_str().unwrap_or("").to_string(),
                )
            });
            let outputs = outputs_of(kind, &name, self.namespace(stack), &live, &self.settings);
            let inventory = live.iter().map(object_ref).collect();
            let (health, health_message) = overall_health(&live);
            found.push(ObservedResource {
                address,
                kind,
                name,
                live: Value::Array(live),
                outputs,
                inventory,
                health,
                health_message,
            });
        }
        Ok(found)
    }

    fn expected(&self, desired: &DesiredResource) -> Result<Value, DriverError> {
        Ok(Value::Array(self.documents(desired)))
    }

    fn live_paths(&self, kind: Kind, field: &str) -> Vec<String> {
        render::live_paths(kind, field)
    }

    async fn apply(
        &self,
        desired: &DesiredResource,
        previous: &[ObjectRef],
    ) -> Result<Applied, DriverError> {
        let namespace = self.namespace(&desired.stack).to_string();
        let docs = self.documents(desired);
        // Strict: a field the type's schema lacks is refused, not pruned silently (a CRD
        // version that renamed a field would otherwise drop what was declared).
        let params = PatchParams::apply(FIELD_MANAGER).validation(ValidationDirective::Strict);
        let params = if self.settings.force_conflicts {
            params.force()
        } else {
            params
        };
        // `ignore-changes`: what is live stays on those fields (an autoscaler's replicas), so
        // the apply sends the live value of each, as Argo CD's RespectIgnoreDifferences does.
        let ignored = render::ignored_paths(desired);
        let mut applied = Vec::new();
        for (index, doc) in docs.iter().enumerate() {
            let gvk = gvk_of(doc);
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or(&desired.name)
                .to_string();
            let api = self.api(&gvk, &namespace).await?;
            let mut object: DynamicObject = serde_json::from_value(doc.clone()).map_err(|e| {
                DriverError::permanent(format!(
                    "{} {name} does not render to an object: {e}",
                    gvk.kind
                ))
            })?;
            // An object this resource did not apply before may exist already: it is patched
            // only when it is this stack's (an interrupted create), and then only at the
            // version read; never someone else's by the same name.
            let known = previous.contains(&object_ref(doc));
            let kept: Vec<&str> = ignored
                .iter()
                .filter(|(i, _)| *i == index)
                .map(|(_, path)| path.as_str())
                .collect();
            let existing = if !known || !kept.is_empty() {
                api.get_opt(&name)
                    .await
                    .map_err(|e| errors::api(e, "get", &gvk.kind, &namespace))?
            } else {
                None
            };
            if let Some(live) = existing {
                if !known {
                    if !owned_by(&live, &desired.stack, &desired.address) {
                        return Err(DriverError::permanent(format!(
                            "{} {namespace}/{name} already exists and is not managed by this stack (no `{ADDRESS_ANNOTATION}: {}` annotation with the stack's labels): platformd does not take over what it did not create; adopt it with `import \"{}\" id=\"{}\"`, rename the resource, or remove the object",
                            gvk.kind,
                            desired.address,
                            desired.address,
                            import_id(doc)
                        )));
                    }
                    object.metadata.resource_version = live.metadata.resource_version.clone();
                }
                if !kept.is_empty() {
                    object = self
                        .hand_over_ignored(&api, &gvk, &namespace, object, &live, &kept)
                        .await?;
                }
            }
            crate::fence::check()?;
            let live = match api.patch(&name, &params, &Patch::Apply(&object)).await {
                // A field the API server never changes (a Deployment's selector, a Job's pod
                // template): the object is replaced, ours by the check above. Its pods go with
                // it, in the background, as `kubectl replace --force` does.
                Err(e) if is_immutable_change(&e) && matches!(gvk.kind.as_str(), "Deployment" | "Job") => {
                    tracing::warn!(
                        kind = %gvk.kind,
                        namespace = %namespace,
                        name = %name,
                        address = %desired.address,
                        "replacing the object: the change is to a field that cannot be changed in place"
                    );
                    crate::fence::check()?;
                    match api.delete(&name, &DeleteParams::background()).await {
                        Ok(_) => {}
                        Err(e) if errors::status_code(&e) == Some(404) => {}
                        Err(e) => return Err(errors::api(e, "delete", &gvk.kind, &namespace)),
                    }
                    object.metadata.resource_version = None;
                    crate::fence::check()?;
                    api.patch(&name, &params, &Patch::Apply(&object)).await
                }
                other => other,
            }
            .map_err(|e| errors::api(e, "patch", &gvk.kind, &namespace))?;
            applied.push(serde_json::to_value(&live).unwrap_or_default());
        }
        // Objects of the last apply that this one no longer renders (autoscale removed: its
        // HPA) go: exactly those, from the inventory.
        let inventory: Vec<ObjectRef> = docs.iter().map(object_ref).collect();
        for gone in previous.iter().filter(|o| !inventory.contains(o)) {
            self.delete_object(&desired.stack, &desired.address, gone)
                .await?;
        }
        Ok(Applied {
            outputs: outputs_of(
                desired.kind,
                &desired.name,
                &namespace,
                &applied,
                &self.settings,
            ),
            inventory,
        })
    }

    async fn wait_ready(
        &self,
        desired: &DesiredResource,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        let namespace = self.namespace(&desired.stack).to_string();
        let deadline = Instant::now() + timeout;
        for doc in self.documents(desired) {
            let gvk = gvk_of(&doc);
            let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
            let api = self.api(&gvk, &namespace).await?;
            loop {
                let live = api
                    .get(&name)
                    .await
                    .map_err(|e| errors::api(e, "get", &gvk.kind, &namespace))?;
                let live = serde_json::to_value(&live).unwrap_or_default();
                match health::assess(&live) {
                    health::Health::Ready => break,
                    health::Health::Failed(why) => {
                        return Err(DriverError::permanent(format!(
                            "{} {name}: {why}",
                            gvk.kind
                        )));
                    }
                    health::Health::Progressing(why) => {
                        if Instant::now() >= deadline {
                            return Err(DriverError::retryable(format!(
                                "{} {name} not ready after {}s: {why}",
                                gvk.kind,
                                timeout.as_secs()
                            )));
                        }
                        tokio::time::sleep(self.poll).await;
                    }
                }
            }
        }
        Ok(())
    }

    async fn adopt(
        &self,
        desired: &DesiredResource,
        id: &str,
    ) -> Result<Vec<ObjectRef>, DriverError> {
        let namespace = self.namespace(&desired.stack).to_string();
        let docs = self.documents(desired);
        if !docs.iter().any(|doc| import_id(doc) == id) {
            let ids: Vec<String> = docs.iter().map(import_id).collect();
            return Err(DriverError::permanent(format!(
                "`{id}` is not an object platformd makes for {} (in namespace {namespace}): import one of {}",
                desired.address,
                ids.join(", ")
            )));
        }
        let mut adopted = Vec::new();
        for doc in &docs {
            let gvk = gvk_of(doc);
            let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
            let api = self.api(&gvk, &namespace).await?;
            let live = api
                .get_opt(&name)
                .await
                .map_err(|e| errors::api(e, "get", &gvk.kind, &namespace))?;
            let Some(live) = live else {
                if import_id(doc) == id {
                    return Err(DriverError::permanent(format!(
                        "nothing to import for {}: {} {namespace}/{name} does not exist",
                        desired.address, gvk.kind
                    )));
                }
                continue; // made by the apply that follows
            };
            if let Some(owner) = owned_elsewhere(&live, &desired.stack, &desired.address) {
                return Err(DriverError::permanent(format!(
                    "{} {namespace}/{name} is managed as {owner}: it cannot be imported as {}",
                    gvk.kind, desired.address
                )));
            }
            // An import adopts what is there; it never recreates it. A field the API server
            // will not change (a Deployment's selector) that differs from the declaration
            // would force that, so the import is refused, before anything is marked.
            let live_value = serde_json::to_value(&live).unwrap_or_default();
            if gvk.kind == "Deployment" && live_value["spec"]["selector"] != doc["spec"]["selector"]
            {
                return Err(DriverError::permanent(format!(
                    "Deployment {namespace}/{name} selects its pods by {}, and {} selects them by {}; a Deployment's selector cannot change, so importing it would mean recreating it: leave it out of platformd, or remove the `import` and delete the Deployment so that platformd makes its own",
                    live_value["spec"]["selector"], desired.address, doc["spec"]["selector"]
                )));
            }
            // Marked as this resource's: the apply that follows then patches it as its own.
            let mark: DynamicObject = serde_json::from_value(serde_json::json!({
                "apiVersion": doc["apiVersion"],
                "kind": doc["kind"],
                "metadata": {
                    "name": name,
                    "labels": doc["metadata"]["labels"],
                    "annotations": { ADDRESS_ANNOTATION: desired.address },
                },
            }))
            .map_err(|e| DriverError::permanent(format!("{} {name}: {e}", gvk.kind)))?;
            crate::fence::check()?;
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&mark),
            )
            .await
            .map_err(|e| errors::api(e, "patch", &gvk.kind, &namespace))?;
            adopted.push(object_ref(doc));
        }
        Ok(adopted)
    }

    async fn release(
        &self,
        stack: &str,
        kind: Kind,
        name: &str,
        inventory: &[ObjectRef],
    ) -> Result<(), DriverError> {
        let address = format!("{kind}/{name}");
        let objects = if inventory.is_empty() {
            self.found_objects(stack, &address, kind).await?
        } else {
            inventory.to_vec()
        };
        // The ownership marks come off; the objects and everything else in them stay.
        let unmark = serde_json::json!({
            "metadata": {
                "labels": { MANAGED_BY_LABEL: null, STACK_LABEL: null },
                "annotations": { ADDRESS_ANNOTATION: null },
            }
        });
        for object in &objects {
            let gvk = gvk_of(
                &serde_json::json!({ "apiVersion": object.api_version, "kind": object.kind }),
            );
            let namespace = object.namespace.as_deref().unwrap_or("");
            let api = self.api(&gvk, namespace).await?;
            let live = match api.get_opt(&object.name).await {
                Ok(Some(live)) => live,
                Ok(None) => continue,
                Err(e) => return Err(errors::api(e, "get", &object.kind, namespace)),
            };
            if !owned_by(&live, stack, &address) {
                continue;
            }
            crate::fence::check()?;
            api.patch(
                &object.name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_string()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&unmark),
            )
            .await
            .map_err(|e| errors::api(e, "patch", &object.kind, namespace))?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        stack: &str,
        kind: Kind,
        name: &str,
        inventory: &[ObjectRef],
    ) -> Result<(), DriverError> {
        let objects = if inventory.is_empty() {
            self.found_objects(stack, &format!("{kind}/{name}"), kind)
                .await?
        } else {
            inventory.to_vec()
        };
        let address = format!("{kind}/{name}");
        for object in &objects {
            self.delete_object(stack, &address, object).await?;
        }
        Ok(())
    }
}

/// A 422 for a change to a field the API server keeps as first set.
fn is_immutable_change(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422 && s.message.contains("field is immutable"))
}

/// Outputs from what the cluster has: a workload's in-cluster URL from its Service (an AI
/// endpoint's is the gateway's, the only way in that enforces its keys, rate limit and quotas),
/// a topic's bootstrap servers from its cluster label.
fn outputs_of(
    kind: Kind,
    name: &str,
    namespace: &str,
    live: &[Value],
    settings: &Settings,
) -> Outputs {
    let mut out = Outputs::new();
    out.insert("name".into(), name.into());
    for doc in live {
        match doc["kind"].as_str() {
            Some("Service") => {
                let service = doc["metadata"]["name"].as_str().unwrap_or(name);
                let port = doc["spec"]["ports"][0]["port"].as_i64().unwrap_or(80);
                let host = format!("{service}.{namespace}.svc.cluster.local");
                let url = if kind == Kind::AiEndpoint {
                    settings.ai_gateway_url.clone().unwrap_or_else(|| {
                        render::gateway::default_url(
                            settings
                                .ai_gateway
                                .as_deref()
                                .unwrap_or(render::gateway::DEFAULT_GATEWAY),
                            namespace,
                        )
                    })
                } else {
                    format!("http://{host}:{port}")
                };
                out.insert("host".into(), host.clone());
                out.insert("port".into(), port.to_string());
                out.insert("url".into(), url);
            }
            Some("KafkaTopic") => {
                let cluster = doc["metadata"]["labels"]["strimzi.io/cluster"]
                    .as_str()
                    .unwrap_or("kafka");
                out.insert(
                    "bootstrap-servers".into(),
                    format!("{cluster}-kafka-bootstrap.{namespace}.svc:9092"),
                );
            }
            Some("Cluster") => cnpg::outputs(name, namespace, &mut out),
            Some("ClickHouseInstallation") => {
                crate::local::clickhouse_outputs(name, namespace, &mut out)
            }
            Some("NodePool") => {
                out.insert(
                    "node-selector".into(),
                    format!("{}={name}", nodepool::POOL_LABEL),
                );
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the driver lists to find a kind's objects and what it is granted are one set.
    #[test]
    fn every_listed_type_is_granted_and_every_granted_type_is_listed() {
        let listed: std::collections::BTreeSet<(&str, &str, &str)> = Kind::ALL
            .into_iter()
            .flat_map(|k| object_types(k).iter().copied())
            .collect();
        let granted: std::collections::BTreeSet<(&str, &str, &str)> = OBJECT_TYPES
            .iter()
            .map(|t| (t.group, t.version, t.kind))
            .collect();
        assert_eq!(listed, granted);
    }
}
