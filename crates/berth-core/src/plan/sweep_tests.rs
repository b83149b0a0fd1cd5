//! The sweep's rules on plain values.

use super::*;
use crate::domain::{Association, NetworkInterface, Tags};

const NOW: u64 = 1_000;

fn id(n: usize) -> InstanceId {
    InstanceId::new(format!("i-{n:04}")).unwrap()
}

fn alloc(k: usize) -> AllocationId {
    AllocationId(format!("eipalloc-{k}"))
}

fn filter() -> TagFilter {
    TagFilter::parse("team=live").unwrap()
}

fn instance(n: usize, state: InstanceState, team: &str) -> Instance {
    Instance {
        id: id(n),
        state,
        availability_zone: "eu-west-1a".into(),
        private_ips: vec![],
        interfaces: vec![NetworkInterface {
            id: format!("eni-{n}"),
            device_index: 0,
            private_ip: "10.0.0.1".parse().unwrap(),
            public_ip: None,
        }],
        tags: [("team".to_owned(), team.to_owned())]
            .into_iter()
            .collect::<Tags>(),
    }
}

fn running(n: usize) -> Instance {
    instance(n, InstanceState::Running, "live")
}

fn eip(k: usize, on: Option<usize>) -> ElasticIp {
    ElasticIp {
        allocation_id: alloc(k),
        public_ip: format!("203.0.113.{k}").parse().unwrap(),
        association: on.map(|n| Association {
            association_id: format!("eipassoc-{k}-{n}"),
            instance_id: Some(id(n)),
            network_interface_id: Some(format!("eni-{n}")),
            private_ip: None,
        }),
        tags: Tags::default(),
    }
}

fn row(k: usize, state: RowState, holder: Option<usize>) -> AddressRow {
    AddressRow {
        state,
        instance_id: holder.map(id),
        association_id: (state == RowState::Bound)
            .then(|| format!("eipassoc-{k}-{}", holder.unwrap())),
        dns_name: (state == RowState::Bound).then(|| format!("203-0-113-{k}.example.com.")),
        claim_expires_at: (state == RowState::Claimed).then_some(NOW + 60),
        version: Some(1),
        ..AddressRow::new(alloc(k), Some(format!("203.0.113.{k}").parse().unwrap()))
    }
}

fn plan(
    rows: &[AddressRow],
    pool: &[ElasticIp],
    instances: &[Instance],
    release_on_stop: bool,
) -> SweepPlan {
    plan_sweep(SweepObservation {
        rows,
        pool,
        instances,
        instance_filter: &filter(),
        policy: AddressPolicy { release_on_stop },
        now: NOW,
    })
}

