//! What Envoy Gateway with Envoy AI Gateway does with one request, read from the objects
//! platformd renders: the AIGatewayRoute whose model matches, the SecurityPolicy on its route
//! (`apiKeyAuth`: keys from the Secrets that External Secrets fills; `authorization`), and the
//! BackendTrafficPolicy rules that charge it. A stand-in as strict as the gateway at the
//! points quotas depend on:
//!
//! - the model header `x-ai-eg-model` is what the AI Gateway extracts from the request body,
//!   never what the caller sent;
//! - a route with an `apiKeyAuth` admits only a key stored in one of its credential Secrets,
//!   read from the configured headers (`Authorization: Bearer <key>` without its scheme); any
//!   other request is a 401;
//! - the client id of the key (its name in the Secret) is written into `forwardClientIDHeader`,
//!   replacing what the caller sent, and the key is removed when `sanitize` is set;
//! - `authorization.defaultAction: Deny` with no rule refuses everything with a 403;
//! - a rate-limit rule charges a request only when every one of its client selectors matches
//!   the request as it is after authentication.
//!
//! Sources: Envoy Gateway's SecurityPolicy API (`apiKeyAuth`, `authorization`) and
//! BackendTrafficPolicy `rateLimit.global.rules[].clientSelectors` ("all individual select
//! conditions must hold"); Envoy's `api_key_auth` filter.

use serde_json::Value;
use std::collections::BTreeMap;

/// Why the gateway refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No route serves the model.
    NoRoute,
    /// 401: no key, or a key no credential Secret of the route holds.
    Unauthorized,
    /// 403: the route's authorization denies the request.
    Forbidden,
}

/// A rate-limit rule a request is charged to: the policy, and the rule's place in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Charge {
    pub policy: String,
    pub rule: usize,
}

/// A request the gateway let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The route (AIGatewayRoute, and the HTTPRoute made from it) that serves it.
    pub route: String,
    /// The headers the runtime receives, names lowercased.
    pub headers: BTreeMap<String, String>,
    /// Every rate-limit rule it counts against.
    pub charged: Vec<Charge>,
}

pub struct Gateway {
    objects: Vec<Value>,
    /// Secret name → key → value, as External Secrets fills them.
    secrets: BTreeMap<String, BTreeMap<String, String>>,
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str())
}

impl Gateway {
    /// The gateway in front of `objects` (one namespace), with each ExternalSecret's Secret
    /// filled from `store(store_name, remote_key)` the way External Secrets does.
    pub fn new(objects: &[Value], store: impl Fn(&str, &str) -> Option<String>) -> Gateway {
        let mut secrets: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for doc in objects.iter().filter(|d| d["kind"] == "ExternalSecret") {
            let spec = &doc["spec"];
            let store_name = spec["secretStoreRef"]["name"].as_str().unwrap_or("");
            let target = spec["target"]["name"].as_str().unwrap_or("").to_string();
            let data = secrets.entry(target).or_default();
            for item in spec["data"].as_array().into_iter().flatten() {
                let (Some(key), Some(remote)) = (
                    item["secretKey"].as_str(),
                    item["remoteRef"]["key"].as_str(),
                ) else {
                    continue;
                };
                if let Some(value) = store(store_name, remote) {
                    data.insert(key.to_string(), value);
                }
            }
        }
        Gateway {
            objects: objects.to_vec(),
            secrets,
        }
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |d| d["kind"] == kind)
    }

    fn targets_route(policy: &Value, route: &str) -> bool {
        policy["spec"]["targetRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["kind"] == "HTTPRoute" && t["name"] == route)
    }

    /// A request for `model` with the caller's `headers`.
    pub fn request(&self, model: &str, headers: &[(&str, &str)]) -> Result<Admitted, Refused> {
        let mut headers: BTreeMap<String, String> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        // The AI Gateway sets the model header from the body's `model`.
        headers.insert("x-ai-eg-model".into(), model.to_string());
        let route = self
            .of_kind("AIGatewayRoute")
            .find(|r| {
                r["spec"]["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|rule| rule["matches"].as_array().into_iter().flatten())
                    .flat_map(|m| m["headers"].as_array().into_iter().flatten())
                    .any(|h| {
                        h["type"] == "Exact"
                            && h["name"].as_str().map(str::to_ascii_lowercase)
                                == Some("x-ai-eg-model".into())
                            && h["value"] == model
                    })
            })
            .and_then(|r| r["metadata"]["name"].as_str())
            .ok_or(Refused::NoRoute)?
            .to_string();
        for policy in self
            .of_kind("SecurityPolicy")
            .filter(|p| Self::targets_route(p, &route))
        {
            let spec = &policy["spec"];
            if let Some(auth) = spec.get("apiKeyAuth") {
                self.authenticate(auth, &mut headers)?;
            }
            if let Some(authorization) = spec.get("authorization") {
                let rules = authorization["rules"].as_array().map_or(0, Vec::len);
                if rules == 0 && authorization["defaultAction"] == "Deny" {
                    return Err(Refused::Forbidden);
                }
            }
        }
        let mut charged = Vec::new();
        for policy in self
            .of_kind("BackendTrafficPolicy")
            .filter(|p| Self::targets_route(p, &route))
        {
            let name = policy["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let rules = policy["spec"]["rateLimit"]["global"]["rules"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (i, rule) in rules.iter().enumerate() {
                if Self::selects(rule, &headers) {
                    charged.push(Charge {
                        policy: name.clone(),
                        rule: i,
                    });
                }
            }
        }
        Ok(Admitted {
            route,
            headers,
            charged,
        })
    }

    /// `apiKeyAuth`: the key's client id, written into the forwarded header; the key removed
    /// when sanitized.
    fn authenticate(
        &self,
        auth: &Value,
        headers: &mut BTreeMap<String, String>,
    ) -> Result<(), Refused> {
        let sources: Vec<String> = auth["extractFrom"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| strings(&e["headers"]))
            .map(str::to_ascii_lowercase)
            .collect();
        let presented = sources.iter().find_map(|h| {
            let v = headers.get(h)?;
            Some(v.strip_prefix("Bearer ").unwrap_or(v).to_string())
        });
        let Some(presented) = presented else {
            return Err(Refused::Unauthorized);
        };
        let client = auth["credentialRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["kind"] == "Secret")
            .filter_map(|c| self.secrets.get(c["name"].as_str()?))
            .flat_map(|keys| keys.iter())
            .find(|(_, key)| **key == presented)
            .map(|(client, _)| client.clone())
            .ok_or(Refused::Unauthorized)?;
        if auth["sanitize"] == true {
            for h in &sources {
                headers.remove(h);
            }
        }
        if let Some(forward) = auth["forwardClientIDHeader"].as_str() {
            headers.insert(forward.to_ascii_lowercase(), client);
        }
        Ok(())
    }

    /// Whether every client selector of `rule` holds for `headers` (a rule with none selects
    /// every request).
    fn selects(rule: &Value, headers: &BTreeMap<String, String>) -> bool {
        rule["clientSelectors"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["headers"].as_array().into_iter().flatten())
            .all(|h| {
                let name = h["name"].as_str().unwrap_or("").to_ascii_lowercase();
                let value = headers.get(&name);
                match h["type"].as_str().unwrap_or("Exact") {
                    "Exact" => value.map(String::as_str) == h["value"].as_str(),
                    "Distinct" => value.is_some(),
                    // Not rendered by platformd: refuse to guess.
                    other => panic!("the stand-in does not evaluate `{other}` selectors"),
                }
            })
    }
}
