//! The engine against the in-memory providers with injected faults: plans converge,
//! nothing is lost, non-retryable errors are not retried, batches are API-sized.

use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::{
    DnsRecord, Owner, RecordType, Target, TargetGroup, TargetState, TargetType,
};
use berth_core::engine::{
    wait_for_targets, ApplyOptions, DnsProviders, Engine, MembershipProviders, RetryPolicy, Status,
    WaitFor,
};
use berth_core::memory::{DeregisterBehaviour, MemoryDns, MemoryLedger, MemoryTargetGroups};
use berth_core::plan::{DesiredMembership, MembershipChange, Plan, RecordChange};
use berth_core::provider::{LedgerOwnership, PollPolicy, TargetGroups, TargetOwnership};
use berth_core::Error;

fn throttled() -> Error {
    Error::Throttled {
        operation: "RegisterTargets".into(),
        message: "Rate exceeded".into(),
    }
}

fn unavailable() -> Error {
    Error::Unavailable {
        operation: "DescribeTargetHealth".into(),
        message: "503".into(),
    }
}

fn timeout() -> Error {
    Error::Timeout {
        operation: "RegisterTargets".into(),
        after: Duration::from_secs(3),
    }
}

struct World {
    tg: Arc<MemoryTargetGroups>,
    ledger: Arc<MemoryLedger>,
    ownership: Arc<LedgerOwnership<Arc<MemoryLedger>>>,
}

impl World {
    fn new() -> Self {
        let ledger = Arc::new(MemoryLedger::default());
        let ownership = Arc::new(LedgerOwnership::new(
            ledger.clone(),
            Owner::new("berth/test").unwrap(),
        ));
        World {
            tg: Arc::new(MemoryTargetGroups::default()),
            ledger,
            ownership,
        }
    }

    fn providers(&self) -> MembershipProviders {
        MembershipProviders::new(self.tg.clone(), self.ownership.clone())
    }

    /// An engine with these options, and the world's providers.
    fn engine(&self, options: ApplyOptions) -> Reconciler {
        Reconciler {
            engine: Engine::new(options),
            providers: self.providers(),
        }
    }
}

/// An engine bound to one world's providers, so each test reads as before.
struct Reconciler {
    engine: Engine,
    providers: MembershipProviders,
}

impl Reconciler {
    async fn reconcile_membership(
        &self,
        desired: &DesiredMembership,
    ) -> berth_core::Result<(
        Plan<MembershipChange>,
        berth_core::engine::Report<MembershipChange>,
    )> {
        self.engine
            .reconcile_membership(&self.providers, desired)
            .await
    }
}

fn desire(groups: &[TargetGroup], instances: usize) -> DesiredMembership {
    let mut d = DesiredMembership::new();
    for g in groups {
        for i in 0..instances {
            d.want(g, &format!("i-{i:04}"), None, None).unwrap();
        }
    }
    d
}

#[tokio::test(start_paused = true)]
async fn converges_through_throttling_5xx_and_timeouts_and_loses_nothing() {
    let w = World::new();
    let groups: Vec<TargetGroup> = (0..3)
        .map(|i| {
            w.tg.add_group(&format!("g{i}"), TargetType::Instance, Some(80))
        })
        .collect();
    w.tg.faults.fail("RegisterTargets", throttled(), 3);
    w.tg.faults.fail("RegisterTargets", timeout(), 1);
    w.tg.faults.fail("DescribeTargetHealth", unavailable(), 2);
    w.ledger.faults.fail("PutItem", unavailable(), 2);
    let engine = w.engine(ApplyOptions {
        target_batch_size: 10,
        ..ApplyOptions::default()
    });
    let desired = desire(&groups, 25);

    let (plan, report) = engine.reconcile_membership(&desired).await.unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(plan.count("register"), 75);
    assert_eq!(report.done(), 75);
    for g in &groups {
        let members = w.tg.members(&g.arn);
        assert_eq!(members.len(), 25);
        assert!(members.keys().all(|t| t.port == 80));
    }
    let owned = w.ownership.owned().await.unwrap();
    assert_eq!(
        owned.values().map(|s| s.len()).sum::<usize>(),
        75,
        "every registration is owned"
    );
    let (again, _) = engine.reconcile_membership(&desired).await.unwrap();
    assert!(
        again.is_empty(),
        "second pass must change nothing:\n{again}"
    );
}

