use std::io;
use std::sync::Mutex;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    request(&mut stream, path).await
}

async fn request<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

fn endpoints() -> Endpoints {
    Endpoints {
        readiness: Readiness::new(),
        metrics: Metrics::new("test"),
    }
}

#[tokio::test]
async fn endpoints_follow_readiness_and_render_the_registry() {
    let endpoints = endpoints();
    let server = AdminServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr();
    let stop = CancellationToken::new();
    let task = server.spawn(endpoints.clone(), stop.clone());

    assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    let not_ready = get(addr, "/readyz").await;
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    assert!(not_ready.contains("not ready: starting"), "{not_ready}");
    endpoints.readiness.ready();
    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
    endpoints.readiness.not_ready("deregistering");
    assert!(get(addr, "/readyz")
        .await
        .contains("not ready: deregistering"));
    let metrics = get(addr, "/metrics").await;
    assert!(
        metrics.contains("application/openmetrics-text"),
        "{metrics}"
    );
    assert!(metrics.contains("berth_build_info{"), "{metrics}");
    assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));

    stop.cancel();
    task.await.unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still listening after the stop"
    );
}

/// Fails `failures` times with EMFILE, then hands out the queued connections; records
/// when each accept was attempted.
struct Flaky {
    failures: usize,
    attempts: Arc<Mutex<Vec<Instant>>>,
    queued: mpsc::UnboundedReceiver<DuplexStream>,
}

impl Accept for Flaky {
    type Stream = DuplexStream;

    async fn accept(&mut self) -> io::Result<DuplexStream> {
        self.attempts.lock().unwrap().push(Instant::now());
        if self.failures > 0 {
            self.failures -= 1;
            // EMFILE: out of file descriptors, the error that made the daemon spin.
            return Err(io::Error::from_raw_os_error(24));
        }
        match self.queued.recv().await {
            Some(stream) => Ok(stream),
            None => std::future::pending().await,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn accept_errors_back_off_and_the_server_keeps_serving() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let (queue, queued) = mpsc::unbounded_channel();
    let source = Flaky {
        failures: 10,
        attempts: attempts.clone(),
        queued,
    };
    let stop = CancellationToken::new();
    let start = Instant::now();
    let task = tokio::spawn(serve(source, endpoints(), stop.clone()));

    let (mut client, server_side) = duplex(64 * 1024);
    queue.send(server_side).unwrap();
    let response = request(&mut client, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let attempts = attempts.lock().unwrap().clone();
    // 10 failures, then the attempt that returned the connection, then the next one.
    assert!(attempts.len() >= 11, "{} attempts", attempts.len());
    let gaps: Vec<Duration> = attempts.windows(2).take(10).map(|w| w[1] - w[0]).collect();
    let ms = Duration::from_millis;
    assert_eq!(
        gaps,
        [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000].map(ms),
        "the pause doubles up to the cap"
    );
    assert_eq!(attempts[10] - start, ms(4270));

    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_backoff() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let (queue, queued) = mpsc::unbounded_channel();
    let mut source = Flaky {
        failures: 3,
        attempts: attempts.clone(),
        queued,
    };
    // Three failures, one connection, then three more failures.
    let (mut first, server_side) = duplex(1024);
    queue.send(server_side).unwrap();
    let stop = CancellationToken::new();
    let endpoints = endpoints();
    let task = tokio::spawn(async move {
        // Re-arm the failures after the first connection by wrapping the source.
        struct Rearm(Flaky, bool);
        impl Accept for Rearm {
            type Stream = DuplexStream;
            async fn accept(&mut self) -> io::Result<DuplexStream> {
                let result = self.0.accept().await;
                if result.is_ok() && !self.1 {
                    self.1 = true;
                    self.0.failures = 3;
                }
                result
            }
        }
        source.failures = 3;
        serve(Rearm(source, false), endpoints, stop).await;
    });
    assert!(request(&mut first, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    let (mut second, server_side) = duplex(1024);
    queue.send(server_side).unwrap();
    assert!(request(&mut second, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    let attempts = attempts.lock().unwrap().clone();
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    let ms = Duration::from_millis;
    // 10, 20, 40, then the connection (no pause), then 10, 20, 40 again.
    assert_eq!(&gaps[..3], &[10, 20, 40].map(ms));
    assert_eq!(gaps[3], Duration::ZERO);
    assert_eq!(&gaps[4..7], &[10, 20, 40].map(ms));
    task.abort();
}
