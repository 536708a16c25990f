//! Recorded AWS answers for the paths moto does not implement (SageMaker's UpdateEndpoint) and
//! for faults a real service produces but an emulator does not (throttling, 5xx, access
//! denied): an HTTP client for the SDK that answers each request with the next recorded
//! response of an AWS JSON protocol service and keeps every request for the test to check.
//! This is the SDK's own test support (`aws_smithy_http_client::test_util`), so the driver's
//! real serialisers, deserialisers and error parsing run.

use aws_smithy_http_client::test_util::infallible_client_fn;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One answer: HTTP status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn ok(body: serde_json::Value) -> Answer {
        Answer {
            status: 200,
            body: body.to_string(),
        }
    }

    /// A service error as AWS JSON protocols send it (`__type` and message).
    pub fn error(status: u16, code: &str, message: &str) -> Answer {
        Answer {
            status,
            body: serde_json::json!({ "__type": code, "message": message }).to_string(),
        }
    }
}

/// A request the driver sent: its operation (from `X-Amz-Target`, `SageMaker.UpdateEndpoint` →
/// `UpdateEndpoint`) and its JSON body.
#[derive(Debug, Clone)]
pub struct Sent {
    pub operation: String,
    pub body: serde_json::Value,
}

#[derive(Clone, Default)]
pub struct Recorded {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    sent: Arc<Mutex<Vec<Sent>>>,
}

impl Recorded {
    pub fn new(answers: impl IntoIterator<Item = Answer>) -> Recorded {
        Recorded {
            answers: Arc::new(Mutex::new(answers.into_iter().collect())),
            sent: Arc::default(),
        }
    }

    /// The client to give the SDK. A request beyond the recording is answered with a 599 the
    /// driver reports, so the test sees it in `sent` rather than hanging.
    pub fn http_client(&self) -> aws_sdk_s3::config::SharedHttpClient {
        let me = self.clone();
        infallible_client_fn(
            move |request: http::Request<aws_sdk_s3::primitives::SdkBody>| {
                let operation = request
                    .headers()
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
                    .unwrap_or_default();
                let body = request
                    .body()
                    .bytes()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(serde_json::Value::Null);
                me.sent.lock().unwrap().push(Sent { operation, body });
                let answer = me.answers.lock().unwrap().pop_front().unwrap_or(Answer {
                    status: 599,
                    body: r#"{"__type":"NotRecorded","message":"no recorded answer left"}"#.into(),
                });
                http::Response::builder()
                    .status(answer.status)
                    .header("content-type", "application/x-amz-json-1.1")
                    .body(answer.body)
                    .unwrap()
            },
        )
    }

    /// The operations sent so far, in order.
    pub fn operations(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.operation.clone())
            .collect()
    }

    /// The body of the `n`th request for `operation` (0-based).
    pub fn body(&self, operation: &str, n: usize) -> serde_json::Value {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.operation == operation)
            .nth(n)
            .map(|s| s.body.clone())
            .unwrap_or_else(|| panic!("no request {n} for {operation}"))
    }

    /// Recorded answers not used.
    pub fn unused(&self) -> usize {
        self.answers.lock().unwrap().len()
    }
}
