//! The daemon's controller, with its dependencies injected: the embedding entry point.
//!
//! [`run`] is the whole daemon once its adapters exist: it watches nodes through the
//! given `kube::Client`, runs reconcile passes on `berth_runtime::controller::Controller`
//! (node changes as triggers, a periodic resync, the pass's `requeue_after`, jittered
//! backoff after errors, the Lease elector as the leadership gate in cluster mode) and
//! reports in the process's registry and `/readyz`. Production `main`
//! ([`crate::wiring`]) builds the real adapters (ELBv2, Cast.ai, the ownership
//! ConfigMap, IMDS) and calls it; a demo or a test calls it with other providers, e.g.
//! berth-core's in-memory ones and berth-kube's fake API server:
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use berth_core::domain::TargetType;
//! use berth_core::memory::{MemoryNodeConfigurations, MemoryTargetGroups};
//! use berth_daemon::cli::Mode as Scope;
//! use berth_daemon::run::{self, Dependencies, Settings};
//! use berth_daemon::static_config::StaticConfig;
//! use berth_runtime::Process;
//!
//! let groups = Arc::new(MemoryTargetGroups::default());
//! groups.add_group("web", TargetType::Instance, Some(30080));
//! let rules = StaticConfig::parse(
//!     "rules.yaml",
//!     "rules:\n  - nodeSelector: {matchLabels: {role: web}}\n    targetGroups: [{name: web}]\n",
//! )?;
//! let settings = Settings::new(Scope::Cluster, rules);
//! let dependencies = Dependencies {
//!     // The real ConfigMap store, or e.g. berth-core's `LedgerOwnership` over a
//!     // `MemoryLedger`.
//!     ownership: run::config_map_ownership(&client, &settings),
//!     client,
//!     target_groups: groups,
//!     node_configurations: Some(Arc::new(MemoryNodeConfigurations::default())),
//!     spot_notice: None,
//! };
//! let process = Process::detached("daemon");
//! let admin = process.serve_admin("127.0.0.1:0".parse()?).await?; // optional
//! // Runs until process.shutdown is cancelled.
//! run::run(dependencies, settings, &process).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::{InstallationId, InstanceId, Mode as OwnerMode, Node, Owner};
use berth_core::engine::{ApplyOptions, Engine};
use berth_core::plan::NodeRules;
use berth_core::provider::{NodeConfigurations, TargetGroups, TargetOwnership};
use berth_core::workflow::node_targets::InstanceNotice;
use berth_kube::events::EventRecorder;
use berth_kube::leader::{LeaderElector, LeaseConfig};
use berth_kube::ownership::ConfigMapOwnership;
use berth_kube::watch::{watch_nodes, Labels, NodeCache, NodeScope};
use berth_runtime::controller::{self, Controller, Outcome, Stopped};
use berth_runtime::{CancellationToken, Process};
use tokio::sync::watch;

use crate::cli::Mode;
use crate::events::{NodeEvents, RecordedEvents};
use crate::gc::{Collector, GcSettings};
use crate::metrics::Metrics;
use crate::notice::Notices;
use crate::reconcile::{Pass, Reconciler, Scope};
use crate::resolve::Resolver;
use crate::static_config::StaticConfig;
use crate::triggers::{triggers, Reported};

/// The taint berth adds, in memory only, to its own node once IMDS announces a spot
/// interruption (the rule is berth-core's `NodeTargets`).
pub use berth_core::workflow::node_targets::SPOT_INTERRUPTION_TAINT;

/// The `controller` label of the daemon's loop in `berth_reconcile_*` and `berth_leader`.
pub const CONTROLLER: &str = "nodes";

