//! The compiled daemon in notice mode (`--mode notice`, a DaemonSet beside cluster
//! mode): on a spot interruption notice or a rebalance recommendation in IMDS (FakeImds,
//! IMDSv2 only) it taints its own Node (the fake API server) once, makes no AWS call
//! (its AWS endpoint is a FaultProxy that counts zero) and writes no ConfigMap; the
//! cluster-mode leader then deregisters that node's targets while the others stay.
//! When IMDS shows no notice of a kind (a stopped-and-started instance, at the pod's
//! start or later), it removes berth's own taint of that kind and no other, with an
//! Event; the leader registers the node again.

mod common;

use std::process::Command;
use std::time::Duration;

use berth_testing::imds::{FakeImds, SPOT_ACTION_PATH};
use berth_testing::FaultProxy;
use common::*;

const WAIT: Duration = Duration::from_secs(40);
const REBALANCE_PATH: &str = "/latest/meta-data/events/recommendations/rebalance";
const SPOT_TAINT: &str = "berth.dev/spot-interruption";
const REBALANCE_TAINT: &str = "berth.dev/rebalance-recommendation";

/// `key=effect` of every taint on `node`.
fn taints(w: &World, node: &str) -> Vec<String> {
    w.kube
        .node(node)
        .and_then(|n| n.spec)
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .map(|t| format!("{}={}", t.key, t.effect))
        .collect()
}

/// PATCH requests on Node `node` so far.
fn node_patches(w: &World, node: &str) -> usize {
    let path = format!("PATCH /api/v1/nodes/{node}");
    w.kube
        .requests()
        .iter()
        .filter(|r| r.starts_with(&path))
        .count()
}

