//! Data kinds: databases, buckets, topics and pipelines.

use super::super::*;

pub(crate) fn decode_database(
    block: &Block<'_>,
    references: &mut Vec<Reference>,
    diags: &mut Vec<Diagnostic>,
) -> Option<DatabaseSpec> {
    let engine = block.one("engine").and_then(|n| {
        let usage = block.def("engine").usage;
        if !shape(n, 1, 1, &["version"], usage, diags) {
            return None;
        }
        let engine = one_of(arg(n, 0)?, DatabaseEngine::NAMES, diags)
            .and_then(|e| DatabaseEngine::parse(&e))?;
        let version = prop(n, "version").and_then(|v| match v.value {
            // `version=16` is as natural as `version="16"`.
            Value::Integer(i) => Some(i.to_string()),
            _ => string(v, "version=\"16\"", diags).map(|s| s.value),
        });
        Some((engine, version))
    });
    let clickhouse = engine
        .as_ref()
        .is_some_and(|(e, _)| *e == DatabaseEngine::Clickhouse);
    // Fields of one engine family refused on the other, each at the field.
    let not_for = |field: &str, diags: &mut Vec<Diagnostic>, help: &str| {
        if let Some(n) = block.one(field) {
            diags.push(
                Diagnostic::error(
                    "wrong-arguments",
                    format!(
                        "`{field}` is not for {}",
                        if clickhouse {
                            "a ClickHouse cluster"
                        } else {
                            "this engine"
                        }
                    ),
                )
                .with_label(n.name.span, "not for this engine")
                .with_help(help.to_string()),
            );
        }
    };
    if clickhouse {
        not_for(
            "size",
            diags,
            "a ClickHouse cluster is sized by `resources cpu=\"4\" memory=\"32Gi\"` per replica",
        );
        not_for(
            "high-availability",
            diags,
            "a ClickHouse cluster is made highly available by `replicas 2` (or more)",
        );
    } else {
        for field in [
            "shards",
            "replicas",
            "resources",
            "retention-days",
            "backup",
            "user",
        ] {
            not_for(
                field,
                diags,
                "shards, replicas, resources, retention-days, backup and user are for `engine \"clickhouse\"`",
            );
        }
        if engine.is_some() && block.one("size").is_none() {
            diags.push(missing_field(
                &block.owner,
                block.owner_span,
                &block.def("size"),
            ));
        }
    }
    let size = single(block, "size", diags)
        .and_then(|v| {
            formatted(
                v,
                |s| s.starts_with("db.") && s.len() > 3,
                "an instance class like \"db.r6g.large\"",
                "\"db.r6g.large\"",
                diags,
            )
        })
        .map(|s| s.value);
    let storage_gb = single_int(block, "storage-gb", 20, 65536, diags).unwrap_or(20) as u32;
    let backup_retention_days =
        single_int(block, "backup-retention-days", 0, 35, diags).unwrap_or(7) as u32;
    let high_availability = single_bool(block, "high-availability", diags).unwrap_or(false);
    let (shards, replicas, resources, retention_days, backup) = if clickhouse {
        let backup = block.one("backup").and_then(|n| {
            let usage = block.def("backup").usage;
            if !shape(n, 0, 0, &["bucket", "schedule"], usage, diags) {
                return None;
            }
            let bucket = string(required_prop(n, "bucket", usage, diags)?, "bucket=\"clickhouse-backups\"", diags)?;
            let schedule = match prop(n, "schedule") {
                Some(v) => {
                    let s = string(v, "schedule=\"0 2 * * *\"", diags)?;
                    if let Err(problem) = crate::window::Cron::parse(&s.value) {
                        diags.push(
                            Diagnostic::error("invalid-value", format!("schedule \"{}\" is not valid: {problem}", s.value))
                                .with_label(s.span, "not a cron schedule")
                                .with_help("five fields: minute hour day-of-month month day-of-week, e.g. `schedule=\"0 2 * * *\"` (02:00 every day, UTC)"),
                        );
                        return None;
                    }
                    s.value
                }
                None => "0 2 * * *".to_string(),
            };
            references.push(Reference {
                target: Address::new(Kind::Bucket, bucket.value.clone()),
                output: Some("name".into()),
                via: EdgeVia::DependsOn,
                span: bucket.span,
                allowed_kinds: &[Kind::Bucket],
            });
            Some(DatabaseBackup {
                bucket: bucket.value,
                schedule,
            })
        });
        (
            Some(single_int(block, "shards", 1, 64, diags).unwrap_or(1) as u32),
            Some(single_int(block, "replicas", 1, 16, diags).unwrap_or(1) as u32),
            Some(decode_resources(block, "2", "8Gi", diags)),
            single_int(block, "retention-days", 1, 36500, diags).map(|d| d as u32),
            backup,
        )
    } else {
        (None, None, None, None, None)
    };
    let (engine, version) = engine?;
    if !clickhouse {
        size.as_ref()?;
    }
    let users = if clickhouse {
        decode_clickhouse_users(block, diags)
    } else {
        Vec::new()
    };
    // The backup job asks each shard's sidecar through the server, as one of the cluster's
    // users: `default` is kept to the cluster's own pods.
    if let (Some(_), Some(n), true) = (&backup, block.one("backup"), users.is_empty()) {
        diags.push(
            Diagnostic::error(
                "missing-field",
                "a ClickHouse backup needs a user to run as",
            )
            .with_label(
                n.name.span,
                "the backup job signs in as the cluster's first user",
            )
            .with_help(
                "declare one: `user \"ingest\" password=\"aws-sm:prod/analytics/ingest-password\"`",
            ),
        );
    }
    Some(DatabaseSpec {
        engine,
        version,
        size,
        storage_gb,
        backup_retention_days,
        high_availability,
        shards,
        replicas,
        resources,
        retention_days,
        backup,
        users,
    })
}

