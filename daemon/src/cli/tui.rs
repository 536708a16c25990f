//! `platformd tui`: the operator UI against a running daemon (`--connect URL`, HTTP or HTTPS)
//! or, read-only, a state directory.

use anyhow::{Context, Result};
use daemon::ops;
use daemon::store::Store;
use std::path::{Path, PathBuf};
use tui::app::Action;
use tui::model::{Model, Status};
use tui::source::ApiSource;
use tui::terminal::{Source, SourceError};

/// Reads a state directory through a read-only store; no actions (they need the daemon's
/// reconcile loop).
#[derive(Clone)]
struct StoreSource {
    store: Store,
    dir: PathBuf,
}

impl Source for StoreSource {
    fn rollback_plan(&mut self, revision: &str) -> Result<planner::Plan, SourceError> {
        ops::rollback_preview(&self.store, revision, Vec::new())
            .map(|(_, _, planned)| planned.plan)
            .map_err(|e| SourceError(e.to_string()))
    }

    fn fetch(&mut self) -> Result<Model, SourceError> {
        let store = &self.store;
        let e = |e: daemon::store::StoreError| SourceError(e.to_string());
        let revisions = store.revisions(200).map_err(e)?;
        let drift = store.last_drift_findings().map_err(e)?;
        let mut drift_counts = std::collections::BTreeMap::new();
        for f in &drift {
            *drift_counts.entry(f.status).or_insert(0) += 1;
        }
        let status = Status {
            stack: store.stack_name().map_err(e)?,
            source: format!("state directory {} (read-only)", self.dir.display()),
            tracked_revision: revisions.first().map(|r| r.revision.clone()),
            applied_revision: store.applied_revision().map_err(e)?,
            sync_state: api::SyncState::ReadOnly,
            pinned_revision: store.pinned_revision().map_err(e)?,
            resources: store.resource_counts().map_err(e)?,
            drift: drift_counts,
            ..Status::default()
        };
        let resources = ops::resource_statuses(store, &drift, &Default::default())
            .map_err(|e| SourceError(e.to_string()))?;
        Ok(Model {
            status,
            plan: None,
            drift,
            revisions,
            resources,
        })
    }

    fn act(&mut self, _action: &Action) -> Result<String, SourceError> {
        Err("actions need a running daemon: open the UI with --connect URL".into())
    }
}

/// The client of the stack to open: the one stack of a single-stack daemon, the one named, or
/// the one the operator picks from a daemon that follows many. `None`: the operator quit.
fn choose_stack(client: api::Client, stack: Option<&str>) -> Result<Option<api::Client>> {
    if let Some(name) = stack {
        return Ok(Some(client.for_stack(name)));
    }
    // A daemon that follows many stacks has no status of its own; one that cannot be reached
    // yet opens as a single stack, and the UI says it cannot refresh.
    let single = client
        .request("GET", api::routes::STATUS, &[], b"")
        .map_or(true, |r| r.status != 404);
    if single {
        return Ok(Some(client));
    }
    let stacks = client.stacks()?.stacks;
    match stacks.len() {
        0 => anyhow::bail!("the daemon at {} follows no stack", client.base_url()),
        1 => Ok(Some(client.for_stack(&stacks[0].name))),
        _ => Ok(tui::terminal::pick_stack(client.base_url(), stacks)?
            .map(|name| client.for_stack(&name))),
    }
}

pub fn run(
    connect: Option<&str>,
    stack: Option<&str>,
    token_file: Option<&Path>,
    ca_file: Option<&Path>,
    state_dir: &Path,
) -> Result<u8> {
    match connect {
        Some(url) => {
            let token = match token_file {
                Some(f) => Some(std::fs::read_to_string(f)?.trim().to_string()),
                None => std::env::var("PLATFORMD_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty()),
            };
            let ca = ca_file
                .map(|f| {
                    std::fs::read(f)
                        .with_context(|| format!("cannot read the CA certificate {}", f.display()))
                })
                .transpose()?;
            let client = api::Client::new(url, token, ca.as_deref())?;
            let Some(client) = choose_stack(client, stack)? else {
                return Ok(0);
            };
            tui::terminal::run(ApiSource::new(client), false)?;
        }
        None => {
            let store = Store::open_read_only(state_dir)
                .context("pass --connect URL, or --state-dir DIR of a store")?;
            tui::terminal::run(
                StoreSource {
                    store,
                    dir: state_dir.to_path_buf(),
                },
                true,
            )?;
        }
    }
    Ok(0)
}
