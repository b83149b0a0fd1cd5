//! The daemon in berth-runtime's process shell, through the compiled binary: the
//! runtime's admin server and registry, a clean stop on SIGTERM, and one clear error
//! line when there is no Kubernetes configuration.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::time::Duration;

use common::*;
use k8s_openapi::api::coordination::v1::Lease;

const WAIT: Duration = Duration::from_secs(40);

fn cluster_args(config: &std::path::Path) -> Vec<String> {
    [
        "--mode",
        "cluster",
        "--config",
        config.to_str().unwrap(),
        "--sleep-interval",
        "1",
    ]
    .map(str::to_owned)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_by_the_runtime_admin_server_with_every_daemon_name() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    w.add_node("node-0", &instance(0), &[("role", "web")]);
    let config = w.write("config.yaml", WEB_CONFIG);
    let args = cluster_args(&config);
    let d = w.daemon(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    eventually(WAIT, "node-0 registered", &d, || async {
        w.members(&arn).await.len() == 1
    })
    .await;
    d.wait_passes(1, WAIT).await;
    assert_eq!(d.get("/healthz").map(|r| r.0), Some(200));
    assert_eq!(d.get("/readyz").map(|r| r.0), Some(200));
    // The pass counted above may be the registering one: its registration and its
    // result are counted after its duration (what wait_passes reads), so the whole set
    // is waited for, then checked one by one.
    let names = [
        "berth_build_info{version=\"",
        "mode=\"daemon\"} 1",
        "berth_reconcile_total{controller=\"nodes\",result=\"success\"}",
        "berth_reconcile_duration_seconds_count{controller=\"nodes\"}",
        "berth_last_successful_reconcile_timestamp_seconds{controller=\"nodes\"}",
        "berth_leader{controller=\"nodes\"} 1",
        "berth_aws_api_calls_total{service=\"Elastic Load Balancing v2\",operation=\"RegisterTargets\"} 1",
        "berth_aws_api_calls_total{service=\"Elastic Load Balancing v2\",operation=\"DescribeTargetHealth\"}",
        "berth_daemon_registrations_total 1",
        "berth_daemon_deregistrations_total 0",
        "berth_daemon_aws_calls_total{operation=\"RegisterTargets\"} 1",
        "berth_daemon_reconcile_duration_seconds_count",
        "berth_daemon_leader 1",
        "berth_daemon_skipped_nodes 0",
        "berth_daemon_draining_targets 0",
        "berth_daemon_drained_total 0",
        "# EOF",
    ];
    eventually(WAIT, "every daemon metric name in /metrics", &d, || async {
        let text = d.metrics();
        names.iter().all(|name| text.contains(name))
    })
    .await;
    let text = d.metrics();
    for name in names {
        assert!(text.contains(name), "missing {name:?} in\n{text}");
    }
    // One registry: every family once.
    let helps: Vec<&str> = text.lines().filter(|l| l.starts_with("# HELP ")).collect();
    let mut unique = helps.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(helps.len(), unique.len(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_with_exit_0_and_releases_the_lease() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    w.add_node("node-0", &instance(0), &[("role", "web")]);
    let config = w.write("config.yaml", WEB_CONFIG);
    let args = cluster_args(&config);
    let mut d = w.daemon(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    eventually(WAIT, "node-0 registered", &d, || async {
        w.members(&arn).await.len() == 1
    })
    .await;
    let holder = |w: &World| {
        w.kube
            .get::<Lease>(Some("default"), "berth-daemon")
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    };
    assert!(holder(&w).is_some(), "the leader holds the Lease");
    assert_eq!(d.terminate(), Some(0), "{}", tail(&d.log_text(), 3000));
    let log = d.log_text();
    assert!(log.contains("berth-daemon stopped"), "{log}");
    assert!(!log.contains("error"), "{log}");
    assert_eq!(
        holder(&w),
        None,
        "the Lease is released for the next replica"
    );
    // Stopping deregisters nothing: the node still serves.
    assert_eq!(w.members(&arn).await.len(), 1);
}

#[test]
fn without_a_kubeconfig_one_error_line_and_no_imds_probe() {
    let home = std::env::temp_dir().join(format!("berth-daemon-nokube-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("config.yaml");
    std::fs::write(&config, WEB_CONFIG).unwrap();
    // A metadata service that records whether anyone came.
    let imds = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    imds.set_nonblocking(true).unwrap();
    let imds_url = format!("http://{}", imds.local_addr().unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_berth-daemon"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("CLUSTER_NAME", "e2e")
        .env("NODE_NAME", "node-0")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds_url)
        .args(["--mode", "node", "--imds-endpoint", &imds_url])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ])
        .output()
        .expect("run berth-daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, nothing before it:\n{stderr}");
    let line = lines[0];
    assert!(
        line.starts_with("error: no Kubernetes configuration"),
        "{line}"
    );
    assert!(line.contains(".kube/config"), "{line}");
    assert_eq!(line.matches("in-cluster:").count(), 1, "said once: {line}");
    assert!(
        matches!(imds.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "IMDS was probed before the Kubernetes configuration was known"
    );
    assert!(out.stdout.is_empty());
}
