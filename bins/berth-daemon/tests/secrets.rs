//! Secrets never leak (#14.4): the compiled daemon, given a recognisable Cast.ai API
//! key and AWS secret key and run at `--log-level trace` in text and in JSON, never
//! prints them — not in its logs, its standard output, its `/metrics` — and neither
//! does the `Debug` of its command line or its usage errors.

mod common;

use std::time::Duration;

use berth_castai::fake::FakeCastAi;
use berth_daemon::cli::Cli;
use clap::Parser;
use common::*;

const CASTAI_KEY: &str = "castai-key-3b7f0d9e51a2";
const AWS_SECRET: &str = "aws-secret-9c41e8a27d55";
const WAIT: Duration = Duration::from_secs(60);

fn assert_no_secret(what: &str, text: &str) {
    for secret in [CASTAI_KEY, AWS_SECRET] {
        assert!(
            !text.contains(secret),
            "{what} shows {secret}:\n{}",
            tail(text, 4000)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_trace_logs_stdout_or_metrics() {
    let w = World::new().await;
    let arn = w.group("tg-secret", 30080).await;
    let castai = FakeCastAi::start("cluster-1", CASTAI_KEY).expect("FakeCastAi");
    castai.set_target_groups("cfg-0", &[(&arn, None)]);
    w.add_node(
        "node-0",
        &instance(0),
        &[("provisioner.cast.ai/node-configuration-id", "cfg-0")],
    );
    let url = castai.base_url();
    let env = [
        ("CLUSTER_ID", "cluster-1"),
        ("CLUSTER_API_KEY", CASTAI_KEY),
        ("CASTAI_API_URL", &*url),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
    ];
    for format in ["text", "json"] {
        let args = [
            "--mode",
            "cluster",
            "--sleep-interval",
            "1",
            "--log-level",
            "trace",
            "--log-format",
            format,
        ];
        let mut d = w.daemon(&args, &env);
        eventually(WAIT, "node-0 registered through Cast.ai", &d, || async {
            w.members(&arn).await.len() == 1
        })
        .await;
        d.wait_passes(1, WAIT).await;
        let log = d.log_text();
        assert!(
            log.contains("TRACE") || log.contains("\"TRACE\""),
            "trace level on"
        );
        assert_no_secret(&format!("the {format} log"), &log);
        assert_no_secret("standard output", &d.stdout_text());
        assert_no_secret("/metrics", &d.metrics());
        assert_eq!(d.terminate(), Some(0));
    }
    assert!(castai.requests() > 0, "the key was used");
}

#[test]
fn no_secret_in_the_command_lines_debug_or_usage_errors() {
    let cli = Cli::try_parse_from([
        "berth-daemon",
        "--cluster-name",
        "e2e",
        "--castai-api-key",
        CASTAI_KEY,
        "--cluster-id",
        "cluster-1",
    ])
    .expect("a command line");
    assert_no_secret("Debug of the command line", &format!("{cli:?} {cli:#?}"));
    // The key without a cluster id: refused, without the key.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth-daemon"))
        .env_remove("CLUSTER_ID")
        .env("CLUSTER_NAME", "e2e")
        .env("CLUSTER_API_KEY", CASTAI_KEY)
        .args(["--mode", "cluster", "--log-level", "trace"])
        .output()
        .expect("run berth-daemon");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CLUSTER_API_KEY"), "{text}");
    assert_no_secret("a usage error", &text);
}
