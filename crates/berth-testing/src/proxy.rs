//! A fault-injecting HTTP/1.1 reverse proxy for AWS API calls.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::background::BoxError;

/// What a [`Rule`] does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with the service's throttling error instead of forwarding:
    /// `Throttling` (HTTP 400) for query and REST-XML services such as ELBv2,
    /// Auto Scaling and Route53; `RequestLimitExceeded` (HTTP 503) for EC2;
    /// `ThrottlingException` (HTTP 400) for JSON services such as DynamoDB.
    Throttle,
    /// Answer with a server error with this HTTP status (500, 503, ...) in
    /// the service's error format.
    ServerError {
        /// HTTP status code.
        status: u16,
    },
    /// Read the request, then close the connection without answering.
    Reset,
    /// Wait this long, then keep evaluating the rules (and forward the
    /// request if no other rule answers it). Delays of several matching
    /// rules add up.
    Delay(Duration),
    /// Answer with this canned response instead of forwarding, e.g. a
    /// `DescribeTargetHealth` answer with states moto cannot produce. The
    /// content type is JSON for JSON-protocol requests, XML otherwise.
    Respond {
        /// HTTP status code.
        status: u16,
        /// The response body, verbatim.
        body: String,
    },
    /// Answer as IAM does when a policy does not grant the action:
    /// `UnauthorizedOperation` (HTTP 403) for EC2, `AccessDeniedException`
    /// (HTTP 400) for JSON services such as DynamoDB, `AccessDenied` (HTTP 403)
    /// otherwise.
    AccessDenied,
}

/// Which requests a [`Rule`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Every request.
    Any,
    /// Requests for this AWS operation, e.g. `"DescribeTargetHealth"`,
    /// `"PutItem"`, `"ChangeResourceRecordSets"` (see [`FaultProxy::count`]
    /// for how the operation is identified).
    Operation(String),
    /// Requests signed for this SigV4 service name, e.g.
    /// `"elasticloadbalancing"`, `"ec2"`, `"route53"`, `"dynamodb"`.
    Service(String),
    /// Requests whose URL path starts with this prefix.
    PathPrefix(String),
    /// Requests whose IAM action — `<SigV4 service>:<operation>`, e.g.
    /// `elasticloadbalancing:RegisterTargets` — is not in the set.
    ActionNotIn(BTreeSet<String>),
}

/// A fault-injection rule: which requests, what fault, how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    matcher: Match,
    fault: Fault,
    after: usize,
    times: Option<usize>,
    every: usize,
}

impl Rule {
    /// A rule for one AWS operation (e.g. `"DescribeTargetHealth"`) that
    /// applies to every matching request until limited with
    /// [`Rule::times`].
    pub fn new(operation: impl Into<String>, fault: Fault) -> Rule {
        Rule::matching(Match::Operation(operation.into()), fault)
    }

    /// A rule for every request.
    pub fn any(fault: Fault) -> Rule {
        Rule::matching(Match::Any, fault)
    }

    /// A rule for the requests `matcher` selects.
    pub fn matching(matcher: Match, fault: Fault) -> Rule {
        Rule {
            matcher,
            fault,
            after: 0,
            times: None,
            every: 1,
        }
    }

    /// Refuses (AccessDenied) every request whose IAM action is not in `allowed`, as
    /// AWS does for a principal whose policy grants exactly `allowed`.
    pub fn deny_all_but<I>(allowed: I) -> Rule
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Rule::matching(
            Match::ActionNotIn(allowed.into_iter().map(Into::into).collect()),
            Fault::AccessDenied,
        )
    }

    /// Apply to at most `n` matching requests, then let them through.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }

    /// Apply to one matching request in `n` (the n-th, the 2n-th, ...; counted after
    /// [`Rule::after`]): `every(5)` fails a fifth of the calls, deterministically.
    pub fn every(mut self, n: usize) -> Rule {
        self.every = n.max(1);
        self
    }

    /// Let the first `n` matching requests through before applying.
    pub fn after(mut self, n: usize) -> Rule {
        self.after = n;
        self
    }
}

