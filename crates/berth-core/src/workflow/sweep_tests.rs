//! The pool sweep on the in-memory providers: each repair, ownership, and a second
//! sweep changing nothing.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::address_world::*;
use super::*;
use crate::domain::{
    AssociationTarget, DnsRecord, InstanceId, InstanceState, Owner, RecordType, WriteCondition,
};
use crate::engine::{Caller, RetryPolicy};
use crate::provider::{Addresses, Ledger};
use crate::Error;

/// Every write the providers saw (associations, DNS changes, ledger writes).
fn writes(w: &World) -> u64 {
    w.addresses.faults.calls("AssociateAddress")
        + w.addresses.faults.calls("DisassociateAddress")
        + w.dns.faults.calls("ChangeResourceRecordSets")
        + w.ledger.faults.calls("PutItem")
}

/// A second sweep finds nothing and writes nothing.
async fn assert_second_sweep_is_a_no_op(w: &World) {
    let before = writes(w);
    let report = w.binder().sweep().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(writes(w), before, "a second sweep wrote");
}

#[tokio::test]
async fn instances_whose_running_event_was_lost_get_an_address() {
    let w = World::new();
    w.pool(5);
    let b = w.binder();
    b.handle(&w.launch(1), InstanceState::Running)
        .await
        .unwrap();
    w.launch(2);
    w.launch(3);
    let report = b.sweep().await.unwrap();
    assert_eq!(
        report
            .bound
            .iter()
            .map(|(i, _)| i.clone())
            .collect::<Vec<_>>(),
        vec![id(2), id(3)],
        "{report:?}"
    );
    assert!(report.failed.is_empty(), "{report:?}");
    for n in 1..=3 {
        assert_eq!(w.held_by(n).len(), 1, "instance {n}");
    }
    assert_eq!(w.a_records().len(), 3);
    w.assert_consistent();
    assert_second_sweep_is_a_no_op(&w).await;
}

#[tokio::test]
async fn rows_of_instances_whose_terminate_event_was_lost_are_released() {
    let w = World::new();
    w.pool(3);
    let b = w.binder();
    for n in 1..=3 {
        b.handle(&w.launch(n), InstanceState::Running)
            .await
            .unwrap();
    }
    // 1 terminated (EC2 still shows the association), 2 is gone from EC2 entirely
    // (its address was disassociated with it).
    w.set_state(1, InstanceState::Terminated).await;
    let gone = w.held_by(2).remove(0);
    w.addresses
        .disassociate(&gone.association.unwrap().association_id)
        .await
        .unwrap();
    w.set_state(2, InstanceState::Terminated).await;
    let report = b.sweep().await.unwrap();
    assert_eq!(report.released, vec![id(1), id(2)], "{report:?}");
    assert_eq!(report.dns_deleted.len(), 2, "{report:?}");
    assert!(
        w.held_by(1).is_empty(),
        "the address left the terminated instance"
    );
    assert_eq!(w.held_by(3).len(), 1, "the live instance keeps its address");
    assert_eq!(w.a_records().len(), 1);
    let bound: Vec<_> = w
        .rows()
        .into_iter()
        .filter(|r| r.state != RowState::Free)
        .collect();
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].instance_id, Some(id(3)));
    w.assert_consistent();
    assert_second_sweep_is_a_no_op(&w).await;
}

