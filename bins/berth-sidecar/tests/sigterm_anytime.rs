//! SIGTERM at a random moment of the compiled sidecar's life (issue #14): during the
//! pre-register hook, around RegisterTargets, during the healthy wait, or (a second
//! SIGTERM) during the drain. Whenever it lands, the sidecar exits 0 (a second signal
//! only cuts the drain short) and after the exit the IP is in no group.
//!
//! Every SIGTERM is sent once the process has logged that its handlers are installed
//! (berth-runtime's debug line): before that is the exec window — the kernel loading
//! the binary, a few milliseconds — where SIGTERM's default action still applies; the
//! sidecar has registered nothing then.
//!
//! The seed is printed; `BERTH_TEST_SEED=<n>` replays a run set.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use berth_runtime::process::SIGNAL_HANDLERS_INSTALLED;
use berth_testing::{Fault, FaultProxy, Rule};
use support::{eventually, Groups, Sidecar, Stage};

const RUNS: u64 = 50;
/// Runs at once: each run mostly waits (hook, polls), so two overlap well on 2 cores.
const LANES: u64 = 2;
const HOOK: Duration = Duration::from_millis(200);
const EXIT_WITHIN: Duration = Duration::from_secs(30);

/// Where a run sends its SIGTERM.
#[derive(Clone, Copy, Debug)]
enum Aim {
    /// While the pre-register hook sleeps.
    Hook,
    /// Just after the hook: around RegisterTargets.
    Registration,
    /// While the target answers `initial` (the healthy wait polls every second).
    HealthyWait,
    /// Ready, first SIGTERM, then a second one at a random moment of the drain.
    Drain,
}

/// The sidecar's command through `endpoint`, logging the handlers' installation.
fn command(endpoint: &str) -> Command {
    let mut cmd = Sidecar::command(endpoint);
    cmd.env("RUST_LOG", "info,berth_runtime=debug");
    cmd
}