/// Identifies a rule added with [`FaultProxy::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(u64);

/// An in-process HTTP/1.1 reverse proxy on a free loopback port that forwards
/// to a target endpoint (moto) and injects faults by [`Rule`]s.
///
/// Rules are evaluated in the order they were added: matching
/// [`Fault::Delay`] rules add latency, and the first other matching rule
/// decides the answer; with none, the request is forwarded. Rules can be
/// added and removed while requests flow.
///
/// The proxy serves on its own thread and runtime, so it keeps working while
/// a test blocks (e.g. waiting for a child process) and from synchronous
/// tests ([`FaultProxy::start_blocking`]). It stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("endpoint", &self.endpoint())
            .field("target", &self.state.target)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy to `target` (an `http://host:port` endpoint, such as
    /// [`MotoServer::endpoint`](crate::MotoServer::endpoint)).
    ///
    /// # Panics
    /// If `target` is not an `http://` URL or no loopback port can be bound.
    pub async fn start(target: &str) -> FaultProxy {
        FaultProxy::start_blocking(target)
    }

    /// [`FaultProxy::start`] for synchronous tests; it does not block for
    /// long and may also be called from async code.
    ///
    /// # Panics
    /// As [`FaultProxy::start`].
    pub fn start_blocking(target: &str) -> FaultProxy {
        let authority = target
            .strip_prefix("http://")
            .map(|rest| rest.split('/').next().unwrap_or_default())
            .filter(|authority| !authority.is_empty())
            .unwrap_or_else(|| panic!("FaultProxy target must be an http:// URL, got {target:?}"))
            .to_owned();
        let state = Arc::new(State::new(authority));
        let (addr, shutdown) =
            crate::background::spawn_http_server("fault-proxy", state.clone(), handle);
        FaultProxy {
            addr,
            state,
            _shutdown: shutdown,
        }
    }

    /// The proxy's base URL, `http://127.0.0.1:PORT`; point SDK clients or
    /// child processes ([`aws_env`](crate::aws_env)) at it.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds a rule after the existing ones.
    pub fn add(&self, rule: Rule) -> RuleId {
        let id = RuleId(self.state.next_id.fetch_add(1, Ordering::Relaxed));
        lock(&self.state.rules).push(ActiveRule {
            id,
            rule,
            seen: 0,
            fired: 0,
        });
        id
    }

    /// Removes a rule; false if it was already removed.
    pub fn remove(&self, id: RuleId) -> bool {
        let mut rules = lock(&self.state.rules);
        let before = rules.len();
        rules.retain(|r| r.id != id);
        rules.len() != before
    }

    /// Removes every rule: all requests are forwarded from now on.
    pub fn clear(&self) {
        lock(&self.state.rules).clear();
    }

    /// How many requests a rule has acted on (0 once removed).
    pub fn fired(&self, id: RuleId) -> usize {
        lock(&self.state.rules)
            .iter()
            .find(|r| r.id == id)
            .map_or(0, |r| r.fired)
    }

    /// How many requests for `operation` the proxy has received, whether
    /// forwarded or faulted.
    ///
    /// The operation is the part after the last `.` of the `X-Amz-Target`
    /// header (JSON protocols: DynamoDB), else the `Action` parameter of the
    /// form body or query string (query protocols: ELBv2, EC2, Auto Scaling),
    /// else, for Route53's REST API, the operation its method and path map to
    /// (`ChangeResourceRecordSets`, `ListResourceRecordSets`, `GetChange`,
    /// `ListHostedZones`, `ListHostedZonesByName`, `GetHostedZone`, ...), and
    /// otherwise `"METHOD /path"`.
    pub fn count(&self, operation: &str) -> usize {
        lock(&self.state.log)
            .iter()
            .filter(|op| *op == operation)
            .count()
    }

    /// Requests received per operation.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for op in lock(&self.state.log).iter() {
            *counts.entry(op.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// All requests received.
    pub fn total(&self) -> usize {
        lock(&self.state.log).len()
    }

    /// The operations of all requests received, in arrival order.
    pub fn operations(&self) -> Vec<String> {
        lock(&self.state.log).clone()
    }

    /// Forgets the requests counted and the bodies kept so far (rules keep their
    /// state).
    pub fn reset_counts(&self) {
        lock(&self.state.log).clear();
        lock(&self.state.forwarded).clear();
    }

    /// The bodies of the requests for `operation` that were forwarded to the target
    /// (what the service actually received, whatever it answered), in arrival order;
    /// faulted requests are not included. E.g. the form bodies of `RegisterTargets`,
    /// to count how often each target was registered.
    pub fn forwarded_bodies(&self, operation: &str) -> Vec<String> {
        lock(&self.state.forwarded)
            .iter()
            .filter(|(op, _)| op == operation)
            .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
            .collect()
    }
}

struct ActiveRule {
    id: RuleId,
    rule: Rule,
    /// Matching requests seen, including those let through by `after`.
    seen: usize,
    /// Matching requests acted on.
    fired: usize,
}

struct State {
    /// `host:port` of the target.
    target: String,
    rules: Mutex<Vec<ActiveRule>>,
    next_id: AtomicU64,
    log: Mutex<Vec<String>>,
    /// Operation and body of every forwarded request.
    forwarded: Mutex<Vec<(String, Bytes)>>,
}

/// What to do with a request once the delays are served.
enum Verdict {
    Forward,
    Throttle,
    ServerError(u16),
    Reset,
    Respond(u16, String),
    AccessDenied,
}

impl State {
    fn new(target: String) -> State {
        State {
            target,
            rules: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            log: Mutex::new(Vec::new()),
            forwarded: Mutex::new(Vec::new()),
        }
    }

    fn decide(&self, call: &Call, path: &str) -> (Duration, Verdict) {
        let mut delay = Duration::ZERO;
        for active in lock(&self.rules).iter_mut() {
            let applies = match &active.rule.matcher {
                Match::Any => true,
                Match::Operation(op) => *op == call.operation,
                Match::Service(service) => call.service.as_deref() == Some(service.as_str()),
                Match::PathPrefix(prefix) => path.starts_with(prefix.as_str()),
                Match::ActionNotIn(allowed) => !allowed.contains(&call.action()),
            };
            if !applies {
                continue;
            }
            active.seen += 1;
            if active.seen <= active.rule.after
                || active.rule.times.is_some_and(|times| active.fired >= times)
                || (active.seen - active.rule.after) % active.rule.every != 0
            {
                continue;
            }
            active.fired += 1;
            let verdict = match &active.rule.fault {
                Fault::Delay(d) => {
                    delay += *d;
                    continue;
                }
                Fault::Throttle => Verdict::Throttle,
                Fault::ServerError { status } => Verdict::ServerError(*status),
                Fault::Reset => Verdict::Reset,
                Fault::Respond { status, body } => Verdict::Respond(*status, body.clone()),
                Fault::AccessDenied => Verdict::AccessDenied,
            };
            return (delay, verdict);
        }
        (delay, Verdict::Forward)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let call = Call::identify(&parts, &body);
    lock(&state.log).push(call.operation.clone());

    let (delay, verdict) = state.decide(&call, parts.uri.path());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Ok(match verdict {
        Verdict::Forward => {
            lock(&state.forwarded).push((call.operation.clone(), body.clone()));
            match forward(&state.target, parts, body).await {
                Ok(response) => response,
                Err(e) => respond(
                    StatusCode::BAD_GATEWAY.as_u16(),
                    "text/plain",
                    format!(
                        "berth-testing FaultProxy cannot reach {}: {e}",
                        state.target
                    ),
                ),
            }
        }
        Verdict::Throttle => call.protocol.throttle(),
        Verdict::ServerError(status) => call.protocol.server_error(status),
        Verdict::Reset => return Err("fault injected: connection closed without an answer".into()),
        Verdict::Respond(status, body) => respond(status, call.protocol.content_type(), body),
        Verdict::AccessDenied => call.protocol.access_denied(&call.action()),
    })
}

/// Forwards the request unchanged (same Host header, so the SigV4 signature
/// stays valid) over a fresh connection to the target.
async fn forward(
    target: &str,
    mut parts: Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let stream = tokio::net::TcpStream::connect(target).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    strip_hop_by_hop(&mut parts.headers);
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (mut parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Full::new(body)))
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
    ] {
        headers.remove(name);
    }
}

