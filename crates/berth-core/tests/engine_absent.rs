//! Deregistering targets a group no longer has: success (idempotent, ownership
//! released), but reported as already absent, never as deregistered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::{Owner, Registration, Target, TargetGroupArn, TargetType};
use berth_core::engine::{ApplyOptions, Engine, MembershipProviders, RetryPolicy};
use berth_core::memory::{MemoryLedger, MemoryTargetGroups};
use berth_core::plan::{MembershipChange, Plan};
use berth_core::provider::{
    Deregistered, LedgerOwnership, MockTargetGroups, PollPolicy, TargetGroups, TargetOwnership,
};
use berth_core::Error;

struct World {
    tg: Arc<MemoryTargetGroups>,
    ownership: Arc<LedgerOwnership<Arc<MemoryLedger>>>,
    engine: Engine,
    group: TargetGroupArn,
}

impl World {
    /// `web` with `a` and `b` registered by berth (claimed in the ownership store).
    async fn new() -> World {
        let tg = Arc::new(MemoryTargetGroups::default());
        let group = tg.add_group("web", TargetType::Ip, Some(80)).arn;
        let world = World {
            tg,
            ownership: Arc::new(LedgerOwnership::new(
                Arc::new(MemoryLedger::default()),
                Owner::new("berth/test").unwrap(),
            )),
            engine: Engine::new(ApplyOptions::default()),
            group,
        };
        let mut plan = Plan::default();
        plan.push(MembershipChange::Register {
            group: world.group.clone(),
            targets: vec![Registration::from(a()), Registration::from(b())],
        });
        let report = world.engine.apply(&world.providers(), &plan).await;
        assert!(report.is_success(), "{report}");
        world
    }

    fn providers(&self) -> MembershipProviders {
        MembershipProviders::new(self.tg.clone(), self.ownership.clone())
    }

