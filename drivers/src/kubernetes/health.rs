//! Readiness, by the rules of Argo CD's gitops-engine and kstatus: a Deployment is ready when
//! its controller observed the current generation and updated = desired = available replicas; a
//! `ProgressDeadlineExceeded` condition is a permanent failure; a custom resource is ready on
//! `Ready=True` (and failed on `Ready=False` with a terminal reason); a Job is ready once it runs
//! and failed on `Failed=True`; other objects are ready once they exist.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ready,
    Progressing(String),
    Failed(String),
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(kind))
}

pub fn assess(object: &Value) -> Health {
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = object["status"]["observedGeneration"].as_i64();
    match object["kind"].as_str().unwrap_or("") {
        "Deployment" => {
            if let Some(c) = condition(object, "Progressing")
                && c["reason"].as_str() == Some("ProgressDeadlineExceeded")
            {
                return Health::Failed(format!(
                    "rollout stuck (ProgressDeadlineExceeded): {}",
                    c["message"].as_str().unwrap_or("")
                ));
            }
            if observed.is_none_or(|o| o < generation) {
                return Health::Progressing(
                    "waiting for the controller to observe the change".into(),
                );
            }
            let desired = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let status = &object["status"];
            let count = |k: &str| status[k].as_i64().unwrap_or(0);
            if count("updatedReplicas") < desired {
                return Health::Progressing(format!(
                    "{} of {desired} replicas updated",
                    count("updatedReplicas")
                ));
            }
            if count("replicas") > count("updatedReplicas") {
                return Health::Progressing("old replicas are being replaced".into());
            }
            if count("availableReplicas") < desired {
                return Health::Progressing(format!(
                    "{} of {desired} replicas available",
                    count("availableReplicas")
                ));
            }
            Health::Ready
        }
        "Service" | "ConfigMap" | "HorizontalPodAutoscaler" | "Namespace" | "CronJob" => {
            Health::Ready
        }
        // The Altinity operator reports progress in `status.status`.
        "ClickHouseInstallation" => match object["status"]["status"].as_str() {
            Some("Completed") => Health::Ready,
            Some("Aborted") => Health::Failed("the ClickHouse installation was aborted".into()),
            Some(other) => Health::Progressing(format!("ClickHouse installation {other}")),
            None => Health::Progressing("waiting for the operator".into()),
        },
        // A job is applied once it runs: an apply does not wait hours for a training run to
        // finish, but a run that failed for good is reported.
        "Job" => match condition(object, "Failed") {
            Some(c) if c["status"].as_str() == Some("True") => Health::Failed(format!(
                "the job failed: {} {}",
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )),
            _ => Health::Ready,
        },
        _ => match condition(object, "Ready") {
            Some(c) if c["status"].as_str() == Some("True") => {
                if observed.is_some_and(|o| o < generation) {
                    Health::Progressing("waiting for the operator to observe the change".into())
                } else {
                    Health::Ready
                }
            }
            Some(c) if c["status"].as_str() == Some("False") => {
                let reason = c["reason"].as_str().unwrap_or("");
                let message = format!(
                    "not ready: {} {}",
                    reason,
                    c["message"].as_str().unwrap_or("")
                );
                if matches!(reason, "Failed" | "Error" | "InvalidConfiguration") {
                    Health::Failed(message)
                } else {
                    Health::Progressing(message)
                }
            }
            _ => Health::Progressing("waiting for the Ready condition".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployments_follow_kstatus() {
        let d = |observed: i64, updated: i64, available: i64| {
            json!({ "kind": "Deployment", "metadata": { "generation": 2 }, "spec": { "replicas": 3 },
                    "status": { "observedGeneration": observed, "replicas": 3, "updatedReplicas": updated, "availableReplicas": available } })
        };
        assert!(matches!(assess(&d(1, 3, 3)), Health::Progressing(_)));
        assert!(matches!(assess(&d(2, 2, 3)), Health::Progressing(_)));
        assert!(matches!(assess(&d(2, 3, 2)), Health::Progressing(_)));
        assert_eq!(assess(&d(2, 3, 3)), Health::Ready);
        let stuck = json!({ "kind": "Deployment", "metadata": { "generation": 1 },
            "status": { "conditions": [{ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet has timed out" }] } });
        assert!(
            matches!(assess(&stuck), Health::Failed(m) if m.contains("ProgressDeadlineExceeded"))
        );
    }

    #[test]
    fn custom_resources_need_ready_true() {
        let cr = |status: &str| {
            json!({ "kind": "KafkaTopic", "metadata": { "generation": 1 },
            "status": { "observedGeneration": 1, "conditions": [{ "type": "Ready", "status": status }] } })
        };
        assert_eq!(assess(&cr("True")), Health::Ready);
        assert!(matches!(assess(&cr("Unknown")), Health::Progressing(_)));
        assert!(matches!(
            assess(&json!({ "kind": "KafkaTopic" })),
            Health::Progressing(_)
        ));
    }
}
