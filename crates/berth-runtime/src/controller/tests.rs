use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use tokio::sync::watch;

use super::*;
use crate::metrics::Metrics;

type Script = VecDeque<Result<Outcome, String>>;
/// Each pass and when it ran, since the start.
type Seen = Arc<Mutex<Vec<(Duration, Pass<u32>)>>>;

/// A controller under test: its triggers, what each pass saw and when.
struct Harness {
    triggers: mpsc::UnboundedSender<Trigger<u32>>,
    passes: Seen,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<Stopped, Error>>,
    start: Instant,
    metrics: Metrics,
}

fn spawn<L: Leadership + 'static>(config: Config, leadership: L, script: Script) -> Harness {
    let (triggers, rx) = mpsc::unbounded();
    let passes = Seen::default();
    let seen = passes.clone();
    let script = Arc::new(Mutex::new(script));
    let shutdown = CancellationToken::new();
    let start = Instant::now();
    let metrics = Metrics::new("test");
    let controller = Controller::new("nodes", config)
        .leadership(leadership)
        .metrics(metrics.reconcile());
    let task = tokio::spawn(
        controller.run(rx, shutdown.clone(), move |pass: Pass<u32>| {
            seen.lock().unwrap().push((start.elapsed(), pass));
            let next = script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Ok(Outcome::done()));
            async move { next.map_err(std::io::Error::other) }
        }),
    );
    Harness {
        triggers,
        passes,
        shutdown,
        task,
        start,
        metrics,
    }
}

impl Harness {
    fn send(&self, trigger: Trigger<u32>) {
        self.triggers.unbounded_send(trigger).unwrap();
    }