/// How long a stopping daemon waits for its Events to be published and its Lease to be
/// released.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The adapters the daemon runs on, built by the caller.
pub struct Dependencies {
    /// The Kubernetes API: the node watch, Events and (cluster mode) the Lease.
    pub client: kube::Client,
    /// Target groups (production: ELBv2).
    pub target_groups: Arc<dyn TargetGroups>,
    /// Node configurations (production: Cast.ai), if enabled.
    pub node_configurations: Option<Arc<dyn NodeConfigurations>>,
    /// Where berth records the targets it registered (production: a ConfigMap, see
    /// [`config_map_ownership`]).
    pub ownership: Arc<dyn TargetOwnership>,
    /// Node mode: the notices EC2 gave for this node's instance (production: IMDS
    /// polled by [`crate::notice`]); on a spot interruption notice the node is
    /// deregistered ahead of it.
    pub spot_notice: Option<watch::Receiver<Notices>>,
}

/// How the daemon runs: everything but the adapters.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `node` (one node) or `cluster` (every node); notice mode does not run the
    /// controller ([`crate::notice::run`]).
    pub mode: Mode,
    /// This node's name (node mode).
    pub node_name: Option<String>,
    /// This node's instance (node mode, from IMDS): keeps the scope when the Node
    /// object is gone.
    pub own_instance: Option<InstanceId>,
    /// Static rules mapping node labels to target groups.
    pub rules: StaticConfig,
    /// When a node serves, leaves or is held (cordon, NotReady grace...).
    pub node_rules: NodeRules,
    /// The engine's options; `dry_run` also keeps Events, ownership and the Lease
    /// untouched and prints each plan on stdout.
    pub apply: ApplyOptions,
    /// A full pass this long after the previous one (drift repair).
    pub resync: Duration,
    /// How long to gather node changes before acting on them.
    pub debounce: Duration,
    /// Run one pass (once the node list is in) and stop.
    pub once: bool,
    /// Namespace of the ownership ConfigMap(s) and the Lease.
    pub namespace: String,
    /// This replica's identity (Lease holder, Event reporting instance).
    pub identity: String,
    /// Campaign for this Lease and reconcile only while holding it (cluster mode);
    /// `None`: always act.
    pub election: Option<LeaseConfig>,
    /// Whose targets the ownership store records (`berth/<installation>/daemon`).
    pub owner: Owner,
    /// Owner ids of earlier releases (`berth-daemon/<cluster>`) whose records are
    /// adopted: read as `owner`'s and moved under it, so an upgrade orphans nothing.
    pub previous_owners: Vec<Owner>,
    /// IP target GC of crashed sidecars' registrations (`--gc-ip-targets`, cluster
    /// mode; run by the leader only); `None`: off.
    pub gc: Option<GcSettings>,
}

impl Settings {
    /// The command line's defaults for `mode` with `rules`: resync 300 s, debounce
    /// 200 ms, namespace `kube-system`, no election (set [`Settings::election`] for a
    /// leader-elected cluster mode).
    pub fn new(mode: Mode, rules: StaticConfig) -> Self {
        Settings {
            mode,
            node_name: None,
            own_instance: None,
            rules,
            node_rules: NodeRules::default(),
            apply: ApplyOptions::default(),
            resync: Duration::from_secs(300),
            debounce: Duration::from_millis(200),
            once: false,
            namespace: "kube-system".to_owned(),
            identity: format!("berth-daemon-{}", std::process::id()),
            election: None,
            owner: Owner::for_installation(&InstallationId::default(), OwnerMode::Daemon),
            previous_owners: Vec::new(),
            gc: None,
        }
    }

    /// Whether nothing may be changed.
    pub fn dry_run(&self) -> bool {
        self.apply.dry_run
    }

    fn scope(&self) -> (Scope, NodeScope) {
        match self.mode {
            Mode::Cluster => (Scope::Cluster, NodeScope::All),
            Mode::Node | Mode::Notice => {
                let name = self.node_name.clone().unwrap_or_default();
                (
                    Scope::Node {
                        name: name.clone(),
                        instance: self.own_instance.clone(),
                    },
                    NodeScope::Named(name),
                )
            }
        }
    }
}

