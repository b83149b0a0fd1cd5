//! The admin server: `/healthz`, `/readyz` and `/metrics` over HTTP/1.1.
//!
//! - `/healthz` answers 200 while the process runs;
//! - `/readyz` answers 200 once the mode sets its [`Readiness`], else 503 with the
//!   reason the mode gave;
//! - `/metrics` renders the process's one registry ([`Metrics`]).
//!
//! An accept error (EMFILE, ENFILE, ECONNABORTED...) is logged and retried after a
//! pause that doubles up to [`MAX_ACCEPT_BACKOFF`], never in a hot loop. The server
//! stops accepting when its stop token is cancelled and lets open connections finish
//! (at most [`SHUTDOWN_GRACE`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, Metrics};
use crate::Error;

/// First pause after an accept error.
pub const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause after repeated accept errors.
pub const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// How long open connections may take to finish once the server stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Whether `/readyz` answers 200, set by the mode. Clones share the state.
#[derive(Debug, Clone)]
pub struct Readiness {
    state: Arc<RwLock<(bool, String)>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            state: Arc::new(RwLock::new((false, "starting".to_owned()))),
        }
    }
}

impl Readiness {
    /// Not ready, "starting".
    pub fn new() -> Self {
        Readiness::default()
    }

    /// Ready: `/readyz` answers 200.
    pub fn ready(&self) {
        self.set(true, "");
    }

    /// Not ready: `/readyz` answers 503 `not ready: <reason>`.
    pub fn not_ready(&self, reason: impl Into<String>) {
        self.set(false, reason);
    }

    /// Sets readiness; `reason` is shown while not ready.
    pub fn set(&self, ready: bool, reason: impl Into<String>) {
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = (ready, reason.into());
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.state.read().unwrap_or_else(PoisonError::into_inner).0
    }

    /// Why not ready (empty when ready).
    pub fn reason(&self) -> String {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        if state.0 {
            String::new()
        } else {
            state.1.clone()
        }
    }
}

/// A source of connections: a [`TcpListener`], or in tests one that fails on demand.
pub trait Accept: Send + 'static {
    /// A connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection.
    fn accept(&mut self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Accept for TcpListener {
    type Stream = TcpStream;

    async fn accept(&mut self) -> std::io::Result<TcpStream> {
        TcpListener::accept(self).await.map(|(stream, _)| stream)
    }
}

/// What the endpoints report.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `/readyz`.
    pub readiness: Readiness,
    /// `/metrics`.
    pub metrics: Metrics,
}

/// A bound admin server, not yet serving.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl AdminServer {
    /// Binds `addr` (so a taken port fails before the mode changes anything).
    pub async fn bind(addr: SocketAddr) -> Result<Self, Error> {
        let (listener, addr) = bind_listener(addr).await?;
        Ok(AdminServer { listener, addr })
    }

    /// The bound address (the port the OS chose for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves in a task until `stop` is cancelled.
    pub fn spawn(
        self,
        endpoints: Endpoints,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tracing::info!(addr = %self.addr, "serving /healthz, /readyz and /metrics");
        tokio::spawn(serve(self.listener, endpoints, stop))
    }
}

/// Serves connections from `source` until `stop` is cancelled, then waits (at most
/// [`SHUTDOWN_GRACE`]) for open connections.
pub async fn serve<A: Accept>(mut source: A, endpoints: Endpoints, stop: CancellationToken) {
    let mut connections = JoinSet::new();
    let mut backoff = MIN_ACCEPT_BACKOFF;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = source.accept() => accepted,
        };
        // Reap finished connections so the set does not grow for ever.
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok(stream) => {
                backoff = MIN_ACCEPT_BACKOFF;
                stream
            }
            Err(e) => {
                tracing::warn!(error = %e, pause = ?backoff, "admin server: accept failed; pausing");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        let endpoints = endpoints.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let endpoints = endpoints.clone();
                async move { Ok::<_, Infallible>(answer(&endpoints, &request)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            // A probe that disconnects early is not worth a log line.
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        connections.abort_all();
    }
}

fn answer(endpoints: &Endpoints, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_owned());
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
        "/readyz" if endpoints.readiness.is_ready() => text(StatusCode::OK, "ready\n".to_owned()),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", endpoints.readiness.reason()),
        ),
        "/metrics" => {
            let mut response = text(StatusCode::OK, endpoints.metrics.render());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    }
}

fn text(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests;

/// Binds `addr`; the listener and its bound address (the port the OS chose for `:0`).
pub(crate) async fn bind_listener(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), Error> {
    let bind_error = |source| Error::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}
