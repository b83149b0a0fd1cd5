//! Upgrading from the owner id `berth-daemon/<cluster>` to `berth/<installation>/daemon`:
//! what the old release recorded in its ownership ConfigMap is adopted — treated as
//! berth's and re-recorded under the new owner — so the upgrade deregisters nothing
//! wrongly and orphans nothing.

mod common;

use std::time::Duration;

use berth_core::domain::{Owner, Target, TargetGroupArn};
use berth_core::provider::TargetOwnership;
use berth_kube::ownership::{ConfigMapOwnership, OWNER_ANNOTATION};
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;

const WAIT: Duration = Duration::from_secs(40);

fn old_owner() -> Owner {
    Owner::new("berth-daemon/e2e").unwrap()
}

fn new_owner() -> Owner {
    Owner::new("berth/default/daemon").unwrap()
}

fn targets(ids: &[usize]) -> Vec<Target> {
    ids.iter()
        .map(|&i| Target::new(instance(i), 30080))
        .collect()
}

fn owner_of(w: &World, config_map: &str) -> Option<String> {
    let cm: ConfigMap = w.kube.get(Some("default"), config_map)?;
    cm.metadata.annotations?.get(OWNER_ANNOTATION).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_adopts_the_old_owners_config_map() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    let group = TargetGroupArn::new(&arn).unwrap();
    for i in 0..3 {
        w.add_node(&format!("node-{i}"), &instance(i), &[("role", "web")]);
    }
    // What the previous release left: nodes 0-2 and a node since deleted (3)
    // registered and recorded under `berth-daemon/e2e`, beside a foreign target.
    for i in 0..4 {
        w.register_foreign(&arn, &instance(i), 30080).await;
    }
    w.register_foreign(&arn, "i-0f0f0f0f0f0f0f0f0", 30080).await;
    ConfigMapOwnership::new(w.kube.client(), "default", old_owner())
        .claim(&group, &targets(&[0, 1, 2, 3]))
        .await
        .unwrap();
    let old_map = ConfigMapOwnership::config_map_name(&old_owner());
    let new_map = ConfigMapOwnership::config_map_name(&new_owner());
    w.proxy.reset_counts();

    let d = w.cluster_daemon(WEB_CONFIG);
    // The deleted node's target is berth's (adopted), so it goes; the foreign one stays.
    let kept = set([0, 1, 2].map(|i| format!("{}:30080", instance(i))));
    let mut with_foreign = kept.clone();
    with_foreign.insert("i-0f0f0f0f0f0f0f0f0:30080".to_owned());
    eventually(WAIT, "node-3's adopted target deregistered", &d, || async {
        w.members(&arn).await == with_foreign
    })
    .await;
    d.wait_passes(2, WAIT).await;
    assert_eq!(w.members(&arn).await, with_foreign);
    // Nodes 0-2 were never deregistered (they would have been registered again).
    assert_eq!(
        w.proxy.count("RegisterTargets"),
        0,
        "{:?}",
        w.proxy.counts()
    );
    assert_eq!(
        w.proxy.count("DeregisterTargets"),
        1,
        "{:?}",
        w.proxy.counts()
    );
    // Re-recorded under the new owner; the old ConfigMap retired.
    assert_eq!(
        w.owned(&new_map),
        Some(kept),
        "{}",
        tail(&d.log_text(), 4000)
    );
    assert_eq!(w.owned(&old_map), None);
    assert_eq!(
        owner_of(&w, &new_map).as_deref(),
        Some(new_owner().as_str())
    );
    for i in 0..3 {
        let events = w.events_of(&format!("node-{i}"));
        assert!(
            !events.iter().any(|e| e.starts_with("Deregistering")),
            "{events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_mode_adopts_its_node_config_map_and_still_deregisters_on_cordon() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    let group = TargetGroupArn::new(&arn).unwrap();
    w.add_node("node-1", &instance(1), &[("role", "web")]);
    w.register_foreign(&arn, &instance(1), 30080).await;
    let map = "berth-daemon-node-node-1";
    ConfigMapOwnership::with_name(w.kube.client(), "default", map, old_owner())
        .claim(&group, &targets(&[1]))
        .await
        .unwrap();
    w.proxy.reset_counts();

    let config = w.write("config.yaml", WEB_CONFIG);
    let d = w.daemon(
        &[
            "--mode",
            "node",
            "--config",
            config.to_str().unwrap(),
            "--imds-endpoint",
            "http://127.0.0.1:9",
            "--sleep-interval",
            "1",
        ],
        &[("NODE_NAME", "node-1")],
    );
    let mine = set([format!("{}:30080", instance(1))]);
    eventually(
        WAIT,
        "the node's ConfigMap moved under the new owner",
        &d,
        || async { owner_of(&w, map).as_deref() == Some(new_owner().as_str()) },
    )
    .await;
    d.wait_passes(2, WAIT).await;
    assert_eq!(w.members(&arn).await, mine);
    assert_eq!(w.owned(map), Some(mine));
    assert_eq!(
        w.proxy.count("RegisterTargets"),
        0,
        "{:?}",
        w.proxy.counts()
    );
    assert_eq!(
        w.proxy.count("DeregisterTargets"),
        0,
        "{:?}",
        w.proxy.counts()
    );

    // The adopted target is berth's: a cordon deregisters it and forgets it.
    w.edit_node("node-1", |n| {
        n.spec.get_or_insert_with(Default::default).unschedulable = Some(true)
    });
    eventually(WAIT, "node-1 deregistered on cordon", &d, || async {
        w.members(&arn).await.is_empty() && w.owned(map).unwrap_or_default().is_empty()
    })
    .await;
}
