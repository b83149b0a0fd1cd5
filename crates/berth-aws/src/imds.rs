//! The EC2 instance metadata service, IMDSv2 only: [`Imds`] reads the instance's
//! identity, the spot interruption notice and the rebalance recommendation.
//!
//! aws-config's IMDS client fetches a session token with `PUT /latest/api/token` and
//! sends it with every request; it never falls back to IMDSv1 (seed 000 used v1 and
//! broke on instances that require v2).

use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use aws_config::imds::client::error::ImdsError;
use aws_config::imds::Client;
use aws_smithy_types::date_time::{DateTime, Format};
use berth_core::domain::InstanceId;
use berth_core::{Error, Result};
use serde::Deserialize;

/// The instance identity document.
const IDENTITY_PATH: &str = "/latest/dynamic/instance-identity/document";
/// Present only while a spot interruption is scheduled.
const SPOT_ACTION_PATH: &str = "/latest/meta-data/spot/instance-action";
/// Present only once EC2 recommends moving off this spot instance.
const REBALANCE_PATH: &str = "/latest/meta-data/events/recommendations/rebalance";

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

/// An IMDSv2 client.
#[derive(Debug, Clone)]
pub struct Imds {
    client: Client,
}

impl Default for Imds {
    fn default() -> Self {
        Imds::new()
    }
}

impl Imds {
    /// The instance's own metadata service: `AWS_EC2_METADATA_SERVICE_ENDPOINT` (or the
    /// profile's endpoint settings) if set, else `http://169.254.169.254`.
    pub fn new() -> Self {
        Imds {
            client: Client::builder().build(),
        }
    }

    /// A metadata service at `url` (e.g. `http://127.0.0.1:8080`), for tests.
    pub fn with_endpoint(url: &str) -> Result<Self> {
        let builder = Client::builder()
            .endpoint(url)
            .map_err(|e| Error::invalid(format!("IMDS endpoint {url:?}: {e}")))?;
        Ok(Imds {
            client: builder.build(),
        })
    }

    /// The instance's id, region, Availability Zone and private IP.
    pub async fn identity(&self) -> Result<InstanceIdentity> {
        let text = self.get(IDENTITY_PATH).await?;
        let document: IdentityDocument =
            serde_json::from_str(&text).map_err(|e| malformed(IDENTITY_PATH, e))?;
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

    /// The scheduled spot interruption, or `None` when there is none (IMDS answers 404
    /// until EC2 schedules one, and always on on-demand instances).
    pub async fn spot_interruption(&self) -> Result<Option<SpotInterruption>> {
        let text = match self.get(SPOT_ACTION_PATH).await {
            Ok(text) => text,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let notice: InstanceAction =
            serde_json::from_str(&text).map_err(|e| malformed(SPOT_ACTION_PATH, e))?;
        let time = DateTime::from_str(&notice.time, Format::DateTime)
            .map_err(|e| malformed_field(SPOT_ACTION_PATH, "time", e))?;
        let time =
            SystemTime::try_from(time).map_err(|e| malformed_field(SPOT_ACTION_PATH, "time", e))?;
        let action = match notice.action.as_str() {
            "terminate" => SpotAction::Terminate,
            "stop" => SpotAction::Stop,
            "hibernate" => SpotAction::Hibernate,
            _ => SpotAction::Other(notice.action),
        };
        Ok(Some(SpotInterruption { action, time }))
    }

    /// When EC2 recommended moving off this spot instance (its rebalance
    /// recommendation), or `None` when it has not (IMDS answers 404 until then).
    pub async fn rebalance_recommendation(&self) -> Result<Option<SystemTime>> {
        let text = match self.get(REBALANCE_PATH).await {
            Ok(text) => text,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let notice: RebalanceNotice =
            serde_json::from_str(&text).map_err(|e| malformed(REBALANCE_PATH, e))?;
        let time = DateTime::from_str(&notice.notice_time, Format::DateTime)
            .map_err(|e| malformed_field(REBALANCE_PATH, "noticeTime", e))?;
        let time = SystemTime::try_from(time)
            .map_err(|e| malformed_field(REBALANCE_PATH, "noticeTime", e))?;
        Ok(Some(time))
    }

    async fn get(&self, path: &str) -> Result<String> {
        self.client
            .get(path)
            .await
            .map(String::from)
            .map_err(|e| from_imds(path, &e))
    }
}

fn operation(path: &str) -> String {
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

/// Maps an IMDS failure. Only the status is kept from an error response: the
/// response itself is not printed, so nothing the service sent ends up in logs.
fn from_imds(path: &str, error: &ImdsError) -> Error {
    let operation = operation(path);
    match error {
        ImdsError::ErrorResponse(response) => {
            let status = response.response().status().as_u16();
            match status {
                404 => Error::not_found(format!("instance metadata {path}")),
                500..=599 => Error::Unavailable {
                    operation,
                    message: format!("status {status}"),
                },
                _ => Error::Provider {
                    operation,
                    message: format!("status {status}"),
                    retryable: false,
                },
            }
        }
        // Nothing answered: not on EC2, or the hop limit is too low for a container.
        ImdsError::FailedToLoadToken(token) if token.is_dispatch_failure() => Error::Unavailable {
            operation,
            message: "no IMDSv2 session token: the metadata service did not answer".into(),
        },
        ImdsError::FailedToLoadToken(_) => Error::Provider {
            operation,
            message: format!("no IMDSv2 session token: {}", error_chain(error)),
            retryable: false,
        },
        ImdsError::IoError(_) => Error::Unavailable {
            operation,
            message: error_chain(error),
        },
        _ => Error::Provider {
            operation,
            message: error_chain(error),
            retryable: false,
        },
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
