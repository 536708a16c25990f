//! Drift: differences between what a driver expects live and what it observes, on the fields
//! platformd manages (those present in the expected document) only. Fields added by other
//! systems (status, defaults, other controllers' annotations) are not drift.

use serde_json::Value;

/// A managed field whose live value differs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FieldDrift {
    pub path: String,
    pub expected: Value,
    pub live: Option<Value>,
}

/// Managed fields of `expected` that differ in `live`, skipping paths under `ignored`.
pub fn managed_differences(expected: &Value, live: &Value, ignored: &[String]) -> Vec<FieldDrift> {
    let mut out = Vec::new();
    walk("", expected, Some(live), ignored, &mut out);
    out
}

fn walk(
    path: &str,
    expected: &Value,
    live: Option<&Value>,
    ignored: &[String],
    out: &mut Vec<FieldDrift>,
) {
    if ignored
        .iter()
        .any(|i| path == i || path.starts_with(&format!("{i}.")))
    {
        return;
    }
    match (expected, live) {
        (Value::Object(e), Some(Value::Object(l))) => {
            for (k, v) in e {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(&p, v, l.get(k), ignored, out);
            }
        }
        // Lists are compared element-wise when both sides are lists of the same length, so a
        // change inside one container is reported at its path.
        (Value::Array(e), Some(Value::Array(l))) if e.len() == l.len() => {
            for (i, (ev, lv)) in e.iter().zip(l).enumerate() {
                walk(&format!("{path}[{i}]"), ev, Some(lv), ignored, out);
            }
        }
        (e, l) if Some(e) == l => {}
        // Numbers written as strings by hand ("3" for 3) are the same value.
        (e, Some(l)) if e.to_string().trim_matches('"') == l.to_string().trim_matches('"') => {}
        (e, l) => out.push(FieldDrift {
            path: path.to_string(),
            expected: e.clone(),
            live: l.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_managed_fields_count() {
        let expected =
            json!({"spec": {"replicas": 3, "template": {"containers": [{"image": "a:1"}]}}});
        let live = json!({"spec": {"replicas": 5, "paused": false, "template": {"containers": [{"image": "a:1", "tty": true}]}}, "status": {}});
        let d = managed_differences(&expected, &live, &[]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "spec.replicas");
        assert!(managed_differences(&expected, &live, &["spec.replicas".into()]).is_empty());
        let gone = managed_differences(&expected, &json!({"spec": {}}), &[]);
        assert_eq!(
            gone.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(),
            ["spec.replicas", "spec.template"]
        );
    }
}
