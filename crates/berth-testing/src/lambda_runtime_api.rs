//! A local AWS Lambda Runtime API: the endpoint a custom runtime (a `bootstrap`
//! binary built on `lambda_runtime`) polls for invocations, on loopback.
//!
//! Invocations are queued with [`LambdaRuntimeApi::invoke`]; every runtime process
//! pointed at the endpoint long-polls `GET /2018-06-01/runtime/invocation/next`, so
//! several processes pulling from one queue behave like concurrent Lambda execution
//! environments. Answers (`/response`, `/error`) are collected per request id.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::background::BoxError;

const API_PREFIX: &str = "/2018-06-01/runtime";
/// The function timeout announced in `Lambda-Runtime-Deadline-Ms`, unless set with
/// [`LambdaRuntimeApi::set_function_timeout`].
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvocationResult {
    /// `POST .../response`: the function's answer, verbatim.
    Response(String),
    /// `POST .../error`: the `Lambda-Runtime-Function-Error-Type` header and the
    /// body (`{"errorType": ..., "errorMessage": ...}`).
    Error {
        /// The error type header, if sent.
        error_type: Option<String>,
        /// The body, verbatim.
        body: String,
    },
}

impl InvocationResult {
    /// Whether the function failed.
    pub fn is_error(&self) -> bool {
        matches!(self, InvocationResult::Error { .. })
    }

    /// The response or error body.
    pub fn body(&self) -> &str {
        match self {
            InvocationResult::Response(body) | InvocationResult::Error { body, .. } => body,
        }
    }
}

#[derive(Default)]
struct State {
    queue: Mutex<VecDeque<(String, String)>>,
    results: Mutex<HashMap<String, InvocationResult>>,
    init_errors: Mutex<Vec<String>>,
    polls: Mutex<Vec<Instant>>,
    next_id: AtomicU64,
    /// The function timeout in milliseconds (0: [`FUNCTION_TIMEOUT`]).
    timeout_ms: AtomicU64,
    /// Bumped whenever the queue or the results change.
    changed: tokio::sync::Notify,
    version: AtomicU64,
}

impl State {
    fn bump(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Runtime API, served on a free loopback port by its own thread until dropped.
pub struct LambdaRuntimeApi {
    addr: SocketAddr,
    state: Arc<State>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for LambdaRuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaRuntimeApi")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl LambdaRuntimeApi {
    /// Starts the endpoint.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn start() -> LambdaRuntimeApi {
        let state = Arc::new(State::default());
        let (addr, shutdown) =
            crate::background::spawn_http_server("lambda-runtime-api", state.clone(), handle);
        LambdaRuntimeApi {
            addr,
            state,
            _shutdown: shutdown,
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The variables the Lambda service sets for a runtime process:
    /// `AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `AWS_LAMBDA_FUNCTION_VERSION`.
    pub fn env(&self, function_name: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ]
    }

    /// Queues an invocation with this JSON payload; returns its request id.
    pub fn invoke(&self, payload: impl Into<String>) -> String {
        let n = self.state.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!("00000000-0000-4000-8000-{n:012}");
        lock(&self.state.queue).push_back((id.clone(), payload.into()));
        self.state.bump();
        id
    }

    /// The function timeout the invocations delivered from now on are given (their
    /// `Lambda-Runtime-Deadline-Ms`); 60 s unless set. Nothing is killed at the
    /// deadline: the function is trusted to keep it, as the tests check.
    pub fn set_function_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.state.timeout_ms.store(ms, Ordering::SeqCst);
    }

    /// Waits for the result of an invocation.
    ///
    /// # Panics
    /// If it does not come within `timeout` (the message says how many are pending).
    pub async fn result(&self, request_id: &str, timeout: Duration) -> InvocationResult {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.state.changed.notified();
            if let Some(r) = lock(&self.state.results).get(request_id) {
                return r.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "invocation {request_id} got no answer within {timeout:?} ({} still queued, \
                     init errors: {:?})",
                    lock(&self.state.queue).len(),
                    self.init_errors()
                );
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }

    /// Waits for every one of these invocations; results in the same order.
    ///
    /// # Panics
    /// As [`LambdaRuntimeApi::result`].
    pub async fn results(
        &self,
        request_ids: &[String],
        timeout: Duration,
    ) -> Vec<InvocationResult> {
        let mut out = Vec::with_capacity(request_ids.len());
        for id in request_ids {
            out.push(self.result(id, timeout).await);
        }
        out
    }

    /// When each `GET .../invocation/next` arrived, in order.
    pub fn polls(&self) -> Vec<Instant> {
        lock(&self.state.polls).clone()
    }

    /// Waits until at least `count` `/next` requests have arrived; returns the time
    /// the `count`-th arrived.
    ///
    /// # Panics
    /// If they do not arrive within `timeout`.
    pub async fn wait_for_polls(&self, count: usize, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.state.changed.notified();
            if let Some(t) = lock(&self.state.polls).get(count.saturating_sub(1)) {
                return *t;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "fewer than {count} /next polls within {timeout:?} (init errors: {:?})",
                self.init_errors()
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), notified).await;
        }
    }

    /// Bodies posted to `/runtime/init/error`.
    pub fn init_errors(&self) -> Vec<String> {
        lock(&self.state.init_errors).clone()
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let error_type = request
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(rest) = path.strip_prefix(API_PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown path"));
    };
    if method == Method::GET && rest == "/invocation/next" {
        lock(&state.polls).push(Instant::now());
        state.bump();
        let (id, payload) = next(&state).await;
        let timeout = match state.timeout_ms.load(Ordering::SeqCst) {
            0 => FUNCTION_TIMEOUT,
            ms => Duration::from_millis(ms),
        };
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + timeout;
        let response = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", &id)
            .header(
                "lambda-runtime-deadline-ms",
                deadline.as_millis().to_string(),
            )
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:berth-test",
            )
            .header("lambda-runtime-trace-id", format!("Root=1-00000000-{id}"))
            .body(Full::new(Bytes::from(payload)))?;
        return Ok(response);
    }
    if method != Method::POST {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"));
    }
    let body = request.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    if rest == "/init/error" {
        lock(&state.init_errors).push(body);
        state.bump();
        return Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
    }
    let Some(tail) = rest.strip_prefix("/invocation/") else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown path"));
    };
    let result = match tail.rsplit_once('/') {
        Some((id, "response")) => (id, InvocationResult::Response(body)),
        Some((id, "error")) => (id, InvocationResult::Error { error_type, body }),
        _ => return Ok(reply(StatusCode::NOT_FOUND, "unknown path")),
    };
    lock(&state.results).insert(result.0.to_owned(), result.1);
    state.bump();
    Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
}

/// Long-polls the queue, as the real endpoint does.
async fn next(state: &State) -> (String, String) {
    loop {
        let notified = state.changed.notified();
        if let Some(item) = lock(&state.queue).pop_front() {
            return item;
        }
        // The timeout guards against a wake-up missed between the check and the wait.
        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
    }
}
