//! What the fault and leader-change tests share (e2e_aws_faults.rs, scale_faults.rs),
//! on top of `common::fleet`: the 20 % AWS fault mix, per-target counts of the
//! registrations AWS actually received, the ownership record, and /metrics sums.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth_core::domain::Owner;
use berth_kube::ownership::ConfigMapOwnership;
use berth_testing::{Fault, FaultProxy, Match, Rule, RuleId};
use k8s_openapi::api::core::v1::ConfigMap;

use crate::common::fleet::Fleet;
use crate::common::{eventually, Daemon, World};

/// The ids of the rules of [`fault_mix`].
pub struct FaultMix {
    pub delay: RuleId,
    pub throttle: RuleId,
    pub server_error: RuleId,
    pub reset: RuleId,
}

impl FaultMix {
    /// (fault, requests it acted on).
    pub fn fired(&self, proxy: &FaultProxy) -> Vec<(&'static str, usize)> {
        vec![
            ("delay 2 s", proxy.fired(self.delay)),
            ("throttle", proxy.fired(self.throttle)),
            ("503", proxy.fired(self.server_error)),
            ("reset", proxy.fired(self.reset)),
        ]
    }
}

/// One ELBv2 call in five (deterministic, by arrival order) fails or is slow: 2 s of
/// latency for one call in 10 (then answered normally), and of the calls left, one in
/// 15 throttled (`Throttling`), one in 14 a 503 (`ServiceUnavailable`), one in 13
/// closed without an answer — about a fifth failing, a tenth slow.
pub fn fault_mix(proxy: &FaultProxy) -> FaultMix {
    let elb = || Match::Service("elasticloadbalancing".into());
    FaultMix {
        delay: proxy.add(Rule::matching(elb(), Fault::Delay(Duration::from_secs(2))).every(10)),
        throttle: proxy.add(Rule::matching(elb(), Fault::Throttle).every(15)),
        server_error: proxy
            .add(Rule::matching(elb(), Fault::ServerError { status: 503 }).every(14)),
        reset: proxy.add(Rule::matching(elb(), Fault::Reset).every(13)),
    }
}

/// How often AWS received each target in a `RegisterTargets` request (the requests
/// the proxy forwarded to moto, whatever moto answered): `<group ARN> <id>:<port>` →
/// count. A target counted twice was registered twice: a second RegisterTargets of a
/// target already registered (AWS accepts it, so it only shows here).
pub fn registrations_received(proxy: &FaultProxy) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for body in proxy.forwarded_bodies("RegisterTargets") {
        let params: BTreeMap<String, String> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let group = params.get("TargetGroupArn").cloned().unwrap_or_default();
        for n in 1.. {
            let Some(id) = params.get(&format!("Targets.member.{n}.Id")) else {
                break;
            };
            let port = params
                .get(&format!("Targets.member.{n}.Port"))
                .cloned()
                .unwrap_or_default();
            *counts.entry(format!("{group} {id}:{port}")).or_insert(0) += 1;
        }
    }
    counts
}

/// The targets counted more than once by [`registrations_received`].
pub fn registered_twice(counts: &BTreeMap<String, usize>) -> Vec<(&String, &usize)> {
    counts.iter().filter(|(_, n)| **n > 1).collect()
}

