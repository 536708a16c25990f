//! The AWS driver (`docs/DRIVERS.md`), on aws-sdk-rust: buckets as S3 buckets, databases as
//! RDS instances, GPU pools as EKS node groups, AI endpoints as SageMaker endpoints. Region and
//! `profile` come from the driver's settings; `endpoint-url` (an emulator or S3-compatible
//! endpoint) only from the operator's (`AWS_ENDPOINT_URL` or the daemon's configuration);
//! credentials from the standard chain (environment, profile, SSO, web identity, IMDS), never
//! logged or stored. Physical names are `<stack>-<name>`; ownership is marked with the same
//! keys as Kubernetes labels, as tags. A name already taken by something platformd does not own
//! is an error, never an adoption.
//!
//! `s3.rs` maps buckets, `rds.rs` databases, `eks.rs` GPU pools, `sagemaker.rs` AI endpoints;
//! `errors.rs` classifies service errors.

mod eks;
mod errors;
mod rds;
mod s3;
mod sagemaker;

pub use s3::versioning_from_raw;

use crate::{
    ADDRESS_ANNOTATION, Applied, DesiredResource, Driver, DriverError, MANAGED_BY_LABEL,
    MANAGED_BY_VALUE, ObjectRef, ObservedResource, STACK_LABEL,
};
use async_trait::async_trait;
use planner::model::{Kind, Spec};
use serde_json::Value;
use std::collections::BTreeMap;

/// The settings of a `driver "aws" { … }` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    /// The EKS cluster GPU pools are node groups of, with their node role and subnets
    /// (comma-separated).
    pub eks_cluster: Option<String>,
    pub node_role_arn: Option<String>,
    pub subnets: Option<String>,
    /// The IAM role SageMaker models run as, and the serving image replacing the default.
    pub sagemaker_execution_role: Option<String>,
    pub sagemaker_image: Option<String>,
}

impl Settings {
    pub fn from_map(settings: &BTreeMap<String, String>) -> Settings {
        Settings {
            region: settings.get("region").cloned(),
            // The operator's: `endpoint-url` in the daemon's configuration, or the SDK's own
            // AWS_ENDPOINT_URL (a stack cannot set it; docs/SECURITY.md).
            endpoint_url: settings
                .get("endpoint-url")
                .cloned()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                .filter(|url| !url.is_empty()),
            profile: settings.get("profile").cloned(),
            eks_cluster: settings.get("eks-cluster").cloned(),
            node_role_arn: settings.get("node-role-arn").cloned(),
            subnets: settings.get("subnets").cloned(),
            sagemaker_execution_role: settings.get("sagemaker-execution-role").cloned(),
            sagemaker_image: settings.get("sagemaker-image").cloned(),
        }
    }
}

pub struct AwsDriver {
    settings: Settings,
    config: tokio::sync::OnceCell<aws_config::SdkConfig>,
    // One client per service for the driver's life (each is a cheap handle to shared state).
    s3: tokio::sync::OnceCell<aws_sdk_s3::Client>,
    rds: tokio::sync::OnceCell<aws_sdk_rds::Client>,
    eks: tokio::sync::OnceCell<aws_sdk_eks::Client>,
    sagemaker: tokio::sync::OnceCell<aws_sdk_sagemaker::Client>,
    calls: CallCounter,
    /// Replaces the HTTPS client (recorded answers in tests, `with_http_client`).
    http: Option<aws_sdk_s3::config::SharedHttpClient>,
    /// How often waits (RDS available, node group active, endpoint in service) poll.
    poll: std::time::Duration,
}

