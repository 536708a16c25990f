//! AI endpoints with runtime `sagemaker` as SageMaker real-time endpoints: a model (the serving
//! image with the model id and revision in its environment, run as the driver's
//! `sagemaker-execution-role`), an endpoint config (instance type, one production variant of
//! `replicas` instances) and the endpoint `<stack>-<name>`.
//!
//! Models and endpoint configs are immutable in SageMaker, so both are named after a revision:
//! `<stack>-<name>-<hash>`, the hash covering everything they hold except the instance count.
//! A change of model, revision, image, instance type or role makes a new model and config and
//! moves the endpoint onto them with UpdateEndpoint (SageMaker swaps the fleet blue/green); a
//! change of `replicas` alone is UpdateEndpointWeightsAndCapacities, in place. Superseded
//! models and configs are deleted once the endpoint is back in service.
//!
//! Observing is one paginated ListEndpoints filtered by the stack's prefix, then per endpoint
//! ListTags (ownership), DescribeEndpoint (config, instance count, status) and
//! DescribeEndpointConfig (model, instance type).

use super::errors::classify;
use super::{
    OWNERSHIP_KEYS, Settings, adoptable, expect_id, marked_as, name_of, owned_by, physical_name,
    tracked_address,
};
use crate::{Applied, DesiredResource, DriverError, Health, ObjectRef, ObservedResource, Outputs};
use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sagemaker::types::{
    ContainerDefinition, DesiredWeightAndCapacity, ProductionVariant,
    ProductionVariantInstanceType, Tag,
};
use planner::model::{AiEndpointSpec, Kind};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// The one production variant of every endpoint platformd makes.
const VARIANT: &str = "primary";

/// SageMaker's limit on model, endpoint config and endpoint names.
const MAX_NAME: usize = 63;

/// The Hugging Face LLM inference container (TGI) SageMaker publishes per region; the driver
/// setting `sagemaker-image` replaces it (a pinned version, a private mirror).
pub fn default_image(region: &str) -> String {
    format!(
        "763104351884.dkr.ecr.{region}.amazonaws.com/huggingface-pytorch-tgi-inference:2.4.0-tgi2.4.0-gpu-py311-cu124-ubuntu22.04"
    )
}

/// What a model and its endpoint config hold; `name` is derived from the rest.
#[derive(Debug, Clone, PartialEq)]
struct Revision {
    name: String,
    image: String,
    environment: BTreeMap<String, String>,
    instance_type: String,
    role: String,
}

fn revision(
    desired: &DesiredResource,
    e: &AiEndpointSpec,
    settings: &Settings,
    region: &str,
) -> Revision {
    let instance_type = e.instance_type.clone().unwrap_or_default();
    let mut environment = BTreeMap::new();
    environment.insert("HF_MODEL_ID".to_string(), e.model.id.clone());
    environment.insert("HF_MODEL_REVISION".to_string(), e.model.revision.clone());
    // The container shards the model over every GPU of the instance.
    let gpus = planner::cost::gpus_per_instance(&instance_type).unwrap_or(1);
    environment.insert("SM_NUM_GPUS".to_string(), gpus.to_string());
    let image = settings
        .sagemaker_image
        .clone()
        .unwrap_or_else(|| default_image(region));
    let role = settings
        .sagemaker_execution_role
        .clone()
        .unwrap_or_default();
    let digest = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for part in [image.as_str(), instance_type.as_str(), role.as_str()]
            .into_iter()
            .chain(
                environment
                    .iter()
                    .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
            )
        {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.finalize()
    };
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    Revision {
        name: format!("{}-{hash}", physical_name(&desired.stack, &desired.name)),
        image,
        environment,
        instance_type,
        role,
    }
}

