//! The function's configuration, from environment variables (the names are the
//! contract with the deployment template and with users of the seed).

use std::fmt;
use std::time::Duration;

use berth_core::domain::{InstallationId, Mode, Owner, TagFilter};
use berth_core::plan::AddressPolicy;
use berth_core::workflow::{BindingSettings, DnsNameTemplate};

/// Which instances get an address (`key=value` or bare `key`, comma-separated).
pub(crate) const INSTANCE_TAGS: &str = "BERTH_INSTANCE_TAGS";
/// The pool: Elastic IPs carrying all of these tags.
pub(crate) const EIP_TAGS: &str = "BERTH_EIP_TAGS";
/// The Route53 hosted zone id.
pub(crate) const HOSTED_ZONE_ID: &str = "BERTH_HOSTED_ZONE_ID";
/// Records are `<template>.<suffix>`.
pub(crate) const DNS_SUFFIX: &str = "BERTH_DNS_SUFFIX";
/// The name template (default `{public_ip_dashed}`).
pub(crate) const DNS_NAME_TEMPLATE: &str = "BERTH_DNS_NAME_TEMPLATE";
/// Record TTL in seconds (default 60).
pub(crate) const DNS_TTL: &str = "BERTH_DNS_TTL";
/// The DynamoDB table (partition key `allocation_id`, a string).
pub(crate) const LEDGER_TABLE: &str = "BERTH_LEDGER_TABLE";
/// Release the address when the instance stops (default false).
pub(crate) const RELEASE_ON_STOP: &str = "BERTH_RELEASE_ON_STOP";
/// Most AWS API calls per second the function sends (0 = unlimited, the default).
pub(crate) const AWS_MAX_RPS: &str = "BERTH_AWS_MAX_RPS";
/// The installation this function belongs to (default `default`); its owner id is
/// `berth/<installation>/lambda`.
pub(crate) const INSTALLATION_ID: &str = "BERTH_INSTALLATION_ID";

/// The ledger table's partition key.
pub(crate) const LEDGER_KEY: &str = "allocation_id";
/// How long a claim holds if its invocation dies: longer than the function's timeout
/// (60 s in the example template), so a live invocation never loses its claim.
const CLAIM_TTL: Duration = Duration::from_secs(300);

/// A configuration problem, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    /// The environment variable.
    pub(crate) variable: &'static str,
    /// What is wrong with it.
    pub(crate) problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration: {}: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// The parsed configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// What the binder needs.
    pub(crate) settings: BindingSettings,
    /// The ledger table.
    pub(crate) table: String,
    /// The least time between two AWS calls (zero: no limit).
    pub(crate) min_call_interval: Duration,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub(crate) fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str| {
            get(name).ok_or_else(|| ConfigError {
                variable: name,
                problem: "is not set (it is required)".into(),
            })
        };
        let bad = |variable: &'static str, problem: String| ConfigError { variable, problem };

        let instance_filter = tags(INSTANCE_TAGS, &required(INSTANCE_TAGS)?)?;
        let pool = tags(EIP_TAGS, &required(EIP_TAGS)?)?;

        let zone = required(HOSTED_ZONE_ID)?;
        let zone_id = zone.trim_start_matches("/hostedzone/").to_owned();
        if zone_id.is_empty()
            || zone_id.len() > 32
            || !zone_id.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(bad(
                HOSTED_ZONE_ID,
                format!("{zone:?} is not a Route53 hosted zone id (e.g. Z0123456789ABCDEFGHIJ)"),
            ));
        }

        let dns_suffix = required(DNS_SUFFIX)?.trim_matches('.').to_ascii_lowercase();
        let name_template = match get(DNS_NAME_TEMPLATE) {
            Some(t) => {
                DnsNameTemplate::parse(&t).map_err(|e| bad(DNS_NAME_TEMPLATE, e.to_string()))?
            }
            None => DnsNameTemplate::default(),
        };
        // Catch a bad suffix now rather than at the first event.
        if dns_suffix.is_empty()
            || dns_suffix.split('.').any(|l| {
                l.is_empty()
                    || l.len() > 63
                    || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        {
            return Err(bad(
                DNS_SUFFIX,
                format!("{dns_suffix:?} is not a DNS name (e.g. live.example.com)"),
            ));
        }

        let dns_ttl = match get(DNS_TTL) {
            None => 60,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|t| *t <= 2_147_483_647)
                .ok_or_else(|| {
                    bad(
                        DNS_TTL,
                        format!("{v:?} is not a number of seconds (0 to 2147483647)"),
                    )
                })?,
        };

        let table = required(LEDGER_TABLE)?;
        if table.len() < 3
            || table.len() > 255
            || !table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(bad(
                LEDGER_TABLE,
                format!("{table:?} is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)"),
            ));
        }

        let release_on_stop = match get(RELEASE_ON_STOP).map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => true,
            Some(v) if matches!(v.as_str(), "false" | "0" | "no") => false,
            Some(v) => {
                return Err(bad(
                    RELEASE_ON_STOP,
                    format!("{v:?} is not a boolean (true or false)"),
                ))
            }
        };

        let min_call_interval = match get(AWS_MAX_RPS) {
            None => Duration::ZERO,
            Some(v) => match v.parse::<f64>() {
                Ok(0.0) => Duration::ZERO,
                Ok(rps) if rps.is_finite() && rps > 0.0 => Duration::from_secs_f64(1.0 / rps),
                _ => {
                    return Err(bad(
                        AWS_MAX_RPS,
                        format!("{v:?} is not a number of calls per second (0 = unlimited)"),
                    ))
                }
            },
        };
        let installation = match get(INSTALLATION_ID) {
            None => InstallationId::default(),
            Some(v) => InstallationId::new(&v).map_err(|e| bad(INSTALLATION_ID, e.to_string()))?,
        };
        let owner = Owner::for_installation(&installation, Mode::Lambda);
        // The owner id before installation ids existed. Its rows and DNS names are
        // adopted (rewritten under `owner` when next written), so an upgrade orphans
        // nothing; the table name plays no part in the owner any more.
        let legacy = Owner::new(format!("berth-lambda/{table}"))
            .map_err(|e| bad(LEDGER_TABLE, e.to_string()))?;
        Ok(Config {
            settings: BindingSettings {
                owner,
                previous_owners: vec![legacy],
                instance_filter,
                pool,
                zone_id,
                dns_suffix,
                name_template,
                dns_ttl,
                policy: AddressPolicy { release_on_stop },
                claim_ttl: CLAIM_TTL,
            },
            table,
            min_call_interval,
        })
    }
}