    async fn owned(&self) -> Vec<Target> {
        let owned = self.ownership.owned().await.unwrap();
        owned
            .get(&self.group)
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn a() -> Target {
    Target::new("10.0.0.1", 80)
}

fn b() -> Target {
    Target::new("10.0.0.2", 80)
}

fn poll() -> PollPolicy {
    PollPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        deadline: Duration::from_secs(10),
    }
}

#[tokio::test(start_paused = true)]
async fn a_target_removed_behind_berths_back_is_reported_absent_and_its_ownership_released() {
    let w = World::new().await;
    w.tg.remove(&w.group, &b());

    let left = w
        .engine
        .deregister(&w.providers(), &w.group, &[a(), b()])
        .await;

    assert!(left.report.is_success(), "{}", left.report);
    assert!(left.is_deregistered(), "already absent is success");
    let outcome = left.outcome();
    assert_eq!(outcome.removed, vec![a()]);
    assert_eq!(outcome.absent, vec![b()]);
    assert_eq!(left.report.done(), 2);
    assert_eq!(left.report.already(), 1);
    let text = left.report.to_string();
    assert!(
        text.contains("already in effect: deregister 10.0.0.2:80 from web"),
        "{text}"
    );
    assert!(w.owned().await.is_empty(), "both records cleared");
    assert!(w.tg.members(&w.group).get(&a()).unwrap().is_draining());
}

#[tokio::test(start_paused = true)]
async fn only_removed_targets_are_drained_and_all_absent_spends_no_health_call() {
    let w = World::new().await;
    w.tg.remove(&w.group, &a());
    w.tg.remove(&w.group, &b());
    let health_calls = || w.tg.faults.calls("DescribeTargetHealth");
    let before = health_calls();

    let drained = w
        .engine
        .deregister_and_drain(&w.providers(), &w.group, &[a(), b()], poll())
        .await;

    assert!(drained.report.is_success(), "{}", drained.report);
    assert_eq!(drained.report.already(), 2);
    assert_eq!(drained.drain, None, "nothing to wait for");
    assert_eq!(health_calls(), before, "nothing to wait for");
    assert!(w.owned().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn every_target_present_is_reported_removed() {
    let w = World::new().await;
    let left = w
        .engine
        .deregister(&w.providers(), &w.group, &[a(), b()])
        .await;
    assert_eq!(left.outcome(), Deregistered::removed(&[a(), b()]));
    assert_eq!(left.report.already(), 0);
    assert!(!left.report.to_string().contains("already"));
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_and_a_failure_report_neither_removed_nor_absent() {
    let w = World::new().await;
    let dry = Engine::new(ApplyOptions {
        dry_run: true,
        ..ApplyOptions::default()
    });
    let left = dry.deregister(&w.providers(), &w.group, &[a()]).await;
    assert_eq!(left.outcome(), Deregistered::default());

    w.tg.faults.fail(
        "DeregisterTargets",
        Error::AccessDenied {
            action: "elasticloadbalancing:DeregisterTargets".into(),
            message: "no".into(),
        },
        1,
    );
    let left = w.engine.deregister(&w.providers(), &w.group, &[a()]).await;
    assert!(!left.report.is_success());
    assert_eq!(left.outcome(), Deregistered::default());
    assert_eq!(w.owned().await.len(), 2, "nothing released on failure");
}

/// A provider whose first `DeregisterTargets` fails with `first`, and whose next ones
/// answer every target absent (what AWS says once an earlier attempt went through).
fn absent_after(first: Error) -> Arc<dyn TargetGroups> {
    let mut mock = MockTargetGroups::new();
    let calls = AtomicUsize::new(0);
    mock.expect_deregister().returning(move |_, targets| {
        if calls.fetch_add(1, Ordering::Relaxed) == 0 {
            Err(first.clone())
        } else {
            Ok(Deregistered::absent(targets))
        }
    });
    Arc::new(mock)
}

#[tokio::test(start_paused = true)]
async fn absent_after_a_retried_attempt_that_may_have_gone_through_is_not_called_absent() {
    let engine = Engine::new(ApplyOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
        ..ApplyOptions::default()
    });
    let group = MemoryTargetGroups::default()
        .add_group("web", TargetType::Ip, Some(80))
        .arn;
    // A 5xx or a broken connection: the first attempt may have removed the target.
    let lost_answer = Error::Unavailable {
        operation: "DeregisterTargets".into(),
        message: "connection reset".into(),
    };
    let providers = MembershipProviders::owned_by_construction(absent_after(lost_answer));
    let left = engine.deregister(&providers, &group, &[a()]).await;
    assert!(left.report.is_success(), "{}", left.report);
    assert_eq!(left.outcome(), Deregistered::removed(&[a()]));

    // Throttled: the service did nothing, so the retry's answer stands.
    let throttled = Error::Throttled {
        operation: "DeregisterTargets".into(),
        message: "Rate exceeded".into(),
    };
    let providers = MembershipProviders::owned_by_construction(absent_after(throttled));
    let left = engine.deregister(&providers, &group, &[a()]).await;
    assert_eq!(left.outcome(), Deregistered::absent(&[a()]));
}

#[tokio::test(start_paused = true)]
async fn a_provider_cannot_make_the_report_claim_targets_it_was_not_asked_about() {
    let mut mock = MockTargetGroups::new();
    mock.expect_deregister()
        .returning(|_, _| Ok(Deregistered::absent(&[Target::new("10.9.9.9", 80)])));
    let group = MemoryTargetGroups::default()
        .add_group("web", TargetType::Ip, Some(80))
        .arn;
    let providers = MembershipProviders::owned_by_construction(Arc::new(mock));
    let left = Engine::default()
        .deregister(&providers, &group, &[a()])
        .await;
    assert_eq!(left.outcome(), Deregistered::removed(&[a()]));
    assert_eq!(left.report.already(), 0);
}
