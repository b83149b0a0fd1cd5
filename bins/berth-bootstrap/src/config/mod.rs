//! berth-bootstrap's configuration: NodeReg's YAML keys unchanged, deep-merged over
//! NodeReg's documented defaults plus berth's new keys (`defaults.yaml`).
//!
//! Loading fails with a [`ConfigError`] (exit code 2) on unreadable or malformed YAML,
//! an unknown key (named, with the nearest known key), a `tinycert:` section (the
//! service is gone), or a value that does not validate.

mod merge;
mod settings;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde_json::Value;

pub use settings::{
    BaseSettings, CertificateAuthority, CertificateSettings, Config, EtcdSettings,
    HostedZoneSettings, HostnameSettings, IpAddressSettings, Module, Schema,
};

/// The defaults, which also list every known key.
pub const DEFAULTS_YAML: &str = include_str!("defaults.yaml");

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML, or not a mapping at the top.
    #[error("{path} is not valid YAML: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A key berth does not know.
    #[error("unknown configuration key `{key}`{}", match nearest {
        Some(n) => format!(" (did you mean `{n}`?)"),
        None => String::new(),
    })]
    UnknownKey {
        /// The full dotted path of the key.
        key: String,
        /// The nearest known key at the same level.
        nearest: Option<String>,
    },
    /// NodeReg's `tinycert:` section.
    #[error(
        "the `tinycert:` section is no longer supported: TinyCert no longer exists. \
         Use a CA you control in `certificates:` instead: `certificates.ca_cert_file` + \
         `certificates.ca_key_file` (a local CA, berth signs) or `certificates.acm_pca_arn` \
         (ACM Private CA) replace `tinycert.ca_id`, `email`, `passphrase` and `api_token`; \
         `tinycert.ca_path`, `tinycert.certificates_path` and `tinycert.node_certificate` \
         become `certificates.ca_path`, `certificates.certificates_path` and \
         `certificates.node_certificate`; `tinycert.certificates` (other certificates by \
         TinyCert id) has no replacement: issue them from your CA"
    )]
    TinyCert,
    /// A value of the right type that does not make sense.
    #[error("invalid configuration: `{key}`: {message}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

impl Config {
    /// The defaults alone.
    pub fn defaults() -> Config {
        Config::parse("<defaults>", "").expect("the built-in defaults are valid")
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Config::parse(&shown, &text)
    }