/// Counts the requests the driver sends (every service, every attempt): what a drift scan
/// costs, measured. It also holds each request of an apply to the lease fence
/// ([`crate::fence`]): a request about to leave after the lease was lost is not sent.
#[derive(Debug, Clone, Default)]
struct CallCounter(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl aws_sdk_s3::config::Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "platformd-call-counter"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        crate::fence::check().map_err(|e| e.message)?;
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// A kind the planner never routes here (`descriptors/src/aws.rs`).
fn not_served(kind: Kind) -> DriverError {
    DriverError::permanent(format!("the aws driver does not serve {kind}"))
}

/// A resource's tags, key → value.
pub type Tags = BTreeMap<String, String>;

/// The tags every AWS resource carries: ownership, stack, address (the tracking id), team, and
/// the user's labels.
pub fn ownership_tags(desired: &DesiredResource) -> BTreeMap<String, String> {
    let mut t = BTreeMap::new();
    for (k, v) in &desired.spec.labels {
        t.insert(k.clone(), v.clone());
    }
    t.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    t.insert(STACK_LABEL.into(), desired.stack.clone());
    t.insert(ADDRESS_ANNOTATION.into(), desired.address.clone());
    t.insert("platformd.dev/team".into(), desired.team().to_string());
    t
}

/// The address (`kind/name`) a resource's tags give it, when they mark it as platformd's in
/// `stack`: the one ownership check of every service (`tag` reads one tag).
fn tracked_address<'a>(tag: impl Fn(&str) -> Option<&'a str>, stack: &str) -> Option<&'a str> {
    if tag(MANAGED_BY_LABEL) == Some(MANAGED_BY_VALUE) && tag(STACK_LABEL) == Some(stack) {
        tag(ADDRESS_ANNOTATION)
    } else {
        None
    }
}

/// Whether the tags say the resource is `desired`.
fn owned_by<'a>(tag: impl Fn(&str) -> Option<&'a str>, desired: &DesiredResource) -> bool {
    tracked_address(tag, &desired.stack) == Some(desired.address.as_str())
}

/// The tag keys that mark a resource as platformd's (`ownership_tags` without the labels).
const OWNERSHIP_KEYS: [&str; 4] = [
    MANAGED_BY_LABEL,
    STACK_LABEL,
    ADDRESS_ANNOTATION,
    "platformd.dev/team",
];

/// Whether an existing resource with `tags` may be imported as `desired`: not when it is marked
/// as another platformd resource's.
fn adoptable(tags: &Tags, desired: &DesiredResource, what: &str) -> Result<(), DriverError> {
    let tag = |k: &str| tags.get(k).map(String::as_str);
    if tag(MANAGED_BY_LABEL) != Some(MANAGED_BY_VALUE) || owned_by(tag, desired) {
        return Ok(());
    }
    Err(DriverError::permanent(format!(
        "{what} is managed as {} of stack {}: it cannot be imported as {}",
        tag(ADDRESS_ANNOTATION).unwrap_or("?"),
        tag(STACK_LABEL).unwrap_or("?"),
        desired.address
    )))
}

/// An `import` id must be the name platformd gives the resource: it never adopts under another.
fn expect_id(
    id: &str,
    physical: &str,
    desired: &DesiredResource,
    what: &str,
) -> Result<(), DriverError> {
    if id == physical {
        return Ok(());
    }
    Err(DriverError::permanent(format!(
        "the aws driver keeps {} as {what} `{physical}` (`<stack>-<name>`), not `{id}`: import it with id=\"{physical}\", or declare the resource under the name that gives `{id}`",
        desired.address
    )))
}

/// Whether `tags` mark a resource as `address` of `stack` (what `release` takes off).
fn marked_as(tags: &Tags, stack: &str, address: &str) -> bool {
    tracked_address(|k| tags.get(k).map(String::as_str), stack) == Some(address)
}

/// The resource name of an address (`bucket/exports` → `exports`).
fn name_of(address: &str) -> String {
    address
        .split_once('/')
        .map_or(address, |(_, n)| n)
        .to_string()
}

/// The name a resource has in the account.
pub fn physical_name(stack: &str, name: &str) -> String {
    format!("{stack}-{name}")
}

impl AwsDriver {
    pub fn new(settings: Settings) -> AwsDriver {
        AwsDriver {
            settings,
            config: tokio::sync::OnceCell::new(),
            s3: tokio::sync::OnceCell::new(),
            rds: tokio::sync::OnceCell::new(),
            eks: tokio::sync::OnceCell::new(),
            sagemaker: tokio::sync::OnceCell::new(),
            calls: CallCounter::default(),
            http: None,
            poll: std::time::Duration::from_secs(5),
        }
    }

    /// A driver that sends every request through `http` instead of its HTTPS client and polls
    /// every `poll`: how the paths an emulator cannot answer are tested with recorded answers.
    pub fn with_http_client(
        settings: Settings,
        http: aws_sdk_s3::config::SharedHttpClient,
        poll: std::time::Duration,
    ) -> AwsDriver {
        AwsDriver {
            http: Some(http),
            poll,
            ..AwsDriver::new(settings)
        }
    }

