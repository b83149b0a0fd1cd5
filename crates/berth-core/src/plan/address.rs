//! Elastic IP binding for one instance.

use crate::domain::{
    AllocationId, AssociationTarget, ElasticIp, Instance, InstanceId, InstanceState,
};
use crate::{Error, Result};

/// Choices the operator makes about address lifetime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Release the address when the instance stops (by default a stopped instance keeps
    /// it and comes back with the same one; terminating always releases).
    pub release_on_stop: bool,
}

/// What to do about one instance's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressDecision {
    /// The primary interface already holds a pool address: keep it (idempotent).
    Keep(ElasticIp),
    /// Bind one of these free pool addresses, tried in this order.
    Bind {
        /// Where to associate.
        target: AssociationTarget,
        /// Free addresses, in a deterministic per-instance order.
        candidates: Vec<AllocationId>,
    },
    /// No free address is left.
    Exhausted,
    /// Release these pool addresses, which the instance holds.
    Release(Vec<ElasticIp>),
    /// Nothing to do, and why.
    Nothing(&'static str),
}

/// Decides what an instance in `state` needs from the pool.
///
/// `instance` is the instance as EC2 describes it now (needed for `running`);
/// `pool` are the pool's addresses with their current associations (AWS's truth).
/// Claims by other callers are not consulted here: the caller's conditional ledger
/// write decides them, in the same write that takes the address.
///
/// Candidates are ordered by a hash of (instance, address): deterministic for one
/// instance, but different instances start at different addresses, so concurrent
/// launches rarely race for the same one.
pub fn plan_address(
    instance_id: &InstanceId,
    state: InstanceState,
    instance: Option<&Instance>,
    pool: &[ElasticIp],
    policy: AddressPolicy,
) -> Result<AddressDecision> {
    match state {
        InstanceState::Running => {
            let instance =
                instance.ok_or_else(|| Error::not_found(format!("instance {instance_id}")))?;
            let primary = instance.primary_interface().ok_or_else(|| {
                Error::invalid(format!(
                    "instance {instance_id} has no primary network interface (device index 0)"
                ))
            })?;
            if let Some(held) = pool.iter().find(|a| {
                a.is_on_interface(&primary.id)
                    || (a.is_on(instance_id)
                        && a.association
                            .as_ref()
                            .is_some_and(|x| x.network_interface_id.is_none()))
            }) {
                return Ok(AddressDecision::Keep(held.clone()));
            }
            let mut candidates: Vec<&ElasticIp> =
                pool.iter().filter(|a| a.association.is_none()).collect();
            if candidates.is_empty() {
                return Ok(AddressDecision::Exhausted);
            }
            candidates.sort_by_key(|a| {
                (
                    rendezvous(instance_id.as_str(), &a.allocation_id.0),
                    a.allocation_id.clone(),
                )
            });
            Ok(AddressDecision::Bind {
                target: AssociationTarget {
                    instance_id: instance_id.clone(),
                    network_interface_id: primary.id.clone(),
                    private_ip: primary.private_ip,
                },
                candidates: candidates
                    .into_iter()
                    .map(|a| a.allocation_id.clone())
                    .collect(),
            })
        }
        s if s.is_terminating() || (s.is_stopping() && policy.release_on_stop) => {
            let held: Vec<ElasticIp> = pool
                .iter()
                .filter(|a| a.is_on(instance_id))
                .cloned()
                .collect();
            if held.is_empty() {
                Ok(AddressDecision::Nothing(
                    "the instance holds no pool address",
                ))
            } else {
                Ok(AddressDecision::Release(held))
            }
        }
        s if s.is_stopping() => Ok(AddressDecision::Nothing(
            "a stopped instance keeps its address",
        )),
        _ => Ok(AddressDecision::Nothing("the instance is not running yet")),
    }
}

/// FNV-1a over both ids: stable across Rust versions, unlike `DefaultHasher`.
fn rendezvous(instance: &str, allocation: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in instance.bytes().chain([0u8]).chain(allocation.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
