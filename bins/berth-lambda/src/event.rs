//! The events the function accepts: EventBridge's "EC2 Instance State-change
//! Notification", and its "Scheduled Event" (`aws.events`), which runs the pool sweep.
//! Anything else is refused with a message saying what was wrong.

use aws_lambda_events::event::cloudwatch_events::ec2::InstanceStateChange;
use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use berth_core::domain::{InstanceId, InstanceState};
use serde_json::Value;

/// The event's `source`.
const SOURCE: &str = "aws.ec2";
/// The event's `detail-type`.
const DETAIL_TYPE: &str = "EC2 Instance State-change Notification";

/// What the function acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateChange {
    /// The EventBridge event id (for the log line).
    pub(crate) event_id: Option<String>,
    /// The instance.
    pub(crate) instance_id: InstanceId,
    /// Its new state.
    pub(crate) state: InstanceState,
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidEvent(pub(crate) String);

impl std::fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid event: {}", self.0)
    }
}

impl std::error::Error for InvalidEvent {}

/// The scheduled event's `source`.
const SCHEDULE_SOURCE: &str = "aws.events";
/// The scheduled event's `detail-type`.
const SCHEDULE_DETAIL_TYPE: &str = "Scheduled Event";

/// An event the function acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// An instance changed state: bind or release.
    StateChange(StateChange),
    /// The schedule fired: sweep the whole pool.
    Sweep {
        /// The EventBridge event id (for the log line).
        event_id: Option<String>,
    },
}

/// Parses and checks any event the function accepts: a scheduled event (the pool
/// sweep) or a state change.
pub(crate) fn parse_event(payload: Value) -> Result<Event, InvalidEvent> {
    let field = |name: &str| payload.get(name).and_then(Value::as_str);
    if field("source") == Some(SCHEDULE_SOURCE)
        && field("detail-type") == Some(SCHEDULE_DETAIL_TYPE)
    {
        let event_id = field("id").map(str::to_owned);
        return Ok(Event::Sweep { event_id });
    }
    parse(payload).map(Event::StateChange)
}

/// Parses and checks a state-change event.
pub(crate) fn parse(payload: Value) -> Result<StateChange, InvalidEvent> {
    if !payload.is_object() {
        return Err(InvalidEvent(format!(
            "expected an EventBridge event object, got {}",
            kind(&payload)
        )));
    }
    let source = payload.get("source").and_then(Value::as_str);
    let detail_type = payload.get("detail-type").and_then(Value::as_str);
    if source != Some(SOURCE) || detail_type != Some(DETAIL_TYPE) {
        return Err(InvalidEvent(format!(
            "unrelated event (source {source:?}, detail-type {detail_type:?}); \
             expected source \"{SOURCE}\" and detail-type \"{DETAIL_TYPE}\""
        )));
    }
    let event: CloudWatchEvent<InstanceStateChange> = serde_json::from_value(payload)
        .map_err(|e| InvalidEvent(format!("malformed {DETAIL_TYPE}: {e}")))?;
    let detail = event
        .detail
        .ok_or_else(|| InvalidEvent(format!("{DETAIL_TYPE} without a detail")))?;
    let instance_id = InstanceId::new(detail.instance_id)
        .map_err(|e| InvalidEvent(format!("detail.instance-id: {e}")))?;
    let state = detail
        .state
        .parse()
        .map_err(|e| InvalidEvent(format!("detail.state: {e}")))?;
    Ok(StateChange {
        event_id: event.id,
        instance_id,
        state,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A well-formed event, for tests and the documentation.
#[cfg(test)]
pub(crate) fn example(instance_id: &str, state: &str) -> Value {
    serde_json::json!({
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": "123456789012",
        "time": "2024-11-11T21:29:54Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}")],
        "detail": {"instance-id": instance_id, "state": state}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduled_event_is_a_sweep() {
        let scheduled = serde_json::json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-27T17:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/berth-sweep"],
            "detail": {}
        });
        assert_eq!(
            parse_event(scheduled).unwrap(),
            Event::Sweep {
                event_id: Some("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa".into())
            }
        );
        let change = parse_event(example("i-0abc", "running")).unwrap();
        assert!(matches!(change, Event::StateChange(c) if c.state == InstanceState::Running));
        let mut other = example("i-0abc", "running");
        other["detail-type"] = "Scheduled Event".into();
        assert!(
            parse_event(other).is_err(),
            "aws.ec2 with a schedule's detail-type"
        );
    }

    #[test]
    fn a_state_change_is_parsed() {
        let change = parse(example("i-0abc", "running")).unwrap();
        assert_eq!(change.instance_id.as_str(), "i-0abc");
        assert_eq!(change.state, InstanceState::Running);
        assert_eq!(
            parse(example("i-0abc", "shutting-down")).unwrap().state,
            InstanceState::ShuttingDown
        );
    }

    #[test]
    fn malformed_and_unrelated_events_are_refused_with_the_reason() {
        let mut other = example("i-0abc", "running");
        other["source"] = "aws.s3".into();
        let mut no_detail = example("i-0abc", "running");
        no_detail.as_object_mut().unwrap().remove("detail");
        let mut no_id = example("i-0abc", "running");
        no_id["detail"]
            .as_object_mut()
            .unwrap()
            .remove("instance-id");
        for (event, needle) in [
            (serde_json::json!("hello"), "a string"),
            (serde_json::json!({}), "unrelated event"),
            (other, "aws.s3"),
            (no_detail, "without a detail"),
            (no_id, "instance-id"),
            (example("vol-1", "running"), "detail.instance-id"),
            (example("i-0abc", "rebooting"), "detail.state"),
        ] {
            let err = parse(event).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(err.starts_with("invalid event"), "{err}");
        }
    }
}
