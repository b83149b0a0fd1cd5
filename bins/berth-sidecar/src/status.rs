//! What `/readyz` and the `ready` metric report, shared with the runner. The admin
//! server itself is berth-runtime's.

use berth_runtime::Readiness;

use crate::lifecycle::Phase;
use crate::metrics::Metrics;

/// The lifecycle's readiness, published to `/readyz` and the metrics.
#[derive(Debug)]
pub(crate) struct Status {
    readiness: Readiness,
    /// The metrics.
    pub(crate) metrics: Metrics,
}

impl Status {
    /// Not ready, starting; `/readyz` follows `readiness`.
    pub(crate) fn with_readiness(metrics: Metrics, readiness: Readiness) -> Self {
        readiness.not_ready(Phase::Starting.name());
        Status { readiness, metrics }
    }

    /// Not ready, starting, with a readiness of its own.
    #[cfg(test)]
    pub(crate) fn new(metrics: Metrics) -> Self {
        Status::with_readiness(metrics, Readiness::new())
    }

    /// Publishes the lifecycle's phase and readiness.
    pub(crate) fn set(&self, phase: Phase, ready: bool) {
        self.readiness.set(ready, phase.name());
        self.metrics.set_ready(ready);
    }

    /// Whether `/readyz` answers 200.
    #[cfg(test)]
    pub(crate) fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use berth_aws::CallCounter;
    use berth_runtime::admin::{AdminServer, Endpoints};
    use berth_runtime::CancellationToken;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn endpoints_follow_the_status() {
        let registry = berth_runtime::Metrics::new("sidecar");
        let readiness = Readiness::new();
        let metrics = Metrics::register(&registry, CallCounter::new());
        let status = Arc::new(Status::with_readiness(metrics, readiness.clone()));
        let server = AdminServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = server.local_addr();
        let stop = CancellationToken::new();
        let endpoints = Endpoints {
            readiness,
            metrics: registry,
        };
        let task = server.spawn(endpoints, stop.clone());

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let not_ready = get(addr, "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        assert!(not_ready.contains("not ready: starting"));

        status.set(Phase::Ready, true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.contains("berth_sidecar_ready 1"), "{metrics}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));

        status.set(Phase::Deregistering, false);
        assert!(get(addr, "/readyz")
            .await
            .contains("not ready: deregistering"));
        stop.cancel();
        task.await.unwrap();
    }
}
