//! The certificates module through the compiled binary: a local CA (verified with
//! `openssl verify` and webpki for the FQDN and the IP), 0600 keys, idempotent runs,
//! `renew-certs`, and ACM Private CA (moto).

mod node;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_pki::{CertificateRequest, LocalCa, PrivateKey};
use node::{files_under, Node};

const MODULES: &str = "modules: [hostname, dns, certificates]\n";

fn local_ca_config(node: &Node, extra: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, key) = node.local_ca();
    let certs = format!(
        "  ca_cert_file: {}\n  ca_key_file: {}\n  validity_days: 30\n{extra}",
        ca.display(),
        key.display()
    );
    (node.config(&certs, MODULES), ca, key)
}

fn node_files(node: &Node) -> (PathBuf, PathBuf) {
    let dir = node.root().join("etc/ssl/node_certs");
    (
        dir.join(format!("{}.pem", node.fqdn())),
        dir.join(format!("{}-key.pem", node.fqdn())),
    )
}

fn openssl_verify(ca: &Path, cert: &Path, check: &[&str]) -> bool {
    let output = Command::new("openssl")
        .arg("verify")
        .args(check)
        .arg("-CAfile")
        .arg(ca)
        .arg(cert)
        .output()
        .expect("openssl must be installed (.ci/run installs it)");
    output.status.success()
}

fn webpki_verify(ca: &Path, cert: &Path, name: &str) -> Result<(), berth_pki::WebpkiError> {
    let read = |p: &Path| std::fs::read(p).unwrap();
    berth_pki::verify_with_webpki(&read(ca), &read(cert), name)
}

#[tokio::test]
async fn a_local_ca_issues_a_chain_that_verifies_and_a_second_run_leaves_it() {
    let node = Node::start(&[("Role", "master")]).await;
    let (config, ca, _) = local_ca_config(&node, "");
    let run = node.run(&["-c", config.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.summary, run.stderr);
    // For docs/benchmarks.md: the calls and wall time of a boot without etcd.
    eprintln!(
        "boot: aws_calls {} elapsed_seconds {}",
        run.summary["summary"]["aws_calls"], run.summary["elapsed_seconds"]
    );
    let (cert, key) = node_files(&node);

    // The CA is installed under ca_path, named by its common name.
    let installed_ca = node.root().join("etc/ssl/certs/berth_test_CA.pem");
    assert_eq!(
        std::fs::read(&installed_ca).unwrap(),
        std::fs::read(&ca).unwrap()
    );
    // NodeReg wrote keys with the default mode.
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key mode {mode:o}");
    // Nothing secret in the logs or the summary.
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap();
    assert!(!run.stderr.contains(key_body));
    assert!(!run.summary.to_string().contains(key_body));

    let fqdn = node.fqdn();
    assert!(openssl_verify(
        &installed_ca,
        &cert,
        &["-verify_hostname", &fqdn]
    ));
    assert!(openssl_verify(
        &installed_ca,
        &cert,
        &["-verify_ip", &node.private_ip]
    ));
    assert!(!openssl_verify(
        &installed_ca,
        &cert,
        &["-verify_hostname", "other.example.com"]
    ));
    webpki_verify(&installed_ca, &cert, &fqdn).unwrap();
    webpki_verify(&installed_ca, &cert, &node.hostname()).unwrap();
    webpki_verify(&installed_ca, &cert, &node.private_ip).unwrap();

    let before = std::fs::read(&cert).unwrap();
    let again = node.run(&["-c", config.to_str().unwrap()]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.summary["summary"]["modules"]["certificates"]["status"],
        "unchanged"
    );
    assert_eq!(std::fs::read(&cert).unwrap(), before);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), key_pem);
}

