//! The cost controller end to end: a real Prometheus server scraping a test exporter with
//! DCGM-, vLLM- and Envoy-shaped series, a daemon following a git remote with the local driver,
//! and a clock the test moves (`PLATFORMD_FAKE_NOW=@FILE`) for the idle arithmetic. The series
//! behave as on a cluster: an endpoint's runtime series exist only while it has pods, and the
//! gateway's counters of its route stay, counting requests that found no pod.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use support::running::{Daemon, Remote};
use test_support::prometheus::{Exporter, PrometheusServer};

const L4_GPU: &str = r#"DCGM_FI_DEV_GPU_UTIL{gpu_pool="l4",gpu="0"}"#;
const A100_IDLE_GPU: &str = r#"DCGM_FI_DEV_GPU_UTIL{gpu_pool="a100",gpu="0"}"#;
const A100_BUSY_GPU: &str = r#"DCGM_FI_DEV_GPU_UTIL{gpu_pool="a100",gpu="1"}"#;

/// The default endpoint query (the gateway's counters of the endpoint's route) with a short
/// rate window, so a test does not wait five minutes for traffic to drain. `{namespace}` is the
/// resource's driver's namespace (the local driver's `ml` here).
fn requests_query() -> String {
    planner::lifecycle::GATEWAY_REQUESTS.replace("[5m]", "[4s]")
}

/// [`requests_query`] of the endpoint `name`, as the daemon fills it in.
fn requests(name: &str) -> String {
    requests_query()
        .replace("{name}", name)
        .replace("{namespace}", "ml")
}

/// Requests offered to an endpoint per scrape, and the series they leave: vLLM's own counter
/// while the endpoint has pods (gone with them), Envoy's cluster counters of its route always —
/// `upstream_rq_total` for requests that reached a pod, `upstream_cx_none_healthy` for those
/// that found none.
struct Traffic(Arc<Mutex<f64>>);

impl Traffic {
    fn offer(exporter: &Exporter, dir: &Path, name: &str, per_scrape: f64) -> Traffic {
        let load = Arc::new(Mutex::new(per_scrape));
        let up = {
            let dir: PathBuf = dir.to_path_buf();
            let name = name.to_string();
            move || replicas(&dir, &name).as_u64().unwrap_or(0) > 0
        };
        let cluster = format!(r#"envoy_cluster_name="httproute/ml/{name}/rule/0""#);
        let (l, u) = (load.clone(), up.clone());
        exporter.counter_with(
            &format!(r#"vllm:request_success_total{{namespace="ml",service="{name}"}}"#),
            move || u().then(|| *l.lock().unwrap()),
        );
        let (l, u) = (load.clone(), up.clone());
        exporter.counter_with(
            &format!("envoy_cluster_upstream_rq_total{{{cluster}}}"),
            move || Some(if u() { *l.lock().unwrap() } else { 0.0 }),
        );
        let (l, u) = (load.clone(), up);
        exporter.counter_with(
            &format!("envoy_cluster_upstream_cx_none_healthy{{{cluster}}}"),
            move || Some(if u() { 0.0 } else { *l.lock().unwrap() }),
        );
        Traffic(load)
    }

    fn set(&self, per_scrape: f64) {
        *self.0.lock().unwrap() = per_scrape;
    }
}

/// Whether Prometheus still has vLLM's counter of `name`.
fn runtime_series_present(prometheus: &PrometheusServer, name: &str) -> bool {
    prometheus
        .query(&format!(
            r#"vllm:request_success_total{{namespace="ml",service="{name}"}}"#
        ))
        .is_some()
}

fn platform() -> String {
    let query = requests_query();
    format!(
        r##"platform "ml" {{
    environment "test"
    driver "local" {{
        path ".platformd/rendered"
        namespace "ml"
    }}
    metrics {{
        query "ai-endpoint" #"{query}"# idle-at-most=0
    }}
}}

team "ml" {{
    owner "ml-oncall@acme.example"
}}
"##
    )
}

fn endpoint(name: &str, pool: &str, replicas: u32) -> String {
    format!(
        r#"ai-endpoint "{name}" {{
    team "ml"
    model "meta-llama/Llama-3.1-8B-Instruct" revision="main"
    runtime "vllm"
    gpu-pool "{pool}" gpus=1
    replicas {replicas}
    idle-shutdown-after "2h"
}}
"#
    )
}

fn pools() -> String {
    r#"gpu-pool "l4" {
    team "ml"
    accelerator "nvidia-l4"
    instance-type "g6.xlarge"
    nodes min=0 max=4
    idle-shutdown-after "30m"
}

gpu-pool "a100" {
    team "ml"
    accelerator "nvidia-a100"
    instance-type "p4d.24xlarge"
    nodes min=1 max=3
    idle-shutdown-after "30m"
}
"#
    .to_string()
}

