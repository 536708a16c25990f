//! Signed commits: only commits (or tags) signed by trusted SSH or OpenPGP keys are applied, and
//! signed history only moves forward.

mod support;

use support::running::{service, work_dir};

use serde_json::Value;
use std::path::Path;
use support::PLATFORM;

use support::running::{Daemon, Remote};
use test_support::net::request as http;

/// Runs a tool in `dir` (`test_support::tool` without extra environment).
fn tool(dir: &Path, program: &str, args: &[&str]) -> String {
    test_support::tool(dir, program, args, &[])
}

/// Makes an ed25519 OpenPGP signing key for `uid` in the keyring `home`; returns its
/// fingerprint.
fn gpg_key(dir: &Path, home: &str, uid: &str) -> String {
    tool(
        dir,
        "gpg",
        &[
            "--homedir",
            home,
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "never",
        ],
    );
    let listing = tool(
        dir,
        "gpg",
        &[
            "--homedir",
            home,
            "--with-colons",
            "--list-secret-keys",
            uid,
        ],
    );
    listing
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .unwrap_or_else(|| panic!("no fingerprint for {uid}: {listing}"))
        .to_string()
}

#[test]
fn only_commits_signed_by_trusted_ssh_or_openpgp_keys_are_applied() {
    let keys = tempfile::tempdir().unwrap();
    let k = keys.path();
    // SSH: a trusted key and a stranger's.
    for name in ["trusted", "stranger"] {
        tool(
            k,
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", name],
        );
    }
    let trusted_pub = std::fs::read_to_string(k.join("trusted.pub")).unwrap();
    std::fs::write(
        k.join("allowed_signers"),
        format!("ops@acme.example {}", trusted_pub.trim()),
    )
    .unwrap();
    // OpenPGP: a release key, in a keyring of the test's own.
    let gnupg = k.join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let home = gnupg.to_str().unwrap();
    // git runs gpg to sign: it finds this keyring through the environment.
    // SAFETY: set before this test starts any thread.
    unsafe { std::env::set_var("GNUPGHOME", home) };
    let fingerprint = gpg_key(k, home, "Release Bot <release@acme.example>");
    let armored = tool(
        k,
        "gpg",
        &["--homedir", home, "--armor", "--export", &fingerprint],
    );
    std::fs::write(k.join("trusted.asc"), armored).unwrap();
    // A second OpenPGP key in the same keyring, which is not exported as trusted.
    let stranger_pgp = gpg_key(k, home, "Mallory <mallory@evil.example>");

    let remote = Remote::new();
    let sign_ssh = |key: &str| {
        vec![
            "-c".to_string(),
            "gpg.format=ssh".to_string(),
            "-c".to_string(),
            format!("user.signingkey={}", k.join(key).display()),
        ]
    };
    let push = |files: &[(&str, &str)], signing: Vec<String>, message: &str| {
        for (p, t) in files {
            remote.work.write(&format!("stack/{p}"), t);
        }
        remote.work.git(&["add", "-A"]);
        let mut args: Vec<String> = signing;
        args.extend(["commit", "-q", "-m", message].map(str::to_string));
        if args.iter().any(|a| a.starts_with("user.signingkey")) {
            args.push("-S".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        remote.work.git(&args);
        remote
            .work
            .git(&["push", "-q", "--force", "origin", "main"]);
        remote.work.git(&["rev-parse", "HEAD"])
    };
    let c1 = push(
        &[("platform.kdl", PLATFORM), ("api.kdl", &service(2))],
        sign_ssh("trusted"),
        "signed by ops",
    );
    let dir = work_dir();
    let signers = k.join("allowed_signers");
    let trusted = k.join("trusted.asc");
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &[
            "--path",
            "stack",
            "--interval",
            "300ms",
            "--verify-commits",
            "head",
            "--allowed-signers",
            signers.to_str().unwrap(),
            "--trusted-keys",
            trusted.to_str().unwrap(),
        ],
        &[],
    );
    daemon.wait_applied(&c1);

    // Unsigned: rejected, and the signed revision stays in force.
    let c2 = push(&[("api.kdl", &service(3))], Vec::new(), "unsigned");
    daemon.wait("c2 rejected", |d| {
        d.status()["tracked_revision"] == c2.as_str()
    });
    let status = daemon.status();
    assert_eq!(status["sync_state"], "rejected", "{status}");
    assert_eq!(status["applied_revision"], c1.as_str());
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("is not signed"),
        "{status}"
    );
    // Signed by a key nobody trusts: rejected too.
    let c3 = push(
        &[("api.kdl", &service(4))],
        sign_ssh("stranger"),
        "a stranger",
    );
    daemon.wait("c3 rejected", |d| {
        d.status()["tracked_revision"] == c3.as_str()
    });
    let status = daemon.status();
    assert_eq!(status["sync_state"], "rejected");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("not in the allowed signers"),
        "{status}"
    );
    assert_eq!(status["applied_revision"], c1.as_str());
    // Signed with the trusted OpenPGP key (git runs gpg to sign; platformd verifies in process).
    let c4 = push(
        &[("api.kdl", &service(5))],
        vec![
            "-c".into(),
            "gpg.program=gpg".into(),
            "-c".into(),
            format!("user.signingkey={fingerprint}"),
        ],
        "signed by the release key",
    );
    daemon.wait_applied(&c4);
    // Signed with an OpenPGP key that is not trusted: rejected.
    let c5 = push(
        &[("api.kdl", &service(6))],
        vec![
            "-c".into(),
            "gpg.program=gpg".into(),
            "-c".into(),
            format!("user.signingkey={stranger_pgp}"),
        ],
        "signed by mallory",
    );
    daemon.wait("c5 rejected", |d| {
        d.status()["tracked_revision"] == c5.as_str()
    });
    let status = daemon.status();
    assert_eq!(status["sync_state"], "rejected", "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("signed by an OpenPGP key that is not trusted"),
        "{status}"
    );
    assert_eq!(status["applied_revision"], c4.as_str());
    // The branch reset to an older commit that is signed by a trusted key: it does not descend
    // from what is applied, so it is refused (a downgrade), and c4 stays in force.
    remote.work.git(&["reset", "-q", "--hard", &c1]);
    remote
        .work
        .git(&["push", "-q", "--force", "origin", "main"]);
    daemon.wait("the reset rejected", |d| {
        d.status()["tracked_revision"] == c1.as_str()
    });
    let status = daemon.status();
    assert_eq!(status["sync_state"], "rejected", "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("does not descend from the applied revision"),
        "{status}"
    );
    assert_eq!(status["applied_revision"], c4.as_str());
    let (_, body) = http(daemon.port, "GET", "/api/v1/revisions", &[], b"");
    let revisions: Value = serde_json::from_str(&body).unwrap();
    let rejected: Vec<&Value> = revisions["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["errors"]
                .as_str()
                .is_some_and(|e| e.starts_with("rejected:"))
        })
        .collect();
    assert!(rejected.len() >= 3, "{revisions}");
}

