//! How often the daemon resolves its target groups (issue 14: a resync is one
//! `DescribeTargetHealth` per group and nothing else). The daemon's reconciler runs
//! in-process over the real ELBv2 adapter, against moto behind the FaultProxy (which
//! counts every call), with the adapter's clock injected: passes are spaced by resync
//! intervals on that clock, never by waiting.
//!
//! The 5,000-node churn benchmark (docs/benchmarks.md) showed 240 `DescribeTargetGroups`
//! and 240 `DescribeTargetGroupAttributes` over 60 rounds: every group re-resolved each
//! time its cache entry expired (60 s), whatever the churn. Resolution now happens once
//! per group for as long as AWS knows its ARN, and a deregistration delay is re-read
//! only when a drain begins and the copy is older than the delay TTL.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_aws::elbv2::{Clock, ElbTargetGroups, DEFAULT_DELAY_TTL};
use berth_aws::CallCounter;
use berth_core::domain::{Node, Owner};
use berth_core::engine::{ApplyOptions, Engine, RetryPolicy};
use berth_core::memory::MemoryLedger;
use berth_core::plan::NodeRules;
use berth_core::provider::{LedgerOwnership, PollPolicy};
use berth_core::workflow::node_targets::{Notice, Pass};
use berth_daemon::events::RecordedEvents;
use berth_daemon::metrics::Metrics;
use berth_daemon::reconcile::{Reconciler, Scope};
use berth_daemon::resolve::Resolver;
use berth_daemon::static_config::StaticConfig;
use berth_testing::sdk_config;
use common::{instance, World};
use tokio::time::Instant;

/// The daemon's default `--sleep-interval`.
const RESYNC: Duration = Duration::from_secs(300);
const GROUPS: usize = 4;
const PORT: u16 = 30080;

struct Rig {
    w: World,
    /// Target group ARNs; group `g` is named `tg-<g>`.
    groups: Vec<String>,
    reconciler: Reconciler,
    now: Arc<Mutex<Instant>>,
}

impl Rig {
    /// Four groups (even ones referenced by name, odd ones by ARN) in one rule each,
    /// node `i` in groups `i % 4` and `(i + 1) % 4`.
    async fn new() -> Rig {
        let w = World::new().await;
        let mut groups = Vec::new();
        let mut rules = String::from("rules:\n");
        for g in 0..GROUPS {
            let arn = w.group(&format!("tg-{g}"), i32::from(PORT)).await;
            let reference = if g % 2 == 0 {
                format!("name: tg-{g}")
            } else {
                format!("arn: {arn}")
            };
            rules.push_str(&format!(
                "  - nodeSelector:\n      matchLabels:\n        fleet/tg-{g}: \"yes\"\n    targetGroups:\n      - {reference}\n"
            ));
            groups.push(arn);
        }
        let rules = StaticConfig::parse("rules.yaml", &rules).expect("valid rules");
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock = {
            let now = now.clone();
            Clock::new(move || *now.lock().unwrap_or_else(PoisonError::into_inner))
        };
        let targets = Arc::new(
            ElbTargetGroups::new(&sdk_config(&w.proxy.endpoint()), CallCounter::new())
                .with_clock(clock),
        );
        let engine = Engine::new(ApplyOptions {
            retry: RetryPolicy {
                base_delay: Duration::from_millis(1),
                ..RetryPolicy::default()
            },
            ..ApplyOptions::default()
        });
        let ownership = Arc::new(LedgerOwnership::new(
            Arc::new(MemoryLedger::default()),
            Owner::new("berth/test").unwrap(),
        ));
        let reconciler = Reconciler::new(
            Resolver::new(None, rules, targets.clone()),
            targets,
            ownership,
            engine,
            NodeRules::default(),
            Scope::Cluster,
            Arc::new(Metrics::new()),
            Arc::new(RecordedEvents::default()),
        )
        .with_drain_poll(PollPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(20),
            deadline: Duration::from_secs(5),
        });
        Rig {
            w,
            groups,
            reconciler,
            now,
        }
    }

    /// Moves the adapter's clock on.
    fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    /// One pass over `nodes`; the proxy's counts of the AWS calls it made, drain
    /// polls (off the pass, `DescribeTargetHealth` only) aside.
    async fn pass(&self, nodes: &[Node]) -> (Pass, BTreeMap<String, usize>) {
        self.drains_over().await;
        self.w.proxy.reset_counts();
        let pass = self.reconciler.reconcile(nodes).await.expect("pass");
        assert!(pass.converged(), "{}", pass.report);
        (pass, self.w.proxy.counts())
    }

    /// Waits for the drain waits of earlier passes (moto removes a target at once:
    /// their first poll ends them), so their polls are not counted in the next pass.
    async fn drains_over(&self) {
        for _ in 0..1000 {
            if self.reconciler.draining() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{} targets still followed after 10 s",
            self.reconciler.draining()
        );
    }

    /// What moto holds: `instance:port` per group.
    async fn members(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for arn in &self.groups {
            out.push(self.w.members(arn).await.into_iter().collect());
        }
        out
    }
}

