//! Reading what an existing certificate says.

use std::net::IpAddr;

use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

use crate::{PkiError, PrivateKey, Result};

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject's common name.
    pub common_name: Option<String>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ip_addresses: Vec<IpAddr>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The issuer's distinguished name, DER.
    pub issuer_der: Vec<u8>,
    /// The subject's distinguished name, DER (compared with a leaf's issuer).
    pub subject_der: Vec<u8>,
    /// The SubjectPublicKeyInfo, DER.
    pub public_key_der: Vec<u8>,
}

impl CertificateInfo {
    /// Parses the first certificate of a PEM text; `what` names it in errors.
    pub fn from_pem(what: &str, pem: &[u8]) -> Result<Self> {
        let parse = |message: String| PkiError::Parse {
            what: what.to_owned(),
            kind: "certificate",
            message,
        };
        let (_, pem) = parse_x509_pem(pem).map_err(|e| parse(e.to_string()))?;
        let cert = pem.parse_x509().map_err(|e| parse(e.to_string()))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let (mut dns_names, mut ip_addresses) = (Vec::new(), Vec::new());
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(CertificateInfo {
            common_name,
            dns_names,
            ip_addresses,
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            issuer_der: cert.issuer().as_raw().to_vec(),
            subject_der: cert.subject().as_raw().to_vec(),
            public_key_der: cert.public_key().raw.to_vec(),
        })
    }
}

/// Whether `key` is the private half of the certificate's public key.
pub fn key_matches(key: &PrivateKey, cert: &CertificateInfo) -> bool {
    key.public_key_der() == cert.public_key_der
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}