/// The daemon's ownership store: a ConfigMap in `settings.namespace` recording
/// `settings.owner`'s targets — one for the whole cluster in cluster mode, one per node
/// in node mode (`berth-daemon-node-<node>`, so hundreds of DaemonSet pods never
/// contend on one object) — adopting the records of `settings.previous_owners`.
pub fn config_map_ownership(
    client: &kube::Client,
    settings: &Settings,
) -> Arc<dyn TargetOwnership> {
    Arc::new(config_map_store(client, settings))
}

/// [`config_map_ownership`]'s store itself (to call
/// [`ConfigMapOwnership::adopt`] before the first pass).
pub fn config_map_store(client: &kube::Client, settings: &Settings) -> ConfigMapOwnership {
    let owner = settings.owner.clone();
    let store = match settings.mode {
        Mode::Cluster => ConfigMapOwnership::new(client.clone(), &settings.namespace, owner),
        Mode::Node | Mode::Notice => ConfigMapOwnership::with_name(
            client.clone(),
            &settings.namespace,
            &format!(
                "berth-daemon-node-{}",
                settings.node_name.as_deref().unwrap_or_default()
            ),
            owner,
        ),
    };
    store.adopting(settings.previous_owners.iter().cloned())
}

/// Runs the daemon's controller until `process.shutdown` is cancelled (or after one
/// pass with [`Settings::once`]): its metrics go into `process.metrics`, `/readyz` turns
/// ready once the node list is in. Returns how the loop stopped; an error only if the
/// node watch ended.
pub async fn run(
    dependencies: Dependencies,
    settings: Settings,
    process: &Process,
) -> anyhow::Result<Stopped> {
    let Dependencies {
        client,
        target_groups,
        node_configurations,
        ownership,
        spot_notice,
    } = dependencies;
    let metrics = Metrics::register(&process.metrics);
    let events: Arc<dyn NodeEvents> = if settings.dry_run() {
        Arc::new(RecordedEvents::default())
    } else {
        Arc::new(EventRecorder::new(
            client.clone(),
            "berth-daemon",
            Some(settings.identity.clone()),
        ))
    };
    let (scope, watch_scope) = settings.scope();
    let gc = settings
        .gc
        .clone()
        .filter(|_| !settings.once)
        .map(|gc| Collector {
            client: client.clone(),
            targets: target_groups.clone(),
            engine: Engine::new(settings.apply.clone()),
            settings: gc,
            events: (!settings.dry_run()).then(|| {
                Arc::new(EventRecorder::new(
                    client.clone(),
                    "berth-daemon",
                    Some(settings.identity.clone()),
                ))
            }),
        });
    let resolver = Resolver::new(
        node_configurations,
        settings.rules.clone(),
        target_groups.clone(),
    );
    let reconciler = Reconciler::new(
        resolver,
        target_groups,
        ownership,
        Engine::new(settings.apply.clone()),
        settings.node_rules.clone(),
        scope,
        Arc::new(metrics.clone()),
        events,
    );
    process.readiness.not_ready("waiting for the node list");

    // Leadership: cluster mode campaigns for the Lease; node mode and one-off runs
    // act alone (the sender is kept until the loop ends).
    let elector_stop = CancellationToken::new();
    let (leader_rx, always) = match &settings.election {
        Some(lease) => {
            let elector = Arc::new(LeaderElector::new(client.clone(), lease.clone()));
            let rx = elector.subscribe();
            let stop = elector_stop.clone();
            let task = tokio::spawn(async move { elector.run(stop.cancelled()).await });
            (rx, Err(task))
        }
        None => {
            let (tx, rx) = watch::channel(true);
            (rx, Ok(tx))
        }
    };
    let gc_stop = process.shutdown.child_token();
    let gc_task = gc.map(|collector| {
        let (registry, leader, stop) =
            (process.metrics.clone(), leader_rx.clone(), gc_stop.clone());
        tokio::spawn(async move { collector.run(&registry, leader, stop).await })
    });
    let leadership = Reported::new(leader_rx, metrics.leader.clone());
    let spot = spot_notice.unwrap_or_else(|| watch::channel(Notices::new()).1);

    tracing::info!(
        scope = ?settings.mode,
        dry_run = settings.dry_run(),
        elected = settings.election.is_some(),
        "berth-daemon started"
    );
    // Only the labels the rules read are cached: see docs/benchmarks.md, "Cluster mode
    // at 5,000 nodes".
    let labels = Labels::Only(reconciler.label_keys());
    let (cache, changes) = watch_nodes(client, watch_scope, labels);
    let config = controller::Config {
        debounce: settings.debounce,
        resync: Some(settings.resync),
        backoff: controller::Backoff::default(),
        wait_for_sync: true,
        once: settings.once,
    };
    let pass = NodePass {
        reconciler: &reconciler,
        cache: &cache,
        spot: &spot,
        settings: &settings,
    };
    let stopped = Controller::new(CONTROLLER, config)
        .leadership(leadership)
        .metrics(process.metrics.reconcile())
        .readiness(process.readiness.clone())
        .run(
            triggers(changes, spot.clone(), metrics.clone()),
            process.shutdown.clone(),
            move |_pass: controller::Pass<String>| pass.run(),
        )
        .await;
    reconciler.flush_events(STOP_GRACE).await;
    gc_stop.cancel();
    if let Some(task) = gc_task {
        let _ = tokio::time::timeout(STOP_GRACE, task).await;
    }
    elector_stop.cancel();
    match always {
        // Releasing the Lease lets another replica take over at once.
        Err(task) => {
            let _ = tokio::time::timeout(STOP_GRACE, task).await;
        }
        Ok(sender) => drop(sender),
    }
    tracing::info!("berth-daemon stopped");
    Ok(stopped?)
}

