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
    if !matches!(first, b's' | b'r' | b'g' | b'x' | b'h' | b'-' | b'A') && !has_colon {
        return None;
    }
    let prefixes: &[(&str, &str)] = &[
        ("sk_live_", "a Stripe live secret key"),
        ("rk_live_", "a Stripe restricted key"),
        ("ghp_", "a GitHub personal access token"),
        ("github_pat_", "a GitHub personal access token"),
        ("gho_", "a GitHub OAuth token"),
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
    None
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
}
