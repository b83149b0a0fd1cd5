//! The runner over berth-core's in-memory target groups: every path of the lifecycle,
//! including the `initial` → `healthy` and `draining` → gone transitions moto lacks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_aws::CallCounter;
use berth_core::domain::{
    Registration, Target, TargetGroup, TargetGroupArn, TargetGroupRef, TargetHealth, TargetState,
    TargetType,
};
use berth_core::memory::{DeregisterBehaviour, MemoryTargetGroups};
use berth_core::provider::{Deregistered, TargetGroups};
use berth_core::Error;
use tokio::sync::mpsc;

use super::{Finish, Runner, Settings};
use crate::hook::Hook;
use crate::metrics::Metrics;
use crate::status::Status;

const IP: &str = "10.0.0.7";

struct World {
    groups: Arc<MemoryTargetGroups>,
    web: TargetGroup,
    api: TargetGroup,
}

fn world(registered_state: TargetState, deregister: DeregisterBehaviour) -> World {
    let mut groups = MemoryTargetGroups::default();
    groups.registered_state = registered_state;
    groups.deregister = deregister;
    let web = groups.add_group("web", TargetType::Ip, Some(80));
    let api = groups.add_group("api", TargetType::Ip, Some(8443));
    World {
        groups: Arc::new(groups),
        web,
        api,
    }
}

fn settings() -> Settings {
    Settings {
        groups: vec![
            TargetGroupRef::Name("web".into()),
            TargetGroupRef::Name("api".into()),
        ],
        target_id: IP.into(),
        port: None,
        availability_zone: None,
        pre_register: None,
        post_deregister: None,
        wait_in_service: Some(Duration::from_secs(5)),
        drain_timeout: Some(Duration::from_secs(5)),
        poll: (Duration::from_millis(10), Duration::from_millis(20)),
    }
}

struct Running {
    status: Arc<Status>,
    signal: mpsc::UnboundedSender<&'static str>,
    task: tokio::task::JoinHandle<Finish>,
}

fn start(provider: Arc<dyn TargetGroups>, settings: Settings) -> Running {
    let status = Arc::new(Status::new(Metrics::new(CallCounter::new())));
    let runner = Runner::new(provider, settings, status.clone());
    let (signal, signals) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move { runner.run(signals).await });
    Running {
        status,
        signal,
        task,
    }
}

