//! The scenario: what happens to the fleet, and the state each step waits to observe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use berth_castai::fake::FakeCastAi;
use berth_castai::CastAiClient;
use berth_core::domain::Target;
use berth_daemon::static_config::StaticConfig;
use berth_runtime::CancellationToken;

use crate::cluster::{fleet, Cluster, NodeSpec, CONFIGURATION, ROLE_LABEL};
use crate::daemon::{Daemon, Embedding, IDENTITY, LEASE, NAMESPACE};
use crate::estate::{Estate, Role};
use crate::narrate::Narrator;
use crate::observe::{History, Snapshot, Tally};
use crate::report::Report;

/// How often a waiting step looks at the groups.
const POLL: Duration = Duration::from_millis(100);

/// Steps, the daemon's stop included.
const STEPS: usize = 6;

/// The scenario's settings.
pub(crate) struct Options {
    /// The longest a step may wait.
    pub(crate) step_timeout: Duration,
    /// The daemon's periodic full pass (a Cast.ai change is seen on the next one).
    pub(crate) resync: Duration,
    /// Cancelled by Ctrl-C.
    pub(crate) shutdown: CancellationToken,
}

/// What the scenario acts on.
struct Peers {
    estate: Estate,
    cluster: Cluster,
    castai: FakeCastAi,
    fleet: Vec<NodeSpec>,
    /// A target someone else registered in `web`: berth must leave it alone.
    foreign: Target,
}

/// What the scenario has seen and said.
struct Record {
    history: History,
    last: Snapshot,
    steps: Vec<(String, Duration)>,
    narrator: Narrator,
    options: Options,
}

/// Runs the scenario on `estate`, narrating it, then prints the report.
pub(crate) async fn run(
    estate: Estate,
    narrator: Narrator,
    options: Options,
) -> anyhow::Result<()> {
    let foreign_instance = estate
        .instances()
        .last()
        .context("the estate has no instance")?
        .clone();
    let peers = Peers {
        fleet: fleet(estate.instances()),
        foreign: Target::new(&foreign_instance, Role::Web.port()),
        cluster: Cluster::start()?,
        castai: FakeCastAi::start("demo-cluster", "demo-api-key")
            .context("starting the in-process Cast.ai API")?,
        estate,
    };
    let mut record = Record {
        history: History::default(),
        last: Snapshot::default(),
        steps: Vec::new(),
        narrator,
        options,
    };
    peers.introduce(&mut record.narrator).await?;
    let daemon = peers.start_daemon(&record.options)?;
    let result = peers.steps(&mut record, &daemon).await;
    let stopped = peers.stop(&mut record, daemon).await;
    result?;
    stopped?;
    peers.conclude(&mut record);
    Ok(())
}

impl Peers {
    /// The estate, the rules and the foreign target, before anything runs.
    async fn introduce(&self, n: &mut Narrator) -> anyhow::Result<()> {
        let web = self.estate.group(Role::Web);
        self.estate
            .register_foreign(&web.arn, &self.foreign)
            .await?;
        n.say(&format!(
            "berth demo: the real berth-daemon controller (cluster mode) against {}, an \
             in-process Kubernetes API and an in-process Cast.ai API.",
            self.estate.describe()
        ));
        let names: Vec<String> = self
            .estate
            .groups()
            .iter()
            .map(|g| format!("{} (:{})", g.name, g.role.port()))
            .collect();
        n.say(&format!(
            "  target groups: {}; deregistration delay {}",
            names.join(", "),
            humantime::format_duration(self.estate.drain_delay())
        ));
        n.say(&format!(
            "  static rule:   nodes labelled {}={} → {} and {}",
            ROLE_LABEL.0,
            ROLE_LABEL.1,
            web.name,
            self.name(Role::Api)
        ));
        n.say(&format!(
            "  Cast.ai:       node configuration {CONFIGURATION} → {}",
            self.name(Role::Batch)
        ));
        n.say(&format!(
            "  someone else registered {} (a machine that is not a node) in {}: berth must leave it alone",
            self.foreign, web.name
        ));
        n.say("");
        Ok(())
    }

    fn name(&self, role: Role) -> &str {
        &self.estate.group(role).name
    }

    fn rules(&self) -> anyhow::Result<StaticConfig> {
        let yaml = format!(
            "rules:\n  - name: web\n    nodeSelector:\n      matchLabels: {{{}: \"{}\"}}\n    \
             targetGroups:\n      - name: {}\n      - name: {}\n",
            ROLE_LABEL.0,
            ROLE_LABEL.1,
            self.name(Role::Web),
            self.name(Role::Api),
        );
        Ok(StaticConfig::parse("berth-demo rules", &yaml)?)
    }

