//! The etcd workflow over the in-memory providers (paused time: waits cost nothing).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::domain::{Instance, InstanceId, InstanceState, NetworkInterface, Tags};
use crate::memory::{MemoryEtcd, MemoryInstances, MemoryLedger, MemoryScalingGroups};

const GROUP: &str = "masters";

fn ip(n: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, n])
}

fn node(n: u8) -> NodeIdentity {
    NodeIdentity {
        instance_id: InstanceId::new(format!("i-{n}")).unwrap(),
        private_ip: ip(n),
    }
}

fn instance(n: u8, state: InstanceState) -> Instance {
    Instance {
        id: InstanceId::new(format!("i-{n}")).unwrap(),
        state,
        availability_zone: "eu-west-1a".into(),
        private_ips: vec![ip(n)],
        interfaces: vec![NetworkInterface {
            id: format!("eni-{n}"),
            device_index: 0,
            private_ip: ip(n),
            public_ip: None,
        }],
        tags: Tags::new(),
    }
}

/// A running cluster of `i-<n>` members at 10.0.0.<n>.
fn cluster(ns: &[u8]) -> MemoryEtcd {
    let urls: Vec<(String, String, String)> = ns
        .iter()
        .map(|n| {
            (
                format!("i-{n}"),
                format!("http://10.0.0.{n}:2380"),
                format!("http://10.0.0.{n}:2379"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str, &str)> = urls
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    MemoryEtcd::with_members(&refs)
}

struct World {
    etcd: Arc<MemoryEtcd>,
    groups: Arc<MemoryScalingGroups>,
    instances: Arc<MemoryInstances>,
    marker: Arc<MemoryLedger>,
}

impl World {
    fn new(etcd: MemoryEtcd, desired: u32, group: &[(u8, &str)]) -> World {
        let groups = MemoryScalingGroups::default();
        let ids: Vec<(String, &str)> = group.iter().map(|(n, s)| (format!("i-{n}"), *s)).collect();
        let refs: Vec<(&str, &str)> = ids.iter().map(|(i, s)| (i.as_str(), *s)).collect();
        groups.set(GROUP, desired, &refs);
        let instances = MemoryInstances::default();
        for (n, _) in group {
            instances.insert(instance(*n, InstanceState::Running));
        }
        World {
            etcd: Arc::new(etcd),
            groups: Arc::new(groups),
            instances: Arc::new(instances),
            marker: Arc::new(MemoryLedger::default()),
        }
    }

    /// A group of these instances, all `InService`.
    fn in_service(etcd: MemoryEtcd, desired: u32, ns: &[u8]) -> World {
        let group: Vec<(u8, &str)> = ns.iter().map(|n| (*n, "InService")).collect();
        World::new(etcd, desired, &group)
    }

    fn workflow(&self, learner: bool) -> EtcdBootstrap {
        EtcdBootstrap::new(
            EtcdProviders {
                membership: self.etcd.clone(),
                groups: self.groups.clone(),
                instances: self.instances.clone(),
                marker: Some(self.marker.clone()),
            },
            EtcdBootstrapSettings {
                etcd: EtcdSettings {
                    client_scheme: "http".into(),
                    client_port: 2379,
                    peer_scheme: "http".into(),
                    peer_port: 2380,
                    cluster_size: 3,
                    learner,
                    cluster_token: GROUP.into(),
                    tls: None,
                },
                group: GROUP.into(),
                owner: Owner::new("berth-bootstrap").unwrap(),
                wait: PollPolicy {
                    initial: Duration::from_secs(1),
                    max: Duration::from_secs(10),
                    deadline: Duration::from_secs(120),
                },
            },
            Caller::default(),
        )
    }

    /// Node `n` boots with an empty data dir.
    async fn boot(&self, n: u8, learner: bool) -> Result<EtcdSummary> {
        self.workflow(learner).run(&node(n), FRESH, false).await
    }

    /// Node `n` boots again with a WAL (`drop_in_exists` as given).
    async fn restart(&self, n: u8, drop_in_exists: bool) -> Result<EtcdSummary> {
        let local = LocalNode {
            has_wal: true,
            drop_in_exists,
        };
        self.workflow(false).run(&node(n), local, false).await
    }

    async fn mark_created(&self) {
        self.marker
            .put(
                LedgerRecord::new(GROUP, Owner::new("berth-bootstrap").unwrap()),
                WriteCondition::Absent,
            )
            .await
            .unwrap();
    }

    fn member(&self, name: &str) -> EtcdMember {
        self.etcd
            .members()
            .into_iter()
            .find(|m| m.name == name)
            .unwrap()
    }
}

const FRESH: LocalNode = LocalNode {
    has_wal: false,
    drop_in_exists: false,
};

#[tokio::test(start_paused = true)]
async fn a_new_node_joins_a_healthy_cluster_and_marks_it_created() {
    let world = World::new(
        cluster(&[1, 2, 3]),
        4,
        &[
            (1, "InService"),
            (2, "InService"),
            (3, "InService"),
            (4, "Pending"),
        ],
    );
    let summary = world.boot(4, false).await.unwrap();
    assert_eq!(summary.action, EtcdAction::Joined);
    assert!(!summary.learner);
    assert_eq!(world.etcd.faults.calls("MemberAdd"), 1);
    assert_eq!(world.etcd.members().len(), 4);
    let drop_in = summary.drop_in.unwrap();
    assert_eq!(drop_in.get("ETCD_INITIAL_CLUSTER_STATE"), Some("existing"));
    assert_eq!(
        drop_in.get("ETCD_INITIAL_CLUSTER"),
        Some(
            "i-1=http://10.0.0.1:2380,i-2=http://10.0.0.2:2380,i-3=http://10.0.0.3:2380,\
             i-4=http://10.0.0.4:2380"
        )
    );
    assert!(summary.marker_written);
    assert_eq!(world.marker.rows()[0].get("written_by"), Some("i-4"));
    // Every call went through the engine's caller and is in the summary.
    let calls = &summary.calls.calls;
    for op in [
        "DescribeAutoScalingGroups",
        "DescribeInstances",
        "QuorumRead",
    ] {
        assert_eq!(calls.get(op), Some(&1), "{op}: {calls:?}");
    }
    assert_eq!(calls.get("MemberAdd"), Some(&1));
    assert_eq!(calls.get("GetItem"), Some(&1));
    assert_eq!(calls.get("PutItem"), Some(&1));
    assert_eq!(calls.get("Status"), Some(&3), "one per member");
    assert_eq!(summary.calls.failures, 0);

    // A second run (the drop-in write failed, say) finds itself listed: no second add.
    let again = world.boot(4, false).await.unwrap();
    assert_eq!(again.action, EtcdAction::Listed);
    assert_eq!(again.drop_in.unwrap(), drop_in);
    assert_eq!(world.etcd.faults.calls("MemberAdd"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_restart_with_a_wal_touches_no_membership() {
    let world = World::in_service(cluster(&[1, 2, 3]), 3, &[1, 2, 3]);
    world.mark_created().await;
    let summary = world.restart(3, true).await.unwrap();
    assert_eq!(summary.action, EtcdAction::Restart);
    assert_eq!(summary.drop_in, None);
    assert_eq!(world.etcd.faults.total_calls(), 0);
    assert_eq!(world.groups.faults.total_calls(), 0);

    let summary = world.restart(3, false).await.unwrap();
    assert_eq!(summary.drop_in.unwrap().get("ETCD_NAME"), Some("i-3"));
    assert_eq!(world.etcd.faults.total_calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_restart_marks_the_cluster_it_created_once_healthy() {
    let world = World::in_service(cluster(&[1, 2, 3]), 3, &[1, 2, 3]);
    let summary = world.restart(1, true).await.unwrap();
    assert!(summary.marker_written);
    assert_eq!(world.etcd.faults.calls("MemberAdd"), 0);
    assert_eq!(world.marker.rows().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn fresh_nodes_booting_together_render_one_initial_cluster() {
    // moto cannot show `Pending`: two of the three are still booting.
    let world = World::new(
        MemoryEtcd::default(),
        3,
        &[(1, "Pending"), (2, "Pending:Wait"), (3, "InService")],
    );
    let (a, b, c) = tokio::join!(
        world.boot(1, false),
        world.boot(2, false),
        world.boot(3, false)
    );
    let initial: Vec<String> = [a, b, c]
        .into_iter()
        .map(|s| {
            let s = s.unwrap();
            assert_eq!(s.action, EtcdAction::Created);
            let d = s.drop_in.unwrap();
            assert_eq!(d.get("ETCD_INITIAL_CLUSTER_STATE"), Some("new"));
            d.get("ETCD_INITIAL_CLUSTER").unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        initial[0],
        "i-1=http://10.0.0.1:2380,i-2=http://10.0.0.2:2380,i-3=http://10.0.0.3:2380"
    );
    assert!(initial.iter().all(|i| i == &initial[0]));
    // The marker waits for a healthy cluster.
    assert!(world.marker.rows().is_empty());
}

/// Members i-1..i-3, i-3 down; the group holds i-1, i-2 and the new i-4; EC2 reports
/// i-3 in `i3_state`.
fn i3_down(i3_state: InstanceState) -> World {
    let etcd = cluster(&[1, 2, 3]);
    etcd.set_running("i-3", false);
    let world = World::in_service(etcd, 3, &[1, 2, 4]);
    world.instances.insert(instance(3, i3_state));
    world
}

#[tokio::test(start_paused = true)]
async fn a_stale_member_is_removed_before_the_add_which_is_retried_while_unhealthy() {
    let world = i3_down(InstanceState::Terminated);
    world.etcd.faults.fail(
        "MemberAdd",
        Error::Unavailable {
            operation: "MemberAdd".into(),
            message: "etcdserver: unhealthy cluster".into(),
        },
        2,
    );
    let summary = world.boot(4, false).await.unwrap();
    assert_eq!(summary.removed.unwrap().member.name, "i-3");
    assert_eq!(world.etcd.faults.calls("MemberRemove"), 1);
    assert_eq!(world.etcd.faults.calls("MemberAdd"), 3);
    // One call, three attempts: the caller's tally says so.
    assert_eq!(summary.calls.calls.get("MemberAdd"), Some(&1));
    assert_eq!(summary.calls.attempts.get("MemberAdd"), Some(&3));
    let names: Vec<String> = world.etcd.members().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["i-1", "i-2", ""]);
}

#[tokio::test(start_paused = true)]
async fn a_member_whose_instance_still_runs_is_never_removed() {
    // i-3 left the group but EC2 has it running (detached for maintenance).
    let world = i3_down(InstanceState::Running);
    let err = world.boot(4, false).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(world.etcd.faults.calls("MemberRemove"), 0);
    assert_eq!(world.etcd.faults.calls("MemberAdd"), 0);
}

#[tokio::test(start_paused = true)]
async fn at_most_one_removal_per_run() {
    let etcd = cluster(&[1, 2, 3, 5, 6]);
    etcd.set_running("i-5", false);
    etcd.set_running("i-6", false);
    let world = World::in_service(etcd, 3, &[1, 2, 3, 4]);
    let err = world.boot(4, false).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(world.etcd.faults.calls("MemberRemove"), 1);
    assert_eq!(world.etcd.members().len(), 4);
    // The next run (systemd's retry) removes the other one and joins.
    let summary = world.boot(4, false).await.unwrap();
    assert_eq!(summary.removed.unwrap().member.name, "i-6");
    assert_eq!(summary.action, EtcdAction::Joined);
}

#[tokio::test(start_paused = true)]
async fn no_quorum_with_the_marker_fails_without_creating() {
    let etcd = cluster(&[1, 2, 3]);
    for n in ["i-1", "i-2", "i-3"] {
        etcd.set_running(n, false);
    }
    let world = World::in_service(etcd, 3, &[1, 2, 4]);
    world.mark_created().await;
    let err = world.boot(4, false).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("marker"), "{err}");
    assert_eq!(world.etcd.faults.calls("MemberAdd"), 0);
}

#[tokio::test(start_paused = true)]
async fn no_quorum_with_a_peer_holding_data_fails_without_the_marker() {
    let world = World::in_service(MemoryEtcd::default(), 3, &[1, 2, 4]);
    world.etcd.add_stray("http://10.0.0.2:2379");
    let err = world.boot(4, false).await.unwrap_err();
    assert!(err.to_string().contains("i-2"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn an_incomplete_group_waits_until_the_deadline_then_fails() {
    let world = World::in_service(MemoryEtcd::default(), 3, &[1, 4]);
    let started = tokio::time::Instant::now();
    let err = world.boot(4, false).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("2 instances are present"), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(120));
    // Backoff, not a busy loop: 1 s doubling to 10 s over two minutes.
    let polls = world.groups.faults.calls("DescribeAutoScalingGroups");
    assert!((10..=40).contains(&polls), "{polls} polls");
}

#[tokio::test(start_paused = true)]
async fn a_wait_ends_when_the_last_peer_appears() {
    let world = World::in_service(MemoryEtcd::default(), 3, &[1, 4]);
    let groups = world.groups.clone();
    let instances = world.instances.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        instances.insert(instance(2, InstanceState::Pending));
        groups.set(
            GROUP,
            3,
            &[
                ("i-1", "InService"),
                ("i-2", "Pending"),
                ("i-4", "InService"),
            ],
        );
    });
    let summary = world.boot(4, false).await.unwrap();
    assert_eq!(summary.action, EtcdAction::Created);
    assert!(summary.waits >= 1);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_changes_nothing() {
    let world = i3_down(InstanceState::Terminated);
    let summary = world
        .workflow(true)
        .run(&node(4), FRESH, true)
        .await
        .unwrap();
    assert!(summary.dry_run);
    assert_eq!(summary.removed.unwrap().member.name, "i-3");
    assert!(summary.learner);
    assert!(summary.drop_in.is_some());
    for op in ["MemberAdd", "MemberRemove", "MemberPromote"] {
        assert_eq!(world.etcd.faults.calls(op), 0, "{op}");
    }
    assert_eq!(world.marker.faults.calls("PutItem"), 0);

    let waiting = World::in_service(MemoryEtcd::default(), 3, &[4]);
    let summary = waiting
        .workflow(false)
        .run(&node(4), FRESH, true)
        .await
        .unwrap();
    assert_eq!(summary.action, EtcdAction::Wait);
    assert!(summary.waiting.unwrap().contains("1 instances are present"));
}

#[tokio::test(start_paused = true)]
async fn a_later_run_promotes_a_learner_once_it_runs() {
    let world = World::in_service(cluster(&[1, 2, 3]), 5, &[1, 2, 3, 4, 5]);
    world.mark_created().await;
    let first = world.boot(4, true).await.unwrap();
    assert!(first.added.unwrap().is_learner);
    world
        .etcd
        .start_added("http://10.0.0.4:2380", "i-4", "http://10.0.0.4:2379");
    let second = world.boot(5, true).await.unwrap();
    assert_eq!(second.promoted.as_deref(), Some("i-4"));
    assert!(!world.member("i-4").is_learner);
}

#[tokio::test(start_paused = true)]
async fn a_learner_promotes_itself_once_it_runs_and_is_in_sync() {
    let world = World::in_service(cluster(&[1, 2, 3]), 4, &[1, 2, 3, 4]);
    world.mark_created().await;
    let joined = world.boot(4, true).await.unwrap();
    assert!(joined.learner);
    let promote = world.workflow(true);

    // Its etcd starts 30 s later and lags: two "not in sync" refusals.
    let etcd = world.etcd.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        etcd.start_added("http://10.0.0.4:2380", "i-4", "http://10.0.0.4:2379");
    });
    world.etcd.faults.fail(
        "MemberPromote",
        Error::Provider {
            operation: "MemberPromote".into(),
            message: "etcdserver: can only promote a learner member which is in sync with \
                      leader"
                .into(),
            retryable: true,
        },
        2,
    );
    let summary = promote.promote_self(&node(4), false).await.unwrap();
    assert_eq!(summary.action, EtcdAction::Promoted);
    assert_eq!(summary.promoted.as_deref(), Some("i-4"));
    assert!(summary.waits >= 1, "waited for its etcd to answer");
    assert_eq!(summary.calls.calls.get("MemberPromote"), Some(&1));
    assert_eq!(summary.calls.attempts.get("MemberPromote"), Some(&3));
    assert!(!world.member("i-4").is_learner);

    // Again: a voter now, nothing to do.
    let again = world
        .workflow(true)
        .promote_self(&node(4), false)
        .await
        .unwrap();
    assert_eq!(again.action, EtcdAction::Voter);
    assert_eq!(world.etcd.faults.calls("MemberPromote"), 3);
}

#[tokio::test(start_paused = true)]
async fn a_learner_that_never_starts_is_not_promoted_and_the_step_times_out() {
    let world = World::in_service(cluster(&[1, 2, 3]), 4, &[1, 2, 3, 4]);
    world.boot(4, true).await.unwrap();
    let plan = world
        .workflow(true)
        .promote_self(&node(4), true)
        .await
        .unwrap();
    assert_eq!(plan.action, EtcdAction::Wait);
    let err = world
        .workflow(true)
        .promote_self(&node(4), false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(world.etcd.faults.calls("MemberPromote"), 0);

    let stranger = world.workflow(true).promote_self(&node(9), false).await;
    assert!(
        matches!(stranger, Err(Error::Conflict { .. })),
        "{stranger:?}"
    );
}
