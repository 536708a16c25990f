//! Signer validity (`docs/SECURITY.md`, "Signed history only moves forward"): an
//! `allowed_signers` line's `valid-after`, `valid-before` and `namespaces`, and an OpenPGP key's
//! expiry and revocation, judged at the time the signed object says it was made, as git does.
//! Keys and signatures are made with the real `ssh-keygen`, `gpg` and `git`.

use daemon::source::verify::{Verifier, VerifyMode};
use std::path::Path;
use test_support::tool;

/// 2025-06-01T00:00:00Z.
const JUNE_2025: i64 = 1_748_736_000;

#[test]
fn allowed_signers_options_bound_what_an_ssh_key_may_sign() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tool(
        d,
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", "key"],
        &[],
    );
    let public = std::fs::read_to_string(d.join("key.pub")).unwrap();
    let public = public.trim();
    let data = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nsigned\n";
    std::fs::write(d.join("data"), data).unwrap();
    tool(
        d,
        "ssh-keygen",
        &["-Y", "sign", "-n", "git", "-f", "key", "data"],
        &[],
    );
    let signature = std::fs::read(d.join("data.sig")).unwrap();
    let verify = |options: &str| {
        let line = format!("ops@acme.example {options} {public}");
        Verifier::new(VerifyMode::Head, Some(&line), None)
            .unwrap()
            .verify(&signature, data, JUNE_2025)
    };
    assert_eq!(verify("").unwrap(), "ops@acme.example");
    assert_eq!(
        verify(r#"valid-after="20250101",valid-before="20260101""#).unwrap(),
        "ops@acme.example"
    );
    assert_eq!(
        verify(r#"namespaces="file,git""#).unwrap(),
        "ops@acme.example"
    );
    let refused = [
        (r#"valid-before="20250101""#, "valid only before 2025-01-01"),
        (r#"valid-after="20260101Z""#, "valid only after 2026-01-01"),
        (
            r#"valid-after="202506010001""#,
            "valid only after 2025-06-01 00:01",
        ),
        (r#"namespaces="file""#, "may not sign git objects"),
    ];
    for (options, why) in refused {
        let err = verify(options).unwrap_err();
        assert!(err.to_string().contains(why), "{options}: {err}");
    }
    // Options platformd cannot honour are refused when the file is read, not ignored.
    for (options, why) in [
        ("cert-authority", "cert-authority is not supported"),
        (r#"valid-after="2025""#, "is not YYYYMMDD"),
        ("no-touch-required", "unknown option `no-touch-required`"),
    ] {
        let line = format!("ops@acme.example {options} {public}");
        let err = Verifier::new(VerifyMode::Head, Some(&line), None).unwrap_err();
        assert!(err.to_string().contains(why), "{options}: {err}");
    }

    // Through git: a commit is judged at its committer's time.
    let repo = d.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        tool(
            &repo,
            "git",
            args,
            &[
                ("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z"),
                ("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z"),
            ],
        )
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("a.kdl"), "// a\n").unwrap();
    git(&["add", "-A"]);
    let signing_key = format!("user.signingkey={}", d.join("key").display());
    git(&[
        "-c",
        "user.name=ops",
        "-c",
        "user.email=ops@acme.example",
        "-c",
        "gpg.format=ssh",
        "-c",
        &signing_key,
        "commit",
        "-q",
        "-S",
        "-m",
        "signed in 2020",
    ]);
    let head = git(&["rev-parse", "HEAD"]);
    let repository = gix::open(&repo).unwrap();
    let id = gix::ObjectId::from_hex(head.trim().as_bytes()).unwrap();
    let check = |options: &str| {
        let line = format!("ops@acme.example {options} {public}");
        Verifier::new(VerifyMode::Head, Some(&line), None)
            .unwrap()
            .check(&repository, id)
    };
    assert_eq!(check("").unwrap(), "ops@acme.example");
    assert_eq!(
        check(r#"valid-before="20210101""#).unwrap(),
        "ops@acme.example"
    );
    let err = check(r#"valid-after="20240101""#).unwrap_err();
    assert!(
        err.to_string().contains("valid only after 2024-01-01"),
        "{err}"
    );
}

#[test]
fn an_expired_or_revoked_openpgp_key_vouches_for_nothing_it_should_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let home = d.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let home = home.to_str().unwrap().to_string();
    let gpg_at = |time: &str, args: &[&str]| {
        let mut all = vec![
            "--homedir",
            &home,
            "--batch",
            "--passphrase",
            "",
            "--pinentry-mode",
            "loopback",
            "--faked-system-time",
            time,
        ];
        all.extend_from_slice(args);
        tool(d, "gpg", &all, &[])
    };
    gpg_at(
        "20240101T000000",
        &[
            "--quick-gen-key",
            "Release Bot <release@acme.example>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    let listing = gpg_at("20240101T010000", &["--with-colons", "--list-secret-keys"]);
    let fingerprint = listing
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .unwrap()
        .to_string();
    let data = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nrelease\n";
    std::fs::write(d.join("data"), data).unwrap();
    let sign_at = |time: &str, out: &str| {
        gpg_at(
            time,
            &[
                "--armor",
                "--detach-sign",
                "--local-user",
                &fingerprint,
                "--output",
                out,
                "data",
            ],
        );
        std::fs::read(d.join(out)).unwrap()
    };
    let early = sign_at("20240115T000000", "early.asc");
    let late = sign_at("20240301T000000", "late.asc");
    // The key is then given an expiry: a day after 2024-02-01.
    gpg_at(
        "20240201T000000",
        &["--quick-set-expire", &fingerprint, "1d"],
    );
    let export = || gpg_at("20240201T010000", &["--armor", "--export", &fingerprint]);
    let expiring = Verifier::new(VerifyMode::Head, None, Some(&export())).unwrap();
    assert!(
        expiring
            .verify(&early, data, 0)
            .unwrap()
            .contains("release@acme.example")
    );
    let err = expiring.verify(&late, data, 0).unwrap_err();
    assert!(err.to_string().contains("expired at 2024-02-02"), "{err}");

    // Revoked with the certificate gpg made with the key: nothing it signed is trusted.
    let certificate = std::fs::read_to_string(
        Path::new(&home)
            .join("openpgp-revocs.d")
            .join(format!("{fingerprint}.rev")),
    )
    .unwrap()
    .replace(":-----BEGIN", "-----BEGIN");
    std::fs::write(d.join("revocation.asc"), certificate).unwrap();
    gpg_at("20240202T000000", &["--import", "revocation.asc"]);
    let revoked = Verifier::new(VerifyMode::Head, None, Some(&export())).unwrap();
    let err = revoked.verify(&early, data, 0).unwrap_err();
    assert!(err.to_string().contains("is revoked"), "{err}");
}
