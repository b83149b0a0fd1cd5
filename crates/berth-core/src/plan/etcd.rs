//! etcd membership at boot: the pure decision ([`decide_etcd`]) and the systemd
//! drop-in it leads to ([`render_drop_in`]).
//!
//! The rules (seed 003, NodeReg, got each of them wrong):
//! - a data dir holding a WAL is a restart: membership is not touched;
//! - peers are the Auto Scaling group's instances; booting ones (`Pending*`) count;
//! - only a cluster that answers a linearizable read is healthy;
//! - a stale member is removed only when its instance is gone, it does not answer,
//!   more than two members exist and the members left still make a quorum; at most
//!   one per run, and before an add;
//! - when nothing answers, a new cluster is created only from a complete, agreed
//!   view (desired capacity = cluster size = present instances with IPs, no marker,
//!   no peer with data) — never a single node, never a second cluster.

mod drop_in;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::domain::InstanceId;
use crate::provider::EtcdMember;

pub use drop_in::{render_drop_in, DropIn, EtcdTls, InitialClusterState};

/// How a peer's Auto Scaling lifecycle state counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// `Pending*`, `InService`, `Standby` (and `EnteringStandby`): a peer.
    Present,
    /// `Terminating*`, `Terminated`, `Detaching`, `Detached`: leaving for good.
    Gone,
    /// Anything else: neither counted as a peer nor as gone.
    Unknown,
}

/// Classifies an Auto Scaling lifecycle state.
pub fn presence(lifecycle_state: &str) -> Presence {
    match lifecycle_state {
        "Pending" | "Pending:Wait" | "Pending:Proceed" | "InService" | "EnteringStandby"
        | "Standby" => Presence::Present,
        "Terminating"
        | "Terminating:Wait"
        | "Terminating:Proceed"
        | "Terminated"
        | "Detaching"
        | "Detached" => Presence::Gone,
        _ => Presence::Unknown,
    }
}

/// What the etcd module is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// `http` or `https` for client URLs.
    pub client_scheme: String,
    /// Client port.
    pub client_port: u16,
    /// `http` or `https` for peer URLs.
    pub peer_scheme: String,
    /// Peer port.
    pub peer_port: u16,
    /// How many members a new cluster has (`etcd.cluster_size`).
    pub cluster_size: u32,
    /// Join as a learner, promoted once in sync.
    pub learner: bool,
    /// `ETCD_INITIAL_CLUSTER_TOKEN`, also the key of the "cluster created" marker.
    pub cluster_token: String,
    /// Certificates for https client and peer URLs.
    pub tls: Option<EtcdTls>,
}

impl EtcdSettings {
    /// `scheme://ip:client_port`.
    pub fn client_url(&self, ip: IpAddr) -> String {
        url(&self.client_scheme, ip, self.client_port)
    }

    /// `scheme://ip:peer_port`.
    pub fn peer_url(&self, ip: IpAddr) -> String {
        url(&self.peer_scheme, ip, self.peer_port)
    }
}

fn url(scheme: &str, ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}"),
        IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}"),
    }
}

/// This instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeIdentity {
    /// Its id, also its member name.
    pub instance_id: InstanceId,
    /// Its private IP, where its etcd listens.
    pub private_ip: IpAddr,
}

/// A peer: an instance of the group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Peer {
    /// The instance.
    pub id: InstanceId,
    /// Its Auto Scaling lifecycle state.
    pub lifecycle_state: String,
    /// Its private IP, if EC2 reported one.
    pub private_ip: Option<IpAddr>,
}

impl Peer {
    /// How its lifecycle state counts.
    pub fn presence(&self) -> Presence {
        presence(&self.lifecycle_state)
    }
}

/// What became of the instance a member is named after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceFate {
    /// In the group (and not leaving).
    Present,
    /// Not in the group (or leaving it) and EC2 says terminated or does not know it.
    Gone,
    /// Not a peer, but EC2 still has it alive (stopped, running elsewhere): kept.
    Elsewhere,
    /// The member is not named after an instance (not berth's, or never started).
    NotAnInstance,
}

/// A member with what was observed about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObservedMember {
    /// The member.
    pub member: EtcdMember,
    /// Whether it answered at its client URL.
    pub answers: bool,
    /// Its instance.
    pub fate: InstanceFate,
}

/// The cluster as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterState {
    /// A quorum answered a linearizable read.
    Healthy(Vec<ObservedMember>),
    /// Nothing answered a linearizable read.
    NoQuorum {
        /// Peers whose etcd answered locally: they hold data of some cluster.
        peers_with_data: Vec<InstanceId>,
    },
}

