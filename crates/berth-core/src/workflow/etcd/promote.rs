//! Promoting this node's own learner once it is in sync.
//!
//! A node that joined as a learner cannot be promoted by the boot run that added it:
//! that run ends before etcd starts (it writes the drop-in etcd starts from). So the
//! promotion is its own step, run after etcd started (berth-bootstrap's `promote`
//! command, a unit ordered after `etcd.service`): it waits until this node's member
//! answers, then asks for `MemberPromote`, which etcd refuses ("can only promote a
//! learner member which is in sync with leader") until the learner caught up — a
//! refusal retried with jittered backoff until the deadline.

use tokio::time::Instant;

use super::{EtcdAction, EtcdBootstrap, EtcdSummary, Pauses};
use crate::plan::{ClusterState, NodeIdentity};
use crate::provider::EtcdMembership;
use crate::{Error, Result};

impl EtcdBootstrap {
    /// Promotes this node's member if it is a learner, once it answers and is in
    /// sync; nothing if it already votes. Fails with [`Error::Conflict`] if this node
    /// is not a member, with [`Error::Timeout`] if the deadline passes first.
    pub async fn promote_self(&self, me: &NodeIdentity, dry_run: bool) -> Result<EtcdSummary> {
        let started = Instant::now();
        let mut pauses = Pauses::new(&self.settings.wait, started);
        let name = me.instance_id.as_str();
        let peer_url = self.settings.etcd.peer_url(me.private_ip);
        loop {
            let observed = self.observe(me).await?;
            let reason = match &observed.observation.cluster {
                ClusterState::NoQuorum { .. } => "no quorum answers".to_owned(),
                ClusterState::Healthy(members) => {
                    let mine = members.iter().find(|m| {
                        m.member.name == name
                            || (!m.member.started() && m.member.peer_urls.contains(&peer_url))
                    });
                    match mine {
                        None => {
                            return Err(Error::conflict(format!(
                                "{name} is not a member of the etcd cluster: nothing to \
                                 promote (run berth-bootstrap first)"
                            )))
                        }
                        Some(m) if !m.member.is_learner => {
                            let mut summary = EtcdSummary::new(EtcdAction::Voter, me, dry_run);
                            summary.waits = pauses.waits;
                            return Ok(self.finish(summary));
                        }
                        Some(m) if !m.answers => {
                            format!("this node's learner {:x} does not answer yet", m.member.id)
                        }
                        Some(m) => {
                            let mut summary = EtcdSummary::new(EtcdAction::Promoted, me, dry_run);
                            summary.learner = true;
                            summary.waits = pauses.waits;
                            if !dry_run {
                                // "learner not in sync" is retryable: until the deadline.
                                self.membership_until_deadline(started)
                                    .promote_member(&observed.endpoints, m.member.id)
                                    .await?;
                                tracing::info!(
                                    member = m.member.id,
                                    "promoted this node's learner"
                                );
                            }
                            summary.promoted = Some(name.to_owned());
                            return Ok(self.finish(summary));
                        }
                    }
                }
            };
            if dry_run {
                let mut summary = EtcdSummary::new(EtcdAction::Wait, me, dry_run);
                summary.waiting = Some(reason);
                return Ok(self.finish(summary));
            }
            pauses.pause("this node's learner", &reason).await?;
        }
    }
}
