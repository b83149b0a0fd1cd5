//! One reconcile pass over berth-core's in-memory providers: API call counts (the seed
//! made N nodes × M groups DescribeTargetHealth calls), Events, metrics, outages.

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::{
    Node, Owner, Target, TargetGroup, TargetGroupRef, TargetState, TargetType,
};
use berth_core::engine::{ApplyOptions, Engine, RetryPolicy};
use berth_core::memory::{MemoryLedger, MemoryNodeConfigurations, MemoryTargetGroups};
use berth_core::plan::NodeRules;
use berth_core::provider::{GroupBinding, LedgerOwnership, PollPolicy, TargetOwnership};
use berth_core::Error;
use berth_daemon::events::{RecordedEvents, Severity};
use berth_daemon::metrics::Metrics;
use berth_daemon::reconcile::{Reconciler, Scope};
use berth_daemon::resolve::{Resolver, NODE_CONFIGURATION_LABEL};
use berth_daemon::static_config::StaticConfig;
use common::until;

struct Rig {
    tg: Arc<MemoryTargetGroups>,
    castai: Arc<MemoryNodeConfigurations>,
    ownership: Arc<LedgerOwnership<Arc<MemoryLedger>>>,
    events: Arc<RecordedEvents>,
    metrics: Arc<Metrics>,
    groups: Vec<TargetGroup>,
}

impl Rig {
    /// `groups` target groups; configuration `cfg-i` binds groups i and i+1 (mod n).
    fn new(groups: usize) -> Rig {
        let tg = Arc::new(MemoryTargetGroups::default());
        let groups: Vec<TargetGroup> = (0..groups)
            .map(|i| {
                let mut g = tg.add_group(
                    &format!("tg-{i}"),
                    TargetType::Instance,
                    Some(30000 + i as u16),
                );
                g.deregistration_delay = Duration::from_secs(300);
                g
            })
            .collect();
        let castai = Arc::new(MemoryNodeConfigurations::default());
        for i in 0..groups.len() {
            let j = (i + 1) % groups.len();
            castai.insert(
                &format!("cfg-{i}"),
                vec![
                    GroupBinding {
                        group: TargetGroupRef::Arn(groups[i].arn.clone()),
                        port: None,
                    },
                    GroupBinding {
                        group: TargetGroupRef::Name(groups[j].name.clone()),
                        port: Some(8080),
                    },
                ],
            );
        }
        Rig {
            tg,
            castai,
            ownership: Arc::new(LedgerOwnership::new(
                Arc::new(MemoryLedger::default()),
                Owner::new("berth/test").unwrap(),
            )),
            events: Arc::new(RecordedEvents::default()),
            metrics: Arc::new(Metrics::new()),
            groups,
        }
    }

    fn reconciler(&self, scope: Scope) -> Reconciler {
        let options = ApplyOptions {
            retry: RetryPolicy {
                base_delay: Duration::from_millis(1),
                ..RetryPolicy::default()
            },
            ..ApplyOptions::default()
        };
        let engine = Engine::new(options);
        let resolver = Resolver::new(
            Some(self.castai.clone()),
            StaticConfig::default(),
            self.tg.clone(),
        );
        Reconciler::new(
            resolver,
            self.tg.clone(),
            self.ownership.clone(),
            engine,
            NodeRules::default(),
            scope,
            self.metrics.clone(),
            self.events.clone(),
        )
        .with_drain_poll(PollPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(20),
            deadline: Duration::from_secs(5),
        })
    }
}

fn node(i: usize, config: usize) -> Node {
    let mut n =
        Node::new(format!("node-{i}")).with_provider_id(&format!("aws:///us-east-1a/i-{i:08x}"));
    n.labels
        .insert(NODE_CONFIGURATION_LABEL.into(), format!("cfg-{config}"));
    n
}

fn target(i: usize, port: u16) -> Target {
    Target::new(format!("i-{i:08x}"), port)
}