/// Everything the decision needs, observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdObservation {
    /// The group's desired capacity.
    pub desired_capacity: u32,
    /// The group's instances.
    pub peers: Vec<Peer>,
    /// The cluster.
    pub cluster: ClusterState,
    /// Whether the "cluster created" marker exists (`false` with no marker table).
    pub marker_exists: bool,
    /// Whether this run may still remove a member (one removal per run).
    pub may_remove: bool,
}

/// A member to remove, and why it may be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Removal {
    /// The member.
    pub member: EtcdMember,
    /// Why.
    pub reason: String,
}

/// What this node does about itself in a healthy cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SelfStep {
    /// Not a member: `MemberAdd` this node's peer URL.
    Add {
        /// As a learner.
        learner: bool,
    },
    /// Listed (added earlier) but never started: only the drop-in is written.
    Listed {
        /// Its member id.
        member_id: u64,
    },
    /// Not addable yet (a voter is down): apply the removal, if any, then observe
    /// again after a pause.
    Wait {
        /// Why.
        reason: String,
    },
}

/// The steps of a run that found a healthy cluster, in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JoinPlan {
    /// A stale member removed first (remove before add).
    pub remove: Option<Removal>,
    /// Stale-looking members that are kept, and why.
    pub kept: Vec<String>,
    /// A started learner of a present instance to promote.
    pub promote: Option<EtcdMember>,
    /// This node.
    pub me: SelfStep,
    /// The members after the removal (the add appends this node).
    pub members: Vec<EtcdMember>,
}

/// The decision of one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdDecision {
    /// A healthy cluster: these steps.
    Join(Box<JoinPlan>),
    /// Nothing answers and every condition holds: a new cluster of these members
    /// (name, peer URL), sorted by instance id — the same list on every node.
    Create {
        /// `ETCD_INITIAL_CLUSTER`.
        initial_cluster: Vec<(String, String)>,
    },
    /// Not yet decidable: observe again after a jittered pause, until the deadline.
    Wait {
        /// Why.
        reason: String,
    },
    /// Never going to work without an operator: fail now (exit 1).
    Fail {
        /// Why.
        reason: String,
    },
}

/// The smallest number of voters that make a quorum of `voters`.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// Decides what this node does, from one observation. Pure.
pub fn decide_etcd(
    settings: &EtcdSettings,
    me: &NodeIdentity,
    observed: &EtcdObservation,
) -> EtcdDecision {
    match &observed.cluster {
        ClusterState::Healthy(members) => {
            decide_healthy(settings, me, members, observed.may_remove)
        }
        ClusterState::NoQuorum { peers_with_data } => {
            decide_no_quorum(settings, me, observed, peers_with_data)
        }
    }
}

fn is_me(settings: &EtcdSettings, me: &NodeIdentity, member: &EtcdMember) -> bool {
    member.name == me.instance_id.as_str()
        || (!member.started() && member.peer_urls.contains(&settings.peer_url(me.private_ip)))
}

fn decide_healthy(
    settings: &EtcdSettings,
    me: &NodeIdentity,
    members: &[ObservedMember],
    may_remove: bool,
) -> EtcdDecision {
    let mine = members.iter().find(|m| is_me(settings, me, &m.member));
    if let Some(m) = mine.filter(|m| m.member.started()) {
        return EtcdDecision::Fail {
            reason: format!(
                "this instance is member {:x} of the cluster and started before, but its \
                 data dir holds no WAL: remove the member (etcdctl member remove {:x}) so \
                 that it can join again",
                m.member.id, m.member.id
            ),
        };
    }
    let voters = members.iter().filter(|m| !m.member.is_learner).count();
    let (remove, kept) = choose_removal(me, members, voters, may_remove);
    let remaining: Vec<&ObservedMember> = members
        .iter()
        .filter(|m| remove.as_ref().is_none_or(|r| r.member.id != m.member.id))
        .collect();
    let me_step = match mine {
        Some(m) => SelfStep::Listed {
            member_id: m.member.id,
        },
        None => {
            // etcd's strict reconfiguration check refuses MemberAdd while a voter is
            // down: asking would only earn "unhealthy cluster" until the deadline.
            if let Some(down) = remaining
                .iter()
                .find(|m| !m.member.is_learner && !m.answers)
            {
                let mut reason = format!(
                    "member {} ({:x}) does not answer; etcd refuses MemberAdd while a member \
                     is down",
                    display_name(&down.member),
                    down.member.id
                );
                if !kept.is_empty() {
                    reason.push_str(&format!(" (kept: {})", kept.join("; ")));
                }
                if remove.is_none() {
                    return EtcdDecision::Wait { reason };
                }
                SelfStep::Wait { reason }
            } else {
                let remaining_voters = remaining.iter().filter(|m| !m.member.is_learner).count();
                // A second voter that has not started yet would halve a one-member
                // cluster's quorum: such a cluster only ever gains a learner.
                SelfStep::Add {
                    learner: settings.learner || remaining_voters < 2,
                }
            }
        }
    };
    let promote = remaining
        .iter()
        .filter(|m| {
            m.member.is_learner
                && m.member.started()
                && m.answers
                && m.fate == InstanceFate::Present
                && !is_me(settings, me, &m.member)
        })
        .min_by(|a, b| a.member.name.cmp(&b.member.name))
        .map(|m| m.member.clone());
    EtcdDecision::Join(Box::new(JoinPlan {
        remove,
        kept,
        promote,
        me: me_step,
        members: remaining.iter().map(|m| m.member.clone()).collect(),
    }))
}

