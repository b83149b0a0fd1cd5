//! Observation: the group, its instances' IPs, the cluster, each member's fate.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::EtcdBootstrap;
use crate::domain::{Instance, InstanceId};
use crate::plan::{
    ClusterState, EtcdObservation, InstanceFate, NodeIdentity, ObservedMember, Peer, Presence,
};
use crate::provider::{EtcdMember, LocalView};
use crate::Result;

/// An observation and what the apply step needs from it.
pub(super) struct Observed {
    pub(super) observation: EtcdObservation,
    /// Client URLs to send membership changes through (members that answered first).
    pub(super) endpoints: Vec<String>,
    /// Whether the marker exists (`None`: no marker table).
    pub(super) marker: Option<bool>,
    /// A quorum answered.
    pub(super) healthy: bool,
}

fn primary_ip(instance: &Instance) -> Option<IpAddr> {
    instance
        .primary_interface()
        .map(|i| i.private_ip)
        .or_else(|| instance.private_ips.first().copied())
}

impl EtcdBootstrap {
    pub(super) async fn observe(&self, me: &NodeIdentity) -> Result<Observed> {
        let etcd = &self.settings.etcd;
        let p = &self.providers;
        let group = p.groups.group(&self.settings.group).await?;
        let ids: Vec<InstanceId> = group.instances.iter().map(|i| i.id.clone()).collect();
        let described = if ids.is_empty() {
            Vec::new()
        } else {
            p.instances.describe(&ids).await?
        };
        let peers: Vec<Peer> = group
            .instances
            .iter()
            .map(|gi| Peer {
                id: gi.id.clone(),
                lifecycle_state: gi.lifecycle_state.clone(),
                private_ip: if gi.id == me.instance_id {
                    Some(me.private_ip)
                } else {
                    described
                        .iter()
                        .find(|i| i.id == gi.id)
                        .and_then(primary_ip)
                },
            })
            .collect();
        let peer_urls: Vec<(InstanceId, String)> = peers
            .iter()
            .filter(|p| p.presence() == Presence::Present)
            .filter_map(|p| p.private_ip.map(|ip| (p.id.clone(), etcd.client_url(ip))))
            .collect();
        let urls: Vec<String> = peer_urls.iter().map(|(_, u)| u.clone()).collect();

        let mut views: BTreeMap<String, Option<LocalView>> = BTreeMap::new();
        let mut members = p.membership.quorum_members(&urls).await?;
        let mut peers_with_data = Vec::new();
        if members.is_none() {
            // Nothing answered through a peer: ask each what it knows locally, then try
            // the members they know of (a cluster reachable outside the group).
            let mut known = BTreeSet::new();
            for (id, url) in &peer_urls {
                let view = p.membership.local_view(url).await?;
                if let Some(v) = &view {
                    peers_with_data.push(id.clone());
                    known.extend(v.members.iter().flat_map(|m| m.client_urls.clone()));
                }
                views.insert(url.clone(), view);
            }
            let extra: Vec<String> = known.into_iter().filter(|u| !urls.contains(u)).collect();
            if !extra.is_empty() {
                members = p.membership.quorum_members(&extra).await?;
            }
        }
        let Some(members) = members else {
            let marker = self.marker_exists().await?;
            return Ok(Observed {
                observation: EtcdObservation {
                    desired_capacity: group.desired_capacity,
                    peers,
                    cluster: ClusterState::NoQuorum { peers_with_data },
                    marker_exists: marker == Some(true),
                    may_remove: true,
                },
                endpoints: urls,
                marker,
                healthy: false,
            });
        };

        let mut observed_members = Vec::with_capacity(members.len());
        let fates = self.fates(&members, &peers).await?;
        let mut endpoints = Vec::new();
        for (member, fate) in members.into_iter().zip(fates) {
            let mut answers = false;
            if let Some(url) = member.client_urls.first() {
                let view = match views.get(url) {
                    Some(v) => v.clone(),
                    None => p.membership.local_view(url).await?,
                };
                answers = view.is_some();
                if answers {
                    endpoints.extend(member.client_urls.iter().cloned());
                }
            }
            observed_members.push(ObservedMember {
                member,
                answers,
                fate,
            });
        }
        let marker = self.marker_exists().await?;
        Ok(Observed {
            observation: EtcdObservation {
                desired_capacity: group.desired_capacity,
                peers,
                cluster: ClusterState::Healthy(observed_members),
                marker_exists: marker == Some(true),
                may_remove: true,
            },
            endpoints,
            marker,
            healthy: true,
        })
    }

    /// Each member's instance: present in the group, gone for good, alive elsewhere,
    /// or not an instance at all. One `DescribeInstances` for the members not present.
    async fn fates(&self, members: &[EtcdMember], peers: &[Peer]) -> Result<Vec<InstanceFate>> {
        let ids: Vec<Option<InstanceId>> = members
            .iter()
            .map(|m| {
                m.started()
                    .then(|| InstanceId::new(m.name.clone()).ok())
                    .flatten()
            })
            .collect();
        let presence_of = |id: &InstanceId| peers.iter().find(|p| &p.id == id).map(Peer::presence);
        let absent: Vec<InstanceId> = ids
            .iter()
            .flatten()
            .filter(|id| matches!(presence_of(id), None | Some(Presence::Gone)))
            .cloned()
            .collect();
        let described = if absent.is_empty() {
            Vec::new()
        } else {
            self.providers.instances.describe(&absent).await?
        };
        Ok(ids
            .iter()
            .map(|id| match id {
                None => InstanceFate::NotAnInstance,
                Some(id) => match presence_of(id) {
                    Some(Presence::Present) => InstanceFate::Present,
                    Some(Presence::Unknown) => InstanceFate::Elsewhere,
                    None | Some(Presence::Gone) => match described.iter().find(|i| &i.id == id) {
                        Some(i) if !i.state.is_terminating() => InstanceFate::Elsewhere,
                        _ => InstanceFate::Gone,
                    },
                },
            })
            .collect())
    }
}
