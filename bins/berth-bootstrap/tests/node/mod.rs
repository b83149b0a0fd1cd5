//! One simulated node for the binary's tests: an EC2 instance in moto (tags and
//! private IP), its own IMDSv2 fake, a hosted zone, a local CA, a temporary root for
//! the files berth writes, and a FaultProxy in front of moto that counts the calls.
#![allow(dead_code, unreachable_pub)]

#[path = "../subnet/mod.rs"]
mod subnet;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use berth_pki::LocalCa;
use berth_testing::imds::FakeImds;
use berth_testing::{aws_env, sdk_config, FaultProxy, MotoGuard, MotoServer};
use serde_json::Value;
use tempfile::TempDir;

pub const ZONE: &str = "k8s.example.com";

pub struct Node {
    pub _moto: MotoGuard,
    pub imds: FakeImds,
    pub proxy: FaultProxy,
    pub dir: TempDir,
    pub instance_id: String,
    pub private_ip: String,
    pub zone_id: String,
    pub route53: aws_sdk_route53::Client,
    pub config: aws_config::SdkConfig,
}

pub struct Run {
    pub code: i32,
    pub summary: Value,
    pub stderr: String,
}

impl Node {
    /// An instance with `tags` in a fresh moto, and a zone named [`ZONE`].
    pub async fn start(tags: &[(&str, &str)]) -> Node {
        let moto = MotoServer::isolated().await;
        let endpoint = MotoServer::shared().endpoint();
        let config = sdk_config(&endpoint);
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let subnet = subnet::create(&ec2, "10.0.0.0/16", "10.0.1.0/24", "us-east-1a").await;
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        let mut run = ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .min_count(1)
            .max_count(1)
            .subnet_id(subnet);
        if !tags.is_empty() {
            run = run.tag_specifications(spec.build());
        }
        let run = run.send().await.unwrap();
        let instance = &run.instances()[0];
        let instance_id = instance.instance_id().unwrap().to_owned();
        let private_ip = instance.private_ip_address().unwrap().to_owned();
        let route53 = aws_sdk_route53::Client::new(&config);
        let zone = route53
            .create_hosted_zone()
            .name(ZONE)
            .caller_reference(format!("bootstrap-{instance_id}"))
            .send()
            .await
            .unwrap();
        let zone_id = zone.hosted_zone().unwrap().id().to_owned();
        let imds = FakeImds::start();
        imds.set_identity(&instance_id, "us-east-1", &private_ip);
        let proxy = FaultProxy::start(&endpoint).await;
        Node {
            _moto: moto,
            imds,
            proxy,
            dir: tempfile::tempdir().unwrap(),
            instance_id,
            private_ip,
            zone_id,
            route53,
            config,
        }
    }

    /// The temporary root (`base.chroot_path`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A local CA, its files under the temporary dir (outside the root).
    pub fn local_ca(&self) -> (PathBuf, PathBuf) {
        let (ca, key) =
            LocalCa::generate("berth test CA", Duration::from_secs(86_400 * 365)).unwrap();
        let cert_file = self.dir.path().join("ca.pem");
        let key_file = self.dir.path().join("ca-key.pem");
        std::fs::write(&cert_file, ca.cert_pem()).unwrap();
        std::fs::write(&key_file, key).unwrap();
        (cert_file, key_file)
    }

    /// An ACM Private CA in moto (a root, EC P-256) with `ca`'s certificate imported:
    /// its ARN and `ca`.
    pub async fn acm_private_ca(&self) -> (String, LocalCa) {
        use aws_sdk_acmpca::types::{
            Asn1Subject, CertificateAuthorityConfiguration, CertificateAuthorityType, KeyAlgorithm,
            SigningAlgorithm,
        };
        let pca = aws_sdk_acmpca::Client::new(&self.config);
        let (ca, _) = LocalCa::generate("berth private CA", Duration::from_secs(86_400)).unwrap();
        let arn = pca
            .create_certificate_authority()
            .certificate_authority_type(CertificateAuthorityType::Root)
            .certificate_authority_configuration(
                CertificateAuthorityConfiguration::builder()
                    .key_algorithm(KeyAlgorithm::EcPrime256v1)
                    .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
                    .subject(
                        Asn1Subject::builder()
                            .common_name("berth private CA")
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap()
            .certificate_authority_arn()
            .unwrap()
            .to_owned();
        pca.import_certificate_authority_certificate()
            .certificate_authority_arn(&arn)
            .certificate(aws_sdk_acmpca::primitives::Blob::new(
                ca.cert_pem().as_bytes(),
            ))
            .send()
            .await
            .unwrap();
        (arn, ca)
    }

    /// A configuration rooted in the temporary dir, never touching the machine's
    /// hostname, with `extra` YAML appended (sections must not repeat).
    pub fn config(&self, certificates: &str, extra: &str) -> PathBuf {
        let root = self.root();
        let text = format!(
            "base:\n  chroot_path: {root}\nhostname:\n  set_kernel: false\n\
             hosted_zone:\n  name: {ZONE}.\n\
             certificates:\n  ca_path: {root}/etc/ssl/certs\n  certificates_path: {root}/etc/ssl/node_certs\n{certificates}\
             {extra}",
            root = root.display()
        );
        let path = self.dir.path().join("config.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs the compiled binary with `args`, AWS through the counting proxy.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_under(&[], args).await
    }

    /// Runs the binary as the last argument of `wrapper` (e.g. `unshare --uts`).
    pub async fn run_under(&self, wrapper: &[&str], args: &[&str]) -> Run {
        let binary = env!("CARGO_BIN_EXE_berth-bootstrap");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = tokio::process::Command::new(program);
                c.args(rest).arg(binary);
                c
            }
            None => tokio::process::Command::new(binary),
        };
        let output: Output = command
            .args(args)
            .envs(aws_env(&self.proxy.endpoint()))
            .env_remove("AWS_EC2_METADATA_DISABLED")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", self.imds.endpoint())
            .env("BERTH_LOG", "info")
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let summary: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!("stdout is not one JSON summary ({e}):\n{stdout}\nstderr:\n{stderr}")
        });
        Run {
            code: output.status.code().unwrap_or(-1),
            summary,
            stderr,
        }
    }

    /// The hostname berth builds for this node (`Role` tag `master`, default glue).
    pub fn hostname(&self) -> String {
        let octets: Vec<&str> = self.private_ip.split('.').collect();
        format!("master{}-{}", octets[2], octets[3])
    }

    pub fn fqdn(&self) -> String {
        format!("{}.{ZONE}", self.hostname())
    }

    /// Every record set of the zone: (name, type, values).
    pub async fn records(&self) -> Vec<(String, String, Vec<String>)> {
        let out = self
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .send()
            .await
            .unwrap();
        out.resource_record_sets()
            .iter()
            .map(|r| {
                (
                    r.name().to_owned(),
                    r.r#type().as_str().to_owned(),
                    r.resource_records()
                        .iter()
                        .map(|v| v.value().to_owned())
                        .collect(),
                )
            })
            .collect()
    }
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}
