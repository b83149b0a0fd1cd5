//! Latency under load and idle memory of the compiled server, with wrk, against the
//! fake Kubernetes API server (so the figures include its single-threaded store).
//! Not part of the default run:
//! `cargo build --release -p berth-provisioner && BERTH_PROVISIONER_BIN=target/release/berth-provisioner
//! cargo test -p berth-provisioner --test bench -- --ignored --nocapture`.

mod support;

use berth_kube::fake::FakeApiServer;
use support::{config_yaml, Provisioner, IDLE_RUNNER, TOKEN};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn wrk(addr: &str, script: &std::path::Path, path: &str) -> String {
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c16", "-d10s", "--latency", "-s"])
        .arg(script)
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("wrk on PATH (apt-get install wrk)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "a benchmark; see the module comment"]
fn latency_under_load_and_idle_memory() {
    let api = FakeApiServer::start().expect("fake API server");
    let server = Provisioner::start(&api, &config_yaml(&[], IDLE_RUNNER));
    std::thread::sleep(std::time::Duration::from_secs(1));
    println!("idle RSS: {} KiB", rss_kib(server.pid()));
    let spec = r#"{"kubernetes_version":"1.33","instance_type":"m5.large","ip_family":"ipv4"}"#;
    assert_eq!(
        server.call("PUT", "/v1/clusters/bench", Some(spec)).status,
        201
    );

    let get = server.scratch.0.join("get.lua");
    std::fs::write(
        &get,
        format!("wrk.headers[\"Authorization\"] = \"Bearer {TOKEN}\"\n"),
    )
    .unwrap();
    println!(
        "GET /v1/clusters/bench\n{}",
        wrk(&server.addr, &get, "/v1/clusters/bench")
    );

    let post = server.scratch.0.join("post.lua");
    std::fs::write(
        &post,
        format!(
            r#"-- Each wrk thread has its own Lua state: number them, so names never repeat.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{{"cluster_name":"b-%d-%d","kubernetes_version":"1.33","instance_type":"m5.large","ip_family":"ipv4"}}', id, counter)
  return wrk.format("POST", "/clusters/test", {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {TOKEN}"}}, body)
end
"#
        ),
    )
    .unwrap();
    println!(
        "POST /clusters/test (a new cluster each)\n{}",
        wrk(&server.addr, &post, "/clusters/test")
    );
    println!("RSS after load: {} KiB", rss_kib(server.pid()));
}