#[tokio::test(start_paused = true)]
async fn access_denied_is_not_retried_and_names_the_action() {
    let w = World::new();
    let g = w.tg.add_group("web", TargetType::Instance, Some(80));
    let denied = Error::AccessDenied {
        action: "elasticloadbalancing:RegisterTargets".into(),
        message: "no".into(),
    };
    w.tg.faults.fail("RegisterTargets", denied.clone(), 1);
    let engine = w.engine(ApplyOptions::default());
    let (_, report) = engine.reconcile_membership(&desire(&[g], 1)).await.unwrap();
    assert!(!report.is_success());
    assert_eq!(w.tg.faults.calls("RegisterTargets"), 1);
    let (_, err) = report.errors().next().unwrap();
    assert_eq!(err, &denied);
    assert!(report
        .to_string()
        .contains("elasticloadbalancing:RegisterTargets"));
}

#[tokio::test(start_paused = true)]
async fn retry_budget_is_bounded() {
    let w = World::new();
    let g = w.tg.add_group("web", TargetType::Instance, Some(80));
    w.tg.faults.fail("RegisterTargets", throttled(), 100);
    let retry = RetryPolicy {
        max_attempts: 4,
        ..RetryPolicy::default()
    };
    let engine = w.engine(ApplyOptions {
        retry,
        ..ApplyOptions::default()
    });
    let (_, report) = engine.reconcile_membership(&desire(&[g], 1)).await.unwrap();
    assert_eq!(report.failed(), 1);
    assert_eq!(w.tg.faults.calls("RegisterTargets"), 4);
    assert_eq!(
        report.outcomes[0].attempts,
        4 + 1,
        "one claim write plus four registration attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn batches_are_api_sized_and_one_health_call_per_group() {
    let w = World::new();
    let groups: Vec<TargetGroup> = (0..10)
        .map(|i| {
            w.tg.add_group(&format!("g{i}"), TargetType::Instance, Some(80))
        })
        .collect();
    let engine = w.engine(ApplyOptions {
        target_batch_size: 200,
        ..ApplyOptions::default()
    });
    engine
        .reconcile_membership(&desire(&groups, 500))
        .await
        .unwrap();
    assert_eq!(
        w.tg.faults.calls("DescribeTargetHealth"),
        10,
        "one per group, not per node"
    );
    assert_eq!(
        w.tg.faults.calls("RegisterTargets"),
        10 * 3,
        "ceil(500 / 200) per group"
    );
}

#[tokio::test(start_paused = true)]
async fn dry_run_changes_nothing() {
    let w = World::new();
    let g = w.tg.add_group("web", TargetType::Instance, Some(80));
    let engine = w.engine(ApplyOptions {
        dry_run: true,
        ..ApplyOptions::default()
    });
    let (plan, report) = engine
        .reconcile_membership(&desire(std::slice::from_ref(&g), 3))
        .await
        .unwrap();
    assert_eq!(plan.len(), 3);
    assert!(report.outcomes.iter().all(|o| o.status == Status::Planned));
    assert_eq!(w.tg.faults.calls("RegisterTargets"), 0);
    assert!(w.tg.members(&g.arn).is_empty());
    assert!(w.ledger.rows().is_empty());
}

#[tokio::test(start_paused = true)]
async fn deregisters_only_its_own_targets_and_releases_ownership() {
    let w = World::new();
    let g = w.tg.add_group("web", TargetType::Instance, Some(80));
    let engine = w.engine(ApplyOptions::default());
    engine
        .reconcile_membership(&desire(std::slice::from_ref(&g), 2))
        .await
        .unwrap();
    w.tg.set_state(&g.arn, Target::new("i-other", 80), TargetState::Healthy);

    let mut fewer = DesiredMembership::new();
    fewer.want(&g, "i-0000", None, None).unwrap();
    let (plan, report) = engine.reconcile_membership(&fewer).await.unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(
        plan.changes,
        vec![MembershipChange::Deregister {
            group: g.arn.clone(),
            targets: vec![Target::new("i-0001", 80)]
        }]
    );
    let members = w.tg.members(&g.arn);
    assert_eq!(
        members.get(&Target::new("i-0001", 80)),
        Some(&TargetState::Draining)
    );
    assert_eq!(
        members.get(&Target::new("i-other", 80)),
        Some(&TargetState::Healthy),
        "not berth's: untouched"
    );
    let owned = w.ownership.owned().await.unwrap();
    assert_eq!(owned[&g.arn].len(), 1);

    // While it drains nothing happens; once gone, nothing is left to do either.
    let (plan, _) = engine.reconcile_membership(&fewer).await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    w.tg.finish_draining();
    let (plan, _) = engine.reconcile_membership(&fewer).await.unwrap();
    assert!(plan.is_empty(), "{plan}");
}

#[tokio::test(start_paused = true)]
async fn a_crash_between_claim_and_register_is_repaired_by_the_next_plan() {
    let w = World::new();
    let g = w.tg.add_group("web", TargetType::Instance, Some(80));
    w.tg.faults
        .fail("RegisterTargets", Error::invalid("simulated crash"), 1);
    let engine = w.engine(ApplyOptions::default());
    let desired = desire(std::slice::from_ref(&g), 1);
    let (_, report) = engine.reconcile_membership(&desired).await.unwrap();
    assert_eq!(report.failed(), 1);
    assert_eq!(
        w.ownership.owned().await.unwrap()[&g.arn].len(),
        1,
        "claim written ahead"
    );
    let (_, report) = engine.reconcile_membership(&desired).await.unwrap();
    assert!(report.is_success());
    assert_eq!(w.tg.members(&g.arn).len(), 1);
    // And if it is no longer desired, the dangling claim is forgotten, nothing deregistered twice.
    w.tg.remove(&g.arn, &Target::new("i-0000", 80));
    let (plan, _) = engine
        .reconcile_membership(&DesiredMembership::new())
        .await
        .unwrap();
    assert_eq!(plan.count("forget"), 1);
    assert!(w.ownership.owned().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn rate_limit_spaces_calls() {
    let w = World::new();
    let g = w.tg.add_group("web", TargetType::Instance, Some(80));
    let providers = MembershipProviders::owned_by_construction(w.tg.clone());
    let options = ApplyOptions {
        target_batch_size: 1,
        min_call_interval: Duration::from_millis(100),
        ..ApplyOptions::default()
    };
    let engine = Engine::new(options);
    let started = tokio::time::Instant::now();
    let (_, report) = engine
        .reconcile_membership(&providers, &desire(&[g], 5))
        .await
        .unwrap();
    assert!(report.is_success());
    // 1 health call + 5 registrations, 100 ms apart.
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn waits_with_backoff_for_healthy_and_for_drained() {
    let tg = Arc::new(MemoryTargetGroups::default().registering_as(TargetState::Initial));
    let g = tg.add_group("web", TargetType::Ip, Some(80));
    let t = Target::new("10.0.0.1", 80);
    tg.register(&g.arn, &[t.clone().into()]).await.unwrap();
    let policy = PollPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        deadline: Duration::from_secs(10),
    };
    let flip = {
        let tg = tg.clone();
        let (arn, t) = (g.arn.clone(), t.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            tg.set_state(&arn, t, TargetState::Healthy);
        })
    };
    let took = wait_for_targets(
        tg.as_ref(),
        &g.arn,
        std::slice::from_ref(&t),
        WaitFor::Healthy,
        policy,
    )
    .await
    .unwrap();
    flip.await.unwrap();
    assert!(took >= Duration::from_secs(2));
    assert!(
        tg.faults.calls("DescribeTargetHealth") < 12,
        "backoff, not a busy poll: {}",
        tg.faults.calls("DescribeTargetHealth")
    );

    tg.deregister(&g.arn, std::slice::from_ref(&t))
        .await
        .unwrap();
    let err = wait_for_targets(
        tg.as_ref(),
        &g.arn,
        std::slice::from_ref(&t),
        WaitFor::Gone,
        policy,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    tg.finish_draining();
    wait_for_targets(tg.as_ref(), &g.arn, &[t], WaitFor::Gone, policy)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn moto_like_vanishing_deregistration_is_gone_at_once() {
    let tg = MemoryTargetGroups::default().deregistering(DeregisterBehaviour::Vanish);
    let g = tg.add_group("web", TargetType::Ip, Some(80));
    let t = Target::new("10.0.0.1", 80);
    tg.register(&g.arn, &[t.clone().into()]).await.unwrap();
    tg.deregister(&g.arn, std::slice::from_ref(&t))
        .await
        .unwrap();
    assert!(tg.members(&g.arn).is_empty());
}

#[tokio::test(start_paused = true)]
async fn dns_changes_are_batched_and_wait_for_sync_with_backoff() {
    let dns = Arc::new(MemoryDns::default().syncing_after(2));
    dns.add_zone("Z1", "example.com");
    dns.faults.fail(
        "ChangeResourceRecordSets",
        Error::Throttled {
            operation: "ChangeResourceRecordSets".into(),
            message: "slow down".into(),
        },
        1,
    );
    let records: Vec<DnsRecord> = (0..1200)
        .map(|i| {
            DnsRecord::new(
                &format!("n{i}.example.com"),
                RecordType::A,
                60,
                vec!["192.0.2.1".into()],
            )
        })
        .collect();
    let plan = Plan {
        changes: vec![RecordChange::Upsert {
            zone_id: "Z1".into(),
            records,
        }],
        skipped: vec![],
    };
    let providers = DnsProviders {
        zones: dns.clone(),
        wait_in_sync: Some(PollPolicy::default()),
    };
    let engine = Engine::new(ApplyOptions::default());
    let report = engine.apply(&providers, &plan).await;
    assert!(report.is_success(), "{report}");
    assert_eq!(dns.all("Z1").len(), 1200);
    assert_eq!(
        dns.faults.calls("ChangeResourceRecordSets"),
        3 + 1,
        "ceil(1200/500) batches plus one throttled try"
    );
    assert_eq!(
        dns.faults.calls("GetChange"),
        3 * 3,
        "each batch polled until INSYNC"
    );
}

#[tokio::test]
async fn concurrent_ownership_claims_do_not_lose_each_other() {
    let ledger = Arc::new(MemoryLedger::default());
    let own = Arc::new(LedgerOwnership::new(
        ledger.clone(),
        Owner::new("berth/test").unwrap(),
    ));
    let tg = MemoryTargetGroups::default();
    let g = tg.add_group("web", TargetType::Instance, Some(80));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let own = own.clone();
            let arn = g.arn.clone();
            tokio::spawn(async move { own.claim(&arn, &[Target::new(format!("i-{i}"), 80)]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(own.owned().await.unwrap()[&g.arn].len(), 16);
}

#[tokio::test(start_paused = true)]
async fn the_report_counts_calls_attempts_and_failures_per_operation() {
    let w = World::new();
    let g = w.tg.add_group("web", TargetType::Instance, Some(80));
    w.tg.faults.fail("RegisterTargets", throttled(), 2);
    w.tg.faults
        .fail("DeregisterTargets", Error::invalid("refused"), 1);
    let engine = w.engine(ApplyOptions::default());
    let (_, report) = engine
        .reconcile_membership(&desire(std::slice::from_ref(&g), 1))
        .await
        .unwrap();
    let register = report.calls.operations["RegisterTargets"];
    assert_eq!(
        (register.calls, register.attempts, register.failures),
        (1, 3, 0)
    );
    assert_eq!(report.calls.operations["ClaimTargets"].calls, 1);
    assert_eq!(report.outcomes[0].attempts, 1 + 3, "claim plus three tries");
    let (_, report) = engine
        .reconcile_membership(&DesiredMembership::new())
        .await
        .unwrap();
    assert_eq!(report.calls.operations["DeregisterTargets"].failures, 1);
    assert_eq!(report.calls.failures(), 1);
    assert!(
        !report.calls.operations.contains_key("ReleaseTargets"),
        "nothing released when the deregistration failed"
    );
    let lifetime = engine.engine.caller().tally();
    assert_eq!(lifetime.operations["DescribeTargetHealth"].calls, 2);
    assert_eq!(lifetime.operations["ReadOwnership"].calls, 2);
}

#[tokio::test(start_paused = true)]
async fn deregister_and_drain_is_one_operation_that_waits_for_the_targets_to_leave() {
    let w = World::new();
    let g = w.tg.add_group("web", TargetType::Instance, Some(80));
    let engine = w.engine(ApplyOptions::default());
    engine
        .reconcile_membership(&desire(std::slice::from_ref(&g), 2))
        .await
        .unwrap();
    let leaving = vec![Target::new("i-0000", 80)];
    let policy = PollPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        deadline: Duration::from_secs(10),
    };
    let finish = {
        let tg = w.tg.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            tg.finish_draining();
        })
    };
    let drained = engine
        .engine
        .deregister_and_drain(&engine.providers, &g.arn, &leaving, policy)
        .await;
    finish.await.unwrap();
    assert!(drained.report.is_success(), "{}", drained.report);
    let took = drained.drain.expect("waited").expect("drained");
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert_eq!(w.tg.members(&g.arn).len(), 1);
    assert!(
        !w.ownership.owned().await.unwrap()[&g.arn].contains(&leaving[0]),
        "ownership released"
    );
    assert!(
        engine.engine.caller().tally().operations["DescribeTargetHealth"].calls >= 2,
        "the drain polls go through the engine's caller"
    );

    // Not drained within the deadline: a timeout, reported, not an endless wait.
    let drained = engine
        .engine
        .deregister_and_drain(
            &engine.providers,
            &g.arn,
            &[Target::new("i-0001", 80)],
            policy,
        )
        .await;
    assert!(matches!(drained.drain, Some(Err(Error::Timeout { .. }))));
}
