//! berth-pki against a real verifier (webpki, as rustls uses it).

use std::net::IpAddr;
use std::time::Duration;

use berth_pki::{
    decide, key_matches, CertificateInfo, CertificateRequest, Decision, LocalCa, PrivateKey,
    RenewalPolicy,
};
use time::OffsetDateTime;

const DAY: Duration = Duration::from_secs(86_400);

fn request() -> CertificateRequest {
    CertificateRequest {
        common_name: "master1-5.k8s.example.com".into(),
        dns_names: vec!["master1-5.k8s.example.com".into(), "master1-5".into()],
        ip_addresses: vec!["10.0.1.5".parse().unwrap()],
        validity: 30 * DAY,
    }
}

fn verify(ca_pem: &str, leaf_pem: &str, name: &str) -> Result<(), berth_pki::WebpkiError> {
    berth_pki::verify_with_webpki(ca_pem.as_bytes(), leaf_pem.as_bytes(), name)
}

#[test]
fn a_locally_signed_certificate_verifies_for_the_fqdn_and_the_ip() {
    let (ca, _) = LocalCa::generate("berth test CA", 365 * DAY).unwrap();
    let key = PrivateKey::generate().unwrap();
    let leaf = ca
        .sign(&request(), &key, OffsetDateTime::now_utc())
        .unwrap();
    verify(ca.cert_pem(), &leaf, "master1-5.k8s.example.com").unwrap();
    verify(ca.cert_pem(), &leaf, "master1-5").unwrap();
    verify(ca.cert_pem(), &leaf, "10.0.1.5").unwrap();
    assert!(verify(ca.cert_pem(), &leaf, "other.k8s.example.com").is_err());
    let (other_ca, _) = LocalCa::generate("another CA", 365 * DAY).unwrap();
    assert!(verify(other_ca.cert_pem(), &leaf, "master1-5").is_err());

    let info = CertificateInfo::from_pem("leaf", leaf.as_bytes()).unwrap();
    assert_eq!(
        info.common_name.as_deref(),
        Some("master1-5.k8s.example.com")
    );
    assert_eq!(
        info.ip_addresses,
        vec!["10.0.1.5".parse::<IpAddr>().unwrap()]
    );
    assert!(key_matches(&key, &info));
    assert!(!key_matches(&PrivateKey::generate().unwrap(), &info));
}

#[test]
fn a_ca_loaded_from_pem_signs() {
    let (generated, key_pem) = LocalCa::generate("berth test CA", 365 * DAY).unwrap();
    let loaded = LocalCa::from_pem("ca", generated.cert_pem(), &key_pem).unwrap();
    let key = PrivateKey::generate().unwrap();
    let leaf = loaded
        .sign(&request(), &key, OffsetDateTime::now_utc())
        .unwrap();
    verify(generated.cert_pem(), &leaf, "10.0.1.5").unwrap();
}

#[test]
fn keep_until_due_then_issue() {
    let (ca, _) = LocalCa::generate("berth test CA", 365 * DAY).unwrap();
    let ca_info = CertificateInfo::from_pem("ca", ca.cert_pem().as_bytes()).unwrap();
    let key = PrivateKey::generate().unwrap();
    let issued_at = OffsetDateTime::now_utc();
    let leaf = ca.sign(&request(), &key, issued_at).unwrap();
    let info = CertificateInfo::from_pem("leaf", leaf.as_bytes()).unwrap();
    let policy = RenewalPolicy {
        renew_at_percent: 66,
    };
    let at = |days: u64| issued_at + DAY * u32::try_from(days).unwrap();
    let decision = |now, matches, wanted: &CertificateRequest| {
        decide(
            Some(&info),
            matches,
            wanted,
            &ca_info.subject_der,
            policy,
            now,
        )
    };
    assert!(matches!(
        decision(at(1), true, &request()),
        Decision::Keep { .. }
    ));
    assert!(matches!(
        decision(at(19), true, &request()),
        Decision::Keep { .. }
    ));
    assert!(matches!(
        decision(at(20), true, &request()),
        Decision::Issue { .. }
    ));
    assert!(matches!(
        decision(at(31), true, &request()),
        Decision::Issue { .. }
    ));
    assert!(matches!(
        decision(at(1), false, &request()),
        Decision::Issue { .. }
    ));
    let mut moved = request();
    moved.ip_addresses = vec!["10.0.1.6".parse().unwrap()];
    assert!(matches!(
        decision(at(1), true, &moved),
        Decision::Issue { .. }
    ));
    let (other, _) = LocalCa::generate("another CA", 365 * DAY).unwrap();
    let other = CertificateInfo::from_pem("ca", other.cert_pem().as_bytes()).unwrap();
    assert!(matches!(
        decide(
            Some(&info),
            true,
            &request(),
            &other.subject_der,
            policy,
            at(1)
        ),
        Decision::Issue { .. }
    ));
    assert!(matches!(
        decide(None, false, &request(), &ca_info.subject_der, policy, at(1)),
        Decision::Issue { .. }
    ));
}

#[test]
fn keys_never_show_in_debug() {
    let key = PrivateKey::generate().unwrap();
    let pem = key.to_pem();
    let body: String = pem.lines().nth(1).unwrap().to_owned();
    assert_eq!(format!("{key:?}"), "PrivateKey(<redacted>)");
    let (ca, _) = LocalCa::generate("berth test CA", DAY).unwrap();
    assert!(!format!("{ca:?}").contains(&body));
}

#[test]
fn the_csr_carries_the_names() {
    let key = PrivateKey::generate().unwrap();
    let csr = request().csr_pem(&key).unwrap();
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    let parsed = rcgen_csr_names(&csr);
    assert!(parsed.contains(&"master1-5".to_owned()));
}

fn rcgen_csr_names(csr: &str) -> Vec<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(csr.as_bytes()).unwrap();
    let (_, req) =
        <x509_parser::certification_request::X509CertificationRequest<'_> as x509_parser::prelude::FromDer<_>>::from_der(&pem.contents)
            .unwrap();
    let mut names = Vec::new();
    for ext in req.requested_extensions().into_iter().flatten() {
        if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
            for n in &san.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                    names.push((*d).to_owned());
                }
            }
        }
    }
    names
}