/// Whether `name` is a revision name of the endpoint `endpoint` (`<endpoint>-<8 hex>`).
fn is_revision_of(name: &str, endpoint: &str) -> bool {
    name.strip_prefix(endpoint)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn replicas(e: &AiEndpointSpec) -> i32 {
    i32::try_from(e.replicas).unwrap_or(i32::MAX).max(1)
}

fn tags(desired: &DesiredResource) -> BTreeMap<String, String> {
    super::ownership_tags(desired)
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn to_json(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

pub fn expected(
    desired: &DesiredResource,
    e: &AiEndpointSpec,
    settings: &Settings,
    region: &str,
) -> Value {
    let rev = revision(desired, e, settings, region);
    json!({
        "name": physical_name(&desired.stack, &desired.name),
        "endpoint-config": rev.name,
        "model": rev.name,
        "instance-type": rev.instance_type,
        "replicas": replicas(e),
        "tags": to_json(&tags(desired)),
    })
}

/// An endpoint as DescribeEndpoint reports it.
#[derive(Debug, Clone)]
struct Endpoint {
    name: String,
    arn: String,
    config: String,
    status: String,
    failure: Option<String>,
    desired_count: Option<i32>,
}

/// A "does not exist" answer: SageMaker reports it as a ValidationException.
fn not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("ValidationException")
        && e.message().is_some_and(|m| m.starts_with("Could not find"))
}

async fn describe_endpoint(client: &Client, name: &str) -> Result<Option<Endpoint>, DriverError> {
    match client.describe_endpoint().endpoint_name(name).send().await {
        Ok(out) => {
            let variant = out
                .production_variants()
                .iter()
                .find(|v| v.variant_name() == Some(VARIANT));
            Ok(Some(Endpoint {
                name: name.to_string(),
                arn: out.endpoint_arn().unwrap_or("").to_string(),
                config: out.endpoint_config_name().unwrap_or("").to_string(),
                status: out
                    .endpoint_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                failure: out.failure_reason().map(str::to_string),
                desired_count: variant.and_then(|v| v.desired_instance_count()),
            }))
        }
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(classify(e, "sagemaker:DescribeEndpoint", name)),
    }
}

async fn list_tags(client: &Client, arn: &str) -> Result<super::Tags, DriverError> {
    let mut tags = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_tags()
            .resource_arn(arn)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| classify(e, "sagemaker:ListTags", arn))?;
        for t in page.tags() {
            if let (Some(k), Some(v)) = (t.key(), t.value()) {
                tags.insert(k.to_string(), v.to_string());
            }
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(tags);
        }
    }
}

fn lookup<'a>(tags: &'a BTreeMap<String, String>) -> impl Fn(&str) -> Option<&'a str> + 'a {
    |k| tags.get(k).map(String::as_str)
}

fn not_owned(what: &str, name: &str) -> DriverError {
    DriverError::permanent(format!(
        "the SageMaker {what} `{name}` exists and platformd does not own it; platformd takes over nothing it did not make: adopt an endpoint with an `import` of the resource with id=\"{name}\", or rename the endpoint"
    ))
}

/// Creates the revision's model unless it exists (made by an earlier, interrupted apply).
async fn ensure_model(
    client: &Client,
    desired: &DesiredResource,
    rev: &Revision,
    tags: &BTreeMap<String, String>,
) -> Result<(), DriverError> {
    match client.describe_model().model_name(&rev.name).send().await {
        Ok(model) => {
            let existing = list_tags(client, model.model_arn().unwrap_or("")).await?;
            return if owned_by(lookup(&existing), desired) {
                Ok(())
            } else {
                Err(not_owned("model", &rev.name))
            };
        }
        Err(e) if not_found(&e) => {}
        Err(e) => return Err(classify(e, "sagemaker:DescribeModel", &rev.name)),
    }
    let environment: HashMap<String, String> = rev.environment.clone().into_iter().collect();
    client
        .create_model()
        .model_name(&rev.name)
        .execution_role_arn(&rev.role)
        .primary_container(
            ContainerDefinition::builder()
                .image(&rev.image)
                .set_environment(Some(environment))
                .build(),
        )
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(|e| classify(e, "sagemaker:CreateModel", &rev.name))?;
    Ok(())
}

