//! Verification as rustls does it (webpki), for tests (feature `test-util`): a leaf
//! certificate chains to a CA, for server auth, now, and is valid for a name.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Verifies `leaf_pem` against the CA `ca_pem` for server auth at the current time,
/// and for `name` (a DNS name or an IP address).
///
/// # Panics
/// If either PEM holds no certificate, or `name` is neither a DNS name nor an IP.
pub fn verify_with_webpki(ca_pem: &[u8], leaf_pem: &[u8], name: &str) -> Result<(), webpki::Error> {
    let ca = CertificateDer::from_pem_slice(ca_pem).expect("a CA certificate in PEM");
    let leaf = CertificateDer::from_pem_slice(leaf_pem).expect("a certificate in PEM");
    let anchor = webpki::anchor_from_trusted_cert(&ca)?;
    let ee = webpki::EndEntityCert::try_from(&leaf)?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )?;
    let name = ServerName::try_from(name.to_owned()).expect("a DNS name or an IP address");
    ee.verify_is_valid_for_subject_name(&name)
}