/// A notice-mode pod on `node`: IMDS from `AWS_EC2_METADATA_SERVICE_ENDPOINT`, AWS at
/// `aws` (which must see nothing).
fn notice_pod(w: &World, node: &str, imds: &FakeImds, aws: &FaultProxy) -> Daemon {
    let aws = aws.endpoint();
    let imds = imds.endpoint();
    w.daemon(
        &["--mode", "notice", "--spot-poll", "100ms"],
        &[
            ("NODE_NAME", node),
            ("AWS_ENDPOINT_URL", &aws),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds),
            ("AWS_EC2_METADATA_DISABLED", "false"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notice_pods_taint_their_node_once_without_aws_and_the_leader_deregisters_it() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    for i in 0..3 {
        w.add_node(&format!("node-{i}"), &instance(i), &[("role", "web")]);
    }
    let member = |i: usize| format!("{}:30080", instance(i));
    let leader = w.cluster_daemon(WEB_CONFIG);
    eventually(WAIT, "3 nodes registered", &leader, || async {
        w.members(&arn).await.len() == 3
    })
    .await;

    // The notice pods' own AWS endpoint: a second proxy to the same moto.
    let notice_aws = FaultProxy::start(&w.moto.endpoint()).await;
    let (imds0, imds1) = (FakeImds::start(), FakeImds::start());
    let mut pod0 = notice_pod(&w, "node-0", &imds0, &notice_aws);
    let pod1 = notice_pod(&w, "node-1", &imds1, &notice_aws);
    eventually(WAIT, "both pods polling IMDS", &pod0, || async {
        imds0.gets(SPOT_ACTION_PATH) >= 3
            && imds0.gets(REBALANCE_PATH) >= 3
            && imds1.gets(SPOT_ACTION_PATH) >= 3
    })
    .await;
    assert_eq!(pod0.get("/readyz").map(|(s, _)| s), Some(200));
    assert!(taints(&w, "node-0").is_empty() && taints(&w, "node-1").is_empty());
    assert_eq!(node_patches(&w, "node-0") + node_patches(&w, "node-1"), 0);

    // A spot interruption for node-0: tainted once, however many polls follow.
    let when = std::time::SystemTime::now() + Duration::from_secs(120);
    imds0.set_spot_action(
        "terminate",
        &humantime::format_rfc3339_seconds(when).to_string(),
    );
    eventually(WAIT, "node-0 tainted", &pod0, || async {
        taints(&w, "node-0") == [format!("{SPOT_TAINT}=NoSchedule")]
    })
    .await;
    let polled = imds0.gets(SPOT_ACTION_PATH);
    eventually(WAIT, "20 more IMDS polls", &pod0, || async {
        imds0.gets(REBALANCE_PATH) >= polled + 20
    })
    .await;
    assert_eq!(node_patches(&w, "node-0"), 1, "{:?}", w.kube.requests());
    eventually(
        WAIT,
        "node-0 deregistered by the leader",
        &leader,
        || async { w.members(&arn).await == set([member(1), member(2)]) },
    )
    .await;
    // The leader publishes its Events off the pass, after its AWS calls: waited for.
    eventually(
        WAIT,
        "node-0's Deregistering Event naming the taint",
        &leader,
        || async {
            w.events_of("node-0")
                .iter()
                .any(|e| e.starts_with("Deregistering") && e.contains(SPOT_TAINT))
        },
    )
    .await;

    // A rebalance recommendation for node-1: tainted PreferNoSchedule, and it leaves.
    imds1.route(
        REBALANCE_PATH,
        200,
        r#"{"noticeTime": "2024-05-01T10:02:00Z"}"#,
    );
    eventually(WAIT, "node-1 tainted", &pod1, || async {
        taints(&w, "node-1") == [format!("{REBALANCE_TAINT}=PreferNoSchedule")]
    })
    .await;
    eventually(WAIT, "node-1 deregistered", &leader, || async {
        w.members(&arn).await == set([member(2)])
    })
    .await;
    assert_eq!(node_patches(&w, "node-1"), 1);
    // The pod counts the taint once its PATCH is answered, which the leader need not
    // wait for: waited for.
    let taint_line = format!("berth_daemon_notice_taints_total{{taint=\"{REBALANCE_TAINT}\"}} 1");
    eventually(WAIT, "node-1's taint counted once", &pod1, || async {
        pod1.metrics().contains(&taint_line)
    })
    .await;
    assert!(pod1.metrics().contains(&taint_line), "{}", pod1.metrics());

    // A restarted pod sees the notice again and finds the taint: nothing written.
    assert_eq!(pod0.terminate(), Some(0), "{}", pod0.log_text());
    let pod0 = notice_pod(&w, "node-0", &imds0, &notice_aws);
    eventually(WAIT, "the restarted pod found the taint", &pod0, || async {
        pod0.log_text()
            .contains("the node already carries the notice taints")
    })
    .await;
    assert_eq!(node_patches(&w, "node-0"), 1);
    assert_eq!(taints(&w, "node-0"), [format!("{SPOT_TAINT}=NoSchedule")]);

    // Later resyncs keep both out and node-2 in.
    leader.wait_passes(2, WAIT).await;
    assert_eq!(w.members(&arn).await, set([member(2)]));
    // Notice pods: no AWS call, no ConfigMap of their own, IMDSv2 only.
    assert_eq!(notice_aws.total(), 0, "{:?}", notice_aws.counts());
    for node in ["node-0", "node-1"] {
        assert_eq!(w.owned(&format!("berth-daemon-node-{node}")), None);
    }
    for imds in [&imds0, &imds1] {
        let seen = imds.requests();
        assert!(seen.rejected.is_empty(), "{:?}", seen.rejected);
    }
    assert!(
        pod1.log_text().contains("no AWS API call"),
        "{}",
        pod1.log_text()
    );
}

/// Sets `node`'s taints (`key`, `effect`).
fn set_taints(w: &World, node: &str, taints: &[(&str, &str)]) {
    w.edit_node(node, |n| {
        n.spec.get_or_insert_with(Default::default).taints = Some(
            taints
                .iter()
                .map(|(key, effect)| k8s_openapi::api::core::v1::Taint {
                    key: (*key).into(),
                    effect: (*effect).into(),
                    ..Default::default()
                })
                .collect(),
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berths_taint_goes_when_imds_shows_no_notice_and_the_leader_takes_the_node_back() {
    const NTH_TAINT: &str = "aws-node-termination-handler/rebalance-recommendation";
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    for i in 0..4 {
        w.add_node(&format!("node-{i}"), &instance(i), &[("role", "web")]);
    }
    let member = |i: usize| format!("{}:30080", instance(i));
    // node-0: a spot instance stopped by an interruption and started again, still
    // carrying berth's taint, and a taint of its own. node-1: berth's rebalance taint
    // and NTH's. node-2: both of berth's taints, both notices still in its IMDS.
    set_taints(
        &w,
        "node-0",
        &[("dedicated", "NoSchedule"), (SPOT_TAINT, "NoSchedule")],
    );
    set_taints(
        &w,
        "node-1",
        &[
            (REBALANCE_TAINT, "PreferNoSchedule"),
            (NTH_TAINT, "NoSchedule"),
        ],
    );
    set_taints(
        &w,
        "node-2",
        &[
            (SPOT_TAINT, "NoSchedule"),
            (REBALANCE_TAINT, "PreferNoSchedule"),
        ],
    );
    let leader = w.cluster_daemon(WEB_CONFIG);
    eventually(WAIT, "only node-3 registered", &leader, || async {
        w.members(&arn).await == set([member(3)])
    })
    .await;
    leader.wait_passes(1, WAIT).await;
    assert_eq!(w.members(&arn).await, set([member(3)]));

    let notice_aws = FaultProxy::start(&w.moto.endpoint()).await;
    let (imds0, imds1, imds2) = (FakeImds::start(), FakeImds::start(), FakeImds::start());
    imds2.set_spot_action("stop", "2026-11-27T20:00:00Z");
    imds2.route(
        REBALANCE_PATH,
        200,
        r#"{"noticeTime": "2026-11-27T19:58:00Z"}"#,
    );
    let pod0 = notice_pod(&w, "node-0", &imds0, &notice_aws);
    let pod1 = notice_pod(&w, "node-1", &imds1, &notice_aws);
    let pod2 = notice_pod(&w, "node-2", &imds2, &notice_aws);

    // At start, IMDS shows no notice: berth's taint goes, the node's own stays, and the
    // leader registers it again.
    eventually(
        WAIT,
        "berth's spot taint removed from node-0",
        &pod0,
        || async { taints(&w, "node-0") == ["dedicated=NoSchedule"] },
    )
    .await;
    eventually(WAIT, "node-0 registered again", &leader, || async {
        w.members(&arn).await == set([member(0), member(3)])
    })
    .await;
    // Only berth's rebalance taint leaves node-1: NTH's stays, and keeps it out.
    eventually(
        WAIT,
        "berth's rebalance taint removed from node-1",
        &pod1,
        || async { taints(&w, "node-1") == [format!("{NTH_TAINT}=NoSchedule")] },
    )
    .await;
    // pod-0 counts, logs and publishes its removal after its PATCH, which the waits
    // above do not order: waited for.
    let removed_line =
        format!("berth_daemon_notice_taints_removed_total{{taint=\"{SPOT_TAINT}\"}} 1");
    eventually(
        WAIT,
        "pod-0's removal counted, logged and in an Event",
        &pod0,
        || async {
            w.events_of("node-0")
                .iter()
                .any(|e| e.starts_with("NoticeTaintRemoved") && e.contains(SPOT_TAINT))
                && pod0.log_text().contains("removed berth's notice taint")
                && pod0.metrics().contains(&removed_line)
        },
    )
    .await;
    // node-2's notices are still pending: its taints stay, nothing is written.
    eventually(WAIT, "pod-2 polled IMDS 5 times", &pod2, || async {
        imds2.gets(REBALANCE_PATH) >= 5
    })
    .await;
    assert_eq!(
        taints(&w, "node-2"),
        [
            format!("{SPOT_TAINT}=NoSchedule"),
            format!("{REBALANCE_TAINT}=PreferNoSchedule")
        ]
    );
    assert_eq!(node_patches(&w, "node-2"), 0, "{:?}", w.kube.requests());
    // Logged by pod-2's taint loop, which the IMDS polls above do not order: waited for.
    eventually(WAIT, "pod-2 found its taints in place", &pod2, || async {
        pod2.log_text()
            .contains("the node already carries the notice taints")
    })
    .await;

    // Later: an interruption announced on node-0 taints it (with an Event), the
    // leader takes it out; the notice withdrawn, the taint goes and it comes back.
    imds0.set_spot_action("stop", "2026-11-27T20:00:00Z");
    eventually(WAIT, "node-0 tainted", &pod0, || async {
        taints(&w, "node-0")
            == [
                "dedicated=NoSchedule".to_owned(),
                format!("{SPOT_TAINT}=NoSchedule"),
            ]
    })
    .await;
    eventually(WAIT, "node-0 deregistered", &leader, || async {
        w.members(&arn).await == set([member(3)])
    })
    .await;
    imds0.clear_spot_action();
    eventually(WAIT, "node-0 untainted", &pod0, || async {
        taints(&w, "node-0") == ["dedicated=NoSchedule"]
    })
    .await;
    eventually(WAIT, "node-0 registered once more", &leader, || async {
        w.members(&arn).await == set([member(0), member(3)])
    })
    .await;
    let events = w.events_of("node-0");
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("NoticeTaintAdded") && e.contains(SPOT_TAINT)),
        "{events:?}"
    );
    // Three patches on node-0 (remove, add, remove); one on node-1; nothing in AWS.
    assert_eq!(node_patches(&w, "node-0"), 3, "{:?}", w.kube.requests());
    assert_eq!(node_patches(&w, "node-1"), 1, "{:?}", w.kube.requests());
    leader.wait_passes(2, WAIT).await;
    assert_eq!(w.members(&arn).await, set([member(0), member(3)]));
    assert_eq!(notice_aws.total(), 0, "{:?}", notice_aws.counts());
    drop((pod1, pod2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_pod_is_not_ready_until_it_can_read_its_node() {
    let w = World::new().await;
    let aws = FaultProxy::start(&w.moto.endpoint()).await;
    let imds = FakeImds::start();
    let pod = notice_pod(&w, "node-0", &imds, &aws);
    eventually(WAIT, "not ready, saying why", &pod, || async {
        pod.get("/readyz")
            .is_some_and(|(status, body)| status == 503 && body.contains("cannot read its Node"))
    })
    .await;
    // Readiness is set just before the warning is logged.
    eventually(WAIT, "the warning logged", &pod, || async {
        pod.log_text().contains("cannot read the Node")
    })
    .await;
    w.add_node("node-0", &instance(0), &[]);
    eventually(WAIT, "ready once the Node exists", &pod, || async {
        pod.get("/readyz").is_some_and(|(status, _)| status == 200)
    })
    .await;
    assert_eq!(aws.total(), 0, "{:?}", aws.counts());
    assert_eq!(node_patches(&w, "node-0"), 0);
}

#[test]
fn help_explains_the_three_modes_and_notice_mode_needs_its_node() {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-daemon"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for text in ["node:", "cluster:", "notice:", "--mode notice", "taint"] {
        assert!(help.contains(text), "{text:?} missing from:\n{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_berth-daemon"))
        .args(["--mode", "notice", "--cluster-name", "c"])
        .env_remove("NODE_NAME")
        .env_remove("BERTH_MODE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--mode notice needs NODE_NAME"), "{stderr}");
}
