//! ACM Private CA: [`AcmPca`] has a CSR made on the node signed by a private CA, and
//! reads the CA's certificate. The private key never leaves the node: only the CSR
//! is sent.
//!
//! Issuance is asynchronous: `IssueCertificate` answers with the certificate's ARN at
//! once, and the SDK's `CertificateIssued` waiter polls `GetCertificate` with backoff
//! until it is ready (no busy poll), up to a deadline.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_acmpca::client::Waiters;
use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{SigningAlgorithm, Validity, ValidityPeriodType};
use aws_sdk_acmpca::Client;
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use berth_core::{Error, Result};

use crate::error::from_sdk;
use crate::CallCounter;

/// A certificate ACM Private CA issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The certificate's ARN.
    pub arn: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The chain up to the root, PEM (empty for a certificate issued by a root).
    pub chain_pem: String,
}

/// ACM Private CA through the AWS SDK.
#[derive(Debug, Clone)]
pub struct AcmPca {
    client: Client,
}

impl AcmPca {
    /// A client from the shared configuration, counting its calls in `counter`.
    pub fn new(config: &SdkConfig, counter: CallCounter) -> Self {
        let config = aws_sdk_acmpca::config::Builder::from(config)
            .interceptor(counter)
            .build();
        AcmPca {
            client: Client::from_conf(config),
        }
    }

    /// The CA's certificate and its chain, PEM, concatenated (what a node installs to
    /// trust the CA), with `GetCertificateAuthorityCertificate`.
    pub async fn ca_certificate(&self, ca_arn: &str) -> Result<String> {
        const OP: &str = "GetCertificateAuthorityCertificate";
        let output = self
            .client
            .get_certificate_authority_certificate()
            .certificate_authority_arn(ca_arn)
            .send()
            .await
            .map_err(|e| from_sdk(OP, "acm-pca:GetCertificateAuthorityCertificate", e))?;
        let certificate = output.certificate().unwrap_or_default();
        if certificate.is_empty() {
            return Err(Error::Provider {
                operation: OP.into(),
                message: format!("{ca_arn} has no certificate (is the CA active?)"),
                retryable: false,
            });
        }
        let mut pem = with_newline(certificate);
        if let Some(chain) = output.certificate_chain().filter(|c| !c.is_empty()) {
            pem.push_str(&with_newline(chain));
        }
        Ok(pem)
    }

    /// Has the CA sign `csr_pem` (SHA-256 with ECDSA, `validity_days` days) and waits
    /// up to `max_wait` for the certificate. `idempotency_token` makes a retried
    /// `IssueCertificate` return the same certificate instead of a second one.
    pub async fn issue(
        &self,
        ca_arn: &str,
        csr_pem: &str,
        validity_days: u32,
        idempotency_token: &str,
        max_wait: Duration,
    ) -> Result<IssuedCertificate> {
        const ISSUE: &str = "IssueCertificate";
        const GET: &str = "GetCertificate";
        let validity = Validity::builder()
            .r#type(ValidityPeriodType::Days)
            .value(i64::from(validity_days))
            .build()
            .map_err(|e| Error::invalid(format!("certificate validity: {e}")))?;
        let issued = self
            .client
            .issue_certificate()
            .certificate_authority_arn(ca_arn)
            .csr(Blob::new(csr_pem.as_bytes()))
            .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
            .validity(validity)
            .idempotency_token(idempotency_token)
            .send()
            .await
            .map_err(|e| from_sdk(ISSUE, "acm-pca:IssueCertificate", e))?;
        let arn = issued
            .certificate_arn()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::Provider {
                operation: ISSUE.into(),
                message: "no certificate ARN in the answer".into(),
                retryable: false,
            })?
            .to_owned();
        let output = self
            .client
            .wait_until_certificate_issued()
            .certificate_authority_arn(ca_arn)
            .certificate_arn(&arn)
            .wait(max_wait)
            .await
            .map_err(|e| match e {
                WaiterError::ExceededMaxWait(_) => Error::Timeout {
                    operation: GET.into(),
                    after: max_wait,
                },
                WaiterError::OperationFailed(failed) => {
                    from_sdk(GET, "acm-pca:GetCertificate", failed.into_error())
                }
                other => Error::Provider {
                    operation: GET.into(),
                    message: format!("waiting for {arn}: {other}"),
                    retryable: false,
                },
            })?
            .into_result()
            .map_err(|e| from_sdk(GET, "acm-pca:GetCertificate", e))?;
        Ok(IssuedCertificate {
            certificate_pem: with_newline(output.certificate().unwrap_or_default()),
            chain_pem: output
                .certificate_chain()
                .map(with_newline)
                .unwrap_or_default(),
            arn,
        })
    }
}

fn with_newline(pem: &str) -> String {
    let mut text = pem.trim_end().to_owned();
    if !text.is_empty() {
        text.push('\n');
    }
    text
}
