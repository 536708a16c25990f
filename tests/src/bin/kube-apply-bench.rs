//! Apply against a Kubernetes API server (`docs/PERFORMANCE.md`): a synthetic stack routed to the
//! Kubernetes driver, applied by the release binary against the API-server emulator answering
//! every request after a fixed latency. The critical path is the longest dependency chain
//! weighted by each resource's own requests (a server-side apply and a readiness read per
//! object); the lower bound is the larger of that and the total work spread over the workers.
//!
//! ```sh
//! cargo build --release -p platformd -p platformd-test-support
//! $CARGO_TARGET_DIR/release/kube-apply-bench [--resources 1000] [--latency-ms 20]
//! ```

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use test_support::bench::ms;
use test_support::kube_emulator::KubeEmulator;

fn main() {
    let mut resources = 1000usize;
    let mut latency_ms = 20u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().unwrap_or_default();
        match a.as_str() {
            "--resources" => resources = value.parse().expect("a number"),
            "--latency-ms" => latency_ms = value.parse().expect("a number"),
            other => panic!("unknown argument {other}"),
        }
    }
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("platformd")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("platformd"));
    let kinds = [
        "service",
        "topic",
        "pipeline",
        "ai-endpoint",
        "gpu-pool",
        "database",
    ];
    println!(
        "| parallelism | makespan | critical path | work / parallelism | makespan / bound | requests |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for parallelism in [16usize, 64, 256] {
        let emulator = KubeEmulator::start();
        let dir = tempfile::tempdir().unwrap();
        let stack = dir.path().join("stack");
        test_support::generate::write_stack(&stack, resources, 5).unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, emulator.kubeconfig()).unwrap();
        test_support::route_to_kubernetes(&stack, "bench", &kinds);
        let plan = Command::new(&binary)
            .args(["plan", "stack", "--format", "json"])
            .env("KUBECONFIG", &kubeconfig)
            .current_dir(dir.path())
            .output()
            .expect("platformd plan");
        let plan: Value = serde_json::from_slice(&plan.stdout).expect("a JSON plan");
        emulator.set_latency(Duration::from_millis(latency_ms));
        let makespan = test_support::bench::apply_makespan(&binary, dir.path(), parallelism);
        // Each resource's own requests: one apply and one readiness read per object it made.
        let requests = emulator.requests();
        let mut objects: HashMap<String, u64> = HashMap::new();
        for r in &requests {
            if r.method == "PATCH" {
                let name = r.path.rsplit('/').next().unwrap_or("").to_string();
                *objects.entry(name).or_default() += 1;
            }
        }
        let cost = |address: &str| {
            let name = address.split_once('/').map_or(address, |(_, n)| n);
            let own = objects.get(name).copied().unwrap_or(0)
                + objects
                    .get(&format!("{name}-secrets"))
                    .copied()
                    .unwrap_or(0);
            Duration::from_millis(2 * own * latency_ms)
        };
        // Longest chain, in plan order (dependencies first).
        let mut finish: BTreeMap<String, Duration> = BTreeMap::new();
        let mut critical = Duration::ZERO;
        for r in plan["resources"].as_array().into_iter().flatten() {
            let address = r["address"].as_str().unwrap_or("");
            let start = r["depends_on"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| finish.get(d.as_str()?))
                .max()
                .copied()
                .unwrap_or(Duration::ZERO);
            let end = start + cost(address);
            critical = critical.max(end);
            finish.insert(address.to_string(), end);
        }
        let work = Duration::from_millis(requests.len() as u64 * latency_ms) / parallelism as u32;
        let bound = critical.max(work);
        println!(
            "| {parallelism} | {} | {} | {} | {:.2} | {} |",
            ms(makespan),
            ms(critical),
            ms(work),
            makespan.as_secs_f64() / bound.as_secs_f64(),
            requests.len()
        );
    }
}
