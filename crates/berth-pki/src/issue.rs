//! Keys, CSRs and local signing.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use time::OffsetDateTime;

use crate::{PkiError, Result};

/// A private key made on this node (ECDSA P-256). `Debug` never shows it.
pub struct PrivateKey(KeyPair);

impl PrivateKey {
    /// A new key.
    pub fn generate() -> Result<Self> {
        KeyPair::generate()
            .map(PrivateKey)
            .map_err(|source| PkiError::Generate {
                what: "generating a private key".into(),
                source,
            })
    }

    /// Loads a key from PEM (PKCS#8); `what` names it in errors (a path, never the key).
    pub fn from_pem(what: &str, pem: &str) -> Result<Self> {
        KeyPair::from_pem(pem)
            .map(PrivateKey)
            .map_err(|e| PkiError::Parse {
                what: what.to_owned(),
                kind: "private key",
                message: e.to_string(),
            })
    }

    /// The key as PKCS#8 PEM, for a 0600 file.
    pub fn to_pem(&self) -> String {
        self.0.serialize_pem()
    }

    /// The DER SubjectPublicKeyInfo of the key's public half.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.0.subject_public_key_info()
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// What a node certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest {
    /// The subject's common name (the FQDN).
    pub common_name: String,
    /// DNS names (SANs), the common name included.
    pub dns_names: Vec<String>,
    /// IP addresses (SANs).
    pub ip_addresses: Vec<IpAddr>,
    /// How long the certificate is valid.
    pub validity: Duration,
}

impl CertificateRequest {
    fn params(&self) -> Result<CertificateParams> {
        if self.common_name.is_empty() {
            return Err(PkiError::Invalid("empty common name".into()));
        }
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, self.common_name.clone());
        params.distinguished_name = name;
        for dns in &self.dns_names {
            let san = dns
                .clone()
                .try_into()
                .map_err(|_| PkiError::Invalid(format!("{dns:?} is not a DNS name")))?;
            params.subject_alt_names.push(SanType::DnsName(san));
        }
        for ip in &self.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        // etcd and the kubelet use one certificate as server and as client.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        Ok(params)
    }

    /// A PKCS#10 CSR for `key`, PEM: what an external CA signs.
    pub fn csr_pem(&self, key: &PrivateKey) -> Result<String> {
        self.params()?
            .serialize_request(&key.0)
            .and_then(|csr| csr.pem())
            .map_err(|source| PkiError::Generate {
                what: format!("making the CSR for {}", self.common_name),
                source,
            })
    }
}

/// A CA whose certificate and key are local PEM files.
pub struct LocalCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCa").finish_non_exhaustive()
    }
}

impl LocalCa {
    /// Loads the CA; `what` names the files in errors.
    pub fn from_pem(what: &str, cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = PrivateKey::from_pem(what, key_pem)?.0;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| PkiError::Parse {
            what: what.to_owned(),
            kind: "certificate",
            message: e.to_string(),
        })?;
        Ok(LocalCa {
            issuer,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// The CA certificate as given.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Signs a certificate for `request` and `key`, valid from `now` (back-dated a
    /// minute for clock skew).
    pub fn sign(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
        now: OffsetDateTime,
    ) -> Result<String> {
        let mut params = request.params()?;
        // Not in a CSR (rcgen refuses it there), but a locally signed leaf names its CA.
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + request.validity;
        params
            .signed_by(&key.0, &self.issuer)
            .map(|cert| cert.pem())
            .map_err(|source| PkiError::Generate {
                what: format!("signing the certificate for {}", request.common_name),
                source,
            })
    }

    /// A new self-signed CA (for tests and first-time setups): `common_name` must
    /// differ from every leaf's, or verifiers take the leaf for self-signed.
    pub fn generate(common_name: &str, validity: Duration) -> Result<(Self, String)> {
        let key = PrivateKey::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + validity;
        let cert = params
            .self_signed(&key.0)
            .map_err(|source| PkiError::Generate {
                what: format!("self-signing the CA {common_name}"),
                source,
            })?;
        let key_pem = key.to_pem();
        let ca = LocalCa::from_pem(common_name, &cert.pem(), &key_pem)?;
        Ok((ca, key_pem))
    }
}
