//! Drains followed (paused time) and when a pass asks to run again.

use std::time::Duration;

use super::*;

/// node-1 (configuration `cfg-1`: in `web`, whose delay is 45 s) registered by a first
/// pass of a cluster-scope workflow.
struct Registered {
    rig: Rig,
    w: NodeTargets,
    n: Node,
}

impl Registered {
    async fn new() -> Registered {
        let rig = Rig::new();
        let w = rig.workflow(Scope::Cluster);
        let n = node(1, Some("cfg-1"), false);
        w.pass(std::slice::from_ref(&n), t0()).await.unwrap();
        Registered { rig, w, n }
    }

    /// A pass over node-1 as it is now.
    async fn pass(&self) -> Pass {
        self.w
            .pass(std::slice::from_ref(&self.n), t0())
            .await
            .unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn a_cordon_deregisters_and_the_drain_is_waited_for_the_real_delay() {
    let mut r = Registered::new().await;
    r.n.unschedulable = true;
    let pass = r.pass().await;
    assert!(pass.converged());
    assert!(pass.notices.iter().any(|x| matches!(
        x,
        Notice::Deregistering { node: Some(node), why, delay: Some(d), .. }
            if node == "node-1" && why == "leave: cordoned" && *d == Duration::from_secs(45)
    )));
    assert_eq!(pass.drains.len(), 1);
    assert_eq!(r.w.draining(), 1);
    // Planned again while draining: not deregistered again, not waited for twice.
    let again = r.pass().await;
    assert!(again.plan.is_empty() && again.drains.is_empty());
    let mut pass = pass;
    let wait = tokio::spawn(pass.drains.pop().unwrap().wait());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!wait.is_finished(), "still draining");
    r.rig.tg.finish_draining();
    let notices = wait.await.unwrap();
    assert_eq!(notices.len(), 1);
    let Notice::Drained { node, took, .. } = &notices[0] else {
        panic!("{notices:?}")
    };
    assert_eq!(node.as_deref(), Some("node-1"));
    assert!(
        *took >= Duration::from_secs(30) && *took <= Duration::from_secs(36),
        "seen gone at the next poll: {took:?}"
    );
    assert_eq!(r.w.draining(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_drain_never_seen_to_end_gives_up_after_the_delay_plus_the_deadline() {
    let mut r = Registered::new().await;
    r.n.labels.insert(
        crate::plan::EXCLUDE_FROM_LOAD_BALANCERS.into(),
        "true".into(),
    );
    let mut pass = r.pass().await;
    let started = tokio::time::Instant::now();
    let notices = pass.drains.pop().unwrap().wait().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(45 + 20) && waited < Duration::from_secs(45 + 21),
        "the delay (45 s) plus the poll deadline (20 s): {waited:?}"
    );
    assert!(matches!(
        &notices[..],
        [Notice::DrainNotConfirmed {
            error: Error::Timeout { .. },
            ..
        }]
    ));
    assert_eq!(r.w.draining(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_group_that_cannot_be_looked_up_is_not_waited_for_on_a_guess() {
    let r = Registered::new().await;
    // Node deleted: web is only known from ownership, and its lookup is refused.
    let denied = Error::AccessDenied {
        action: "elasticloadbalancing:DescribeTargetGroupAttributes".into(),
        message: "no".into(),
    };
    r.rig
        .tg
        .faults
        .fail("DescribeTargetGroupAttributes", denied, 1);
    let pass = r.w.pass(&[], t0()).await.unwrap();
    assert_eq!(pass.report.done(), 1, "{}", pass.report);
    assert!(pass.drains.is_empty(), "no wait on a guessed delay");
    assert!(pass
        .notices
        .iter()
        .any(|n| matches!(n, Notice::Deregistering { delay: None, .. })));
    assert_eq!(pass.requeue_after, Some(DRAIN_RECHECK));
    assert_eq!(r.w.draining(), 1);
    // The next pass observes the group although nothing else points at it.
    let still = r.w.pass(&[], t0()).await.unwrap();
    assert_eq!(still.requeue_after, Some(DRAIN_RECHECK));
    assert!(still.notices.is_empty(), "{:?}", still.notices);
    tokio::time::advance(Duration::from_secs(30)).await;
    r.rig.tg.finish_draining();
    let done = r.w.pass(&[], t0()).await.unwrap();
    assert!(done.notices.iter().any(|n| matches!(
        n,
        Notice::Drained { node: None, took, .. } if *took == Duration::from_secs(30)
    )));
    assert_eq!(done.requeue_after, None);
    assert_eq!(r.w.draining(), 0);
}

#[tokio::test]
async fn not_ready_within_the_grace_holds_and_asks_for_a_pass_when_it_ends() {
    let mut r = Registered::new().await;
    r.n.ready = false;
    r.n.ready_since = Some(t0() - Duration::from_secs(120));
    let pass = r.pass().await;
    assert!(pass.plan.is_empty(), "{}", pass.plan);
    assert!(
        pass.converged(),
        "a NotReady node within its grace is not a failure"
    );
    assert_eq!(
        pass.requeue_after,
        Some(Duration::from_secs(300 - 120) + Duration::from_millis(100))
    );
    assert!(pass.notices.iter().any(|x| matches!(
        x,
        Notice::Held { reason: HoldReason::NotReadyWithinGrace { grace }, .. } if *grace == Duration::from_secs(300)
    )));
    let late =
        r.w.pass(std::slice::from_ref(&r.n), t0() + Duration::from_secs(181))
            .await
            .unwrap();
    assert_eq!(late.plan.count("deregister"), 1, "{}", late.plan);
    assert_eq!(late.requeue_after, None);
    assert_eq!(
        grace_expiry(&[r.n.clone()], Duration::from_secs(300), t0()),
        Some(Duration::from_millis(180_100))
    );
    r.n.ready_since = None;
    assert_eq!(
        grace_expiry(&[r.n], Duration::from_secs(300), t0()),
        None,
        "NotReady since an unknown time: nothing to count down"
    );
}

#[tokio::test]
async fn a_wanted_target_still_draining_asks_for_a_recheck() {
    let mut r = Registered::new().await;
    r.n.unschedulable = true;
    r.pass().await;
    r.n.unschedulable = false;
    let back = r.pass().await;
    assert!(
        back.plan.is_empty(),
        "never re-registered mid-drain: {}",
        back.plan
    );
    assert_eq!(
        back.requeue_after,
        Some(DRAIN_RECHECK),
        "min(45 s delay, 30 s)"
    );
    r.rig.tg.finish_draining();
    let after = r.pass().await;
    assert_eq!(after.report.done(), 1, "{}", after.report);
}

#[tokio::test(start_paused = true)]
async fn a_drain_wait_never_run_is_followed_by_the_passes() {
    let mut r = Registered::new().await;
    r.n.unschedulable = true;
    let pass = r.pass().await;
    assert_eq!(pass.drains.len(), 1);
    assert_eq!(pass.requeue_after, None, "the wait answers for the drain");
    drop(pass);
    assert_eq!(r.w.draining(), 1, "still followed, by the passes now");
    let next = r.pass().await;
    assert_eq!(next.requeue_after, Some(DRAIN_RECHECK));
    assert!(next.drains.is_empty(), "{:?}", next.drains);
    r.rig.tg.finish_draining();
    let done = r.pass().await;
    assert!(done.notices.iter().any(|x| matches!(
        x,
        Notice::Drained { node: Some(node), .. } if node == "node-1"
    )));
    assert_eq!(r.w.draining(), 0);
}
