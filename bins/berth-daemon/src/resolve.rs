//! Where the daemon's target groups come from, as wiring: the Cast.ai adapter (if
//! configured) and the static rules file, handed to berth-core's
//! [`NodeTargets`](berth_core::workflow::NodeTargets) workflow, which holds the policy
//! (the merge of both sources, the lookups, holding a node whose groups are unknown).

use std::sync::Arc;

use berth_core::provider::{NodeConfigurations, TargetGroups};
use berth_core::workflow::node_targets::LabelRule;

use crate::static_config::StaticConfig;

/// The node label naming a node's Cast.ai node configuration.
pub use berth_core::workflow::node_targets::NODE_CONFIGURATION_LABEL;

/// The sources of a node's groups: Cast.ai node configurations (optional) and the
/// static rules.
pub struct Resolver {
    pub(crate) node_configurations: Option<Arc<dyn NodeConfigurations>>,
    pub(crate) rules: Vec<LabelRule>,
}

impl Resolver {
    /// Cast.ai (optional) and the static rules. `_targets` is where group references
    /// are looked up; the [`crate::reconcile::Reconciler`] is given that provider
    /// itself, so it is not kept here (the parameter stays for existing callers).
    pub fn new(
        castai: Option<Arc<dyn NodeConfigurations>>,
        rules: StaticConfig,
        _targets: Arc<dyn TargetGroups>,
    ) -> Self {
        Resolver {
            node_configurations: castai,
            rules: rules.rules,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_label_is_the_one_the_castai_adapter_documents() {
        assert_eq!(
            super::NODE_CONFIGURATION_LABEL,
            berth_castai::NODE_CONFIGURATION_LABEL
        );
    }
}
