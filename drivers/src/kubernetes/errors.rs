//! API errors as a user can act on them: retryable or not, naming the verb, resource and
//! namespace, the operator to install for a missing custom resource, the other field manager of
//! a conflict.

use crate::DriverError;
use kube::api::GroupVersionKind;

/// The operator that serves a custom resource group.
fn operator_of(group: &str) -> Option<&'static str> {
    Some(match group {
        "external-secrets.io" => "External Secrets Operator (external-secrets.io)",
        "kafka.strimzi.io" => "Strimzi (strimzi.io)",
        "karpenter.sh" => "Karpenter (karpenter.sh)",
        "postgresql.cnpg.io" => "CloudNativePG (cloudnative-pg.io)",
        _ => return None,
    })
}

const MISSING_TYPE: &str = "is not served by the cluster";

/// Whether `e` says an object type is not served (its CRD is not installed).
pub(super) fn is_missing_type(e: &DriverError) -> bool {
    e.message.contains(MISSING_TYPE)
}

pub(super) fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// A discovery failure: the type is not served (a missing CRD names what to install), or the
/// cluster could not be asked.
pub(super) fn discovery(gvk: &GroupVersionKind, e: kube::Error) -> DriverError {
    let what = if gvk.group.is_empty() {
        format!("{}/{}", gvk.version, gvk.kind)
    } else {
        format!("{}/{} {}", gvk.group, gvk.version, gvk.kind)
    };
    match (&e, status_code(&e)) {
        (kube::Error::Discovery(_), _) | (_, Some(404)) => {
            let install = operator_of(&gvk.group)
                .map(|o| format!("; install {o}"))
                .unwrap_or_default();
            DriverError::permanent(format!("{what} {MISSING_TYPE}{install}"))
        }
        _ => classify(e, "discover", &gvk.kind, ""),
    }
}

pub(super) fn api(e: kube::Error, verb: &str, kind: &str, namespace: &str) -> DriverError {
    classify(e, verb, kind, namespace)
}

fn classify(e: kube::Error, verb: &str, kind: &str, namespace: &str) -> DriverError {
    let place = if namespace.is_empty() {
        String::new()
    } else {
        format!(" in namespace {namespace}")
    };
    match e {
        kube::Error::Api(status) => {
            let code = status.code;
            let message = format!(
                "{verb} {kind}{place}: {} ({code} {})",
                status.message, status.reason
            );
            match code {
                403 => DriverError::permanent(format!(
                    "forbidden: platformd may not {verb} {kind}{place}; grant it in the ClusterRole ({})",
                    status.message
                )),
                409 if status.message.contains("conflict") => DriverError::permanent(format!(
                    "{message}; another field manager owns these fields (apply with force, or hand them over)"
                )),
                409 | 429 => DriverError::retryable(message),
                c if c >= 500 => DriverError::retryable(message),
                _ => DriverError::permanent(message),
            }
        }
        // Transport failures and timeouts can clear.
        other => DriverError::retryable(format!("{verb} {kind}{place}: {other}")),
    }
}