/// Creates the revision's endpoint config unless it exists.
async fn ensure_config(
    client: &Client,
    desired: &DesiredResource,
    rev: &Revision,
    replicas: i32,
    tags: &BTreeMap<String, String>,
) -> Result<(), DriverError> {
    match client
        .describe_endpoint_config()
        .endpoint_config_name(&rev.name)
        .send()
        .await
    {
        Ok(config) => {
            let existing = list_tags(client, config.endpoint_config_arn().unwrap_or("")).await?;
            return if owned_by(lookup(&existing), desired) {
                Ok(())
            } else {
                Err(not_owned("endpoint config", &rev.name))
            };
        }
        Err(e) if not_found(&e) => {}
        Err(e) => return Err(classify(e, "sagemaker:DescribeEndpointConfig", &rev.name)),
    }
    client
        .create_endpoint_config()
        .endpoint_config_name(&rev.name)
        .production_variants(
            ProductionVariant::builder()
                .variant_name(VARIANT)
                .model_name(&rev.name)
                .instance_type(ProductionVariantInstanceType::from(
                    rev.instance_type.as_str(),
                ))
                .initial_instance_count(replicas)
                .initial_variant_weight(1.0)
                .build(),
        )
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(|e| classify(e, "sagemaker:CreateEndpointConfig", &rev.name))?;
    Ok(())
}

fn outputs(endpoint: &Endpoint, region: &str) -> Outputs {
    let mut out = Outputs::new();
    out.insert("name".into(), endpoint.name.clone());
    out.insert("arn".into(), endpoint.arn.clone());
    out.insert(
        "url".into(),
        format!(
            "https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{}/invocations",
            endpoint.name
        ),
    );
    out
}

fn inventory(name: &str) -> Vec<ObjectRef> {
    vec![ObjectRef {
        api_version: "sagemaker".into(),
        kind: "Endpoint".into(),
        namespace: None,
        name: name.to_string(),
    }]
}

/// Statuses in which SageMaker refuses changes until it has finished.
fn settling(status: &str) -> bool {
    matches!(
        status,
        "Creating"
            | "Updating"
            | "SystemUpdating"
            | "RollingBack"
            | "Deleting"
            | "UpdateRollbackFailed"
    )
}

