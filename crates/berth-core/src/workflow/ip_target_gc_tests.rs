//! The IP target GC workflow over the in-memory target groups and an in-memory record
//! store, on tokio's paused clock.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::IpTargetCollector;
use crate::domain::{Registration, Target, TargetGroupArn, TargetType};
use crate::engine::Engine;
use crate::memory::MemoryTargetGroups;
use crate::plan::{GcAction, LivePods, PodIdentity, SidecarRecord};
use crate::provider::{OwnedTargets, SidecarRecords, TargetGroups, TargetOwnership};
use crate::Result;

const GRACE: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Records {
    records: Mutex<Vec<SidecarRecord>>,
    /// UIDs the source of truth says are running.
    running: Mutex<BTreeSet<String>>,
}

struct RecordStore {
    records: Arc<Records>,
    key: String,
}

#[async_trait]
impl TargetOwnership for RecordStore {
    async fn owned(&self) -> Result<OwnedTargets> {
        Ok(OwnedTargets::new())
    }
    async fn claim(&self, _group: &TargetGroupArn, _targets: &[Target]) -> Result<()> {
        Ok(())
    }
    async fn release(&self, group: &TargetGroupArn, targets: &[Target]) -> Result<()> {
        let mut records = self.records.records.lock().unwrap();
        for record in records.iter_mut().filter(|r| r.key == self.key) {
            if let Some(set) = record.targets.get_mut(group) {
                set.retain(|t| !targets.contains(t));
                if set.is_empty() {
                    record.targets.remove(group);
                }
            }
        }
        records.retain(|r| !r.targets.is_empty());
        Ok(())
    }
}

struct Shared(Arc<Records>);

#[async_trait]
impl SidecarRecords for Shared {
    async fn list(&self) -> Result<Vec<SidecarRecord>> {
        Ok(self.0.records.lock().unwrap().clone())
    }
    fn store(&self, record: &SidecarRecord) -> Arc<dyn TargetOwnership> {
        Arc::new(RecordStore {
            records: self.0.clone(),
            key: record.key.clone(),
        })
    }
    async fn delete_if_empty(&self, record: &SidecarRecord) -> Result<()> {
        self.0
            .records
            .lock()
            .unwrap()
            .retain(|r| r.key != record.key || !r.targets.is_empty());
        Ok(())
    }
    async fn still_running(&self, pod: &PodIdentity) -> Result<bool> {
        Ok(self.0.running.lock().unwrap().contains(&pod.uid))
    }
}

