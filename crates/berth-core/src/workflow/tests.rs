//! The address workflow on the in-memory providers: single binds, races, duplicate
//! delivery, expired claims, exhaustion, release and reuse.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use futures::future::join_all;

use super::address_world::*;
use super::*;
use crate::domain::{
    AllocationId, AssociationTarget, DnsRecord, InstanceId, InstanceState, Owner, RecordType,
    WriteCondition,
};
use crate::provider::{Addresses, Ledger};
use crate::Error;

#[tokio::test]
async fn one_instance_gets_one_address_record_and_bound_row() {
    let w = World::new();
    w.pool(3);
    let i = w.launch(1);
    let outcome = w.binder().handle(&i, InstanceState::Running).await.unwrap();
    assert_eq!(outcome.kind(), "bound");
    let b = binding(outcome);
    let held = w.held_by(1);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].allocation_id, b.allocation_id);
    assert_eq!(
        held[0]
            .association
            .as_ref()
            .unwrap()
            .network_interface_id
            .as_deref(),
        Some("eni-0001"),
        "the address is on the primary interface (device index 0)"
    );
    let name = format!("{}.{SUFFIX}.", b.public_ip.to_string().replace('.', "-"));
    assert_eq!(b.dns_name.as_deref(), Some(name.as_str()));
    let marker = w
        .dns
        .all(ZONE)
        .into_iter()
        .find(|r| r.name == DnsRecord::ownership_name(&name))
        .expect("ownership TXT record");
    assert_eq!(marker.owner(), Some(w.owner.as_str()));
    let row = w
        .rows()
        .into_iter()
        .find(|r| r.allocation_id == b.allocation_id)
        .unwrap();
    assert_eq!(row.state, RowState::Bound);
    assert_eq!(row.instance_id, Some(i));
    assert_eq!(row.public_ip, Some(b.public_ip));
    assert_eq!(row.association_id, Some(b.association_id));
    w.assert_consistent();
}

#[tokio::test]
async fn the_running_path_makes_six_calls_and_a_repeat_four() {
    let w = World::new();
    w.pool(2);
    let i = w.launch(1);
    let binder = w.binder();
    binder.handle(&i, InstanceState::Running).await.unwrap();
    let total = || {
        w.instances.faults.total_calls()
            + w.addresses.faults.total_calls()
            + w.dns.faults.total_calls()
            + w.ledger.faults.total_calls()
    };
    // DescribeInstances, DescribeAddresses, PutItem (claim), AssociateAddress,
    // ChangeResourceRecordSets (CREATE record and marker), PutItem (bound).
    assert_eq!(total(), 6);
    assert_eq!(w.addresses.faults.calls("DescribeAddresses"), 1);
    assert_eq!(w.ledger.faults.calls("PutItem"), 2);
    assert_eq!(w.ledger.faults.calls("Scan"), 0);
    assert_eq!(w.ledger.faults.calls("GetItem"), 0);
    assert_eq!(w.dns.faults.calls("ListResourceRecordSets"), 0);
    binder.handle(&i, InstanceState::Running).await.unwrap();
    // A repeat only reads: DescribeInstances, DescribeAddresses, GetItem,
    // ListResourceRecordSets.
    assert_eq!(total(), 10);
    assert_eq!(w.dns.faults.calls("GetChange"), 0, "no polling");
}

#[tokio::test]
async fn a_leftover_record_of_ours_is_read_and_upserted_after_the_create_is_refused() {
    let w = World::new();
    w.pool(1);
    let i = w.launch(1);
    // A record berth wrote for this address earlier, pointing elsewhere.
    let name = format!("203-0-113-1.{SUFFIX}");
    w.dns.put(
        ZONE,
        DnsRecord::new(&name, RecordType::A, 60, vec!["192.0.2.9".into()]),
    );
    w.dns.put(ZONE, DnsRecord::ownership(&name, &w.owner, 60));
    let b = binding(w.binder().handle(&i, InstanceState::Running).await.unwrap());
    assert_eq!(b.dns_name.as_deref(), Some(format!("{name}.").as_str()));
    assert_eq!(
        w.dns.faults.calls("ChangeResourceRecordSets"),
        2,
        "CREATE, then UPSERT"
    );
    assert_eq!(w.dns.faults.calls("ListResourceRecordSets"), 1);
    let records = w.dns.all(ZONE);
    assert!(records
        .iter()
        .any(|r| r.record_type == RecordType::A && r.values == ["203.0.113.1"]));
    w.assert_consistent();
}