/// At most one stale member, with every guard; the others are reported as kept.
fn choose_removal(
    me: &NodeIdentity,
    members: &[ObservedMember],
    voters: usize,
    may_remove: bool,
) -> (Option<Removal>, Vec<String>) {
    let mut kept = Vec::new();
    let mut candidates: Vec<&ObservedMember> = members
        .iter()
        .filter(|m| m.member.name != me.instance_id.as_str() && m.fate == InstanceFate::Gone)
        .collect();
    candidates.sort_by(|a, b| a.member.name.cmp(&b.member.name));
    let healthy_voters = members
        .iter()
        .filter(|m| !m.member.is_learner && m.answers)
        .count();
    let mut chosen = None;
    for c in candidates {
        let name = display_name(&c.member);
        let voters_after = if c.member.is_learner {
            voters
        } else {
            voters - 1
        };
        let refusal = if c.answers {
            Some("it still answers".to_owned())
        } else if members.len() <= 2 {
            Some(format!(
                "only {} members: removing one is never safe",
                members.len()
            ))
        } else if healthy_voters < quorum(voters_after) {
            Some(format!(
                "{healthy_voters} healthy voters would not make a quorum of {voters_after}"
            ))
        } else if chosen.is_some() || !may_remove {
            Some("one removal per run".to_owned())
        } else {
            None
        };
        match refusal {
            Some(why) => kept.push(format!("{name}: {why}")),
            None => {
                chosen = Some(Removal {
                    member: c.member.clone(),
                    reason: format!(
                        "instance {name} left the group and EC2 says it is terminated or \
                         unknown; its member does not answer"
                    ),
                });
            }
        }
    }
    (chosen, kept)
}

fn display_name(member: &EtcdMember) -> String {
    if member.started() {
        member.name.clone()
    } else {
        format!("(unstarted {})", member.peer_urls.join(","))
    }
}

fn decide_no_quorum(
    settings: &EtcdSettings,
    me: &NodeIdentity,
    observed: &EtcdObservation,
    peers_with_data: &[InstanceId],
) -> EtcdDecision {
    if observed.marker_exists {
        return EtcdDecision::Fail {
            reason: format!(
                "no etcd member answers a linearizable read, and the marker says cluster \
                 {} was created: not creating another (recovery is the operator's)",
                settings.cluster_token
            ),
        };
    }
    if !peers_with_data.is_empty() {
        let ids: Vec<&str> = peers_with_data.iter().map(InstanceId::as_str).collect();
        return EtcdDecision::Fail {
            reason: format!(
                "no quorum answers, but peers {} run etcd with data: not creating another \
                 cluster (recovery is the operator's)",
                ids.join(", ")
            ),
        };
    }
    let present: Vec<&Peer> = observed
        .peers
        .iter()
        .filter(|p| p.presence() == Presence::Present)
        .collect();
    let wait = |reason: String| EtcdDecision::Wait { reason };
    if observed.desired_capacity != settings.cluster_size {
        return wait(format!(
            "nothing answers and the group's desired capacity is {}, not the cluster size {}",
            observed.desired_capacity, settings.cluster_size
        ));
    }
    if present.len() != settings.cluster_size as usize {
        return wait(format!(
            "nothing answers and {} instances are present, not the cluster size {}",
            present.len(),
            settings.cluster_size
        ));
    }
    if !present.iter().any(|p| p.id == me.instance_id) {
        return wait(format!(
            "nothing answers and this instance is not among the {} present instances",
            present.len()
        ));
    }
    let mut with_ips = BTreeSet::new();
    for p in &present {
        let ip = if p.id == me.instance_id {
            me.private_ip
        } else {
            match p.private_ip {
                Some(ip) => ip,
                None => return wait(format!("instance {} has no private IP yet", p.id)),
            }
        };
        with_ips.insert((p.id.clone(), ip));
    }
    EtcdDecision::Create {
        initial_cluster: with_ips
            .into_iter()
            .map(|(id, ip)| (id.to_string(), settings.peer_url(ip)))
            .collect(),
    }
}
