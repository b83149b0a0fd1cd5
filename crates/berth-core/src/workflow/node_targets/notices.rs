//! What a pass (or a drain wait) tells its caller, typed: the daemon turns each notice
//! into a Kubernetes Event and metrics; `Display` is the human message.

use std::fmt;
use std::time::Duration;

use crate::domain::{Target, TargetGroupArn, TargetGroupRef};
use crate::plan::MembershipChange;
use crate::Error;

/// Where a failure came from: metrics and alerts classify by it, never by an error's
/// text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The node configurations (Cast.ai).
    NodeConfigurations,
    /// The target groups (AWS ELBv2), a change's ownership write included.
    TargetGroups,
}

/// Why a node's decision is held (what is registered stays, nothing is added).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldReason {
    /// NotReady for less than the grace period (or since an unknown time): the load
    /// balancer's health checks handle a blip.
    NotReadyWithinGrace {
        /// The grace period.
        grace: Duration,
    },
    /// Its target groups are unknown: a configuration or group lookup failed.
    GroupsUnknown {
        /// Why, as the lookup said.
        reason: String,
    },
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldReason::NotReadyWithinGrace { grace } => {
                write!(f, "NotReady for less than {}s", grace.as_secs())
            }
            HoldReason::GroupsUnknown { reason } => f.write_str(reason),
        }
    }
}

/// One thing that happened, or that a person should know, during a pass.
///
/// `node` is the Node's name when the target belongs to a node of the pass (`None`: the
/// node is gone, so there is nothing to attach an Event to).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A target was registered in a group.
    Registered {
        /// The node.
        node: Option<String>,
        /// The group.
        group: TargetGroupArn,
        /// The target.
        target: Target,
    },
    /// A target was deregistered and is draining.
    Deregistering {
        /// The node.
        node: Option<String>,
        /// The group.
        group: TargetGroupArn,
        /// The target.
        target: Target,
        /// Why it leaves (the node's decision, or `node deleted`).
        why: String,
        /// The group's deregistration delay; `None` when the group could not be looked
        /// up: the drain is then not waited for, the following passes check it.
        delay: Option<Duration>,
    },
    /// A target to deregister was not registered in its group (removed by someone
    /// else, or already gone): nothing was deregistered, its ownership is released.
    AlreadyAbsent {
        /// The node.
        node: Option<String>,
        /// The group.
        group: TargetGroupArn,
        /// The target.
        target: Target,
        /// Why it was to leave (the node's decision, or `node deleted`).
        why: String,
    },
    /// A deregistered target was seen gone from its group: the drain is over.
    Drained {
        /// The node.
        node: Option<String>,
        /// The group.
        group: TargetGroupArn,
        /// The target.
        target: Target,
        /// How long after the deregistration it was seen gone.
        took: Duration,
    },
    /// A deregistered target was not seen gone within the delay plus the poll deadline.
    DrainNotConfirmed {
        /// The node.
        node: Option<String>,
        /// The group.
        group: TargetGroupArn,
        /// The target.
        target: Target,
        /// Why the wait ended.
        error: Error,
    },
    /// A batch of the plan failed (after the engine's retries).
    ChangeFailed {
        /// The nodes whose targets the change was about.
        nodes: Vec<String>,
        /// The change.
        change: MembershipChange,
        /// Why.
        error: Error,
    },
    /// A node is held (reported once per change of reason, not every pass).
    Held {
        /// The node.
        node: String,
        /// Why.
        reason: HoldReason,
    },
    /// A node cannot be placed: no instance id, or it matches no group (reported once
    /// per change of reason).
    Skipped {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// Some of a node's groups were left out, e.g. a group without a port (reported
    /// once per change).
    GroupSkipped {
        /// The node.
        node: String,
        /// One line per group left out.
        warnings: Vec<String>,
    },
    /// A node configuration could not be read: its nodes are held.
    ConfigurationUnavailable {
        /// The configuration id.
        configuration: String,
        /// The error.
        error: Error,
    },
    /// A target group reference could not be resolved: the nodes bound to it are held.
    GroupUnresolved {
        /// The reference.
        group: TargetGroupRef,
        /// The error.
        error: Error,
    },
    /// A group's membership could not be observed: nothing in it changed this pass.
    GroupUnobserved {
        /// The group.
        group: TargetGroupArn,
        /// The error.
        error: Error,
    },
    /// A group only known from the ownership record no longer exists: its targets left
    /// with it and their ownership is forgotten.
    GroupGone {
        /// The group.
        group: TargetGroupArn,
    },
}

impl Notice {
    /// The failure this notice reports, and where it came from; `None` for what is not
    /// a failure (a drain not confirmed is a warning about AWS's answer, not an error
    /// of a call).
    pub fn failure(&self) -> Option<(Source, &Error)> {
        match self {
            Notice::ConfigurationUnavailable { error, .. } => {
                Some((Source::NodeConfigurations, error))
            }
            Notice::ChangeFailed { error, .. }
            | Notice::GroupUnresolved { error, .. }
            | Notice::GroupUnobserved { error, .. } => Some((Source::TargetGroups, error)),
            _ => None,
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Registered { group, target, .. } => {
                write!(f, "registered {target} in target group {}", group.name())
            }
            Notice::Deregistering {
                group,
                target,
                why,
                delay: Some(delay),
                ..
            } => write!(
                f,
                "deregistering {target} from target group {} ({why}); draining for up to {}s",
                group.name(),
                delay.as_secs()
            ),
            Notice::Deregistering {
                group,
                target,
                why,
                delay: None,
                ..
            } => write!(
                f,
                "deregistering {target} from target group {} ({why}); its deregistration \
                 delay is unknown (the group could not be looked up), the next passes check \
                 when it has left",
                group.name()
            ),
            Notice::AlreadyAbsent {
                group, target, why, ..
            } => write!(
                f,
                "{target} was already absent from target group {} ({why}); nothing to \
                 deregister",
                group.name()
            ),
            Notice::Drained {
                group,
                target,
                took,
                ..
            } => write!(
                f,
                "{target} left target group {} after {}s",
                group.name(),
                took.as_secs()
            ),
            Notice::DrainNotConfirmed {
                group,
                target,
                error,
                ..
            } => write!(
                f,
                "{target} deregistered from {} but not seen gone: {error}",
                group.name()
            ),
            Notice::ChangeFailed { change, error, .. } => write!(f, "{change}: {error}"),
            Notice::Held { reason, .. } => write!(f, "{reason}"),
            Notice::Skipped { reason, .. } => f.write_str(reason),
            Notice::GroupSkipped { warnings, .. } => f.write_str(&warnings.join("; ")),
            Notice::ConfigurationUnavailable {
                configuration,
                error,
            } => write!(f, "node configuration {configuration}: {error}"),
            Notice::GroupUnresolved { group, error } => write!(f, "target group {group}: {error}"),
            Notice::GroupUnobserved { group, error } => write!(
                f,
                "target group {} not observed ({error}); left alone this pass",
                group.name()
            ),
            Notice::GroupGone { group } => write!(
                f,
                "owned target group {} no longer exists; forgetting its targets",
                group.name()
            ),
        }
    }
}