/// A non-empty tag filter: an empty one would match every instance or every address
/// of the account.
fn tags(variable: &'static str, text: &str) -> Result<TagFilter, ConfigError> {
    let filter = TagFilter::parse(text).map_err(|e| ConfigError {
        variable,
        problem: e.to_string(),
    })?;
    if filter.is_empty() {
        return Err(ConfigError {
            variable,
            problem: format!("{text:?} names no tag"),
        });
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const VALID: &[(&str, &str)] = &[
        (INSTANCE_TAGS, "karpenter.sh/nodepool,team=live"),
        (EIP_TAGS, "pool=live"),
        (HOSTED_ZONE_ID, "/hostedzone/Z0123ABC"),
        (DNS_SUFFIX, "Live.Example.com."),
        (LEDGER_TABLE, "berth-ledger"),
    ];

    fn with(overrides: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut all: Vec<(&str, &str)> = VALID
            .iter()
            .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
            .copied()
            .collect();
        all.extend(overrides.iter().filter(|(_, v)| !v.is_empty()).copied());
        all
    }

    #[test]
    fn defaults_apply_when_optional_variables_are_unset() {
        let c = Config::from_lookup(env(VALID)).unwrap();
        assert_eq!(c.settings.zone_id, "Z0123ABC");
        assert_eq!(c.settings.dns_suffix, "live.example.com");
        assert_eq!(c.settings.dns_ttl, 60);
        assert_eq!(c.settings.name_template, DnsNameTemplate::default());
        assert!(!c.settings.policy.release_on_stop);
        assert_eq!(c.table, "berth-ledger");
        assert_eq!(c.min_call_interval, Duration::ZERO, "no rate limit");
        assert_eq!(c.settings.owner.as_str(), "berth/default/lambda");
        // Rows and DNS names written before installation ids stay ours.
        assert_eq!(
            c.settings.previous_owners,
            vec![Owner::new("berth-lambda/berth-ledger").unwrap()]
        );
        assert_eq!(
            c.settings.instance_filter.to_string(),
            "karpenter.sh/nodepool,team=live"
        );
    }

    #[test]
    fn optional_variables_are_read() {
        let c = Config::from_lookup(env(&with(&[
            (DNS_TTL, "300"),
            (RELEASE_ON_STOP, "TRUE"),
            (DNS_NAME_TEMPLATE, "{tag:team}-{instance_id}"),
            (INSTALLATION_ID, "prod-eu-1"),
            (AWS_MAX_RPS, "4"),
        ])))
        .unwrap();
        assert_eq!(c.min_call_interval, Duration::from_millis(250));
        assert_eq!(c.settings.owner.as_str(), "berth/prod-eu-1/lambda");
        assert_eq!(c.settings.dns_ttl, 300);
        assert!(c.settings.policy.release_on_stop);
        assert_eq!(
            c.settings.name_template.to_string(),
            "{tag:team}-{instance_id}"
        );
    }

    #[test]
    fn every_missing_or_malformed_variable_is_named() {
        let cases: &[(&'static str, &'static str)] = &[
            (INSTANCE_TAGS, ""),
            (INSTANCE_TAGS, " , "),
            (INSTANCE_TAGS, "=x"),
            (EIP_TAGS, ""),
            (HOSTED_ZONE_ID, ""),
            (HOSTED_ZONE_ID, "not a zone"),
            (DNS_SUFFIX, ""),
            (DNS_SUFFIX, "bad_suffix!.com"),
            (DNS_NAME_TEMPLATE, "{nope}"),
            (DNS_TTL, "sixty"),
            (DNS_TTL, "-1"),
            (LEDGER_TABLE, ""),
            (LEDGER_TABLE, "a/b"),
            (RELEASE_ON_STOP, "maybe"),
            (INSTALLATION_ID, "prod/eu"),
            (AWS_MAX_RPS, "fast"),
            (AWS_MAX_RPS, "-1"),
        ];
        for (variable, value) in cases {
            let err = Config::from_lookup(env(&with(&[(variable, value)]))).unwrap_err();
            assert_eq!(err.variable, *variable, "{variable}={value:?}: {err}");
            assert!(err.to_string().contains(variable), "{err}");
        }
    }
}
