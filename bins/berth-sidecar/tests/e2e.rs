//! End-to-end: the compiled `berth-sidecar` against moto (through AWS_ENDPOINT_URL),
//! with a FaultProxy where moto cannot show a state (`initial`, `draining`).

mod support;

use std::time::{Duration, Instant};

use berth_testing::{Fault, FaultProxy, MotoServer, Rule};
use support::{create_groups, eventually, Sidecar, Stage, POD_IP};

const READY_WITHIN: Duration = Duration::from_secs(60);
const EXIT_WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_in_two_groups_turns_ready_and_leaves_both_on_sigterm() {
    let moto = MotoServer::isolated().await;
    let groups = create_groups(&moto.endpoint()).await;
    let mut cmd = Sidecar::command(&moto.endpoint());
    // One group by name, the other by ARN.
    cmd.args(["--target-group", "web", "--target-group", &groups.api]);
    let mut sidecar = Sidecar::spawn(cmd);
    sidecar.until_ready(READY_WITHIN).await;

    assert_eq!(groups.targets(&groups.web).await, [format!("{POD_IP}:80")]);
    assert_eq!(
        groups.targets(&groups.api).await,
        [format!("{POD_IP}:8443")]
    );
    let (code, metrics) = sidecar.get("/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    for line in [
        "berth_sidecar_registrations_total{target_group=\"web\"} 1",
        "berth_sidecar_registrations_total{target_group=\"api\"} 1",
        "berth_sidecar_aws_calls_total{operation=\"RegisterTargets\"} 2",
        "berth_sidecar_ready 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert_eq!(sidecar.get("/healthz").map(|r| r.0), Some(200));

    sidecar.terminate();
    let status = sidecar.wait(EXIT_WITHIN).await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", sidecar.stderr());
    assert!(groups.targets(&groups.web).await.is_empty());
    assert!(groups.targets(&groups.api).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_exact_command_line_works() {
    let moto = MotoServer::isolated().await;
    let groups = create_groups(&moto.endpoint()).await;
    let marker = std::env::temp_dir().join(format!("berth-sidecar-post-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let post = format!("echo deregistered > {}", marker.display());
    let mut cmd = Sidecar::command(&moto.endpoint());
    cmd.env_remove("POD_IP").args([
        "-target-group-name",
        "web",
        "-target-id",
        "10.0.1.9",
        "-pre-register-command",
        "echo pre-register",
        "-pre-register-timeout",
        "5s",
        "-post-deregister-command",
        &post,
        "-post-deregister-timeout",
        "5s",
        "-wait-in-service=true",
        "-wait-in-service-timeout",
        "5m0s",
    ]);
    let mut sidecar = Sidecar::spawn(cmd);
    sidecar.until_ready(READY_WITHIN).await;
    assert_eq!(groups.targets(&groups.web).await, ["10.0.1.9:80"]);
    assert!(
        !marker.exists(),
        "post-deregister ran before deregistration"
    );

    sidecar.terminate();
    let status = sidecar.wait(EXIT_WITHIN).await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", sidecar.stderr());
    assert!(groups.targets(&groups.web).await.is_empty());
    let written = std::fs::read_to_string(&marker).expect("the post-deregister command ran");
    assert_eq!(written.trim(), "deregistered");
    let _ = std::fs::remove_file(&marker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_register_command_registers_nothing() {
    let Stage {
        moto: _moto,
        groups,
        proxy,
    } = Stage::start().await;
    let mut cmd = Sidecar::command(&proxy.endpoint());
    cmd.args([
        "-target-group-name",
        "web",
        "-pre-register-command",
        "echo 'cache not warm' >&2; exit 5",
    ]);
    let (status, stderr) = Sidecar::run(cmd, EXIT_WITHIN).await;
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("cache not warm") && stderr.contains("code 5"),
        "{stderr}"
    );
    assert_eq!(proxy.count("RegisterTargets"), 0);
    assert!(groups.targets(&groups.web).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_group_exits_1_naming_it() {
    let Stage {
        moto: _moto,
        groups,
        proxy,
    } = Stage::start().await;
    let mut cmd = Sidecar::command(&proxy.endpoint());
    cmd.args(["--target-group", "web", "--target-group", "no-such-group"]);
    let (status, stderr) = Sidecar::run(cmd, EXIT_WITHIN).await;
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error:") && last.contains("no-such-group"),
        "last line: {last}"
    );
    assert_eq!(proxy.count("RegisterTargets"), 0);
    assert!(groups.targets(&groups.web).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_exits_2_with_one_line_and_calls_nothing() {
    let moto = MotoServer::isolated().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let cases: [(&[&str], bool, &str); 5] = [
        (
            &["-target-group-name", "web", "-no-such-flag"],
            true,
            "--no-such-flag",
        ),
        (
            &["-target-group-name", "web", "-wait-in-service-timeout", "5"],
            true,
            "\"5\"",
        ),
        (
            &["-target-group-name", "web", "-wait-in-service=perhaps"],
            true,
            "perhaps",
        ),
        (&["-target-group-name", "web"], false, "no target id"),
        (&["-target-id", "10.0.0.1"], true, "no target group"),
    ];
    for (args, with_pod_ip, needle) in cases {
        let mut cmd = Sidecar::command(&proxy.endpoint());
        if !with_pod_ip {
            cmd.env_remove("POD_IP");
        }
        cmd.args(args);
        let (status, stderr) = Sidecar::run(cmd, EXIT_WITHIN).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    assert_eq!(proxy.total(), 0, "bad usage must not reach AWS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_from_the_environment_dry_run_prints_the_plan_in_json_logs() {
    let Stage {
        moto: _moto,
        groups,
        proxy,
    } = Stage::start().await;
    let mut cmd = Sidecar::command(&proxy.endpoint());
    cmd.env("BERTH_TARGET_GROUP", format!("web,{}", groups.api))
        .env("BERTH_PORT", "9000")
        .env("BERTH_DRY_RUN", "true")
        .env("BERTH_LOG_FORMAT", "json");
    let mut sidecar = Sidecar::spawn(cmd);
    let status = sidecar.wait(EXIT_WITHIN).await;
    let (stdout, stderr) = (sidecar.stdout(), sidecar.stderr());
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(
        stdout.contains(&format!("register {POD_IP}:9000 in web")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("register {POD_IP}:9000 in api")),
        "{stdout}"
    );
    assert_eq!(proxy.count("RegisterTargets"), 0);
    assert!(groups.targets(&groups.web).await.is_empty());
    assert!(!stderr.trim().is_empty(), "no logs at all");
    for line in stderr.lines() {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            parsed["level"].is_string() && parsed["message"].is_string(),
            "{line}"
        );
    }
}

/// A `DescribeTargetHealth` answer with one target in `state`.
fn health_answer(ip: &str, port: u16, state: &str, reason: &str) -> String {
    format!(
        r#"<DescribeTargetHealthResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><DescribeTargetHealthResult><TargetHealthDescriptions><member><Target><Id>{ip}</Id><Port>{port}</Port></Target><HealthCheckPort>{port}</HealthCheckPort><TargetHealth><State>{state}</State><Reason>{reason}</Reason></TargetHealth></member></TargetHealthDescriptions></DescribeTargetHealthResult><ResponseMetadata><RequestId>canned</RequestId></ResponseMetadata></DescribeTargetHealthResponse>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_until_the_target_leaves_initial() {
    let Stage {
        moto: _moto,
        groups,
        proxy,
    } = Stage::start().await;
    // The first DescribeTargetHealth (observing before registering) goes to moto; the
    // next two say `initial`, as AWS does while health checks run; then moto: healthy.
    let initial = proxy.add(
        Rule::new(
            "DescribeTargetHealth",
            Fault::Respond {
                status: 200,
                body: health_answer(POD_IP, 80, "initial", "Elb.InitialHealthChecking"),
            },
        )
        .after(1)
        .times(2),
    );
    let mut cmd = Sidecar::command(&proxy.endpoint());
    cmd.args(["-target-group-name", "web"]);
    let mut sidecar = Sidecar::spawn(cmd);
    let before = sidecar.until_ready(READY_WITHIN).await;
    assert_eq!(
        proxy.fired(initial),
        2,
        "ready before the canned `initial` answers were read"
    );
    assert!(
        before
            .iter()
            .any(|(code, body)| *code == 503 && body.contains("waiting-healthy")),
        "/readyz never said it was waiting for health: {before:?}"
    );
    assert_eq!(groups.targets(&groups.web).await, [format!("{POD_IP}:80")]);
    // SIGINT shuts down like SIGTERM.
    sidecar.interrupt();
    assert_eq!(sidecar.wait(EXIT_WITHIN).await.code(), Some(0));
    assert!(groups.targets(&groups.web).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_turns_healthy_is_deregistered_and_exits_1() {
    let Stage {
        moto: _moto,
        groups,
        proxy,
    } = Stage::start().await;
    // Every health read after the first (the observation before registering) says
    // `unhealthy`, as AWS does when health checks fail.
    proxy.add(
        Rule::new(
            "DescribeTargetHealth",
            Fault::Respond {
                status: 200,
                body: health_answer(POD_IP, 80, "unhealthy", "Target.FailedHealthChecks"),
            },
        )
        .after(1),
    );
    let mut cmd = Sidecar::command(&proxy.endpoint());
    cmd.args([
        "-target-group-name",
        "web",
        "-wait-in-service-timeout",
        "2s",
        "--drain-timeout",
        "1s",
        "-post-deregister-command",
        "echo must-not-run",
    ]);
    let (status, stderr) = Sidecar::run(cmd, EXIT_WITHIN).await;
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("did not become healthy within 2s")
            && last.contains("unhealthy (Target.FailedHealthChecks)"),
        "{last}"
    );
    assert!(
        !stderr.contains("post-deregister"),
        "the post hook ran after a failure"
    );
    assert_eq!(proxy.count("RegisterTargets"), 1);
    assert_eq!(proxy.count("DeregisterTargets"), 1);
    assert!(
        groups.targets(&groups.web).await.is_empty(),
        "left registered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_the_drain_before_exiting() {
    let Stage {
        moto: _moto,
        groups,
        proxy,
    } = Stage::start().await;
    let post_marker =
        std::env::temp_dir().join(format!("berth-sidecar-drain-{}", std::process::id()));
    let _ = std::fs::remove_file(&post_marker);
    let mut cmd = Sidecar::command(&proxy.endpoint());
    cmd.args([
        "-target-group-name",
        "web",
        "--drain-timeout",
        "30s",
        "-post-deregister-command",
        &format!("touch {}", post_marker.display()),
    ]);
    let mut sidecar = Sidecar::spawn(cmd);
    sidecar.until_ready(READY_WITHIN).await;

    // After deregistration AWS reports `draining` for the deregistration delay; moto
    // drops the target at once. Two canned `draining` answers stand in for the delay.
    let draining = proxy.add(
        Rule::new(
            "DescribeTargetHealth",
            Fault::Respond {
                status: 200,
                body: health_answer(POD_IP, 80, "draining", "Target.DeregistrationInProgress"),
            },
        )
        .times(2),
    );
    sidecar.terminate();
    let deadline = Instant::now() + EXIT_WITHIN;
    while proxy.count("DeregisterTargets") == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        proxy.count("DeregisterTargets"),
        1,
        "stderr:\n{}",
        sidecar.stderr()
    );
    // The proxy counts a request when it arrives, before moto has it: wait for moto.
    eventually("deregistered in moto", EXIT_WITHIN, async || {
        groups.targets(&groups.web).await.is_empty()
    })
    .await;
    // Still draining: neither exited nor ran the post-deregister command.
    while proxy.fired(draining) < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(sidecar.running(), "exited while the target was draining");
    assert!(
        !post_marker.exists(),
        "post-deregister ran during the drain"
    );

    let status = sidecar.wait(EXIT_WITHIN).await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", sidecar.stderr());
    assert_eq!(proxy.fired(draining), 2, "exited before the drain ended");
    assert!(
        post_marker.exists(),
        "post-deregister did not run after the drain"
    );
    let _ = std::fs::remove_file(&post_marker);
}

/// The benchmark figure `docs/benchmarks.md (berth-sidecar)` reports: from `kill -TERM` to the
/// `DeregisterTargets` request reaching the proxy, on the test harness's clock; five
/// runs, each a fresh sidecar registered and ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_deregister_targets_is_quick() {
    let Stage {
        moto: _moto,
        groups,
        proxy,
    } = Stage::start().await;
    let mut samples = Vec::new();
    for _ in 0..5 {
        let mut cmd = Sidecar::command(&proxy.endpoint());
        cmd.args(["-target-group-name", "web", "--drain-timeout", "0s"]);
        let mut sidecar = Sidecar::spawn(cmd);
        sidecar.until_ready(READY_WITHIN).await;
        proxy.reset_counts();
        let started = Instant::now();
        sidecar.terminate();
        while proxy.count("DeregisterTargets") == 0 && started.elapsed() < EXIT_WITHIN {
            std::thread::sleep(Duration::from_micros(200));
        }
        samples.push(started.elapsed());
        assert_eq!(sidecar.wait(EXIT_WITHIN).await.code(), Some(0));
        assert!(groups.targets(&groups.web).await.is_empty());
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "SIGTERM -> DeregisterTargets: min {:.1} ms, median {:.1} ms, max {:.1} ms ({} runs)",
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
    // Generous for a loaded CI machine; the recorded figure is far lower.
    assert!(
        samples[samples.len() / 2] < Duration::from_secs(2),
        "{samples:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_aws_calls_and_errors_by_code_and_logs_carry_the_mode() {
    let Stage {
        moto: _moto,
        groups,
        proxy,
    } = Stage::start().await;
    // AWS says "slow down" once: the SDK retries, both attempts are counted.
    let throttled = proxy.add(Rule::new("RegisterTargets", Fault::Throttle).times(1));
    let mut cmd = Sidecar::command(&proxy.endpoint());
    cmd.args([
        "-target-group-name",
        "web",
        "--aws-max-rps",
        "50",
        "--log-format",
        "json",
    ]);
    let mut sidecar = Sidecar::spawn(cmd);
    sidecar.until_ready(READY_WITHIN).await;
    assert_eq!(proxy.fired(throttled), 1);
    assert_eq!(groups.targets(&groups.web).await, [format!("{POD_IP}:80")]);
    let (_, metrics) = sidecar.get("/metrics").expect("/metrics answers");
    for line in [
        "berth_aws_api_calls_total{service=\"Elastic Load Balancing v2\",operation=\"RegisterTargets\"} 2",
        "berth_aws_api_errors_total{service=\"Elastic Load Balancing v2\",operation=\"RegisterTargets\",error_code=\"Throttling\"} 1",
        "mode=\"sidecar\"",
        "berth_build_info{",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    sidecar.terminate();
    assert_eq!(sidecar.wait(EXIT_WITHIN).await.code(), Some(0));
    let stderr = sidecar.stderr();
    for line in stderr.lines() {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(parsed["mode"], "sidecar", "{line}");
    }
}
