//! Secrets never leak (#14.4): the compiled provisioner at `--log-level trace`
//! (`BERTH_LOG_LEVEL`), in text and in JSON (`BERTH_LOG_FORMAT`), never prints its
//! bearer token nor a wrong token a client sent — not in its logs, its error
//! answers or `/metrics`.

mod support;

use berth_kube::fake::FakeApiServer;
use support::{config_yaml, Provisioner, IDLE_RUNNER, TOKEN};

const WRONG: &str = "wrong-token-5e0c9b13f7a4";

#[test]
fn no_token_in_trace_logs_errors_or_metrics() {
    let api = FakeApiServer::start().expect("fake API server");
    for format in ["text", "json"] {
        // The harness's child inherits these (they override its RUST_LOG).
        std::env::set_var("BERTH_LOG_LEVEL", "trace");
        std::env::set_var("BERTH_LOG_FORMAT", format);
        let server = Provisioner::start(&api, &config_yaml(&[], IDLE_RUNNER));
        let mut answers = String::new();
        let run = server.seed_run("test", &format!("secret-{format}"), "m5.large");
        answers += &server.call("GET", &format!("/v1/runs/{run}"), None).text();
        answers += &server.call("GET", "/v1/clusters/nope", None).text();
        for auth in [
            format!("Bearer {WRONG}"),
            WRONG.to_owned(),
            format!("Basic {WRONG}"),
        ] {
            let reply = server.request("GET", "/v1/clusters", &[("Authorization", &auth)], None);
            assert_eq!(reply.status, 401, "{}", reply.text());
            answers += &reply.text();
            answers += &format!("{:?}", reply.headers);
        }
        let logs = server.logs();
        if format == "json" {
            // The check below means something only if the lines really are JSON.
            for line in logs.lines() {
                let parsed = serde_json::from_str::<serde_json::Value>(line);
                assert!(parsed.is_ok_and(|v| v.is_object()), "not JSON: {line}");
            }
        }
        assert!(
            logs.contains("TRACE") || logs.contains("\"TRACE\""),
            "trace on: {logs:.2000}"
        );
        for (what, text) in [
            ("logs", logs),
            ("answers", answers),
            ("/metrics", server.metrics()),
        ] {
            for secret in [TOKEN, WRONG] {
                assert!(!text.contains(secret), "{format} {what} show {secret}");
            }
        }
    }
}
