//! The local driver, the embedded default: renders every resource into files under a directory,
//! one directory per kind (`<path>/<kind>/<name>.yaml`), the "rendered manifests" pattern Argo CD
//! and Flux can point at. Workloads and topics become Kubernetes manifests; other kinds a
//! canonical `platformd.dev/v1` document. Each file is labelled as owned by platformd.
//!
//! Observing reads the files back: a hand edit of a managed field is drift, a deleted file is a
//! missing resource, an owned file with no declaration is an orphan. Outputs are synthesized
//! deterministically (a database's `url`, a service's `url`) and recorded in the file.
//!
//! Testing knobs, given as driver settings (documented in `docs/DRIVERS.md`):
//! `simulate-latency-ms` adds a fixed latency to every call; `inject-faults
//! "service/a=permanent,topic/b=retryable:2"` makes applies of those addresses fail (always, or
//! the first N attempts with a retryable error).

use crate::render;
use crate::{
    ADDRESS_ANNOTATION, Applied, DesiredResource, Driver, DriverError, Health, MANAGED_BY_LABEL,
    MANAGED_BY_VALUE, ObjectRef, ObservedResource, Outputs, STACK_LABEL,
};
use async_trait::async_trait;
use planner::model::{DatabaseEngine, Kind, ModelRuntime, Spec};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

const OUTPUTS_ANNOTATION: &str = "platformd.dev/outputs";

#[derive(Debug, Clone, Copy)]
struct Fault {
    retryable: bool,
    remaining: u32,
}

pub struct LocalDriver {
    root: PathBuf,
    namespace: Option<String>,
    latency: Duration,
    faults: Mutex<HashMap<String, Fault>>,
}

impl LocalDriver {
    /// A driver rendering under `root`. `namespace` defaults to the stack name.
    pub fn new(root: impl Into<PathBuf>, namespace: Option<String>) -> LocalDriver {
        LocalDriver {
            root: root.into(),
            namespace,
            latency: Duration::ZERO,
            faults: Mutex::new(HashMap::new()),
        }
    }

    /// The driver a stack's `driver "local" { … }` block declares. Relative paths are relative
    /// to the working directory, like the state directory.
    pub fn from_settings(settings: &std::collections::BTreeMap<String, String>) -> LocalDriver {
        let path = settings
            .get("path")
            .cloned()
            .unwrap_or_else(|| ".platformd/rendered".into());
        let latency = settings
            .get("simulate-latency-ms")
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::ZERO, Duration::from_millis);
        let faults = settings
            .get("inject-faults")
            .map(|v| parse_faults(v))
            .unwrap_or_default();
        LocalDriver::new(path, settings.get("namespace").cloned())
            .with_latency(latency)
            .with_faults(faults)
    }

    /// Adds a fixed latency to every call (benchmarks, crash tests).
    pub fn with_latency(mut self, latency: Duration) -> LocalDriver {
        self.latency = latency;
        self
    }

    fn with_faults(self, faults: HashMap<String, Fault>) -> LocalDriver {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn namespace<'a>(&'a self, stack: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(stack)
    }

    fn file(&self, kind: Kind, name: &str) -> PathBuf {
        self.root.join(kind.as_str()).join(format!("{name}.yaml"))
    }

    /// What an `import` names a resource's file by: its path under the driver's directory.
    fn id_of(&self, kind: Kind, name: &str) -> String {
        format!("{kind}/{name}.yaml")
    }

    /// Rewrites the file at `path` with its first document's ownership marks changed by
    /// `mark`, under `header`.
    fn remark(
        &self,
        path: &Path,
        header: &str,
        mark: impl FnOnce(&mut Value),
    ) -> Result<(), DriverError> {
        let text = std::fs::read_to_string(path).map_err(|e| io_error("read", path, e))?;
        let mut docs = from_yaml(&text).map_err(|e| {
            DriverError::permanent(format!("{} is not valid YAML: {e}", path.display()))
        })?;
        let Some(first) = docs.first_mut().filter(|d| d.is_object()) else {
            return Err(DriverError::permanent(format!(
                "{} holds no document to mark",
                path.display()
            )));
        };
        mark(first);
        crate::fence::check()?;
        write_atomically(path, &to_yaml(&docs, header)).map_err(|e| io_error("write", path, e))
    }

    async fn pause(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    fn injected_fault(&self, address: &str) -> Option<DriverError> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let fault = faults.get_mut(address)?;
        if fault.remaining == 0 {
            return None;
        }
        fault.remaining = fault.remaining.saturating_sub(u32::from(fault.retryable));
        Some(if fault.retryable {
            DriverError::retryable(format!("injected retryable fault for {address}"))
        } else {
            DriverError::permanent(format!("injected permanent fault for {address}"))
        })
    }

    /// The documents for a resource, with its outputs recorded on the first one.
    fn render(&self, desired: &DesiredResource) -> Vec<Value> {
        let namespace = self.namespace(&desired.stack);
        let mut docs = render::documents(desired, namespace);
        let outputs = synthesize_outputs(desired, namespace);
        if let Some(first) = docs.first_mut() {
            first["metadata"]["annotations"][OUTPUTS_ANNOTATION] =
                serde_json::to_string(&outputs).unwrap_or_default().into();
        }
        docs
    }
}

