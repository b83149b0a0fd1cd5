//! The server configuration (`--config`, YAML): what the seed hard-coded (region,
//! network, roles, addon versions) becomes Terraform variables, plus the supported
//! Kubernetes versions and IP families and how runner Jobs are built.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;

/// Environment variables named `BERTH_TFVAR_<name>` set (or override) the Terraform
/// variable `<name>`.
pub(crate) const TFVAR_ENV_PREFIX: &str = "BERTH_TFVAR_";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerConfig {
    /// Kubernetes versions a request may ask for (`1.33`, ...).
    pub(crate) kubernetes_versions: Vec<String>,
    /// IP families a request may ask for.
    #[serde(default = "default_ip_families")]
    pub(crate) ip_families: Vec<String>,
    /// The AWS region, also used in `kubeconfig_command`.
    pub(crate) region: String,
    /// Terraform variables every run gets (network, roles, addon versions, ...), as
    /// `TF_VAR_<name>`; values are passed as written (HCL for lists: `["a","b"]`).
    #[serde(default)]
    pub(crate) terraform_vars: BTreeMap<String, String>,
    pub(crate) runner: RunnerConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunnerConfig {
    /// The runner image.
    pub(crate) image: String,
    /// The container command (the runner script).
    #[serde(default = "default_command")]
    pub(crate) command: Vec<String>,
    /// The Jobs' service account (RBAC for the state Secret and Leases).
    #[serde(default)]
    pub(crate) service_account: Option<String>,
    /// A Secret whose keys become the runner's environment (AWS credentials, unless
    /// the service account has a role).
    #[serde(default)]
    pub(crate) env_from_secret: Option<String>,
    /// More environment for the runner.
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    /// `activeDeadlineSeconds` of every Job.
    #[serde(default = "default_deadline")]
    pub(crate) active_deadline_seconds: i64,
    /// `ttlSecondsAfterFinished` of plan-only Jobs (apply and destroy Jobs are kept).
    #[serde(default = "default_plan_ttl")]
    pub(crate) plan_ttl_seconds: i32,
    /// `terminationGracePeriodSeconds`: how long Terraform has to save its state after
    /// SIGTERM before it is killed.
    #[serde(default = "default_grace")]
    pub(crate) termination_grace_seconds: i64,
    /// After a cancel, how long terraform has to stop on its SIGINT before the Job's
    /// deadline ends it (its pod then gets SIGTERM and the termination grace period).
    #[serde(default = "default_cancel_grace")]
    pub(crate) cancel_grace_seconds: i64,
}

fn default_ip_families() -> Vec<String> {
    vec!["ipv4".into(), "ipv6".into()]
}
fn default_command() -> Vec<String> {
    vec!["/usr/local/bin/berth-runner".into()]
}
fn default_deadline() -> i64 {
    3 * 3600
}
fn default_plan_ttl() -> i32 {
    24 * 3600
}
fn default_cancel_grace() -> i64 {
    10 * 60
}
fn default_grace() -> i64 {
    30 * 60
}

impl ServerConfig {
    /// Reads the file, then applies `BERTH_TFVAR_*` from `env`.
    pub(crate) fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        let mut config: ServerConfig = serde_saphyr::from_str(&text)
            .with_context(|| format!("invalid configuration {}", path.display()))?;
        for (key, value) in env {
            if let Some(name) = key.strip_prefix(TFVAR_ENV_PREFIX) {
                config.terraform_vars.insert(name.to_owned(), value);
            }
        }
        anyhow::ensure!(
            !config.kubernetes_versions.is_empty(),
            "kubernetes_versions must list at least one version"
        );
        anyhow::ensure!(!config.runner.command.is_empty(), "runner.command is empty");
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_sets_and_overrides_terraform_variables() {
        let dir = std::env::temp_dir().join(format!("berth-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yaml");
        std::fs::write(
            &path,
            "kubernetes_versions: [\"1.33\"]\nregion: eu-west-1\nterraform_vars:\n  subnet_ids: '[\"subnet-a\"]'\n  node_count: \"2\"\nrunner:\n  image: runner:1\n",
        )
        .unwrap();
        let env = [
            ("BERTH_TFVAR_subnet_ids", r#"["subnet-b", "subnet-c"]"#),
            ("BERTH_TFVAR_cluster_role_arn", "arn:aws:iam::1:role/eks"),
            ("OTHER", "ignored"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let config = ServerConfig::load(&path, env).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            config.terraform_vars,
            BTreeMap::from(
                [
                    ("subnet_ids", r#"["subnet-b", "subnet-c"]"#),
                    ("node_count", "2"),
                    ("cluster_role_arn", "arn:aws:iam::1:role/eks"),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
            )
        );
        assert_eq!(config.ip_families, ["ipv4", "ipv6"]);
        assert_eq!(config.runner.command, ["/usr/local/bin/berth-runner"]);
    }
}
