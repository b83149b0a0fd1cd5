//! Wiring: build the adapters, watch nodes, keep the Lease (cluster mode) or poll IMDS
//! (node mode), and run reconcile passes on node changes and on every resync.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use berth_aws::config::{load_sdk_config, AwsOptions};
use berth_aws::elbv2::ElbTargetGroups;
use berth_aws::imds::Imds;
use berth_aws::CallCounter;
use berth_castai::{CastAiClient, CastAiConfig};
use berth_core::domain::{InstanceId, Node, Owner, Taint, TaintEffect};
use berth_core::engine::{ApplyOptions, Engine};
use berth_core::plan::{NodeDecision, NodeRules, TaintMatch};
use berth_core::provider::{NodeConfigurations, TargetGroups, TargetOwnership};
use berth_kube::events::EventRecorder;
use berth_kube::leader::{LeaderElector, LeaseConfig};
use berth_kube::ownership::ConfigMapOwnership;
use berth_kube::watch::{watch_nodes, NodeChange, NodeScope};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cli::{Cli, Mode};
use crate::events::{NodeEvents, RecordedEvents};
use crate::http::{serve, Health};
use crate::metrics::Metrics;
use crate::reconcile::{Pass, Reconciler, Scope};
use crate::resolve::Resolver;
use crate::static_config::StaticConfig;

/// A taint berth adds, in memory only, to its own node once IMDS announces a spot
/// interruption: the node rules then deregister it ahead of the interruption.
pub const SPOT_INTERRUPTION_TAINT: &str = "berth.dev/spot-interruption";

