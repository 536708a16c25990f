//! Reading utilisation from a Prometheus-compatible query API (`GET /api/v1/query`), for the
//! cost controller. A failed or empty query is reported
//! as such and never read as "idle".

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cannot reach the metrics source {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the metrics source answered {status}: {detail}")]
    Refused { status: u16, detail: String },
    #[error("the metrics source's answer is not a Prometheus query result: {0}")]
    Invalid(String),
    #[error("cannot read the bearer token file {path}: {detail}")]
    Token { path: String, detail: String },
}

/// What a query returned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// The largest sample of the result.
    Value(f64),
    /// No series matched: nothing is known.
    NoData,
}

/// Where the cost controller sends its queries, and with which token: the operator's choice
/// (`--metrics-url`, `--metrics-token-file`), never the stack's (`docs/SECURITY.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsEndpoint {
    pub url: String,
    /// A file holding the bearer token (read at query time, never stored).
    pub bearer_token_file: Option<PathBuf>,
}

pub struct Prometheus {
    /// Its URL without a trailing slash.
    endpoint: MetricsEndpoint,
    client: reqwest::Client,
}

impl Prometheus {
    pub fn new(endpoint: &MetricsEndpoint) -> Prometheus {
        Prometheus {
            endpoint: MetricsEndpoint {
                url: endpoint.url.trim_end_matches('/').to_string(),
                bearer_token_file: endpoint.bearer_token_file.clone(),
            },
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Evaluates `promql` now; the answer's largest sample.
    pub async fn query(&self, promql: &str) -> Result<Reading, QueryError> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.endpoint.url),
            &[("query", promql)],
        )
        .map_err(|e| QueryError::Unreachable {
            url: crate::source::redact_url(&self.endpoint.url),
            detail: e.to_string(),
        })?;
        let mut request = self.client.get(url);
        if let Some(path) = &self.endpoint.bearer_token_file {
            // Read at every query (tokens rotate) and never kept.
            let token = std::fs::read_to_string(path).map_err(|e| QueryError::Token {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
            request = request.bearer_auth(token.trim());
        }
        let response = request.send().await.map_err(|e| QueryError::Unreachable {
            url: crate::source::redact_url(&self.endpoint.url),
            detail: e.to_string(),
        })?;
        let status = response.status();
        let body = response.text().await.map_err(|e| QueryError::Unreachable {
            url: crate::source::redact_url(&self.endpoint.url),
            detail: e.to_string(),
        })?;
        if !status.is_success() {
            // Only a Prometheus error message is quoted, and briefly: an answer's body is not
            // published in the status.
            let detail = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(|e| e.chars().take(200).collect()))
                .unwrap_or_else(|| "not a Prometheus error answer".to_string());
            return Err(QueryError::Refused {
                status: status.as_u16(),
                detail,
            });
        }
        parse(&body)
    }
}

/// The largest sample of a query answer (vector or scalar); NaN samples count as no data.
pub fn parse(body: &str) -> Result<Reading, QueryError> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| QueryError::Invalid(e.to_string()))?;
    if v["status"] != "success" {
        return Err(QueryError::Invalid(format!("status {}", v["status"])));
    }
    let data = &v["data"];
    let sample = |pair: &serde_json::Value| -> Result<f64, QueryError> {
        pair[1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| QueryError::Invalid(format!("sample {pair}")))
    };
    let samples: Vec<f64> = match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .ok_or_else(|| QueryError::Invalid("vector without result".into()))?
            .iter()
            .map(|s| sample(&s["value"]))
            .collect::<Result<_, _>>()?,
        Some("scalar") => vec![sample(&data["result"])?],
        other => {
            return Err(QueryError::Invalid(format!(
                "result type {} (write an instant vector or scalar query)",
                other.unwrap_or("missing")
            )));
        }
    };
    Ok(samples
        .into_iter()
        .filter(|x| !x.is_nan())
        .reduce(f64::max)
        .map_or(Reading::NoData, Reading::Value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_their_largest_sample() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"gpu":"0"},"value":[1.0,"3"]},{"metric":{"gpu":"1"},"value":[1.0,"87.5"]}]}}"#;
        assert_eq!(parse(vector).unwrap(), Reading::Value(87.5));
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse(empty).unwrap(), Reading::NoData);
        let nan = r#"{"status":"success","data":{"resultType":"scalar","result":[1.0,"NaN"]}}"#;
        assert_eq!(parse(nan).unwrap(), Reading::NoData);
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse(matrix).is_err());
        assert!(parse("<html>").is_err());
    }
}
