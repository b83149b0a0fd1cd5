//! What the metadata service answers, parsed: the identity document, the spot
//! instance-action notice and the rebalance recommendation. Pure (text in, value or
//! error out), so that the fuzz target `imds_answers` runs the very code the client
//! does; every refusal is a non-retryable [`Error::Provider`] naming the path, and
//! the field when one value is invalid.

use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use aws_smithy_types::date_time::{DateTime, Format};
use berth_core::domain::InstanceId;
use berth_core::{Error, Result};
use serde::Deserialize;

/// The instance identity document.
pub(crate) const IDENTITY_PATH: &str = "/latest/dynamic/instance-identity/document";
/// Present only while a spot interruption is scheduled.
pub(crate) const SPOT_ACTION_PATH: &str = "/latest/meta-data/spot/instance-action";
/// Present only once EC2 recommends moving off this spot instance.
pub(crate) const REBALANCE_PATH: &str = "/latest/meta-data/events/recommendations/rebalance";

/// Who this instance is, from the instance identity document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceIdentity {
    /// The instance id.
    pub instance_id: InstanceId,
    /// The region, e.g. `eu-west-1`.
    pub region: String,
    /// The Availability Zone, e.g. `eu-west-1a`.
    pub availability_zone: String,
    /// The primary private IP.
    pub private_ip: IpAddr,
}

/// What EC2 will do to an interrupted spot instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpotAction {
    /// `terminate`
    Terminate,
    /// `stop`
    Stop,
    /// `hibernate`
    Hibernate,
    /// Any other action, spelled as sent.
    Other(String),
}

impl fmt::Display for SpotAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpotAction::Terminate => "terminate",
            SpotAction::Stop => "stop",
            SpotAction::Hibernate => "hibernate",
            SpotAction::Other(other) => other,
        })
    }
}

/// A scheduled spot interruption: the instance must drain before `time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotInterruption {
    /// What will happen.
    pub action: SpotAction,
    /// When it will happen.
    pub time: SystemTime,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityDocument {
    instance_id: String,
    region: String,
    availability_zone: String,
    private_ip: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RebalanceNotice {
    notice_time: String,
}

#[derive(Deserialize)]
struct InstanceAction {
    action: String,
    time: String,
}

/// The instance identity document (`/latest/dynamic/instance-identity/document`).
pub fn identity_document(text: &str) -> Result<InstanceIdentity> {
    let document: IdentityDocument =
        serde_json::from_str(text).map_err(|e| malformed(IDENTITY_PATH, e))?;
    Ok(InstanceIdentity {
        instance_id: InstanceId::new(document.instance_id)
            .map_err(|e| malformed_field(IDENTITY_PATH, "instanceId", e))?,
        region: document.region,
        availability_zone: document.availability_zone,
        private_ip: document
            .private_ip
            .parse()
            .map_err(|e| malformed_field(IDENTITY_PATH, "privateIp", e))?,
    })
}

/// A spot interruption notice (`/latest/meta-data/spot/instance-action`).
pub fn instance_action(text: &str) -> Result<SpotInterruption> {
    let notice: InstanceAction =
        serde_json::from_str(text).map_err(|e| malformed(SPOT_ACTION_PATH, e))?;
    let time = timestamp(SPOT_ACTION_PATH, "time", &notice.time)?;
    let action = match notice.action.as_str() {
        "terminate" => SpotAction::Terminate,
        "stop" => SpotAction::Stop,
        "hibernate" => SpotAction::Hibernate,
        _ => SpotAction::Other(notice.action),
    };
    Ok(SpotInterruption { action, time })
}

/// When EC2 recommended moving off this spot instance
/// (`/latest/meta-data/events/recommendations/rebalance`).
pub fn rebalance_notice(text: &str) -> Result<SystemTime> {
    let notice: RebalanceNotice =
        serde_json::from_str(text).map_err(|e| malformed(REBALANCE_PATH, e))?;
    timestamp(REBALANCE_PATH, "noticeTime", &notice.notice_time)
}

/// An RFC 3339 time in the `field` of the answer at `path`.
fn timestamp(path: &str, field: &str, text: &str) -> Result<SystemTime> {
    let time =
        DateTime::from_str(text, Format::DateTime).map_err(|e| malformed_field(path, field, e))?;
    SystemTime::try_from(time).map_err(|e| malformed_field(path, field, e))
}

pub(crate) fn operation(path: &str) -> String {
    format!("IMDS GET {path}")
}

/// The answer at `path` is not the document it should be (serde's message names
/// a missing or mistyped field). Never retryable: asking again gets the same answer.
fn malformed(path: &str, error: impl fmt::Display) -> Error {
    Error::Provider {
        operation: operation(path),
        message: format!("unexpected answer: {error}"),
        retryable: false,
    }
}

/// The answer at `path` parsed, but its `field` holds a value that is not valid.
fn malformed_field(path: &str, field: &str, error: impl fmt::Display) -> Error {
    malformed(path, format!("field {field}: {error}"))
}