#[test]
fn in_tag_mode_a_commit_is_applied_once_a_trusted_signed_tag_points_at_it() {
    let keys = tempfile::tempdir().unwrap();
    let k = keys.path();
    tool(
        k,
        "ssh-keygen",
        &[
            "-q", "-t", "ed25519", "-N", "", "-C", "release", "-f", "release",
        ],
    );
    let public = std::fs::read_to_string(k.join("release.pub")).unwrap();
    std::fs::write(
        k.join("allowed_signers"),
        format!("release@acme.example namespaces=\"git\" {}", public.trim()),
    )
    .unwrap();
    let signing = format!("user.signingkey={}", k.join("release").display());
    let remote = Remote::new();
    let c1 = remote.push(
        &[("platform.kdl", PLATFORM), ("api.kdl", &service(2))],
        "release 1",
    );
    remote.work.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &signing,
        "tag",
        "-s",
        "v1",
        "-m",
        "v1",
    ]);
    remote.work.git(&["push", "-q", "origin", "v1"]);
    let dir = work_dir();
    let signers = k.join("allowed_signers");
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &[
            "--path",
            "stack",
            "--interval",
            "300ms",
            "--verify-commits",
            "tag",
            "--allowed-signers",
            signers.to_str().unwrap(),
        ],
        &[],
    );
    daemon.wait_applied(&c1);
    // A commit nobody tagged yet: rejected until its signed tag arrives.
    let c2 = remote.push(&[("api.kdl", &service(3))], "release 2");
    daemon.wait("c2 rejected", |d| d.status()["sync_state"] == "rejected");
    assert!(
        daemon.status()["last_error"]
            .as_str()
            .unwrap()
            .contains("has no annotated tag"),
        "{}",
        daemon.status()
    );
    assert_eq!(daemon.status()["applied_revision"], c1.as_str());
    // The signed tag arrives: the same commit is checked again and applied.
    remote.work.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &signing,
        "tag",
        "-s",
        "v2",
        "-m",
        "v2",
    ]);
    remote.work.git(&["push", "-q", "origin", "v2"]);
    daemon.wait_applied(&c2);
    // Rejected once in the history, not once per poll.
    let (_, body) = http(daemon.port, "GET", "/api/v1/revisions", &[], b"");
    let revisions: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        revisions["revisions"].as_array().unwrap().len(),
        2,
        "{revisions}"
    );
}
