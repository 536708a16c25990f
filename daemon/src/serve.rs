//! Serving the API: HTTP/1.1 with the limits a server reachable by untrusted clients needs
//! (`docs/SECURITY.md`, "The API").
//!
//! - **Headers** must arrive within [`ServeLimits::header_timeout`], counted from when the
//!   connection starts waiting for a request: a client trickling a header a byte at a time is
//!   disconnected, and so is a connection left idle (new or kept alive) for that long.
//! - **Bodies** must arrive within [`ServeLimits::body_timeout`] (408), and are bounded in size
//!   (413).
//! - **Answers** must be taken: a client that stops reading, so that nothing can be written to
//!   it for [`ServeLimits::write_timeout`], is disconnected.
//! - **Connections** are capped at [`ServeLimits::max_connections`]: past it, a new connection
//!   is closed at once, so file descriptors (which the stores and drivers need too) cannot be
//!   exhausted by idle clients.
//! - **Shutdown** stops accepting, asks every connection to finish its request in flight, and
//!   waits at most [`ServeLimits::shutdown_grace`] before dropping the rest.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

/// The listener's limits; the defaults suit the API's small requests and answers.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_connections: 256,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `stop` turns true.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: ServeLimits,
    mut stop: watch::Receiver<bool>,
) where
    L: axum::serve::Listener,
{
    let app = app.layer(axum::middleware::from_fn_with_state(
        limits.body_timeout,
        read_body_in_time,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, close) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        let (io, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = async { stop.wait_for(|stopped| *stopped).await.is_ok() } => break,
        };
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = limits.max_connections,
                "connection refused: the server is at its connection limit"
            );
            drop(io);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let mut close = close.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(
                TokioIo::new(WriteTimeout::new(io, limits.write_timeout)),
                service,
            );
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended");
                    }
                }
                _ = async { close.wait_for(|closing| *closing).await.is_ok() } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            grace_s = limits.shutdown_grace.as_secs(),
            "connections still open after the shutdown grace; closing them"
        );
        connections.shutdown().await;
    }
}

/// Reads the whole request body within the body timeout (408 otherwise), before any handler:
/// a client sending its body a byte at a time holds a connection for that long at most.
async fn read_body_in_time(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(
        timeout,
        axum::body::to_bytes(body, crate::server::MAX_BODY_BYTES),
    )
    .await
    {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body over {} bytes\n",
                crate::server::MAX_BODY_BYTES
            ),
        )
            .into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            format!("request body not received within {}s\n", timeout.as_secs()),
        )
            .into_response(),
    }
}

/// A connection whose writes fail once none has made progress for `timeout` (a client that
/// stopped reading). Reads are left to hyper: waiting for the next request is bounded by the
/// header timeout, and a handler at work must not count as idleness.
struct WriteTimeout<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write is pending.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteTimeout<T> {
    fn new(inner: T, timeout: Duration) -> WriteTimeout<T> {
        WriteTimeout {
            inner,
            timeout,
            deadline: None,
        }
    }

    /// On a pending write: whether it has been pending too long (the sleep's waker is
    /// registered, so the connection is polled again then).
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let timeout = self.timeout;
        self.deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }

    fn stalled_error(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the client took no data for {}s", self.timeout.as_secs()),
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                self.deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending if self.stalled(cx) => Poll::Ready(Err(self.stalled_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => {
                self.deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending if self.stalled(cx) => Poll::Ready(Err(self.stalled_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
