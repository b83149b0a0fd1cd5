//! The compiled daemon meeting what must not crash-loop it: nodes it cannot place
//! (no Cast.ai label, no usable providerID).

mod common;

use std::time::Duration;

use berth_castai::fake::FakeCastAi;
use berth_castai::NODE_CONFIGURATION_LABEL;
use berth_kube::fake::ready_node;
use common::*;

const WAIT: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_without_the_castai_label_or_a_usable_provider_id_are_skipped_with_an_event() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    let castai = FakeCastAi::start("cluster-1", "key-1").expect("FakeCastAi");
    castai.set_target_groups("cfg-web", &[(&arn, None)]);
    let label = [(NODE_CONFIGURATION_LABEL, "cfg-web")];
    w.add_node("labelled", &instance(0), &label);
    w.add_node("unlabelled", &instance(1), &[]);
    let mut no_id = ready_node("no-provider-id", &instance(2), &label);
    no_id.spec.get_or_insert_with(Default::default).provider_id = None;
    w.kube.add_node(no_id);
    let mut garbage = ready_node("garbage-provider-id", &instance(3), &label);
    garbage
        .spec
        .get_or_insert_with(Default::default)
        .provider_id = Some("kind://docker/kind/worker-3".into());
    w.kube.add_node(garbage);
    let env = [
        ("CLUSTER_ID", "cluster-1"),
        ("CLUSTER_API_KEY", "key-1"),
        ("CASTAI_API_URL", &*castai.base_url()),
    ];
    let mut d = w.daemon(&["--mode", "cluster", "--sleep-interval", "1"], &env);
    let labelled = set([format!("{}:30080", instance(0))]);
    eventually(WAIT, "the labelled node registered", &d, || async {
        w.members(&arn).await == labelled
    })
    .await;
    let skipped = |node: &str, why: &str| {
        w.events_of(node)
            .iter()
            .any(|e| e.starts_with("Skipped:") && e.contains(why))
    };
    eventually(
        WAIT,
        "a Skipped Event on each node it cannot place",
        &d,
        || async {
            skipped("unlabelled", "matches no target group")
                && skipped("no-provider-id", "no EC2 instance id")
                && skipped("garbage-provider-id", "no EC2 instance id")
        },
    )
    .await;
    // Resyncs go on: no crash, nothing else registered.
    d.wait_passes(2, WAIT).await;
    assert!(d.is_running(), "{}", d.log_text());
    assert_eq!(d.metric("berth_daemon_skipped_nodes"), Some(3.0));
    assert_eq!(w.members(&arn).await, labelled);
    assert_eq!(d.get("/readyz").map(|r| r.0), Some(200));

    // Once labelled, the node is placed like any other.
    w.edit_node("unlabelled", |n| {
        n.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(NODE_CONFIGURATION_LABEL.into(), "cfg-web".into());
    });
    eventually(WAIT, "the newly labelled node registered", &d, || async {
        w.members(&arn).await.len() == 2
    })
    .await;
}