/// One pass over the nodes in scope.
#[derive(Clone, Copy)]
struct NodePass<'a> {
    reconciler: &'a Reconciler,
    cache: &'a NodeCache,
    spot: &'a watch::Receiver<Notices>,
    settings: &'a Settings,
}

impl NodePass<'_> {
    async fn run(self) -> Result<Outcome, berth_core::Error> {
        let nodes = self.nodes();
        let pass = self.reconciler.reconcile(&nodes).await?;
        if self.settings.dry_run() {
            print_pass(&pass);
        }
        tracing::info!(
            planned = pass.plan.len(),
            done = pass.report.done(),
            failed = pass.report.failed(),
            skipped = pass.report.skipped.len(),
            unobserved = pass.unobserved.len(),
            requeue_after = ?pass.requeue_after,
            "reconciled"
        );
        // A node held for unknown groups, a failed change or an unobserved group: retried
        // with backoff. The workflow says when to run again regardless (a NotReady
        // node's grace runs out, a drain to re-check).
        let outcome = if pass.converged() {
            Outcome::done()
        } else {
            Outcome::retry()
        };
        Ok(outcome.and_requeue_after(pass.requeue_after))
    }

    /// The nodes in scope; a spot interruption notice is handed to the workflow, which
    /// takes our own node out.
    fn nodes(&self) -> Vec<Node> {
        if self
            .spot
            .borrow()
            .contains(&InstanceNotice::SpotInterruption)
        {
            if let Some(name) = &self.settings.node_name {
                self.reconciler.notice_spot_interruption(name);
            }
        }
        self.cache.nodes()
    }
}

fn print_pass(pass: &Pass) {
    println!("--- plan (dry run: nothing is changed)");
    print!("{}", pass.plan);
    for v in &pass.verdicts {
        println!("node {}: {}", v.node, v.decision);
        for w in &v.warnings {
            println!("node {}: warning: {w}", v.node);
        }
    }
    let counts: BTreeMap<&str, usize> = ["register", "deregister", "forget"]
        .into_iter()
        .map(|verb| (verb, pass.plan.count(verb)))
        .collect();
    println!("--- {counts:?}");
}
