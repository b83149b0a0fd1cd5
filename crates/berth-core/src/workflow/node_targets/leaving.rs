//! The spot rule: EC2's notices that an instance is about to go (read from IMDS on the
//! instance) as node taints, which the node rules count as disruption taints.
//!
//! One rule for every deployment shape: node mode adds the taint in memory to its own
//! node ([`with_notice_taints`]); notice mode (a DaemonSet that only polls IMDS) writes
//! it on its Node object ([`taints_to_add`]), and the cluster-mode leader, seeing it in
//! the node watch, takes the node out exactly as node mode does.
//!
//! berth's own keys (`berth.dev/…`, the project's namespace, as its ownership
//! annotation) rather than aws-node-termination-handler's: a cluster running both must
//! be able to tell who wrote a taint, and NTH removes its own taints after a reboot.
//! NTH's keys are disruption taints anyway (`aws-node-termination-handler/` prefix).

use std::collections::BTreeSet;

use crate::domain::{Node, Taint, TaintEffect};
use crate::plan::TaintMatch;

/// The taint on a node whose spot instance EC2 will interrupt (IMDS
/// `spot/instance-action`): about two minutes before the instance stops.
pub const SPOT_INTERRUPTION_TAINT: &str = "berth.dev/spot-interruption";

/// The taint on a node whose spot instance is at elevated risk of interruption (IMDS
/// `events/recommendations/rebalance`): usually earlier than the interruption notice,
/// leaving time for a deregistration delay longer than two minutes.
pub const REBALANCE_RECOMMENDATION_TAINT: &str = "berth.dev/rebalance-recommendation";

/// A notice from EC2 that an instance is about to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstanceNotice {
    /// A spot interruption is scheduled.
    SpotInterruption,
    /// EC2 recommends moving off this spot instance.
    RebalanceRecommendation,
}

impl InstanceNotice {
    /// Every notice.
    pub const ALL: [InstanceNotice; 2] = [
        InstanceNotice::SpotInterruption,
        InstanceNotice::RebalanceRecommendation,
    ];

    /// The taint key marking it.
    pub fn taint_key(self) -> &'static str {
        match self {
            InstanceNotice::SpotInterruption => SPOT_INTERRUPTION_TAINT,
            InstanceNotice::RebalanceRecommendation => REBALANCE_RECOMMENDATION_TAINT,
        }
    }

    /// The taint marking it. `NoSchedule` for an interruption (nothing new should land
    /// on a node that stops in two minutes), `PreferNoSchedule` for a recommendation (it
    /// may never be followed by one). Neither evicts: berth moves load balancer traffic,
    /// draining pods is another tool's job.
    pub fn taint(self) -> Taint {
        let effect = match self {
            InstanceNotice::SpotInterruption => TaintEffect::NoSchedule,
            InstanceNotice::RebalanceRecommendation => TaintEffect::PreferNoSchedule,
        };
        Taint::new(self.taint_key(), effect)
    }
}

impl std::fmt::Display for InstanceNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InstanceNotice::SpotInterruption => "spot interruption notice",
            InstanceNotice::RebalanceRecommendation => "rebalance recommendation",
        })
    }
}

/// The disruption taints of the notices: a node carrying one leaves its groups.
pub fn notice_disruption_taints() -> impl Iterator<Item = TaintMatch> {
    InstanceNotice::ALL
        .into_iter()
        .map(|n| TaintMatch::Key(n.taint_key().to_owned()))
}

/// The taints a node carrying `current` lacks to mark `notices`: one per notice whose
/// key it does not carry yet (whatever the value or effect someone gave it). Empty when
/// nothing is to be written, so a caller patches only then. Never removes anything.
pub fn taints_to_add(
    current: &[Taint],
    notices: impl IntoIterator<Item = InstanceNotice>,
) -> Vec<Taint> {
    let wanted: BTreeSet<InstanceNotice> = notices.into_iter().collect();
    wanted
        .into_iter()
        .filter(|n| !current.iter().any(|t| t.key == n.taint_key()))
        .map(InstanceNotice::taint)
        .collect()
}

/// `node` with the taints of `notices` added where absent (node mode's own node, in
/// memory only).
pub fn with_notice_taints(node: &Node, notices: &BTreeSet<InstanceNotice>) -> Node {
    let mut node = node.clone();
    let add = taints_to_add(&node.taints, notices.iter().copied());
    node.taints.extend(add);
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taint_is_added_only_when_its_key_is_absent() {
        use InstanceNotice::*;
        assert_eq!(
            taints_to_add(&[], [SpotInterruption]),
            vec![Taint::new(SPOT_INTERRUPTION_TAINT, TaintEffect::NoSchedule)]
        );
        assert_eq!(
            taints_to_add(
                &[],
                [RebalanceRecommendation, SpotInterruption, SpotInterruption]
            ),
            vec![
                Taint::new(SPOT_INTERRUPTION_TAINT, TaintEffect::NoSchedule),
                Taint::new(
                    REBALANCE_RECOMMENDATION_TAINT,
                    TaintEffect::PreferNoSchedule
                ),
            ]
        );
        // Already there (even with another effect or a value someone gave it): nothing.
        let mut present = Taint::new(SPOT_INTERRUPTION_TAINT, TaintEffect::NoExecute);
        present.value = Some("manual".into());
        let others = [
            Taint::new("dedicated", TaintEffect::NoSchedule),
            present.clone(),
        ];
        assert!(taints_to_add(&others, [SpotInterruption]).is_empty());
        assert_eq!(
            taints_to_add(&others, InstanceNotice::ALL),
            vec![RebalanceRecommendation.taint()]
        );
        assert!(taints_to_add(&others, []).is_empty());
    }

    #[test]
    fn in_memory_taints_keep_the_node_s_own() {
        let mut node = Node::new("n");
        node.taints
            .push(Taint::new("dedicated", TaintEffect::NoSchedule));
        let notices = BTreeSet::from([InstanceNotice::SpotInterruption]);
        let tainted = with_notice_taints(&node, &notices);
        assert_eq!(tainted.taints.len(), 2);
        assert!(tainted.has_taint("dedicated") && tainted.has_taint(SPOT_INTERRUPTION_TAINT));
        assert_eq!(with_notice_taints(&tainted, &notices), tainted);
        assert_eq!(with_notice_taints(&node, &BTreeSet::new()), node);
    }
}