pub async fn apply(
    client: &Client,
    settings: &Settings,
    region: &str,
    desired: &DesiredResource,
    e: &AiEndpointSpec,
) -> Result<Applied, DriverError> {
    let name = physical_name(&desired.stack, &desired.name);
    let rev = revision(desired, e, settings, region);
    if rev.role.is_empty() {
        return Err(DriverError::permanent(
            "the aws driver needs `sagemaker-execution-role` to make SageMaker endpoints",
        ));
    }
    if rev.name.len() > MAX_NAME {
        return Err(DriverError::permanent(format!(
            "the SageMaker name `{}` is longer than {MAX_NAME} characters: shorten the endpoint's or the platform's name",
            rev.name
        )));
    }
    let tags = tags(desired);
    let current = describe_endpoint(client, &name).await?;
    let mut current_tags = BTreeMap::new();
    if let Some(endpoint) = &current {
        current_tags = list_tags(client, &endpoint.arn).await?;
        if !owned_by(lookup(&current_tags), desired) {
            return Err(not_owned("endpoint", &name));
        }
        if settling(&endpoint.status) {
            return Err(DriverError::retryable(format!(
                "SageMaker endpoint {name} is {}; changes wait until it settles",
                endpoint.status
            )));
        }
        if endpoint.status == "Failed" {
            if endpoint.config == rev.name {
                return Err(DriverError::permanent(format!(
                    "SageMaker endpoint {name} failed: {}; change the model, image or instance type to recreate it",
                    endpoint.failure.as_deref().unwrap_or("no reason given")
                )));
            }
            // A failed endpoint cannot be updated: it is deleted and made again on the retry.
            client
                .delete_endpoint()
                .endpoint_name(&name)
                .send()
                .await
                .map_err(|e| classify(e, "sagemaker:DeleteEndpoint", &name))?;
            return Err(DriverError::retryable(format!(
                "SageMaker endpoint {name} had failed; deleted to be made again with the new revision"
            )));
        }
    }
    if current.as_ref().is_none_or(|e| e.config != rev.name) {
        ensure_model(client, desired, &rev, &tags).await?;
        ensure_config(client, desired, &rev, replicas(e), &tags).await?;
    }
    match &current {
        None => {
            client
                .create_endpoint()
                .endpoint_name(&name)
                .endpoint_config_name(&rev.name)
                .set_tags(Some(sdk_tags(&tags)))
                .send()
                .await
                .map_err(|e| classify(e, "sagemaker:CreateEndpoint", &name))?;
        }
        Some(endpoint) if endpoint.config != rev.name => {
            client
                .update_endpoint()
                .endpoint_name(&name)
                .endpoint_config_name(&rev.name)
                .send()
                .await
                .map_err(|e| classify(e, "sagemaker:UpdateEndpoint", &name))?;
        }
        // `ignore-changes "replicas"`: the instance count autoscaling set is left alone.
        Some(endpoint)
            if endpoint.desired_count != Some(replicas(e))
                && !desired
                    .spec
                    .lifecycle
                    .ignore_changes
                    .iter()
                    .any(|f| f == "replicas") =>
        {
            client
                .update_endpoint_weights_and_capacities()
                .endpoint_name(&name)
                .desired_weights_and_capacities(
                    DesiredWeightAndCapacity::builder()
                        .variant_name(VARIANT)
                        .desired_instance_count(replicas(e))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| classify(e, "sagemaker:UpdateEndpointWeightsAndCapacities", &name))?;
        }
        Some(_) => {}
    }
    if let Some(endpoint) = &current {
        // Tags are rewritten only when they differ (a tag removed by hand).
        if tags.iter().any(|(k, v)| current_tags.get(k) != Some(v)) {
            client
                .add_tags()
                .resource_arn(&endpoint.arn)
                .set_tags(Some(sdk_tags(&tags)))
                .send()
                .await
                .map_err(|e| classify(e, "sagemaker:AddTags", &name))?;
        }
    }
    let endpoint = describe_endpoint(client, &name).await?.ok_or_else(|| {
        DriverError::retryable(format!("SageMaker endpoint {name} not found after create"))
    })?;
    Ok(Applied {
        outputs: outputs(&endpoint, region),
        inventory: inventory(&name),
    })
}

/// Waits for the endpoint to be `InService` on the desired revision, then deletes the models
/// and endpoint configs it no longer uses.
pub async fn wait_in_service(
    client: &Client,
    settings: &Settings,
    region: &str,
    desired: &DesiredResource,
    e: &AiEndpointSpec,
    timeout: Duration,
    poll: Duration,
) -> Result<(), DriverError> {
    let name = physical_name(&desired.stack, &desired.name);
    let rev = revision(desired, e, settings, region);
    let deadline = Instant::now() + timeout;
    loop {
        let endpoint = describe_endpoint(client, &name).await?;
        let status = endpoint
            .as_ref()
            .map(|e| e.status.clone())
            .unwrap_or_default();
        match status.as_str() {
            "InService" if endpoint.as_ref().is_some_and(|e| e.config == rev.name) => break,
            "Failed" => {
                return Err(DriverError::permanent(format!(
                    "SageMaker endpoint {name} failed: {}",
                    endpoint
                        .and_then(|e| e.failure)
                        .unwrap_or_else(|| "no reason given".into())
                )));
            }
            _ if Instant::now() >= deadline => {
                return Err(DriverError::retryable(format!(
                    "SageMaker endpoint {name} is `{status}`, not InService on {} after {}s",
                    rev.name,
                    timeout.as_secs()
                )));
            }
            _ => tokio::time::sleep(poll).await,
        }
    }
    delete_revisions(
        client,
        &desired.stack,
        &desired.address,
        &name,
        Some(&rev.name),
    )
    .await
}

