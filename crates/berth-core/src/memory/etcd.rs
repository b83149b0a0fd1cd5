//! An etcd cluster and Auto Scaling groups in memory, behaving as etcd 3.4 and Auto
//! Scaling do where the membership workflow depends on it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::Faults;
use crate::domain::InstanceId;
use crate::plan::quorum;
use crate::provider::{
    EtcdMember, EtcdMembership, GroupInstance, LocalView, ScalingGroup, ScalingGroups,
};
use crate::{Error, Result};

#[derive(Debug, Clone)]
struct Node {
    member: EtcdMember,
    running: bool,
}

#[derive(Debug, Default)]
struct Cluster {
    id: u64,
    nodes: Vec<Node>,
    next_id: u64,
    /// Client URLs where an etcd with data of another cluster answers.
    strays: BTreeMap<String, u64>,
}

impl Cluster {
    fn has_quorum(&self) -> bool {
        let voters: Vec<&Node> = self.nodes.iter().filter(|n| !n.member.is_learner).collect();
        !voters.is_empty() && voters.iter().filter(|n| n.running).count() >= quorum(voters.len())
    }

    fn running_at(&self, url: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.running && n.member.client_urls.iter().any(|u| u == url))
    }

    fn reached(&self, endpoints: &[String]) -> bool {
        endpoints.iter().any(|u| self.running_at(u).is_some())
    }

    fn members(&self) -> Vec<EtcdMember> {
        self.nodes.iter().map(|n| n.member.clone()).collect()
    }
}

fn unhealthy(operation: &str) -> Error {
    Error::Unavailable {
        operation: operation.into(),
        message: "etcdserver: unhealthy cluster".into(),
    }
}

/// An etcd cluster in memory: quorum is counted over voters, `MemberAdd` is refused
/// while a voter is down (strict reconfiguration), a learner is promoted only while
/// it runs, and `local_view` answers without quorum as `Status` does.
#[derive(Default)]
pub struct MemoryEtcd {
    cluster: Mutex<Cluster>,
    /// Fault injection and call counts (`QuorumRead`, `Status`, `MemberAdd`,
    /// `MemberRemove`, `MemberPromote`).
    pub faults: Faults,
}

impl MemoryEtcd {
    /// A running cluster of these started voting members `(name, peer URL, client URL)`.
    pub fn with_members(members: &[(&str, &str, &str)]) -> Self {
        let etcd = MemoryEtcd::default();
        {
            let mut c = etcd.cluster.lock().expect("poisoned");
            c.id = 0xc1;
            for (name, peer, client) in members {
                c.next_id += 1;
                let id = 0x100 + c.next_id;
                c.nodes.push(Node {
                    member: EtcdMember {
                        id,
                        name: (*name).into(),
                        peer_urls: vec![(*peer).into()],
                        client_urls: vec![(*client).into()],
                        is_learner: false,
                    },
                    running: true,
                });
            }
        }
        etcd
    }

    /// Every member, for assertions.
    pub fn members(&self) -> Vec<EtcdMember> {
        self.cluster.lock().expect("poisoned").members()
    }

    /// Stops (or restarts) the member named `name`.
    pub fn set_running(&self, name: &str, running: bool) {
        let mut c = self.cluster.lock().expect("poisoned");
        for n in c.nodes.iter_mut().filter(|n| n.member.name == name) {
            n.running = running;
        }
    }

    /// The member added with `peer_url` starts as `name`, answering at `client_url`.
    pub fn start_added(&self, peer_url: &str, name: &str, client_url: &str) {
        let mut c = self.cluster.lock().expect("poisoned");
        for n in c
            .nodes
            .iter_mut()
            .filter(|n| n.member.peer_urls.iter().any(|u| u == peer_url))
        {
            n.member.name = name.into();
            n.member.client_urls = vec![client_url.into()];
            n.running = true;
        }
    }

    /// An etcd with data of another cluster answers locally at `client_url`.
    pub fn add_stray(&self, client_url: &str) {
        let mut c = self.cluster.lock().expect("poisoned");
        c.strays.insert(client_url.into(), 0x5e);
    }
}

#[async_trait]
impl EtcdMembership for MemoryEtcd {
    async fn local_view(&self, client_url: &str) -> Result<Option<LocalView>> {
        self.faults.enter("Status")?;
        let c = self.cluster.lock().expect("poisoned");
        if let Some(n) = c.running_at(client_url) {
            return Ok(Some(LocalView {
                member_id: n.member.id,
                cluster_id: c.id,
                members: c.members(),
            }));
        }
        Ok(c.strays.get(client_url).map(|&cluster_id| LocalView {
            member_id: 1,
            cluster_id,
            members: Vec::new(),
        }))
    }

