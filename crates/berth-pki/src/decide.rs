//! The renewal decision: pure, from what the files say and the time.

use std::collections::BTreeSet;

use time::OffsetDateTime;

use crate::{CertificateInfo, CertificateRequest};

/// When a certificate is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalPolicy {
    /// Due once this percentage of the lifetime has passed (1 to 99; 66 by default).
    pub renew_at_percent: u8,
}

/// What to do with the node certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Valid, for the same names, from this CA, not yet due: leave it.
    Keep {
        /// When it becomes due.
        due_at: OffsetDateTime,
    },
    /// Issue a new key and certificate.
    Issue {
        /// Why.
        reason: String,
    },
}

/// Decides whether the existing certificate (if any, with whether its key file is
/// present and matches it) can stay.
pub fn decide(
    existing: Option<&CertificateInfo>,
    key_matches: bool,
    wanted: &CertificateRequest,
    ca_subject_der: &[u8],
    policy: RenewalPolicy,
    now: OffsetDateTime,
) -> Decision {
    let issue = |reason: &str| Decision::Issue {
        reason: reason.to_owned(),
    };
    let Some(cert) = existing else {
        return issue("no certificate yet");
    };
    if !key_matches {
        return issue("the key file is missing or does not match the certificate");
    }
    if cert.issuer_der != ca_subject_der {
        return issue("issued by another CA");
    }
    let names = |dns: &[String], ips: &[std::net::IpAddr]| -> BTreeSet<String> {
        dns.iter()
            .map(|d| d.to_ascii_lowercase())
            .chain(ips.iter().map(ToString::to_string))
            .collect()
    };
    if names(&cert.dns_names, &cert.ip_addresses) != names(&wanted.dns_names, &wanted.ip_addresses)
        || cert.common_name.as_deref() != Some(wanted.common_name.as_str())
    {
        return issue("the node's names changed");
    }
    if now < cert.not_before || now >= cert.not_after {
        return issue("not valid now");
    }
    let lifetime = cert.not_after - cert.not_before;
    let due_at = cert.not_before + lifetime * (f64::from(policy.renew_at_percent.min(99)) / 100.0);
    if now >= due_at {
        return issue(&format!(
            "due: {}% of its lifetime has passed",
            policy.renew_at_percent
        ));
    }
    Decision::Keep { due_at }
}