/// Deletes the endpoint's own endpoint configs and models (by name and tags) except `keep`.
async fn delete_revisions(
    client: &Client,
    stack: &str,
    address: &str,
    endpoint: &str,
    keep: Option<&str>,
) -> Result<(), DriverError> {
    let stale = |n: &str| is_revision_of(n, endpoint) && Some(n) != keep;
    let mut configs = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_endpoint_configs()
            .name_contains(endpoint)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| classify(e, "sagemaker:ListEndpointConfigs", endpoint))?;
        configs.extend(
            page.endpoint_configs()
                .iter()
                .filter_map(|c| Some((c.endpoint_config_name()?, c.endpoint_config_arn()?)))
                .filter(|(n, _)| stale(n))
                .map(|(n, a)| (n.to_string(), a.to_string())),
        );
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    for config in owned(client, stack, address, configs).await? {
        match client
            .delete_endpoint_config()
            .endpoint_config_name(&config)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(classify(e, "sagemaker:DeleteEndpointConfig", &config)),
        }
    }
    let mut models = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_models()
            .name_contains(endpoint)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| classify(e, "sagemaker:ListModels", endpoint))?;
        models.extend(
            page.models()
                .iter()
                .filter_map(|m| Some((m.model_name()?, m.model_arn()?)))
                .filter(|(n, _)| stale(n))
                .map(|(n, a)| (n.to_string(), a.to_string())),
        );
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    for model in owned(client, stack, address, models).await? {
        match client.delete_model().model_name(&model).send().await {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(classify(e, "sagemaker:DeleteModel", &model)),
        }
    }
    Ok(())
}

/// The names among `(name, arn)` whose tags say they belong to `address` in `stack`.
async fn owned(
    client: &Client,
    stack: &str,
    address: &str,
    candidates: Vec<(String, String)>,
) -> Result<Vec<String>, DriverError> {
    let mut mine = Vec::new();
    for (name, arn) in candidates {
        let tags = list_tags(client, &arn).await?;
        if tracked_address(lookup(&tags), stack) == Some(address) {
            mine.push(name);
        }
    }
    Ok(mine)
}

pub async fn observe(
    client: &Client,
    region: &str,
    stack: &str,
) -> Result<Vec<ObservedResource>, DriverError> {
    let prefix = format!("{stack}-");
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_endpoints()
            .name_contains(&prefix)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| classify(e, "sagemaker:ListEndpoints", "the account"))?;
        names.extend(
            page.endpoints()
                .iter()
                .filter_map(|e| Some((e.endpoint_name()?, e.endpoint_arn()?)))
                .filter(|(n, _)| n.starts_with(&prefix))
                .map(|(n, a)| (n.to_string(), a.to_string())),
        );
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let mut found = Vec::new();
    for (name, arn) in names {
        let tags = list_tags(client, &arn).await?;
        let Some(address) = tracked_address(lookup(&tags), stack).map(str::to_string) else {
            continue;
        };
        let Some(endpoint) = describe_endpoint(client, &name).await? else {
            continue;
        };
        let (model, instance_type) = match client
            .describe_endpoint_config()
            .endpoint_config_name(&endpoint.config)
            .send()
            .await
        {
            Ok(config) => config
                .production_variants()
                .iter()
                .find(|v| v.variant_name() == Some(VARIANT))
                .map(|v| {
                    (
                        v.model_name().unwrap_or("").to_string(),
                        v.instance_type()
                            .map(|t| t.as_str().to_string())
                            .unwrap_or_default(),
                    )
                })
                .unwrap_or_default(),
            // The config was deleted under the endpoint: reported as drift, not an error.
            Err(e) if not_found(&e) => Default::default(),
            Err(e) => {
                return Err(classify(
                    e,
                    "sagemaker:DescribeEndpointConfig",
                    &endpoint.config,
                ));
            }
        };
        let (health, health_message) = match endpoint.status.as_str() {
            "InService" => (Health::Ready, None),
            "Failed" | "UpdateRollbackFailed" => (
                Health::Degraded,
                Some(format!(
                    "endpoint is {}: {}",
                    endpoint.status,
                    endpoint.failure.as_deref().unwrap_or("no reason given")
                )),
            ),
            other => (Health::Progressing, Some(format!("endpoint is {other}"))),
        };
        let short = name_of(&address);
        found.push(ObservedResource {
            live: json!({
                "name": endpoint.name,
                "endpoint-config": endpoint.config,
                "model": model,
                "instance-type": instance_type,
                "replicas": endpoint.desired_count.unwrap_or(0),
                "tags": to_json(&tags),
            }),
            outputs: outputs(&endpoint, region),
            address,
            kind: Kind::AiEndpoint,
            name: short,
            inventory: inventory(&name),
            health,
            health_message,
        });
    }
    Ok(found)
}