    pub fn from_settings(settings: &BTreeMap<String, String>) -> AwsDriver {
        AwsDriver::new(Settings::from_map(settings))
    }

    async fn config(&self) -> &aws_config::SdkConfig {
        self.config
            .get_or_init(|| async {
                use aws_smithy_http_client::tls;
                let https = self.http.clone().unwrap_or_else(|| {
                    aws_smithy_http_client::Builder::new()
                        .tls_provider(tls::Provider::Rustls(
                            tls::rustls_provider::CryptoMode::Ring,
                        ))
                        .build_https()
                });
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .http_client(https)
                    // The engine's backoff is the one retry loop: the SDK's would multiply it.
                    .retry_config(aws_config::retry::RetryConfig::disabled());
                if let Some(region) = &self.settings.region {
                    loader = loader.region(aws_config::Region::new(region.clone()));
                }
                if let Some(url) = &self.settings.endpoint_url {
                    loader = loader.endpoint_url(url.clone());
                }
                if let Some(profile) = &self.settings.profile {
                    loader = loader.profile_name(profile.clone());
                }
                loader.load().await
            })
            .await
    }

    /// Requests sent so far, to every service.
    pub fn calls(&self) -> u64 {
        self.calls.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn s3(&self) -> &aws_sdk_s3::Client {
        self.s3
            .get_or_init(|| async {
                let config = aws_sdk_s3::config::Builder::from(self.config().await)
                    // Emulators and most S3-compatible endpoints address buckets by path.
                    .force_path_style(self.settings.endpoint_url.is_some())
                    .interceptor(self.calls.clone())
                    .build();
                aws_sdk_s3::Client::from_conf(config)
            })
            .await
    }

    async fn eks(&self) -> &aws_sdk_eks::Client {
        self.eks
            .get_or_init(|| async {
                let config = aws_sdk_eks::config::Builder::from(self.config().await)
                    .interceptor(self.calls.clone())
                    .build();
                aws_sdk_eks::Client::from_conf(config)
            })
            .await
    }

    async fn rds(&self) -> &aws_sdk_rds::Client {
        self.rds
            .get_or_init(|| async {
                let config = aws_sdk_rds::config::Builder::from(self.config().await)
                    .interceptor(self.calls.clone())
                    .build();
                aws_sdk_rds::Client::from_conf(config)
            })
            .await
    }

    async fn sagemaker(&self) -> &aws_sdk_sagemaker::Client {
        self.sagemaker
            .get_or_init(|| async {
                let config = aws_sdk_sagemaker::config::Builder::from(self.config().await)
                    .interceptor(self.calls.clone())
                    .build();
                aws_sdk_sagemaker::Client::from_conf(config)
            })
            .await
    }

    fn region(&self) -> String {
        self.settings
            .region
            .clone()
            .unwrap_or_else(|| "us-east-1".into())
    }
}

#[async_trait]
impl Driver for AwsDriver {
    fn name(&self) -> &str {
        "aws"
    }

    fn supports(&self, kind: Kind) -> bool {
        matches!(
            kind,
            Kind::Bucket | Kind::Database | Kind::GpuPool | Kind::AiEndpoint
        )
    }

    async fn observe(
        &self,
        stack: &str,
        kinds: &[Kind],
    ) -> Result<Vec<ObservedResource>, DriverError> {
        let mut found = Vec::new();
        if kinds.contains(&Kind::Bucket) {
            found.extend(
                s3::observe(
                    self.s3().await,
                    stack,
                    &self.region(),
                    self.settings.endpoint_url.as_deref(),
                )
                .await?,
            );
        }
        if kinds.contains(&Kind::Database) {
            found.extend(rds::observe(self.rds().await, stack).await?);
        }
        if kinds.contains(&Kind::GpuPool) {
            found.extend(eks::observe(self.eks().await, &self.settings, stack).await?);
        }
        if kinds.contains(&Kind::AiEndpoint) {
            found.extend(sagemaker::observe(self.sagemaker().await, &self.region(), stack).await?);
        }
        Ok(found)
    }

