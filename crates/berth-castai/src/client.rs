//! The HTTP client, its cache and its backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::provider::{GroupBinding, NodeConfigurations};
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::model::{parse_node_configuration, NodeConfiguration};
use crate::{CastAiConfig, Error};

/// The operation name errors carry.
const OPERATION: &str = "Cast.ai GetNodeConfiguration";

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A Cast.ai API client with a per-configuration cache. Cheap to share behind an `Arc`;
/// concurrent lookups of one configuration make one request.
pub struct CastAiClient {
    config: CastAiConfig,
    base: String,
    http: HttpClient,
    entries: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Entry>>>>,
}

/// What is known about one configuration id.
#[derive(Default)]
struct Entry {
    /// The last good answer and when it was fetched.
    last: Option<(NodeConfiguration, Instant)>,
    /// Consecutive retryable failures.
    failures: u32,
    /// No request before this instant (backing off).
    quiet_until: Option<Instant>,
    /// The failure that started the current backoff.
    last_error: Option<berth_core::Error>,
}

/// A failed request, with the server's `Retry-After` when it sent one.
struct Failure {
    error: berth_core::Error,
    retry_after: Option<Duration>,
}

impl CastAiClient {
    /// Builds the client. Fails on a malformed base URL, or when an `https://` URL is
    /// configured and no root certificates can be loaded.
    pub fn new(config: CastAiConfig) -> Result<Self, Error> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .map_err(|e| Error::Config(format!("CASTAI_API_URL {base:?} is not a URL: {e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(Error::Config(format!(
                    "CASTAI_API_URL {base:?} must start with https:// (or http:// for a local test server)"
                )))
            }
        };
        if config.cluster_id.trim().is_empty() {
            return Err(Error::Config("the Cast.ai cluster id is empty".into()));
        }
        if config.cluster_id.contains('/') {
            return Err(Error::Config(format!(
                "the Cast.ai cluster id {:?} contains '/'",
                config.cluster_id
            )));
        }
        let tls = tls_config(https)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(CastAiClient {
            config,
            base,
            http,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The settings this client runs with.
    pub fn config(&self) -> &CastAiConfig {
        &self.config
    }

    /// A node configuration: from the cache while fresh; else fetched. When the fetch
    /// fails with a retryable error (outage, 5xx, timeout, 429) the last known
    /// configuration is served — stale but safe — and further requests for this id
    /// pause with doubling backoff. Without a cached answer the retryable error is
    /// returned. Refused keys, unknown ids and malformed answers are returned as errors.
    pub async fn node_configuration(&self, id: &str) -> berth_core::Result<NodeConfiguration> {
        let entry = self.entry(id);
        let mut entry = entry.lock().await;
        let now = Instant::now();
        if let Some((cfg, at)) = &entry.last {
            if now.duration_since(*at) < self.config.cache_ttl {
                return Ok(cfg.clone());
            }
        }
        if entry.quiet_until.is_some_and(|until| now < until) {
            return match &entry.last {
                Some((cfg, _)) => Ok(cfg.clone()),
                None => Err(entry.last_error.clone().unwrap_or_else(|| {
                    berth_core::Error::Unavailable {
                        operation: OPERATION.into(),
                        message: format!("backing off after failures fetching {id}"),
                    }
                })),
            };
        }
        match self.request(id).await {
            Ok(cfg) => {
                entry.last = Some((cfg.clone(), Instant::now()));
                entry.failures = 0;
                entry.quiet_until = None;
                entry.last_error = None;
                Ok(cfg)
            }
            Err(Failure { error, retry_after }) if error.is_retryable() => {
                entry.failures = entry.failures.saturating_add(1);
                let pause = self
                    .backoff(entry.failures)
                    .max(retry_after.unwrap_or_default());
                entry.quiet_until = Some(Instant::now() + pause);
                entry.last_error = Some(error.clone());
                match &entry.last {
                    Some((cfg, _)) => {
                        tracing::warn!(
                            configuration = id,
                            error = %error,
                            failures = entry.failures,
                            pause_secs = pause.as_secs_f64(),
                            "Cast.ai unavailable; serving the last known node configuration"
                        );
                        Ok(cfg.clone())
                    }
                    None => {
                        tracing::warn!(
                            configuration = id,
                            error = %error,
                            failures = entry.failures,
                            pause_secs = pause.as_secs_f64(),
                            "Cast.ai unavailable and no node configuration cached"
                        );
                        Err(error)
                    }
                }
            }
            Err(Failure { error, .. }) => Err(error),
        }
    }

    /// Drops the cached answer and backoff state of one configuration.
    pub fn forget(&self, id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// One request, no cache, no fallback.
    pub async fn fetch(&self, id: &str) -> berth_core::Result<NodeConfiguration> {
        self.request(id).await.map_err(|f| f.error)
    }

    fn entry(&self, id: &str) -> Arc<tokio::sync::Mutex<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_owned())
            .or_default()
            .clone()
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.config
            .backoff_initial
            .saturating_mul(factor)
            .min(self.config.backoff_max)
    }

    async fn request(&self, id: &str) -> Result<NodeConfiguration, Failure> {
        let fail = |error| Failure {
            error,
            retry_after: None,
        };
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(fail(berth_core::Error::invalid(format!(
                "{id:?} is not a Cast.ai node configuration id"
            ))));
        }
        let url = format!(
            "{}/v1/kubernetes/clusters/{}/node-configurations/{id}",
            self.base, self.config.cluster_id
        );
        let request = Request::builder()
            .method(Method::GET)
            .uri(&url)
            .header("X-API-Key", self.config.api_key.expose())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| fail(berth_core::Error::invalid(format!("request to {url}: {e}"))))?;
        let timeout = self.config.timeout;
        let timed_out = || {
            fail(berth_core::Error::Timeout {
                operation: OPERATION.into(),
                after: timeout,
            })
        };
        let deadline = Instant::now() + timeout;
        let response = tokio::time::timeout_at(deadline, self.http.request(request))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| {
                fail(berth_core::Error::Unavailable {
                    operation: OPERATION.into(),
                    message: format!("cannot reach {}: {e}", self.base),
                })
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = tokio::time::timeout_at(deadline, response.into_body().collect())
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| {
                fail(berth_core::Error::Unavailable {
                    operation: OPERATION.into(),
                    message: format!("reading the answer of {}: {e}", self.base),
                })
            })?
            .to_bytes();
        if status.is_success() {
            return parse_node_configuration(id, &body).map_err(fail);
        }
        let error = classify(status, id, &self.config.cluster_id, &body);
        Err(Failure { error, retry_after })
    }
}

