//! The git webhook's signature check on any secret, header and body: never a panic, never a
//! pass for a header that is not the body's exact HMAC, always a pass for the exact one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (secret, rest) = rest.split_at((split as usize).min(rest.len()));
    let (header, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let exact = api::webhook::sign(secret, body);
    let valid = api::webhook::signature_is_valid(secret, Some(header), body);
    // Hex digits may be upper case; anything else that passes is a forgery.
    assert_eq!(
        valid,
        header.eq_ignore_ascii_case(exact.as_bytes()) && header.starts_with(b"sha256="),
        "header {header:?}"
    );
    assert!(api::webhook::signature_is_valid(
        secret,
        Some(exact.as_bytes()),
        body
    ));
});
