//! One run: configuration, identity, the AMI-build check, then each module in order.
//! Every outcome ends in one [`Summary`]; nothing here loops: waits are bounded by
//! the run's deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use berth_aws::CallCounter;
use berth_core::engine::{Caller, RetryPolicy};
use berth_runtime::oneshot::Finished;
use berth_runtime::ExitStatus;
use serde_json::Value;
use tokio::time::Instant;

use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigError, Module};
use crate::context::{EtcdRun, EtcdStep, TlsFiles};
use crate::hostname::HostnameError;
use crate::identity::{self, NodeIdentity};
use crate::summary::{ModuleReport, Summary};
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

/// How a run ended, before it becomes berth-runtime's outcome.
enum Ended {
    Done,
    AmiBuild,
}

/// Runs the command line's command once and summarises it for berth-runtime's
/// one-shot runner (which enforces `--deadline` and SIGTERM).
pub async fn run(cli: &Cli) -> Finished<Summary> {
    let deadline = Instant::now() + cli.deadline;
    let counter = CallCounter::new();
    let mut progress = Progress::default();
    let outcome = execute(cli, &counter, deadline, &mut progress).await;
    let summary = Summary {
        command: match cli.command() {
            Command::Run => "run",
            Command::RenewCerts => "renew-certs",
            Command::Plan => "plan",
            Command::PromoteLearner => "promote-learner",
        },
        dry_run: cli.dry_run(),
        instance: progress.instance,
        modules: progress.modules,
        aws_calls: counter.snapshot(),
    };
    match outcome {
        Ok(Ended::Done) => Finished::Done(summary),
        Ok(Ended::AmiBuild) => Finished::Other {
            outcome: "ami_build",
            status: ExitStatus::new(crate::EXIT_AMI_BUILD),
            summary,
        },
        Err(error) if is_bad_input(&error) => Finished::BadConfiguration(error.into()),
        Err(error) => Finished::Failed {
            summary: Some(summary),
            error: error.into(),
        },
    }
}

/// Bad configuration or unusable tags (exit 2); decided by the error's type, never
/// its text.
fn is_bad_input(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|e| e.is::<ConfigError>() || e.is::<HostnameError>())
}

async fn execute(
    cli: &Cli,
    counter: &CallCounter,
    deadline: Instant,
    progress: &mut Progress,
) -> anyhow::Result<Ended> {
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
        return Ok(Ended::AmiBuild);
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
    // Every provider call of the core workflows (DNS, etcd): rate limit, jittered
    // retries (never longer than the run), tallies.
    let retry = RetryPolicy::default();
    let caller = Caller::new(
        RetryPolicy {
            budget: retry.budget.min(cli.deadline),
            ..retry
        },
        Duration::ZERO,
    );

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
                let report = dns::apply(&config.hosted_zone, &aws, &caller, names, dry_run)
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
                    Command::Run | Command::Plan | Command::PromoteLearner => certs::Mode::Ensure,
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
                let certificates = &config.certificates;
                if tls.is_none()
                    && certificates.node_certificate
                    && certificates.authority().is_some()
                {
                    // The certificates module did not run now: the files it keeps.
                    let names = match &names {
                        Some(names) => names.clone(),
                        None => NodeNames::new(&config, &identity)?,
                    };
                    tls = Some(certs::locate(certificates, &aws, &names).await?);
                }
                let input = EtcdRun {
                    settings: &config.etcd,
                    identity: &identity,
                    aws: &aws,
                    tls: tls.as_ref(),
                    caller: &caller,
                    step: match cli.command() {
                        Command::PromoteLearner => EtcdStep::PromoteLearner,
                        Command::Run | Command::Plan | Command::RenewCerts => EtcdStep::Boot,
                    },
                    dry_run,
                    deadline,
                    root: config.base.root(),
                };
                let report = etcd::run(input).await.context("etcd")?;
                progress.record(module, report);
            }
        }
    }
    Ok(Ended::Done)
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
    if cli.command() == Command::PromoteLearner {
        modules = vec![Module::Etcd];
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