#[tokio::test]
async fn a_lapsed_claim_is_cleared_and_the_record_its_dead_invocation_wrote_is_deleted() {
    let w = World::new();
    let pool = w.pool(2);
    w.launch(1);
    w.set_state(1, InstanceState::Terminated).await;
    let stopped = w.launch(2);
    w.set_state(2, InstanceState::Stopped).await;
    // Invocations died after claiming: one for the terminated instance after writing
    // its record, one for the stopped instance (which keeps nothing: not associated).
    let now = w.now.load(Ordering::SeqCst);
    for (k, holder) in [(0, id(1)), (1, stopped)] {
        let claim = AddressRow {
            state: RowState::Claimed,
            instance_id: Some(holder),
            claim_expires_at: Some(now + 120),
            ..AddressRow::new(
                pool[k].clone(),
                Some(format!("203.0.113.{}", k + 1).parse().unwrap()),
            )
        };
        w.ledger
            .put(claim.encode(&w.owner, now), WriteCondition::Absent)
            .await
            .unwrap();
    }
    let name = format!("203-0-113-1.{SUFFIX}.");
    DnsNames::new(w.dns.clone(), ZONE, w.owner.clone())
        .claim(
            &DnsRecord::new(&name, RecordType::A, 60, vec!["203.0.113.1".into()]),
            Expect::New,
        )
        .await
        .unwrap();
    // While the claims live, the sweep leaves them to their invocations.
    let report = w.binder().sweep().await.unwrap();
    assert_eq!(report.skipped.len(), 2, "{report:?}");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(w.a_records().len(), 1);
    // Once lapsed, both are cleared and the orphaned record goes with its marker.
    w.now.fetch_add(121, Ordering::SeqCst);
    let report = w.binder().sweep().await.unwrap();
    assert_eq!(report.released, vec![id(1)], "{report:?}");
    assert_eq!(report.freed, vec![pool[1].clone()], "{report:?}");
    assert_eq!(report.dns_deleted, vec![name.clone()], "{report:?}");
    assert!(w.dns.all(ZONE).is_empty(), "{:?}", w.dns.all(ZONE));
    assert!(w.rows().iter().all(|r| r.state == RowState::Free));
    w.assert_consistent();
    assert_second_sweep_is_a_no_op(&w).await;
}

#[tokio::test]
async fn a_binding_whose_address_was_taken_off_its_instance_is_rebound() {
    let w = World::new();
    w.pool(2);
    let b = w.binder();
    let i = w.launch(1);
    b.handle(&i, InstanceState::Running).await.unwrap();
    let held = w.held_by(1).remove(0);
    w.addresses
        .disassociate(&held.association.unwrap().association_id)
        .await
        .unwrap();
    let report = b.sweep().await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.bound.len(), 1, "{report:?}");
    assert_eq!(w.held_by(1).len(), 1);
    w.assert_consistent();
    assert_eq!(w.a_records().len(), 1, "{:?}", w.a_records());
    assert_second_sweep_is_a_no_op(&w).await;
}

#[tokio::test]
async fn nothing_owned_by_someone_else_is_touched() {
    let w = World::new();
    let pool = w.pool(3);
    // Another installation's row names a terminated instance; a name at the IP-derived
    // name of that address is held by another owner; address 2 is on an instance
    // berth never bound (no row of ours names it), which is terminated.
    let stranger = Owner::new("berth/other/lambda").unwrap();
    w.launch(7);
    w.set_state(7, InstanceState::Terminated).await;
    let foreign = AddressRow {
        state: RowState::Bound,
        instance_id: Some(id(7)),
        association_id: Some("eipassoc-foreign".into()),
        dns_name: Some(format!("203-0-113-1.{SUFFIX}.")),
        ..AddressRow::new(pool[0].clone(), Some("203.0.113.1".parse().unwrap()))
    };
    w.ledger
        .put(foreign.encode(&stranger, 0), WriteCondition::Absent)
        .await
        .unwrap();
    DnsNames::new(w.dns.clone(), ZONE, stranger.clone())
        .claim(
            &DnsRecord::new(
                &format!("203-0-113-1.{SUFFIX}."),
                RecordType::A,
                60,
                vec!["203.0.113.1".into()],
            ),
            Expect::New,
        )
        .await
        .unwrap();
    let outsider = w.launch_tagged(8, tags(&[("team", "other")]));
    w.addresses
        .associate(
            &pool[1],
            &AssociationTarget {
                instance_id: outsider,
                network_interface_id: "eni-0008".into(),
                private_ip: "10.0.0.9".parse().unwrap(),
            },
        )
        .await
        .unwrap();
    w.set_state(8, InstanceState::Terminated).await;
    let dns_before = w.dns.all(ZONE);
    let rows_before = w.ledger.rows();
    let writes_before = writes(&w);
    let report = w.binder().sweep().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(w.dns.all(ZONE), dns_before);
    assert_eq!(w.ledger.rows(), rows_before);
    assert_eq!(
        w.held_by(8).len(),
        1,
        "an association berth did not make stays"
    );
    assert_eq!(writes(&w), writes_before, "the sweep wrote");
}

