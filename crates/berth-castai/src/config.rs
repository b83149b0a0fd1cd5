//! Settings of the Cast.ai client, and the API key that never shows in logs.

use std::fmt;
use std::time::Duration;

use crate::Error;

/// Cast.ai's public API.
pub const DEFAULT_BASE_URL: &str = "https://api.cast.ai";

/// A Cast.ai API key. `Debug` and `Display` print `***`, so a key can sit in a
/// config struct that is logged without leaking.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; surrounding whitespace (a trailing newline from a mounted Secret
    /// file) is trimmed, and an empty key is refused.
    pub fn new(key: impl Into<String>) -> Result<Self, Error> {
        let key = key.into().trim().to_owned();
        if key.is_empty() {
            return Err(Error::Config("the Cast.ai API key is empty".into()));
        }
        Ok(ApiKey(key))
    }

    /// The key itself, for the `X-API-Key` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to reach Cast.ai and how hard to lean on it.
#[derive(Debug, Clone)]
pub struct CastAiConfig {
    /// API base URL without a trailing path, default [`DEFAULT_BASE_URL`]
    /// (environment: `CASTAI_API_URL`). `http://` is accepted for local fakes.
    pub base_url: String,
    /// The Cast.ai cluster id (environment: `CLUSTER_ID`).
    pub cluster_id: String,
    /// The API key (environment: `CLUSTER_API_KEY`).
    pub api_key: ApiKey,
    /// Deadline of one request, connection included. Default 10 s.
    pub timeout: Duration,
    /// How long a fetched configuration is served without asking again. Default 60 s:
    /// a resync over many nodes sharing a configuration makes one request, not one per node.
    pub cache_ttl: Duration,
    /// First pause after a failed request (outage, 5xx, timeout, 429). Default 1 s.
    pub backoff_initial: Duration,
    /// Longest pause; the pause doubles per consecutive failure. Default 5 min.
    pub backoff_max: Duration,
}

impl CastAiConfig {
    /// Settings with the defaults above.
    pub fn new(cluster_id: impl Into<String>, api_key: ApiKey) -> Self {
        CastAiConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            cluster_id: cluster_id.into(),
            api_key,
            timeout: Duration::from_secs(10),
            cache_ttl: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }

    /// Reads `CLUSTER_ID`, `CLUSTER_API_KEY` and optionally `CASTAI_API_URL` from the
    /// process environment (the seed's variables).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`CastAiConfig::from_env`] over any variable lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let required = |name: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| Error::Config(format!("{name} is not set")))
        };
        let cluster_id = required("CLUSTER_ID")?;
        let api_key = ApiKey::new(required("CLUSTER_API_KEY")?)?;
        let mut config = CastAiConfig::new(cluster_id.trim(), api_key);
        if let Some(url) = lookup("CASTAI_API_URL").filter(|v| !v.trim().is_empty()) {
            config.base_url = url.trim().to_owned();
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn api_key_never_prints() {
        let key = ApiKey::new("s3cr3t-key\n").unwrap();
        assert_eq!(key.expose(), "s3cr3t-key");
        assert_eq!(format!("{key:?}"), "***");
        assert_eq!(key.to_string(), "***");
        let config = CastAiConfig::new("c-1", key);
        assert!(!format!("{config:?}").contains("s3cr3t"));
        assert!(ApiKey::new("  ").is_err());
    }

    #[test]
    fn from_lookup_reads_the_seed_variables() {
        let env: HashMap<&str, &str> = [("CLUSTER_ID", "c-1"), ("CLUSTER_API_KEY", "k")].into();
        let config = CastAiConfig::from_lookup(|n| env.get(n).map(|v| v.to_string())).unwrap();
        assert_eq!(config.base_url, DEFAULT_BASE_URL);
        assert_eq!(config.cluster_id, "c-1");

        let env: HashMap<&str, &str> = [
            ("CLUSTER_ID", "c-1"),
            ("CLUSTER_API_KEY", "k"),
            ("CASTAI_API_URL", "http://127.0.0.1:9"),
        ]
        .into();
        let config = CastAiConfig::from_lookup(|n| env.get(n).map(|v| v.to_string())).unwrap();
        assert_eq!(config.base_url, "http://127.0.0.1:9");

        let env: HashMap<&str, &str> = [("CLUSTER_ID", "c-1")].into();
        let err = CastAiConfig::from_lookup(|n| env.get(n).map(|v| v.to_string())).unwrap_err();
        assert!(err.to_string().contains("CLUSTER_API_KEY"), "{err}");
    }
}
