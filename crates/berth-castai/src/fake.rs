//! A stand-in for the Cast.ai API on loopback (feature `test-util`).
//!
//! It serves `GET /v1/kubernetes/clusters/{clusterId}/node-configurations/{id}` the way
//! the real API does — the full document with `eks.targetGroups` (ports may be null)
//! and the legacy `eks.targetGroup` — checks `X-API-Key`, counts requests, and plays
//! scripted faults: error statuses for the next N requests or until cleared, delays
//! (for client timeouts). It runs on its own thread and runtime, so it outlives any
//! one test's runtime and can serve a spawned binary.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use crate::{ApiKey, CastAiConfig};

/// A scripted misbehaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and Cast.ai's JSON error body); `429` gets a
    /// `Retry-After: 1` header.
    Status(u16),
    /// Wait this long, then answer normally (a client with a shorter timeout gives up).
    Delay(Duration),
}

#[derive(Default)]
struct State {
    configurations: HashMap<String, serde_json::Value>,
    scripted: VecDeque<Fault>,
    outage: Option<Fault>,
    requests: usize,
    requests_by_id: HashMap<String, usize>,
    refused_keys: usize,
}

/// The fake Cast.ai API. Dropping it stops the server.
pub struct FakeCastAi {
    addr: SocketAddr,
    cluster_id: String,
    api_key: ApiKey,
    state: Arc<Mutex<State>>,
    stop: Option<oneshot::Sender<()>>,
}

impl FakeCastAi {
    /// Starts serving cluster `cluster_id`, accepting only `api_key` (not empty).
    pub fn start(cluster_id: &str, api_key: &str) -> std::io::Result<Self> {
        let key = ApiKey::new(api_key)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, stopped) = oneshot::channel();
        let served = Served {
            cluster_id: cluster_id.to_owned(),
            api_key: key.expose().to_owned(),
            state: state.clone(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("fake-castai".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "fake Cast.ai cannot listen");
                            return;
                        }
                    };
                    tokio::select! {
                        () = serve(listener, Arc::new(served)) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(FakeCastAi {
            addr,
            cluster_id: cluster_id.to_owned(),
            api_key: key,
            state,
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:<port>`, for `CASTAI_API_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Client settings pointing here with the right key and short timings (timeout
    /// 2 s, backoff from 50 ms to 1 s, cache 60 s).
    pub fn config(&self) -> CastAiConfig {
        let mut config = CastAiConfig::new(self.cluster_id.clone(), self.api_key.clone());
        config.base_url = self.base_url();
        config.timeout = Duration::from_secs(2);
        config.backoff_initial = Duration::from_millis(50);
        config.backoff_max = Duration::from_secs(1);
        config
    }

    /// Serves configuration `id` with these groups in `eks.targetGroups` (`None`:
    /// a null port) and no legacy group.
    pub fn set_target_groups(&self, id: &str, groups: &[(&str, Option<u16>)]) {
        let groups: Vec<serde_json::Value> = groups
            .iter()
            .map(|(arn, port)| serde_json::json!({"arn": arn, "port": port}))
            .collect();
        self.set_eks(id, serde_json::json!({"targetGroups": groups}));
    }

    /// Serves configuration `id` with only the legacy `eks.targetGroup`.
    pub fn set_legacy_target_group(&self, id: &str, arn: &str, port: Option<u16>) {
        self.set_eks(
            id,
            serde_json::json!({"targetGroups": null, "targetGroup": {"arn": arn, "port": port}}),
        );
    }

    /// Serves configuration `id` with this `eks` object inside a realistic document.
    pub fn set_eks(&self, id: &str, eks: serde_json::Value) {
        let mut eks = eks;
        if let Some(obj) = eks.as_object_mut() {
            obj.entry("securityGroups")
                .or_insert_with(|| serde_json::json!([]));
            obj.entry("imdsV1").or_insert(serde_json::json!(false));
            obj.entry("imdsHopLimit").or_insert(serde_json::json!(2));
            obj.entry("volumeType").or_insert(serde_json::json!("gp3"));
        }
        let doc = serde_json::json!({
            "id": id,
            "name": format!("config-{id}"),
            "version": 1,
            "clusterId": self.cluster_id,
            "default": false,
            "subnets": [],
            "tags": {},
            "diskCpuRatio": 0,
            "minDiskSize": 100,
            "createdAt": "2024-05-01T10:00:00Z",
            "updatedAt": "2024-05-01T10:00:00Z",
            "eks": eks,
        });
        self.set_document(id, doc);
    }

    /// Serves configuration `id` as exactly this JSON document.
    pub fn set_document(&self, id: &str, doc: serde_json::Value) {
        self.lock().configurations.insert(id.to_owned(), doc);
    }

    /// Stops serving configuration `id` (404 from now on).
    pub fn remove(&self, id: &str) {
        self.lock().configurations.remove(id);
    }

    /// The next `times` requests meet `fault`, then service resumes.
    pub fn fail_next(&self, times: usize, fault: Fault) {
        let mut state = self.lock();
        state.scripted.extend(std::iter::repeat_n(fault, times));
    }

    /// Every request meets `fault` until this is called again with `None`.
    pub fn set_outage(&self, fault: Option<Fault>) {
        self.lock().outage = fault;
    }

    /// Requests received, faulted and refused ones included.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Requests received for configuration `id`.
    pub fn requests_for(&self, id: &str) -> usize {
        self.lock().requests_by_id.get(id).copied().unwrap_or(0)
    }

    /// Requests refused because `X-API-Key` was missing or wrong.
    pub fn refused_keys(&self) -> usize {
        self.lock().refused_keys
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeCastAi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct Served {
    cluster_id: String,
    api_key: String,
    state: Arc<Mutex<State>>,
}

async fn serve(listener: tokio::net::TcpListener, served: Arc<Served>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let served = served.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let served = served.clone();
                async move { Ok::<_, Infallible>(served.answer(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Served {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let key_ok = req
            .headers()
            .get("X-API-Key")
            .is_some_and(|k| k.as_bytes() == self.api_key.as_bytes());
        let id = path
            .strip_prefix(&format!(
                "/v1/kubernetes/clusters/{}/node-configurations/",
                self.cluster_id
            ))
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .map(str::to_owned);
        let fault = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.requests += 1;
            if let Some(id) = &id {
                *state.requests_by_id.entry(id.clone()).or_default() += 1;
            }
            if !key_ok {
                state.refused_keys += 1;
            }
            state.scripted.pop_front().or_else(|| state.outage.clone())
        };
        match fault {
            Some(Fault::Status(code)) => {
                let mut response = json(
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    serde_json::json!({"message": "injected fault", "fieldViolations": []}),
                );
                if code == 429 {
                    response.headers_mut().insert(
                        http::header::RETRY_AFTER,
                        http::HeaderValue::from_static("1"),
                    );
                }
                return response;
            }
            Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
            None => {}
        }
        if !key_ok {
            return json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"message": "Unauthorized"}),
            );
        }
        if req.method() != Method::GET {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::json!({"message": "method not allowed"}),
            );
        }
        let doc = id.and_then(|id| {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.configurations.get(&id).cloned()
        });
        match doc {
            Some(doc) => json(StatusCode::OK, doc),
            None => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"message": "node configuration not found", "fieldViolations": []}),
            ),
        }
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
