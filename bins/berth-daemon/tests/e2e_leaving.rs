//! The compiled daemon taking nodes out of their groups: ahead of a spot interruption
//! (IMDSv2), after a NotReady grace, and waiting out the deregistration delay.

mod common;

use std::time::{Duration, Instant, SystemTime};

use berth_testing::imds::{FakeImds, IDENTITY_PATH, SPOT_ACTION_PATH};
use berth_testing::{Fault, Rule};
use common::*;

const WAIT: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_mode_deregisters_ahead_of_a_spot_interruption_while_the_node_is_still_ready() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    w.add_node("node-0", &instance(0), &[("role", "web")]);
    let imds = FakeImds::start();
    imds.set_identity(&instance(0), "eu-west-1", "10.0.0.10");
    let config = w.write("config.yaml", WEB_CONFIG);
    let d = w.daemon(
        &[
            "--mode",
            "node",
            "--config",
            config.to_str().unwrap(),
            "--imds-endpoint",
            &imds.endpoint(),
            "--spot-poll",
            "200ms",
            "--sleep-interval",
            "1",
        ],
        &[("NODE_NAME", "node-0")],
    );
    let mine = set([format!("{}:30080", instance(0))]);
    let ownership = "berth-daemon-node-node-0";
    eventually(WAIT, "node-0 registered and owned", &d, || async {
        w.members(&arn).await == mine && w.owned(ownership).as_ref() == Some(&mine)
    })
    .await;
    eventually(WAIT, "the spot notice polled", &d, || async {
        imds.gets(SPOT_ACTION_PATH) >= 2
    })
    .await;
    assert_eq!(
        w.members(&arn).await,
        mine,
        "no notice yet: still registered"
    );

    // EC2 schedules the interruption two minutes ahead; the Node object is untouched.
    let when = SystemTime::now() + Duration::from_secs(120);
    imds.set_spot_action(
        "terminate",
        &humantime::format_rfc3339_seconds(when).to_string(),
    );
    eventually(WAIT, "deregistered and released", &d, || async {
        w.members(&arn).await.is_empty() && w.owned(ownership).unwrap_or_default().is_empty()
    })
    .await;
    assert!(w.is_ready("node-0"), "deregistered while still Ready");
    // Later resyncs do not put it back.
    d.wait_passes(2, WAIT).await;
    assert!(w.members(&arn).await.is_empty());
    assert_eq!(
        w.proxy.count("RegisterTargets"),
        1,
        "{:?}",
        w.proxy.counts()
    );
    assert_eq!(w.proxy.count("DeregisterTargets"), 1);

    // Events are published off the pass, after its AWS calls: waited for.
    eventually(
        WAIT,
        "node-0's Deregistering (spot-interruption) Event",
        &d,
        || async {
            w.events_of("node-0")
                .iter()
                .any(|e| e.starts_with("Deregistering") && e.contains("spot-interruption"))
        },
    )
    .await;
    assert!(
        d.log_text().contains("spot interruption notice"),
        "{}",
        d.log_text()
    );
    // IMDSv2 only: every request carried a session token.
    let seen = imds.requests();
    assert!(seen.rejected.is_empty(), "{:?}", seen.rejected);
    assert!(seen.tokens_issued >= 1);
    assert!(imds.gets(IDENTITY_PATH) >= 1, "{:?}", seen.authorised_gets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notready_past_the_grace_is_deregistered_and_a_shorter_notready_is_kept() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    for i in 0..3 {
        w.add_node(&format!("node-{i}"), &instance(i), &[("role", "web")]);
    }
    let config = w.write("config.yaml", WEB_CONFIG);
    // No periodic resync during the test: the grace expiry must schedule its own pass.
    // The grace leaves room for a slow first pass on a loaded machine: node-0 must be
    // seen gone while node-1 and node-2 are still within it.
    let d = w.daemon(
        &[
            "--mode",
            "cluster",
            "--config",
            config.to_str().unwrap(),
            "--not-ready-grace",
            "10s",
            "--sleep-interval",
            "300",
        ],
        &[],
    );
    let member = |i: usize| format!("{}:30080", instance(i));
    eventually(WAIT, "3 nodes registered", &d, || async {
        w.members(&arn).await.len() == 3
    })
    .await;

    // node-0 has been NotReady for an hour; node-1 and node-2 just turned NotReady.
    let now = SystemTime::now();
    w.set_ready("node-0", false, now - Duration::from_secs(3600));
    w.set_ready("node-1", false, now);
    w.set_ready("node-2", false, now);
    let down = Instant::now();
    eventually(WAIT, "node-0 deregistered", &d, || async {
        w.members(&arn).await == set([member(1), member(2)])
    })
    .await;
    assert!(
        down.elapsed() < Duration::from_secs(8),
        "node-0 is acted on at once, node-1/node-2 must still be within their grace: {:?}",
        down.elapsed()
    );
    // node-1 recovers within its grace: it is never deregistered.
    w.set_ready("node-1", true, SystemTime::now());
    // node-2 stays NotReady: deregistered once its grace runs out, with no node change
    // and no resync to prompt it.
    eventually(WAIT, "node-2 deregistered after its grace", &d, || async {
        w.members(&arn).await == set([member(1)])
    })
    .await;
    assert!(
        down.elapsed() >= Duration::from_secs(8),
        "node-2 left before its 10 s grace (transition times have 1 s precision): {:?}",
        down.elapsed()
    );
    assert_eq!(
        w.proxy.count("DeregisterTargets"),
        2,
        "{:?}",
        w.proxy.counts()
    );
    // Events are published after the change, off the reconcile path: wait for it
    // rather than read them at once (the read raced the publication).
    eventually(
        WAIT,
        "node-2's Deregistering (NotReady) Event",
        &d,
        || async {
            w.events_of("node-2")
                .iter()
                .any(|e| e.starts_with("Deregistering") && e.contains("NotReady"))
        },
    )
    .await;
    assert!(
        !w.events_of("node-1")
            .iter()
            .any(|e| e.starts_with("Deregistering")),
        "{:?}",
        w.events_of("node-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_is_reported_done_only_once_the_target_has_drained() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    w.set_deregistration_delay(&arn, 3).await;
    w.add_node("node-0", &instance(0), &[("role", "web")]);
    let config = w.write("config.yaml", WEB_CONFIG);
    let d = w.daemon(
        &[
            "--mode",
            "cluster",
            "--config",
            config.to_str().unwrap(),
            "--sleep-interval",
            "300",
        ],
        &[],
    );
    eventually(WAIT, "node-0 registered", &d, || async {
        w.members(&arn).await.len() == 1
    })
    .await;
    eventually(WAIT, "the registering pass over", &d, || async {
        d.passes() >= 1
    })
    .await;

    // After the cordon, the pass observes the group once (let through), deregisters,
    // and from then on AWS shows the target draining, as during a real delay.
    let draining = w.proxy.add(
        Rule::new(
            "DescribeTargetHealth",
            Fault::Respond {
                status: 200,
                body: draining_health(&instance(0), 30080),
            },
        )
        .after(1),
    );
    w.edit_node("node-0", |n| {
        n.spec.get_or_insert_with(Default::default).unschedulable = Some(true)
    });
    eventually(WAIT, "deregistered, draining", &d, || async {
        w.proxy.count("DeregisterTargets") == 1
            && d.metric("berth_daemon_draining_targets") == Some(1.0)
    })
    .await;
    let deregistered = Instant::now();
    // The gauge is set as the pass ends; its Events are published off the pass.
    eventually(
        WAIT,
        "the group's own delay announced in a Deregistering Event",
        &d,
        || async {
            w.events_of("node-0")
                .iter()
                .any(|e| e.starts_with("Deregistering") && e.contains("draining for up to 3s"))
        },
    )
    .await;

    // For the whole delay the target drains and nothing reports it done.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Polled every second or more (backoff): waited for, not counted on after 3 s.
    eventually(WAIT, "the drain polled twice", &d, || async {
        w.proxy.fired(draining) >= 2
    })
    .await;
    assert_eq!(d.metric("berth_daemon_draining_targets"), Some(1.0));
    assert_eq!(d.metric("berth_daemon_drained_total"), Some(0.0));
    let events = w.events_of("node-0");
    assert!(
        !events.iter().any(|e| e.starts_with("Deregistered")),
        "{events:?}"
    );

    // The delay is over: the target is gone and the deregistration is done.
    w.proxy.remove(draining);
    eventually(WAIT, "reported drained", &d, || async {
        d.metric("berth_daemon_drained_total") == Some(1.0)
            && d.metric("berth_daemon_draining_targets") == Some(0.0)
    })
    .await;
    let took = deregistered.elapsed();
    eventually(WAIT, "the Deregistered Event", &d, || async {
        w.events_of("node-0")
            .iter()
            .any(|e| e.starts_with("Deregistered:") && e.contains("left target group web"))
    })
    .await;
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(
        d.log_text().contains("left target group web after"),
        "{}",
        d.log_text()
    );
    assert_eq!(w.proxy.count("RegisterTargets"), 1, "never re-registered");
}