    /// Cast.ai's `cfg-batch` puts its nodes in the group playing `role`.
    fn castai_points_at(&self, role: Role) {
        let arn = self.estate.group(role).arn.clone();
        // A null port: the group's own port, as Cast.ai's API allows.
        self.castai
            .set_target_groups(CONFIGURATION, &[(arn.as_str(), None)]);
    }

    fn start_daemon(&self, options: &Options) -> anyhow::Result<Daemon> {
        self.castai_points_at(Role::Batch);
        let mut config = self.castai.config();
        // Every resync reads Cast.ai again (production caches a configuration 60 s).
        config.cache_ttl = options.resync / 2;
        let castai = CastAiClient::new(config).context("Cast.ai client")?;
        Ok(Daemon::start(Embedding {
            client: self.cluster.client(),
            target_groups: self.estate.target_groups(),
            node_configurations: Arc::new(castai),
            rules: self.rules()?,
            resync: options.resync,
            shutdown: options.shutdown.clone(),
        }))
    }

    fn nodes(&self, by_castai: bool) -> Vec<NodeSpec> {
        self.fleet
            .iter()
            .filter(|n| n.by_castai == by_castai)
            .cloned()
            .collect()
    }

    async fn steps(&self, record: &mut Record, daemon: &Daemon) -> anyhow::Result<()> {
        record.begin(
            1,
            "berth-daemon starts in cluster mode and campaigns for the leader Lease",
        );
        let started = Instant::now();
        self.wait(record, daemon, started, |_| {
            match self.cluster.lease_holder(NAMESPACE, LEASE) {
                Some(h) if h == IDENTITY => (true, String::new()),
                Some(h) => (false, format!("Lease held by {h}")),
                None => (false, "campaigning for the Lease".into()),
            }
        })
        .await?;
        record.finish(
            "berth-daemon starts and leads",
            &format!("{IDENTITY} holds Lease {NAMESPACE}/{LEASE}"),
            started,
        );

        record.begin(
            2,
            &format!(
                "6 nodes join: node-1..4 labelled {}={}, node-5..6 with Cast.ai's {CONFIGURATION}",
                ROLE_LABEL.0, ROLE_LABEL.1
            ),
        );
        let started = Instant::now();
        for node in &self.fleet {
            self.cluster.join(node);
        }
        let (web_nodes, castai_nodes) = (self.nodes(false), self.nodes(true));
        self.wait(record, daemon, started, |s| {
            let web = Tally::of(s, Role::Web, &web_nodes);
            let api = Tally::of(s, Role::Api, &web_nodes);
            let batch = Tally::of(s, Role::Batch, &castai_nodes);
            let registered = web.registered + api.registered + batch.registered;
            (
                registered == 10,
                format!("{registered}/10 targets registered"),
            )
        })
        .await?;
        record.finish(
            "6 nodes join and are registered",
            &format!(
                "10 targets registered: 4 in {}, 4 in {}, 2 in {}",
                self.name(Role::Web),
                self.name(Role::Api),
                self.name(Role::Batch)
            ),
            started,
        );

        self.leave(
            record,
            daemon,
            3,
            "node-2",
            "is cordoned",
            "kubectl cordon node-2",
            |c| c.cordon("node-2"),
        )
        .await?;
        self.leave(
            record,
            daemon,
            4,
            "node-4",
            "is deleted",
            "kubectl delete node node-4",
            |c| c.delete("node-4"),
        )
        .await?;

        let (batch, batch_v2) = (self.name(Role::Batch), self.name(Role::BatchV2));
        record.begin(
            5,
            &format!(
                "Cast.ai: node configuration {CONFIGURATION} now targets {batch_v2} instead of {batch}"
            ),
        );
        let started = Instant::now();
        self.castai_points_at(Role::BatchV2);
        let mut draining_seen = false;
        self.wait(record, daemon, started, |s| {
            let old = Tally::of(s, Role::Batch, &castai_nodes);
            let new = Tally::of(s, Role::BatchV2, &castai_nodes);
            draining_seen |= old.draining > 0;
            (
                old.gone == 2 && new.registered == 2,
                format!(
                    "{batch}: {}; {batch_v2}: {}",
                    old.describe(),
                    new.describe()
                ),
            )
        })
        .await?;
        let how = if draining_seen { " (drained)" } else { "" };
        record.finish(
            "Cast.ai's configuration changes",
            &format!("node-5 and node-6 moved from {batch}{how} to {batch_v2}"),
            started,
        );
        Ok(())
    }

