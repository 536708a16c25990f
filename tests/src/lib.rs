//! Shared test support for platformd's test suites and benchmarks: real git repositories
//! built with the `git` CLI, and a generator of synthetic stacks of any size.

pub mod ai_gateway;
pub mod aws_recorded;
pub mod bench;
pub mod crd;
pub mod generate;
pub mod git;
pub mod kube_emulator;
pub mod moto;
pub mod net;
pub mod postgres;
pub mod prometheus;
pub mod tls;

/// Runs a command-line tool (`ssh-keygen`, `gpg`) in `dir` with `env` added, panicking with its
/// output on failure; returns its stdout.
pub fn tool(dir: &std::path::Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (scripts/test.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies a directory tree (test fixtures and example stacks into scratch directories).
pub fn copy_dir(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).expect("create directory");
    for e in std::fs::read_dir(src).expect("read directory") {
        let e = e.expect("directory entry");
        let to = dst.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).expect("copy file");
        }
    }
}

/// Adds testing settings (`simulate-latency-ms`, `inject-faults`) to the `driver "local"` block
/// of the stack's `platform.kdl`, the way a test asks the local driver for latency or faults.
/// The example's `platform.kdl` with its commented Kubernetes variant turned on (the lines
/// between `kubernetes-variant:begin` and `:end` uncommented), its context named `context`.
pub fn example_kubernetes_variant(platform: &str, context: &str) -> String {
    let mut inside = false;
    let lines: Vec<String> = platform
        .lines()
        .map(|line| {
            if line.contains("kubernetes-variant:begin") || line.contains("kubernetes-variant:end")
            {
                inside = line.contains("begin");
                return line.to_string();
            }
            if inside {
                line.replacen("// ", "", 1)
            } else {
                line.to_string()
            }
        })
        .collect();
    lines
        .join("\n")
        .replace("context \"prod-eks\"", &format!("context \"{context}\""))
}

pub fn set_local_driver(stack: &std::path::Path, settings: &[(&str, &str)]) {
    let path = stack.join("platform.kdl");
    let text = std::fs::read_to_string(&path).expect("platform.kdl");
    // Settings given again replace the earlier ones.
    let text: String = text
        .split_inclusive('\n')
        .filter(|line| {
            !settings
                .iter()
                .any(|(k, _)| line.trim_start().starts_with(&format!("{k} ")))
        })
        .collect();
    let block = "driver \"local\" {";
    let at = text.find(block).expect("a local driver block") + block.len();
    let lines: String = settings
        .iter()
        .map(|(k, v)| format!("\n        {k} \"{v}\""))
        .collect();
    let text = format!("{}{lines}{}", &text[..at], &text[at..]);
    std::fs::write(&path, text).expect("write platform.kdl");
}

/// Adds a `driver "kubernetes"` (namespace `namespace`) to the stack's `platform.kdl`, and
/// routes `kinds` to it; the first driver keeps the others. The kubeconfig is the operator's
/// (a stack may not name one; docs/SECURITY.md): run platformd with `KUBECONFIG` set.
pub fn route_to_kubernetes(stack: &std::path::Path, namespace: &str, kinds: &[&str]) {
    let path = stack.join("platform.kdl");
    let text = std::fs::read_to_string(&path).expect("platform.kdl");
    let at = text.find("\n}\n").expect("the end of the platform block") + 1;
    let kinds: Vec<String> = kinds.iter().map(|k| format!("\"{k}\"")).collect();
    let block = format!(
        "    driver \"kubernetes\" {{\n        namespace \"{namespace}\"\n    }}\n    route {} to=\"kubernetes\"\n",
        kinds.join(" ")
    );
    std::fs::write(&path, format!("{}{block}{}", &text[..at], &text[at..]))
        .expect("write platform.kdl");
}
