//! Buckets as S3 buckets: versioning, lifecycle expiration from `expire-after-days`, the public
//! access block unless `public`, default encryption (SSE-S3), and tags (ownership and the
//! user's labels). Outputs `name`, `arn`, `url`.
//!
//! Observing lists the account's buckets once, then reads each owned bucket's configuration
//! (S3 has no list that returns it), a few buckets at a time.

use super::errors::{classify, code};
use super::{
    OWNERSHIP_KEYS, Tags, adoptable, expect_id, marked_as, name_of, owned_by, physical_name,
    tracked_address,
};
use crate::{Applied, DesiredResource, DriverError, Health, ObjectRef, ObservedResource, Outputs};
use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging,
};
use planner::model::{BucketSpec, Kind};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Describes in flight at once while observing.
const DESCRIBE_PARALLELISM: usize = 8;

fn build_error(e: impl std::fmt::Display) -> DriverError {
    DriverError::permanent(format!("cannot build the S3 request: {e}"))
}

fn tags(desired: &DesiredResource) -> BTreeMap<String, String> {
    super::ownership_tags(desired)
}

/// The managed configuration of a bucket, in the shape `observe` reports it.
pub fn expected(desired: &DesiredResource, spec: &BucketSpec) -> Value {
    let tags: Map<String, Value> = tags(desired)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    json!({
        "name": physical_name(&desired.stack, &desired.name),
        "versioning": spec.versioning,
        "expire-after-days": spec.expire_after_days,
        "public-access-block": !spec.public,
        "encryption": "AES256",
        "tags": tags,
    })
}

fn outputs(bucket: &str, region: &str, endpoint: Option<&str>) -> Outputs {
    let mut out = Outputs::new();
    out.insert("name".into(), bucket.into());
    out.insert("arn".into(), format!("arn:aws:s3:::{bucket}"));
    out.insert("region".into(), region.into());
    out.insert(
        "url".into(),
        match endpoint {
            Some(e) => format!("{}/{bucket}", e.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        },
    );
    out
}

async fn bucket_tags(client: &Client, bucket: &str) -> Result<super::Tags, DriverError> {
    match client.get_bucket_tagging().bucket(bucket).send().await {
        Ok(out) => Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()),
        Err(e) if code(&e) == Some("NoSuchTagSet") => Ok(BTreeMap::new()),
        Err(e) => Err(classify(e, "s3:GetBucketTagging", bucket)),
    }
}

/// One tag of a bucket's tag set.
fn tag<'a>(tags: &'a BTreeMap<String, String>) -> impl Fn(&str) -> Option<&'a str> + 'a {
    |k| tags.get(k).map(String::as_str)
}

fn taken(bucket: &str) -> DriverError {
    DriverError::permanent(format!(
        "the bucket name `{bucket}` is taken by a bucket platformd does not own; platformd takes over nothing it did not make: if the bucket is this resource's, adopt it with an `import` of the resource with id=\"{bucket}\" (it must be in this account); else rename the resource"
    ))
}

