//! The in-memory providers behave like the services they stand in for, and the mocks
//! pin exact call contracts.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_core::domain::{
    AllocationId, AssociationTarget, InstanceId, LedgerRecord, Owner, Registration, TagFilter,
    Target, TargetGroupArn, WriteCondition,
};
use berth_core::engine::{ApplyOptions, Engine, MembershipProviders};
use berth_core::memory::{MemoryAddresses, MemoryLedger};
use berth_core::plan::{MembershipChange, Plan};
use berth_core::provider::{Addresses, Ledger, MockTargetGroups};
use berth_core::Error;

fn owner() -> Owner {
    Owner::new("berth/test").unwrap()
}

#[tokio::test]
async fn an_associated_address_cannot_be_associated_again() {
    let eips = MemoryAddresses::default();
    let id = eips.allocate(
        "203.0.113.1".parse().unwrap(),
        BTreeMap::from([("pool".into(), "live".into())]),
    );
    let to = |i: &str| AssociationTarget {
        instance_id: InstanceId::new(i).unwrap(),
        network_interface_id: format!("eni-{i}"),
        private_ip: "10.0.0.1".parse().unwrap(),
    };
    let assoc = eips.associate(&id, &to("i-1")).await.unwrap();
    let err = eips.associate(&id, &to("i-2")).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(eips
        .list(&TagFilter::parse("pool=live").unwrap())
        .await
        .unwrap()[0]
        .is_on(&InstanceId::new("i-1").unwrap()));
    eips.disassociate(&assoc).await.unwrap();
    eips.disassociate(&assoc).await.unwrap();
    eips.associate(&id, &to("i-2")).await.unwrap();
    assert!(eips
        .associate(&AllocationId("eipalloc-none".into()), &to("i-3"))
        .await
        .is_err());
}

#[tokio::test]
async fn ledger_conditions_hold_like_dynamodb() {
    let ledger = MemoryLedger::default();
    let row = LedgerRecord::new("eipalloc-1", owner()).with("state", "free");
    let first = ledger
        .put(row.clone(), WriteCondition::Absent)
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    assert!(matches!(
        ledger.put(row.clone(), WriteCondition::Absent).await,
        Err(Error::Conflict { .. })
    ));
    let claimed = ledger
        .put(
            row.clone().with("state", "claimed"),
            WriteCondition::Version(1),
        )
        .await
        .unwrap();
    assert_eq!(claimed.version, 2);
    assert!(
        matches!(
            ledger.put(row.clone(), WriteCondition::Version(1)).await,
            Err(Error::Conflict { .. })
        ),
        "stale version loses"
    );
    assert!(matches!(
        ledger
            .delete("eipalloc-1", WriteCondition::Version(1))
            .await,
        Err(Error::Conflict { .. })
    ));
    ledger
        .delete("eipalloc-1", WriteCondition::Version(2))
        .await
        .unwrap();
    ledger
        .delete("eipalloc-1", WriteCondition::Always)
        .await
        .unwrap();
    assert!(ledger.get("eipalloc-1").await.unwrap().is_none());
}

#[tokio::test]
async fn concurrent_claims_on_one_row_have_exactly_one_winner() {
    let ledger = Arc::new(MemoryLedger::default());
    let seed = ledger
        .put(
            LedgerRecord::new("eipalloc-1", owner()).with("state", "free"),
            WriteCondition::Absent,
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let ledger = ledger.clone();
            let row = LedgerRecord::new("eipalloc-1", owner())
                .with("state", "claimed")
                .with("instance", format!("i-{i}"));
            tokio::spawn(async move {
                ledger
                    .put(row, WriteCondition::Version(seed.version))
                    .await
                    .is_ok()
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn the_engine_calls_register_once_per_batch_with_exact_arguments() {
    let arn = TargetGroupArn::new("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/abc")
        .unwrap();
    let targets: Vec<Registration> = (0..5)
        .map(|i| Target::new(format!("10.0.0.{i}"), 8080).into())
        .collect();
    let mut mock = MockTargetGroups::new();
    let expected_first: Vec<Registration> = targets[..2].to_vec();
    mock.expect_register()
        .withf(move |g, t| g.name() == "web" && t == expected_first.as_slice())
        .times(1)
        .returning(|_, _| Ok(()));
    mock.expect_register()
        .withf(|_, t| t.len() == 2 || t.len() == 1)
        .times(2)
        .returning(|_, _| Ok(()));
    let providers = MembershipProviders::owned_by_construction(Arc::new(mock));
    let engine = Engine::new(ApplyOptions {
        target_batch_size: 2,
        concurrency: 1,
        ..ApplyOptions::default()
    });
    let plan = Plan {
        changes: vec![MembershipChange::Register {
            group: arn,
            targets,
        }],
        skipped: vec![],
    };
    let report = engine.apply(&providers, &plan).await;
    assert!(report.is_success(), "{report}");
    assert_eq!(report.done(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_target_drains_for_its_groups_deregistration_delay_then_leaves() {
    use berth_core::domain::{TargetState, TargetType};
    use berth_core::memory::{DeregisterBehaviour, MemoryTargetGroups};
    use berth_core::provider::TargetGroups;
    use std::time::Duration;

    let tg = MemoryTargetGroups::default().deregistering(DeregisterBehaviour::DrainForDelay);
    let group = tg.add_group("web", TargetType::Instance, Some(80));
    tg.set_deregistration_delay(&group.arn, Duration::from_secs(2));
    let a = Target::new("i-a", 80);
    let b = Target::new("i-b", 80);
    let both = [Registration::from(a.clone()), Registration::from(b.clone())];
    tg.register(&group.arn, &both).await.unwrap();
    tg.deregister(&group.arn, std::slice::from_ref(&a))
        .await
        .unwrap();
    assert_eq!(tg.members(&group.arn)[&a], TargetState::Draining);
    tokio::time::advance(Duration::from_millis(1500)).await;
    // Deregistering again does not restart the delay.
    tg.deregister(&group.arn, std::slice::from_ref(&a))
        .await
        .unwrap();
    let health = tg.health(&group.arn).await.unwrap();
    assert_eq!(health.len(), 2, "still draining at 1.5 s: {health:?}");
    tokio::time::advance(Duration::from_millis(600)).await;
    let health = tg.health(&group.arn).await.unwrap();
    assert_eq!(
        health.iter().map(|h| h.target.clone()).collect::<Vec<_>>(),
        vec![b.clone()],
        "gone after the 2 s delay; the other target stays"
    );
    assert_eq!(tg.faults.snapshot()["DescribeTargetHealth"], 2);
    assert_eq!(tg.faults.snapshot()["DeregisterTargets"], 2);
}