/// The (group, target) pairs the cluster-mode ownership ConfigMap records, as
/// `<group key> <id>:<port>`.
pub fn owned_pairs(w: &World) -> BTreeSet<String> {
    let name =
        ConfigMapOwnership::config_map_name(&Owner::new("berth/default/daemon").expect("owner id"));
    let cm: Option<ConfigMap> = w.kube.get(Some("default"), &name);
    cm.and_then(|cm| cm.data)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(group, targets)| {
            targets
                .split_whitespace()
                .map(|t| format!("{group} {t}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The sum of every sample of `metric` whose labels contain each of `labels`
/// (`key="value"`), in Prometheus text.
pub fn metric_sum(metrics: &str, metric: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `berth_aws_api_errors_total` per `operation error_code`, and
/// `berth_aws_api_calls_total` per operation, from the daemon's /metrics.
pub fn aws_calls_and_errors(metrics: &str) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let label = |line: &str, key: &str| -> String {
        line.split(&format!("{key}=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned()
    };
    let mut calls = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        if line.starts_with("berth_aws_api_calls_total{") {
            *calls.entry(label(line, "operation")).or_insert(0.0) += value;
        } else if line.starts_with("berth_aws_api_errors_total{") {
            let key = format!("{} {}", label(line, "operation"), label(line, "error_code"));
            *errors.entry(key).or_insert(0.0) += value;
        }
    }
    (calls, errors)
}

/// The failed attempts with this error code in `errors` (of [`aws_calls_and_errors`]).
fn with_code(errors: &BTreeMap<String, f64>, code: &str) -> usize {
    errors
        .iter()
        .filter(|(k, _)| k.ends_with(&format!(" {code}")))
        .map(|(_, v)| *v as usize)
        .sum()
}

/// What [`converge_through_faults`] measured.
#[derive(Debug)]
pub struct FaultsRun {
    /// From the daemon's start to the end of the pass after which moto matched.
    pub converged_in: Duration,
    /// Faults injected, by kind.
    pub fired: Vec<(&'static str, usize)>,
    /// Attempts per operation (`berth_aws_api_calls_total`).
    pub calls: BTreeMap<String, f64>,
    /// Failed attempts per `operation error_code` (`berth_aws_api_errors_total`).
    pub errors: BTreeMap<String, f64>,
}

/// Starts the daemon over `fleet` with [`fault_mix`] in force for the whole
/// convergence and checks what must hold: moto holds exactly the fleet, nothing was
/// deregistered, AWS received each target in exactly one RegisterTargets, the
/// ownership record holds every target, each kind of fault was injected, and every
/// attempt and every injected failure shows in /metrics by operation and error code.
pub async fn converge_through_faults(
    fleet: &Fleet,
    resync_seconds: u64,
    extra: &[&str],
    timeout: Duration,
) -> FaultsRun {
    let w = &fleet.world;
    let mix = fault_mix(&w.proxy);
    let d = fleet.daemon(resync_seconds, extra, &[]);
    let converged_in = fleet.wait_converged(&d, timeout).await;
    eventually(timeout, "a converged pass", &d, || async {
        metric_sum(
            &d.metrics(),
            "berth_reconcile_total",
            &["controller=\"nodes\"", "result=\"success\""],
        ) >= 1.0
    })
    .await;
    let fired = mix.fired(&w.proxy);
    let (calls, errors) = aws_calls_and_errors(&d.metrics());
    let run = FaultsRun {
        converged_in,
        fired,
        calls,
        errors,
    };
    println!("{run:#?}");

    assert_eq!(fleet.diff().await, Vec::<String>::new());
    assert_eq!(
        w.proxy.count("DeregisterTargets"),
        0,
        "a fresh convergence deregisters nothing: {:?}",
        w.proxy.counts()
    );
    let received = registrations_received(&w.proxy);
    assert_eq!(received.len(), fleet.expected_targets());
    assert_eq!(registered_twice(&received), Vec::new());
    assert_eq!(owned_pairs(w).len(), fleet.expected_targets());
    for (fault, n) in &run.fired {
        assert!(*n >= 1, "{fault} never injected: {:?}", run.fired);
    }
    // The daemon goes on resyncing through the faults, and the proxy counts a request
    // (and its fault) when it arrives, before the daemon has counted the attempt's
    // outcome: the two agree only between calls. So a reading where they agree is
    // waited for (a miscount never gives one), then checked figure by figure.
    let reading = || {
        let (calls, errors) = aws_calls_and_errors(&d.metrics());
        let fired = (
            w.proxy.fired(mix.throttle),
            w.proxy.fired(mix.server_error),
            w.proxy.fired(mix.reset),
            w.proxy.total(),
        );
        (calls, errors, fired)
    };
    let agree = |errors: &BTreeMap<String, f64>, calls: &BTreeMap<String, f64>, fired| {
        let (throttled, unavailable, reset, total) = fired;
        with_code(errors, "Throttling") == throttled
            && with_code(errors, "ServiceUnavailable") == unavailable
            && with_code(errors, "ConnectionError") == reset
            && errors.values().sum::<f64>() as usize == throttled + unavailable + reset
            && calls.values().sum::<f64>() as usize == total
    };
    let last = std::sync::Mutex::new(reading());
    eventually(
        timeout,
        "/metrics counting the attempts and failures the proxy saw and injected",
        &d,
        || async {
            let now = reading();
            let agreed = agree(&now.1, &now.0, now.2);
            let mut last = last.lock().unwrap();
            if !agreed && *last != now {
                eprintln!("/metrics and the proxy do not agree (yet): {now:?}");
            }
            *last = now;
            agreed
        },
    )
    .await;
    let (calls, errors, (throttled, unavailable, reset, total)) = last.into_inner().unwrap();
    let with_code = |code: &str| with_code(&errors, code);
    assert_eq!(with_code("Throttling"), throttled, "{errors:?}");
    assert_eq!(with_code("ServiceUnavailable"), unavailable, "{errors:?}");
    assert_eq!(with_code("ConnectionError"), reset, "{errors:?}");
    let all_errors: f64 = errors.values().sum();
    assert_eq!(
        all_errors as usize,
        throttled + unavailable + reset,
        "{errors:?}"
    );
    let attempts: f64 = calls.values().sum();
    assert_eq!(
        attempts as usize,
        total,
        "every attempt counted: {calls:?} vs {:?}",
        w.proxy.counts()
    );
    run
}

/// What [`leader_killed_mid_convergence`] measured.
#[derive(Debug)]
pub struct LeaderRun {
    /// (group, target) pairs AWS had received when the leader was killed.
    pub registered_at_kill: usize,
    /// Of the fleet's targets.
    pub targets: usize,
    /// From the kill to the end of the new leader's pass after which moto matched
    /// (the Lease's 15 s expiry included).
    pub finished_in: Duration,
    /// RegisterTargets requests AWS received, both leaders.
    pub register_calls: usize,
}

/// Starts two replicas over `fleet` (RegisterTargets slowed by `register_delay`),
/// SIGKILLs the leader once AWS has received a quarter of the RegisterTargets batches,
/// and checks that the other replica finishes: moto holds exactly the fleet, every
/// target reached AWS in exactly one RegisterTargets (a second one of a target already
/// registered counts as registered twice), the ownership record holds every target,
/// nothing was deregistered.
pub async fn leader_killed_mid_convergence(
    fleet: &Fleet,
    resync_seconds: u64,
    batch: usize,
    register_delay: Duration,
    timeout: Duration,
) -> LeaderRun {
    let w = &fleet.world;
    if !register_delay.is_zero() {
        w.proxy
            .add(Rule::new("RegisterTargets", Fault::Delay(register_delay)));
    }
    let batch_arg = batch.to_string();
    let extra = ["--batch-size", batch_arg.as_str()];
    let mut a = fleet.daemon(resync_seconds, &extra, &[]);
    let mut b = fleet.daemon(resync_seconds, &extra, &[]);
    let targets = fleet.expected_targets();
    let batches = targets.div_ceil(batch);
    eventually(timeout, "a leader registering", &a, || async {
        w.proxy.forwarded_bodies("RegisterTargets").len() >= batches / 4
    })
    .await;
    let leads =
        |d: &Daemon| metric_sum(&d.metrics(), "berth_leader", &["controller=\"nodes\""]) == 1.0;
    let a_leads = leads(&a);
    assert_ne!(a_leads, leads(&b), "exactly one leader");
    let (leader, follower) = if a_leads {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert_eq!(follower.passes(), 0, "the follower has not reconciled");
    leader.kill();
    let killed = std::time::Instant::now();
    let registered_at_kill = registrations_received(&w.proxy).len();
    assert!(
        registered_at_kill < targets,
        "killed mid-convergence: {registered_at_kill} of {targets} already registered"
    );
    let follower = &*follower;
    fleet.wait_converged(follower, timeout).await;
    let finished_in = killed.elapsed();
    assert!(leads(follower), "the survivor leads");
    // None forgotten: in AWS and in the ownership record (so it can be deregistered).
    assert_eq!(fleet.diff().await, Vec::<String>::new());
    assert_eq!(owned_pairs(w).len(), targets);
    // None registered twice.
    let received = registrations_received(&w.proxy);
    assert_eq!(received.len(), targets);
    assert_eq!(registered_twice(&received), Vec::new());
    assert_eq!(
        w.proxy.count("DeregisterTargets"),
        0,
        "{:?}",
        w.proxy.counts()
    );
    let run = LeaderRun {
        registered_at_kill,
        targets,
        finished_in,
        register_calls: w.proxy.forwarded_bodies("RegisterTargets").len(),
    };
    println!("{run:#?}");
    run
}
