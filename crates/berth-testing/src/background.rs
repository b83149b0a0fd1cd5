//! A loopback server on its own thread and tokio runtime, so it keeps answering while a
//! test blocks (on a child process, say) and works from sync and async tests alike.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;

/// The error type of the servers' request handlers.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An HTTP/1.1 server on a free loopback port (see [`spawn_loopback_server`]) that
/// answers every request with `handle(state, request)`.
pub(crate) fn spawn_http_server<S, H, Fut>(
    name: &str,
    state: Arc<S>,
    handle: H,
) -> (SocketAddr, oneshot::Sender<()>)
where
    S: Send + Sync + 'static,
    H: Fn(Arc<S>, Request<Incoming>) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, BoxError>> + Send + 'static,
{
    spawn_loopback_server(name, move |listener| async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| handle(state.clone(), request));
                // Errors here are clients going away mid-request (or injected resets).
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Binds a free loopback port and runs `serve` on it in a thread named `name-PORT`.
/// The server stops when the returned sender is dropped.
///
/// # Panics
/// If no loopback port can be bound or the thread cannot start.
pub(crate) fn spawn_loopback_server<F, Fut>(
    name: &str,
    serve: F,
) -> (SocketAddr, oneshot::Sender<()>)
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .unwrap_or_else(|e| panic!("{name} cannot bind a loopback port: {e}"));
    let addr = listener
        .local_addr()
        .expect("bound listener has an address");
    let (shutdown, stopped) = oneshot::channel::<()>();
    let thread_name = format!("{name}-{}", addr.port());
    let owned_name = name.to_owned();
    std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            let name = owned_name;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("{name} runtime: {e}"));
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .unwrap_or_else(|e| panic!("{name} listener joins its runtime: {e}"));
                tokio::select! {
                    _ = stopped => {}
                    () = serve(listener) => {}
                }
            });
        })
        .unwrap_or_else(|e| panic!("spawn the {name} thread: {e}"));
    (addr, shutdown)
}