fn respond(status: u16, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("x-amzn-requestid", HeaderValue::from_static(REQUEST_ID));
    response
}

const REQUEST_ID: &str = "berth-testing-fault";

/// The wire protocol of a request, which decides the error format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// awsJson (DynamoDB): `X-Amz-Target` header.
    Json,
    /// EC2's query protocol, with its own error document.
    Ec2,
    /// awsQuery (ELBv2, Auto Scaling) and restXml (Route53).
    Xml,
}

impl Protocol {
    fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => "application/x-amz-json-1.0",
            Protocol::Ec2 | Protocol::Xml => "text/xml",
        }
    }

    fn throttle(self) -> Response<Full<Bytes>> {
        match self {
            Protocol::Json => self.error(400, "ThrottlingException", "Rate exceeded"),
            Protocol::Ec2 => self.error(503, "RequestLimitExceeded", "Request limit exceeded."),
            Protocol::Xml => self.error(400, "Throttling", "Rate exceeded"),
        }
    }

    fn access_denied(self, action: &str) -> Response<Full<Bytes>> {
        let message =
            format!("not authorized to perform: {action} (denied by berth-testing FaultProxy)");
        match self {
            Protocol::Json => self.error(400, "AccessDeniedException", &message),
            Protocol::Ec2 => self.error(403, "UnauthorizedOperation", &message),
            Protocol::Xml => self.error(403, "AccessDenied", &message),
        }
    }

    fn server_error(self, status: u16) -> Response<Full<Bytes>> {
        let code = match (self, status) {
            (Protocol::Ec2, 503) => "Unavailable",
            (Protocol::Ec2, _) => "InternalError",
            (Protocol::Json, 503) | (Protocol::Xml, 503) => "ServiceUnavailable",
            (Protocol::Json, _) => "InternalServerError",
            (Protocol::Xml, _) => "InternalFailure",
        };
        self.error(status, code, "injected by berth-testing FaultProxy")
    }

    fn error(self, status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
        let body = match self {
            Protocol::Json => format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
            Protocol::Ec2 => format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{REQUEST_ID}</RequestID></Response>"#
            ),
            Protocol::Xml => {
                let kind = if status < 500 { "Sender" } else { "Receiver" };
                format!(
                    r#"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{REQUEST_ID}</RequestId></ErrorResponse>"#
                )
            }
        };
        respond(status, self.content_type(), body)
    }
}

