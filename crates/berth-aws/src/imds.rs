//! The EC2 instance metadata service, IMDSv2 only: [`Imds`] reads the instance's
//! identity, the spot interruption notice and the rebalance recommendation.
//!
//! aws-config's IMDS client fetches a session token with `PUT /latest/api/token` and
//! sends it with every request; it never falls back to IMDSv1 (seed 000 used v1 and
//! broke on instances that require v2).

use std::time::SystemTime;

use aws_config::imds::client::error::ImdsError;
use aws_config::imds::Client;
use berth_core::{Error, Result};

pub mod answers;

use answers::{operation, IDENTITY_PATH, REBALANCE_PATH, SPOT_ACTION_PATH};
pub use answers::{InstanceIdentity, SpotAction, SpotInterruption};

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
        answers::identity_document(&self.get(IDENTITY_PATH).await?)
    }

    /// The scheduled spot interruption, or `None` when there is none (IMDS answers 404
    /// until EC2 schedules one, and always on on-demand instances).
    pub async fn spot_interruption(&self) -> Result<Option<SpotInterruption>> {
        let text = match self.get(SPOT_ACTION_PATH).await {
            Ok(text) => text,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        answers::instance_action(&text).map(Some)
    }

    /// When EC2 recommended moving off this spot instance (its rebalance
    /// recommendation), or `None` when it has not (IMDS answers 404 until then).
    pub async fn rebalance_recommendation(&self) -> Result<Option<SystemTime>> {
        let text = match self.get(REBALANCE_PATH).await {
            Ok(text) => text,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        answers::rebalance_notice(&text).map(Some)
    }

    async fn get(&self, path: &str) -> Result<String> {
        self.client
            .get(path)
            .await
            .map(String::from)
            .map_err(|e| from_imds(path, &e))
    }
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