#[tokio::test]
async fn another_systems_records_of_other_types_at_the_name_survive_bind_and_release() {
    let w = World::new();
    w.pool(1);
    let i = w.launch(1);
    let name = format!("203-0-113-1.{SUFFIX}");
    let theirs = DnsRecord::new(&name, RecordType::Aaaa, 300, vec!["2001:db8::7".into()]);
    w.dns.put(ZONE, theirs.clone());
    let binder = w.binder();
    binding(binder.handle(&i, InstanceState::Running).await.unwrap());
    assert!(w.dns.all(ZONE).contains(&theirs));
    binder.handle(&i, InstanceState::Terminated).await.unwrap();
    assert_eq!(
        w.dns.all(ZONE),
        vec![theirs],
        "only berth's A record and marker went"
    );
}

#[tokio::test]
async fn a_non_matching_instance_changes_nothing() {
    let w = World::new();
    w.pool(2);
    let i = w.launch_tagged(1, tags(&[("karpenter.sh/nodepool", "x"), ("team", "dev")]));
    let outcome = w.binder().handle(&i, InstanceState::Running).await.unwrap();
    assert_eq!(outcome.kind(), "ignored", "{outcome:?}");
    assert!(w.held_by(1).is_empty());
    assert!(w.ledger.rows().is_empty());
    assert!(w.dns.all(ZONE).is_empty());
    assert_eq!(w.addresses.faults.total_calls(), 0);
    // An unknown instance is not an error either (it may be gone already).
    let outcome = w
        .binder()
        .handle(&id(99), InstanceState::Running)
        .await
        .unwrap();
    assert_eq!(outcome.kind(), "ignored");
}

#[tokio::test]
async fn the_same_event_three_times_in_a_row_gives_the_same_state() {
    let w = World::new();
    w.pool(5);
    let i = w.launch(1);
    let binder = w.binder();
    let first = binding(binder.handle(&i, InstanceState::Running).await.unwrap());
    let rows = w.ledger.rows();
    let records = w.dns.all(ZONE);
    for _ in 0..2 {
        let again = binder.handle(&i, InstanceState::Running).await.unwrap();
        assert_eq!(again.kind(), "already_bound");
        assert_eq!(binding(again), first);
    }
    assert_eq!(w.ledger.rows(), rows, "no rewrite of an unchanged row");
    assert_eq!(w.dns.all(ZONE), records);
    assert_eq!(w.addresses.faults.calls("AssociateAddress"), 1);
    w.assert_consistent();
}

#[tokio::test]
async fn the_same_event_three_times_at_once_binds_one_address() {
    for round in 0..30 {
        let w = World::new();
        w.pool(6);
        let i = w.launch(round);
        let binder = w.binder();
        let results = join_all((0..3).map(|_| binder.handle(&i, InstanceState::Running))).await;
        for r in &results {
            assert!(
                matches!(r, Ok(Outcome::Bound { .. })),
                "round {round}: {r:?}"
            );
        }
        let allocations: BTreeSet<AllocationId> = results
            .into_iter()
            .map(|r| binding(r.unwrap()).allocation_id)
            .collect();
        assert_eq!(allocations.len(), 1, "round {round}: {allocations:?}");
        assert_eq!(w.held_by(round).len(), 1, "round {round}");
        w.assert_consistent();
    }
}

