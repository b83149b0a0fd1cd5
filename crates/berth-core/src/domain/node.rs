//! A Kubernetes node as berth sees it: plain data, converted from the API object by
//! berth-kube, so the rules about nodes stay pure and testable here.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::InstanceId;

/// A taint's effect, as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaintEffect {
    /// `NoSchedule`
    NoSchedule,
    /// `PreferNoSchedule`
    PreferNoSchedule,
    /// `NoExecute`
    NoExecute,
}

impl TaintEffect {
    /// Parses the Kubernetes spelling; unknown effects are `None`.
    pub fn parse(effect: &str) -> Option<Self> {
        match effect {
            "NoSchedule" => Some(TaintEffect::NoSchedule),
            "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
            "NoExecute" => Some(TaintEffect::NoExecute),
            _ => None,
        }
    }

    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// A node taint (the value is kept: some disruption taints carry their reason there).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Taint {
    /// The taint key, e.g. `karpenter.sh/disrupted`.
    pub key: String,
    /// The taint value, often empty.
    pub value: Option<String>,
    /// The effect.
    pub effect: TaintEffect,
}

impl Taint {
    /// A taint without a value.
    pub fn new(key: impl Into<String>, effect: TaintEffect) -> Self {
        Taint {
            key: key.into(),
            value: None,
            effect,
        }
    }
}

/// A Kubernetes node, reduced to what berth's rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `metadata.name`.
    pub name: String,
    /// The EC2 instance from `spec.providerID` (`aws:///<az>/<id>`); `None` when the
    /// provider id is missing or not an AWS one.
    pub instance_id: Option<InstanceId>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// Whether the `Ready` condition is `True` (an absent or `Unknown` condition is not ready).
    pub ready: bool,
    /// When the `Ready` condition last changed (its `lastTransitionTime`), if known.
    pub ready_since: Option<SystemTime>,
}

impl Node {
    /// A ready, schedulable node with no labels, taints or instance.
    pub fn new(name: impl Into<String>) -> Self {
        Node {
            name: name.into(),
            instance_id: None,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            unschedulable: false,
            ready: true,
            ready_since: None,
        }
    }

    /// Sets the instance from a `spec.providerID`; a non-AWS id leaves it `None`.
    pub fn with_provider_id(mut self, provider_id: &str) -> Self {
        self.instance_id = InstanceId::from_provider_id(provider_id).ok();
        self
    }

    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// Whether the node carries a taint with this key (any effect).
    pub fn has_taint(&self, key: &str) -> bool {
        self.taints.iter().any(|t| t.key == key)
    }

    /// How long the node has been not ready at `now`, or `None` when it is ready or
    /// the transition time is unknown.
    pub fn not_ready_for(&self, now: SystemTime) -> Option<Duration> {
        if self.ready {
            return None;
        }
        let since = self.ready_since?;
        Some(now.duration_since(since).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_comes_from_the_provider_id() {
        let node = Node::new("ip-10-0-0-1");
        assert_eq!(node.instance_id, None);
        let node = node.with_provider_id("aws:///eu-west-1a/i-0abc123");
        assert_eq!(node.instance_id.unwrap().as_str(), "i-0abc123");
        let node = Node::new("n").with_provider_id("kind://docker/kind/node");
        assert_eq!(node.instance_id, None);
    }

    #[test]
    fn not_ready_duration_counts_from_the_transition() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut node = Node::new("n");
        node.ready_since = Some(start);
        assert_eq!(node.not_ready_for(start + Duration::from_secs(60)), None);
        node.ready = false;
        assert_eq!(
            node.not_ready_for(start + Duration::from_secs(60)),
            Some(Duration::from_secs(60))
        );
        // A clock behind the transition reads as zero, not as a panic.
        assert_eq!(
            node.not_ready_for(start - Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
        node.ready_since = None;
        assert_eq!(node.not_ready_for(start), None);
    }

    #[test]
    fn taints_and_labels() {
        let mut node = Node::new("n");
        node.taints.push(Taint::new(
            "karpenter.sh/disrupted",
            TaintEffect::NoSchedule,
        ));
        node.labels.insert("a".into(), "b".into());
        assert!(node.has_taint("karpenter.sh/disrupted"));
        assert!(!node.has_taint("other"));
        assert_eq!(node.label("a"), Some("b"));
        assert_eq!(
            TaintEffect::parse("NoExecute"),
            Some(TaintEffect::NoExecute)
        );
        assert_eq!(TaintEffect::parse("Bogus"), None);
        assert_eq!(TaintEffect::NoSchedule.as_str(), "NoSchedule");
    }
}
