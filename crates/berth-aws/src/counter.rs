//! A per-operation call and error counter, attached to every client as an SDK
//! interceptor.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata, OrchestratorError};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The service and operation of a call, as the SDK names them (`Elastic Load Balancing
/// v2`, `RegisterTargets`) — the labels the AWS Load Balancer Controller's metrics use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    /// The service id (`EC2`, `Route 53`, `DynamoDB`, ...).
    pub service: String,
    /// The operation (`RegisterTargets`, ...).
    pub operation: String,
}

/// A failed attempt of a call, by the error code AWS answered (`Throttling`,
/// `TargetGroupNotFound`, ...) or, when no answer came, by what went wrong
/// (`Timeout`, `ConnectionError`, `ResponseError`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallError {
    /// The call.
    pub call: Call,
    /// The error code.
    pub error_code: String,
}

#[derive(Debug, Default)]
struct Counts {
    calls: BTreeMap<Call, u64>,
    errors: BTreeMap<CallError, u64>,
}

/// Counts the requests sent to AWS, per service and operation, and the failed ones per
/// error code.
///
/// Every attempt counts — a call the SDK retried twice counts three times — because
/// that is what AWS rate-limits and what the benchmarks compare. Clones share the
/// same counts, so one counter can be attached to several clients and read by the
/// engine's report, the metrics (berth-runtime exports it at scrape time as
/// `berth_aws_api_calls_total` and `berth_aws_api_errors_total`) and the tests.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<Counts>>,
}

/// The service recorded by [`CallCounter::record`], which names no service.
pub const UNKNOWN_SERVICE: &str = "unknown";

impl CallCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        CallCounter::default()
    }

    /// Requests sent for `operation` so far (of any service).
    pub fn get(&self, operation: &str) -> u64 {
        self.lock()
            .calls
            .iter()
            .filter(|(call, _)| call.operation == operation)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests sent for every operation so far.
    pub fn total(&self) -> u64 {
        self.lock().calls.values().sum()
    }

    /// The counts per operation (of any service).
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (call, n) in &self.lock().calls {
            *out.entry(call.operation.clone()).or_insert(0) += n;
        }
        out
    }

    /// The calls per operation made since `before` (an earlier [`CallCounter::snapshot`]),
    /// operations without any left out: what one event or one pass spent.
    pub fn since(&self, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        self.snapshot()
            .into_iter()
            .filter_map(|(op, n)| {
                let d = n.saturating_sub(before.get(&op).copied().unwrap_or(0));
                (d > 0).then_some((op, d))
            })
            .collect()
    }

    /// The counts per service and operation.
    pub fn calls(&self) -> BTreeMap<Call, u64> {
        self.lock().calls.clone()
    }

    /// The failed attempts per service, operation and error code.
    pub fn errors(&self) -> BTreeMap<CallError, u64> {
        self.lock().errors.clone()
    }

    /// Failed attempts of `operation` so far (of any service, any code).
    pub fn errors_of(&self, operation: &str) -> u64 {
        self.lock()
            .errors
            .iter()
            .filter(|(e, _)| e.call.operation == operation)
            .map(|(_, n)| n)
            .sum()
    }

    /// Sets every count back to zero.
    pub fn reset(&self) {
        let mut counts = self.lock();
        counts.calls.clear();
        counts.errors.clear();
    }

    /// Counts one request for `operation` of an unnamed service.
    pub fn record(&self, operation: &str) {
        self.record_call(UNKNOWN_SERVICE, operation);
    }

    /// Counts one request for `operation` of `service`.
    pub fn record_call(&self, service: &str, operation: &str) {
        *self
            .lock()
            .calls
            .entry(call(service, operation))
            .or_insert(0) += 1;
    }

    /// Counts one failed attempt of `operation` of `service` with `error_code`.
    pub fn record_error(&self, service: &str, operation: &str, error_code: &str) {
        let key = CallError {
            call: call(service, operation),
            error_code: error_code.to_owned(),
        };
        *self.lock().errors.entry(key).or_insert(0) += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while holding the lock cannot leave a map of counters inconsistent.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn call(service: &str, operation: &str) -> Call {
    Call {
        service: service.to_owned(),
        operation: operation.to_owned(),
    }
}

/// The service and operation every generated operation stores in the config bag.
fn names(cfg: &ConfigBag) -> (&str, &str) {
    cfg.load::<Metadata>()
        .map_or(("unknown", "unknown"), |m| (m.service(), m.name()))
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "berth::CallCounter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = names(cfg);
        self.record_call(service, operation);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Err(error)) = context.output_or_error() {
            let (service, operation) = names(cfg);
            let code = error_code(error, context.response());
            self.record_error(service, operation, &code);
        }
        Ok(())
    }
}