    /// Parses `text` (a user's YAML; `path` is only used in messages), merges it over
    /// the defaults and validates the result.
    pub fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            path: path.to_owned(),
            message,
        };
        let mut merged = yaml_value(DEFAULTS_YAML).map_err(syntax)?;
        let user = if text.trim().is_empty() {
            Value::Null
        } else {
            yaml_value(text).map_err(syntax)?
        };
        match &user {
            Value::Object(map) => {
                if map.contains_key("tinycert") {
                    return Err(ConfigError::TinyCert);
                }
            }
            Value::Null => {}
            _ => {
                return Err(ConfigError::Syntax {
                    path: path.to_owned(),
                    message: "the top level must be a mapping of sections".into(),
                })
            }
        }
        merge::check_known_keys(&merged, &user)?;
        merge::deep_merge(&mut merged, user);
        let config: Config = serde_json::from_value(merged).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The modules to run, in order, before `--skip-*` flags.
    pub fn modules(&self) -> Vec<Module> {
        let mut modules = self.modules.clone().unwrap_or_else(|| Module::ALL.to_vec());
        modules.sort();
        modules.dedup();
        modules
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let non_empty = |key: &str, value: &str| {
            if value.trim().is_empty() {
                Err(ConfigError::invalid(key, "must not be empty"))
            } else {
                Ok(())
            }
        };
        non_empty("base.ami_build_tag", &self.base.ami_build_tag)?;
        non_empty("hostname.tag_name", &self.hostname.tag_name)?;
        if !(1..=4).contains(&self.hostname.ip_address.octets) {
            return Err(ConfigError::invalid(
                "hostname.ip_address.octets",
                format!(
                    "{} octets: an IPv4 address has 1 to 4",
                    self.hostname.ip_address.octets
                ),
            ));
        }
        non_empty("hosted_zone.name", &self.hosted_zone.name)?;
        non_empty("hosted_zone.owner", &self.hosted_zone.owner)?;
        if let Some(id) = &self.hosted_zone.id {
            non_empty("hosted_zone.id", id)?;
        }
        self.validate_certificates()?;
        self.validate_etcd()?;
        if self.modules.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::invalid(
                "modules",
                "lists no module; leave it out to run every module",
            ));
        }
        Ok(())
    }

    fn validate_certificates(&self) -> Result<(), ConfigError> {
        let c = &self.certificates;
        match (&c.acm_pca_arn, &c.ca_cert_file, &c.ca_key_file) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(ConfigError::invalid(
                    "certificates.acm_pca_arn",
                    "set either acm_pca_arn or ca_cert_file + ca_key_file, not both",
                ))
            }
            (Some(arn), None, None) if !arn.starts_with("arn:") => {
                return Err(ConfigError::invalid(
                    "certificates.acm_pca_arn",
                    format!("{arn:?} is not an ARN"),
                ))
            }
            (None, Some(_), None) => {
                return Err(ConfigError::invalid(
                    "certificates.ca_key_file",
                    "ca_cert_file is set: the CA's key file is needed too",
                ))
            }
            (None, None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "certificates.ca_cert_file",
                    "ca_key_file is set: the CA's certificate file is needed too",
                ))
            }
            _ => {}
        }
        if c.validity_days == 0 {
            return Err(ConfigError::invalid(
                "certificates.validity_days",
                "must be at least 1",
            ));
        }
        if !(1..=99).contains(&c.renew_at_percent) {
            return Err(ConfigError::invalid(
                "certificates.renew_at_percent",
                "must be between 1 and 99",
            ));
        }
        if let Some(command) = &c.reload_command {
            if command
                .first()
                .is_none_or(|program| program.trim().is_empty())
            {
                return Err(ConfigError::invalid(
                    "certificates.reload_command",
                    "must name a program (a list: [program, arg, ...])",
                ));
            }
        }
        if self
            .modules
            .as_ref()
            .is_some_and(|m| m.contains(&Module::Certificates))
            && c.authority().is_none()
        {
            return Err(ConfigError::invalid(
                "modules",
                "lists `certificates` but no CA is configured \
                 (certificates.ca_cert_file + ca_key_file, or certificates.acm_pca_arn)",
            ));
        }
        Ok(())
    }

    fn validate_etcd(&self) -> Result<(), ConfigError> {
        let e = &self.etcd;
        if e.client_port == 0 {
            return Err(ConfigError::invalid("etcd.client_port", "must not be 0"));
        }
        if e.peer_port == 0 {
            return Err(ConfigError::invalid("etcd.peer_port", "must not be 0"));
        }
        if e.client_port == e.peer_port {
            return Err(ConfigError::invalid(
                "etcd.peer_port",
                "must differ from etcd.client_port",
            ));
        }
        if e.cluster_size == 0 {
            return Err(ConfigError::invalid(
                "etcd.cluster_size",
                "must be at least 1",
            ));
        }
        if e.drop_in_file.as_os_str().is_empty() || !e.drop_in_file.is_absolute() {
            return Err(ConfigError::invalid(
                "etcd.drop_in_file",
                "must be an absolute path",
            ));
        }
        if e.data_dir.as_os_str().is_empty() || !e.data_dir.is_absolute() {
            return Err(ConfigError::invalid(
                "etcd.data_dir",
                "must be an absolute path",
            ));
        }
        if let Some(group) = &e.auto_scaling_group {
            if group.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "etcd.auto_scaling_group",
                    "must not be empty; leave it out for the instance's own group",
                ));
            }
        }
        if let Some(table) = &e.marker_table {
            if table.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "etcd.marker_table",
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

/// YAML text as a JSON-like value (mappings, sequences, scalars).
fn yaml_value(text: &str) -> Result<Value, String> {
    serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
}
