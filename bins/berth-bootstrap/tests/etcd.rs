//! etcd membership through the compiled binary, against moto (the Auto Scaling group,
//! EC2, the DynamoDB marker) and real etcd 3.4 members on the instances' loopback IPs.
//!
//! NodeReg (seed 003) would fail each of these: it treated booting peers as absent,
//! bootstrapped a new cluster when no member answered, and removed stale members with
//! no quorum check.

mod etcd_world;

use std::time::Duration;

use etcd_world::{counts, Node, Run, World};

/// The run removed `stale`'s member and joined.
fn assert_replaced(run: &Run, stale: &Node) {
    run.assert_done();
    assert_eq!(
        run.membership()["removed"]["member"]["name"],
        stale.id.as_str()
    );
    assert_eq!(run.membership()["action"], "joined");
}

fn ids(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(|n| n.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_fresh_nodes_booting_together_form_one_cluster() {
    let (world, nodes) = World::formed().await;
    // Every node's etcd sees the same three members: one cluster, never two.
    assert_eq!(world.member_names(&nodes).await, ids(&nodes));
    let adapter = berth_etcd::EtcdAdapter::new(berth_etcd::EtcdClientConfig::default());
    let mut clusters = Vec::new();
    for node in &nodes {
        use berth_core::provider::EtcdMembership;
        let view = adapter
            .local_view(&world.client_url(node))
            .await
            .unwrap()
            .unwrap();
        clusters.push(view.cluster_id);
    }
    assert!(clusters.iter().all(|c| *c == clusters[0]), "{clusters:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_with_a_data_dir_changes_nothing_but_marks_the_cluster() {
    let (mut world, nodes) = World::formed().await;
    let before = world.members(&nodes).await;
    let drop_in = std::fs::read(world.drop_in(&nodes[0].id)).unwrap();

    world.etcd.stop(&nodes[0].id);
    let run = world.run(&nodes[0], &[]).await;
    run.assert_done();
    assert_eq!(run.membership()["action"], "restart");
    // The cluster formed by the first boot gets its marker once healthy.
    assert_eq!(run.membership()["marker_written"], true);
    assert_eq!(run.aws_calls().get("PutItem"), Some(&1));
    assert_eq!(std::fs::read(world.drop_in(&nodes[0].id)).unwrap(), drop_in);
    world.start_from_drop_in(&nodes[0]);
    assert_eq!(world.members(&nodes).await, before);

    // A second restart reads the marker and touches nothing else.
    world.etcd.stop(&nodes[0].id);
    let run = world.run(&nodes[0], &[]).await;
    run.assert_done();
    assert_eq!(run.membership()["marker_written"], false);
    assert_eq!(run.summary["modules"]["etcd"]["status"], "unchanged");
    // The identity's DescribeInstances and the marker read: no group, no etcd call.
    let calls: Vec<(String, u64)> = run.aws_calls().into_iter().collect();
    assert_eq!(
        calls,
        [
            ("DescribeInstances".to_owned(), 1),
            ("GetItem".to_owned(), 1)
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_node_joins_a_healthy_cluster() {
    let (mut world, nodes) = World::formed().await;
    let new = world.grow(&nodes).await;

    // A dry run first: nothing changes.
    let plan = world.run(&new, &["--dry-run"]).await;
    plan.assert_done();
    assert_eq!(plan.summary["modules"]["etcd"]["status"], "planned");
    assert!(!world.drop_in(&new.id).exists());
    assert_eq!(world.members(&nodes).await.len(), 3);

    let run = world.run(&new, &[]).await;
    run.assert_done();
    assert_eq!(run.membership()["action"], "joined");
    // The AWS calls of a join: identity (DescribeInstances), the group, its
    // instances' IPs, the marker read and its first write.
    let calls = run.aws_calls();
    eprintln!(
        "join: {} ms, AWS calls {calls:?}\n{}",
        run.elapsed.as_millis(),
        run.stderr
    );
    let expected = counts(&[
        ("DescribeAutoScalingGroups", 1),
        ("DescribeInstances", 2),
        ("GetItem", 1),
        ("PutItem", 1),
    ]);
    assert_eq!(calls, expected);
    let members = world.start_joined(&nodes, &new).await;
    assert_eq!(members.len(), 4);
    assert!(members.iter().all(|m| !m.name.is_empty()));

    // Run again (systemd restarted the unit): a restart now, nothing to do.
    world.etcd.stop(&new.id);
    let again = world.run(&new, &[]).await;
    assert_eq!(again.code, 0, "{}", again.summary);
    assert_eq!(again.membership()["action"], "restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_member_is_removed_when_quorum_holds() {
    let (mut world, nodes) = World::formed().await;
    // The instance behind the last member dies; the group replaces it.
    world.lose(&nodes[2]).await;
    let replacement = world.newcomer(&nodes).await;

    let run = world.run(&replacement, &[]).await;
    assert_replaced(&run, &nodes[2]);
    world.start_from_drop_in(&replacement);
    let through = [nodes[0].clone(), nodes[1].clone(), replacement.clone()];
    let mut expected = ids(&through);
    expected.sort();
    assert_eq!(world.member_names(&through).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_quorum_nothing_is_removed_and_no_cluster_is_created() {
    let (mut world, nodes) = World::formed().await;
    // A restart of a healthy member writes the "cluster created" marker.
    world.etcd.stop(&nodes[0].id);
    let restart = world.run(&nodes[0], &[]).await;
    assert_eq!(
        restart.membership()["marker_written"],
        true,
        "{}",
        restart.summary
    );
    world.start_from_drop_in(&nodes[0]);
    world.members(&nodes).await;

    // Two of three instances die: the survivor has no quorum.
    for dead in &nodes[1..] {
        world.lose(dead).await;
    }
    let replacement = world.newcomer(&nodes).await;
    let run = world.run(&replacement, &[]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.summary, run.stderr);
    let error = run.summary["error"].as_str().unwrap_or_default();
    assert!(error.contains("marker"), "{error}");
    assert!(
        run.elapsed < Duration::from_secs(60),
        "failed at once, no wait"
    );
    assert!(!world.drop_in(&replacement.id).exists());

    // The stale members are still there: nothing was removed without a quorum.
    world.etcd.kill(&nodes[0].id);
    for node in &nodes {
        world.start_from_drop_in(node);
    }
    assert_eq!(world.member_names(&nodes).await, ids(&nodes));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_member_answering_with_the_marker_fails_without_a_new_cluster() {
    let (mut world, nodes) = World::formed().await;
    world.etcd.stop(&nodes[1].id);
    let restart = world.run(&nodes[1], &[]).await;
    assert_eq!(restart.membership()["marker_written"], true);
    for node in &nodes {
        world.etcd.kill(&node.id);
    }
    // A node whose disk was replaced boots while no member runs.
    std::fs::remove_dir_all(world.etcd.data_dir(&nodes[2].id)).unwrap();
    let drop_in = std::fs::read(world.drop_in(&nodes[2].id)).unwrap();
    let run = world.run(&nodes[2], &[]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.summary, run.stderr);
    assert!(run.summary["error"].as_str().unwrap().contains("marker"));
    // Its drop-in still says "join the old cluster", never "new".
    assert_eq!(std::fs::read(world.drop_in(&nodes[2].id)).unwrap(), drop_in);
}

// The stale member's instance is gone and it does not answer, and the cluster answers
// a linearizable read; but one of the two members left answers nobody at its client
// URL (its client port is cut off), so the members berth sees answering would not
// make a quorum without the stale one: nothing is removed. Once that member answers
// again, the same run removes the stale member and joins.
#[tokio::test(flavor = "multi_thread")]
async fn a_removal_that_would_leave_no_visible_quorum_is_refused_then_done_once_it_holds() {
    let (mut world, nodes) = World::formed().await;
    // nodes[1] keeps voting (peer traffic) but its client URL answers nothing.
    world.etcd.stop(&nodes[1].id);
    let mut env = etcd_world::drop_in_env(&world, &nodes[1]);
    for (name, value) in &mut env {
        if name == "ETCD_LISTEN_CLIENT_URLS" {
            *value = format!(
                "http://{}:{}",
                nodes[1].ip,
                berth_testing::etcd::free_port()
            );
        }
    }
    world.etcd.start_with_env(&nodes[1].id, &env);
    world.lose(&nodes[2]).await;
    let replacement = world.newcomer(&nodes).await;
    // nodes[0] and nodes[1] still make a quorum of three.
    world.members(&nodes[..1]).await;

    let plan = world.run(&replacement, &["--dry-run"]).await;
    plan.assert_done();
    assert_eq!(plan.membership()["action"], "wait", "{}", plan.summary);
    assert!(plan.membership()["removed"].is_null());
    let waiting = plan.membership()["waiting"].as_str().unwrap_or_default();
    assert!(
        waiting.contains(&format!(
            "{}: 1 healthy voters would not make a quorum of 2",
            nodes[2].id
        )),
        "{waiting}"
    );

    let run = world.run(&replacement, &["--deadline", "6s"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.summary, run.stderr);
    let error = run.summary["error"].as_str().unwrap_or_default();
    assert!(error.contains("waiting for etcd membership"), "{error}");
    assert!(!world.drop_in(&replacement.id).exists());
    let names = world.member_names(&nodes[..1]).await;
    assert!(names.contains(&nodes[2].id), "nothing removed: {names:?}");
    assert_eq!(names.len(), 3);

    // Its client URL answers again: two healthy voters make a quorum of two.
    world.etcd.stop(&nodes[1].id);
    world.start_from_drop_in(&nodes[1]);
    world.members(&nodes[..2]).await;
    let run = world.run(&replacement, &[]).await;
    assert_replaced(&run, &nodes[2]);
}

// `etcd.learner: true`: the boot run adds this node as a learner and exits before etcd
// starts; `promote-learner`, run after etcd started, promotes it once it is in sync
// (etcd refuses MemberPromote until then: retried with backoff until the deadline).
#[tokio::test(flavor = "multi_thread")]
async fn a_learner_is_promoted_by_promote_learner_once_its_etcd_runs_in_sync() {
    let (mut world, nodes) = World::formed().await;
    let new = world.grow(&nodes).await;
    let learner = "  learner: true\n";

    let run = world.run_with(&new, learner, &[]).await;
    run.assert_done();
    assert_eq!(run.membership()["action"], "joined");
    assert_eq!(run.membership()["added"]["is_learner"], true);

    // Before its etcd runs: not promoted (a learner that is not running is never in
    // sync), and the step gives up at its deadline.
    let early = world
        .run_with(&new, learner, &["promote-learner", "--deadline", "5s"])
        .await;
    assert_eq!(early.code, 1, "{}\n{}", early.summary, early.stderr);
    let learners = |members: &[berth_core::provider::EtcdMember]| -> Vec<String> {
        members
            .iter()
            .filter(|m| m.is_learner)
            .map(|m| m.name.clone())
            .collect()
    };
    let members = world.members(&nodes).await;
    assert_eq!(members.len(), 4);
    assert_eq!(learners(&members), [""], "still an unstarted learner");

    world.start_from_drop_in(&new);
    let promote = world.run_with(&new, learner, &["promote-learner"]).await;
    promote.assert_done();
    assert_eq!(
        promote.membership()["action"],
        "promoted",
        "{}",
        promote.summary
    );
    assert_eq!(promote.membership()["promoted"], new.id.as_str());
    assert_eq!(
        promote.membership()["calls"]["calls"]["MemberPromote"],
        1,
        "{}",
        promote.summary
    );
    eprintln!(
        "promote-learner: MemberPromote attempts {}, waits {}",
        promote.membership()["calls"]["attempts"]["MemberPromote"],
        promote.membership()["waits"]
    );
    let members = world.members(&nodes).await;
    assert!(learners(&members).is_empty(), "{members:?}");
    assert!(members.iter().any(|m| m.name == new.id));

    // Again: it votes already; nothing is asked of etcd.
    let again = world.run_with(&new, learner, &["promote-learner"]).await;
    assert_eq!(again.code, 0, "{}", again.summary);
    assert_eq!(again.membership()["action"], "voter");
    assert!(again.membership()["calls"]["calls"]
        .get("MemberPromote")
        .is_none());
}
