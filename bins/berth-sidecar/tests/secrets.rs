//! Secrets never leak (#14.4): the compiled sidecar, given a recognisable AWS secret
//! key and run at `--log-level trace` in text and in JSON, registers, serves
//! `/metrics`, deregisters on SIGTERM and never prints the secret.

mod support;

use std::time::Duration;

use support::{Sidecar, Stage};

const AWS_SECRET: &str = "aws-secret-0d8b7e3f12c6";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_aws_secret_in_trace_logs_or_metrics() {
    let stage = Stage::start().await;
    for format in ["text", "json"] {
        let mut cmd = Sidecar::command(&stage.proxy.endpoint());
        cmd.env("AWS_SECRET_ACCESS_KEY", AWS_SECRET).args([
            "--target-group",
            "web",
            "--log-level",
            "trace",
            "--log-format",
            format,
        ]);
        let mut sidecar = Sidecar::spawn(cmd);
        sidecar.until_ready(Duration::from_secs(60)).await;
        let (_, metrics) = sidecar.get("/metrics").expect("/metrics answers");
        sidecar.terminate();
        sidecar.wait(Duration::from_secs(60)).await;
        let text = format!("{}{}{metrics}", sidecar.stderr(), sidecar.stdout());
        assert!(text.to_lowercase().contains("trace"), "trace on");
        assert!(stage.proxy.total() > 0, "the sidecar called AWS");
        assert!(
            !text.contains(AWS_SECRET),
            "the {format} output shows the AWS secret"
        );
    }
}
