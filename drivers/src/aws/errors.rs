//! Service errors as a user can act on them: throttling (by code, or HTTP 429), timeouts and
//! every 5xx are retryable (the engine backs off; the SDK's own retries are switched off);
//! access denied names the action and the resource.

use crate::DriverError;
// The error types are aws-smithy's, shared by every service crate (S3, RDS, …).
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// The service's error code (`NoSuchBucket`, `AccessDenied`, …), when it answered.
pub fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.code()
}

/// Throttling as the services spell it.
const THROTTLING: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "BandwidthLimitExceeded",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "RequestTimeoutException",
    "OperationAborted",
];

pub fn classify<E>(e: SdkError<E, HttpResponse>, action: &str, resource: &str) -> DriverError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = e.code().unwrap_or("").to_string();
    let message = e.message().unwrap_or("").to_string();
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            return DriverError::retryable(format!(
                "{action} {resource}: the service could not be reached: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ));
        }
        _ => {}
    }
    let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    match code.as_str() {
        "AccessDenied" | "AccessDeniedException" | "Forbidden" => DriverError::permanent(format!(
            "access denied: platformd may not {action} on {resource}; grant `{action}` to its role ({message})"
        )),
        c if THROTTLING.contains(&c) || status == 429 || status >= 500 => {
            DriverError::retryable(format!("{action} {resource}: {code} {message}"))
        }
        "" => DriverError::retryable(format!(
            "{action} {resource}: {}",
            aws_sdk_s3::error::DisplayErrorContext(&e)
        )),
        _ => DriverError::permanent(format!("{action} {resource}: {code} {message}")),
    }
}