#[tokio::test]
async fn renew_certs_replaces_a_due_certificate_and_runs_the_reload_command() {
    let node = Node::start(&[("Role", "master")]).await;
    let marker = node.dir.path().join("reloaded");
    let reload = format!("  reload_command: [touch, {}]\n", marker.display());
    let (config, ca_file, ca_key_file) = local_ca_config(&node, &reload);
    let (cert, key) = node_files(&node);

    // A certificate from the same CA for the same names, 20 of its 30 days gone.
    let ca = LocalCa::from_pem(
        "ca",
        &std::fs::read_to_string(&ca_file).unwrap(),
        &std::fs::read_to_string(&ca_key_file).unwrap(),
    )
    .unwrap();
    let private = PrivateKey::generate().unwrap();
    let request = CertificateRequest {
        common_name: node.fqdn(),
        dns_names: vec![node.fqdn(), node.hostname()],
        ip_addresses: vec![node.private_ip.parse().unwrap()],
        validity: Duration::from_secs(30 * 86_400),
    };
    let issued_at = time::OffsetDateTime::now_utc() - time::Duration::days(20);
    let due = ca.sign(&request, &private, issued_at).unwrap();
    std::fs::create_dir_all(cert.parent().unwrap()).unwrap();
    std::fs::write(&cert, &due).unwrap();
    std::fs::write(&key, private.to_pem()).unwrap();

    let run = node
        .run(&["-c", config.to_str().unwrap(), "renew-certs"])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.summary, run.stderr);
    assert_eq!(
        run.summary["summary"]["modules"]["certificates"]["status"],
        "changed"
    );
    // renew-certs touches nothing but certificates.
    assert!(run.summary["summary"]["modules"].get("hostname").is_none());
    assert_ne!(std::fs::read_to_string(&cert).unwrap(), due);
    assert!(marker.exists(), "the reload command ran");
    let installed_ca = node.root().join("etc/ssl/certs/berth_test_CA.pem");
    assert!(openssl_verify(
        &installed_ca,
        &cert,
        &["-verify_hostname", &node.fqdn()]
    ));

    // Now valid and not due: nothing replaced, no reload.
    std::fs::remove_file(&marker).unwrap();
    let again = node
        .run(&["-c", config.to_str().unwrap(), "renew-certs"])
        .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.summary["summary"]["modules"]["certificates"]["status"],
        "unchanged"
    );
    assert!(!marker.exists());
}

// moto's ACM Private CA signs with a key of its own, not the imported CA certificate's,
// so this checks the flow — CA certificate fetched, key made locally and written 0600,
// CSR issued with the node's names, the waiter's GetCertificate — and the second run,
// not the chain (the local CA test does).
#[tokio::test]
async fn acm_private_ca_issues_from_a_csr_made_on_the_node_and_a_second_run_leaves_it() {
    let node = Node::start(&[("Role", "master")]).await;
    let (arn, ca) = node.acm_private_ca().await;
    let config = node.config(&format!("  acm_pca_arn: {arn}\n"), MODULES);
    let run = node.run(&["-c", config.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.summary, run.stderr);
    assert_eq!(
        node.proxy.count("IssueCertificate"),
        1,
        "{:?}",
        node.proxy.counts()
    );
    assert!(node.proxy.count("GetCertificate") >= 1);
    let (cert, key) = node_files(&node);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let issued = std::fs::read_to_string(&cert).unwrap();
    let info = berth_pki::CertificateInfo::from_pem("issued", issued.as_bytes()).unwrap();
    assert_eq!(info.common_name.as_deref(), Some(node.fqdn().as_str()));
    // The SANs came from the CSR (moto 5 passes them through, as ACM PCA's
    // EndEntityCertificate/V1 template does).
    let mut sans = info.dns_names.clone();
    sans.sort();
    let mut wanted = vec![node.fqdn(), node.hostname()];
    wanted.sort();
    assert_eq!(sans, wanted);
    assert_eq!(
        info.ip_addresses,
        [node.private_ip.parse::<std::net::IpAddr>().unwrap()]
    );
    let private = PrivateKey::from_pem("key", &std::fs::read_to_string(&key).unwrap()).unwrap();
    assert!(
        berth_pki::key_matches(&private, &info),
        "the CSR carried the node's key"
    );
    assert_eq!(
        std::fs::read_to_string(node.root().join("etc/ssl/certs/berth_private_CA.pem")).unwrap(),
        ca.cert_pem()
    );

    // Valid, for the same names, from this CA, not due: a second run issues nothing
    // and leaves every file as it is, to the byte.
    let before: Vec<(String, Vec<u8>)> = files_under(&node.root())
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(node.root().join(&f)).unwrap()))
        .collect();
    node.proxy.reset_counts();
    let again = node.run(&["-c", config.to_str().unwrap()]).await;
    assert_eq!(again.code, 0, "{}\n{}", again.summary, again.stderr);
    assert_eq!(
        again.summary["summary"]["modules"]["certificates"]["status"], "unchanged",
        "{}",
        again.summary
    );
    assert_eq!(
        node.proxy.count("IssueCertificate"),
        0,
        "{:?}",
        node.proxy.counts()
    );
    assert_eq!(node.proxy.count("GetCertificate"), 0);
    let after: Vec<(String, Vec<u8>)> = files_under(&node.root())
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(node.root().join(&f)).unwrap()))
        .collect();
    assert_eq!(after, before);
}
