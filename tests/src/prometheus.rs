//! A real Prometheus server (the machine's `prometheus` package) on loopback, scraping a test
//! exporter whose series the test sets: DCGM-, vLLM- and Envoy-shaped utilisation for the cost
//! controller's tests, including series that exist only while their pods do.

use crate::net::{LoopbackServer, free_port};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much a series grows at a scrape, or `None` when it is not exported at all (its pods are
/// gone): asked at every scrape.
pub type Growth = Arc<dyn Fn() -> Option<f64> + Send + Sync>;

/// One series: a gauge with a value, a counter that grows by `per_scrape` at every scrape, or a
/// counter whose growth and very presence are decided at each scrape.
#[derive(Clone)]
enum Series {
    Gauge(f64),
    Counter { value: f64, per_scrape: f64 },
    Dynamic { value: f64, growth: Growth },
}

/// Serves `/metrics` from series the test sets.
pub struct Exporter {
    series: Arc<Mutex<BTreeMap<String, Series>>>,
    server: LoopbackServer,
}

impl Default for Exporter {
    fn default() -> Self {
        Exporter::start()
    }
}

impl Exporter {
    pub fn start() -> Exporter {
        let series: Arc<Mutex<BTreeMap<String, Series>>> = Arc::default();
        let shared = series.clone();
        let server = LoopbackServer::start(1, move |listener| async move {
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let shared = shared.clone();
                    async move { exposition(&shared) }
                }),
            );
            let _ = axum::serve(listener, app).await;
        });
        Exporter { series, server }
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Sets a gauge: `gauge("DCGM_FI_DEV_GPU_UTIL{gpu_pool=\"l4\",gpu=\"0\"}", 80.0)`.
    pub fn gauge(&self, series: &str, value: f64) {
        self.series
            .lock()
            .unwrap()
            .insert(series.to_string(), Series::Gauge(value));
    }

    /// A counter growing by `per_scrape` at every scrape (0: traffic stopped).
    pub fn counter(&self, series: &str, per_scrape: f64) {
        let mut all = self.series.lock().unwrap();
        let value = match all.get(series) {
            Some(Series::Counter { value, .. }) => *value,
            _ => 0.0,
        };
        all.insert(series.to_string(), Series::Counter { value, per_scrape });
    }

    /// A counter asked at every scrape how much it grew, or whether it exists at all: a
    /// runtime's series that vanish when its pods do, a gateway's that follow offered load.
    pub fn counter_with(
        &self,
        series: &str,
        growth: impl Fn() -> Option<f64> + Send + Sync + 'static,
    ) {
        self.series.lock().unwrap().insert(
            series.to_string(),
            Series::Dynamic {
                value: 0.0,
                growth: Arc::new(growth),
            },
        );
    }
}

fn exposition(series: &Mutex<BTreeMap<String, Series>>) -> String {
    let mut all = series.lock().unwrap();
    let mut out = String::new();
    for (name, s) in all.iter_mut() {
        let value = match s {
            Series::Gauge(v) => *v,
            Series::Counter { value, per_scrape } => {
                *value += *per_scrape;
                *value
            }
            Series::Dynamic { value, growth } => match growth() {
                Some(by) => {
                    *value += by;
                    *value
                }
                // Gone with its pods; a process that comes back starts counting from zero,
                // as a restarted exporter does.
                None => {
                    *value = 0.0;
                    continue;
                }
            },
        };
        out.push_str(&format!("{name} {value}\n"));
    }
    out
}

/// A Prometheus server scraping one exporter every second; stopped when dropped.
pub struct PrometheusServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl PrometheusServer {
    pub fn start(exporter_port: u16) -> PrometheusServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n"
            ),
        )
        .expect("config");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).expect("log"))
            .spawn()
            .expect("`prometheus` is installed (scripts/test.sh installs it)");
        let server = PrometheusServer {
            child,
            port,
            _dir: dir,
        };
        server.wait_until("ready", |s| {
            crate::net::request(s.port, "GET", "/-/ready", &[], b"").0 == 200
        });
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The largest sample of an instant query, `None` when it has none.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", encode(promql));
        let (code, body) = crate::net::request(self.port, "GET", &path, &[], b"");
        if code != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"]
            .as_array()?
            .iter()
            .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .reduce(f64::max)
    }

    /// Waits until `promql` answers a value `accept`s (so a daemon querying next sees it).
    pub fn wait_for(&self, promql: &str, accept: impl Fn(f64) -> bool) {
        self.wait_until(promql, |s| s.query(promql).is_some_and(&accept));
    }

    fn wait_until(&self, what: &str, done: impl Fn(&PrometheusServer) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(Instant::now() < deadline, "prometheus: timed out on {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
