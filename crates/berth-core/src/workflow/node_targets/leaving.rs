//! The spot rule: EC2's notices that an instance is about to go (read from IMDS on the
//! instance) as node taints, which the node rules count as disruption taints.
//!
//! One rule for every deployment shape: node mode adds the taint in memory to its own
//! node ([`with_notice_taints`]); notice mode (a DaemonSet that only polls IMDS) writes
//! it on its Node object and removes it when the notice is gone
//! ([`plan_notice_taints`]), and the cluster-mode leader, seeing it in the node watch,
//! takes the node out exactly as node mode does (and back once it is gone).
//!
//! berth's own keys (`berth.dev/…`, the project's namespace, as its ownership
//! annotation) rather than aws-node-termination-handler's: a cluster running both must
//! be able to tell who wrote a taint, and NTH removes its own taints after a reboot.
//! NTH's keys are disruption taints anyway (`aws-node-termination-handler/` prefix).
//!
//! Removal ([`plan_notice_taints`]): the key is the ownership marker — a taint whose key
//! is one of berth's two notice keys is berth's, nothing else is. Notice mode removes
//! the taint of a notice only when IMDS answered that this notice is not pending (never
//! on an IMDS error), so a stopped-and-started spot instance, whose
//! `spot/instance-action` is gone, comes back into its groups. A rebalance
//! recommendation stays in IMDS for the instance's life once issued: its taint only
//! goes when a restarted instance's IMDS no longer shows it.

use std::collections::{BTreeMap, BTreeSet};

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

    /// The notice whose taint has `key`, if `key` is one of berth's notice keys.
    pub fn of_taint_key(key: &str) -> Option<InstanceNotice> {
        InstanceNotice::ALL
            .into_iter()
            .find(|n| n.taint_key() == key)
    }

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

/// What IMDS answered about one notice on a poll. A notice IMDS could not be asked
/// about (an error) has no state: nothing is decided about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeState {
    /// IMDS announces it (`200` with a valid answer).
    Pending,
    /// IMDS answered that there is none (`404`).
    Absent,
}

/// The notices' states as IMDS answered them; a notice missing from the map could not
/// be read.
pub type NoticeStates = BTreeMap<InstanceNotice, NoticeState>;

/// Taints to add to and remove from a node, as notice mode writes them in one patch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaintChange {
    /// Taints the node lacks.
    pub add: Vec<Taint>,
    /// Taints of the node to remove (exactly as the node carries them).
    pub remove: Vec<Taint>,
}

