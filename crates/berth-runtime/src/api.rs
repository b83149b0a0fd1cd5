//! A mode's own HTTP API (the provisioner's REST API), served like the admin server:
//! bound before the mode reports ready, stopped gracefully by the process's shutdown
//! token. The binary supplies only its `axum::Router`.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::bind_listener;
use crate::Error;

/// A bound, not yet serving, API listener.
#[derive(Debug)]
pub struct ApiServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl ApiServer {
    /// Binds `addr` (so a taken port fails before the mode reports ready).
    pub async fn bind(addr: SocketAddr) -> Result<Self, Error> {
        let (listener, addr) = bind_listener(addr).await?;
        Ok(ApiServer { listener, addr })
    }

    /// The bound address (the port the OS chose for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `router` until `stop` is cancelled, then lets requests in flight finish.
    pub async fn serve(self, router: axum::Router, stop: CancellationToken) -> Result<(), Error> {
        axum::serve(self.listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .map_err(Error::Serve)
    }
}
