//! The typed configuration, one struct per section. Field names are the YAML keys.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

/// The whole configuration, defaults merged in.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `base:`
    pub base: BaseSettings,
    /// `hostname:`
    pub hostname: HostnameSettings,
    /// `hosted_zone:`
    pub hosted_zone: HostedZoneSettings,
    /// `certificates:`
    pub certificates: CertificateSettings,
    /// `etcd:`
    pub etcd: EtcdSettings,
    /// `modules:`; `None` runs every module.
    pub modules: Option<Vec<Module>>,
}

/// `base:`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSettings {
    /// The tag marking an instance that builds an AMI.
    pub ami_build_tag: String,
    /// The root for `/etc/hostname` and derived paths; `None` (`false`) for `/`.
    #[serde(deserialize_with = "path_or_false")]
    pub chroot_path: Option<PathBuf>,
}

impl BaseSettings {
    /// The root berth writes under: the chroot path, or `/`.
    pub fn root(&self) -> &Path {
        self.chroot_path.as_deref().unwrap_or(Path::new("/"))
    }
}

/// `hostname:`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostnameSettings {
    /// Between the tag value and the address part.
    pub glue: String,
    /// The instance tag whose value starts the hostname.
    pub tag_name: String,
    /// `hostname.ip_address:`
    pub ip_address: IpAddressSettings,
    /// Also set the kernel hostname (`sethostname`), not only `/etc/hostname`.
    #[serde(deserialize_with = "yaml_bool")]
    pub set_kernel: bool,
}

/// `hostname.ip_address:`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IpAddressSettings {
    /// The last N octets of the private IPv4 address (1 to 4).
    pub octets: u8,
    /// Between the octets.
    pub glue: String,
}

/// `hosted_zone:`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostedZoneSettings {
    /// The zone's domain name, e.g. `k8s.example.com.`.
    pub name: String,
    /// The zone id; skips the `ListHostedZonesByName` lookup.
    pub id: Option<String>,
    /// The A record's TTL, seconds.
    pub ttl: u32,
    /// The owner written in the `_berth.` ownership marker.
    pub owner: String,
}

/// `certificates:`
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSettings {
    /// The local CA's certificate (PEM).
    pub ca_cert_file: Option<PathBuf>,
    /// The local CA's private key (PEM).
    pub ca_key_file: Option<PathBuf>,
    /// An ACM Private CA that issues instead of a local CA.
    pub acm_pca_arn: Option<String>,
    /// Where the CA certificate is installed (system trust).
    pub ca_path: PathBuf,
    /// Where the node certificate and key are written.
    pub certificates_path: PathBuf,
    /// Issue a certificate for the node (FQDN, hostname, private IP).
    #[serde(deserialize_with = "yaml_bool")]
    pub node_certificate: bool,
    /// Lifetime of an issued certificate, days.
    pub validity_days: u32,
    /// A certificate is due once this percentage of its lifetime has passed.
    pub renew_at_percent: u8,
    /// Run (argv, no shell) after `renew-certs` replaced a certificate.
    pub reload_command: Option<Vec<String>>,
}

impl CertificateSettings {
    /// Where certificates come from, if configured.
    pub fn authority(&self) -> Option<CertificateAuthority> {
        match (&self.acm_pca_arn, &self.ca_cert_file, &self.ca_key_file) {
            (Some(arn), _, _) => Some(CertificateAuthority::AcmPca { arn: arn.clone() }),
            (None, Some(cert), Some(key)) => Some(CertificateAuthority::Local {
                cert_file: cert.clone(),
                key_file: key.clone(),
            }),
            _ => None,
        }
    }
}

// Paths and an ARN only, but kept terse on purpose: no key material is ever held here.
impl fmt::Debug for CertificateSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateSettings")
            .field("authority", &self.authority())
            .field("ca_path", &self.ca_path)
            .field("certificates_path", &self.certificates_path)
            .field("node_certificate", &self.node_certificate)
            .field("validity_days", &self.validity_days)
            .field("renew_at_percent", &self.renew_at_percent)
            .field("reload_command", &self.reload_command)
            .finish()
    }
}

/// Where node certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateAuthority {
    /// A CA whose certificate and key are local PEM files: berth signs.
    Local {
        /// The CA certificate.
        cert_file: PathBuf,
        /// The CA private key.
        key_file: PathBuf,
    },
    /// ACM Private CA issues from berth's CSR.
    AcmPca {
        /// The CA's ARN.
        arn: String,
    },
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Schema {
    /// `http`
    Http,
    /// `https`
    Https,
}

impl Schema {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Schema::Http => "http",
            Schema::Https => "https",
        }
    }
}

/// `etcd:` — the etcd module's settings, validated here and used by `crate::etcd`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSettings {
    /// Client URL scheme.
    pub client_schema: Schema,
    /// Client port.
    pub client_port: u16,
    /// Peer URL scheme.
    pub peer_schema: Schema,
    /// Peer port.
    pub peer_port: u16,
    /// The systemd drop-in written for etcd (taken as written, like every configured path).
    pub drop_in_file: PathBuf,
    /// The group whose instances are the peers; `None`: the instance's own group.
    pub auto_scaling_group: Option<String>,
    /// Members of a new cluster.
    pub cluster_size: u16,
    /// etcd's data directory (a WAL there means a restart).
    pub data_dir: PathBuf,
    /// Join as a learner, promoted once in sync.
    #[serde(deserialize_with = "yaml_bool")]
    pub learner: bool,
    /// The DynamoDB table holding the "cluster created" marker.
    pub marker_table: Option<String>,
}

/// A module of berth-bootstrap, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Module {
    /// The hostname from a tag and the private IP.
    Hostname,
    /// The A record in the hosted zone.
    Dns,
    /// The CA certificate and the node certificate.
    Certificates,
    /// etcd membership and its drop-in.
    Etcd,
}

impl Module {
    /// Every module, in the order they run.
    pub const ALL: [Module; 4] = [
        Module::Hostname,
        Module::Dns,
        Module::Certificates,
        Module::Etcd,
    ];

    /// The name used in `modules:` and `--skip-<name>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Module::Hostname => "hostname",
            Module::Dns => "dns",
            Module::Certificates => "certificates",
            Module::Etcd => "etcd",
        }
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A YAML boolean, YAML 1.1 spellings included (`yes`, `no`, `on`, `off`): NodeReg's
/// Python loader accepted them and its documented defaults use `yes`.
fn yaml_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Bool(b) => Ok(b),
        Raw::Text(text) => parse_yaml11_bool(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("expected a boolean (true/false), got {text:?}"))
        }),
    }
}

fn parse_yaml11_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "on" => Some(true),
        "false" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// A path, or `false` (also `no`/`off`) for none, as NodeReg's `chroot_path`.
fn path_or_false<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Text(String),
    }
    match Option::<Raw>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Raw::Bool(false)) => Ok(None),
        Some(Raw::Bool(true)) => Err(serde::de::Error::custom(
            "expected a path or false, got true",
        )),
        Some(Raw::Text(text)) if parse_yaml11_bool(&text) == Some(false) => Ok(None),
        Some(Raw::Text(text)) if text.is_empty() => Err(serde::de::Error::custom(
            "expected a path or false, got an empty string",
        )),
        Some(Raw::Text(text)) => Ok(Some(PathBuf::from(text))),
    }
}
