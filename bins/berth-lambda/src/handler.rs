//! One invocation: parse the event, run the binder, answer, and log one summary line
//! (berth-runtime's `logging::summary`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use berth_aws::config::{load_sdk_config, AwsOptions};
use berth_aws::dynamodb::DynamoLedger;
use berth_aws::ec2::{Ec2Addresses, Ec2Instances};
use berth_aws::route53::Route53Zones;
use berth_aws::CallCounter;
use berth_core::engine::{Caller, RetryPolicy, Tally};
use berth_core::workflow::{
    AddressBinder, AddressProviders, BindingSettings, Outcome, SweepReport,
};
use lambda_runtime::Diagnostic;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tracing::Level;

use crate::config::{Config, ConfigError, LEDGER_KEY};
use crate::event::{self, Event};

/// Kept back from the function's deadline for an invocation to stop, write its log
/// line and answer (stopping drops the calls under way at once: a second is plenty).
const ANSWER_RESERVE: Duration = Duration::from_secs(2);

/// The error type of a state change stopped at the function's deadline.
const DEADLINE_REACHED: &str = "DeadlineReached";

/// The function's state across invocations: the binder, or why there is none.
pub(crate) struct Handler {
    app: Result<App, ConfigError>,
}

struct App {
    providers: AddressProviders,
    settings: BindingSettings,
    /// The rate limit and retries of every call; each event counts in its own scope.
    caller: Caller,
    counter: CallCounter,
}

impl App {
    /// A binder for one event: the shared providers and rate limit, a fresh tally.
    fn binder(&self) -> AddressBinder {
        AddressBinder::with_caller(
            self.providers.clone(),
            self.settings.clone(),
            self.caller.scope(),
        )
    }
}

impl Handler {
    /// Reads the configuration and builds the AWS clients. A configuration error is
    /// kept and returned by every invocation (nothing is changed), so it shows up in
    /// the function's errors and logs rather than as an opaque init failure.
    pub(crate) async fn from_env() -> Handler {
        let config = match Config::from_env() {
            Ok(config) => config,
            Err(error) => {
                tracing::error!(
                    error = %error,
                    variable = error.variable,
                    "berth-lambda is misconfigured; every invocation will fail"
                );
                return Handler { app: Err(error) };
            }
        };
        // The engine retries (with jittered backoff, within the rate limit, and counted
        // in the log line), so the SDK makes one attempt per call.
        let options = AwsOptions {
            max_attempts: 1,
            ..AwsOptions::default()
        };
        let sdk = load_sdk_config(&options).await;
        let counter = CallCounter::new();
        let providers = AddressProviders {
            instances: Arc::new(Ec2Instances::new(&sdk, counter.clone())),
            addresses: Arc::new(Ec2Addresses::new(&sdk, counter.clone())),
            dns: Arc::new(Route53Zones::new(&sdk, counter.clone())),
            ledger: Arc::new(DynamoLedger::new(
                &sdk,
                counter.clone(),
                config.table,
                LEDGER_KEY,
            )),
        };
        let app = App {
            providers,
            settings: config.settings,
            caller: Caller::new(RetryPolicy::default(), config.min_call_interval),
            counter,
        };
        Handler { app: Ok(app) }
    }

    /// Handles one event: the outcome as the response, or an error with a type
    /// (`InvalidEvent`, `Configuration`, `PoolExhausted`, ...) and a clear message.
    /// `deadline` is when Lambda stops the invocation (its context's deadline).
    pub(crate) async fn handle(
        &self,
        payload: Value,
        request_id: &str,
        deadline: SystemTime,
    ) -> Result<Value, Diagnostic> {
        let started = Instant::now();
        let mut line = Map::new();
        line.insert("request_id".into(), request_id.into());
        let mut message = "instance state change handled";
        let result = self.run(payload, deadline, &mut line, &mut message).await;
        let level = match &result {
            Ok(()) if line.get("outcome").and_then(Value::as_str) == Some(PARTIAL) => Level::WARN,
            Ok(()) => Level::INFO,
            Err(_) => Level::ERROR,
        };
        let mut record = line.clone();
        match &result {
            Ok(()) => {}
            Err(d) => {
                record.insert("outcome".into(), "error".into());
                record.insert("error_type".into(), d.error_type.clone().into());
                record.insert("error".into(), d.error_message.clone().into());
            }
        }
        record.insert(
            "duration_ms".into(),
            u64::try_from(started.elapsed().as_millis())
                .unwrap_or(u64::MAX)
                .into(),
        );
        berth_runtime::logging::summary(level, message, &record);
        result.map(|()| Value::Object(line))
    }

