//! `platformd plan --post-comment`: the Markdown plan as a pull-request comment, created once
//! and then updated in place (found by a hidden marker naming the stack), through the GitHub
//! REST API. The token comes from `GITHUB_TOKEN`; repository, pull request and API base from
//! flags or the variables GitHub Actions sets (`GITHUB_REPOSITORY`, `GITHUB_REF`,
//! `GITHUB_API_URL`).

use anyhow::{Context, Result, anyhow, bail};
use std::time::Duration;

/// Where the comment goes.
pub struct PullRequest {
    pub api: String,
    pub repo: String,
    pub number: u64,
    token: String,
}

impl PullRequest {
    /// From `--github-repo` / `--pr`, else the GitHub Actions environment.
    pub fn from_env(repo: Option<&str>, number: Option<u64>) -> Result<PullRequest> {
        let repo = match repo {
            Some(r) => r.to_string(),
            None => std::env::var("GITHUB_REPOSITORY").map_err(|_| {
                anyhow!("--post-comment needs --github-repo OWNER/REPO (or GITHUB_REPOSITORY)")
            })?,
        };
        let number = match number {
            Some(n) => n,
            None => std::env::var("GITHUB_REF")
                .ok()
                .and_then(|r| {
                    r.strip_prefix("refs/pull/")
                        .and_then(|rest| rest.split('/').next())
                        .and_then(|n| n.parse().ok())
                })
                .ok_or_else(|| {
                    anyhow!("--post-comment needs --pr NUMBER (or GITHUB_REF=refs/pull/N/…)")
                })?,
        };
        let token = std::env::var("GITHUB_TOKEN")
            .map_err(|_| anyhow!("--post-comment needs a token in GITHUB_TOKEN"))?;
        let api = std::env::var("GITHUB_API_URL")
            .unwrap_or_else(|_| "https://api.github.com".into())
            .trim_end_matches('/')
            .to_string();
        Ok(PullRequest {
            api,
            repo,
            number,
            token,
        })
    }

    fn client() -> Result<reqwest::blocking::Client> {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the GitHub client")
    }

    fn request(
        &self,
        client: &reqwest::blocking::Client,
        method: reqwest::Method,
        url: &str,
    ) -> reqwest::blocking::RequestBuilder {
        client
            .request(method, url)
            .bearer_auth(&self.token)
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "platformd")
    }

    /// Creates the stack's plan comment, or updates the one posted before. Returns its URL
    /// and whether it was updated.
    pub fn post_plan(&self, stack: &str, markdown: &str) -> Result<(String, bool)> {
        let marker = format!("<!-- platformd-plan:{stack} -->");
        let body = serde_json::json!({ "body": format!("{marker}\n{markdown}") }).to_string();
        let client = Self::client()?;
        let mut existing = None;
        for page in 1..=50 {
            let url = format!(
                "{}/repos/{}/issues/{}/comments?per_page=100&page={page}",
                self.api, self.repo, self.number
            );
            let response = self
                .request(&client, reqwest::Method::GET, &url)
                .send()
                .map_err(|e| {
                    anyhow!(
                        "cannot list the pull request's comments: {}",
                        e.without_url()
                    )
                })?;
            if !response.status().is_success() {
                bail!(
                    "GitHub answered {} listing comments on {}#{}",
                    response.status(),
                    self.repo,
                    self.number
                );
            }
            let comments: Vec<serde_json::Value> = serde_json::from_str(&response.text()?)
                .context("GitHub's comment list is not JSON")?;
            existing = comments.iter().find_map(|c| {
                c["body"]
                    .as_str()
                    .filter(|b| b.starts_with(&marker))
                    .and_then(|_| c["id"].as_u64())
            });
            if existing.is_some() || comments.len() < 100 {
                break;
            }
        }
        let (method, url) = match existing {
            Some(id) => (
                reqwest::Method::PATCH,
                format!("{}/repos/{}/issues/comments/{id}", self.api, self.repo),
            ),
            None => (
                reqwest::Method::POST,
                format!(
                    "{}/repos/{}/issues/{}/comments",
                    self.api, self.repo, self.number
                ),
            ),
        };
        let response = self
            .request(&client, method, &url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .map_err(|e| anyhow!("cannot post the plan comment: {}", e.without_url()))?;
        if !response.status().is_success() {
            bail!(
                "GitHub answered {} posting the plan comment on {}#{}",
                response.status(),
                self.repo,
                self.number
            );
        }
        let posted: serde_json::Value = serde_json::from_str(&response.text()?).unwrap_or_default();
        Ok((
            posted["html_url"].as_str().unwrap_or(&url).to_string(),
            existing.is_some(),
        ))
    }
}
