use std::path::PathBuf;

use super::*;

#[test]
fn defaults_are_nodereg_s_documented_ones() {
    let c = Config::defaults();
    assert_eq!(c.base.ami_build_tag, "is_ami_build");
    assert_eq!(c.base.chroot_path, Some(PathBuf::from("/media/root")));
    assert_eq!(c.hostname.glue, "");
    assert_eq!(c.hostname.tag_name, "Role");
    assert_eq!(c.hostname.ip_address.octets, 2);
    assert_eq!(c.hostname.ip_address.glue, "-");
    assert!(c.hostname.set_kernel);
    assert_eq!(c.hosted_zone.name, "k8s.com.");
    assert_eq!(c.hosted_zone.id, None);
    assert_eq!(c.etcd.client_schema, Schema::Http);
    assert_eq!(c.etcd.client_port, 2379);
    assert_eq!(c.etcd.peer_schema, Schema::Http);
    assert_eq!(c.etcd.peer_port, 2380);
    assert_eq!(
        c.etcd.drop_in_file,
        PathBuf::from("/media/root/etc/systemd/system/etcd.service.d/70-initial-cluster.conf")
    );
    assert_eq!(
        c.certificates.ca_path,
        PathBuf::from("/media/root/etc/ssl/certs")
    );
    assert_eq!(
        c.certificates.certificates_path,
        PathBuf::from("/media/root/etc/ssl/node_certs")
    );
    assert!(c.certificates.node_certificate);
    assert_eq!(c.modules(), Module::ALL.to_vec());
}

// NodeReg merged only the top level: `hostname: {tag_name: x}` lost `glue` and
// `ip_address`. Deep merge keeps every other default.
#[test]
fn one_key_keeps_every_other_default() {
    let c = Config::parse("t", "hostname:\n  tag_name: NodeRole\n").unwrap();
    let defaults = Config::defaults();
    assert_eq!(c.hostname.tag_name, "NodeRole");
    assert_eq!(c.hostname.ip_address, defaults.hostname.ip_address);
    assert_eq!(c.hostname.glue, defaults.hostname.glue);
    let mut expected = defaults;
    expected.hostname.tag_name = "NodeRole".into();
    assert_eq!(c, expected);
}

#[test]
fn nodereg_spellings_are_accepted() {
    let text = "base:\n  chroot_path: false\ncertificates:\n  node_certificate: no\n";
    let c = Config::parse("t", text).unwrap();
    assert_eq!(c.base.chroot_path, None);
    assert_eq!(c.base.root(), std::path::Path::new("/"));
    assert!(!c.certificates.node_certificate);
    let c = Config::parse("t", "certificates:\n  node_certificate: yes\n").unwrap();
    assert!(c.certificates.node_certificate);
}

#[test]
fn an_empty_file_and_empty_sections_are_the_defaults() {
    assert_eq!(Config::parse("t", "").unwrap(), Config::defaults());
    assert_eq!(
        Config::parse("t", "etcd:\nhostname:\n").unwrap(),
        Config::defaults()
    );
}

#[test]
fn unknown_keys_are_named_with_the_nearest() {
    let error = Config::parse("t", "hosted_zone:\n  nmae: x.com.\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown configuration key `hosted_zone.nmae` (did you mean `hosted_zone.name`?)"
    );
    let error = Config::parse("t", "etdc:\n  client_port: 1\n").unwrap_err();
    assert!(error.to_string().contains("did you mean `etcd`"), "{error}");
}

#[test]
fn tinycert_is_refused_with_its_replacements() {
    let text = "tinycert:\n  email: a\n  api_token: b\n  ca_id: 100\n";
    let error = Config::parse("t", text).unwrap_err();
    assert!(matches!(error, ConfigError::TinyCert));
    let message = error.to_string();
    for key in [
        "TinyCert no longer exists",
        "certificates.ca_cert_file",
        "certificates.ca_key_file",
        "certificates.acm_pca_arn",
        "certificates.ca_path",
    ] {
        assert!(message.contains(key), "{message} lacks {key}");
    }
}

#[test]
fn bad_values_are_refused_with_their_key() {
    let cases = [
        (
            "hostname:\n  ip_address:\n    octets: 5\n",
            "hostname.ip_address.octets",
        ),
        ("etcd:\n  peer_port: 2379\n", "etcd.peer_port"),
        ("etcd:\n  cluster_size: 0\n", "etcd.cluster_size"),
        (
            "certificates:\n  ca_cert_file: /ca.pem\n",
            "certificates.ca_key_file",
        ),
        (
            "certificates:\n  acm_pca_arn: arn:x\n  ca_cert_file: /a\n  ca_key_file: /b\n",
            "certificates.acm_pca_arn",
        ),
        (
            "certificates:\n  renew_at_percent: 100\n",
            "certificates.renew_at_percent",
        ),
        ("modules: [certificates]\n", "modules"),
        ("modules: []\n", "modules"),
    ];
    for (text, key) in cases {
        match Config::parse("t", text) {
            Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    assert!(matches!(
        Config::parse("t", "etcd:\n  client_schema: ftp\n"),
        Err(ConfigError::Syntax { .. })
    ));
    assert!(matches!(
        Config::parse("t", "modules: [hostname, nfs]\n"),
        Err(ConfigError::Syntax { .. })
    ));
}

#[test]
fn modules_run_in_order_once() {
    let c = Config::parse("t", "modules: [etcd, hostname, etcd]\n").unwrap();
    assert_eq!(c.modules(), vec![Module::Hostname, Module::Etcd]);
}

#[test]
fn the_shipped_example_config_parses_and_sets_every_key() {
    let text = include_str!("../../../../examples/bootstrap/config.yaml");
    let c = Config::parse("examples/bootstrap/config.yaml", text).unwrap();
    assert!(c.certificates.authority().is_some());
    // Every known key appears in the example.
    let known: serde_json::Value = serde_saphyr::from_str(DEFAULTS_YAML).unwrap();
    let example: serde_json::Value = serde_saphyr::from_str(text).unwrap();
    fn keys(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        if let serde_json::Value::Object(map) = v {
            for (k, v) in map {
                let path = format!("{prefix}{k}");
                keys(v, &format!("{path}."), out);
                out.push(path);
            }
        }
    }
    let (mut want, mut have) = (Vec::new(), Vec::new());
    keys(&known, "", &mut want);
    keys(&example, "", &mut have);
    let missing: Vec<_> = want.iter().filter(|k| !have.contains(k)).collect();
    assert!(missing.is_empty(), "example lacks {missing:?}");
}