/// Maps an HTTP status to the core error the engine understands.
fn classify(status: StatusCode, id: &str, cluster: &str, body: &[u8]) -> berth_core::Error {
    let detail = String::from_utf8_lossy(&body[..body.len().min(300)])
        .trim()
        .to_owned();
    match status {
        StatusCode::TOO_MANY_REQUESTS => berth_core::Error::Throttled {
            operation: OPERATION.into(),
            message: detail,
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => berth_core::Error::Provider {
            operation: OPERATION.into(),
            message: format!(
                "Cast.ai refused the API key (HTTP {}): check CLUSTER_API_KEY and that the key \
                 may read cluster {cluster}",
                status.as_u16()
            ),
            retryable: false,
        },
        StatusCode::NOT_FOUND => berth_core::Error::not_found(format!(
            "Cast.ai node configuration {id} in cluster {cluster}"
        )),
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
            berth_core::Error::Unavailable {
                operation: OPERATION.into(),
                message: format!("HTTP {}: {detail}", s.as_u16()),
            }
        }
        s => berth_core::Error::Provider {
            operation: OPERATION.into(),
            message: format!("HTTP {}: {detail}", s.as_u16()),
            retryable: false,
        },
    }
}

/// rustls on aws-lc-rs (the provider the AWS SDK already links), named explicitly so
/// a second provider elsewhere in the binary cannot make the default ambiguous.
fn tls_config(https: bool) -> Result<rustls::ClientConfig, Error> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls(e.to_string()))?;
    if !https {
        // Plain HTTP to a local fake: no roots needed, and none may be installed.
        return Ok(builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth());
    }
    use hyper_rustls::ConfigBuilderExt;
    Ok(builder
        .with_native_roots()
        .map_err(|e| Error::Tls(format!("loading the system's root certificates: {e}")))?
        .with_no_client_auth())
}

#[async_trait]
impl NodeConfigurations for CastAiClient {
    async fn target_groups(&self, configuration_id: &str) -> berth_core::Result<Vec<GroupBinding>> {
        self.node_configuration(configuration_id)
            .await
            .map(|c| c.target_groups)
    }
}
