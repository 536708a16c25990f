//! Stack content is untrusted input (`docs/SECURITY.md`): each test here is an escape a review
//! reproduced against the release binary, run as a user or CI would, and refused.

use std::path::Path;
use std::process::{Command, Output};
use test_support::git::GitRepo;

fn platformd(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_platformd"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("PLATFORMD_TEST_CANARY", "canary-value-3f9a")
        .output()
        .expect("platformd runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const PLATFORM: &str = r#"platform "shop" {
    environment "prod"
    driver "local" {
        path ".platformd/rendered"
    }
}

team "web" {
    owner "web-oncall@acme.example"
}
"#;

const SERVICE: &str = "service \"api\" {\n    team \"web\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    replicas 2\n}\n";

fn stack_repo() -> GitRepo {
    let repo = GitRepo::init();
    repo.write("stack/platform.kdl", PLATFORM);
    repo.write("stack/api.kdl", SERVICE);
    repo.commit("stack");
    repo
}

/// A pull request adding `leak.kdl -> /proc/self/environ` printed the CI job's environment in
/// a diagnostic of `plan --base`. A link in the working tree is skipped, as in git mode.
#[cfg(unix)]
#[test]
fn a_symlink_in_the_working_tree_is_not_read_by_a_pull_request_plan() {
    let repo = stack_repo();
    std::os::unix::fs::symlink("/proc/self/environ", repo.join("stack/leak.kdl")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("secret.kdl"),
        "service \"stolen\" { team \"web\"\n image \"canary-value-3f9a\" }\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.join("stack/linked-dir")).unwrap();
    let out = platformd(
        &["plan", "--base", "HEAD", "--format", "json"],
        &repo.join("stack"),
    );
    let text = all_output(&out);
    assert_eq!(code(&out), 0, "{text}");
    assert!(!text.contains("canary-value-3f9a"), "{text}");
    assert!(!text.contains("stolen"), "{text}");

    let out = platformd(&["validate", "."], &repo.join("stack"));
    let text = all_output(&out);
    assert_eq!(code(&out), 0, "{text}");
    assert!(!text.contains("canary-value-3f9a"), "{text}");
}

/// A FIFO named like a stack file would block the reader for ever; it is not a file.
#[cfg(unix)]
#[test]
fn a_fifo_in_the_working_tree_is_not_read() {
    let repo = stack_repo();
    let fifo = repo.join("stack/wait.kdl");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = platformd(&["validate", "."], &repo.join("stack"));
    assert_eq!(code(&out), 0, "{}", all_output(&out));
}

/// A 31 MB file took 983 MB in `validate`: a file over the limit is refused before it is read,
/// in the working tree and in git alike, with its path and the limit named.
#[test]
fn a_stack_file_over_the_size_limit_is_refused_in_the_working_tree_and_in_git() {
    let repo = stack_repo();
    let limit = planner::load::MAX_FILE_BYTES as usize;
    let big =
        "// padding padding padding padding padding padding padding padding\n".repeat(limit / 60);
    assert!(big.len() > limit);
    repo.write("stack/big.kdl", &big);
    let out = platformd(&["validate", "."], &repo.join("stack"));
    let text = all_output(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(text.contains("big.kdl"), "{text}");
    assert!(text.contains(&format!("limit of {limit} bytes")), "{text}");

    repo.commit("a big file");
    let out = platformd(
        &[
            "plan", "--base", "HEAD", "--head", "HEAD", "--format", "json",
        ],
        &repo.join("stack"),
    );
    let text = all_output(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(text.contains("big.kdl"), "{text}");
    assert!(text.contains(&format!("limit of {limit} bytes")), "{text}");
}

/// Many files under the per-file limit still add up: the stack as a whole has a limit too.
#[test]
fn a_stack_over_the_total_size_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("platform.kdl"), PLATFORM).unwrap();
    let per_file = planner::load::MAX_FILE_BYTES as usize - 100;
    let files = planner::load::MAX_STACK_BYTES as usize / per_file + 1;
    let filler = "// x\n".repeat(per_file / 5);
    for i in 0..files {
        std::fs::write(dir.path().join(format!("f{i:03}.kdl")), &filler).unwrap();
    }
    let out = platformd(&["validate", "."], dir.path());
    let text = all_output(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(
        text.contains(&format!(
            "more than {} bytes",
            planner::load::MAX_STACK_BYTES
        )),
        "{text}"
    );
}

fn validate_platform(driver_block: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let platform = PLATFORM.replace(
        "    driver \"local\" {\n        path \".platformd/rendered\"\n    }\n",
        driver_block,
    );
    assert_ne!(platform, PLATFORM);
    std::fs::write(dir.path().join("platform.kdl"), platform).unwrap();
    std::fs::write(dir.path().join("api.kdl"), SERVICE).unwrap();
    let out = platformd(&["validate", "."], dir.path());
    (code(&out), all_output(&out))
}

/// A `metrics "URL" bearer-token-file="PATH"` delivered the daemon's API token to a capture
/// server. The endpoint and its token are the operator's (`--metrics-url`), refused in a stack
/// with the location of each and where the operator sets them.
#[test]
fn a_stack_cannot_choose_the_metrics_endpoint_or_its_token_file() {
    let (code, text) = validate_platform(
        "    driver \"local\" {\n        path \".platformd/rendered\"\n    }\n    metrics \"http://127.0.0.1:9/#\" bearer-token-file=\"/etc/platformd/api-token\"\n",
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("error[operator-setting]: stack content may not choose the metrics endpoint"),
        "{text}"
    );
    assert!(text.contains("platform.kdl:6:13"), "{text}");
    assert!(
        text.contains("stack content may not choose the metrics credentials"),
        "{text}"
    );
    assert!(text.contains("--metrics-token-file"), "{text}");
}

/// A `kubeconfig` in the stack ran its `exec` plugin as root: the stack may not name one.
#[test]
fn a_stack_cannot_name_a_kubeconfig() {
    let (code, text) = validate_platform(
        "    driver \"kubernetes\" {\n        kubeconfig \"kc.yaml\"\n        namespace \"shop\"\n    }\n",
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("error[operator-setting]: stack content may not choose the kubeconfig"),
        "{text}"
    );
    assert!(text.contains("platform.kdl:4:9"), "{text}");
}

/// An `endpoint-url` in the stack sent requests signed with the operator's AWS credentials
/// (and their session token) wherever the stack said: the endpoint is the operator's.
#[test]
fn a_stack_cannot_choose_the_aws_endpoint() {
    let (code, text) = validate_platform(
        "    driver \"local\" {\n        path \".platformd/rendered\"\n    }\n    driver \"aws\" {\n        region \"eu-west-1\"\n        endpoint-url \"http://collector.example:8080\"\n    }\n",
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("error[operator-setting]: stack content may not choose the AWS endpoint"),
        "{text}"
    );
    assert!(text.contains("platform.kdl:8:9"), "{text}");
    assert!(text.contains("AWS_ENDPOINT_URL"), "{text}");
}

/// The local driver's `path "/srv/x/../y"` validated and was written: only a relative path
/// that stays inside the daemon's directory is the stack's.
#[test]
fn the_local_driver_path_stays_inside_the_daemons_directory() {
    for path in [
        "/srv/x/../y",
        "/tmp/out",
        "../outside",
        "rendered/../../escape",
        "~/x",
    ] {
        let (code, text) = validate_platform(&format!(
            "    driver \"local\" {{\n        path \"{path}\"\n    }}\n"
        ));
        assert_eq!(code, 1, "{path}: {text}");
        assert!(
            text.contains(
                "stack content may not choose a host path outside the daemon's directory"
            ),
            "{path}: {text}"
        );
    }
    let (code, text) =
        validate_platform("    driver \"local\" {\n        path \"out/rendered\"\n    }\n");
    assert_eq!(code, 0, "{text}");
}

/// `namespace "kube-system"` was accepted: the cluster's own namespaces are never a stack's.
#[test]
fn a_stack_cannot_use_the_clusters_own_namespaces() {
    for ns in ["kube-system", "kube-public", "kube-node-lease"] {
        let (code, text) = validate_platform(&format!(
            "    driver \"kubernetes\" {{\n        namespace \"{ns}\"\n    }}\n"
        ));
        assert_eq!(code, 1, "{ns}: {text}");
        assert!(
            text.contains(
                "stack content may not choose a namespace of the cluster's own components"
            ),
            "{ns}: {text}"
        );
    }
}