#[test]
fn a_complete_pool_needs_nothing() {
    let rows = [
        row(1, RowState::Bound, Some(1)),
        row(2, RowState::Free, None),
    ];
    let pool = [eip(1, Some(1)), eip(2, None)];
    let p = plan(&rows, &pool, &[running(1)], false);
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn a_running_matching_instance_without_an_address_is_bound() {
    let pool = [eip(1, None)];
    let p = plan(
        &[],
        &pool,
        &[running(1), instance(2, InstanceState::Running, "other")],
        false,
    );
    assert_eq!(
        p.bind,
        vec![id(1)],
        "the instance whose tags do not match is left alone"
    );
    assert!(p.release.is_empty() && p.free.is_empty());
}

#[test]
fn pending_and_stopped_instances_are_not_bound() {
    let pool = [eip(1, None)];
    let instances = [
        instance(1, InstanceState::Pending, "live"),
        instance(2, InstanceState::Stopped, "live"),
    ];
    assert!(plan(&[], &pool, &instances, false).is_empty());
}

#[test]
fn an_address_on_the_instance_without_its_bound_row_is_settled_by_a_bind() {
    // The row write was lost after the association: the bind keeps the address.
    let rows = [row(1, RowState::Free, None)];
    let pool = [eip(1, Some(1))];
    assert_eq!(plan(&rows, &pool, &[running(1)], false).bind, vec![id(1)]);
    // A lapsed claim whose address is on its instance is settled too, not freed.
    let mut claimed = row(1, RowState::Claimed, Some(1));
    claimed.claim_expires_at = Some(NOW - 1);
    let p = plan(&[claimed], &pool, &[running(1)], false);
    assert_eq!(p.bind, vec![id(1)]);
    assert!(p.free.is_empty(), "{p:?}");
}

#[test]
fn rows_of_terminated_or_gone_instances_are_released() {
    let rows = [
        row(1, RowState::Bound, Some(1)),
        row(2, RowState::Bound, Some(2)),
        row(3, RowState::Bound, Some(3)),
    ];
    let pool = [eip(1, Some(1)), eip(2, None), eip(3, Some(3))];
    let instances = [
        instance(1, InstanceState::Terminated, "live"),
        // 2 is gone: EC2 does not know it any more.
        running(3),
    ];
    let p = plan(&rows, &pool, &instances, false);
    assert_eq!(p.release, vec![id(1), id(2)]);
    assert!(p.bind.is_empty(), "{p:?}");
}

#[test]
fn stopped_instances_are_released_only_with_release_on_stop() {
    let rows = [row(1, RowState::Bound, Some(1))];
    let pool = [eip(1, Some(1))];
    let stopped = [instance(1, InstanceState::Stopped, "live")];
    assert!(plan(&rows, &pool, &stopped, false).is_empty());
    assert_eq!(plan(&rows, &pool, &stopped, true).release, vec![id(1)]);
}

#[test]
fn lapsed_claims_are_freed_and_live_ones_left_to_their_invocation() {
    let mut lapsed = row(1, RowState::Claimed, Some(1));
    lapsed.claim_expires_at = Some(NOW);
    let live = row(2, RowState::Claimed, Some(2));
    let pool = [eip(1, None), eip(2, None)];
    // Instance 2 is not visible yet (EC2 is eventually consistent): its live claim
    // is still not touched.
    let p = plan(
        &[lapsed, live],
        &pool,
        &[instance(1, InstanceState::Stopped, "live")],
        false,
    );
    assert_eq!(p.free.len(), 1, "{p:?}");
    assert_eq!(p.free[0].row.allocation_id, alloc(1));
    assert_eq!(p.free[0].reason, "a lapsed claim");
    assert_eq!(
        p.skipped,
        vec![(alloc(2), "a live claim: an invocation is binding it")]
    );
    assert!(p.release.is_empty());
}

#[test]
fn a_binding_whose_address_left_its_instance_is_freed_and_the_instance_rebound() {
    let rows = [row(1, RowState::Bound, Some(1))];
    let pool = [eip(1, None)];
    let p = plan(&rows, &pool, &[running(1)], false);
    assert_eq!(p.free.len(), 1);
    assert_eq!(p.free[0].reason, "the address has left the instance");
    assert_eq!(p.bind, vec![id(1)]);
}

#[test]
fn associations_no_row_of_ours_names_are_never_touched() {
    // Address 1 is on an instance berth never bound (another system's, or outside
    // the filter): no row of ours names it, so nothing is released or freed.
    let pool = [eip(1, Some(9))];
    let instances = [instance(9, InstanceState::Terminated, "other")];
    let p = plan(&[], &pool, &instances, false);
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn planning_what_a_complete_sweep_left_plans_nothing() {
    // The state a sweep leaves: every running matching instance bound, every other
    // row free.
    let rows = [
        row(1, RowState::Bound, Some(1)),
        row(2, RowState::Bound, Some(2)),
        row(3, RowState::Free, None),
    ];
    let pool = [eip(1, Some(1)), eip(2, Some(2)), eip(3, None)];
    let instances = [
        running(1),
        running(2),
        instance(3, InstanceState::Terminated, "live"),
    ];
    assert!(plan(&rows, &pool, &instances, true).is_empty());
}
