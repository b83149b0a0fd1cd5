//! The adapter against real etcd 3.4 members on loopback (berth-testing starts them).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use berth_core::provider::EtcdMembership;
use berth_core::Error;
use berth_etcd::{EtcdAdapter, EtcdClientConfig};
use berth_testing::etcd::{free_port, EtcdProcesses, MemberAddr};

/// Timeouts a loaded machine's etcd (a raft commit waits on an fsync) stays within;
/// only the test of a member without quorum waits one out.
fn adapter() -> EtcdAdapter {
    EtcdAdapter::new(EtcdClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        tls: None,
    })
}

/// Members `m<i>` on 127.0.<net>.<i>, sharing two free ports as instances would.
fn addrs(net: u8, count: u8) -> Vec<MemberAddr> {
    let (client_port, peer_port) = (free_port(), free_port());
    (1..=count)
        .map(|i| MemberAddr {
            name: format!("m{i}"),
            ip: IpAddr::from([127, 0, net, i]),
            client_port,
            peer_port,
        })
        .collect()
}

fn urls(members: &[MemberAddr]) -> Vec<String> {
    members.iter().map(MemberAddr::client_url).collect()
}

fn env_for(m: &MemberAddr, initial: &str, state: &str, token: &str) -> Vec<(String, String)> {
    vec![
        ("ETCD_NAME".into(), m.name.clone()),
        ("ETCD_INITIAL_CLUSTER".into(), initial.into()),
        ("ETCD_INITIAL_CLUSTER_STATE".into(), state.into()),
        ("ETCD_INITIAL_CLUSTER_TOKEN".into(), token.into()),
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS".into(), m.peer_url()),
        ("ETCD_LISTEN_PEER_URLS".into(), m.peer_url()),
        ("ETCD_ADVERTISE_CLIENT_URLS".into(), m.client_url()),
        ("ETCD_LISTEN_CLIENT_URLS".into(), m.client_url()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_cluster_answers_a_quorum_read_and_each_member_its_local_view() {
    let members = addrs(21, 3);
    let mut etcd = EtcdProcesses::new();
    etcd.start_cluster(&members, "adapter-healthy");
    let a = adapter();

    let listed = a.quorum_members(&urls(&members)).await.unwrap().unwrap();
    let mut names: Vec<&str> = listed.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["m1", "m2", "m3"]);
    assert!(listed
        .iter()
        .all(|m| !m.is_learner && m.client_urls.len() == 1));

    let view = a
        .local_view(&members[1].client_url())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.members.len(), 3);
    let m2 = listed.iter().find(|m| m.name == "m2").unwrap();
    assert_eq!(view.member_id, m2.id);
    assert_ne!(view.cluster_id, 0);

    // A dead first endpoint does not hide the live ones.
    let mut through = vec![format!("http://127.0.21.99:{}", free_port())];
    through.extend(urls(&members));
    assert!(a.quorum_members(&through).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_quorum_members_answer_locally_but_not_linearizably() {
    let members = addrs(22, 3);
    let mut etcd = EtcdProcesses::new();
    etcd.start_cluster(&members, "adapter-no-quorum");
    etcd.kill("m2");
    etcd.kill("m3");
    let a = adapter();
    assert_eq!(a.quorum_members(&urls(&members)).await.unwrap(), None);
    // The survivor still reports its data: no one may create a new cluster here.
    let view = a
        .local_view(&members[0].client_url())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.members.len(), 3);
    // Nothing listens there at all.
    assert_eq!(a.local_view(&members[1].client_url()).await.unwrap(), None);
    // A member that lost quorum is stopped all the same (SIGKILL after the grace).
    etcd.stop("m1");
    assert!(!etcd.is_running("m1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn membership_changes_follow_etcd_strict_reconfiguration() {
    let members = addrs(23, 4);
    let mut etcd = EtcdProcesses::new();
    etcd.start_cluster(&members[..3], "adapter-changes");
    let a = adapter();
    let endpoints = urls(&members[..3]);

    // A learner that never started cannot be promoted yet: a retryable refusal.
    // etcd answers "unhealthy cluster" until its members have been connected a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (learner, after) = loop {
        match a
            .add_member(&endpoints, &[members[3].peer_url()], true)
            .await
        {
            Ok(added) => break added,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("MemberAdd failed: {e:?}"),
        }
    };
    assert!(learner.is_learner);
    assert_eq!(learner.name, "");
    assert_eq!(after.len(), 4);
    let refused = a.promote_member(&endpoints, learner.id).await.unwrap_err();
    assert!(refused.is_retryable(), "{refused:?}");

    // Started with the existing cluster, it catches up and is promoted.
    let initial: Vec<String> = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect();
    etcd.start_with_env(
        "m4",
        &env_for(
            &members[3],
            &initial.join(","),
            "existing",
            "adapter-changes",
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match a.promote_member(&endpoints, learner.id).await {
            Ok(()) => break,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("promotion failed: {e:?}\n{}", etcd.log_tail("m4")),
        }
    }
    let listed = a.quorum_members(&endpoints).await.unwrap().unwrap();
    assert!(listed.iter().all(|m| !m.is_learner));

    // With a voter down, etcd refuses to add one: retryable, never a silent success.
    etcd.kill("m4");
    let refused = a
        .add_member(
            &endpoints,
            &[format!("http://127.0.23.9:{}", members[0].peer_port)],
            false,
        )
        .await
        .unwrap_err();
    assert!(refused.is_retryable(), "{refused:?}");

    // Removing the dead member is allowed; the list shrinks.
    a.remove_member(&endpoints, learner.id).await.unwrap();
    let listed = a.quorum_members(&endpoints).await.unwrap().unwrap();
    assert_eq!(listed.len(), 3);
    let missing = a.remove_member(&endpoints, learner.id).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_listening_is_no_cluster_not_an_error() {
    let a = adapter();
    let nowhere = vec![format!("http://127.0.24.1:{}", free_port())];
    assert_eq!(a.quorum_members(&nowhere).await.unwrap(), None);
    assert_eq!(a.local_view(&nowhere[0]).await.unwrap(), None);
    let err = a
        .add_member(&nowhere, &["http://127.0.24.2:2380".to_owned()], false)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}