/// What a request is: operation, SigV4 service and protocol.
#[derive(Debug)]
struct Call {
    operation: String,
    service: Option<String>,
    protocol: Protocol,
}

impl Call {
    /// The IAM action: `<SigV4 service>:<operation>` (IAM's prefixes are the services'
    /// signing names for every service berth calls).
    fn action(&self) -> String {
        format!(
            "{}:{}",
            self.service.as_deref().unwrap_or("unsigned"),
            self.operation
        )
    }

    fn identify(parts: &Parts, body: &[u8]) -> Call {
        let service = signing_service(&parts.headers);
        if let Some(target) = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
        {
            let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
            return Call {
                operation,
                service,
                protocol: Protocol::Json,
            };
        }
        let action = form_param(body, "Action")
            .or_else(|| form_param(parts.uri.query().unwrap_or("").as_bytes(), "Action"));
        if let Some(operation) = action {
            let protocol = if service.as_deref() == Some("ec2") {
                Protocol::Ec2
            } else {
                Protocol::Xml
            };
            return Call {
                operation,
                service,
                protocol,
            };
        }
        let operation = rest_operation(parts.method.as_str(), parts.uri.path());
        Call {
            operation,
            service,
            protocol: Protocol::Xml,
        }
    }
}

/// The service of the SigV4 credential scope:
/// `Credential=AKID/20250101/us-east-1/elasticloadbalancing/aws4_request`.
fn signing_service(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_owned)
}

