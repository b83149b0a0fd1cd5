//! https client URLs: the adapter reaches members that require a client certificate,
//! with the node certificate and the CA (signed by berth-pki, as berth-bootstrap does).

use std::net::IpAddr;
use std::time::Duration;

use berth_core::provider::EtcdMembership;
use berth_etcd::{EtcdAdapter, EtcdClientConfig, EtcdTlsConfig};
use berth_pki::{CertificateRequest, LocalCa, PrivateKey};
use berth_testing::etcd::{free_port, EtcdProcesses};

fn sign(ca: &LocalCa, name: &str, ip: IpAddr) -> (String, String) {
    let key = PrivateKey::generate().unwrap();
    let request = CertificateRequest {
        common_name: name.to_owned(),
        dns_names: vec![name.to_owned()],
        ip_addresses: vec![ip],
        validity: Duration::from_secs(3600),
    };
    let cert = ca
        .sign(&request, &key, time::OffsetDateTime::now_utc())
        .unwrap();
    (cert, key.to_pem())
}

#[tokio::test(flavor = "multi_thread")]
async fn https_members_answer_with_the_node_certificate_and_refuse_without_it() {
    let ip: IpAddr = "127.0.25.1".parse().unwrap();
    let (ca, _) = LocalCa::generate("berth test CA", Duration::from_secs(3600)).unwrap();
    let (server_cert, server_key) = sign(&ca, "m1.etcd.test", ip);
    let (node_cert, node_key) = sign(&ca, "node.etcd.test", "127.0.25.2".parse().unwrap());

    let mut etcd = EtcdProcesses::new();
    let write = |name: &str, text: &str| {
        let path = etcd.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let ca_file = write("tls/ca.pem", ca.cert_pem());
    let cert_file = write("tls/m1.pem", &server_cert);
    let key_file = write("tls/m1-key.pem", &server_key);
    let client_url = format!("https://{ip}:{}", free_port());
    let peer_url = format!("http://{ip}:{}", free_port());
    let env: Vec<(String, String)> = [
        ("ETCD_NAME", "m1".to_owned()),
        ("ETCD_INITIAL_CLUSTER", format!("m1={peer_url}")),
        ("ETCD_INITIAL_CLUSTER_STATE", "new".to_owned()),
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer_url.clone()),
        ("ETCD_LISTEN_PEER_URLS", peer_url.clone()),
        ("ETCD_ADVERTISE_CLIENT_URLS", client_url.clone()),
        ("ETCD_LISTEN_CLIENT_URLS", client_url.clone()),
        ("ETCD_CERT_FILE", cert_file),
        ("ETCD_KEY_FILE", key_file),
        ("ETCD_TRUSTED_CA_FILE", ca_file),
        ("ETCD_CLIENT_CERT_AUTH", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    etcd.start_with_env("m1", &env);

    let adapter = EtcdAdapter::new(EtcdClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(3),
        tls: Some(EtcdTlsConfig {
            ca_pem: ca.cert_pem().as_bytes().to_vec(),
            cert_pem: Some(node_cert.into_bytes()),
            key_pem: Some(node_key.into_bytes()),
        }),
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let members = loop {
        if let Some(members) = adapter
            .quorum_members(std::slice::from_ref(&client_url))
            .await
            .unwrap()
        {
            break members;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no TLS answer in 30 s\n{}",
            etcd.log_tail("m1")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].client_urls, std::slice::from_ref(&client_url));
    assert!(adapter.local_view(&client_url).await.unwrap().is_some());

    // Without a client certificate the member refuses the handshake: nothing answers.
    let anonymous = EtcdAdapter::new(EtcdClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(3),
        tls: Some(EtcdTlsConfig {
            ca_pem: ca.cert_pem().as_bytes().to_vec(),
            cert_pem: None,
            key_pem: None,
        }),
    });
    assert_eq!(anonymous.local_view(&client_url).await.unwrap(), None);
    // The debug output names no key material.
    let printed = format!("{adapter:?}");
    assert!(!printed.contains("PRIVATE KEY"), "{printed}");
}