    /// A node leaves (cordoned, deleted): its targets drain, then leave web and api.
    #[allow(clippy::too_many_arguments)]
    async fn leave(
        &self,
        record: &mut Record,
        daemon: &Daemon,
        number: usize,
        name: &str,
        what: &str,
        command: &str,
        act: impl FnOnce(&Cluster) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        record.begin(number, &format!("{name} {what} ({command})"));
        let started = Instant::now();
        act(&self.cluster)?;
        let node = self
            .fleet
            .iter()
            .find(|n| n.name == name)
            .with_context(|| format!("{name} is not in the fleet"))?;
        let node = std::slice::from_ref(node);
        let (web, api) = (self.name(Role::Web), self.name(Role::Api));
        let mut draining_seen = false;
        self.wait(record, daemon, started, |s| {
            let in_web = Tally::of(s, Role::Web, node);
            let in_api = Tally::of(s, Role::Api, node);
            draining_seen |= in_web.draining + in_api.draining > 0;
            (
                in_web.gone == 1 && in_api.gone == 1,
                format!(
                    "{name} in {web}: {}; in {api}: {}",
                    in_web.describe(),
                    in_api.describe()
                ),
            )
        })
        .await?;
        let how = if draining_seen {
            "deregistered, drained and gone"
        } else {
            "deregistered and gone"
        };
        record.finish(
            &format!("{name} {what}"),
            &format!("{name}'s targets in {web} and {api}: {how}"),
            started,
        );
        Ok(())
    }

    /// Polls the groups until `check` says done. Fails when the step times out, when
    /// the daemon stops, or when someone else's target is touched.
    async fn wait(
        &self,
        record: &mut Record,
        daemon: &Daemon,
        started: Instant,
        mut check: impl FnMut(&Snapshot) -> (bool, String),
    ) -> anyhow::Result<()> {
        let ownership = daemon.ownership();
        loop {
            if daemon.has_stopped() {
                bail!("berth-daemon stopped in the middle of the scenario");
            }
            let snapshot = Snapshot::take(&self.estate, ownership.as_ref()).await?;
            record.history.record(&self.estate, &snapshot);
            self.check_foreign(&snapshot)?;
            let (done, detail) = check(&snapshot);
            record.last = snapshot;
            if done {
                return Ok(());
            }
            record.narrator.progress(&detail);
            if started.elapsed() > record.options.step_timeout {
                bail!(
                    "timed out after {}; last seen: {detail}",
                    humantime::format_duration(record.options.step_timeout)
                );
            }
            tokio::select! {
                () = record.options.shutdown.cancelled() => bail!("interrupted"),
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    fn check_foreign(&self, snapshot: &Snapshot) -> anyhow::Result<()> {
        match snapshot.state(Role::Web, &self.foreign) {
            Some(state) if !state.is_draining() => Ok(()),
            other => bail!(
                "someone else's target {} in {} was touched (now {}): berth must never \
                 remove what it did not register",
                self.foreign,
                self.name(Role::Web),
                other.map_or_else(|| "gone".to_owned(), |s| s.to_string())
            ),
        }
    }

    /// The last step: the daemon stops as on SIGTERM; then a last look at the groups.
    async fn stop(&self, record: &mut Record, daemon: Daemon) -> anyhow::Result<()> {
        record.begin(STEPS, "berth-daemon stops (as on SIGTERM)");
        let started = Instant::now();
        let ownership = daemon.ownership();
        daemon.stop().await?;
        let snapshot = Snapshot::take(&self.estate, ownership.as_ref()).await?;
        record.history.record(&self.estate, &snapshot);
        self.check_foreign(&snapshot)?;
        record.last = snapshot;
        let released = self
            .cluster
            .lease_holder(NAMESPACE, LEASE)
            .is_none_or(|h| h.is_empty());
        let summary = if released {
            "stopped cleanly and released its Lease"
        } else {
            "stopped cleanly"
        };
        record.finish("berth-daemon stops", summary, started);
        Ok(())
    }

    fn conclude(&self, record: &mut Record) {
        let text = Report {
            groups: self.estate.groups(),
            last: &record.last,
            history: &record.history,
            fleet: &self.fleet,
            calls: &self.estate.calls(),
            events: &self.cluster.events_by_reason(),
            steps: &record.steps,
        }
        .render();
        record.narrator.say(&format!(
            "\nsomeone else's target {} is still in {}, untouched.",
            self.foreign,
            self.name(Role::Web)
        ));
        record.narrator.say(&text);
    }
}

impl Record {
    fn begin(&mut self, number: usize, title: &str) {
        self.narrator.step(number, STEPS, title);
    }

    fn finish(&mut self, title: &str, summary: &str, started: Instant) {
        let took = started.elapsed();
        self.narrator.done(summary, took);
        self.steps.push((title.to_owned(), took));
    }
}