#[tokio::test]
async fn many_instances_at_once_never_share_an_address() {
    for round in 0..5 {
        let w = World::new();
        w.pool(20);
        let ids: Vec<InstanceId> = (0..20).map(|n| w.launch(n)).collect();
        let binder = w.binder();
        // Every event delivered twice, all at once.
        let events = ids.iter().chain(ids.iter());
        let results = join_all(events.map(|i| binder.handle(i, InstanceState::Running))).await;
        for r in &results {
            assert!(
                matches!(r, Ok(Outcome::Bound { .. })),
                "round {round}: {r:?}"
            );
        }
        let mut owners: BTreeMap<AllocationId, InstanceId> = BTreeMap::new();
        for a in w.addresses.all() {
            if let Some(i) = a.association.and_then(|x| x.instance_id) {
                owners.insert(a.allocation_id, i);
            }
        }
        assert_eq!(owners.len(), 20);
        let distinct: BTreeSet<&InstanceId> = owners.values().collect();
        assert_eq!(distinct.len(), 20);
        assert_eq!(w.a_records().len(), 20);
        assert_eq!(
            w.rows()
                .iter()
                .filter(|r| r.state == RowState::Bound)
                .count(),
            20
        );
        w.assert_consistent();
    }
}

#[tokio::test]
async fn an_exhausted_pool_fails_clearly_and_leaves_no_claim() {
    let w = World::new();
    w.pool(15);
    let ids: Vec<InstanceId> = (0..20).map(|n| w.launch(n)).collect();
    let binder = w.binder();
    let results = join_all(ids.iter().map(|i| binder.handle(i, InstanceState::Running))).await;
    let bound = results
        .iter()
        .filter(|r| matches!(r, Ok(Outcome::Bound { .. })))
        .count();
    let exhausted: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(bound, 15);
    assert_eq!(exhausted.len(), 5);
    for e in exhausted {
        assert!(matches!(e, Error::PoolExhausted { .. }), "{e:?}");
        assert!(e.to_string().contains("pool exhausted"), "{e}");
        assert!(e.to_string().contains("pool=live"), "{e}");
    }
    // The address outside the pool was never touched.
    assert!(w
        .addresses
        .all()
        .iter()
        .filter(|a| a.tags.get("pool").map(String::as_str) == Some("other"))
        .all(|a| a.association.is_none()));
    w.assert_consistent();
}

#[tokio::test]
async fn a_live_claim_is_respected_and_an_expired_one_is_taken_over() {
    let w = World::new();
    let pool = w.pool(1);
    let i = w.launch(1);
    let stale = AddressRow {
        state: RowState::Claimed,
        instance_id: Some(id(7)),
        claim_expires_at: Some(w.now.load(Ordering::SeqCst) + 30),
        ..AddressRow::new(pool[0].clone(), Some("203.0.113.1".parse().unwrap()))
    };
    w.ledger
        .put(stale.encode(&w.owner, 0), WriteCondition::Absent)
        .await
        .unwrap();
    let binder = w.binder();
    let err = binder.handle(&i, InstanceState::Running).await.unwrap_err();
    assert!(matches!(err, Error::PoolExhausted { .. }), "{err:?}");
    assert!(w.held_by(1).is_empty());
    // The caller that claimed it died; once its claim lapses the address is free.
    w.now.fetch_add(31, Ordering::SeqCst);
    let b = binding(binder.handle(&i, InstanceState::Running).await.unwrap());
    assert_eq!(b.allocation_id, pool[0]);
    w.assert_consistent();
}

#[tokio::test]
async fn an_address_taken_outside_berth_moves_on_to_the_next_one() {
    let w = World::new();
    w.pool(3);
    let i = w.launch(1);
    // The first association attempt finds the address already associated (someone
    // else took it between our look and our call).
    w.addresses.faults.fail(
        "AssociateAddress",
        Error::conflict("Resource.AlreadyAssociated"),
        1,
    );
    let b = binding(w.binder().handle(&i, InstanceState::Running).await.unwrap());
    assert_eq!(w.held_by(1)[0].allocation_id, b.allocation_id);
    assert_eq!(w.addresses.faults.calls("AssociateAddress"), 2);
    // The first claim was withdrawn: one bound row and one free row.
    let states: Vec<RowState> = w.rows().iter().map(|r| r.state).collect();
    assert_eq!(states.iter().filter(|s| **s == RowState::Bound).count(), 1);
    assert_eq!(states.iter().filter(|s| **s == RowState::Free).count(), 1);
    w.assert_consistent();
}