    fn expected(&self, desired: &DesiredResource) -> Result<Value, DriverError> {
        match desired.fields() {
            Spec::Bucket(bucket) => Ok(s3::expected(desired, bucket)),
            Spec::Database(db) => Ok(rds::expected(desired, db)),
            Spec::GpuPool(pool) => Ok(eks::expected(desired, pool, &self.settings)),
            Spec::AiEndpoint(endpoint) => Ok(sagemaker::expected(
                desired,
                endpoint,
                &self.settings,
                &self.region(),
            )),
            _ => Err(not_served(desired.kind)),
        }
    }

    fn live_paths(&self, kind: Kind, field: &str) -> Vec<String> {
        // The live documents name a field as the service does where it differs.
        let live = match (kind, field) {
            (Kind::Database, "size") => "class",
            (Kind::Database, "high-availability") => "multi-az",
            _ => field,
        };
        vec![live.to_string()]
    }

    async fn apply(
        &self,
        desired: &DesiredResource,
        _previous: &[ObjectRef],
    ) -> Result<Applied, DriverError> {
        match desired.fields() {
            Spec::Bucket(bucket) => {
                s3::apply(
                    self.s3().await,
                    desired,
                    bucket,
                    &self.region(),
                    self.settings.endpoint_url.as_deref(),
                )
                .await
            }
            Spec::Database(db) => rds::apply(self.rds().await, desired, db).await,
            Spec::GpuPool(pool) => {
                eks::apply(self.eks().await, &self.settings, desired, pool).await
            }
            Spec::AiEndpoint(endpoint) => {
                sagemaker::apply(
                    self.sagemaker().await,
                    &self.settings,
                    &self.region(),
                    desired,
                    endpoint,
                )
                .await
            }
            _ => Err(not_served(desired.kind)),
        }
    }

    async fn wait_ready(
        &self,
        desired: &DesiredResource,
        timeout: std::time::Duration,
    ) -> Result<(), DriverError> {
        match desired.fields() {
            Spec::Database(_) => {
                rds::wait_available(self.rds().await, desired, timeout, self.poll).await
            }
            Spec::GpuPool(_) => {
                eks::wait_active(
                    self.eks().await,
                    &self.settings,
                    desired,
                    timeout,
                    self.poll,
                )
                .await
            }
            Spec::AiEndpoint(endpoint) => {
                sagemaker::wait_in_service(
                    self.sagemaker().await,
                    &self.settings,
                    &self.region(),
                    desired,
                    endpoint,
                    timeout,
                    self.poll,
                )
                .await
            }
            _ => Ok(()),
        }
    }

    async fn adopt(
        &self,
        desired: &DesiredResource,
        id: &str,
    ) -> Result<Vec<ObjectRef>, DriverError> {
        match desired.kind {
            Kind::Bucket => s3::adopt(self.s3().await, desired, id).await,
            Kind::Database => rds::adopt(self.rds().await, desired, id).await,
            Kind::GpuPool => eks::adopt(self.eks().await, &self.settings, desired, id).await,
            Kind::AiEndpoint => sagemaker::adopt(self.sagemaker().await, desired, id).await,
            kind => Err(not_served(kind)),
        }
    }

    async fn release(
        &self,
        stack: &str,
        kind: Kind,
        name: &str,
        _inventory: &[ObjectRef],
    ) -> Result<(), DriverError> {
        let id = physical_name(stack, name);
        let address = format!("{kind}/{name}");
        match kind {
            Kind::Bucket => s3::release(self.s3().await, stack, &address, &id).await,
            Kind::Database => rds::release(self.rds().await, stack, &address, &id).await,
            Kind::GpuPool => {
                eks::release(self.eks().await, &self.settings, stack, &address, &id).await
            }
            Kind::AiEndpoint => {
                sagemaker::release(self.sagemaker().await, stack, &address, &id).await
            }
            _ => Ok(()),
        }
    }

    async fn delete(
        &self,
        stack: &str,
        kind: Kind,
        name: &str,
        _inventory: &[ObjectRef],
    ) -> Result<(), DriverError> {
        let id = physical_name(stack, name);
        match kind {
            Kind::Bucket => s3::delete(self.s3().await, &id).await,
            Kind::Database => rds::delete(self.rds().await, &id).await,
            Kind::GpuPool => eks::delete(self.eks().await, &self.settings, &id).await,
            Kind::AiEndpoint => sagemaker::delete(self.sagemaker().await, stack, name).await,
            _ => Ok(()),
        }
    }
}
