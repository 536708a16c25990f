//! Secret hygiene: literal values that look like credentials are refused, and secret references
//! must name a known store. platformd never reads a secret value; it passes references on.

use crate::suggest;

/// Secret stores a `secret="scheme:path"` reference may name.
pub const SECRET_SCHEMES: &[&str] = &["aws-sm", "aws-ssm", "vault", "gcp-sm", "azure-kv", "k8s"];

/// Env variable names that hold credentials by convention.
const SECRET_NAME_PARTS: &[&str] = &[
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
    "ACCESS_KEY",
];

/// Why a literal looks like a secret, or `None`.
pub fn literal_looks_secret(value: &str) -> Option<&'static str> {
    let v = value.trim();
    // Every value of a stack is asked, and almost none is a credential: the prefix checks
    // below all start with one of these bytes, the URL check needs a colon.
    let first = v.as_bytes().first().copied().unwrap_or(0);
    let has_colon = v.as_bytes().contains(&b':');
    let long = v.len() >= 32;
    if !matches!(
        first,
        b's' | b'r' | b'g' | b'x' | b'h' | b'-' | b'A' | b'e' | b'n' | b'{'
    ) && !has_colon
        && !long
    {
        return None;
    }
    let prefixes: &[(&str, &str)] = &[
        ("sk_live_", "a Stripe live secret key"),
        ("rk_live_", "a Stripe restricted key"),
        ("ghp_", "a GitHub personal access token"),
        ("github_pat_", "a GitHub personal access token"),
        ("gho_", "a GitHub OAuth token"),
        ("ghs_", "a GitHub app installation token"),
        ("ghu_", "a GitHub app user token"),
        ("ghr_", "a GitHub refresh token"),
        ("xoxa-", "a Slack app token"),
        ("xoxr-", "a Slack refresh token"),
        ("xapp-", "a Slack app-level token"),
        ("npm_", "an npm access token"),
        ("AIza", "a Google API key"),
        ("xoxb-", "a Slack bot token"),
        ("xoxp-", "a Slack user token"),
        ("glpat-", "a GitLab access token"),
        ("hf_", "a Hugging Face token"),
        ("-----BEGIN", "a PEM private key or certificate"),
    ];
    for (prefix, what) in prefixes {
        if prefix.as_bytes()[0] == first && v.starts_with(prefix) && v.len() >= prefix.len() + 8 {
            return Some(what);
        }
    }
    // A JSON Web Token: three base64url parts, the first a JSON header (`{"` is `eyJ`).
    if first == b'e'
        && v.starts_with("eyJ")
        && v.len() >= 30
        && v.split('.').count() == 3
        && v.split('.').all(|part| {
            part.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
    {
        return Some("a JSON Web Token");
    }
    if first == b'{' && v.contains("private_key") {
        return Some("a Google Cloud service-account key");
    }
    if long
        && ["AccountKey=", "SharedAccessKey=", "SharedAccessSignature="]
            .iter()
            .any(|k| v.contains(k))
    {
        return Some("an Azure storage or Service Bus key");
    }
    if long && looks_generated(v) {
        return Some("a high-entropy string (it looks like a generated key)");
    }
    if v.starts_with("sk-") && v.len() >= 20 && !v.contains(' ') {
        return Some("an API secret key");
    }
    let is_aws_key = v.len() == 20
        && (v.starts_with("AKIA") || v.starts_with("ASIA"))
        && v.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if is_aws_key {
        return Some("an AWS access key id");
    }
    if !has_colon {
        return None;
    }
    // The first `://`, found from the colons (a byte search) rather than by a substring
    // search set up for every value of the stack.
    let scheme_end = v
        .match_indices(':')
        .map(|(at, _)| at)
        .find(|&at| v[at..].starts_with("://"));
    if let Some(at) = scheme_end
        && let (scheme, rest) = (&v[..at], &v[at + 3..])
        && !scheme.is_empty()
        && let Some(authority) = rest.split('/').next()
        && let Some((userinfo, _host)) = authority.rsplit_once('@')
        && let Some((_user, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        return Some("a URL with an embedded password");
    }
    if v.contains("hooks.slack.com/services/") || v.contains("hooks.slack.com/workflows/") {
        return Some("a Slack webhook URL (the URL is the credential)");
    }
    None
}

/// A long run of key characters (base64 and base64url) mixing upper and lower case and digits,
/// with the entropy of random text: generated keys, not words, names, digests (hex has no upper
/// case) or paths.
fn looks_generated(v: &str) -> bool {
    let bytes = v.as_bytes();
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
    {
        return false;
    }
    let has = |f: fn(&u8) -> bool| bytes.iter().any(f);
    if !(has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase) && has(u8::is_ascii_digit)) {
        return false;
    }
    // Paths and names are words between slashes and dashes: a key has long runs without them.
    if bytes
        .split(|&b| b == b'/' || b == b'-' || b == b'_')
        .all(|part| part.len() < 20)
    {
        return false;
    }
    let mut counts = [0u32; 128];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let n = bytes.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    entropy >= 4.3
}

/// Whether an env variable name says it holds a credential.
pub fn name_looks_secret(name: &str) -> bool {
    // Compared without case, in place: every env variable of a stack is asked.
    let name = name.as_bytes();
    let contains = |part: &str| {
        name.windows(part.len())
            .any(|w| w.eq_ignore_ascii_case(part.as_bytes()))
    };
    SECRET_NAME_PARTS.iter().any(|p| contains(p))
        || (name.len() >= 4 && name[name.len() - 4..].eq_ignore_ascii_case(b"_KEY"))
        || name.eq_ignore_ascii_case(b"KEY")
}

/// Checks a `scheme:path` reference; the error is a label and a help line.
pub fn check_reference(reference: &str) -> Result<(), (String, String)> {
    let Some((scheme, path)) = reference.split_once(':') else {
        return Err((
            "not a secret reference".to_string(),
            "write references as `scheme:path`, e.g. `aws-sm:prod/checkout/stripe`".to_string(),
        ));
    };
    if !SECRET_SCHEMES.contains(&scheme) {
        return Err((
            "unknown secret store".to_string(),
            suggest::help_for(scheme, SECRET_SCHEMES, "secret stores"),
        ));
    }
    if path.trim().is_empty() {
        return Err((
            "missing path".to_string(),
            format!("name the secret: `{scheme}:prod/app/name`"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_credentials_but_not_ordinary_values() {
        assert!(literal_looks_secret("sk_live_51HxYzAbCdEf").is_some());
        assert!(literal_looks_secret("AKIAIOSFODNN7EXAMPLE").is_some());
        assert!(literal_looks_secret("postgres://app:hunter2@db:5432/x").is_some());
        assert!(literal_looks_secret("postgres://db:5432/x").is_none());
        assert!(literal_looks_secret("info").is_none());
        assert!(literal_looks_secret("https://api.example.com").is_none());
        assert!(name_looks_secret("STRIPE_KEY") && name_looks_secret("DB_PASSWORD"));
        assert!(!name_looks_secret("LOG_LEVEL") && !name_looks_secret("KEYCLOAK_URL"));
        assert!(check_reference("aws-sm:prod/x").is_ok());
        assert!(check_reference("aws-secrets:prod/x").is_err());
    }

    /// The shapes a review found missed (they reached the store and rendered files), each
    /// detected, and the ordinary long values of a stack left alone.
    #[test]
    fn detects_tokens_keys_and_webhook_urls_of_every_common_shape() {
        let found = [
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            r#"{"type": "service_account", "project_id": "acme", "private_key_id": "abc", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE"}"#,
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=Zm9vYmFyYmF6cXV4cXV1eA==;EndpointSuffix=core.windows.net",
            "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
            "npm_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ",
            "q8Xz3Lp0Vb7Nm2Kd9Rt5Wy1Hc6Gf4Js8AeUo2Ti7",
        ];
        for value in found {
            assert!(literal_looks_secret(value).is_some(), "missed {value}");
        }
        let ordinary = [
            "ghcr.io/acme/checkout-api:1.4.2",
            "meta-llama/Llama-3.1-8B-Instruct",
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "sum(rate(vllm:request_success_total{service=\"{name}\"}[5m]))",
            "arn:aws:iam::123456789012:role/platform-gpu-nodes",
            "https://prometheus.monitoring.svc.cluster.local:9090/api/v1/query",
            "s3://acme-data-lake-prod/events/year=2026/month=12/",
            "checkout-payments-orders-events-v2-consumer-group",
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ",
        ];
        for value in ordinary {
            assert!(literal_looks_secret(value).is_none(), "flagged {value}");
        }
    }
}