fn record(uid: &str, group: &TargetGroupArn, ip: &str) -> SidecarRecord {
    SidecarRecord {
        key: format!("shop/berth-sidecar-{uid}"),
        pod: PodIdentity {
            namespace: "shop".into(),
            name: uid.into(),
            uid: uid.into(),
        },
        targets: [(group.clone(), [Target::new(ip, 80)].into())].into(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_gone_pods_target_is_deregistered_after_the_grace_and_nothing_else() {
    let groups = Arc::new(MemoryTargetGroups::default());
    let web = groups.add_group("web", TargetType::Ip, Some(80)).arn;
    for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9"] {
        groups
            .register(&web, &[Registration::from(Target::new(ip, 80))])
            .await
            .unwrap();
    }
    let records = Arc::new(Records::default());
    *records.records.lock().unwrap() = vec![
        record("gone", &web, "10.0.0.1"),
        record("alive", &web, "10.0.0.2"),
        // Missing from the (stale) cache, but running per the API server.
        record("missed", &web, "10.0.0.3"),
    ];
    records
        .running
        .lock()
        .unwrap()
        .extend(["alive".into(), "missed".into()]);
    let live = LivePods {
        uids: ["alive".to_owned()].into(),
        ips: ["10.0.0.2".to_owned()].into(),
    };
    let mut gc = IpTargetCollector::new(
        Engine::default(),
        groups.clone(),
        Arc::new(Shared(records.clone())),
        GRACE,
    );

    let first = gc.pass(&live).await.unwrap();
    assert_eq!((first.records, first.waiting), (3, 2));
    assert_eq!(first.next_due, Some(GRACE));
    assert!(first.done.is_empty());

    tokio::time::advance(GRACE).await;
    let second = gc.pass(&live).await.unwrap();
    assert_eq!(second.unconfirmed.len(), 1, "{:?}", second.unconfirmed);
    assert_eq!(second.unconfirmed[0].0.uid, "missed");
    assert_eq!(second.done.len(), 1, "{:?}", second.done);
    let done = &second.done[0];
    assert!(matches!(done.action, GcAction::Deregister { .. }));
    assert_eq!(done.pod.uid, "gone");
    assert!(done.result.is_ok() && done.leaving.is_some());
    let members = groups.members(&web);
    assert!(members[&Target::new("10.0.0.1", 80)].is_draining());
    for ip in ["10.0.0.2", "10.0.0.3", "10.0.0.9"] {
        assert!(!members[&Target::new(ip, 80)].is_draining(), "{ip} stays");
    }
    let left: Vec<String> = records
        .records
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.pod.uid.clone())
        .collect();
    assert_eq!(
        left,
        ["alive", "missed"],
        "the gone pod's record is released"
    );

    // Idempotent: nothing more to do.
    let third = gc.pass(&live).await.unwrap();
    assert!(third.done.is_empty());
}

/// The target groups, where each deregistered target is first removed by another
/// system (so the deregistration finds it absent).
struct RemovedFirst(Arc<MemoryTargetGroups>);

#[async_trait]
impl TargetGroups for RemovedFirst {
    async fn resolve(
        &self,
        group: &crate::domain::TargetGroupRef,
    ) -> Result<crate::domain::TargetGroup> {
        self.0.resolve(group).await
    }
    async fn health(&self, group: &TargetGroupArn) -> Result<Vec<crate::domain::TargetHealth>> {
        self.0.health(group).await
    }
    async fn register(&self, group: &TargetGroupArn, targets: &[Registration]) -> Result<()> {
        self.0.register(group, targets).await
    }
    async fn deregister(
        &self,
        group: &TargetGroupArn,
        targets: &[Target],
    ) -> Result<crate::provider::Deregistered> {
        for t in targets {
            self.0.remove(group, t);
        }
        self.0.deregister(group, targets).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_target_gone_before_the_gc_deregisters_it_is_reported_absent_and_its_record_cleared() {
    let groups = Arc::new(MemoryTargetGroups::default());
    let web = groups.add_group("web", TargetType::Ip, Some(80)).arn;
    let ip = Target::new("10.0.0.1", 80);
    groups
        .register(&web, &[Registration::from(ip.clone())])
        .await
        .unwrap();
    let records = Arc::new(Records::default());
    *records.records.lock().unwrap() = vec![record("gone", &web, "10.0.0.1")];
    let mut gc = IpTargetCollector::new(
        Engine::default(),
        Arc::new(RemovedFirst(groups.clone())),
        Arc::new(Shared(records.clone())),
        GRACE,
    );
    gc.pass(&LivePods::default()).await.unwrap();
    tokio::time::advance(GRACE).await;

    let pass = gc.pass(&LivePods::default()).await.unwrap();

    let deregistration = pass
        .done
        .iter()
        .find(|d| matches!(d.action, GcAction::Deregister { .. }))
        .expect("a deregistration");
    assert!(deregistration.result.is_ok(), "{:?}", deregistration.result);
    let outcome = deregistration
        .leaving
        .as_ref()
        .expect("a deregistration that went through")
        .outcome();
    assert_eq!(outcome.absent, vec![ip]);
    assert!(outcome.removed.is_empty());
    assert!(
        records.records.lock().unwrap().is_empty(),
        "its record is cleared all the same"
    );
}
