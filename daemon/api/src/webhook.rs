//! The git webhook's signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, as
//! GitHub, GitLab (with a token) and Gitea send it. Checked in constant time.

use hmac::{Hmac, KeyInit, Mac};

/// The webhook signature header.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The signature header value of `body` under `secret`: `sha256=<hex HMAC-SHA256>`. The same
/// form signs the daemon's own outgoing webhook notifications.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC takes keys of any size");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Whether `header` (the header's value, if any) signs `body` with `secret`.
pub fn signature_is_valid(secret: &[u8], header: Option<&[u8]>, body: &[u8]) -> bool {
    let signature = header
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(decode_hex);
    signature.is_some_and(|sig| {
        let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_signature_of_the_body_passes() {
        let good = sign(b"s3cret", b"{}");
        assert_eq!(good.len(), "sha256=".len() + 64);
        assert!(signature_is_valid(b"s3cret", Some(good.as_bytes()), b"{}"));
        assert!(!signature_is_valid(b"other", Some(good.as_bytes()), b"{}"));
        assert!(!signature_is_valid(
            b"s3cret",
            Some(good.as_bytes()),
            b"{ }"
        ));
        assert!(!signature_is_valid(b"s3cret", None, b"{}"));
        for bad in ["sha256=", "sha256=0", "sha256=zz", "sha1=00", "sha256=é1"] {
            assert!(
                !signature_is_valid(b"s3cret", Some(bad.as_bytes()), b"{}"),
                "{bad}"
            );
        }
    }
}
