//! The UI's source of data against a running daemon: its HTTP API, through the `api` crate's
//! client (HTTP or HTTPS).

use crate::app::Action;
use crate::model::Model;
use crate::terminal::{Source, SourceError};
use api::{Client, Plan};

#[derive(Clone)]
pub struct ApiSource {
    client: Client,
}

impl ApiSource {
    pub fn new(client: Client) -> ApiSource {
        ApiSource { client }
    }
}

impl Source for ApiSource {
    fn fetch(&mut self) -> Result<Model, SourceError> {
        Model::fetch(&self.client).map_err(|e| SourceError(e.to_string()))
    }

    fn act(&mut self, action: &Action) -> Result<String, SourceError> {
        let result = match action {
            Action::Sync => self.client.sync(),
            Action::Rollback(revision) => self.client.rollback(revision),
            Action::Resume => self.client.resume(),
            Action::CorrectDrift(address) => self.client.correct_drift(address.as_deref()),
            Action::Approve {
                revision,
                plan_hash,
            } => self.client.approve(revision, plan_hash),
            Action::Wake(address) => self.client.wake(address),
            Action::Quit | Action::PreviewRollback(_) => return Ok(String::new()),
        };
        result.map_err(|e| SourceError(e.to_string()))
    }

    fn rollback_plan(&mut self, revision: &str) -> Result<Plan, SourceError> {
        self.client
            .rollback_preview(revision)
            .map_err(|e| SourceError(e.to_string()))
    }
}
