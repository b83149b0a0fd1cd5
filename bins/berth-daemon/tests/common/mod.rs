//! End-to-end harness: the compiled `berth-daemon` against real peers on loopback —
//! berth-kube's fake API server (real list/watch), berth-castai's FakeCastAi, and moto
//! (behind berth-testing's FaultProxy, which counts every AWS call the daemon makes).
#![allow(dead_code, unreachable_pub)]

pub mod fleet;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetDescription, TargetTypeEnum};
use aws_sdk_elasticloadbalancingv2::Client as ElbClient;
use berth_kube::fake::{ready_node, FakeApiServer};
use berth_testing::{aws_env, sdk_config, FaultProxy, MotoGuard, MotoServer};
use k8s_openapi::api::core::v1 as core;

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Every peer of one test.
pub struct World {
    pub moto: MotoGuard,
    pub proxy: FaultProxy,
    pub kube: FakeApiServer,
    pub elb: ElbClient,
    pub vpc: String,
    pub dir: PathBuf,
}

impl World {
    pub async fn new() -> World {
        let moto = MotoServer::isolated().await;
        let proxy = FaultProxy::start(&moto.endpoint()).await;
        let config = sdk_config(&moto.endpoint());
        let elb = ElbClient::new(&config);
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .expect("CreateVpc")
            .vpc()
            .and_then(|v| v.vpc_id())
            .expect("VPC id")
            .to_owned();
        let kube = FakeApiServer::start().expect("fake Kubernetes API server");
        let dir = std::env::temp_dir().join(format!(
            "berth-daemon-e2e-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        kube.write_kubeconfig(&dir.join("kubeconfig"))
            .expect("kubeconfig");
        World {
            moto,
            proxy,
            kube,
            elb,
            vpc,
            dir,
        }
    }

    /// An instance target group on `port`; returns its ARN.
    pub async fn group(&self, name: &str, port: i32) -> String {
        let created = self
            .elb
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Tcp)
            .port(port)
            .vpc_id(&self.vpc)
            .target_type(TargetTypeEnum::Instance)
            .send()
            .await
            .expect("CreateTargetGroup");
        created.target_groups()[0]
            .target_group_arn()
            .expect("ARN")
            .to_owned()
    }

    /// Registers a target directly, as another system would.
    pub async fn register_foreign(&self, arn: &str, id: &str, port: i32) {
        self.elb
            .register_targets()
            .target_group_arn(arn)
            .targets(TargetDescription::builder().id(id).port(port).build())
            .send()
            .await
            .expect("RegisterTargets");
    }

    /// `id:port` of every target in a group, straight from moto.
    pub async fn members(&self, arn: &str) -> BTreeSet<String> {
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .expect("DescribeTargetHealth");
        out.target_health_descriptions()
            .iter()
            .filter_map(|d| d.target())
            .map(|t| {
                format!(
                    "{}:{}",
                    t.id().unwrap_or_default(),
                    t.port().unwrap_or_default()
                )
            })
            .collect()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    pub fn add_node(&self, name: &str, instance: &str, labels: &[(&str, &str)]) {
        self.kube.add_node(ready_node(name, instance, labels));
    }

    /// Changes a node through `edit` (the watcher sees MODIFIED).
    pub fn edit_node(&self, name: &str, edit: impl FnOnce(&mut core::Node)) {
        let mut node = self.kube.node(name).expect("node exists");
        edit(&mut node);
        self.kube.update_node(node);
    }

    /// Sets a group's deregistration delay (ELBv2 default: 300 s).
    pub async fn set_deregistration_delay(&self, arn: &str, seconds: u32) {
        self.elb
            .modify_target_group_attributes()
            .target_group_arn(arn)
            .attributes(
                aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value(seconds.to_string())
                    .build(),
            )
            .send()
            .await
            .expect("ModifyTargetGroupAttributes");
    }

    /// The targets (`id:port`) an ownership ConfigMap in `default` records, across
    /// groups; `None` if the ConfigMap does not exist.
    pub fn owned(&self, config_map: &str) -> Option<BTreeSet<String>> {
        let cm: core::ConfigMap = self.kube.get(Some("default"), config_map)?;
        Some(
            cm.data
                .unwrap_or_default()
                .values()
                .flat_map(|v| v.split_whitespace().map(str::to_owned))
                .collect(),
        )
    }

    /// `reason: message` of every Event about `node`.
    pub fn events_of(&self, node: &str) -> Vec<String> {
        self.kube
            .events()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(node))
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default()
                )
            })
            .collect()
    }

    /// Sets a node's Ready condition, turned to `ready` at `since` (as the node
    /// lifecycle controller does when the kubelet stops posting status).
    pub fn set_ready(&self, name: &str, ready: bool, since: SystemTime) {
        let since = humantime::format_rfc3339_seconds(since).to_string();
        let conditions = serde_json::json!([{
            "type": "Ready",
            "status": if ready { "True" } else { "False" },
            "reason": if ready { "KubeletReady" } else { "NodeStatusUnknown" },
            "lastTransitionTime": since,
            "lastHeartbeatTime": since,
        }]);
        self.edit_node(name, |n| {
            n.status.get_or_insert_with(Default::default).conditions =
                Some(serde_json::from_value(conditions).expect("conditions"));
        });
    }

    /// Whether the fake API server has `name` with condition Ready=True.
    pub fn is_ready(&self, name: &str) -> bool {
        self.kube
            .node(name)
            .and_then(|n| n.status)
            .and_then(|s| s.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }

    /// A cluster-mode daemon over `config` (written to `config.yaml`), resyncing every
    /// second.
    pub fn cluster_daemon(&self, config: &str) -> Daemon {
        let config = self.write("config.yaml", config);
        self.daemon(
            &[
                "--mode",
                "cluster",
                "--config",
                config.to_str().unwrap(),
                "--sleep-interval",
                "1",
            ],
            &[],
        )
    }

    /// Starts the daemon with the AWS endpoint at the proxy and the kubeconfig set.
    pub fn daemon(&self, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let port = free_port();
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let log = self.dir.join(format!("daemon-{n}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let out = self.dir.join(format!("daemon-{n}.out"));
        let stdout = std::fs::File::create(&out).expect("stdout file");
        // BERTH_DAEMON_BIN: a copy of the binary, for benchmarks that must not pick up
        // another checkout's build of the shared target dir midway.
        let bin = std::env::var_os("BERTH_DAEMON_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_berth-daemon").into());
        let mut cmd = Command::new(bin);
        cmd.envs(aws_env(&self.proxy.endpoint()))
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("CLUSTER_NAME", "e2e")
            .env("POD_NAMESPACE", "default")
            .env("POD_NAME", format!("berth-daemon-{n}"))
            .env("RUST_LOG", "berth_daemon=debug,info")
            .env_remove("CLUSTER_ID")
            .env_remove("CLUSTER_API_KEY")
            .env_remove("DEBUG")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd.spawn().expect("spawn berth-daemon");
        Daemon {
            child: Some(child),
            port,
            log,
            out,
        }
    }
}

/// A running daemon; killed when dropped.
pub struct Daemon {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
    /// Standard output (the `--dry-run` plans).
    pub out: PathBuf,
}

impl Daemon {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// GET a path on the daemon's HTTP endpoint: (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let status = text.get(9..12)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((status, body))
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics").map(|(_, b)| b).unwrap_or_default()
    }

    /// A metric's value (first sample whose line starts with `prefix`).
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Reconcile passes completed so far.
    pub fn passes(&self) -> u64 {
        self.metric("berth_daemon_reconcile_duration_seconds_count")
            .unwrap_or(0.0) as u64
    }

    /// Waits for `n` more passes than now.
    pub async fn wait_passes(&self, more: u64, timeout: Duration) {
        let target = self.passes() + more;
        eventually(
            timeout,
            &format!("{more} more reconcile passes"),
            self,
            || async { self.passes() >= target },
        )
        .await;
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits for the process to exit on its own; its exit code, or `None` if it is
    /// still running after `timeout` (it is then killed).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        None
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 10 s).
    pub fn terminate(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        None
    }

    /// SIGKILL: a crash, nothing released.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 100 ms until it holds; panics with the daemon's log otherwise.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, daemon: &Daemon, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for: {what}\n--- daemon log ---\n{}",
                tail(&daemon.log_text(), 8000)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `done` every 50 ms until it holds; panics naming `what` after 30 s. For tests
/// without a daemon process (embedded controllers, in-memory providers).
pub async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn instance(i: usize) -> String {
    format!("i-{i:017x}")
}

pub fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    items.into_iter().collect()
}

