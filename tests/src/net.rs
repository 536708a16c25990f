//! Network helpers for tests and benchmarks: requests to a daemon on loopback (through the
//! `api` crate's client, the one the UI uses), free loopback ports and GitHub-style webhook
//! signatures.

/// The daemon's API client for a daemon listening on loopback `port`.
pub fn client(port: u16, token: Option<&str>) -> api::Client {
    api::Client::new(
        &format!("http://127.0.0.1:{port}"),
        token.map(str::to_string),
        None,
    )
    .expect("a loopback URL is valid")
}

/// Sends one request; returns (status, body), or (0, "") when the daemon cannot be reached.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    match client(port, None).request(method, path, headers, body) {
        Ok(r) => (r.status, r.body),
        Err(_) => (0, String::new()),
    }
}

/// `sha256=<hex HMAC-SHA256>` as GitHub signs webhook bodies.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    api::webhook::sign(secret, body)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A server on a free loopback port, run on its own runtime in the background (the
/// Kubernetes emulator, the TLS terminator); stopped when dropped.
pub struct LoopbackServer {
    pub port: u16,
    runtime: Option<tokio::runtime::Runtime>,
}

impl LoopbackServer {
    /// Binds `127.0.0.1:0` and spawns `serve` on the listener, on `workers` threads.
    pub fn start<F, Fut>(workers: usize, serve: F) -> LoopbackServer
    where
        F: FnOnce(tokio::net::TcpListener) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        runtime.spawn(serve(listener));
        LoopbackServer {
            port,
            runtime: Some(runtime),
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
