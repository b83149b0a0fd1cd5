//! One run: configuration, identity, the AMI-build check, then each module in order.
//! Every outcome ends in one [`Summary`]; nothing here loops: waits are bounded by
//! the run's deadline.

use std::collections::BTreeMap;

use anyhow::Context;
use berth_aws::CallCounter;
use serde_json::Value;
use tokio::time::Instant;

use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigError, Module};
use crate::context::{EtcdRun, TlsFiles};
use crate::hostname::HostnameError;
use crate::identity::{self, NodeIdentity};
use crate::summary::{ModuleReport, RunStatus, Summary};
use crate::{certs, dns, etcd, hostname};

/// What a run has gathered so far, kept when it fails half-way.
#[derive(Default)]
struct Progress {
    instance: Option<Value>,
    modules: BTreeMap<String, Value>,
}

impl Progress {
    fn record(&mut self, module: Module, report: impl serde::Serialize) {
        let value = serde_json::to_value(report).unwrap_or(Value::Null);
        self.modules.insert(module.as_str().to_owned(), value);
    }
}

/// Runs the command line's command and summarises it.
pub async fn run(cli: &Cli) -> Summary {
    let started = Instant::now();
    let deadline = started + cli.deadline;
    let counter = CallCounter::new();
    let mut progress = Progress::default();
    let outcome =
        tokio::time::timeout_at(deadline, execute(cli, &counter, deadline, &mut progress))
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "the run did not finish within its deadline of {}",
                    humantime::format_duration(cli.deadline)
                ))
            });
    let (status, error) = match outcome {
        Ok(status) => (status, None),
        Err(error) => {
            let status = classify(&error);
            tracing::error!("{error:#}");
            (status, Some(format!("{error:#}")))
        }
    };
    Summary {
        command: match cli.command() {
            Command::Run => "run",
            Command::RenewCerts => "renew-certs",
            Command::Plan => "plan",
        },
        dry_run: cli.dry_run(),
        status,
        exit_code: status.exit_code(),
        instance: progress.instance,
        modules: progress.modules,
        error,
        aws_calls: counter.snapshot(),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// Bad configuration or unusable tags (exit 2), anything else a failure (exit 1).
/// Decided by the error's type, never its text.
fn classify(error: &anyhow::Error) -> RunStatus {
    let bad_input = error
        .chain()
        .any(|e| e.is::<ConfigError>() || e.is::<HostnameError>());
    if bad_input {
        RunStatus::BadConfiguration
    } else {
        RunStatus::Failed
    }
}

async fn execute(
    cli: &Cli,
    counter: &CallCounter,
    deadline: Instant,
    progress: &mut Progress,
) -> anyhow::Result<RunStatus> {
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::defaults(),
    };
    let modules = selected_modules(cli, &config)?;
    let dry_run = cli.dry_run();
    tracing::info!(
        modules = ?modules.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        dry_run,
        "starting"
    );

    let (identity, aws) = identity::discover(counter.clone()).await?;
    progress.instance = serde_json::to_value(&identity).ok();
    if identity.tags.contains_key(&config.base.ami_build_tag) {
        tracing::warn!(
            tag = %config.base.ami_build_tag,
            "this instance is an AMI build: nothing to do"
        );
        return Ok(RunStatus::AmiBuild);
    }

    let names = if modules
        .iter()
        .any(|m| matches!(m, Module::Hostname | Module::Dns | Module::Certificates))
    {
        Some(NodeNames::new(&config, &identity)?)
    } else {
        None
    };
    // Known once the certificates module ran in this run.
    let mut tls: Option<TlsFiles> = None;

    for module in modules {
        let _span = tracing::info_span!("module", name = module.as_str()).entered();
        match module {
            Module::Hostname => {
                let names = names.as_ref().context("hostname needs the node's names")?;
                let report = hostname::apply(
                    &config.hostname,
                    config.base.root(),
                    &names.hostname,
                    dry_run,
                )?;
                progress.record(module, report);
            }
            Module::Dns => {
                let names = names.as_ref().context("DNS needs the node's names")?;
                let report = dns::apply(&config.hosted_zone, &aws, names, dry_run)
                    .await
                    .context("DNS")?;
                progress.record(module, report);
            }
            Module::Certificates => {
                let names = names
                    .as_ref()
                    .context("certificates need the node's names")?;
                let mode = match cli.command() {
                    Command::RenewCerts => certs::Mode::Renew,
                    Command::Run | Command::Plan => certs::Mode::Ensure,
                };
                if config.certificates.authority().is_none() {
                    let report = ModuleReport::skipped(
                        "no CA configured (certificates.ca_cert_file + ca_key_file, or \
                         certificates.acm_pca_arn)",
                    );
                    progress.record(module, report);
                    continue;
                }
                let (report, files) =
                    certs::apply(&config.certificates, &aws, names, mode, dry_run, deadline)
                        .await
                        .context("certificates")?;
                tls = files;
                progress.record(module, report);
            }
            Module::Etcd => {
                let input = EtcdRun {
                    settings: &config.etcd,
                    identity: &identity,
                    aws: &aws,
                    tls: tls.as_ref(),
                    dry_run,
                    deadline,
                    root: config.base.root(),
                };
                let report = etcd::run(input).await.context("etcd")?;
                progress.record(module, report);
            }
        }
    }
    Ok(RunStatus::Done)
}

/// The modules this command runs: the configured ones minus `--skip-*`; `renew-certs`
/// runs only the certificates module.
fn selected_modules(cli: &Cli, config: &Config) -> anyhow::Result<Vec<Module>> {
    let mut modules: Vec<Module> = config
        .modules()
        .into_iter()
        .filter(|m| !cli.skips(*m))
        .collect();
    if cli.command() == Command::RenewCerts {
        if config.certificates.authority().is_none() {
            return Err(ConfigError::Invalid {
                key: "certificates".into(),
                message: "renew-certs needs a CA (certificates.ca_cert_file + ca_key_file, \
                          or certificates.acm_pca_arn)"
                    .into(),
            }
            .into());
        }
        modules.retain(|m| *m == Module::Certificates);
    }
    Ok(modules)
}

/// The node's names: its hostname and its FQDN in the hosted zone.
#[derive(Debug, Clone)]
pub struct NodeNames {
    /// `<tag value><glue><octets>`.
    pub hostname: String,
    /// `<hostname>.<zone name>`, without the trailing dot.
    pub fqdn: String,
    /// The private IP.
    pub private_ip: std::net::IpAddr,
}

impl NodeNames {
    fn new(config: &Config, identity: &NodeIdentity) -> Result<Self, HostnameError> {
        let hostname = hostname::build(&config.hostname, &identity.tags, identity.private_ip)?;
        let zone = config.hosted_zone.name.trim_end_matches('.');
        Ok(NodeNames {
            fqdn: format!("{hostname}.{zone}"),
            hostname,
            private_ip: identity.private_ip,
        })
    }
}
