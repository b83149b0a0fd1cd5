//! The real berth-daemon controller, embedded: `berth_daemon::run::run` with the
//! demo's providers injected. Nothing of the daemon is re-implemented here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use berth_core::provider::{NodeConfigurations, TargetGroups, TargetOwnership};
use berth_daemon::cli::Mode;
use berth_daemon::run::{self, Dependencies, Settings};
use berth_daemon::static_config::StaticConfig;
use berth_kube::leader::LeaseConfig;
use berth_runtime::controller::Stopped;
use berth_runtime::{CancellationToken, Process};
use tokio::task::JoinHandle;

/// Where the daemon keeps its Lease and ownership ConfigMap.
pub(crate) const NAMESPACE: &str = "kube-system";
/// The Lease cluster mode campaigns for.
pub(crate) const LEASE: &str = "berth-daemon";
/// This replica's identity.
pub(crate) const IDENTITY: &str = "berth-daemon-demo-0";

/// What the daemon is given.
pub(crate) struct Embedding {
    /// The Kubernetes API.
    pub(crate) client: kube::Client,
    /// AWS target groups.
    pub(crate) target_groups: Arc<dyn TargetGroups>,
    /// Cast.ai.
    pub(crate) node_configurations: Arc<dyn NodeConfigurations>,
    /// Static rules.
    pub(crate) rules: StaticConfig,
    /// The periodic full pass.
    pub(crate) resync: Duration,
    /// Stops the daemon with the demo (Ctrl-C).
    pub(crate) shutdown: CancellationToken,
}

/// A daemon running on the demo's runtime.
pub(crate) struct Daemon {
    task: JoinHandle<anyhow::Result<Stopped>>,
    shutdown: CancellationToken,
    ownership: Arc<dyn TargetOwnership>,
}

impl Daemon {
    /// Starts the daemon in cluster mode, leader-elected, recording ownership in its
    /// ConfigMap as in production.
    pub(crate) fn start(embedding: Embedding) -> Self {
        let mut settings = Settings::new(Mode::Cluster, embedding.rules);
        settings.namespace = NAMESPACE.to_owned();
        settings.identity = IDENTITY.to_owned();
        settings.election = Some(LeaseConfig::new(NAMESPACE, LEASE, IDENTITY));
        settings.resync = embedding.resync;
        settings.debounce = Duration::from_millis(100);
        let ownership = run::config_map_ownership(&embedding.client, &settings);
        let dependencies = Dependencies {
            client: embedding.client,
            target_groups: embedding.target_groups,
            node_configurations: Some(embedding.node_configurations),
            ownership: ownership.clone(),
            spot_notice: None,
        };
        let mut process = Process::detached("daemon");
        // The demo's Ctrl-C stops the daemon too; stopping the daemon stops only it.
        process.shutdown = embedding.shutdown.child_token();
        let shutdown = process.shutdown.clone();
        let task = tokio::spawn(async move { run::run(dependencies, settings, &process).await });
        Daemon {
            task,
            shutdown,
            ownership,
        }
    }

    /// The daemon's ownership store (what berth registered), for the final table.
    pub(crate) fn ownership(&self) -> Arc<dyn TargetOwnership> {
        self.ownership.clone()
    }

    /// Whether the daemon has stopped on its own (it should not).
    pub(crate) fn has_stopped(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the daemon to stop (as SIGTERM does) and waits for it.
    pub(crate) async fn stop(self) -> anyhow::Result<Stopped> {
        self.shutdown.cancel();
        self.task
            .await
            .context("the daemon's task panicked")?
            .context("berth-daemon failed")
    }
}