/// A `DescribeTargetHealth` answer showing one target `draining`, as AWS shows it
/// during the deregistration delay (moto removes a target at once).
pub fn draining_health(id: &str, port: u16) -> String {
    format!(
        "<DescribeTargetHealthResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\
         <DescribeTargetHealthResult><TargetHealthDescriptions><member><Target><Id>{id}</Id><Port>{port}</Port></Target>\
         <TargetHealth><State>draining</State><Reason>Target.DeregistrationInProgress</Reason></TargetHealth></member>\
         </TargetHealthDescriptions></DescribeTargetHealthResult><ResponseMetadata><RequestId>canned</RequestId>\
         </ResponseMetadata></DescribeTargetHealthResponse>"
    )
}

/// A static config putting nodes labelled `role: web` in the group named `web`.
pub const WEB_CONFIG: &str =
    "rules:\n  - nodeSelector: {matchLabels: {role: web}}\n    targetGroups: [{name: web}]\n";

/// The 403 ELBv2 answers when the role lacks `action`.
pub fn access_denied(action: &str) -> berth_testing::Fault {
    berth_testing::Fault::Respond {
        status: 403,
        body: format!(
            "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\
             <Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: \
             arn:aws:sts::123456789012:assumed-role/berth-daemon/i-0 is not authorized to perform: \
             {action}</Message></Error><RequestId>canned</RequestId></ErrorResponse>"
        ),
    }
}