fn parse_faults(spec: &str) -> HashMap<String, Fault> {
    spec.split(',')
        .filter_map(|item| {
            let (address, what) = item.trim().split_once('=')?;
            let fault = match what.split_once(':') {
                Some(("retryable", n)) => Fault {
                    retryable: true,
                    remaining: n.parse().unwrap_or(1),
                },
                _ if what == "retryable" => Fault {
                    retryable: true,
                    remaining: 1,
                },
                _ => Fault {
                    retryable: false,
                    remaining: u32::MAX,
                },
            };
            Some((address.to_string(), fault))
        })
        .collect()
}

/// A ClickHouse cluster's outputs: the operator's Service in front of every replica, native
/// protocol, the `default` database and user (whose password stays in the cluster).
pub fn clickhouse_outputs(name: &str, namespace: &str, o: &mut Outputs) {
    let host = format!("clickhouse-{name}.{namespace}.svc");
    o.insert(
        "url".into(),
        format!("clickhouse://default@{host}:9000/default"),
    );
    o.insert("host".into(), host);
    o.insert("port".into(), "9000".into());
    o.insert("name".into(), "default".into());
    o.insert("username".into(), "default".into());
}

/// Deterministic outputs, as a real system would report them. No credentials: database users
/// authenticate with a secret from the secret store.
pub fn synthesize_outputs(d: &DesiredResource, namespace: &str) -> Outputs {
    let mut o = Outputs::new();
    let name = &d.name;
    match d.fields() {
        Spec::Service(service) => {
            let host = format!("{name}.{namespace}.svc.cluster.local");
            let port = service.port.unwrap_or(80);
            o.insert("url".into(), format!("http://{host}:{port}"));
            o.insert("host".into(), host);
            o.insert("port".into(), port.to_string());
        }
        Spec::Database(db) if db.engine == DatabaseEngine::Clickhouse => {
            clickhouse_outputs(&d.name, namespace, &mut o);
        }
        Spec::Database(db) => {
            let postgres = db.engine == DatabaseEngine::Postgres;
            let port = if postgres { 5432 } else { 3306 };
            let host = format!("{name}.{}.db.internal", d.stack);
            let sql_name = name.replace('-', "_");
            let user = format!("{sql_name}_app");
            let scheme = if postgres { "postgres" } else { "mysql" };
            o.insert(
                "url".into(),
                format!("{scheme}://{user}@{host}:{port}/{sql_name}"),
            );
            o.insert("host".into(), host);
            o.insert("port".into(), port.to_string());
            o.insert("name".into(), sql_name);
            o.insert("username".into(), user);
        }
        Spec::Bucket(_) => {
            let bucket = format!("{}-{name}", d.stack);
            o.insert("arn".into(), format!("arn:aws:s3:::{bucket}"));
            o.insert("url".into(), format!("s3://{bucket}"));
            // No cloud behind the local driver: it says so rather than name a real region.
            o.insert("region".into(), "local".into());
            o.insert("name".into(), bucket);
        }
        Spec::Topic(_) => {
            o.insert("name".into(), name.clone());
            o.insert(
                "bootstrap-servers".into(),
                format!("platform-kafka-bootstrap.{namespace}.svc:9092"),
            );
        }
        Spec::Job(_) | Spec::Pipeline(_) => {
            o.insert("name".into(), name.clone());
        }
        Spec::GpuPool(_) => {
            o.insert("name".into(), name.clone());
            o.insert(
                "node-selector".into(),
                format!("platformd.dev/gpu-pool={name}"),
            );
        }
        Spec::AiEndpoint(endpoint) => {
            let url = if endpoint.runtime == ModelRuntime::Sagemaker {
                format!(
                    "https://runtime.sagemaker.local/endpoints/{}-{name}/invocations",
                    d.stack
                )
            } else {
                // Through the gateway, as on Kubernetes: the runtime's own Service would skip
                // the callers' keys, the rate limit and the quotas.
                crate::render::gateway::default_url(
                    crate::render::gateway::DEFAULT_GATEWAY,
                    namespace,
                )
            };
            o.insert("url".into(), url);
            o.insert(
                "model".into(),
                format!("{}@{}", endpoint.model.id, endpoint.model.revision),
            );
        }
        // A rate limit publishes nothing.
        Spec::LlmQuota(_) => {}
    }
    o
}

