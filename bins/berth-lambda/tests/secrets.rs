//! Secrets never leak (#14.4): the compiled function, given a recognisable AWS secret
//! key and run at trace level in text and in JSON, handles an event that makes it
//! call AWS (signed requests) and never prints the secret.

use std::process::Stdio;
use std::time::Duration;

use berth_testing::{aws_env, FaultProxy, LambdaRuntimeApi, MotoServer};

const AWS_SECRET: &str = "aws-secret-61f2c0b8e94d";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_aws_secret_in_trace_logs() {
    let moto = MotoServer::isolated().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let dir = std::env::temp_dir().join(format!("berth-lambda-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for format in ["text", "json"] {
        let api = LambdaRuntimeApi::start();
        let out = dir.join(format!("{format}.log"));
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth-lambda"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(api.env("berth-lambda"))
            .envs(aws_env(&proxy.endpoint()))
            .envs([
                ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
                ("BERTH_INSTANCE_TAGS", "team=live"),
                ("BERTH_EIP_TAGS", "pool=live"),
                ("BERTH_HOSTED_ZONE_ID", "Z0123456789ABCDEFGHIJ"),
                ("BERTH_DNS_SUFFIX", "live.example.com"),
                ("BERTH_LEDGER_TABLE", "berth-ledger"),
                ("RUST_LOG", "trace"),
                ("BERTH_LOG_LEVEL", "trace"),
                ("BERTH_LOG_FORMAT", format),
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join(format!("{format}.out"))).unwrap())
            .stderr(std::fs::File::create(&out).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn berth-lambda");
        api.wait_for_polls(1, Duration::from_secs(60)).await;
        proxy.reset_counts();
        let event = serde_json::json!({
            "version": "0", "id": "1", "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2", "account": "123456789012", "time": "2024-11-11T21:29:54Z",
            "region": "us-east-1", "resources": [],
            "detail": {"instance-id": "i-0abc1234567890def", "state": "running"}
        });
        let id = api.invoke(event.to_string());
        let result = api.result(&id, Duration::from_secs(60)).await;
        child.kill().await.ok();
        assert!(proxy.total() > 0, "the function called AWS: {result:?}");
        let text = std::fs::read_to_string(&out).unwrap()
            + &std::fs::read_to_string(dir.join(format!("{format}.out"))).unwrap()
            + result.body();
        assert!(
            text.to_lowercase().contains("trace"),
            "trace on: {text:.2000}"
        );
        assert!(
            !text.contains(AWS_SECRET),
            "the {format} log shows the AWS secret"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
