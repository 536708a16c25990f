//! `platformd tui`: the operator UI against a running daemon (`--connect URL`) or, read-only, a
//! state directory.

use crate::store::Store;
use anyhow::Result;
use std::path::{Path, PathBuf};
use tui::app::Action;
use tui::model::{Model, Revision, Status};
use tui::terminal::Source;

/// Reads the daemon's API; actions go to its token-protected endpoints.
#[derive(Clone)]
struct ApiSource {
    authority: String,
    token: Option<String>,
}

impl ApiSource {
    fn get(&self, path: &str) -> Result<(u16, String), String> {
        tui::http::request(&self.authority, "GET", path, &[], b"")
    }
}

impl Source for ApiSource {
    fn rollback_plan(&mut self, revision: &str) -> Result<planner::Plan, String> {
        let (code, body) = self.get(&format!("/api/v1/plan?rollback={revision}"))?;
        if code != 200 {
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            return Err(answer["error"].as_str().unwrap_or("no plan").to_string());
        }
        serde_json::from_str(&body).map_err(|e| e.to_string())
    }

    fn fetch(&mut self) -> Result<Model, String> {
        let (_, status) = self.get("/api/v1/status")?;
        let (code, plan) = self.get("/api/v1/plan")?;
        let (_, drift) = self.get("/api/v1/drift")?;
        let (_, revisions) = self.get("/api/v1/revisions")?;
        let plan = (code == 200).then_some(plan);
        Model::from_api(&status, plan.as_deref(), &drift, &revisions)
            .map_err(|e| format!("unexpected answer from the daemon: {e}"))
    }

    fn act(&mut self, action: &Action) -> Result<String, String> {
        let Some(token) = &self.token else {
            return Err(
                "actions need the daemon's token: pass --token-file or set PLATFORMD_TOKEN".into(),
            );
        };
        let (path, body) = match action {
            Action::Sync => ("/api/v1/sync", String::new()),
            Action::Rollback(rev) => (
                "/api/v1/rollback",
                serde_json::json!({ "revision": rev }).to_string(),
            ),
            Action::Resume => ("/api/v1/resume", String::new()),
            Action::CorrectDrift(None) => ("/api/v1/sync?correct=all", String::new()),
            Action::CorrectDrift(Some(address)) => {
                let path = format!("/api/v1/sync?correct={address}");
                return post(&self.authority, &path, token, "");
            }
            Action::Quit | Action::PreviewRollback(_) => return Ok(String::new()),
        };
        post(&self.authority, path, token, &body)
    }
}

/// POSTs to a token-protected endpoint; the daemon's `message` or `error`.
fn post(authority: &str, path: &str, token: &str, body: &str) -> Result<String, String> {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (code, body) = tui::http::request(authority, "POST", path, &headers, body.as_bytes())?;
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    match (code, answer["message"].as_str(), answer["error"].as_str()) {
        (200, Some(m), _) => Ok(m.to_string()),
        (_, _, Some(e)) => Err(e.to_string()),
        (code, _, _) => Err(format!("the daemon answered {code}")),
    }
}

/// Reads a state directory; no actions (they need the daemon's reconcile loop).
#[derive(Clone)]
struct StoreSource {
    dir: PathBuf,
}

impl Source for StoreSource {
    fn rollback_plan(&mut self, revision: &str) -> Result<planner::Plan, String> {
        let store = Store::open(&self.dir).map_err(|e| e.to_string())?;
        let (full, snapshot) = store
            .snapshot(revision)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no applied revision `{revision}`"))?;
        crate::state::plan_against_store(&store, &snapshot, &full, Vec::new())
            .map(|(_, p)| p)
            .map_err(|e| e.to_string())
    }

    fn fetch(&mut self) -> Result<Model, String> {
        let store = Store::open(&self.dir).map_err(|e| e.to_string())?;
        let e = |e: crate::store::StoreError| e.to_string();
        let revisions: Vec<Revision> = store.revisions(200).map_err(e)?;
        let status = Status {
            stack: store.stack_name().map_err(e)?,
            source: format!("state directory {} (read-only)", self.dir.display()),
            tracked_revision: revisions.first().map(|r| r.revision.clone()),
            applied_revision: store.applied_revision().map_err(e)?,
            sync_state: "read-only".into(),
            pinned_revision: store.pinned_revision().map_err(e)?,
            resources: store.resource_counts().map_err(e)?,
            ..Status::default()
        };
        let drift = store.last_drift_findings().map_err(e)?;
        Ok(Model {
            status,
            plan: None,
            drift,
            revisions,
        })
    }

    fn act(&mut self, _action: &Action) -> Result<String, String> {
        Err("actions need a running daemon: open the UI with --connect URL".into())
    }
}

pub fn run(connect: Option<&str>, token_file: Option<&Path>, state_dir: &Path) -> Result<u8> {
    match connect {
        Some(url) => {
            let authority = tui::http::authority(url).map_err(anyhow::Error::msg)?;
            let token = match token_file {
                Some(f) => Some(std::fs::read_to_string(f)?.trim().to_string()),
                None => std::env::var("PLATFORMD_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty()),
            };
            tui::terminal::run(ApiSource { authority, token }, false)?;
        }
        None => {
            anyhow::ensure!(
                Store::exists(state_dir),
                "no store in {}: pass --connect URL or --state-dir DIR",
                state_dir.display()
            );
            tui::terminal::run(
                StoreSource {
                    dir: state_dir.to_path_buf(),
                },
                true,
            )?;
        }
    }
    Ok(0)
}
