//! The client of the daemon's API, on reqwest (HTTP and HTTPS through the system's TLS library;
//! an operator may reach a daemon behind a TLS terminator with a private CA).

use crate::routes;
use crate::types::{DriftBody, Reply, ResourcesBody, RevisionsBody, RollbackRequest, Status};
use planner::Plan;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("`{0}` is not an http:// or https:// URL")]
    Url(String),
    #[error("the CA certificate is not PEM: {0}")]
    Certificate(String),
    #[error("cannot reach the daemon at {url}: {detail}")]
    Transport { url: String, detail: String },
    /// The daemon answered with an error (its message, or the HTTP status).
    #[error("{0}")]
    Refused(String),
    #[error("unexpected answer from the daemon at {path}: {detail}")]
    Decode { path: String, detail: String },
}

/// A raw answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
    /// The stack of a daemon that follows many: its endpoints are under
    /// `routes::stack_prefix(stack)`.
    stack: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

impl Client {
    /// A client of the daemon at `url` (`http://host:port` or `https://…`). `token` is sent on
    /// mutating requests; `ca_pem` is trusted in addition to the system's roots.
    pub fn new(
        url: &str,
        token: Option<String>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Client, ClientError> {
        let base = url.trim_end_matches('/').to_string();
        let host = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| ClientError::Url(url.to_string()))?;
        if host.is_empty() || host.starts_with('/') {
            return Err(ClientError::Url(url.to_string()));
        }
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // An action waits for its apply, which may take minutes.
            .timeout(Duration::from_secs(600))
            .no_proxy();
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ClientError::Certificate(e.to_string()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().map_err(|e| ClientError::Transport {
            url: base.clone(),
            detail: e.to_string(),
        })?;
        Ok(Client {
            base,
            token,
            http,
            stack: None,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// This client, speaking to one stack of a daemon that follows many (`--config`).
    pub fn for_stack(&self, stack: &str) -> Client {
        Client {
            stack: Some(stack.to_string()),
            ..self.clone()
        }
    }

    pub fn stack(&self) -> Option<&str> {
        self.stack.as_deref()
    }

    /// The stacks the daemon follows.
    pub fn stacks(&self) -> Result<crate::StacksBody, ClientError> {
        self.get_json(routes::STACKS)
    }

    /// Where `path` is for this client's stack: a single-stack path moved under the stack's
    /// prefix; the daemon-wide paths (health, readiness, the stack list, the OpenAPI document)
    /// as they are.
    fn route(&self, path: &str) -> String {
        let Some(stack) = &self.stack else {
            return path.to_string();
        };
        let (bare, query) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        let moved = if bare == routes::METRICS || bare == routes::WEBHOOK {
            Some(bare)
        } else if [routes::STACKS, routes::OPENAPI].contains(&bare) {
            None
        } else {
            bare.strip_prefix("/api/v1")
        };
        match moved {
            Some(rest) => {
                let mut out = format!("{}{rest}", routes::stack_prefix(stack));
                if let Some(q) = query {
                    out.push('?');
                    out.push_str(q);
                }
                out
            }
            None => path.to_string(),
        }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// One request with the given headers; any status is returned, only transport failures
    /// are errors.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, ClientError> {
        let url = format!("{}{}", self.base, self.route(path));
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| ClientError::Url(format!("{method}: {e}")))?;
        let mut request = self.http.request(method, &url).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: self.base.clone(),
            detail: error_chain(&e),
        };
        let response = request.send().map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.text().map_err(transport)?;
        Ok(Response { status, body })
    }

    fn get(&self, path: &str) -> Result<Response, ClientError> {
        self.request("GET", path, &[], b"")
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.get(path)?;
        if response.status != 200 {
            return Err(refusal(&response));
        }
        decode(path, &response.body)
    }

    pub fn ready(&self) -> bool {
        self.get(routes::READYZ).is_ok_and(|r| r.status == 200)
    }

    /// The Prometheus exposition text.
    pub fn metrics(&self) -> Result<String, ClientError> {
        Ok(self.get(routes::METRICS)?.body)
    }

    pub fn status(&self) -> Result<Status, ClientError> {
        self.get_json(routes::STATUS)
    }

    /// The pending plan; `None` before the first plan.
    pub fn plan(&self) -> Result<Option<Plan>, ClientError> {
        let response = self.get(routes::PLAN)?;
        match response.status {
            200 => decode(routes::PLAN, &response.body).map(Some),
            404 => Ok(None),
            _ => Err(refusal(&response)),
        }
    }

    /// The plan of rolling back to `revision` (a full id or a unique prefix); changes nothing.
    pub fn rollback_preview(&self, revision: &str) -> Result<Plan, ClientError> {
        self.get_json(&format!("{}?rollback={revision}", routes::PLAN))
    }

    pub fn drift(&self) -> Result<DriftBody, ClientError> {
        self.get_json(routes::DRIFT)
    }

    pub fn resources(&self) -> Result<ResourcesBody, ClientError> {
        self.get_json(routes::RESOURCES)
    }

    pub fn revisions(&self) -> Result<RevisionsBody, ClientError> {
        self.get_json(routes::REVISIONS)
    }

    pub fn sync(&self) -> Result<String, ClientError> {
        self.act(routes::SYNC, "")
    }

    /// Scans for drift now and corrects one resource, or every correctable finding.
    pub fn correct_drift(&self, address: Option<&str>) -> Result<String, ClientError> {
        let target = address.unwrap_or("all");
        self.act(&format!("{}?correct={target}", routes::SYNC), "")
    }

    pub fn rollback(&self, revision: &str) -> Result<String, ClientError> {
        let body = serde_json::to_string(&RollbackRequest {
            revision: revision.to_string(),
        })
        .unwrap_or_default();
        self.act(routes::ROLLBACK, &body)
    }

    /// Approves exactly the plan `plan_hash` for `revision`.
    pub fn approve(&self, revision: &str, plan_hash: &str) -> Result<String, ClientError> {
        let body = serde_json::to_string(&crate::ApproveRequest {
            revision: revision.to_string(),
            plan_hash: plan_hash.to_string(),
        })
        .unwrap_or_default();
        self.act(routes::APPROVE, &body)
    }

    /// Brings a resource the cost controller scaled down back.
    pub fn wake(&self, address: &str) -> Result<String, ClientError> {
        let body = serde_json::to_string(&crate::WakeRequest {
            address: address.to_string(),
        })
        .unwrap_or_default();
        self.act(routes::WAKE, &body)
    }

    pub fn resume(&self) -> Result<String, ClientError> {
        self.act(routes::RESUME, "")
    }

    /// POSTs to a token-protected endpoint; the daemon's message, or its error.
    fn act(&self, path: &str, body: &str) -> Result<String, ClientError> {
        let Some(token) = &self.token else {
            return Err(ClientError::Refused(
                "actions need the daemon's token: pass --token-file or set PLATFORMD_TOKEN".into(),
            ));
        };
        let auth = format!("Bearer {token}");
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        let response = self.request("POST", path, &headers, body.as_bytes())?;
        let reply: Reply = serde_json::from_str(&response.body).unwrap_or_default();
        match (response.status, reply.message) {
            (200, Some(message)) => Ok(message),
            _ => Err(refusal(&response)),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(path: &str, body: &str) -> Result<T, ClientError> {
    serde_json::from_str(body).map_err(|e| ClientError::Decode {
        path: path.to_string(),
        detail: e.to_string(),
    })
}

/// The daemon's `error`, or its status code.
fn refusal(response: &Response) -> ClientError {
    let reply: Reply = serde_json::from_str(&response.body).unwrap_or_default();
    ClientError::Refused(
        reply
            .error
            .unwrap_or_else(|| format!("the daemon answered {}", response.status)),
    )
}

/// reqwest's message and its causes ("error sending request: … certificate verify failed").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod route_tests {
    use super::*;

    #[test]
    fn a_stack_client_moves_the_single_stack_paths_under_its_prefix() {
        let c = Client::new("http://127.0.0.1:1", None, None)
            .unwrap()
            .for_stack("prod-eu");
        assert_eq!(c.route(routes::STATUS), "/api/v1/stacks/prod-eu/status");
        assert_eq!(
            c.route("/api/v1/plan?rollback=abc"),
            "/api/v1/stacks/prod-eu/plan?rollback=abc"
        );
        assert_eq!(c.route(routes::METRICS), "/api/v1/stacks/prod-eu/metrics");
        assert_eq!(c.route(routes::WEBHOOK), "/api/v1/stacks/prod-eu/hooks/git");
        assert_eq!(c.route(routes::STACKS), routes::STACKS);
        assert_eq!(c.route(routes::READYZ), routes::READYZ);
        let plain = Client::new("http://127.0.0.1:1", None, None).unwrap();
        assert_eq!(plain.route(routes::STATUS), routes::STATUS);
    }
}
