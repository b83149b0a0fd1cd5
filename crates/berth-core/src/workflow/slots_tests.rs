//! `TargetSlots` over the in-memory target groups, with paused time.

use std::sync::Arc;
use std::time::Duration;

use super::slots::{JoinFailure, Slot, TargetSlots};
use crate::domain::{Target, TargetState, TargetType};
use crate::engine::{Engine, MembershipProviders};
use crate::memory::{DeregisterBehaviour, MemoryTargetGroups};
use crate::provider::PollPolicy;
use crate::Error;

const IP: &str = "10.0.0.7";

struct World {
    groups: Arc<MemoryTargetGroups>,
    slots: Vec<Slot>,
    workflow: TargetSlots,
}

fn world(registered: TargetState) -> World {
    let groups = Arc::new(
        MemoryTargetGroups::default()
            .registering_as(registered)
            .deregistering(DeregisterBehaviour::Drain),
    );
    let slots = [("web", 80), ("api", 8443)]
        .into_iter()
        .map(|(name, port)| Slot {
            group: groups.add_group(name, TargetType::Ip, Some(port)),
            target: Target::new(IP, port),
        })
        .collect();
    let providers = MembershipProviders::owned_by_construction(groups.clone());
    let workflow =
        TargetSlots::new(Engine::default(), providers).availability_zone(Some("all".into()));
    World {
        groups,
        slots,
        workflow,
    }
}

fn poll(deadline_secs: u64) -> PollPolicy {
    PollPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        deadline: Duration::from_secs(deadline_secs),
    }
}

impl World {
    fn state(&self, slot: usize) -> Option<TargetState> {
        let s = &self.slots[slot];
        self.groups.members(&s.group.arn).get(&s.target).copied()
    }
}

#[tokio::test(start_paused = true)]
async fn registers_where_missing_and_keeps_an_existing_registration() {
    let w = world(TargetState::Healthy);
    w.groups.set_state(
        &w.slots[0].group.arn,
        w.slots[0].target.clone(),
        TargetState::Healthy,
    );
    let plan = w.workflow.plan_registration(&w.slots).await.unwrap();
    assert_eq!(plan.changes.len(), 1, "{plan}");
    assert!(plan.to_string().contains("in api"), "{plan}");
    let report = w.workflow.register(&w.slots, poll(10)).await.unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(report.done(), 1);
    assert_eq!(w.groups.faults.calls("RegisterTargets"), 1);
    assert_eq!(w.state(1), Some(TargetState::Healthy));
    // Every call went through the engine's caller.
    let tally = w.workflow.engine().caller().tally();
    assert_eq!(tally.operations["RegisterTargets"].calls, 1);
    assert_eq!(tally.operations["DescribeTargetHealth"].calls, 4);
    // Owned by construction: no ownership is recorded, no call spent on it.
    assert!(!tally.operations.contains_key("ClaimTargets"), "{tally}");
}

#[tokio::test(start_paused = true)]
async fn a_draining_target_is_waited_out_and_only_then_registered() {
    let w = world(TargetState::Healthy);
    // web: draining from a previous life; api: registered and healthy (kept, and
    // never waited for: it will not leave).
    w.groups.set_state(
        &w.slots[0].group.arn,
        w.slots[0].target.clone(),
        TargetState::Draining,
    );
    w.groups.set_state(
        &w.slots[1].group.arn,
        w.slots[1].target.clone(),
        TargetState::Healthy,
    );
    let finisher = {
        let groups = w.groups.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(groups.faults.calls("RegisterTargets"), 0, "mid-drain");
            groups.finish_draining();
        })
    };
    let report = w.workflow.register(&w.slots, poll(10)).await.unwrap();
    finisher.await.unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(w.groups.faults.calls("RegisterTargets"), 1);
    assert_eq!(w.state(0), Some(TargetState::Healthy));
    assert_eq!(w.state(1), Some(TargetState::Healthy));
}

#[tokio::test(start_paused = true)]
async fn a_drain_past_the_bound_or_an_unreadable_group_registers_nothing() {
    let w = world(TargetState::Healthy);
    w.groups.set_state(
        &w.slots[1].group.arn,
        w.slots[1].target.clone(),
        TargetState::Draining,
    );
    let failure = w.workflow.register(&w.slots, poll(2)).await.unwrap_err();
    assert!(
        matches!(&failure, JoinFailure::StillDraining { group, error: Error::Timeout { .. } } if group == "api"),
        "{failure:?}"
    );

    let w = world(TargetState::Healthy);
    let denied = Error::AccessDenied {
        action: "elasticloadbalancing:DescribeTargetHealth".into(),
        message: "no".into(),
    };
    w.groups
        .faults
        .fail("DescribeTargetHealth", denied.clone(), 1);
    let failure = w.workflow.register(&w.slots, poll(2)).await.unwrap_err();
    assert_eq!(
        failure,
        JoinFailure::Unobserved {
            group: "web".into(),
            error: denied
        }
    );
    assert_eq!(failure.to_string(), "cannot read the targets of web");
    assert_eq!(w.groups.faults.calls("RegisterTargets"), 0);
}

#[tokio::test(start_paused = true)]
async fn waits_healthy_per_slot_and_reports_the_last_state() {
    let w = world(TargetState::Initial);
    w.workflow.register(&w.slots, poll(10)).await.unwrap();
    let (arn, target) = (w.slots[0].group.arn.clone(), w.slots[0].target.clone());
    let groups = w.groups.clone();
    let healthy = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        groups.set_state(&arn, target, TargetState::Healthy);
    });
    let waited = w.workflow.wait_healthy(&w.slots, poll(5)).await;
    healthy.await.unwrap();
    assert!(waited[0].as_ref().unwrap() >= &Duration::from_secs(2));
    assert!(
        matches!(waited[1], Err(Error::Timeout { .. })),
        "{waited:?}"
    );
    let last = w.workflow.state(&w.slots[1]).await.unwrap().unwrap();
    assert_eq!(last.state, TargetState::Initial);
}

#[tokio::test(start_paused = true)]
async fn deregisters_from_every_group_then_drains() {
    let w = world(TargetState::Healthy);
    w.workflow.register(&w.slots, poll(10)).await.unwrap();
    let leaving = w.workflow.deregister(&w.slots).await;
    assert_eq!(leaving.len(), 2);
    assert!(leaving.iter().all(|l| l.is_deregistered()));
    assert_eq!(w.state(0), Some(TargetState::Draining));
    assert_eq!(w.groups.faults.calls("DeregisterTargets"), 2);
    let groups = w.groups.clone();
    let finisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        groups.finish_draining();
    });
    let drained = futures::future::join_all(leaving.into_iter().map(|l| l.drain(poll(30)))).await;
    finisher.await.unwrap();
    for d in drained {
        let took = d.drain.expect("waited").expect("drained");
        assert!(took >= Duration::from_secs(4), "{took:?}");
    }
    assert!(w.groups.members(&w.slots[0].group.arn).is_empty());
    let tally = w.workflow.engine().caller().tally();
    assert!(!tally.operations.contains_key("ReleaseTargets"), "{tally}");
    assert!(
        tally.operations["DescribeTargetHealth"].calls >= 2,
        "{tally}"
    );
}
