//! When a pass should run again although nothing is announced: pure functions of the
//! pass's inputs and observations.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::domain::{Node, Target, TargetGroup, TargetGroupArn};
use crate::plan::{NodeDecision, NodeVerdict, ObservedMembership};

/// How soon a drain the passes follow is checked again, and the longest wait before a
/// wanted target that is still draining is looked at again.
pub const DRAIN_RECHECK: Duration = Duration::from_secs(30);

/// Margin after a grace expiry, so the pass runs just after it rather than just
/// before (and holds once more).
const AFTER_EXPIRY: Duration = Duration::from_millis(100);

/// How long until the first NotReady node's grace runs out, if one is counting down (a
/// node NotReady since an unknown time is held until it changes: nothing to count).
pub fn grace_expiry(nodes: &[Node], grace: Duration, now: SystemTime) -> Option<Duration> {
    nodes
        .iter()
        .filter_map(|n| n.not_ready_for(now))
        .filter(|down| *down < grace)
        .map(|down| grace - down + AFTER_EXPIRY)
        .min()
}

/// When to look again at targets a node should serve but that are still draining (they
/// are registered only once gone): after the group's deregistration delay, at most
/// [`DRAIN_RECHECK`] (the drain may have begun long ago).
pub(super) fn draining_wanted(
    verdicts: &[NodeVerdict],
    observed: &ObservedMembership,
    resolved: &BTreeMap<TargetGroupArn, TargetGroup>,
) -> Option<Duration> {
    verdicts
        .iter()
        .filter_map(|v| match (&v.decision, &v.instance_id) {
            (NodeDecision::Serve(groups), Some(id)) => Some((groups, id)),
            _ => None,
        })
        .flat_map(|(groups, id)| {
            groups.iter().filter(move |(group, port)| {
                observed
                    .state(group, &Target::new(id.as_str(), *port))
                    .is_some_and(|s| s.is_draining())
            })
        })
        .map(|(group, _)| {
            resolved
                .get(group)
                .map_or(DRAIN_RECHECK, |g| g.deregistration_delay.min(DRAIN_RECHECK))
                .max(Duration::from_secs(1))
        })
        .min()
}

/// The earliest of two optional delays.
pub(super) fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