#[tokio::test]
async fn a_failed_association_withdraws_the_claim_and_fails() {
    let w = World::new();
    w.pool(2);
    let i = w.launch(1);
    let throttled = Error::Throttled {
        operation: "AssociateAddress".into(),
        message: "Rate exceeded".into(),
    };
    w.addresses
        .faults
        .fail("AssociateAddress", throttled.clone(), 1);
    let binder = w.binder();
    assert_eq!(
        binder.handle(&i, InstanceState::Running).await.unwrap_err(),
        throttled
    );
    w.assert_consistent();
    // Lambda retries the event: it succeeds.
    binding(binder.handle(&i, InstanceState::Running).await.unwrap());
    w.assert_consistent();
}

#[tokio::test]
async fn a_crash_after_the_claim_is_resumed_by_the_retry() {
    let w = World::new();
    w.pool(4);
    let i = w.launch(1);
    let binder = w.binder();
    // The invocation dies after associating: its DNS write fails and nothing more runs.
    w.dns.faults.fail(
        "ChangeResourceRecordSets",
        Error::Unavailable {
            operation: "ChangeResourceRecordSets".into(),
            message: "connection reset".into(),
        },
        1,
    );
    let outcome = binder.handle(&i, InstanceState::Running).await;
    assert!(outcome.is_err());
    let claimed: Vec<AddressRow> = w
        .rows()
        .into_iter()
        .filter(|r| r.state == RowState::Claimed)
        .collect();
    assert_eq!(claimed.len(), 1, "the claim survives the crash");
    // The retry finds the address on the instance and completes the binding.
    let b = binding(binder.handle(&i, InstanceState::Running).await.unwrap());
    assert_eq!(b.allocation_id, claimed[0].allocation_id);
    w.assert_consistent();
}

#[tokio::test]
async fn terminate_releases_everything_and_the_next_instance_reuses_it() {
    let w = World::new();
    w.pool(1);
    let first = w.launch(1);
    let binder = w.binder();
    let b = binding(binder.handle(&first, InstanceState::Running).await.unwrap());
    w.set_state(1, InstanceState::Terminated).await;
    for state in [InstanceState::ShuttingDown, InstanceState::Terminated] {
        let outcome = binder.handle(&first, state).await.unwrap();
        assert_eq!(outcome.kind(), "released");
    }
    assert!(w.held_by(1).is_empty());
    assert!(w.dns.all(ZONE).is_empty(), "record and marker deleted");
    let rows = w.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, RowState::Free);
    assert_eq!(rows[0].instance_id, None);
    w.assert_consistent();
    // Released twice more (at-least-once delivery): still success, nothing changes.
    match binder
        .handle(&first, InstanceState::Terminated)
        .await
        .unwrap()
    {
        Outcome::Released {
            addresses,
            dns_names,
        } => {
            assert!(addresses.is_empty() && dns_names.is_empty())
        }
        other => panic!("{other:?}"),
    }
    let second = w.launch(2);
    let again = binding(
        binder
            .handle(&second, InstanceState::Running)
            .await
            .unwrap(),
    );
    assert_eq!(again.allocation_id, b.allocation_id);
    assert_eq!(again.dns_name, b.dns_name);
    w.assert_consistent();
}

#[tokio::test]
async fn stop_keeps_the_address_by_default_and_releases_it_when_configured() {
    let w = World::new();
    w.pool(3);
    let i = w.launch(1);
    let binder = w.binder();
    let b = binding(binder.handle(&i, InstanceState::Running).await.unwrap());
    for state in [InstanceState::Stopping, InstanceState::Stopped] {
        assert_eq!(binder.handle(&i, state).await.unwrap().kind(), "ignored");
    }
    assert_eq!(w.held_by(1)[0].allocation_id, b.allocation_id);
    let again = binder.handle(&i, InstanceState::Running).await.unwrap();
    assert_eq!(again.kind(), "already_bound");
    assert_eq!(binding(again).allocation_id, b.allocation_id);

    let releasing = w.binder_with(w.settings(true));
    assert_eq!(
        releasing
            .handle(&i, InstanceState::Stopped)
            .await
            .unwrap()
            .kind(),
        "released"
    );
    assert!(w.held_by(1).is_empty());
    w.assert_consistent();
}