/// Longest pause between failed passes.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs until SIGTERM/SIGINT (or after one pass with `--once`). Returns the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let rules_file = match &cli.config {
        Some(path) => StaticConfig::load(path)?,
        None => StaticConfig::default(),
    };
    let metrics = Arc::new(Metrics::new());
    let calls = CallCounter::new();
    let aws = AwsOptions {
        region: cli.region.clone(),
        ..AwsOptions::default()
    };
    let sdk = load_sdk_config(&aws).await;
    let targets: Arc<dyn TargetGroups> = Arc::new(ElbTargetGroups::new(&sdk, calls.clone()));
    let castai: Option<Arc<dyn NodeConfigurations>> = match (&cli.cluster_id, &cli.castai_api_key) {
        (Some(id), Some(key)) => {
            let mut config = CastAiConfig::new(id.trim(), key.clone());
            config.base_url = cli.castai_api_url.clone();
            Some(Arc::new(
                CastAiClient::new(config).context("Cast.ai client")?,
            ))
        }
        _ => None,
    };
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let owner = Owner::new(cli.owner_id())?;
    let identity = cli
        .pod_name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("berth-daemon-{}", std::process::id()));
    let node_name = cli.node_name.clone().unwrap_or_default();
    let ownership: Arc<dyn TargetOwnership> = match cli.mode {
        Mode::Cluster => Arc::new(ConfigMapOwnership::new(
            client.clone(),
            &cli.namespace,
            owner,
        )),
        // One ConfigMap per node: hundreds of DaemonSet pods never contend on one object.
        Mode::Node => Arc::new(ConfigMapOwnership::with_name(
            client.clone(),
            &cli.namespace,
            &format!("berth-daemon-node-{node_name}"),
            owner,
        )),
    };
    let events: Arc<dyn NodeEvents> = if cli.dry_run {
        Arc::new(RecordedEvents::default())
    } else {
        Arc::new(EventRecorder::new(
            client.clone(),
            "berth-daemon",
            Some(identity.clone()),
        ))
    };
    let engine = Engine::new(ApplyOptions {
        dry_run: cli.dry_run,
        target_batch_size: cli.batch_size,
        min_call_interval: cli.aws.min_call_interval(),
        ..ApplyOptions::default()
    });
    let mut rules = NodeRules {
        deregister_on_cordon: cli.deregister_on_cordon,
        not_ready_grace: cli.not_ready_grace,
        ..NodeRules::default()
    };
    rules
        .disruption_taints
        .push(TaintMatch::Key(SPOT_INTERRUPTION_TAINT.into()));
    let imds = match &cli.imds_endpoint {
        Some(url) => Imds::with_endpoint(url)?,
        None => Imds::new(),
    };
    let (scope, watch_scope) = match cli.mode {
        Mode::Cluster => (Scope::Cluster, NodeScope::All),
        Mode::Node => {
            let instance = own_instance(&imds).await;
            (
                Scope::Node {
                    name: node_name.clone(),
                    instance,
                },
                NodeScope::Named(node_name.clone()),
            )
        }
    };
    let resolver = Resolver::new(castai, rules_file, targets.clone());
    let reconciler = Reconciler::new(
        resolver,
        targets,
        ownership,
        engine,
        rules.clone(),
        scope,
        metrics.clone(),
        events,
    );
    let health = Arc::new(Health {
        ready: false.into(),
        metrics: metrics.clone(),
        calls: calls.clone(),
    });
    let bound = serve(cli.listen, health.clone())
        .await
        .with_context(|| format!("listening on {}", cli.listen))?;
    tracing::info!(
        scope = ?cli.mode,
        listen = %bound,
        dry_run = cli.dry_run,
        owner = %cli.owner_id(),
        "berth-daemon started"
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Leadership: cluster mode campaigns for the Lease; node mode and one-off runs act
    // alone.
    let mut keep_alive = Vec::new();
    let (leader_rx, elector_task) = if cli.mode == Mode::Cluster && !cli.once && !cli.dry_run {
        let elector = Arc::new(LeaderElector::new(
            client.clone(),
            LeaseConfig::new(&cli.namespace, &cli.lease_name, &identity),
        ));
        let rx = elector.subscribe();
        let mut stop = shutdown_rx.clone();
        let task = tokio::spawn(async move {
            elector
                .run(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
        (rx, Some(task))
    } else {
        let (tx, rx) = watch::channel(true);
        keep_alive.push(tx);
        (rx, None)
    };
    let spot_rx = if cli.mode == Mode::Node && !cli.once {
        spawn_spot_watch(imds, cli.spot_poll, shutdown_rx.clone())
    } else {
        let (tx, rx) = watch::channel(false);
        keep_alive.push(tx);
        rx
    };

    let (cache, changes) = watch_nodes(client, watch_scope);
    let mut lp = Loop {
        cli: &cli,
        reconciler: &reconciler,
        metrics: &metrics,
        health: &health,
        rules: &rules,
        leader_rx,
        spot_rx,
        pending: None,
        synced: false,
        backoff: Duration::from_secs(1),
    };
    let code = lp.run(cache, changes).await;
    reconciler.flush_events(Duration::from_secs(5)).await;
    drop(keep_alive);
    let _ = shutdown_tx.send(true);
    if let Some(task) = elector_task {
        // Releasing the Lease lets the other replica take over at once.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    metrics.observe_aws_calls(&calls.snapshot());
    tracing::info!(aws_calls = ?calls.snapshot(), "berth-daemon stopped");
    Ok(code)
}

struct Loop<'a> {
    cli: &'a Cli,
    reconciler: &'a Reconciler,
    metrics: &'a Metrics,
    health: &'a Health,
    rules: &'a NodeRules,
    leader_rx: watch::Receiver<bool>,
    spot_rx: watch::Receiver<bool>,
    /// When the next pass is due.
    pending: Option<Instant>,
    /// The first full node listing has arrived.
    synced: bool,
    backoff: Duration,
}

impl Loop<'_> {
    async fn run(
        &mut self,
        cache: berth_kube::watch::NodeCache,
        mut changes: futures::stream::BoxStream<'static, Result<NodeChange, berth_kube::Error>>,
    ) -> i32 {
        let resync = Duration::from_secs(self.cli.sleep_interval);
        let mut next_resync = Instant::now() + resync;
        let mut terminate = signal_stream();
        self.metrics.leader.set(i64::from(*self.leader_rx.borrow()));
        loop {
            let leading = *self.leader_rx.borrow();
            let due = self.pending.filter(|_| self.synced && leading);
            tokio::select! {
                biased;
                _ = terminate.recv() => {
                    tracing::info!("termination signal: stopping");
                    return 0;
                }
                change = changes.next() => match change {
                    Some(Ok(NodeChange::Synced(nodes))) => {
                        tracing::debug!(nodes = nodes.len(), "node list in");
                        self.synced = true;
                        self.health.ready.store(true, Ordering::Relaxed);
                        self.due_now();
                    }
                    Some(Ok(change)) => {
                        tracing::debug!(?change, "node changed");
                        let soon = Instant::now() + self.cli.debounce;
                        // Gather a burst of changes, but never postpone a due pass.
                        self.pending = Some(self.pending.map_or(soon, |p| p.min(soon)));
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "node watch error; the watcher backs off and re-lists");
                        self.metrics.error_kind("kubernetes");
                    }
                    None => {
                        tracing::error!("the node watch ended");
                        return 1;
                    }
                },
                () = sleep_until(due), if due.is_some() => {
                    self.pending = None;
                    let nodes = self.nodes(&cache);
                    let result = self.reconciler.reconcile(&nodes).await;
                    let ok = self.after_pass(result, &nodes);
                    if self.cli.once {
                        return if ok { 0 } else { 1 };
                    }
                    next_resync = Instant::now() + resync;
                }
                () = tokio::time::sleep_until(next_resync) => {
                    tracing::debug!("periodic resync");
                    next_resync = Instant::now() + resync;
                    self.due_now();
                }
                Ok(()) = self.leader_rx.changed() => {
                    let leading = *self.leader_rx.borrow();
                    tracing::info!(leading, "leadership changed");
                    self.metrics.leader.set(i64::from(leading));
                    if leading {
                        self.due_now();
                    }
                }
                Ok(()) = self.spot_rx.changed() => {
                    tracing::warn!("spot interruption notice: deregistering ahead of it");
                    self.due_now();
                }
            }
        }
    }

    fn due_now(&mut self) {
        self.pending = Some(Instant::now());
    }

    /// The nodes in scope, with the in-memory spot taint on our own node if noticed.
    fn nodes(&self, cache: &berth_kube::watch::NodeCache) -> Vec<Node> {
        let mut nodes = cache.nodes();
        if *self.spot_rx.borrow() {
            for n in nodes
                .iter_mut()
                .filter(|n| Some(&n.name) == self.cli.node_name.as_ref())
            {
                n.taints
                    .push(Taint::new(SPOT_INTERRUPTION_TAINT, TaintEffect::NoExecute));
            }
        }
        nodes
    }

    /// Logs and prints a pass, schedules the retry of a failed one (with backoff) or the
    /// pass at which a NotReady node's grace runs out. Returns whether all went well.
    fn after_pass(&mut self, result: Result<Pass, berth_core::Error>, nodes: &[Node]) -> bool {
        let ok = match result {
            Ok(pass) => {
                if self.cli.dry_run {
                    print_pass(&pass);
                }
                let ok = pass.report.is_success() && pass.unobserved.is_empty();
                let held = pass
                    .verdicts
                    .iter()
                    .any(|v| matches!(v.decision, NodeDecision::Hold(_)));
                tracing::info!(
                    planned = pass.plan.len(),
                    done = pass.report.done(),
                    failed = pass.report.failed(),
                    skipped = pass.report.skipped.len(),
                    unobserved = pass.unobserved.len(),
                    "reconciled"
                );
                // A held node (configuration unknown) is retried with backoff too.
                ok && !held
            }
            Err(e) => {
                tracing::error!(error = %e, "reconcile pass failed; retrying with backoff");
                false
            }
        };
        if ok {
            self.backoff = Duration::from_secs(1);
        } else {
            let jitter = self.backoff.mul_f64(fastrand::f64() * 0.2);
            self.pending = Some(Instant::now() + self.backoff + jitter);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
        if let Some(at) = next_grace_expiry(nodes, self.rules.not_ready_grace) {
            let at = Instant::now() + at;
            self.pending = Some(self.pending.map_or(at, |p| p.min(at)));
        }
        ok
    }
}

/// How long until the first NotReady node's grace runs out, if any is counting down.
fn next_grace_expiry(nodes: &[Node], grace: Duration) -> Option<Duration> {
    let now = SystemTime::now();
    nodes
        .iter()
        .filter_map(|n| n.not_ready_for(now))
        .filter(|down| *down < grace)
        .map(|down| grace - down + Duration::from_millis(100))
        .min()
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The instance id from IMDS, so node mode keeps its scope if the Node object goes.
async fn own_instance(imds: &Imds) -> Option<InstanceId> {
    match tokio::time::timeout(Duration::from_secs(3), imds.identity()).await {
        Ok(Ok(identity)) => Some(identity.instance_id),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "IMDS identity unavailable; using the Node's providerID only");
            None
        }
        Err(_) => {
            tracing::warn!("IMDS identity timed out; using the Node's providerID only");
            None
        }
    }
}

/// Polls IMDSv2 for a spot interruption notice; the receiver turns `true` once one is
/// scheduled. IMDS errors are logged (once per kind of failure) and polling goes on.
fn spawn_spot_watch(
    imds: Imds,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut last_error = String::new();
        loop {
            match imds.spot_interruption().await {
                Ok(Some(notice)) => {
                    tracing::warn!(action = ?notice.action, "spot interruption scheduled");
                    let _ = tx.send(true);
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    let text = e.to_string();
                    if text != last_error {
                        tracing::warn!(error = %text, "IMDS spot interruption check failed");
                        last_error = text;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    });
    rx
}

/// SIGTERM and SIGINT as one stream.
fn signal_stream() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        let _ = tx.send(()).await;
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        let _ = tx.send(()).await;
    });
    rx
}