    fn times(&self) -> Vec<Duration> {
        self.passes
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| *t)
            .collect()
    }

    fn passes(&self) -> Vec<(Duration, Pass<u32>)> {
        self.passes.lock().unwrap().clone()
    }

    /// Sleeps until `at` after the start (virtual time).
    async fn until(&self, at: Duration) {
        tokio::time::sleep_until(self.start + at).await;
    }

    async fn stop(self) -> Stopped {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap()
    }
}

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn config() -> Config {
    Config {
        debounce: s(1),
        resync: None,
        backoff: Backoff {
            initial: s(1),
            max: s(8),
            jitter: 0.5,
        },
        wait_for_sync: true,
        once: false,
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_changes_makes_one_pass_after_the_debounce() {
    let h = spawn(config(), AlwaysLeader, Script::new());
    h.send(Trigger::Synced);
    h.until(s(10)).await;
    for (at, key) in [(10_000, 2), (10_100, 1), (10_500, 2), (10_900, 3)] {
        h.until(ms(at)).await;
        h.send(Trigger::Changed(key));
    }
    h.until(s(30)).await;
    let passes = h.passes();
    assert_eq!(passes.len(), 2, "{passes:?}");
    assert_eq!(passes[0].0, Duration::ZERO);
    assert_eq!(passes[0].1.reason, Reason::Synced);
    // One pass, one debounce after the first change of the burst, every key once.
    assert_eq!(passes[1].0, s(11));
    assert_eq!(
        passes[1].1,
        Pass {
            reason: Reason::Changed,
            changed: vec![1, 2, 3]
        }
    );
    assert_eq!(h.stop().await, Stopped::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn resync_runs_a_pass_after_each_quiet_period() {
    let h = spawn(
        Config {
            resync: Some(s(10)),
            wait_for_sync: false,
            ..config()
        },
        AlwaysLeader,
        Script::new(),
    );
    h.until(s(15)).await;
    h.send(Trigger::Now);
    h.until(s(36)).await;
    // 0 (start), 10 (resync), 15 (now), 25 and 35 (resync, counted from the last pass).
    assert_eq!(h.times(), [0, 10, 15, 25, 35].map(s));
    let reasons: Vec<Reason> = h.passes().into_iter().map(|(_, p)| p.reason).collect();
    assert_eq!(
        reasons,
        [
            Reason::Start,
            Reason::Resync,
            Reason::Now,
            Reason::Resync,
            Reason::Resync
        ]
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn requeue_after_schedules_the_next_pass() {
    let script = Script::from([
        Ok(Outcome::requeue_after(s(3))),
        Ok(Outcome::requeue_after(s(7))),
    ]);
    let h = spawn(
        Config {
            resync: Some(s(100)),
            ..config()
        },
        AlwaysLeader,
        script,
    );
    h.send(Trigger::Synced);
    h.until(s(50)).await;
    assert_eq!(h.times(), [0, 3, 10].map(s));
    assert_eq!(h.passes()[1].1.reason, Reason::Requeue);
    let metrics = h.metrics.render();
    assert!(
        metrics.contains("berth_reconcile_total{controller=\"nodes\",result=\"requeue_after\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("berth_reconcile_total{controller=\"nodes\",result=\"success\"} 1"),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_with_bounded_jitter_and_a_success_resets_it() {
    let fail = || Err("AWS is down".to_owned());
    let mut script: Script = std::iter::repeat_with(fail).take(6).collect();
    script.push_back(Ok(Outcome::done()));
    script.push_back(Ok(Outcome::retry()));
    let h = spawn(config(), AlwaysLeader, script);
    h.send(Trigger::Synced);
    h.until(s(200)).await;
    assert_eq!(
        h.times().len(),
        7,
        "six failures and a success: {:?}",
        h.times()
    );
    h.send(Trigger::Now);
    h.until(s(300)).await;
    let times = h.times();
    assert_eq!(times.len(), 9, "{times:?}");
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Six failures: 1, 2, 4, 8, 8, 8 s (capped), each plus up to 50 % jitter; then the
    // success; then a pass that did not converge starts over at 1 s.
    let bases = [1, 2, 4, 8, 8, 8].map(s);
    for (i, (gap, base)) in gaps.iter().take(6).zip(bases).enumerate() {
        assert!(
            *gap >= base && *gap <= base.mul_f64(1.5),
            "retry {i}: {gap:?} outside [{base:?}, 1.5 × {base:?}]"
        );
        assert_eq!(h.passes()[i + 1].1.reason, Reason::Retry);
    }
    let after_retry = gaps[7];
    assert!(
        after_retry >= s(1) && after_retry <= ms(1500),
        "{after_retry:?}"
    );
    let metrics = h.metrics.render();
    assert!(
        metrics.contains("berth_reconcile_total{controller=\"nodes\",result=\"error\"} 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("berth_reconcile_total{controller=\"nodes\",result=\"requeue\"} 1"),
        "{metrics}"
    );
    h.stop().await;
}

#[test]
fn the_jitter_stays_within_its_bounds() {
    let backoff = Backoff {
        initial: ms(100),
        max: s(2),
        jitter: 0.2,
    };
    for _ in 0..1000 {
        let d = backoff.delay(3);
        assert!(d >= ms(400) && d <= ms(480), "{d:?}");
        let capped = backoff.delay(40);
        assert!(capped >= s(2) && capped <= ms(2400), "{capped:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn no_pass_before_the_first_listing_nor_while_not_leader() {
    let (leader, leading) = watch::channel(false);
    let h = spawn(config(), leading, Script::new());
    h.send(Trigger::Changed(1));
    h.until(s(60)).await;
    assert!(h.times().is_empty(), "a pass before the first listing");
    h.send(Trigger::Synced);
    h.until(s(120)).await;
    assert!(h.times().is_empty(), "a pass while not the leader");
    assert!(h
        .metrics
        .render()
        .contains("berth_leader{controller=\"nodes\"} 0"));
    leader.send(true).unwrap();
    h.until(s(121)).await;
    assert!(h
        .metrics
        .render()
        .contains("berth_leader{controller=\"nodes\"} 1"));
    // Becoming leader runs the waiting pass at once, with the keys gathered meanwhile.
    assert_eq!(h.times(), [s(120)]);
    assert_eq!(h.passes()[0].1.changed, [1]);
    leader.send(false).unwrap();
    h.until(s(122)).await;
    h.send(Trigger::Now);
    h.until(s(200)).await;
    assert_eq!(h.times().len(), 1, "a pass after losing the leadership");
    leader.send(true).unwrap();
    h.until(s(201)).await;
    assert_eq!(h.times(), [s(120), s(200)]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_the_loop_and_once_stops_after_one_pass() {
    let h = spawn(
        Config {
            resync: Some(s(1)),
            wait_for_sync: false,
            ..config()
        },
        AlwaysLeader,
        Script::new(),
    );
    h.until(ms(2500)).await;
    h.shutdown.cancel();
    h.until(s(10)).await;
    assert!(h.task.is_finished());
    assert_eq!(h.times(), [0, 1, 2].map(s));
    assert_eq!(h.stop().await, Stopped::Cancelled);

    let h = spawn(
        Config {
            once: true,
            ..config()
        },
        AlwaysLeader,
        Script::from([Err("boom".to_owned())]),
    );
    h.send(Trigger::Synced);
    let stopped = tokio::time::timeout(s(60), h.task).await.unwrap().unwrap();
    assert_eq!(stopped.unwrap(), Stopped::Once { converged: false });
}

#[tokio::test(start_paused = true)]
async fn the_end_of_the_triggers_is_an_error() {
    let h = spawn(config(), AlwaysLeader, Script::new());
    let Harness { triggers, task, .. } = h;
    drop(triggers);
    let result = tokio::time::timeout(s(60), task).await.unwrap().unwrap();
    assert!(matches!(result, Err(Error::TriggersEnded)), "{result:?}");
}

#[tokio::test(start_paused = true)]
async fn readiness_is_set_once_synced() {
    let readiness = Readiness::new();
    let (tx, rx) = mpsc::unbounded::<Trigger<u32>>();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        Controller::new("nodes", config())
            .readiness(readiness.clone())
            .run(rx, shutdown.clone(), |_: Pass<u32>| async {
                Ok::<_, std::io::Error>(Outcome::done())
            }),
    );
    tokio::time::sleep(s(5)).await;
    assert!(!readiness.is_ready());
    tx.unbounded_send(Trigger::Synced).unwrap();
    tokio::time::sleep(s(1)).await;
    assert!(readiness.is_ready());
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