/// The error code of a failed attempt: the code field of AWS's error answer (the
/// `x-amzn-ErrorType` header or `__type` of the JSON protocols, `<Code>` of the XML
/// ones — the fields the SDK's own deserializers read), else what kind of failure it
/// was.
fn error_code<E>(error: &OrchestratorError<E>, response: Option<&HttpResponse>) -> String {
    if error.is_timeout_error() {
        return "Timeout".to_owned();
    }
    if error.is_connector_error() {
        return "ConnectionError".to_owned();
    }
    if let Some(code) = response.and_then(answered_code) {
        return code;
    }
    match response {
        Some(r) => format!("HTTP{}", r.status().as_u16()),
        None if error.is_response_error() => "ResponseError".to_owned(),
        None => "Unknown".to_owned(),
    }
}

/// The code AWS put in an error answer, if it can be read.
fn answered_code(response: &HttpResponse) -> Option<String> {
    if let Some(header) = response.headers().get("x-amzn-ErrorType") {
        return Some(shape_name(header));
    }
    let body = std::str::from_utf8(response.body().bytes()?).ok()?;
    if body.trim_start().starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        let code = value
            .get("__type")
            .or_else(|| value.get("code"))
            .and_then(serde_json::Value::as_str)?;
        return Some(shape_name(code));
    }
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body[start..].find("</Code>")?;
    let code = body[start..start + len].trim();
    (!code.is_empty()).then(|| code.to_owned())
}

/// `com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException` and
/// `Throttling:http://internal.amazon.com/...` both name a shape: keep the name.
fn shape_name(raw: &str) -> String {
    let raw = raw.split(':').next().unwrap_or(raw);
    raw.rsplit('#').next().unwrap_or(raw).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::body::SdkBody;

    #[test]
    fn since_counts_only_what_came_after_the_snapshot() {
        let counter = CallCounter::new();
        counter.record_call("ec2", "DescribeAddresses");
        counter.record_call("ec2", "AssociateAddress");
        let before = counter.snapshot();
        counter.record_call("ec2", "AssociateAddress");
        counter.record_call("dynamodb", "PutItem");
        assert_eq!(
            counter.since(&before),
            BTreeMap::from([
                ("AssociateAddress".to_owned(), 1),
                ("PutItem".to_owned(), 1)
            ])
        );
    }

    #[test]
    fn clones_share_counts() {
        let counter = CallCounter::new();
        let clone = counter.clone();
        clone.record("RegisterTargets");
        clone.record("RegisterTargets");
        counter.record("DescribeTargetHealth");
        assert_eq!(counter.get("RegisterTargets"), 2);
        assert_eq!(counter.get("DeregisterTargets"), 0);
        assert_eq!(counter.total(), 3);
        assert_eq!(
            counter.snapshot().into_iter().collect::<Vec<_>>(),
            vec![
                ("DescribeTargetHealth".to_owned(), 1),
                ("RegisterTargets".to_owned(), 2)
            ]
        );
        counter.reset();
        assert_eq!(clone.total(), 0);
    }

    #[test]
    fn calls_and_errors_are_kept_per_service() {
        let counter = CallCounter::new();
        counter.record_call("EC2", "DescribeInstances");
        counter.record_call("Auto Scaling", "DescribeInstances");
        counter.record_error("EC2", "DescribeInstances", "RequestLimitExceeded");
        assert_eq!(counter.get("DescribeInstances"), 2);
        assert_eq!(counter.calls().len(), 2);
        assert_eq!(counter.errors_of("DescribeInstances"), 1);
        let (error, n) = counter.errors().into_iter().next().unwrap();
        assert_eq!(
            (error.call.service.as_str(), error.error_code.as_str(), n),
            ("EC2", "RequestLimitExceeded", 1)
        );
    }

    fn answer(status: u16, header: Option<&str>, body: &str) -> HttpResponse {
        let mut response =
            HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body.to_owned()));
        if let Some(h) = header {
            response
                .headers_mut()
                .insert("x-amzn-ErrorType", h.to_owned());
        }
        response
    }

    #[test]
    fn the_error_code_is_read_from_each_protocol() {
        let xml = "<ErrorResponse><Error><Type>Sender</Type><Code>TargetGroupNotFound</Code>\
                   <Message>One or more target groups not found</Message></Error></ErrorResponse>";
        let json = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"no"}"#;
        let cases = [
            (answer(400, None, xml), "TargetGroupNotFound"),
            (answer(400, None, json), "ConditionalCheckFailedException"),
            (
                answer(400, Some("Throttling:http://internal.amazon.com/"), ""),
                "Throttling",
            ),
            (answer(503, None, "<html>down</html>"), "HTTP503"),
        ];
        for (response, want) in cases {
            let error: OrchestratorError<()> = OrchestratorError::operation(());
            assert_eq!(error_code(&error, Some(&response)), want);
        }
        let timeout: OrchestratorError<()> = OrchestratorError::timeout("slow".into());
        assert_eq!(error_code(&timeout, None), "Timeout");
    }
}