    async fn run(
        &self,
        payload: Value,
        deadline: SystemTime,
        line: &mut Map<String, Value>,
        message: &mut &'static str,
    ) -> Result<(), Diagnostic> {
        let app = self.app.as_ref().map_err(|e| Diagnostic {
            error_type: "Configuration".into(),
            error_message: e.to_string(),
        })?;
        let parsed = event::parse_event(payload).map_err(|e| Diagnostic {
            error_type: "InvalidEvent".into(),
            error_message: e.to_string(),
        })?;
        let change = match parsed {
            Event::StateChange(change) => change,
            Event::Sweep { event_id } => {
                *message = "pool swept";
                if let Some(id) = event_id {
                    line.insert("event_id".into(), id.into());
                }
                let result = sweep(app, stop_before(deadline), line).await;
                if line.get("outcome").and_then(Value::as_str) == Some(PARTIAL) {
                    *message = "pool swept in part: the function's deadline came first";
                }
                return result;
            }
        };
        if let Some(id) = &change.event_id {
            line.insert("event_id".into(), id.clone().into());
        }
        line.insert("instance_id".into(), change.instance_id.to_string().into());
        line.insert("state".into(), change.state.as_str().into());
        let before = app.counter.snapshot();
        let binder = app.binder();
        // Stopped before Lambda's timeout, so that the line is still written: what a
        // cut bind leaves (a claim) its redelivery continues or lets lapse.
        let stop_at = stop_before(deadline);
        let result =
            tokio::time::timeout_at(stop_at, binder.handle(&change.instance_id, change.state))
                .await;
        let calls = app.counter.since(&before);
        line.insert("aws_calls".into(), calls.values().sum::<u64>().into());
        line.insert("aws_calls_by_operation".into(), json!(calls));
        report_attempts(&binder.caller().tally(), line);
        let outcome = result
            .map_err(|_| Diagnostic {
                error_type: DEADLINE_REACHED.into(),
                error_message: format!(
                    "stopped {ANSWER_RESERVE:?} before the function's timeout with the \
                     {} event unfinished (the redelivery continues it)",
                    change.state.as_str()
                ),
            })?
            .map_err(|e| Diagnostic {
                error_type: error_type(&e).into(),
                error_message: e.to_string(),
            })?;
        line.insert("outcome".into(), outcome.kind().into());
        describe(&outcome, line);
        Ok(())
    }
}

/// The sweep's outcome when the deadline stopped it before every repair was done.
const PARTIAL: &str = "swept_in_part";

/// When an invocation stops its work: [`ANSWER_RESERVE`] before Lambda's deadline,
/// on tokio's clock.
fn stop_before(deadline: SystemTime) -> tokio::time::Instant {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::Instant::now() + left.saturating_sub(ANSWER_RESERVE)
}

/// The scheduled sweep: the whole pool reconciled, what it repaired in the line. A
/// repair that failed fails the invocation (`SweepIncomplete`) after the others ran.
/// At `stop_at` the sweep stops and its line lists what is left (`unfinished`;
/// outcome `swept_in_part`, level WARN): the next scheduled sweep continues, rather
/// than Lambda killing the invocation mid-way with nothing reported.
async fn sweep(
    app: &App,
    stop_at: tokio::time::Instant,
    line: &mut Map<String, Value>,
) -> Result<(), Diagnostic> {
    let before = app.counter.snapshot();
    let binder = app.binder();
    let result = binder.sweep_until(Some(stop_at)).await;
    let calls = app.counter.since(&before);
    line.insert("aws_calls".into(), calls.values().sum::<u64>().into());
    line.insert("aws_calls_by_operation".into(), json!(calls));
    report_attempts(&binder.caller().tally(), line);
    let report = result.map_err(|e| Diagnostic {
        error_type: error_type(&e).into(),
        error_message: format!("the pool could not be observed: {e}"),
    })?;
    let outcome = if report.is_partial() {
        PARTIAL
    } else {
        "swept"
    };
    line.insert("outcome".into(), outcome.into());
    line.insert("sweep".into(), sweep_fields(&report));
    if report.failed.is_empty() {
        return Ok(());
    }
    let failed: Vec<String> = report
        .failed
        .iter()
        .map(|(what, e)| format!("{what}: {e}"))
        .collect();
    Err(Diagnostic {
        error_type: "SweepIncomplete".into(),
        error_message: format!(
            "{} repair(s) failed (the next sweep retries them): {}{}",
            failed.len(),
            failed.join("; "),
            if report.is_partial() {
                format!(
                    "; {} left undone at the function's deadline",
                    report.unfinished.len()
                )
            } else {
                String::new()
            }
        ),
    })
}