struct Clock(std::path::PathBuf);

impl Clock {
    fn set(&self, rfc3339: &str) {
        // Written whole, then renamed: the daemon never reads half a time.
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, rfc3339).unwrap();
        std::fs::rename(&tmp, &self.0).unwrap();
    }
}

fn rendered(dir: &Path, kind: &str, name: &str) -> Value {
    let path = dir.join(format!(".platformd/rendered/{kind}/{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    // The first document: the Deployment of an endpoint, the one document of a pool.
    drivers::local::from_yaml(&text)
        .ok()
        .and_then(|docs| docs.into_iter().next())
        .unwrap_or(Value::Null)
}

fn replicas(dir: &Path, name: &str) -> Value {
    rendered(dir, "ai-endpoint", name)["spec"]["replicas"].clone()
}

fn is_down(d: &Daemon, address: &str) -> bool {
    d.status()["scaled_down"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s["address"] == address))
}

fn idle_seen(d: &Daemon, address: &str) -> bool {
    !d.status()["idle_since"][address].is_null()
}

fn history(dir: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_platformd"))
        .args(["history"])
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn idle_endpoints_and_pools_scale_down_and_come_back_on_wake_commit_and_demand() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start();
    let chat = Traffic::offer(&exporter, dir.path(), "chat", 1.0);
    let _busy = Traffic::offer(&exporter, dir.path(), "busy-llm", 1.0);
    exporter.gauge(L4_GPU, 80.0);
    exporter.gauge(A100_IDLE_GPU, 0.0);
    exporter.gauge(A100_BUSY_GPU, 93.0);
    let prometheus = PrometheusServer::start(exporter.port());
    prometheus.wait_for(&requests("chat"), |v| v > 0.0);

    let remote = Remote::new();
    let stack = |chat_replicas: u32| {
        format!(
            "{}{}",
            endpoint("chat", "l4", chat_replicas),
            endpoint("busy-llm", "a100", 1)
        )
    };
    let c1 = remote.push(
        &[
            ("platform.kdl", &platform()),
            ("pools.kdl", &pools()),
            ("endpoints.kdl", &stack(2)),
        ],
        "ml stack",
    );
    let clock = Clock(dir.path().join("now"));
    clock.set("2026-11-28T10:00:00Z");
    let now = format!("@{}", clock.0.display());
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &[
            "--path",
            "stack",
            "--interval",
            "1s",
            "--utilisation-interval",
            "500ms",
            "--metrics-url",
            &prometheus.url(),
        ],
        &[("PLATFORMD_FAKE_NOW", &now)],
    );
    daemon.wait_applied(&c1);
    assert_eq!(replicas(dir.path(), "chat"), 2);

    // Traffic stops: the first idle look starts the count; two hours later nothing happened
    // yet, at 2h13m the endpoint goes to 0, and the one with traffic is never touched.
    chat.set(0.0);
    prometheus.wait_for(&requests("chat"), |v| v == 0.0);
    daemon.wait("chat seen idle", |d| idle_seen(d, "ai-endpoint/chat"));
    clock.set("2026-11-28T11:59:00Z");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        !is_down(&daemon, "ai-endpoint/chat"),
        "not idle long enough"
    );
    assert_eq!(replicas(dir.path(), "chat"), 2);
    clock.set("2026-11-28T12:13:00Z");
    daemon.wait("chat scaled down", |d| is_down(d, "ai-endpoint/chat"));
    assert_eq!(
        replicas(dir.path(), "chat"),
        0,
        "{}\n{}",
        daemon.log(),
        history(dir.path())
    );
    assert_eq!(
        replicas(dir.path(), "busy-llm"),
        1,
        "an endpoint with traffic"
    );
    let status = daemon.status();
    let down = &status["scaled_down"][0];
    assert_eq!(down["note"], "idle 2h13m, cost policy", "{status}");
    assert_eq!(down["figure"], "requests 0/s (idle at ≤ 0)", "{status}");
    let shown = history(dir.path());
    assert!(
        shown.contains("idle-shutdown") && shown.contains("cost policy"),
        "{shown}"
    );
    assert!(
        shown.contains("ai-endpoint/chat: idle 2h13m, cost policy (requests 0/s (idle at ≤ 0))"),
        "{shown}"
    );

    // The pools: a100 has one busy GPU and keeps its nodes; l4 is idle once its GPU is.
    exporter.gauge(L4_GPU, 0.0);
    prometheus.wait_for(r#"max(DCGM_FI_DEV_GPU_UTIL{gpu_pool="l4"})"#, |v| v == 0.0);
    daemon.wait("l4 seen idle", |d| idle_seen(d, "gpu-pool/l4"));
    clock.set("2026-11-28T12:50:00Z");
    daemon.wait("l4 scaled down", |d| is_down(d, "gpu-pool/l4"));
    let l4 = rendered(dir.path(), "gpu-pool", "l4");
    assert_eq!(l4["spec"]["nodes"]["max"], 0, "{l4}");
    assert!(!is_down(&daemon, "gpu-pool/a100"));
    assert!(!idle_seen(&daemon, "gpu-pool/a100"), "one busy GPU");
    let metrics = test_support::net::request(daemon.port, "GET", "/metrics", &[], b"").1;
    assert!(
        metrics.contains(r#"platformd_idle_shutdowns_total{kind="ai-endpoint"} 1"#)
            && metrics.contains(r#"platformd_idle_shutdowns_total{kind="gpu-pool"} 1"#),
        "{metrics}"
    );

    // Neither drift nor a pending change: a plan against the store has nothing to do.
    remote.work.git(&["pull", "-q", "origin", "main"]);
    let plan = std::process::Command::new(env!("CARGO_BIN_EXE_platformd"))
        .args(["plan", remote.work.path().join("stack").to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("no changes, 4 unchanged"), "{text}");

    // The cost report counts them as they are, like the plan, and says what that saved.
    let json = |args: &[&str]| -> Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_platformd"))
            .args(args)
            .arg(remote.work.path().join("stack"))
            .args(["--format", "json"])
            .env("PLATFORMD_FAKE_NOW", &now)
            .current_dir(dir.path())
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let cost = json(&["cost"]);
    let plan = json(&["plan"]);
    assert_eq!(cost["total_monthly_usd"], plan["cost"]["after"], "{cost}");
    let saved = &cost["idle_savings"];
    let chat_saved = saved
        .as_array()
        .and_then(|a| a.iter().find(|s| s["address"] == "ai-endpoint/chat"))
        .and_then(|s| s["monthly_usd"].as_f64())
        .unwrap_or(0.0);
    // Down from 12:13 to 12:50 by the test's clock: 37 minutes of the endpoint's estimate.
    assert!(chat_saved > 0.0, "{cost}");
    assert_eq!(
        cost["scaled_down"][0]["note"], "idle 2h13m, cost policy",
        "{cost}"
    );

    // An operator wakes the endpoint: it comes back with the pool it runs on.
    let (code, body) = daemon.post("/api/v1/wake", r#"{"address":"ai-endpoint/chat"}"#);
    assert_eq!(code, 200, "{body}");
    assert_eq!(replicas(dir.path(), "chat"), 2);
    assert_eq!(
        rendered(dir.path(), "gpu-pool", "l4")["spec"]["nodes"]["max"],
        4
    );
    assert!(daemon.status()["scaled_down"].is_null());
    let (code, body) = daemon.post("/api/v1/wake", r#"{"address":"ai-endpoint/chat"}"#);
    assert_eq!(code, 409, "only a scaled-down resource wakes: {body}");
    assert!(history(dir.path()).contains("woken (operator API token holder)"));

    // Idle again: down again; then demand returns and wakes it.
    daemon.wait("chat seen idle again", |d| idle_seen(d, "ai-endpoint/chat"));
    clock.set("2026-11-28T15:00:00Z");
    daemon.wait("chat scaled down again", |d| is_down(d, "ai-endpoint/chat"));
    // With no pods, vLLM's series are gone: only the gateway can tell that callers came back.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while runtime_series_present(&prometheus, "chat") {
        assert!(
            std::time::Instant::now() < deadline,
            "vLLM's series outlived the pods"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    chat.set(1.0);
    daemon.wait("chat woken by demand", |d| !is_down(d, "ai-endpoint/chat"));
    assert_eq!(replicas(dir.path(), "chat"), 2);
    assert!(history(dir.path()).contains("demand returned: requests"));
    assert!(
        prometheus.query(
            r#"envoy_cluster_upstream_cx_none_healthy{envoy_cluster_name="httproute/ml/chat/rule/0"}"#
        ) > Some(0.0),
        "the demand that woke it found no pod"
    );

    // Down once more, then a commit that changes the endpoint brings it back as declared.
    chat.set(0.0);
    prometheus.wait_for(&requests("chat"), |v| v == 0.0);
    daemon.wait("chat idle", |d| idle_seen(d, "ai-endpoint/chat"));
    clock.set("2026-11-28T18:00:00Z");
    daemon.wait("chat down", |d| is_down(d, "ai-endpoint/chat"));
    let c2 = remote.push(&[("endpoints.kdl", &stack(3))], "chat: 3 replicas");
    daemon.wait_applied(&c2);
    daemon.wait("the commit woke chat", |d| !is_down(d, "ai-endpoint/chat"));
    assert_eq!(replicas(dir.path(), "chat"), 3);
}

#[test]
fn an_unreachable_metrics_source_scales_nothing_and_says_so() {
    let remote = Remote::new();
    let closed = format!("http://127.0.0.1:{}", test_support::net::free_port());
    let c1 = remote.push(
        &[
            ("platform.kdl", &platform()),
            ("pools.kdl", &pools()),
            ("endpoints.kdl", &endpoint("chat", "l4", 2)),
        ],
        "ml stack",
    );
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock(dir.path().join("now"));
    clock.set("2026-11-28T10:00:00Z");
    let now = format!("@{}", clock.0.display());
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &[
            "--path",
            "stack",
            "--utilisation-interval",
            "300ms",
            "--metrics-url",
            &closed,
        ],
        &[("PLATFORMD_FAKE_NOW", &now)],
    );
    daemon.wait_applied(&c1);
    daemon.wait("a warning", |d| {
        d.status()["utilisation_warning"].is_string()
    });
    clock.set("2026-12-05T10:00:00Z");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let status = daemon.status();
    let warning = status["utilisation_warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("nothing scaled down")
            && warning.contains("cannot reach the metrics source"),
        "{status}"
    );
    assert!(status["scaled_down"].is_null(), "{status}");
    assert!(status["idle_since"].is_null(), "{status}");
    assert_eq!(replicas(dir.path(), "chat"), 2);
    let metrics = test_support::net::request(daemon.port, "GET", "/metrics", &[], b"").1;
    assert!(
        !metrics.contains("platformd_utilisation_query_failures_total 0"),
        "{metrics}"
    );
}

/// The cost controller acts only for the applied revision (`docs/SECURITY.md`): a revision
/// awaiting approval that gives an idle endpoint an idle-shutdown policy is never acted on; once
/// approved and applied, it is.
#[test]
fn a_revision_awaiting_approval_is_not_acted_on_by_the_cost_controller() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start();
    let _chat = Traffic::offer(&exporter, dir.path(), "chat", 0.0);
    let prometheus = PrometheusServer::start(exporter.port());
    prometheus.wait_for(&requests("chat"), |v| v == 0.0);
    let manual = platform().replace(
        "    environment \"test\"\n",
        "    environment \"test\"\n    sync \"manual\"\n",
    );
    let always_on = endpoint("chat", "l4", 2).replace("    idle-shutdown-after \"2h\"\n", "");
    let remote = Remote::new();
    let c1 = remote.push(
        &[
            ("platform.kdl", &manual),
            ("pools.kdl", &pools()),
            ("endpoints.kdl", &always_on),
        ],
        "always on",
    );
    let clock = Clock(dir.path().join("now"));
    clock.set("2026-11-28T10:00:00Z");
    let now = format!("@{}", clock.0.display());
    let daemon = Daemon::start(
        dir.path(),
        &remote.url(),
        &[
            "--path",
            "stack",
            "--interval",
            "300ms",
            "--utilisation-interval",
            "300ms",
            "--metrics-url",
            &prometheus.url(),
        ],
        &[("PLATFORMD_FAKE_NOW", &now)],
    );
    let approve = |revision: &str| {
        daemon.wait("a plan awaiting approval", |d| {
            d.status()["pending_approval"]["revision"] == revision
        });
        let hash = daemon.status()["pending_approval"]["plan_hash"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, body) = daemon.post(
            "/api/v1/approve",
            &format!(r#"{{"revision": "{revision}", "plan_hash": "{hash}"}}"#),
        );
        assert_eq!(code, 200, "{body}");
        daemon.wait_applied(revision);
    };
    approve(&c1);
    assert_eq!(replicas(dir.path(), "chat"), 2);

    // The policy arrives in a revision that waits for approval: nothing is counted or done.
    let c2 = remote.push(
        &[("endpoints.kdl", &endpoint("chat", "l4", 2))],
        "idle policy",
    );
    daemon.wait("the policy awaiting approval", |d| {
        d.status()["pending_approval"]["revision"] == c2.as_str()
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    clock.set("2026-11-29T10:00:00Z");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let status = daemon.status();
    assert_eq!(status["sync_state"], "awaiting-approval", "{status}");
    assert!(status["idle_since"].is_null(), "{status}");
    assert!(!is_down(&daemon, "ai-endpoint/chat"), "{status}");
    assert_eq!(replicas(dir.path(), "chat"), 2);

    // Approved and applied, the policy is the controller's to act on.
    approve(&c2);
    daemon.wait("chat seen idle", |d| idle_seen(d, "ai-endpoint/chat"));
    clock.set("2026-11-29T12:30:00Z");
    daemon.wait("chat scaled down", |d| is_down(d, "ai-endpoint/chat"));
}