/// `user "NAME" password="store:path"`, repeatable: plain names, each once, passwords by
/// reference only.
fn decode_clickhouse_users(block: &Block<'_>, diags: &mut Vec<Diagnostic>) -> Vec<ClickhouseUser> {
    let mut users: Vec<ClickhouseUser> = Vec::new();
    for n in block.all("user") {
        let usage = block.def("user").usage;
        if !shape(n, 1, 1, &["password"], usage, diags) {
            continue;
        }
        let Some(name) = arg(n, 0).and_then(|v| string(v, "\"ingest\"", diags)) else {
            continue;
        };
        if !is_sql_identifier(&name.value) || name.value == "default" {
            diags.push(
                Diagnostic::error("invalid-value", format!("`{}` cannot be a ClickHouse user here", name.value))
                    .with_label(name.span, "letters, digits and `_`, and not `default`")
                    .with_help("name it like `user \"ingest\"`; the operator keeps `default` to the cluster's own pods"),
            );
            continue;
        }
        if users.iter().any(|u| u.name == name.value) {
            diags.push(
                Diagnostic::error(
                    "duplicate-field",
                    format!("user `{}` is declared twice", name.value),
                )
                .with_label(name.span, "declared again here")
                .with_help("declare each user once"),
            );
            continue;
        }
        let Some(password) = required_prop(n, "password", usage, diags).and_then(|v| {
            string(
                v,
                "password=\"aws-sm:prod/analytics/ingest-password\"",
                diags,
            )
        }) else {
            continue;
        };
        if let Err((label, help)) = crate::decode::secrets::check_reference(&password.value) {
            diags.push(
                Diagnostic::error(
                    "invalid-secret-ref",
                    format!(
                        "invalid secret reference for the password of user `{}`",
                        name.value
                    ),
                )
                .with_label(password.span, label)
                .with_help(help),
            );
            continue;
        }
        // One Secret holds every user's password (the operator reads it by key), filled by one
        // ExternalSecret, which reads from one store.
        let store = |r: &str| r.split(':').next().unwrap_or("").to_string();
        if let Some(first) = users.first()
            && store(&first.password) != store(&password.value)
        {
            diags.push(
                Diagnostic::error(
                    "invalid-value",
                    format!(
                        "the password of user `{}` is in another secret store than `{}`'s",
                        name.value, first.name
                    ),
                )
                .with_label(
                    password.span,
                    format!("not in `{}`", store(&first.password)),
                )
                .with_help("keep a cluster's user passwords in one secret store"),
            );
            continue;
        }
        users.push(ClickhouseUser {
            name: name.value,
            password: password.value,
        });
    }
    users
}

pub(crate) fn decode_bucket(block: &Block<'_>, diags: &mut Vec<Diagnostic>) -> BucketSpec {
    BucketSpec {
        versioning: single_bool(block, "versioning", diags).unwrap_or(false),
        expire_after_days: single_int(block, "expire-after-days", 1, 36_500, diags)
            .map(|d| d as u32),
        public: single_bool(block, "public", diags).unwrap_or(false),
        estimated_gb: single_int(block, "estimated-gb", 0, 1_000_000_000, diags).map(|g| g as u64),
    }
}