pub async fn apply(
    client: &Client,
    desired: &DesiredResource,
    spec: &BucketSpec,
    region: &str,
    endpoint: Option<&str>,
) -> Result<Applied, DriverError> {
    let bucket = physical_name(&desired.stack, &desired.name);
    let exists = match client.head_bucket().bucket(&bucket).send().await {
        Ok(_) => true,
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => false,
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
            return Err(taken(&bucket));
        }
        Err(e) => return Err(classify(e, "s3:HeadBucket", &bucket)),
    };
    // An unmarked bucket of this exact name is ours only when our own create of it was
    // interrupted before the tags were written.
    let ours = |tags: &BTreeMap<String, String>| {
        owned_by(tag(tags), desired) || (tags.is_empty() && desired.resumed)
    };
    if exists {
        if !ours(&bucket_tags(client, &bucket).await?) {
            return Err(taken(&bucket));
        }
    } else {
        let mut create = client.create_bucket().bucket(&bucket);
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => {}
            Err(e) if code(&e) == Some("BucketAlreadyExists") => return Err(taken(&bucket)),
            Err(e) if code(&e) == Some("BucketAlreadyOwnedByYou") => {
                if !ours(&bucket_tags(client, &bucket).await?) {
                    return Err(taken(&bucket));
                }
            }
            Err(e) => return Err(classify(e, "s3:CreateBucket", &bucket)),
        }
    }
    // Ownership first, so a crash after this point leaves a bucket platformd recognises.
    put_tags(client, &bucket, &tags(desired)).await?;
    let versioning = if spec.versioning {
        BucketVersioningStatus::Enabled
    } else {
        BucketVersioningStatus::Suspended
    };
    client
        .put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(versioning)
                .build(),
        )
        .send()
        .await
        .map_err(|e| classify(e, "s3:PutBucketVersioning", &bucket))?;
    match spec.expire_after_days {
        Some(days) => {
            let rule = LifecycleRule::builder()
                .id("platformd-expire")
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .expiration(
                    LifecycleExpiration::builder()
                        .days(i32::try_from(days).unwrap_or(i32::MAX))
                        .build(),
                )
                .build()
                .map_err(build_error)?;
            client
                .put_bucket_lifecycle_configuration()
                .bucket(&bucket)
                .lifecycle_configuration(
                    BucketLifecycleConfiguration::builder()
                        .rules(rule)
                        .build()
                        .map_err(build_error)?,
                )
                .send()
                .await
                .map_err(|e| classify(e, "s3:PutLifecycleConfiguration", &bucket))?;
        }
        None => {
            client
                .delete_bucket_lifecycle()
                .bucket(&bucket)
                .send()
                .await
                .map_err(|e| classify(e, "s3:PutLifecycleConfiguration", &bucket))?;
        }
    }
    if spec.public {
        client
            .delete_public_access_block()
            .bucket(&bucket)
            .send()
            .await
            .map_err(|e| classify(e, "s3:PutBucketPublicAccessBlock", &bucket))?;
    } else {
        client
            .put_public_access_block()
            .bucket(&bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(e, "s3:PutBucketPublicAccessBlock", &bucket))?;
    }
    let sse = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::Aes256)
        .build()
        .map_err(build_error)?;
    client
        .put_bucket_encryption()
        .bucket(&bucket)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(sse)
                        .build(),
                )
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| classify(e, "s3:PutEncryptionConfiguration", &bucket))?;
    Ok(Applied {
        outputs: outputs(&bucket, region, endpoint),
        inventory: vec![ObjectRef {
            api_version: "s3".into(),
            kind: "Bucket".into(),
            namespace: None,
            name: bucket,
        }],
    })
}

/// Some S3-compatible endpoints (moto among them) answer GetBucketVersioning with a
/// `GetBucketVersioningResponse` root element the SDK refuses to decode, though the status is
/// there: read it from the raw answer of a successful (200) response.
pub fn versioning_from_raw<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<bool> {
    let raw = e.raw_response()?;
    if raw.status().as_u16() != 200 {
        return None;
    }
    let body = std::str::from_utf8(raw.body().bytes()?).ok()?;
    if !body.contains("GetBucketVersioningResponse") {
        return None;
    }
    Some(body.contains("<Status>Enabled</Status>"))
}

/// A bucket's managed configuration as the account has it.
async fn describe(
    client: &Client,
    bucket: &str,
    tags: BTreeMap<String, String>,
) -> Result<Value, DriverError> {
    let versioning = match client.get_bucket_versioning().bucket(bucket).send().await {
        Ok(out) => out
            .status()
            .is_some_and(|s| *s == BucketVersioningStatus::Enabled),
        Err(e) => match versioning_from_raw(&e) {
            Some(enabled) => enabled,
            None => return Err(classify(e, "s3:GetBucketVersioning", bucket)),
        },
    };
    let expire = match client
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => out
            .rules()
            .iter()
            .find(|r| r.id() == Some("platformd-expire"))
            .and_then(|r| r.expiration()?.days())
            .map_or(Value::Null, |d| json!(d)),
        Err(e) if code(&e) == Some("NoSuchLifecycleConfiguration") => Value::Null,
        Err(e) => return Err(classify(e, "s3:GetLifecycleConfiguration", bucket)),
    };
    let blocked = match client.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
            c.block_public_acls() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        }),
        Err(e) if code(&e) == Some("NoSuchPublicAccessBlockConfiguration") => false,
        Err(e) => return Err(classify(e, "s3:GetBucketPublicAccessBlock", bucket)),
    };
    let encryption = match client.get_bucket_encryption().bucket(bucket).send().await {
        Ok(out) => out
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .map_or(Value::Null, |d| json!(d.sse_algorithm().as_str())),
        Err(e) if code(&e) == Some("ServerSideEncryptionConfigurationNotFoundError") => Value::Null,
        Err(e) => return Err(classify(e, "s3:GetEncryptionConfiguration", bucket)),
    };
    let tags: Map<String, Value> = tags
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(json!({
        "name": bucket,
        "versioning": versioning,
        "expire-after-days": expire,
        "public-access-block": blocked,
        "encryption": encryption,
        "tags": tags,
    }))
}