async fn settle() {
    // Events are published off the reconcile path.
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn seed_000_one_describe_target_health_per_group_per_resync_not_per_node() {
    let rig = Rig::new(5);
    let nodes: Vec<Node> = (0..40).map(|i| node(i, i % 3)).collect();
    let r = rig.reconciler(Scope::Cluster);
    let pass = r.reconcile(&nodes).await.unwrap();
    assert!(pass.report.is_success(), "{}", pass.report);
    assert_eq!(pass.report.done(), 80, "{}", pass.report);
    // cfg-0..2 bind groups 0..3: four groups in use, each observed once.
    assert_eq!(rig.tg.faults.calls("DescribeTargetHealth"), 4);
    assert_eq!(
        rig.tg.faults.calls("RegisterTargets"),
        4,
        "one batch per group"
    );
    // A resync with nothing to do: one health call per group again, no writes.
    let again = r.reconcile(&nodes).await.unwrap();
    assert!(again.plan.is_empty(), "{}", again.plan);
    assert_eq!(rig.tg.faults.calls("DescribeTargetHealth"), 8);
    assert_eq!(rig.tg.faults.calls("RegisterTargets"), 4);
    assert_eq!(
        rig.castai.faults.calls("GetNodeConfiguration"),
        6,
        "once per configuration per pass"
    );
    assert_eq!(rig.tg.members(&rig.groups[1].arn).len(), 40 * 2 / 3 + 1);
    assert!(rig
        .metrics
        .render()
        .contains("berth_daemon_registrations_total 80"));
    settle().await;
    let registered = rig
        .events
        .all()
        .iter()
        .filter(|e| e.reason == "Registered")
        .count();
    assert_eq!(registered, 80);
}

#[tokio::test]
async fn cordon_deregisters_reports_and_waits_out_the_drain() {
    let rig = Rig::new(2);
    let r = rig.reconciler(Scope::Cluster);
    let mut n = node(1, 0);
    r.reconcile(std::slice::from_ref(&n)).await.unwrap();
    n.unschedulable = true;
    let pass = r.reconcile(std::slice::from_ref(&n)).await.unwrap();
    assert_eq!(pass.report.done(), 2, "{}", pass.report);
    assert_eq!(
        rig.tg.members(&rig.groups[0].arn)[&target(1, 30000)],
        TargetState::Draining
    );
    // Still draining: the next pass neither re-registers nor deregisters again.
    let idle = r.reconcile(std::slice::from_ref(&n)).await.unwrap();
    assert!(idle.plan.is_empty(), "{}", idle.plan);
    assert_eq!(r.draining(), 2);
    settle().await;
    assert!(
        rig.events.all().iter().all(|e| e.reason != "Deregistered"),
        "not before the drain ends"
    );
    rig.tg.finish_draining();
    // The drain waits poll every 10-20 ms, then publish: waited for, not slept on.
    let deregistered = || {
        rig.events
            .all()
            .iter()
            .filter(|e| e.reason == "Deregistered")
            .count()
    };
    until("both drain waits ended and reported", || {
        r.draining() == 0 && deregistered() == 2
    })
    .await;
    assert_eq!(r.draining(), 0);
    let events = rig.events.all();
    let deregistering = events
        .iter()
        .filter(|e| e.reason == "Deregistering")
        .collect::<Vec<_>>();
    assert_eq!(deregistering.len(), 2);
    assert!(
        deregistering[0].message.contains("cordoned"),
        "{:?}",
        deregistering[0]
    );
    assert_eq!(
        events.iter().filter(|e| e.reason == "Deregistered").count(),
        2,
        "{events:?}"
    );
    // Uncordoned after the drain: registered again.
    n.unschedulable = false;
    assert_eq!(r.reconcile(&[n]).await.unwrap().report.done(), 2);
}

#[tokio::test]
async fn a_drain_never_seen_to_end_is_a_warning_not_a_success() {
    let rig = Rig::new(2);
    for g in &rig.groups {
        rig.tg
            .set_deregistration_delay(&g.arn, Duration::from_millis(100));
    }
    // Polled for the delay plus 300 ms, while the targets stay `draining` throughout.
    let r = rig.reconciler(Scope::Cluster).with_drain_poll(PollPolicy {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(20),
        deadline: Duration::from_millis(300),
    });
    let mut n = node(1, 0);
    r.reconcile(std::slice::from_ref(&n)).await.unwrap();
    n.unschedulable = true;
    let pass = r.reconcile(std::slice::from_ref(&n)).await.unwrap();
    assert_eq!(pass.report.done(), 2, "{}", pass.report);
    assert_eq!(r.draining(), 2);
    // The waits give up after the delay plus 300 ms, then publish: waited for.
    let unconfirmed = || {
        rig.events
            .all()
            .iter()
            .filter(|e| e.reason == "DrainNotConfirmed")
            .count()
    };
    until("both drain waits gave up and reported", || {
        r.draining() == 0 && unconfirmed() == 2
    })
    .await;
    assert_eq!(r.draining(), 0, "the wait gave up");
    let events = rig.events.all();
    let unconfirmed: Vec<_> = events
        .iter()
        .filter(|e| e.reason == "DrainNotConfirmed")
        .collect();
    assert_eq!(unconfirmed.len(), 2, "{events:?}");
    for e in &unconfirmed {
        assert_eq!(e.severity, Severity::Warning, "{e:?}");
        assert_eq!(e.node, "node-1");
        assert!(e.message.contains("not seen gone"), "{e:?}");
    }
    assert!(
        events.iter().all(|e| e.reason != "Deregistered"),
        "never reported done: {events:?}"
    );
    assert!(rig
        .metrics
        .render()
        .contains("berth_daemon_drained_total 0"));
    // The targets are still berth's and still draining: nothing is re-registered.
    assert_eq!(
        rig.tg.members(&rig.groups[0].arn)[&target(1, 30000)],
        TargetState::Draining
    );
    let idle = r.reconcile(std::slice::from_ref(&n)).await.unwrap();
    assert!(idle.plan.is_empty(), "{}", idle.plan);
}

#[tokio::test]
async fn a_castai_outage_deregisters_nothing_and_converges_after() {
    let rig = Rig::new(2);
    let r = rig.reconciler(Scope::Cluster);
    let nodes = vec![node(1, 0), node(2, 0)];
    r.reconcile(&nodes).await.unwrap();
    let outage = Error::Unavailable {
        operation: "Cast.ai GetNodeConfiguration".into(),
        message: "500".into(),
    };
    rig.castai.faults.fail("GetNodeConfiguration", outage, 3);
    let mut more = nodes.clone();
    more.push(node(3, 0));
    for _ in 0..3 {
        let pass = r.reconcile(&more).await.unwrap();
        assert!(pass.plan.is_empty(), "{}", pass.plan);
    }
    assert_eq!(rig.tg.members(&rig.groups[0].arn).len(), 2);
    let pass = r.reconcile(&more).await.unwrap();
    assert_eq!(
        pass.report.done(),
        2,
        "node 3 joins both groups: {}",
        pass.report
    );
    settle().await;
    assert!(rig
        .events
        .all()
        .iter()
        .any(|e| e.reason == "Held" && e.severity == Severity::Warning));
    assert!(
        rig.metrics.render().contains("kind=\"castai\""),
        "{}",
        rig.metrics.render()
    );
}

#[tokio::test]
async fn a_refused_permission_is_a_metric_and_a_warning_naming_the_iam_action() {
    let rig = Rig::new(2);
    let denied = Error::AccessDenied {
        action: "elasticloadbalancing:RegisterTargets".into(),
        message: "not authorized".into(),
    };
    rig.tg.faults.fail("RegisterTargets", denied, 10);
    let r = rig.reconciler(Scope::Cluster);
    let pass = r.reconcile(&[node(1, 0)]).await.unwrap();
    assert_eq!(pass.report.failed(), 2);
    settle().await;
    let text = rig.metrics.render();
    assert!(
        text.contains("action=\"elasticloadbalancing:RegisterTargets\""),
        "{text}"
    );
    let warning = rig
        .events
        .all()
        .into_iter()
        .find(|e| e.reason == "RegistrationFailed")
        .unwrap();
    assert_eq!(warning.severity, Severity::Warning);
    assert!(
        warning
            .message
            .contains("elasticloadbalancing:RegisterTargets"),
        "{}",
        warning.message
    );
}

#[tokio::test]
async fn foreign_targets_stay_and_deleted_nodes_leave() {
    let rig = Rig::new(2);
    let r = rig.reconciler(Scope::Cluster);
    rig.tg
        .set_state(&rig.groups[0].arn, target(99, 30000), TargetState::Healthy);
    r.reconcile(&[node(1, 0), node(2, 0)]).await.unwrap();
    let pass = r.reconcile(&[node(1, 0)]).await.unwrap();
    assert_eq!(pass.plan.count("deregister"), 2, "{}", pass.plan);
    let members = rig.tg.members(&rig.groups[0].arn);
    assert_eq!(members[&target(99, 30000)], TargetState::Healthy);
    assert_eq!(members[&target(2, 30000)], TargetState::Draining);
}

#[tokio::test]
async fn node_mode_never_touches_a_neighbours_targets() {
    let rig = Rig::new(2);
    rig.reconciler(Scope::Cluster)
        .reconcile(&[node(1, 0), node(2, 0)])
        .await
        .unwrap();
    let mine = rig.reconciler(Scope::Node {
        name: "node-1".into(),
        instance: None,
    });
    // Node mode sees only its own node: node-2's targets, owned by the same owner, stay.
    let pass = mine.reconcile(&[node(1, 0)]).await.unwrap();
    assert!(pass.plan.is_empty(), "{}", pass.plan);
    assert_eq!(
        rig.ownership
            .owned()
            .await
            .unwrap()
            .values()
            .map(|t| t.len())
            .sum::<usize>(),
        4
    );
}

#[tokio::test]
async fn restart_redoes_nothing() {
    let rig = Rig::new(3);
    let nodes: Vec<Node> = (0..10).map(|i| node(i, i % 3)).collect();
    rig.reconciler(Scope::Cluster)
        .reconcile(&nodes)
        .await
        .unwrap();
    let writes = rig.tg.faults.calls("RegisterTargets");
    // A new process: fresh reconciler, same cloud state and ownership store.
    let pass = rig
        .reconciler(Scope::Cluster)
        .reconcile(&nodes)
        .await
        .unwrap();
    assert!(pass.plan.is_empty(), "{}", pass.plan);
    assert_eq!(rig.tg.faults.calls("RegisterTargets"), writes);
}
