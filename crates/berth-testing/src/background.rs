//! A loopback server on its own thread and tokio runtime, so it keeps answering while a
//! test blocks (on a child process, say) and works from sync and async tests alike.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::sync::oneshot;

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