impl Running {
    async fn until_ready(&self) {
        for _ in 0..500 {
            if self.status.is_ready() {
                return;
            }
            assert!(
                !self.task.is_finished(),
                "the runner ended before being ready"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not ready within 5s");
    }

    async fn stop(self) -> (Finish, Arc<Status>) {
        self.signal.send("SIGTERM").unwrap();
        let status = self.status.clone();
        (self.finish().await, status)
    }

    async fn finish(self) -> Finish {
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the runner did not end")
            .expect("the runner panicked")
    }
}

/// The in-memory groups, recording what is asked of `register` and optionally
/// holding each registration (so that a signal can arrive in the middle of one).
struct Wrapped {
    inner: Arc<MemoryTargetGroups>,
    registered: std::sync::Mutex<Vec<Registration>>,
    hold: Duration,
}

impl Wrapped {
    fn new(inner: &Arc<MemoryTargetGroups>) -> Self {
        Wrapped {
            inner: inner.clone(),
            registered: Default::default(),
            hold: Duration::ZERO,
        }
    }

    fn holding_after_register(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }
}

#[async_trait]
impl TargetGroups for Wrapped {
    async fn resolve(&self, group: &TargetGroupRef) -> berth_core::Result<TargetGroup> {
        self.inner.resolve(group).await
    }
    async fn health(&self, group: &TargetGroupArn) -> berth_core::Result<Vec<TargetHealth>> {
        self.inner.health(group).await
    }
    async fn register(
        &self,
        group: &TargetGroupArn,
        targets: &[Registration],
    ) -> berth_core::Result<()> {
        self.registered.lock().unwrap().extend_from_slice(targets);
        self.inner.register(group, targets).await?;
        tokio::time::sleep(self.hold).await;
        Ok(())
    }
    async fn deregister(
        &self,
        group: &TargetGroupArn,
        targets: &[Target],
    ) -> berth_core::Result<Deregistered> {
        self.inner.deregister(group, targets).await
    }
}

fn state(w: &World, group: &TargetGroup, port: u16) -> Option<TargetState> {
    w.groups
        .members(&group.arn)
        .get(&Target::new(IP, port))
        .copied()
}

#[tokio::test]
async fn registers_in_every_group_waits_healthy_and_drains_on_signal() {
    let w = world(TargetState::Initial, DeregisterBehaviour::Drain);
    let run = start(w.groups.clone(), settings());
    // Registered on each group's own port, but not ready while `initial`.
    for _ in 0..200 {
        if state(&w, &w.web, 80).is_some() && state(&w, &w.api, 8443).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(state(&w, &w.web, 80), Some(TargetState::Initial));
    assert_eq!(state(&w, &w.api, 8443), Some(TargetState::Initial));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!run.status.is_ready(), "ready before healthy");

    w.groups
        .set_state(&w.web.arn, Target::new(IP, 80), TargetState::Healthy);
    w.groups
        .set_state(&w.api.arn, Target::new(IP, 8443), TargetState::Healthy);
    run.until_ready().await;

    // On the signal: draining, and the runner waits until the drain is over.
    run.signal.send("SIGTERM").unwrap();
    for _ in 0..200 {
        if state(&w, &w.web, 80) == Some(TargetState::Draining)
            && state(&w, &w.api, 8443) == Some(TargetState::Draining)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(state(&w, &w.web, 80), Some(TargetState::Draining));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!run.task.is_finished(), "exited while still draining");
    assert!(!run.status.is_ready());
    w.groups.finish_draining();
    let finish = run.finish().await;
    assert_eq!(finish.code, 0, "{:?}", finish.error);
    assert!(finish.error.is_none());
    assert_eq!(w.groups.faults.calls("RegisterTargets"), 2);
    assert_eq!(w.groups.faults.calls("DeregisterTargets"), 2);
    assert!(w.groups.members(&w.web.arn).is_empty());
    assert!(w.groups.members(&w.api.arn).is_empty());
}

#[tokio::test]
async fn failed_registration_deregisters_what_was_registered_and_exits_1() {
    let w = world(TargetState::Healthy, DeregisterBehaviour::Vanish);
    let denied = Error::AccessDenied {
        action: "elasticloadbalancing:RegisterTargets".into(),
        message: "not allowed".into(),
    };
    // One group's registration is refused; the other succeeds and must be undone.
    w.groups.faults.fail("RegisterTargets", denied, 1);
    let run = start(w.groups.clone(), settings());
    let finish = run.finish().await;
    assert_eq!(finish.code, 1);
    let error = format!("{:#}", finish.error.expect("an error"));
    assert!(
        error.contains("elasticloadbalancing:RegisterTargets"),
        "{error}"
    );
    assert!(w.groups.members(&w.web.arn).is_empty());
    assert!(w.groups.members(&w.api.arn).is_empty());
    assert_eq!(w.groups.faults.calls("DeregisterTargets"), 2);
}

#[tokio::test]
async fn unhealthy_target_times_out_deregisters_and_says_why() {
    let w = world(TargetState::Unhealthy, DeregisterBehaviour::Vanish);
    let mut s = settings();
    s.wait_in_service = Some(Duration::from_millis(150));
    let run = start(w.groups.clone(), s);
    let status = run.status.clone();
    let finish = run.finish().await;
    assert_eq!(finish.code, 1);
    let error = format!("{:#}", finish.error.expect("an error"));
    assert!(
        error.contains("did not become healthy within 150ms"),
        "{error}"
    );
    assert!(error.contains("unhealthy"), "{error}");
    assert!(!status.is_ready());
    assert!(w.groups.members(&w.web.arn).is_empty());
    let metrics = status.metrics.render();
    assert!(metrics.contains("stage=\"wait_healthy\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_signal_during_registration_cancels_it_and_deregisters() {
    let w = world(TargetState::Healthy, DeregisterBehaviour::Vanish);
    let slow = Wrapped::new(&w.groups).holding_after_register(Duration::from_secs(30));
    let run = start(Arc::new(slow), settings());
    for _ in 0..200 {
        if w.groups.faults.calls("RegisterTargets") == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(state(&w, &w.web, 80), Some(TargetState::Healthy));
    let (finish, status) = run.stop().await;
    assert_eq!(finish.code, 0, "{:?}", finish.error);
    assert!(!status.is_ready());
    assert!(w.groups.members(&w.web.arn).is_empty());
    assert!(w.groups.members(&w.api.arn).is_empty());
}

#[tokio::test]
async fn a_restart_keeps_an_existing_registration() {
    let w = world(TargetState::Healthy, DeregisterBehaviour::Vanish);
    w.groups
        .set_state(&w.web.arn, Target::new(IP, 80), TargetState::Healthy);
    let run = start(w.groups.clone(), settings());
    run.until_ready().await;
    // Only the group that lacked the target got a RegisterTargets call.
    assert_eq!(w.groups.faults.calls("RegisterTargets"), 1);
    let (finish, _) = run.stop().await;
    assert_eq!(finish.code, 0);
}

#[tokio::test]
async fn a_restart_waits_out_a_previous_drain_before_registering() {
    let w = world(TargetState::Healthy, DeregisterBehaviour::Drain);
    w.groups
        .set_state(&w.web.arn, Target::new(IP, 80), TargetState::Draining);
    let run = start(w.groups.clone(), settings());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        w.groups.faults.calls("RegisterTargets"),
        0,
        "never re-registered mid-drain"
    );
    assert!(!run.status.is_ready());
    w.groups.finish_draining();
    run.until_ready().await;
    assert_eq!(state(&w, &w.web, 80), Some(TargetState::Healthy));
    let groups = w.groups.clone();
    let finisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        groups.finish_draining();
    });
    let (finish, _) = run.stop().await;
    finisher.await.unwrap();
    assert_eq!(finish.code, 0);
}

#[tokio::test]
async fn failing_pre_register_hook_registers_nothing() {
    let w = world(TargetState::Healthy, DeregisterBehaviour::Vanish);
    let mut s = settings();
    s.pre_register = Some(Hook {
        command: "echo 'warming failed'; exit 4".into(),
        timeout: Duration::from_secs(5),
    });
    let finish = start(w.groups.clone(), s).finish().await;
    assert_eq!(finish.code, 1);
    let error = format!("{:#}", finish.error.expect("an error"));
    assert!(
        error.contains("warming failed") && error.contains("code 4"),
        "{error}"
    );
    assert_eq!(w.groups.faults.calls("RegisterTargets"), 0);
    assert_eq!(w.groups.faults.calls("DeregisterTargets"), 0);
}

#[tokio::test]
async fn unknown_group_is_named_and_nothing_is_registered() {
    let w = world(TargetState::Healthy, DeregisterBehaviour::Vanish);
    let mut s = settings();
    s.groups.push(TargetGroupRef::Name("nope".into()));
    let finish = start(w.groups.clone(), s).finish().await;
    assert_eq!(finish.code, 1);
    let error = format!("{:#}", finish.error.expect("an error"));
    assert!(error.contains("nope"), "{error}");
    assert_eq!(w.groups.faults.calls("RegisterTargets"), 0);
}

#[tokio::test]
async fn post_hook_runs_after_the_drain_and_its_exit_code_is_ours() {
    let w = world(TargetState::Healthy, DeregisterBehaviour::Vanish);
    let mut s = settings();
    s.post_deregister = Some(Hook {
        command: "echo notified; exit 3".into(),
        timeout: Duration::from_secs(5),
    });
    let run = start(w.groups.clone(), s);
    run.until_ready().await;
    let (finish, _) = run.stop().await;
    assert_eq!(finish.code, 3);
    let error = format!("{:#}", finish.error.expect("an error"));
    assert!(error.contains("notified"), "{error}");
}

#[tokio::test]
async fn the_drain_wait_is_bounded() {
    let w = world(TargetState::Healthy, DeregisterBehaviour::Drain);
    let mut s = settings();
    s.drain_timeout = Some(Duration::from_millis(200));
    let run = start(w.groups.clone(), s);
    run.until_ready().await;
    let started = std::time::Instant::now();
    let (finish, status) = run.stop().await;
    let took = started.elapsed();
    assert_eq!(finish.code, 0, "a drain past its bound is a warning");
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(status.metrics.render().contains("stage=\"drain\"} 2"));
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let w = world(TargetState::Healthy, DeregisterBehaviour::Vanish);
    let status = Arc::new(Status::new(Metrics::new(CallCounter::new())));
    let runner = Runner::new(w.groups.clone(), settings(), status);
    let text = runner.dry_run().await.unwrap();
    assert!(text.contains("register 10.0.0.7:80 in web"), "{text}");
    assert!(text.contains("register 10.0.0.7:8443 in api"), "{text}");
    assert_eq!(w.groups.faults.calls("RegisterTargets"), 0);
}

#[tokio::test]
async fn explicit_port_and_availability_zone_reach_every_registration() {
    let w = world(TargetState::Healthy, DeregisterBehaviour::Vanish);
    let recording = Arc::new(Wrapped::new(&w.groups));
    let mut s = settings();
    s.port = Some(9000);
    s.availability_zone = Some("all".into());
    let run = start(recording.clone(), s);
    run.until_ready().await;
    let mut seen: Vec<(String, Option<String>)> = recording
        .registered
        .lock()
        .unwrap()
        .iter()
        .map(|r| (r.target.to_string(), r.availability_zone.clone()))
        .collect();
    seen.sort();
    let want = (format!("{IP}:9000"), Some("all".to_owned()));
    assert_eq!(seen, [want.clone(), want]);
    assert_eq!(state(&w, &w.web, 9000), Some(TargetState::Healthy));
    assert_eq!(state(&w, &w.api, 9000), Some(TargetState::Healthy));
    let (finish, _) = run.stop().await;
    assert_eq!(finish.code, 0);
}

#[tokio::test]
async fn instance_groups_are_refused_before_anything_is_registered() {
    let w = world(TargetState::Healthy, DeregisterBehaviour::Vanish);
    w.groups
        .add_group("nodes", TargetType::Instance, Some(30080));
    let mut s = settings();
    s.groups.push(TargetGroupRef::Name("nodes".into()));
    let finish = start(w.groups.clone(), s).finish().await;
    assert_eq!(finish.code, 1);
    let error = format!("{:#}", finish.error.expect("an error"));
    assert!(
        error.contains("nodes") && error.contains("instance"),
        "{error}"
    );
    assert_eq!(w.groups.faults.calls("RegisterTargets"), 0);
}

mod absent;