#[tokio::test]
async fn a_dns_name_owned_by_someone_else_is_left_alone() {
    let w = World::new();
    w.pool(1);
    let i = w.launch(1);
    let name = format!("203-0-113-1.{SUFFIX}");
    let foreign = DnsRecord::new(&name, RecordType::A, 300, vec!["192.0.2.55".into()]);
    w.dns.put(ZONE, foreign.clone());
    let binder = w.binder();
    let b = binding(binder.handle(&i, InstanceState::Running).await.unwrap());
    assert_eq!(b.dns_name, None);
    assert!(b.dns_skipped.unwrap().contains("does not own"));
    assert_eq!(w.dns.all(ZONE), vec![foreign.clone()], "not overwritten");
    assert_eq!(w.held_by(1).len(), 1, "the address is still bound");
    // Releasing does not delete it either.
    binder.handle(&i, InstanceState::Terminated).await.unwrap();
    assert_eq!(w.dns.all(ZONE), vec![foreign]);
}

#[tokio::test]
async fn release_never_touches_an_address_now_on_another_instance() {
    let w = World::new();
    let pool = w.pool(1);
    let i = w.launch(1);
    let j = w.launch(2);
    // A stale row says i holds the address; EC2 says j does.
    let row = AddressRow {
        state: RowState::Bound,
        instance_id: Some(i.clone()),
        association_id: Some("eipassoc-old".into()),
        ..AddressRow::new(pool[0].clone(), Some("203.0.113.1".parse().unwrap()))
    };
    w.ledger
        .put(row.encode(&w.owner, 0), WriteCondition::Absent)
        .await
        .unwrap();
    let target = AssociationTarget {
        instance_id: j.clone(),
        network_interface_id: "eni-0002".into(),
        private_ip: "10.0.0.3".parse().unwrap(),
    };
    w.addresses.associate(&pool[0], &target).await.unwrap();
    w.binder()
        .handle(&i, InstanceState::Terminated)
        .await
        .unwrap();
    assert_eq!(w.held_by(2).len(), 1);
    assert_eq!(w.rows()[0].state, RowState::Bound, "left for j's own event");
}

#[tokio::test]
async fn rows_of_another_owner_are_never_used() {
    let w = World::new();
    let pool = w.pool(1);
    let i = w.launch(1);
    let other = Owner::new("someone-else").unwrap();
    w.ledger
        .put(
            AddressRow::new(pool[0].clone(), None).encode(&other, 0),
            WriteCondition::Absent,
        )
        .await
        .unwrap();
    let err = w
        .binder()
        .handle(&i, InstanceState::Running)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PoolExhausted { .. }), "{err:?}");
    assert_eq!(w.ledger.rows()[0].owner, other);
}

#[tokio::test]
async fn a_bad_template_fails_before_any_change() {
    let w = World::new();
    w.pool(2);
    let i = w.launch(1);
    let mut settings = w.settings(false);
    settings.name_template = DnsNameTemplate::parse("{tag:missing}").unwrap();
    let err = w
        .binder_with(settings)
        .handle(&i, InstanceState::Running)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(w.ledger.rows().is_empty());
    assert!(w.held_by(1).is_empty());
}

#[tokio::test]
async fn pending_is_ignored() {
    let w = World::new();
    w.pool(1);
    let i = w.launch(1);
    let outcome = w.binder().handle(&i, InstanceState::Pending).await.unwrap();
    assert_eq!(outcome.kind(), "ignored");
    assert_eq!(w.instances.faults.total_calls(), 0);
}