/// A binder retrying as the Lambda does (on tokio's clock: these tests pause it).
fn retrying_binder(w: &World) -> AddressBinder {
    w.binder_through(
        w.settings(false),
        Caller::new(RetryPolicy::default(), Duration::ZERO),
    )
}

#[tokio::test(start_paused = true)]
async fn a_sweep_stopped_by_its_deadline_reports_what_is_left_and_the_next_one_finishes_it() {
    let w = World::new();
    w.pool(4);
    for n in 1..=3 {
        w.launch(n);
    }
    // EC2 throttles every association: the engine backs off and retries for longer
    // than the sweep has.
    let throttled = Error::Throttled {
        operation: "AssociateAddress".into(),
        message: "Request limit exceeded.".into(),
    };
    w.addresses
        .faults
        .fail("AssociateAddress", throttled, 1_000);
    let b = retrying_binder(&w);
    let started = Instant::now();
    let report = b
        .sweep_until(Some(started + Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(5),
        "stopped at the deadline"
    );
    assert!(report.is_partial(), "{report:?}");
    assert_eq!(
        report.unfinished,
        vec!["bind i-0001", "bind i-0002", "bind i-0003"],
        "{report:?}"
    );
    assert!(
        report.bound.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
    // Nothing half-done but the claims, which the instances' next binds continue.
    for n in 1..=3 {
        assert!(w.held_by(n).is_empty(), "instance {n}");
    }
    assert!(w.a_records().is_empty());
    let claims = w
        .rows()
        .iter()
        .filter(|r| r.state == RowState::Claimed)
        .count();
    assert_eq!(claims, 3, "{:?}", w.rows());

    // The next sweep, with AWS answering again, finishes the work.
    w.addresses.faults.clear("AssociateAddress");
    let report = b
        .sweep_until(Some(Instant::now() + Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(!report.is_partial(), "{report:?}");
    let bound: Vec<InstanceId> = report.bound.iter().map(|(i, _)| i.clone()).collect();
    assert_eq!(bound, vec![id(1), id(2), id(3)], "{report:?}");
    for n in 1..=3 {
        assert_eq!(w.held_by(n).len(), 1, "instance {n}");
    }
    w.assert_consistent();
    assert_second_sweep_is_a_no_op(&w).await;
}

#[tokio::test(start_paused = true)]
async fn a_sweep_that_cannot_observe_the_pool_by_its_deadline_fails_and_changes_nothing() {
    let w = World::new();
    w.pool(2);
    w.launch(1);
    let throttled = Error::Throttled {
        operation: "DescribeAddresses".into(),
        message: "Request limit exceeded.".into(),
    };
    w.addresses
        .faults
        .fail("DescribeAddresses", throttled, 1_000);
    let before = writes(&w);
    let error = retrying_binder(&w)
        .sweep_until(Some(Instant::now() + Duration::from_secs(3)))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert_eq!(writes(&w), before, "nothing written");
    assert!(w.held_by(1).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_sweep_cut_short_while_releasing_lists_the_instances_it_did_not_release() {
    let w = World::new();
    w.pool(3);
    let b = w.binder();
    for n in 1..=3 {
        b.handle(&w.launch(n), InstanceState::Running)
            .await
            .unwrap();
        w.set_state(n, InstanceState::Terminated).await;
    }
    let throttled = Error::Throttled {
        operation: "DisassociateAddress".into(),
        message: "Request limit exceeded.".into(),
    };
    w.addresses
        .faults
        .fail("DisassociateAddress", throttled, 1_000);
    let report = retrying_binder(&w)
        .sweep_until(Some(Instant::now() + Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        report.unfinished,
        vec!["release i-0001", "release i-0002", "release i-0003"],
        "{report:?}"
    );
    assert!(report.released.is_empty(), "{report:?}");
    w.addresses.faults.clear("DisassociateAddress");
    let report = retrying_binder(&w).sweep().await.unwrap();
    assert_eq!(report.released, vec![id(1), id(2), id(3)], "{report:?}");
    assert!(!report.is_partial(), "{report:?}");
    w.assert_consistent();
    assert_second_sweep_is_a_no_op(&w).await;
}