/// Waits until the sidecar has logged that SIGTERM is caught; panics with its logs
/// if it exits first or takes longer than `within`.
async fn until_signals_caught(sidecar: &mut Sidecar, within: Duration) {
    let deadline = Instant::now() + within;
    while !sidecar.stderr().contains(SIGNAL_HANDLERS_INSTALLED) {
        assert!(
            sidecar.running(),
            "exited before installing its signal handlers; stderr:\n{}",
            sidecar.stderr()
        );
        assert!(
            Instant::now() < deadline,
            "no {SIGNAL_HANDLERS_INSTALLED:?} within {within:?}; stderr:\n{}",
            sidecar.stderr()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A `DescribeTargetHealth` answer with one target in `state`.
fn health_answer(ip: &str, state: &str, reason: &str) -> Fault {
    Fault::Respond {
        status: 200,
        body: format!(
            r#"<DescribeTargetHealthResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><DescribeTargetHealthResult><TargetHealthDescriptions><member><Target><Id>{ip}</Id><Port>80</Port></Target><HealthCheckPort>80</HealthCheckPort><TargetHealth><State>{state}</State><Reason>{reason}</Reason></TargetHealth></member></TargetHealthDescriptions></DescribeTargetHealthResult><ResponseMetadata><RequestId>canned</RequestId></ResponseMetadata></DescribeTargetHealthResponse>"#
        ),
    }
}

/// What the proxy had seen when the (last) SIGTERM left: a readable phase.
fn phase_seen(proxy: &FaultProxy, initial_fired: usize) -> &'static str {
    match (
        proxy.count("RegisterTargets"),
        proxy.count("DeregisterTargets"),
    ) {
        (0, _) => "before RegisterTargets (hook)",
        (_, 0) if initial_fired == 0 => "RegisterTargets sent, no `initial` read yet",
        (_, 0) => "healthy wait",
        _ => "drain",
    }
}

async fn one_run(moto: &str, groups: &Groups, seed: u64, run: u64) {
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(run));
    let aim = match run % 4 {
        0 => Aim::Hook,
        1 => Aim::Registration,
        2 => Aim::HealthyWait,
        _ => Aim::Drain,
    };
    let ip = format!("10.0.2.{}", run + 1);
    let proxy = FaultProxy::start(moto).await;
    // The first health read (the observation before registering) goes to moto; the
    // next says `initial`, as AWS does while health checks run; then moto: healthy.
    let initial = proxy.add(
        Rule::new(
            "DescribeTargetHealth",
            health_answer(&ip, "initial", "Elb.InitialHealthChecking"),
        )
        .after(1)
        .times(1),
    );
    let mut cmd = command(&proxy.endpoint());
    cmd.env_remove("POD_IP").args([
        "-target-group-name",
        "web",
        "-target-id",
        &ip,
        "-pre-register-command",
        &format!("sleep {}", HOOK.as_secs_f64()),
        "--drain-timeout",
        "2s",
    ]);
    let mut sidecar = Sidecar::spawn(cmd);
    until_signals_caught(&mut sidecar, EXIT_WITHIN).await;
    let delay = match aim {
        Aim::Hook => rng.u64(0..200),
        // RegisterTargets leaves about 250-300 ms after the handlers' line here.
        Aim::Registration => rng.u64(220..330),
        Aim::HealthyWait => rng.u64(380..1300),
        Aim::Drain => rng.u64(0..1500),
    };
    let phase = if let Aim::Drain = aim {
        sidecar.until_ready(EXIT_WITHIN).await;
        // moto drops a deregistered target at once; AWS says `draining` for the
        // deregistration delay: two canned answers stand in for it.
        proxy.add(
            Rule::new(
                "DescribeTargetHealth",
                health_answer(&ip, "draining", "Target.DeregistrationInProgress"),
            )
            .times(2),
        );
        sidecar.terminate();
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let phase = phase_seen(&proxy, proxy.fired(initial));
        if sidecar.running() {
            sidecar.terminate();
        }
        phase
    } else {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let phase = phase_seen(&proxy, proxy.fired(initial));
        if sidecar.running() {
            sidecar.terminate();
        }
        phase
    };
    let started = Instant::now();
    let status = sidecar.wait(EXIT_WITHIN).await;
    let mut left = groups.targets(&groups.web).await;
    left.extend(groups.targets(&groups.api).await);
    left.retain(|t| t.starts_with(&format!("{ip}:")));
    println!(
        "run {run}: {aim:?} +{delay}ms ({phase}) -> {status}, exit took {:?}",
        started.elapsed()
    );
    assert!(
        left.is_empty(),
        "BERTH_TEST_SEED={seed} run {run}: SIGTERM {aim:?} +{delay}ms ({phase}) left {left:?} \
         registered; exit {status}; stderr:\n{}",
        sidecar.stderr()
    );
    assert_eq!(
        status.code(),
        Some(0),
        "BERTH_TEST_SEED={seed} run {run}: SIGTERM {aim:?} +{delay}ms ({phase}): exit {status}, \
         not 0; stderr:\n{}",
        sidecar.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_at_any_moment_leaves_the_ip_in_no_group() {
    let seed = match std::env::var("BERTH_TEST_SEED") {
        Ok(s) => s.parse().expect("BERTH_TEST_SEED is a u64"),
        Err(_) => fastrand::u64(..),
    };
    println!("BERTH_TEST_SEED={seed}");
    let stage = Stage::start().await;
    let moto = stage.moto.endpoint();
    let lanes = (0..LANES).map(|lane| {
        let (moto, groups) = (&moto, &stage.groups);
        async move {
            for run in (lane..RUNS).step_by(LANES as usize) {
                one_run(moto, groups, seed, run).await;
            }
        }
    });
    futures::future::join_all(lanes).await;
}

/// The earliest SIGTERM the sidecar can catch: as soon as its handlers are logged,
/// before any AWS call. It exits 0, not by the signal, and registers nothing.
#[tokio::test]
async fn a_sigterm_as_soon_as_the_handlers_are_in_exits_0_with_nothing_registered() {
    let stage = Stage::start().await;
    let mut cmd = command(&stage.proxy.endpoint());
    cmd.args(["-target-group-name", "web"]);
    let mut sidecar = Sidecar::spawn(cmd);
    until_signals_caught(&mut sidecar, EXIT_WITHIN).await;
    sidecar.terminate();
    let status = sidecar.wait(EXIT_WITHIN).await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit {status}; stderr:\n{}",
        sidecar.stderr()
    );
    assert_eq!(stage.proxy.count("RegisterTargets"), 0);
    assert!(stage.groups.targets(&stage.groups.web).await.is_empty());
    assert!(stage.groups.targets(&stage.groups.api).await.is_empty());
}

/// SIGTERM while `RegisterTargets` is in flight (held 1.5 s by the proxy): the
/// registration is cancelled, the deregistration finds the IP not registered
/// (`InvalidTarget`), which is "already absent" — exit 0 — and the IP is in no group,
/// also after the held request's time has passed.
#[tokio::test]
async fn a_sigterm_while_register_targets_is_in_flight_exits_0_and_leaves_nothing() {
    let stage = Stage::start().await;
    let hold = Duration::from_millis(1500);
    stage
        .proxy
        .add(Rule::new("RegisterTargets", Fault::Delay(hold)).times(1));
    let mut cmd = command(&stage.proxy.endpoint());
    cmd.args(["-target-group-name", "web"]);
    let mut sidecar = Sidecar::spawn(cmd);
    let deadline = Instant::now() + EXIT_WITHIN;
    while stage.proxy.count("RegisterTargets") == 0 {
        assert!(sidecar.running(), "exited; stderr:\n{}", sidecar.stderr());
        assert!(Instant::now() < deadline, "no RegisterTargets");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sidecar.terminate();
    let status = sidecar.wait(EXIT_WITHIN).await;
    let stderr = sidecar.stderr();
    assert_eq!(status.code(), Some(0), "exit {status}; stderr:\n{stderr}");
    assert!(stderr.contains("already absent"), "{stderr}");
    tokio::time::sleep(hold + Duration::from_millis(500)).await;
    assert!(stage.groups.targets(&stage.groups.web).await.is_empty());
}

/// The drain after a SIGTERM waits as long as the group's deregistration delay (no
/// `--drain-timeout`: the bound is the delay, 30 s here) while the target is
/// `draining`; a second SIGTERM cuts it short, the post-deregister command still runs,
/// and the exit code is 0 — a second signal never exits 130 in the sidecar.
#[tokio::test]
async fn the_drain_waits_the_group_delay_and_a_second_sigterm_cuts_it_short_with_exit_0() {
    let stage = Stage::start().await;
    stage
        .groups
        .elb
        .modify_target_group_attributes()
        .target_group_arn(&stage.groups.web)
        .attributes(
            aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                .key("deregistration_delay.timeout_seconds")
                .value("30")
                .build(),
        )
        .send()
        .await
        .expect("ModifyTargetGroupAttributes");
    let ip = "10.0.4.1";
    let marker = std::env::temp_dir().join(format!("berth-sidecar-cut-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let mut cmd = command(&stage.proxy.endpoint());
    cmd.env_remove("POD_IP").args([
        "-target-group-name",
        "web",
        "-target-id",
        ip,
        "-post-deregister-command",
        &format!("touch {}", marker.display()),
    ]);
    let mut sidecar = Sidecar::spawn(cmd);
    sidecar.until_ready(EXIT_WITHIN).await;
    // AWS answers `draining` for the deregistration delay; moto drops the target at
    // once, so every health read from now on says `draining`.
    let draining = stage.proxy.add(Rule::new(
        "DescribeTargetHealth",
        health_answer(ip, "draining", "Target.DeregistrationInProgress"),
    ));
    sidecar.terminate();
    let deadline = Instant::now() + EXIT_WITHIN;
    // Two draining reads: the first poll and one after its backoff (1 s).
    while stage.proxy.fired(draining) < 2 {
        assert!(
            sidecar.running(),
            "exited mid-drain; stderr:\n{}",
            sidecar.stderr()
        );
        assert!(Instant::now() < deadline, "no drain polls");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Logged before the polls, but read from the pipe by a thread of ours: waited for.
    let announced = |stderr: &str| {
        stderr.contains("waiting for the target to drain") && stderr.contains("bound=30s")
    };
    eventually("the drain's bound logged", EXIT_WITHIN, async || {
        announced(&sidecar.stderr())
    })
    .await;
    let stderr = sidecar.stderr();
    assert!(
        announced(&stderr),
        "the drain is bounded by the group's 30 s delay; stderr:\n{stderr}"
    );
    assert!(!marker.exists(), "post-deregister ran during the drain");
    assert!(stage.groups.targets(&stage.groups.web).await.is_empty());

    sidecar.terminate();
    let status = sidecar.wait(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", sidecar.stderr());
    assert!(
        sidecar
            .stderr()
            .contains("second signal: no longer waiting for the drain"),
        "{}",
        sidecar.stderr()
    );
    assert!(
        marker.exists(),
        "post-deregister did not run after the cut drain"
    );
    let _ = std::fs::remove_file(&marker);
}