fn groups_of(i: usize) -> [usize; 2] {
    [i % GROUPS, (i + 1) % GROUPS]
}

fn node(i: usize) -> Node {
    let mut n = Node::new(format!("node-{i}"))
        .with_provider_id(&format!("aws:///us-east-1a/{}", instance(i)));
    for g in groups_of(i) {
        n.labels.insert(format!("fleet/tg-{g}"), "yes".into());
    }
    n
}

fn nodes(indexes: impl IntoIterator<Item = usize>) -> Vec<Node> {
    indexes.into_iter().map(node).collect()
}

/// What moto should hold for these node indexes.
fn expected(indexes: &[usize]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new(); GROUPS];
    for &i in indexes {
        for g in groups_of(i) {
            out[g].push(format!("{}:{PORT}", instance(i)));
        }
    }
    for members in &mut out {
        members.sort();
    }
    out
}

fn count(calls: &BTreeMap<String, usize>, operation: &str) -> usize {
    calls.get(operation).copied().unwrap_or(0)
}

fn only_health(groups: usize) -> BTreeMap<String, usize> {
    BTreeMap::from([("DescribeTargetHealth".to_owned(), groups)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_passes_resolve_no_group_again_and_resyncs_are_one_health_call_per_group() {
    let rig = Rig::new().await;
    let mut present: Vec<usize> = (0..8).collect();
    let (_, first) = rig.pass(&nodes(present.clone())).await;
    assert_eq!(count(&first, "DescribeTargetGroups"), GROUPS, "{first:?}");
    assert_eq!(
        count(&first, "DescribeTargetGroupAttributes"),
        GROUPS,
        "{first:?}"
    );
    assert_eq!(rig.members().await, expected(&present));

    // Churn within the delay TTL: every pass deletes a node and adds one (both in two
    // groups), 5 s apart. No group is resolved again, no delay read again.
    let mut next = present.len();
    for round in 0..6 {
        rig.advance(Duration::from_secs(5));
        present.remove(round % present.len());
        present.push(next);
        next += 1;
        let (pass, calls) = rig.pass(&nodes(present.clone())).await;
        assert_eq!(pass.report.done(), 4, "{}", pass.report);
        assert_eq!(count(&calls, "DescribeTargetGroups"), 0, "{calls:?}");
        assert_eq!(
            count(&calls, "DescribeTargetGroupAttributes"),
            0,
            "{calls:?}"
        );
        assert_eq!(count(&calls, "RegisterTargets"), 2, "{calls:?}");
        assert_eq!(count(&calls, "DeregisterTargets"), 2, "{calls:?}");
        present.sort_unstable();
        assert_eq!(rig.members().await, expected(&present));
    }

    // Steady resyncs at the default interval, far beyond the delay TTL: one
    // DescribeTargetHealth per group and nothing else, every time.
    for _ in 0..3 {
        rig.advance(RESYNC);
        let (pass, calls) = rig.pass(&nodes(present.clone())).await;
        assert_eq!(pass.report.done(), 0, "{}", pass.report);
        assert_eq!(calls, only_health(GROUPS), "a steady resync");
    }

    // Churn at the default interval: the groups a node leaves have their delay read
    // again (it is older than the TTL) — those and nothing else; no group resolved.
    for round in 0..4 {
        rig.advance(RESYNC);
        let gone = present.remove(round % present.len());
        present.push(next);
        next += 1;
        let (pass, calls) = rig.pass(&nodes(present.clone())).await;
        assert_eq!(pass.report.done(), 4, "{}", pass.report);
        assert_eq!(count(&calls, "DescribeTargetGroups"), 0, "{calls:?}");
        assert_eq!(
            count(&calls, "DescribeTargetGroupAttributes"),
            groups_of(gone).len(),
            "the delay of the two groups node-{gone} left: {calls:?}"
        );
        present.sort_unstable();
        assert_eq!(rig.members().await, expected(&present));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_deregistration_delay_is_seen_by_the_first_drain_after_the_ttl() {
    let rig = Rig::new().await;
    let present: Vec<usize> = (0..4).collect();
    rig.pass(&nodes(present.clone())).await;
    // node-0 is in tg-0 and tg-1; their delay becomes 7 s.
    for g in groups_of(0) {
        rig.w.set_deregistration_delay(&rig.groups[g], 7).await;
    }
    let delays = |pass: &Pass| -> Vec<Option<Duration>> {
        pass.notices
            .iter()
            .filter_map(|n| match n {
                Notice::Deregistering { delay, .. } => Some(*delay),
                _ => None,
            })
            .collect()
    };

    // Within the TTL the delay read on resolution (moto's default, 300 s) stands.
    rig.advance(DEFAULT_DELAY_TTL - Duration::from_secs(1));
    let (pass, calls) = rig.pass(&nodes([1, 2, 3])).await;
    assert_eq!(delays(&pass), vec![Some(Duration::from_secs(300)); 2]);
    assert_eq!(
        count(&calls, "DescribeTargetGroupAttributes"),
        0,
        "{calls:?}"
    );

    // Once the copy is as old as the TTL, the next drain reads the new delay (node-1:
    // tg-1, read now; tg-2, still 300 s).
    rig.advance(Duration::from_secs(1));
    let (pass, calls) = rig.pass(&nodes([2, 3])).await;
    let mut seen = delays(&pass);
    seen.sort();
    assert_eq!(
        seen,
        vec![Some(Duration::from_secs(7)), Some(Duration::from_secs(300))],
        "{calls:?}"
    );
    assert_eq!(
        count(&calls, "DescribeTargetGroupAttributes"),
        2,
        "{calls:?}"
    );
    assert_eq!(count(&calls, "DescribeTargetGroups"), 0, "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_recreated_under_its_name_is_resolved_again_once_aws_says_the_old_arn_is_gone() {
    let mut rig = Rig::new().await;
    let present: Vec<usize> = (0..4).collect();
    rig.pass(&nodes(present.clone())).await;

    // tg-0 is referenced by name: deleted and recreated, it has a new ARN.
    rig.w
        .elb
        .delete_target_group()
        .target_group_arn(&rig.groups[0])
        .send()
        .await
        .expect("DeleteTargetGroup");
    let new = rig.w.group("tg-0", i32::from(PORT)).await;
    assert_ne!(new, rig.groups[0]);
    rig.groups[0] = new;

    // The next pass finds the old ARN gone (its DescribeTargetHealth: NotFound) and
    // leaves the group alone; the one after resolves the name again — that group
    // only — and registers its nodes in the new group.
    rig.advance(Duration::from_secs(5));
    rig.drains_over().await;
    rig.w.proxy.reset_counts();
    let pass = rig.reconciler.reconcile(&nodes(present.clone())).await;
    let pass = pass.expect("pass");
    assert_eq!(pass.unobserved.len(), 1, "{:?}", pass.unobserved);
    let calls = rig.w.proxy.counts();
    assert_eq!(count(&calls, "DescribeTargetGroups"), 0, "{calls:?}");
    rig.advance(Duration::from_secs(5));
    let (_, calls) = rig.pass(&nodes(present.clone())).await;
    assert_eq!(count(&calls, "DescribeTargetGroups"), 1, "{calls:?}");
    assert_eq!(
        count(&calls, "DescribeTargetGroupAttributes"),
        1,
        "{calls:?}"
    );
    assert_eq!(rig.members().await, expected(&present));
}