pub fn to_yaml(docs: &[Value], header: &str) -> String {
    let mut out = String::from(header);
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_norway::to_string(doc).unwrap_or_default());
    }
    out
}

/// The documents of a rendered file.
pub fn from_yaml(text: &str) -> Result<Vec<Value>, serde_norway::Error> {
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let v = Value::deserialize(doc)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// Writes through a temporary file and a rename, so a crash never leaves a half-written file.
/// The temporary file is created exclusively with a random name and mode 0600 (a link or file
/// planted at a predictable name is never written through), then given the final mode.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|existing| existing == text) {
        return Ok(()); // idempotent: nothing to do
    }
    let dir = path.parent().expect("files live in a kind directory");
    create_private_dir(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(".{name}.tmp-{:016x}", random_suffix()));
        match open_exclusive(&tmp) {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    let written =
        std::io::Write::write_all(&mut file, text.as_bytes()).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// A new file that did not exist (never a link followed), readable by its owner only.
fn open_exclusive(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// The output directories, created readable by their owner only (rendered files can name
/// internal hosts and secret references).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Unpredictable enough that another local user cannot plant the temporary file's name.
fn random_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// The first line of every file the driver writes; it also tells whose an unreadable file is.
fn header(stack: &str, address: &str) -> String {
    format!("# Rendered by platformd (stack {stack}, {address}). Managed: hand edits are drift.\n")
}

/// Whether the file at `path` is `address` of `stack` (false when it cannot be read).
fn holds(path: &Path, stack: &str, address: &str) -> bool {
    std::fs::read_to_string(path)
        .is_ok_and(|text| file_owner(&text) == Some((stack.to_string(), address.to_string())))
}

/// Which stack and address a rendered file belongs to, by its first document's labels and
/// annotation (or, for a file that is not valid YAML, by the header platformd writes); `None`
/// when it is no platformd resource's.
fn file_owner(text: &str) -> Option<(String, String)> {
    let Ok(docs) = from_yaml(text) else {
        let header = text.lines().next()?;
        let inside = header
            .strip_prefix("# Rendered by platformd (stack ")?
            .split_once(')')?
            .0;
        let (stack, address) = inside.split_once(", ")?;
        return Some((stack.to_string(), address.to_string()));
    };
    let first = docs.first()?;
    let labels = &first["metadata"]["labels"];
    if labels[MANAGED_BY_LABEL] != MANAGED_BY_VALUE {
        return None;
    }
    Some((
        labels[STACK_LABEL].as_str()?.to_string(),
        first["metadata"]["annotations"][ADDRESS_ANNOTATION]
            .as_str()?
            .to_string(),
    ))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> DriverError {
    // Local IO errors other than permissions are usually transient (disk full, interrupted).
    let message = format!("cannot {what} {}: {e}", path.display());
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        DriverError::permanent(message)
    } else {
        DriverError::retryable(message)
    }
}

#[async_trait]
impl Driver for LocalDriver {
    fn name(&self) -> &str {
        "local"
    }

    fn supports(&self, _kind: Kind) -> bool {
        true
    }

    async fn observe(
        &self,
        stack: &str,
        kinds: &[Kind],
    ) -> Result<Vec<ObservedResource>, DriverError> {
        let mut found = Vec::new();
        // One directory listing per kind.
        for &kind in kinds {
            self.pause().await;
            let dir = self.root.join(kind.as_str());
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("list", &dir, e)),
            };
            let mut paths: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "yaml")
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            paths.sort();
            for path in paths {
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // deleted meanwhile
                    Err(e) => return Err(io_error("read", &path, e)),
                };
                let name = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let docs = match from_yaml(&text) {
                    Ok(d) => d,
                    Err(e) => {
                        // An unreadable file that we rendered is a drifted resource.
                        tracing::warn!(path = %path.display(), error = %e, "rendered file is not valid YAML");
                        if text.contains(&format!("stack {stack},")) {
                            found.push(ObservedResource {
                                address: format!("{kind}/{name}"),
                                kind,
                                name,
                                live: Value::String(format!("invalid YAML: {e}")),
                                outputs: Outputs::new(),
                                inventory: Vec::new(),
                                health: Health::Degraded,
                                health_message: Some(format!(
                                    "the rendered file is not valid YAML: {e}"
                                )),
                            });
                        }
                        continue;
                    }
                };
                let Some(first) = docs.first() else { continue };
                let labels = &first["metadata"]["labels"];
                if labels[MANAGED_BY_LABEL] != MANAGED_BY_VALUE || labels[STACK_LABEL] != stack {
                    continue; // not ours
                }
                let address = first["metadata"]["annotations"][ADDRESS_ANNOTATION]
                    .as_str()
                    .map_or_else(|| format!("{kind}/{name}"), str::to_string);
                let outputs = first["metadata"]["annotations"][OUTPUTS_ANNOTATION]
                    .as_str()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default();
                found.push(ObservedResource {
                    address,
                    kind,
                    name,
                    live: Value::Array(docs),
                    outputs,
                    inventory: Vec::new(),
                    health: Health::Ready,
                    health_message: None,
                });
            }
        }
        Ok(found)
    }

    fn expected(&self, desired: &DesiredResource) -> Result<Value, DriverError> {
        Ok(Value::Array(self.render(desired)))
    }

    fn live_paths(&self, kind: Kind, field: &str) -> Vec<String> {
        render::live_paths(kind, field)
    }

    async fn apply(
        &self,
        desired: &DesiredResource,
        _previous: &[ObjectRef],
    ) -> Result<Applied, DriverError> {
        self.pause().await;
        if let Some(fault) = self.injected_fault(&desired.address) {
            return Err(fault);
        }
        let mut docs = self.render(desired);
        let path = self.file(desired.kind, &desired.name);
        // A file this resource did not write is never overwritten: it is adopted by an import.
        if let Ok(text) = std::fs::read_to_string(&path) {
            match file_owner(&text) {
                Some((stack, address)) if stack == desired.stack && address == desired.address => {}
                owner => {
                    return Err(DriverError::permanent(format!(
                        "{} exists and is not managed by this stack as {}{}: platformd does not take over what it did not create; adopt it with `import \"{}\" id=\"{}\"`, rename the resource, or remove the file",
                        path.display(),
                        desired.address,
                        owner.map_or(String::new(), |(s, a)| format!(" (it is {a} of stack {s})")),
                        desired.address,
                        self.id_of(desired.kind, &desired.name),
                    )));
                }
            }
        }
        // `ignore-changes`: what the file holds on those fields stays.
        let ignored = render::ignored_paths(desired);
        if !ignored.is_empty()
            && let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(live) = from_yaml(&text)
        {
            for (index, field) in &ignored {
                if let (Some(doc), Some(live)) = (docs.get_mut(*index), live.get(*index)) {
                    render::keep_live_value(doc, live, field);
                }
            }
        }
        let header = header(&desired.stack, &desired.address);
        crate::fence::check()?;
        write_atomically(&path, &to_yaml(&docs, &header))
            .map_err(|e| io_error("write", &path, e))?;
        Ok(Applied {
            outputs: synthesize_outputs(desired, self.namespace(&desired.stack)),
            // One file per resource, found by its name: nothing to remember.
            inventory: Vec::new(),
        })
    }

    async fn adopt(
        &self,
        desired: &DesiredResource,
        id: &str,
    ) -> Result<Vec<ObjectRef>, DriverError> {
        self.pause().await;
        let expected = self.id_of(desired.kind, &desired.name);
        if id != expected {
            return Err(DriverError::permanent(format!(
                "the local driver keeps {} in `{expected}`, not `{id}`: import it with id=\"{expected}\"",
                desired.address
            )));
        }
        let path = self.file(desired.kind, &desired.name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DriverError::permanent(format!(
                    "nothing to import for {}: {} does not exist",
                    desired.address,
                    path.display()
                )));
            }
            Err(e) => return Err(io_error("read", &path, e)),
        };
        match file_owner(&text) {
            Some((stack, address)) if stack != desired.stack || address != desired.address => {
                return Err(DriverError::permanent(format!(
                    "{} is managed as {address} of stack {stack}: it cannot be imported as {}",
                    path.display(),
                    desired.address
                )));
            }
            _ => {}
        }
        self.remark(&path, &header(&desired.stack, &desired.address), |first| {
            first["metadata"]["labels"][MANAGED_BY_LABEL] = MANAGED_BY_VALUE.into();
            first["metadata"]["labels"][STACK_LABEL] = desired.stack.clone().into();
            first["metadata"]["annotations"][ADDRESS_ANNOTATION] = desired.address.clone().into();
        })?;
        Ok(Vec::new())
    }

    async fn release(
        &self,
        stack: &str,
        kind: Kind,
        name: &str,
        _inventory: &[ObjectRef],
    ) -> Result<(), DriverError> {
        self.pause().await;
        let path = self.file(kind, name);
        let address = format!("{kind}/{name}");
        // Gone, or not ours (already released): nothing to take off.
        if !holds(&path, stack, &address) {
            return Ok(());
        }
        let header =
            format!("# Written by platformd for {address} of {stack}; no longer managed by it.\n");
        self.remark(&path, &header, |first| {
            if let Some(labels) = first["metadata"]["labels"].as_object_mut() {
                labels.remove(MANAGED_BY_LABEL);
                labels.remove(STACK_LABEL);
            }
            if let Some(annotations) = first["metadata"]["annotations"].as_object_mut() {
                annotations.remove(ADDRESS_ANNOTATION);
                annotations.remove(OUTPUTS_ANNOTATION);
            }
        })
    }

    async fn rename(
        &self,
        stack: &str,
        kind: Kind,
        from: &str,
        to: &str,
        _inventory: &[ObjectRef],
    ) -> Result<Vec<ObjectRef>, DriverError> {
        self.pause().await;
        let (old, new) = (self.file(kind, from), self.file(kind, to));
        if new.exists() && !holds(&new, stack, &format!("{kind}/{to}")) {
            return Err(DriverError::permanent(format!(
                "cannot rename {kind}/{from} to {kind}/{to}: {} exists and is not platformd's {kind}/{to}",
                new.display()
            )));
        }
        crate::fence::check()?;
        match std::fs::rename(&old, &new) {
            Ok(()) => {}
            // Renamed already (a repeated call), or never written: the apply writes it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("rename", &old, e)),
        }
        // The file now answers to its new address (the apply that follows rewrites the rest).
        let address = format!("{kind}/{to}");
        self.remark(&new, &header(stack, &address), |first| {
            first["metadata"]["annotations"][ADDRESS_ANNOTATION] = address.clone().into();
        })?;
        Ok(Vec::new())
    }

    async fn delete(
        &self,
        stack: &str,
        kind: Kind,
        name: &str,
        _inventory: &[ObjectRef],
    ) -> Result<(), DriverError> {
        self.pause().await;
        let path = self.file(kind, name);
        // Only this resource's file goes (one released or replaced by hand stays).
        if path.exists() && !holds(&path, stack, &format!("{kind}/{name}")) {
            tracing::warn!(path = %path.display(), "not deleted: the file is not this resource's");
            return Ok(());
        }
        crate::fence::check()?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("delete", &path, e)),
        }
    }
}
