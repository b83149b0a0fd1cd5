//! A notice taint removed (notice mode's `plan_notice_taints` on a restarted instance
//! whose IMDS shows no notice) puts the node back: the leaving rule holds only while the
//! taint is there.

use super::*;

#[tokio::test]
async fn a_node_whose_notice_taint_is_removed_serves_again() {
    for notice in InstanceNotice::ALL {
        let rig = Rig::new();
        let w = rig.workflow(Scope::Cluster);
        let mut nodes = [node(1, Some("cfg-1"), false), node(2, Some("cfg-1"), false)];
        nodes[0].taints.push(crate::domain::Taint::new(
            "dedicated",
            crate::domain::TaintEffect::NoSchedule,
        ));
        w.pass(&nodes, t0()).await.unwrap();
        let pending = NoticeStates::from([(notice, NoticeState::Pending)]);
        let change = plan_notice_taints(&nodes[0].taints, &pending);
        nodes[0].taints.extend(change.add);
        let out = w.pass(&nodes, t0()).await.unwrap();
        assert_eq!(out.plan.count("deregister"), 1, "{notice}: {}", out.plan);
        rig.tg.finish_draining();
        let still = w.pass(&nodes, t0()).await.unwrap();
        assert!(still.plan.is_empty(), "{notice}: {}", still.plan);

        // The instance came back and IMDS shows no such notice: berth's taint goes, the
        // foreign one stays, and the next pass registers the node again.
        let absent = NoticeStates::from([(notice, NoticeState::Absent)]);
        let change = plan_notice_taints(&nodes[0].taints, &absent);
        assert_eq!(change.remove, vec![notice.taint()], "{notice}");
        nodes[0].taints.retain(|t| !change.remove.contains(t));
        assert!(nodes[0].has_taint("dedicated"));
        let back = w.pass(&nodes, t0()).await.unwrap();
        assert_eq!(back.plan.count("register"), 1, "{notice}: {}", back.plan);
        assert!(
            back.notices.iter().any(|n| matches!(
                n,
                Notice::Registered { node: Some(node), target: t, .. }
                    if node == "node-1" && *t == target(1, 80)
            )),
            "{notice}: {:?}",
            back.notices
        );
        assert_eq!(
            rig.tg.members(&rig.web.arn).get(&target(1, 80)),
            Some(&TargetState::Healthy),
            "{notice}"
        );
    }
}