pub async fn observe(
    client: &Client,
    stack: &str,
    region: &str,
    endpoint: Option<&str>,
) -> Result<Vec<ObservedResource>, DriverError> {
    let listed = client
        .list_buckets()
        .send()
        .await
        .map_err(|e| classify(e, "s3:ListAllMyBuckets", "the account"))?;
    let prefix = format!("{stack}-");
    let candidates: Vec<String> = listed
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    let mut found = Vec::new();
    for chunk in candidates.chunks(DESCRIBE_PARALLELISM) {
        let mut set = tokio::task::JoinSet::new();
        for bucket in chunk {
            let (client, bucket, stack) = (client.clone(), bucket.clone(), stack.to_string());
            set.spawn(async move {
                let tags = bucket_tags(&client, &bucket).await?;
                // Only this stack's buckets are described.
                let Some(address) = tracked_address(tag(&tags), &stack).map(str::to_string) else {
                    return Ok(None);
                };
                let live = describe(&client, &bucket, tags).await?;
                Ok::<_, DriverError>(Some((bucket, address, live)))
            });
        }
        while let Some(joined) = set.join_next().await {
            let Some((bucket, address, live)) = joined
                .map_err(|e| DriverError::retryable(format!("observe task failed: {e}")))??
            else {
                continue;
            };
            found.push(ObservedResource {
                name: name_of(&address),
                address,
                kind: Kind::Bucket,
                live,
                outputs: outputs(&bucket, region, endpoint),
                inventory: vec![ObjectRef {
                    api_version: "s3".into(),
                    kind: "Bucket".into(),
                    namespace: None,
                    name: bucket,
                }],
                health: Health::Ready,
                health_message: None,
            });
        }
    }
    found.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(found)
}

/// Writes a bucket's whole tag set (none: the tag set is removed).
async fn put_tags(client: &Client, bucket: &str, tags: &Tags) -> Result<(), DriverError> {
    if tags.is_empty() {
        return client
            .delete_bucket_tagging()
            .bucket(bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "s3:DeleteBucketTagging", bucket));
    }
    let tag_set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(build_error))
        .collect::<Result<Vec<_>, _>>()?;
    client
        .put_bucket_tagging()
        .bucket(bucket)
        .tagging(
            Tagging::builder()
                .set_tag_set(Some(tag_set))
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| classify(e, "s3:PutBucketTagging", bucket))
}

/// `import`: the bucket named `id` (the name platformd gives the resource) is tagged as
/// `desired`'s, its other tags kept.
pub async fn adopt(
    client: &Client,
    desired: &DesiredResource,
    id: &str,
) -> Result<Vec<ObjectRef>, DriverError> {
    let bucket = physical_name(&desired.stack, &desired.name);
    expect_id(id, &bucket, desired, "bucket")?;
    match client.head_bucket().bucket(&bucket).send().await {
        Ok(_) => {}
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
            return Err(DriverError::permanent(format!(
                "nothing to import for {}: no bucket `{bucket}` in the account",
                desired.address
            )));
        }
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
            return Err(taken(&bucket));
        }
        Err(e) => return Err(classify(e, "s3:HeadBucket", &bucket)),
    }
    let mut merged = bucket_tags(client, &bucket).await?;
    adoptable(&merged, desired, &format!("bucket `{bucket}`"))?;
    merged.extend(tags(desired));
    put_tags(client, &bucket, &merged).await?;
    Ok(vec![bucket_ref(&bucket)])
}

/// `removed`: platformd's tags come off the bucket, which stays with its data.
pub async fn release(
    client: &Client,
    stack: &str,
    address: &str,
    bucket: &str,
) -> Result<(), DriverError> {
    let mut tags = match bucket_tags(client, bucket).await {
        Ok(tags) => tags,
        Err(_) if client.head_bucket().bucket(bucket).send().await.is_err() => return Ok(()),
        Err(e) => return Err(e),
    };
    if !marked_as(&tags, stack, address) {
        return Ok(());
    }
    tags.retain(|k, _| !OWNERSHIP_KEYS.contains(&k.as_str()));
    put_tags(client, bucket, &tags).await
}

fn bucket_ref(bucket: &str) -> ObjectRef {
    ObjectRef {
        api_version: "s3".into(),
        kind: "Bucket".into(),
        namespace: None,
        name: bucket.to_string(),
    }
}

/// Deletes an empty bucket. A bucket with objects is refused: platformd never destroys data
/// it did not write.
pub async fn delete(client: &Client, bucket: &str) -> Result<(), DriverError> {
    match client.delete_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some("NoSuchBucket") => Ok(()),
        Err(e) if code(&e) == Some("BucketNotEmpty") => Err(DriverError::permanent(format!(
            "bucket {bucket} is not empty: platformd deletes only empty buckets; empty it (or keep it with `protect #true`)"
        ))),
        Err(e) => Err(classify(e, "s3:DeleteBucket", bucket)),
    }
}