/// The sweep's report as the log line's `sweep` object.
fn sweep_fields(report: &SweepReport) -> Value {
    let bound: Vec<Value> = report
        .bound
        .iter()
        .map(|(i, a)| json!({"instance_id": i.as_str(), "allocation_id": a.0}))
        .collect();
    let released: Vec<&str> = report.released.iter().map(|i| i.as_str()).collect();
    let freed: Vec<&str> = report.freed.iter().map(|a| a.0.as_str()).collect();
    let left_alone: Vec<Value> = report
        .skipped
        .iter()
        .map(|(a, why)| json!({"allocation_id": a.0, "reason": why}))
        .collect();
    let failed: Vec<Value> = report
        .failed
        .iter()
        .map(|(what, e)| json!({"repair": what, "error_type": error_type(e), "error": e.to_string()}))
        .collect();
    json!({
        "bound": bound,
        "released": released,
        "rows_freed": freed,
        "dns_deleted": report.dns_deleted,
        "left_alone": left_alone,
        "failed": failed,
        "unfinished": report.unfinished,
    })
}

fn describe(outcome: &Outcome, line: &mut Map<String, Value>) {
    match outcome {
        Outcome::Bound { binding, .. } => {
            line.insert(
                "allocation_id".into(),
                binding.allocation_id.0.clone().into(),
            );
            line.insert("public_ip".into(), binding.public_ip.to_string().into());
            line.insert(
                "association_id".into(),
                binding.association_id.clone().into(),
            );
            line.insert("dns_name".into(), json!(binding.dns_name));
            if let Some(why) = &binding.dns_skipped {
                line.insert("dns_skipped".into(), why.clone().into());
            }
        }
        Outcome::Released {
            addresses,
            dns_names,
        } => {
            let ids: Vec<&str> = addresses.iter().map(|a| a.0.as_str()).collect();
            line.insert("released".into(), json!(ids));
            line.insert("dns_deleted".into(), json!(dns_names));
        }
        Outcome::Ignored { reason } => {
            line.insert("reason".into(), reason.clone().into());
        }
    }
}

/// What the engine's retries cost: attempts in all, retries and calls that failed
/// after their last attempt, and the retries per operation where there were any.
fn report_attempts(tally: &Tally, line: &mut Map<String, Value>) {
    line.insert("aws_attempts".into(), tally.attempts().into());
    line.insert("aws_retries".into(), tally.retries().into());
    line.insert("aws_failures".into(), tally.failures().into());
    let retried: BTreeMap<&str, u32> = tally
        .operations
        .iter()
        .filter(|(_, o)| o.retries() > 0)
        .map(|(name, o)| (name.as_str(), o.retries()))
        .collect();
    if !retried.is_empty() {
        line.insert("aws_retries_by_operation".into(), json!(retried));
    }
}

/// The error's kind, for Lambda's `errorType` and the log line.
fn error_type(e: &berth_core::Error) -> &'static str {
    use berth_core::Error as E;
    match e {
        E::PoolExhausted { .. } => "PoolExhausted",
        E::Throttled { .. } => "Throttled",
        E::Unavailable { .. } => "Unavailable",
        E::Timeout { .. } => "Timeout",
        E::AccessDenied { .. } => "AccessDenied",
        E::NotFound { .. } => "NotFound",
        E::Conflict { .. } => "Conflict",
        E::NotOwned { .. } => "NotOwned",
        E::Invalid(_) => "Invalid",
        _ => "ProviderError",
    }
}