pub(crate) fn decode_topic(block: &Block<'_>, diags: &mut Vec<Diagnostic>) -> TopicSpec {
    TopicSpec {
        partitions: single_int(block, "partitions", 1, 10_000, diags).unwrap_or(3) as u32,
        retention_hours: single_int(block, "retention-hours", 1, 87_600, diags).unwrap_or(168)
            as u32,
        replication_factor: single_int(block, "replication-factor", 1, 5, diags).unwrap_or(3)
            as u32,
    }
}

pub(crate) const SOURCE_KINDS: &[Kind] = &[Kind::Topic, Kind::Bucket, Kind::Database];
pub(crate) const SINK_KINDS: &[Kind] = &[Kind::Database, Kind::Bucket, Kind::Topic];

pub(crate) fn decode_pipeline(
    block: &Block<'_>,
    references: &mut Vec<Reference>,
    diags: &mut Vec<Diagnostic>,
) -> Option<PipelineSpec> {
    let source = single_string(block, "source", diags).and_then(|s| {
        let target = parse_address(&s, SOURCE_KINDS, diags)?;
        references.push(Reference {
            target: target.clone(),
            output: None,
            via: EdgeVia::Source,
            span: s.span,
            allowed_kinds: SOURCE_KINDS,
        });
        Some(target.key())
    });
    let sink = block.one("sink").and_then(|n| {
        let usage = block.def("sink").usage;
        if !shape(
            n,
            1,
            1,
            &[
                "table",
                "prefix",
                "partition-by",
                "order-by",
                "columns",
                "time-column",
                "user",
            ],
            usage,
            diags,
        ) {
            return None;
        }
        let s = string(arg(n, 0)?, "\"database/orders-db\"", diags)?;
        let target = parse_address(&s, SINK_KINDS, diags)?;
        references.push(Reference {
            target: target.clone(),
            output: None,
            via: EdgeVia::Sink,
            span: s.span,
            allowed_kinds: SINK_KINDS,
        });
        Some(Sink {
            target: target.key(),
            engine: None,
            table: string_prop(n, "table", "table=\"order_events\"", diags),
            prefix: string_prop(n, "prefix", "prefix=\"events/\"", diags),
            partition_by: string_prop(
                n,
                "partition-by",
                "partition-by=\"toYYYYMM(created_at)\"",
                diags,
            ),
            order_by: string_prop(
                n,
                "order-by",
                "order-by=\"(customer_id, created_at)\"",
                diags,
            ),
            columns: string_prop(
                n,
                "columns",
                "columns=\"id UInt64, created_at DateTime\"",
                diags,
            ),
            time_column: string_prop(n, "time-column", "time-column=\"created_at\"", diags),
            user: string_prop(n, "user", "user=\"ingest\"", diags),
            clickhouse: None,
        })
    });
    let transform = block.one("transform").and_then(|n| {
        let usage = block.def("transform").usage;
        if !shape(n, 0, 0, &["sql"], usage, diags) {
            return None;
        }
        let sql = string(required_prop(n, "sql", usage, diags)?, "sql=\"SELECT * FROM input\"", diags)?;
        if sql.value.trim().is_empty() {
            diags.push(
                Diagnostic::error("invalid-value", "`transform` has an empty query")
                    .with_label(sql.span, "empty")
                    .with_help("write the query over the source's records, `FROM input`: `transform sql=\"SELECT * FROM input WHERE amount > 0\"`"),
            );
            return None;
        }
        Some(sql.value)
    });
    let dead_letter_topic = single_string(block, "dead-letter-topic", diags).and_then(|s| {
        let target = parse_address(&s, &[Kind::Topic], diags)?;
        references.push(Reference {
            target: target.clone(),
            output: None,
            via: EdgeVia::DependsOn,
            span: s.span,
            allowed_kinds: &[Kind::Topic],
        });
        Some(target.name)
    });
    let image = decode_image(block, diags);
    let replicas = single_int(block, "replicas", 0, 1000, diags).unwrap_or(1) as u32;
    let resources = decode_resources(block, "500m", "512Mi", diags);
    let env = decode_env(block, references, diags);
    Some(PipelineSpec {
        source: source?,
        transform,
        sink: sink?,
        dead_letter_topic,
        image: image?,
        replicas,
        resources,
        env,
    })
}