/// `import`: the endpoint `id` (the name platformd gives the resource) is tagged as
/// `desired`'s; the apply that follows moves it onto the declared model and configuration
/// (a new revision, blue/green), leaving the models and configurations it ran before in place.
pub async fn adopt(
    client: &Client,
    desired: &DesiredResource,
    id: &str,
) -> Result<Vec<ObjectRef>, DriverError> {
    let name = physical_name(&desired.stack, &desired.name);
    expect_id(id, &name, desired, "SageMaker endpoint")?;
    let Some(endpoint) = describe_endpoint(client, &name).await? else {
        return Err(DriverError::permanent(format!(
            "nothing to import for {}: no SageMaker endpoint `{name}`",
            desired.address
        )));
    };
    adoptable(
        &list_tags(client, &endpoint.arn).await?,
        desired,
        &format!("SageMaker endpoint `{name}`"),
    )?;
    client
        .add_tags()
        .resource_arn(&endpoint.arn)
        .set_tags(Some(sdk_tags(&tags(desired))))
        .send()
        .await
        .map_err(|e| classify(e, "sagemaker:AddTags", &name))?;
    Ok(inventory(&name))
}

/// `removed`: platformd's tags come off the endpoint, which keeps serving.
pub async fn release(
    client: &Client,
    stack: &str,
    address: &str,
    name: &str,
) -> Result<(), DriverError> {
    let Some(endpoint) = describe_endpoint(client, name).await? else {
        return Ok(());
    };
    if !marked_as(&list_tags(client, &endpoint.arn).await?, stack, address) {
        return Ok(());
    }
    client
        .delete_tags()
        .resource_arn(&endpoint.arn)
        .set_tag_keys(Some(OWNERSHIP_KEYS.iter().map(|k| k.to_string()).collect()))
        .send()
        .await
        .map_err(|e| classify(e, "sagemaker:DeleteTags", name))?;
    Ok(())
}

/// Deletes the endpoint, then its endpoint configs and models.
pub async fn delete(client: &Client, stack: &str, name: &str) -> Result<(), DriverError> {
    let endpoint = physical_name(stack, name);
    match client
        .delete_endpoint()
        .endpoint_name(&endpoint)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if not_found(&e) => {}
        Err(e) => return Err(classify(e, "sagemaker:DeleteEndpoint", &endpoint)),
    }
    let address = format!("{}/{name}", Kind::AiEndpoint);
    delete_revisions(client, stack, &address, &endpoint, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_names_are_recognised_only_with_their_hash() {
        assert!(is_revision_of("shop-chat-0a1b2c3d", "shop-chat"));
        assert!(!is_revision_of("shop-chat-v2-0a1b2c3d", "shop-chat"));
        assert!(!is_revision_of("shop-chatbot-0a1b2c3d", "shop-chat"));
        assert!(!is_revision_of("shop-chat-0a1b2c3", "shop-chat"));
    }
}