impl TaintChange {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// Notice mode's plan for its own node carrying `current`, given what IMDS answered:
/// - a [`NoticeState::Pending`] notice whose key the node lacks: its taint is added
///   ([`taints_to_add`]);
/// - a [`NoticeState::Absent`] notice whose key the node carries: every taint with
///   that key is removed — the key is berth's ownership marker (`berth.dev/…`, written
///   only by berth), so no other taint is ever touched;
/// - a notice with no state (IMDS failed): nothing, either way.
///
/// Empty when the node is as IMDS says, so a caller patches only then; the same
/// observation twice plans nothing the second time.
pub fn plan_notice_taints(current: &[Taint], observed: &NoticeStates) -> TaintChange {
    let pending = observed
        .iter()
        .filter(|(_, state)| **state == NoticeState::Pending)
        .map(|(notice, _)| *notice);
    let remove = current
        .iter()
        .filter(|t| {
            InstanceNotice::of_taint_key(&t.key)
                .is_some_and(|n| observed.get(&n) == Some(&NoticeState::Absent))
        })
        .cloned()
        .collect();
    TaintChange {
        add: taints_to_add(current, pending),
        remove,
    }
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

    fn states(states: &[(InstanceNotice, NoticeState)]) -> NoticeStates {
        states.iter().copied().collect()
    }

    /// `current` with `change` applied, as the adapter writes it.
    fn applied(current: &[Taint], change: &TaintChange) -> Vec<Taint> {
        let mut taints: Vec<Taint> = current
            .iter()
            .filter(|t| !change.remove.contains(t))
            .cloned()
            .collect();
        taints.extend(change.add.iter().cloned());
        taints
    }

    #[test]
    fn a_notice_imds_says_is_not_pending_removes_only_berths_taint_of_that_kind() {
        use InstanceNotice::*;
        use NoticeState::*;
        let foreign = [
            Taint::new("dedicated", TaintEffect::NoSchedule),
            // NTH's taint for the same event: not berth's key, never removed.
            Taint::new(
                "aws-node-termination-handler/spot-itn",
                TaintEffect::NoSchedule,
            ),
            // Under berth's namespace but not a notice key: not a notice taint.
            Taint::new("berth.dev/spot-interruption-other", TaintEffect::NoSchedule),
        ];
        let mut manual = SpotInterruption.taint();
        manual.value = Some("x".into());
        manual.effect = TaintEffect::NoExecute;
        let current: Vec<Taint> = foreign
            .iter()
            .cloned()
            .chain([
                SpotInterruption.taint(),
                manual.clone(),
                RebalanceRecommendation.taint(),
            ])
            .collect();
        // The spot notice is gone (a stopped-and-started instance): both taints under its
        // key go, whatever their value or effect; the rebalance one stays (pending).
        let change = plan_notice_taints(
            &current,
            &states(&[
                (SpotInterruption, Absent),
                (RebalanceRecommendation, Pending),
            ]),
        );
        assert_eq!(
            change,
            TaintChange {
                add: vec![],
                remove: vec![SpotInterruption.taint(), manual],
            }
        );
        let after = applied(&current, &change);
        assert_eq!(
            after,
            foreign
                .iter()
                .cloned()
                .chain([RebalanceRecommendation.taint()])
                .collect::<Vec<_>>()
        );
        // Idempotent: the same observation on the result plans nothing.
        let again = plan_notice_taints(
            &after,
            &states(&[
                (SpotInterruption, Absent),
                (RebalanceRecommendation, Pending),
            ]),
        );
        assert!(again.is_empty(), "{again:?}");
        // Both gone: only berth's rebalance taint goes too; the foreign ones stay.
        let both = states(&[
            (SpotInterruption, Absent),
            (RebalanceRecommendation, Absent),
        ]);
        let change = plan_notice_taints(&after, &both);
        assert_eq!(change.remove, vec![RebalanceRecommendation.taint()]);
        assert_eq!(applied(&after, &change), foreign);
        assert!(plan_notice_taints(&foreign, &both).is_empty());
    }

    #[test]
    fn a_pending_notice_keeps_or_adds_its_taint() {
        use InstanceNotice::*;
        use NoticeState::*;
        let pending = states(&[
            (SpotInterruption, Pending),
            (RebalanceRecommendation, Pending),
        ]);
        let tainted = [SpotInterruption.taint()];
        assert_eq!(
            plan_notice_taints(&tainted, &pending),
            TaintChange {
                add: vec![RebalanceRecommendation.taint()],
                remove: vec![],
            }
        );
        let all = [SpotInterruption.taint(), RebalanceRecommendation.taint()];
        assert!(plan_notice_taints(&all, &pending).is_empty());
        // A notice added while the other goes, in one change.
        let change = plan_notice_taints(
            &tainted,
            &states(&[
                (SpotInterruption, Absent),
                (RebalanceRecommendation, Pending),
            ]),
        );
        assert_eq!(change.add, vec![RebalanceRecommendation.taint()]);
        assert_eq!(change.remove, vec![SpotInterruption.taint()]);
    }

    #[test]
    fn a_notice_imds_could_not_answer_about_changes_nothing() {
        use InstanceNotice::*;
        let all = [SpotInterruption.taint(), RebalanceRecommendation.taint()];
        assert!(plan_notice_taints(&all, &NoticeStates::new()).is_empty());
        assert!(plan_notice_taints(&[], &NoticeStates::new()).is_empty());
        // Only the spot notice was read (absent): the rebalance taint is left alone.
        let change = plan_notice_taints(&all, &states(&[(SpotInterruption, NoticeState::Absent)]));
        assert_eq!(change.remove, vec![SpotInterruption.taint()]);
        assert!(change.add.is_empty());
    }

    #[test]
    fn only_berths_notice_keys_name_a_notice() {
        for notice in InstanceNotice::ALL {
            assert_eq!(
                InstanceNotice::of_taint_key(notice.taint_key()),
                Some(notice)
            );
        }
        for key in [
            "aws-node-termination-handler/rebalance-recommendation",
            "berth.dev/spot",
            "",
        ] {
            assert_eq!(InstanceNotice::of_taint_key(key), None);
        }
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