    async fn quorum_members(&self, endpoints: &[String]) -> Result<Option<Vec<EtcdMember>>> {
        self.faults.enter("QuorumRead")?;
        let c = self.cluster.lock().expect("poisoned");
        Ok((c.reached(endpoints) && c.has_quorum()).then(|| c.members()))
    }

    async fn add_member(
        &self,
        endpoints: &[String],
        peer_urls: &[String],
        learner: bool,
    ) -> Result<(EtcdMember, Vec<EtcdMember>)> {
        self.faults.enter("MemberAdd")?;
        let mut c = self.cluster.lock().expect("poisoned");
        if !c.reached(endpoints) || !c.has_quorum() {
            return Err(unhealthy("MemberAdd"));
        }
        // etcd 3.4's strict reconfiguration check: every voter connected, and for a
        // voter, enough started voters for the quorum of the grown cluster.
        let voters: Vec<&Node> = c.nodes.iter().filter(|n| !n.member.is_learner).collect();
        if voters.iter().any(|n| !n.running) {
            return Err(unhealthy("MemberAdd"));
        }
        let started = voters.iter().filter(|n| n.member.started()).count();
        if !learner && (started != 1 || voters.len() != 1) && started < quorum(voters.len() + 1) {
            return Err(unhealthy("MemberAdd"));
        }
        if c.nodes
            .iter()
            .any(|n| n.member.peer_urls.iter().any(|u| peer_urls.contains(u)))
        {
            return Err(Error::conflict("etcdserver: Peer URLs already exists"));
        }
        c.next_id += 1;
        let member = EtcdMember {
            id: 0x100 + c.next_id,
            name: String::new(),
            peer_urls: peer_urls.to_vec(),
            client_urls: Vec::new(),
            is_learner: learner,
        };
        c.nodes.push(Node {
            member: member.clone(),
            running: false,
        });
        Ok((member, c.members()))
    }

    async fn remove_member(&self, endpoints: &[String], id: u64) -> Result<()> {
        self.faults.enter("MemberRemove")?;
        let mut c = self.cluster.lock().expect("poisoned");
        if !c.reached(endpoints) || !c.has_quorum() {
            return Err(unhealthy("MemberRemove"));
        }
        let before = c.nodes.len();
        c.nodes.retain(|n| n.member.id != id);
        if c.nodes.len() == before {
            return Err(Error::not_found(format!("etcd member {id:x}")));
        }
        Ok(())
    }

    async fn promote_member(&self, endpoints: &[String], id: u64) -> Result<()> {
        self.faults.enter("MemberPromote")?;
        let mut c = self.cluster.lock().expect("poisoned");
        if !c.reached(endpoints) || !c.has_quorum() {
            return Err(unhealthy("MemberPromote"));
        }
        let node = c
            .nodes
            .iter_mut()
            .find(|n| n.member.id == id)
            .ok_or_else(|| Error::not_found(format!("etcd member {id:x}")))?;
        if !node.running {
            return Err(Error::Provider {
                operation: "MemberPromote".into(),
                message: "etcdserver: can only promote a learner member which is in sync \
                          with leader"
                    .into(),
                retryable: true,
            });
        }
        node.member.is_learner = false;
        Ok(())
    }
}

/// Auto Scaling groups in memory, with any lifecycle state (moto has only
/// `InService`).
#[derive(Default)]
pub struct MemoryScalingGroups {
    groups: Mutex<BTreeMap<String, ScalingGroup>>,
    /// Fault injection and call counts (`DescribeAutoScalingGroups`).
    pub faults: Faults,
}

impl MemoryScalingGroups {
    /// Sets a group: its desired capacity and `(instance, lifecycle state)` pairs.
    pub fn set(&self, name: &str, desired_capacity: u32, instances: &[(&str, &str)]) {
        let group = ScalingGroup {
            name: name.into(),
            desired_capacity,
            instances: instances
                .iter()
                .map(|(id, state)| GroupInstance {
                    id: InstanceId::new(*id).expect("valid instance id"),
                    lifecycle_state: (*state).into(),
                })
                .collect(),
        };
        self.groups
            .lock()
            .expect("poisoned")
            .insert(name.into(), group);
    }
}

#[async_trait]
impl ScalingGroups for MemoryScalingGroups {
    async fn group(&self, name: &str) -> Result<ScalingGroup> {
        self.faults.enter("DescribeAutoScalingGroups")?;
        self.groups
            .lock()
            .expect("poisoned")
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("Auto Scaling group {name}")))
    }
}
