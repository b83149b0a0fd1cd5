//! Registration records through the runner (see `crate::record`): the claim is written
//! before `RegisterTargets` and released after `DeregisterTargets`; a claim that cannot
//! be written stops the registration, so an IP is never registered unrecorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_aws::CallCounter;
use berth_core::domain::{Target, TargetGroupArn, TargetGroupRef, TargetType};
use berth_core::memory::{DeregisterBehaviour, MemoryTargetGroups};
use berth_core::provider::{OwnedTargets, TargetGroups, TargetOwnership};
use berth_core::Error;
use tokio::sync::mpsc;

use super::{Runner, Settings};
use crate::metrics::Metrics;
use crate::status::Status;

const IP: &str = "10.0.0.9";

/// Records every claim and release with whether the target was in its group then.
struct Journal {
    groups: Arc<MemoryTargetGroups>,
    entries: Mutex<Vec<(&'static str, bool)>>,
    refuse: bool,
}

impl Journal {
    fn note(&self, verb: &'static str, group: &TargetGroupArn, targets: &[Target]) {
        let members = self.groups.members(group);
        let present = targets
            .iter()
            .any(|t| members.get(t).is_some_and(|s| !s.is_draining()));
        self.entries.lock().unwrap().push((verb, present));
    }
}

#[async_trait]
impl TargetOwnership for Journal {
    async fn owned(&self) -> berth_core::Result<OwnedTargets> {
        Ok(OwnedTargets::new())
    }
    async fn claim(&self, group: &TargetGroupArn, targets: &[Target]) -> berth_core::Result<()> {
        if self.refuse {
            return Err(Error::invalid("the record cannot be written"));
        }
        self.note("claim", group, targets);
        Ok(())
    }
    async fn release(&self, group: &TargetGroupArn, targets: &[Target]) -> berth_core::Result<()> {
        self.note("release", group, targets);
        Ok(())
    }
}

fn settings() -> Settings {
    Settings {
        groups: vec![TargetGroupRef::Name("web".into())],
        target_id: IP.into(),
        port: None,
        availability_zone: None,
        pre_register: None,
        post_deregister: None,
        wait_in_service: None,
        drain_timeout: Some(Duration::from_secs(1)),
        poll: (Duration::from_millis(10), Duration::from_millis(20)),
    }
}

fn setup(refuse: bool) -> (Arc<MemoryTargetGroups>, TargetGroupArn, Arc<Journal>) {
    let mut groups = MemoryTargetGroups::default();
    groups.deregister = DeregisterBehaviour::Vanish;
    let web = groups.add_group("web", TargetType::Ip, Some(80)).arn;
    let groups = Arc::new(groups);
    let journal = Arc::new(Journal {
        groups: groups.clone(),
        entries: Mutex::default(),
        refuse,
    });
    (groups, web, journal)
}

fn runner(groups: &Arc<MemoryTargetGroups>, journal: &Arc<Journal>) -> (Runner, Arc<Status>) {
    let status = Arc::new(Status::new(Metrics::new(CallCounter::new())));
    let provider: Arc<dyn TargetGroups> = groups.clone();
    let runner = Runner::new(provider, settings(), status.clone()).record_in(journal.clone());
    (runner, status)
}

#[tokio::test]
async fn the_claim_precedes_the_registration_and_the_release_follows_the_deregistration() {
    let (groups, web, journal) = setup(false);
    let (runner, status) = runner(&groups, &journal);
    let (signal, signals) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move { runner.run(signals).await });
    for _ in 0..500 {
        if status.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(status.is_ready(), "registered");
    assert!(groups.members(&web).contains_key(&Target::new(IP, 80)));
    signal.send("SIGTERM").unwrap();
    let finish = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(finish.code, 0, "{:?}", finish.error);
    assert_eq!(
        *journal.entries.lock().unwrap(),
        [("claim", false), ("release", false)],
        "claimed while not yet registered, released once no longer registered"
    );
}

#[tokio::test]
async fn a_record_that_cannot_be_written_prevents_the_registration() {
    let (groups, web, journal) = setup(true);
    let (runner, status) = runner(&groups, &journal);
    let (_signal, signals) = mpsc::unbounded_channel();
    let finish = tokio::time::timeout(Duration::from_secs(10), runner.run(signals))
        .await
        .unwrap();
    assert_eq!(finish.code, 1);
    let error = format!("{:#}", finish.error.expect("an error"));
    assert!(error.contains("the record cannot be written"), "{error}");
    assert!(groups.members(&web).is_empty(), "nothing was registered");
    assert!(!status.is_ready());
}
