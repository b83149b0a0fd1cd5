//! A target removed by someone else between the pass's observation and its
//! deregistration: reported already absent, never as deregistering.

use async_trait::async_trait;

use super::*;
use crate::domain::{Registration, TargetGroupArn, TargetHealth};
use crate::provider::Deregistered;

/// The rig's target groups, where each deregistered target is first removed by
/// another system (so the deregistration finds it absent).
struct RemovedFirst(Arc<MemoryTargetGroups>);

#[async_trait]
impl TargetGroups for RemovedFirst {
    async fn resolve(&self, group: &TargetGroupRef) -> Result<TargetGroup> {
        self.0.resolve(group).await
    }
    async fn health(&self, group: &TargetGroupArn) -> Result<Vec<TargetHealth>> {
        self.0.health(group).await
    }
    async fn register(&self, group: &TargetGroupArn, targets: &[Registration]) -> Result<()> {
        self.0.register(group, targets).await
    }
    async fn deregister(&self, group: &TargetGroupArn, targets: &[Target]) -> Result<Deregistered> {
        for t in targets {
            self.0.remove(group, t);
        }
        self.0.deregister(group, targets).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_target_gone_before_its_deregistration_is_reported_already_absent() {
    let rig = Rig::new();
    let w = rig.workflow_over(Scope::Cluster, Arc::new(RemovedFirst(rig.tg.clone())));
    let mut n = node(1, Some("cfg-1"), false);
    w.pass(std::slice::from_ref(&n), t0()).await.unwrap();
    assert!(rig.tg.members(&rig.web.arn).contains_key(&target(1, 80)));

    n.unschedulable = true;
    let pass = w.pass(std::slice::from_ref(&n), t0()).await.unwrap();

    assert_eq!(pass.plan.count("deregister"), 1, "{}", pass.plan);
    assert!(pass.report.is_success(), "{}", pass.report);
    assert_eq!(pass.report.already(), 1, "{}", pass.report);
    let absent: Vec<&Notice> = pass
        .notices
        .iter()
        .filter(|x| matches!(x, Notice::AlreadyAbsent { .. }))
        .collect();
    assert!(
        matches!(
            absent.as_slice(),
            [Notice::AlreadyAbsent { node: Some(node), target: t, why, .. }]
                if node == "node-1" && *t == target(1, 80) && why == "leave: cordoned"
        ),
        "{:?}",
        pass.notices
    );
    assert!(
        absent[0]
            .to_string()
            .contains("already absent from target group web"),
        "{}",
        absent[0]
    );
    assert_eq!(
        count(&pass, |x| matches!(x, Notice::Deregistering { .. })),
        0,
        "nothing was deregistered"
    );
    assert!(pass.drains.is_empty(), "nothing to drain");
    assert_eq!(w.draining(), 0);
    assert!(
        !rig.ownership
            .owned()
            .await
            .unwrap()
            .get(&rig.web.arn)
            .is_some_and(|t| t.contains(&target(1, 80))),
        "its ownership is released all the same"
    );
    let again = w.pass(std::slice::from_ref(&n), t0()).await.unwrap();
    assert!(again.plan.is_empty(), "{}", again.plan);
}
