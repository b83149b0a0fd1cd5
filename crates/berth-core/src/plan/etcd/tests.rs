//! Every branch of the etcd membership decision, with plain values.

use super::*;

fn settings() -> EtcdSettings {
    EtcdSettings {
        client_scheme: "http".into(),
        client_port: 2379,
        peer_scheme: "http".into(),
        peer_port: 2380,
        cluster_size: 3,
        learner: false,
        cluster_token: "masters".into(),
        tls: None,
    }
}

fn id(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

fn me() -> NodeIdentity {
    NodeIdentity {
        instance_id: id("i-4"),
        private_ip: ip(4),
    }
}

fn peer(name: &str, state: &str, last: Option<u8>) -> Peer {
    Peer {
        id: id(name),
        lifecycle_state: state.into(),
        private_ip: last.map(ip),
    }
}

/// A started voter `i-<n>` at 10.0.0.<n>.
fn member(n: u8, answers: bool, fate: InstanceFate) -> ObservedMember {
    ObservedMember {
        member: EtcdMember {
            id: u64::from(n),
            name: format!("i-{n}"),
            peer_urls: vec![format!("http://10.0.0.{n}:2380")],
            client_urls: vec![format!("http://10.0.0.{n}:2379")],
            is_learner: false,
        },
        answers,
        fate,
    }
}

fn healthy(members: Vec<ObservedMember>) -> EtcdObservation {
    EtcdObservation {
        desired_capacity: 3,
        peers: Vec::new(),
        cluster: ClusterState::Healthy(members),
        marker_exists: true,
        may_remove: true,
    }
}

fn no_quorum(peers: Vec<Peer>) -> EtcdObservation {
    EtcdObservation {
        desired_capacity: 3,
        peers,
        cluster: ClusterState::NoQuorum {
            peers_with_data: Vec::new(),
        },
        marker_exists: false,
        may_remove: true,
    }
}

fn three_healthy() -> Vec<ObservedMember> {
    (1..=3)
        .map(|n| member(n, true, InstanceFate::Present))
        .collect()
}

fn join(decision: EtcdDecision) -> JoinPlan {
    match decision {
        EtcdDecision::Join(plan) => *plan,
        other => panic!("expected a join, got {other:?}"),
    }
}

fn wait_reason(decision: EtcdDecision) -> String {
    match decision {
        EtcdDecision::Wait { reason } => reason,
        other => panic!("expected a wait, got {other:?}"),
    }
}

fn fail_reason(decision: EtcdDecision) -> String {
    match decision {
        EtcdDecision::Fail { reason } => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn lifecycle_states_classify_booting_peers_as_present() {
    for s in [
        "Pending",
        "Pending:Wait",
        "Pending:Proceed",
        "InService",
        "Standby",
        "EnteringStandby",
    ] {
        assert_eq!(presence(s), Presence::Present, "{s}");
    }
    for s in [
        "Terminating",
        "Terminating:Wait",
        "Terminating:Proceed",
        "Terminated",
        "Detaching",
        "Detached",
    ] {
        assert_eq!(presence(s), Presence::Gone, "{s}");
    }
    assert_eq!(presence("Warmed:Running"), Presence::Unknown);
}

#[test]
fn a_new_node_joins_a_healthy_cluster_as_a_voter_or_a_learner() {
    let plan = join(decide_etcd(&settings(), &me(), &healthy(three_healthy())));
    assert_eq!(plan.me, SelfStep::Add { learner: false });
    assert_eq!(plan.remove, None);
    assert_eq!(plan.members.len(), 3);
    let learner = EtcdSettings {
        learner: true,
        ..settings()
    };
    let plan = join(decide_etcd(&learner, &me(), &healthy(three_healthy())));
    assert_eq!(plan.me, SelfStep::Add { learner: true });
}

#[test]
fn a_one_member_cluster_only_gains_a_learner() {
    let one = vec![member(1, true, InstanceFate::Present)];
    let plan = join(decide_etcd(&settings(), &me(), &healthy(one)));
    assert_eq!(plan.me, SelfStep::Add { learner: true });
}

#[test]
fn a_node_listed_but_never_started_only_writes_its_drop_in() {
    let mut members = three_healthy();
    members.push(ObservedMember {
        member: EtcdMember {
            id: 99,
            name: String::new(),
            peer_urls: vec!["http://10.0.0.4:2380".into()],
            client_urls: vec![],
            is_learner: false,
        },
        answers: false,
        fate: InstanceFate::NotAnInstance,
    });
    let plan = join(decide_etcd(&settings(), &me(), &healthy(members)));
    assert_eq!(plan.me, SelfStep::Listed { member_id: 99 });
}

#[test]
fn a_started_member_without_a_wal_is_left_to_the_operator() {
    let mut members = three_healthy();
    members.push(member(4, false, InstanceFate::Present));
    let reason = fail_reason(decide_etcd(&settings(), &me(), &healthy(members)));
    assert!(reason.contains("no WAL"), "{reason}");
}

#[test]
fn a_stale_member_of_a_gone_instance_is_removed_before_the_add() {
    let mut members = three_healthy();
    members[2] = member(3, false, InstanceFate::Gone);
    let plan = join(decide_etcd(&settings(), &me(), &healthy(members)));
    assert_eq!(plan.remove.as_ref().unwrap().member.name, "i-3");
    assert_eq!(plan.me, SelfStep::Add { learner: false });
    assert!(plan.members.iter().all(|m| m.name != "i-3"));
}

#[test]
fn a_stale_member_that_answers_or_whose_instance_lives_is_kept() {
    let mut members = three_healthy();
    members[2] = member(3, true, InstanceFate::Gone);
    let plan = join(decide_etcd(&settings(), &me(), &healthy(members)));
    assert_eq!(plan.remove, None);
    assert!(plan.kept[0].contains("still answers"), "{:?}", plan.kept);

    // Its instance is stopped, not terminated: it may come back. It is down, so the
    // add would be refused: wait.
    let mut members = three_healthy();
    members[2] = member(3, false, InstanceFate::Elsewhere);
    let reason = wait_reason(decide_etcd(&settings(), &me(), &healthy(members)));
    assert!(reason.contains("i-3"), "{reason}");
}

#[test]
fn no_removal_from_a_two_member_cluster() {
    let members = vec![
        member(1, true, InstanceFate::Present),
        member(3, false, InstanceFate::Gone),
    ];
    let reason = wait_reason(decide_etcd(&settings(), &me(), &healthy(members)));
    assert!(reason.contains("only 2 members"), "{reason}");
}

#[test]
fn no_removal_when_the_members_left_would_not_make_a_quorum() {
    // Five voters, two answer: removing a dead one leaves 2 healthy of 4 (< 3).
    let members = vec![
        member(1, true, InstanceFate::Present),
        member(2, true, InstanceFate::Present),
        member(3, false, InstanceFate::Present),
        member(5, false, InstanceFate::Present),
        member(6, false, InstanceFate::Gone),
    ];
    let reason = wait_reason(decide_etcd(&settings(), &me(), &healthy(members)));
    assert!(reason.contains("would not make a quorum"), "{reason}");
}

#[test]
fn one_removal_per_run() {
    let mut members = three_healthy();
    members.push(member(5, true, InstanceFate::Present));
    members.push(member(6, false, InstanceFate::Gone));
    members.push(member(7, false, InstanceFate::Gone));
    let plan = join(decide_etcd(&settings(), &me(), &healthy(members.clone())));
    assert_eq!(plan.remove.as_ref().unwrap().member.name, "i-6");
    assert_eq!(members[4].member.name, "i-6");
    // i-7 is still down: the add waits, the removal goes ahead.
    assert!(matches!(plan.me, SelfStep::Wait { .. }), "{:?}", plan.me);
    assert!(plan.kept[0].contains("one removal per run"));

    // The next observation of the same run may not remove again.
    members.remove(4);
    let mut observation = healthy(members);
    observation.may_remove = false;
    let reason = wait_reason(decide_etcd(&settings(), &me(), &observation));
    assert!(reason.contains("i-7"), "{reason}");
}

#[test]
fn a_started_learner_of_a_present_instance_is_promoted() {
    let mut members = three_healthy();
    let mut learner = member(5, true, InstanceFate::Present);
    learner.member.is_learner = true;
    members.push(learner);
    let plan = join(decide_etcd(&settings(), &me(), &healthy(members)));
    assert_eq!(plan.promote.unwrap().name, "i-5");
}

#[test]
fn no_quorum_with_the_marker_or_a_peer_with_data_fails_never_creates() {
    let peers = vec![
        peer("i-1", "InService", Some(1)),
        peer("i-2", "InService", Some(2)),
        peer("i-4", "InService", Some(4)),
    ];
    let mut marked = no_quorum(peers.clone());
    marked.marker_exists = true;
    let reason = fail_reason(decide_etcd(&settings(), &me(), &marked));
    assert!(reason.contains("marker"), "{reason}");

    let mut with_data = no_quorum(peers);
    with_data.cluster = ClusterState::NoQuorum {
        peers_with_data: vec![id("i-2")],
    };
    let reason = fail_reason(decide_etcd(&settings(), &me(), &with_data));
    assert!(reason.contains("i-2"), "{reason}");
}

#[test]
fn a_new_cluster_needs_the_full_group_present_with_ips() {
    let full = vec![
        peer("i-2", "InService", Some(2)),
        peer("i-1", "Pending:Wait", Some(1)),
        peer("i-4", "Pending", None),
    ];
    let EtcdDecision::Create { initial_cluster } =
        decide_etcd(&settings(), &me(), &no_quorum(full.clone()))
    else {
        panic!("expected a new cluster");
    };
    assert_eq!(
        initial_cluster,
        vec![
            ("i-1".to_owned(), "http://10.0.0.1:2380".to_owned()),
            ("i-2".to_owned(), "http://10.0.0.2:2380".to_owned()),
            ("i-4".to_owned(), "http://10.0.0.4:2380".to_owned()),
        ]
    );
    // Every node renders the same list.
    let other = NodeIdentity {
        instance_id: id("i-1"),
        private_ip: ip(1),
    };
    let mut seen_by_other = full.clone();
    seen_by_other[2].private_ip = Some(ip(4));
    assert_eq!(
        decide_etcd(&settings(), &other, &no_quorum(seen_by_other)),
        EtcdDecision::Create { initial_cluster }
    );

    let mut scaling = no_quorum(full.clone());
    scaling.desired_capacity = 4;
    assert!(wait_reason(decide_etcd(&settings(), &me(), &scaling)).contains("desired capacity"));

    let mut leaving = full.clone();
    leaving[0].lifecycle_state = "Terminating".into();
    assert!(
        wait_reason(decide_etcd(&settings(), &me(), &no_quorum(leaving)))
            .contains("2 instances are present")
    );

    let mut no_ip = full.clone();
    no_ip[1].private_ip = None;
    assert!(wait_reason(decide_etcd(&settings(), &me(), &no_quorum(no_ip))).contains("i-1"));

    let mut without_me = full;
    without_me[2] = peer("i-9", "InService", Some(9));
    assert!(
        wait_reason(decide_etcd(&settings(), &me(), &no_quorum(without_me))).contains("not among")
    );
}

#[test]
fn never_a_single_node_cluster_when_others_are_missing() {
    let alone = vec![peer("i-4", "InService", Some(4))];
    let reason = wait_reason(decide_etcd(&settings(), &me(), &no_quorum(alone)));
    assert!(reason.contains("1 instances are present"), "{reason}");
}

#[test]
fn the_drop_in_sets_every_variable_and_tls_only_for_https() {
    let drop_in = render_drop_in(
        &settings(),
        &me(),
        &[
            ("i-1".into(), "http://10.0.0.1:2380".into()),
            (String::new(), "http://10.0.0.7:2380".into()),
            (String::new(), "http://10.0.0.4:2380".into()),
        ],
        InitialClusterState::Existing,
    );
    assert_eq!(drop_in.get("ETCD_NAME"), Some("i-4"));
    assert_eq!(
        drop_in.get("ETCD_INITIAL_CLUSTER"),
        Some("=http://10.0.0.7:2380,i-1=http://10.0.0.1:2380,i-4=http://10.0.0.4:2380")
    );
    assert_eq!(drop_in.get("ETCD_INITIAL_CLUSTER_STATE"), Some("existing"));
    assert_eq!(drop_in.get("ETCD_INITIAL_CLUSTER_TOKEN"), Some("masters"));
    assert_eq!(
        drop_in.get("ETCD_INITIAL_ADVERTISE_PEER_URLS"),
        Some("http://10.0.0.4:2380")
    );
    assert_eq!(
        drop_in.get("ETCD_LISTEN_PEER_URLS"),
        Some("http://10.0.0.4:2380")
    );
    assert_eq!(
        drop_in.get("ETCD_ADVERTISE_CLIENT_URLS"),
        Some("http://10.0.0.4:2379")
    );
    assert_eq!(
        drop_in.get("ETCD_LISTEN_CLIENT_URLS"),
        Some("http://10.0.0.4:2379")
    );
    assert_eq!(drop_in.get("ETCD_CERT_FILE"), None);
    let text = drop_in.to_string();
    assert!(
        text.contains("[Service]\nEnvironment=\"ETCD_NAME=i-4\"\n"),
        "{text}"
    );

    let tls = EtcdTls {
        cert_file: "/etc/ssl/node/n.pem".into(),
        key_file: "/etc/ssl/node/n-key.pem".into(),
        trusted_ca_file: "/etc/ssl/certs/ca.pem".into(),
    };
    let client_tls = EtcdSettings {
        client_scheme: "https".into(),
        tls: Some(tls.clone()),
        ..settings()
    };
    let drop_in = render_drop_in(&client_tls, &me(), &[], InitialClusterState::New);
    assert_eq!(drop_in.get("ETCD_CERT_FILE"), Some("/etc/ssl/node/n.pem"));
    assert_eq!(drop_in.get("ETCD_CLIENT_CERT_AUTH"), Some("true"));
    assert_eq!(drop_in.get("ETCD_PEER_CERT_FILE"), None);
    assert_eq!(
        drop_in.get("ETCD_ADVERTISE_CLIENT_URLS"),
        Some("https://10.0.0.4:2379")
    );
    let https_without_certs = EtcdSettings {
        client_scheme: "https".into(),
        peer_scheme: "https".into(),
        ..settings()
    };
    let drop_in = render_drop_in(&https_without_certs, &me(), &[], InitialClusterState::New);
    assert_eq!(drop_in.get("ETCD_PEER_TRUSTED_CA_FILE"), None);
    let both = EtcdSettings {
        tls: Some(tls),
        ..https_without_certs
    };
    let drop_in = render_drop_in(&both, &me(), &[], InitialClusterState::New);
    assert_eq!(
        drop_in.get("ETCD_PEER_TRUSTED_CA_FILE"),
        Some("/etc/ssl/certs/ca.pem")
    );
    assert_eq!(drop_in.get("ETCD_INITIAL_CLUSTER_STATE"), Some("new"));
}

#[test]
fn quorum_sizes() {
    assert_eq!(
        [1, 2, 3, 4, 5].map(quorum),
        [1, 2, 2, 3, 3],
        "majority of voters"
    );
}