/// The (alphanumeric, so not percent-decoded) value of `name` in a
/// form-encoded body or query string.
fn form_param(form: &[u8], name: &str) -> Option<String> {
    let form = std::str::from_utf8(form).ok()?;
    form.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Route53's REST operations by method and path; `"METHOD /path"` otherwise.
fn rest_operation(method: &str, path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let operation = match (method, segments.as_slice()) {
        ("GET", ["2013-04-01", "hostedzone"]) => Some("ListHostedZones"),
        ("POST", ["2013-04-01", "hostedzone"]) => Some("CreateHostedZone"),
        ("GET", ["2013-04-01", "hostedzone", _]) => Some("GetHostedZone"),
        ("DELETE", ["2013-04-01", "hostedzone", _]) => Some("DeleteHostedZone"),
        ("GET", ["2013-04-01", "hostedzone", _, "rrset"]) => Some("ListResourceRecordSets"),
        ("POST", ["2013-04-01", "hostedzone", _, "rrset"]) => Some("ChangeResourceRecordSets"),
        ("GET", ["2013-04-01", "hostedzonesbyname"]) => Some("ListHostedZonesByName"),
        ("GET", ["2013-04-01", "hostedzonecount"]) => Some("GetHostedZoneCount"),
        ("GET", ["2013-04-01", "change", _]) => Some("GetChange"),
        ("GET", ["2013-04-01", "tags", _, _]) => Some("ListTagsForResource"),
        ("POST", ["2013-04-01", "tags", _, _]) => Some("ChangeTagsForResource"),
        _ => None,
    };
    operation.map_or_else(|| format!("{method} {path}"), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    const ELB_AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=x";
    const EC2_AUTH: &str =
        "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=x";

    #[test]
    fn identifies_json_query_ec2_and_rest_calls() {
        let json = Call::identify(
            &parts(
                "POST",
                "/",
                &[("x-amz-target", "DynamoDB_20120810.PutItem")],
            ),
            b"{}",
        );
        assert_eq!(
            (json.operation.as_str(), json.protocol),
            ("PutItem", Protocol::Json)
        );

        let query = Call::identify(
            &parts("POST", "/", &[("authorization", ELB_AUTH)]),
            b"Action=DescribeTargetHealth&Version=2015-12-01&TargetGroupArn=arn",
        );
        assert_eq!(
            (query.operation.as_str(), query.protocol),
            ("DescribeTargetHealth", Protocol::Xml)
        );
        assert_eq!(query.service.as_deref(), Some("elasticloadbalancing"));

        let ec2 = Call::identify(
            &parts("POST", "/", &[("authorization", EC2_AUTH)]),
            b"Action=DescribeInstances&Version=2016-11-15",
        );
        assert_eq!(
            (ec2.operation.as_str(), ec2.protocol),
            ("DescribeInstances", Protocol::Ec2)
        );

        let get = Call::identify(
            &parts("GET", "/?Action=DescribeAddresses&Version=1", &[]),
            b"",
        );
        assert_eq!(get.operation, "DescribeAddresses");

        let rest = Call::identify(
            &parts("POST", "/2013-04-01/hostedzone/Z123/rrset/", &[]),
            b"<x/>",
        );
        assert_eq!(
            (rest.operation.as_str(), rest.protocol),
            ("ChangeResourceRecordSets", Protocol::Xml)
        );
        let change = Call::identify(&parts("GET", "/2013-04-01/change/C1", &[]), b"");
        assert_eq!(change.operation, "GetChange");
        let other = Call::identify(&parts("GET", "/something/else", &[]), b"");
        assert_eq!(other.operation, "GET /something/else");
    }

    #[test]
    fn actions_outside_the_allowed_set_are_denied_in_the_services_format() {
        let state = State::new("127.0.0.1:1".into());
        lock(&state.rules).push(ActiveRule {
            id: RuleId(1),
            rule: Rule::deny_all_but(["elasticloadbalancing:DescribeTargetHealth"]),
            seen: 0,
            fired: 0,
        });
        let call = |service: &str, operation: &str, protocol| Call {
            operation: operation.into(),
            service: Some(service.into()),
            protocol,
        };
        let allowed = call(
            "elasticloadbalancing",
            "DescribeTargetHealth",
            Protocol::Xml,
        );
        assert!(matches!(state.decide(&allowed, "/").1, Verdict::Forward));
        let refused = call("elasticloadbalancing", "RegisterTargets", Protocol::Xml);
        assert!(matches!(
            state.decide(&refused, "/").1,
            Verdict::AccessDenied
        ));
        assert_eq!(refused.action(), "elasticloadbalancing:RegisterTargets");

        let status = |protocol: Protocol| protocol.access_denied("x:Y").status().as_u16();
        assert_eq!(status(Protocol::Ec2), 403);
        assert_eq!(status(Protocol::Json), 400);
        assert_eq!(status(Protocol::Xml), 403);
    }

    #[test]
    fn every_applies_to_one_matching_request_in_n() {
        let state = State::new("127.0.0.1:1".into());
        let call = Call {
            operation: "PutItem".into(),
            service: None,
            protocol: Protocol::Json,
        };
        lock(&state.rules).push(ActiveRule {
            id: RuleId(0),
            rule: Rule::any(Fault::Throttle).after(1).every(3),
            seen: 0,
            fired: 0,
        });
        let throttled: Vec<bool> = (0..8)
            .map(|_| matches!(state.decide(&call, "/").1, Verdict::Throttle))
            .collect();
        assert_eq!(
            throttled,
            [false, false, false, true, false, false, true, false]
        );
    }

    #[test]
    fn rules_apply_in_order_with_after_and_times() {
        let state = State::new("127.0.0.1:1".into());
        let call = Call {
            operation: "PutItem".into(),
            service: None,
            protocol: Protocol::Json,
        };
        let add = |rule: Rule| {
            let id = RuleId(state.next_id.fetch_add(1, Ordering::Relaxed));
            lock(&state.rules).push(ActiveRule {
                id,
                rule,
                seen: 0,
                fired: 0,
            });
        };
        add(Rule::any(Fault::Delay(Duration::from_millis(5))).times(1));
        add(Rule::new("GetItem", Fault::Reset));
        add(Rule::new("PutItem", Fault::Throttle).after(1).times(2));
        add(Rule::matching(
            Match::PathPrefix("/".into()),
            Fault::ServerError { status: 503 },
        )
        .times(1));

        let verdicts: Vec<(Duration, &str)> = (0..5)
            .map(|_| {
                let (delay, verdict) = state.decide(&call, "/");
                let name = match verdict {
                    Verdict::Forward => "forward",
                    Verdict::Throttle => "throttle",
                    Verdict::ServerError(_) => "5xx",
                    Verdict::Reset => "reset",
                    Verdict::Respond(..) => "respond",
                    Verdict::AccessDenied => "access-denied",
                };
                (delay, name)
            })
            .collect();
        let ms = Duration::from_millis;
        assert_eq!(
            verdicts,
            vec![
                (ms(5), "5xx"),
                (ms(0), "throttle"),
                (ms(0), "throttle"),
                (ms(0), "forward"),
                (ms(0), "forward"),
            ]
        );
    }
}
