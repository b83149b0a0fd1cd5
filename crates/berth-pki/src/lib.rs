//! berth-pki: node certificates from a CA the operator controls.
//!
//! - [`PrivateKey`]: an ECDSA P-256 key made on the node; its `Debug` shows nothing
//!   of the key, and it leaves the crate only as PEM for a 0600 file.
//! - [`CertificateRequest`]: the names a node certificate is for (FQDN, hostname,
//!   private IP) and its lifetime; [`CertificateRequest::csr_pem`] makes the CSR an
//!   external CA (ACM Private CA) signs.
//! - [`LocalCa`]: a CA loaded from PEM files that signs locally (rcgen).
//! - [`CertificateInfo`]: what an existing certificate says (names, issuer, dates).
//! - [`decide`]: the pure renewal decision — keep a valid certificate for the same
//!   names that is not yet due, issue otherwise.
//!
//! No file or network I/O here: the caller reads and writes files. Feature
//! `test-util`: `verify_with_webpki`, verification as rustls does it, for tests.
#![warn(missing_docs)]

mod decide;
mod error;
mod inspect;
mod issue;
#[cfg(feature = "test-util")]
mod verify;

pub use decide::{decide, Decision, RenewalPolicy};
pub use error::{PkiError, Result};
pub use inspect::{key_matches, CertificateInfo};
pub use issue::{CertificateRequest, LocalCa, PrivateKey};
#[cfg(feature = "test-util")]
pub use verify::verify_with_webpki;
/// What [`verify_with_webpki`] fails with.
#[cfg(feature = "test-util")]
pub use webpki::Error as WebpkiError;
