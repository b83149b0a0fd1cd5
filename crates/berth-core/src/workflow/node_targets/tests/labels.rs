//! `NodeTargetsSettings::label_keys`: what a node cache may keep of the labels.

use super::*;
use crate::plan::EXCLUDE_FROM_LOAD_BALANCERS;

#[test]
fn the_label_keys_are_the_rules_the_configuration_and_the_exclusion_label() {
    let rig = Rig::new();
    let keys = rig.workflow(Scope::Cluster).settings().label_keys();
    let want: BTreeSet<String> = [
        "role",
        NODE_CONFIGURATION_LABEL,
        EXCLUDE_FROM_LOAD_BALANCERS,
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(keys, want);
}

#[tokio::test]
async fn nodes_with_only_the_label_keys_are_decided_as_the_whole_nodes() {
    let mut nodes = vec![
        node(1, Some("cfg-1"), false),
        node(2, Some("cfg-1"), true),
        node(3, None, true),
        node(4, None, false),
        node(5, None, true),
    ];
    nodes[4]
        .labels
        .insert(EXCLUDE_FROM_LOAD_BALANCERS.into(), "true".into());
    for (i, n) in nodes.iter_mut().enumerate() {
        n.labels
            .insert("kubernetes.io/hostname".into(), format!("ip-10-0-0-{i}"));
        n.labels
            .insert("topology.kubernetes.io/zone".into(), "us-east-1a".into());
    }
    let (whole, slim) = (Rig::new(), Rig::new());
    let slim_workflow = slim.workflow(Scope::Cluster);
    let keys = slim_workflow.settings().label_keys();
    let cut: Vec<Node> = nodes
        .iter()
        .map(|n| {
            let mut n = n.clone();
            n.labels.retain(|k, _| keys.contains(k));
            n
        })
        .collect();
    assert!(cut
        .iter()
        .all(|n| !n.labels.contains_key("kubernetes.io/hostname")));

    let by_whole = whole
        .workflow(Scope::Cluster)
        .pass(&nodes, t0())
        .await
        .unwrap();
    let by_slim = slim_workflow.pass(&cut, t0()).await.unwrap();
    assert_eq!(
        format!("{:?}", by_whole.verdicts),
        format!("{:?}", by_slim.verdicts)
    );
    for group in [&whole.web.arn, &whole.api.arn] {
        assert_eq!(whole.tg.members(group), slim.tg.members(group));
    }
    assert_eq!(
        whole.tg.members(&whole.api.arn).len(),
        2,
        "node 5 is excluded"
    );
}
