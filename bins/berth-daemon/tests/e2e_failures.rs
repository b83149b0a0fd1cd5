//! The compiled daemon meeting what must not crash-loop it: nodes it cannot place
//! (no Cast.ai label, no usable providerID), a refused IAM permission, throttling.

mod common;

use std::time::Duration;

use berth_castai::fake::FakeCastAi;
use berth_castai::NODE_CONFIGURATION_LABEL;
use berth_kube::fake::ready_node;
use berth_testing::{Fault, Rule};
use common::*;

const WAIT: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_without_the_castai_label_or_a_usable_provider_id_are_skipped_with_an_event() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    let castai = FakeCastAi::start("cluster-1", "key-1").expect("FakeCastAi");
    castai.set_target_groups("cfg-web", &[(&arn, None)]);
    let label = [(NODE_CONFIGURATION_LABEL, "cfg-web")];
    w.add_node("labelled", &instance(0), &label);
    w.add_node("unlabelled", &instance(1), &[]);
    let mut no_id = ready_node("no-provider-id", &instance(2), &label);
    no_id.spec.get_or_insert_with(Default::default).provider_id = None;
    w.kube.add_node(no_id);
    let mut garbage = ready_node("garbage-provider-id", &instance(3), &label);
    garbage
        .spec
        .get_or_insert_with(Default::default)
        .provider_id = Some("kind://docker/kind/worker-3".into());
    w.kube.add_node(garbage);
    let env = [
        ("CLUSTER_ID", "cluster-1"),
        ("CLUSTER_API_KEY", "key-1"),
        ("CASTAI_API_URL", &*castai.base_url()),
    ];
    let mut d = w.daemon(&["--mode", "cluster", "--sleep-interval", "1"], &env);
    let labelled = set([format!("{}:30080", instance(0))]);
    eventually(WAIT, "the labelled node registered", &d, || async {
        w.members(&arn).await == labelled
    })
    .await;
    let skipped = |node: &str, why: &str| {
        w.events_of(node)
            .iter()
            .any(|e| e.starts_with("Skipped:") && e.contains(why))
    };
    eventually(
        WAIT,
        "a Skipped Event on each node it cannot place",
        &d,
        || async {
            skipped("unlabelled", "matches no target group")
                && skipped("no-provider-id", "no EC2 instance id")
                && skipped("garbage-provider-id", "no EC2 instance id")
        },
    )
    .await;
    // Resyncs go on: no crash, nothing else registered.
    d.wait_passes(2, WAIT).await;
    assert!(d.is_running(), "{}", d.log_text());
    assert_eq!(d.metric("berth_daemon_skipped_nodes"), Some(3.0));
    assert_eq!(w.members(&arn).await, labelled);
    assert_eq!(d.get("/readyz").map(|r| r.0), Some(200));

    // Once labelled, the node is placed like any other.
    w.edit_node("unlabelled", |n| {
        n.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(NODE_CONFIGURATION_LABEL.into(), "cfg-web".into());
    });
    eventually(WAIT, "the newly labelled node registered", &d, || async {
        w.members(&arn).await.len() == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_permission_is_an_event_and_a_metric_naming_the_iam_action() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    for i in 0..2 {
        w.add_node(&format!("node-{i}"), &instance(i), &[("role", "web")]);
    }
    let config = w.write("config.yaml", WEB_CONFIG);
    let action = "elasticloadbalancing:RegisterTargets";
    let denied = w
        .proxy
        .add(Rule::new("RegisterTargets", access_denied(action)));
    let mut d = w.daemon(
        &[
            "--mode",
            "cluster",
            "--config",
            config.to_str().unwrap(),
            "--sleep-interval",
            "1",
        ],
        &[],
    );
    let metric = format!("berth_daemon_errors_total{{kind=\"access_denied\",action=\"{action}\"}}");
    eventually(WAIT, "the refused action in /metrics", &d, || async {
        d.metric(&metric).is_some_and(|n| n >= 1.0)
    })
    .await;
    eventually(
        WAIT,
        "a RegistrationFailed Event naming the action",
        &d,
        || async {
            ["node-0", "node-1"].iter().all(|node| {
                w.events_of(node)
                    .iter()
                    .any(|e| e.starts_with("RegistrationFailed:") && e.contains(action))
            })
        },
    )
    .await;
    // Refused, not retried as if transient, and no crash loop.
    d.wait_passes(2, WAIT).await;
    assert!(d.is_running(), "{}", d.log_text());
    assert_eq!(d.get("/healthz").map(|r| r.0), Some(200));
    assert!(w.members(&arn).await.is_empty());
    let calls = w.proxy.fired(denied);
    let passes = d.passes() as usize;
    assert!(
        calls <= passes + 1,
        "{calls} RegisterTargets calls in {passes} passes: a refusal is not retried"
    );

    // The permission is granted: the next passes register.
    w.proxy.remove(denied);
    eventually(WAIT, "registered once permitted", &d, || async {
        w.members(&arn).await.len() == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_throttling_backs_off_without_a_crash_and_converges_after() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    for i in 0..5 {
        w.add_node(&format!("node-{i}"), &instance(i), &[("role", "web")]);
    }
    let config = w.write("config.yaml", WEB_CONFIG);
    let describe = w
        .proxy
        .add(Rule::new("DescribeTargetHealth", Fault::Throttle));
    let register = w.proxy.add(Rule::new("RegisterTargets", Fault::Throttle));
    let mut d = w.daemon(
        &[
            "--mode",
            "cluster",
            "--config",
            config.to_str().unwrap(),
            "--sleep-interval",
            "1",
        ],
        &[],
    );
    // Every DescribeTargetHealth is throttled for a while, then every RegisterTargets.
    // The engine's backoff doubles its ceiling when throttled, so "a while" is a few
    // seconds and a few throttled calls.
    let throttled_for = Duration::from_secs(3);
    let started = std::time::Instant::now();
    eventually(WAIT, "DescribeTargetHealth throttled", &d, || async {
        w.proxy.fired(describe) >= 1 && started.elapsed() >= throttled_for
    })
    .await;
    assert!(d.is_running(), "{}", d.log_text());
    assert_eq!(
        d.get("/healthz").map(|r| r.0),
        Some(200),
        "liveness unaffected"
    );
    assert_eq!(w.proxy.count("RegisterTargets"), 0, "nothing planned blind");
    w.proxy.remove(describe);
    let started = std::time::Instant::now();
    eventually(WAIT, "RegisterTargets throttled", &d, || async {
        w.proxy.fired(register) >= 1 && started.elapsed() >= throttled_for
    })
    .await;
    assert!(d.is_running(), "{}", d.log_text());
    assert!(w.members(&arn).await.is_empty());
    w.proxy.remove(register);
    eventually(WAIT, "converged after the throttling", &d, || async {
        w.members(&arn).await.len() == 5
    })
    .await;
    assert!(d.is_running());
    assert_eq!(
        w.proxy.count("DeregisterTargets"),
        0,
        "{:?}",
        w.proxy.counts()
    );
    assert!(
        d.metrics()
            .contains("berth_daemon_aws_calls_total{operation=\"DescribeTargetHealth\"}"),
        "{}",
        d.metrics()
    );
}
