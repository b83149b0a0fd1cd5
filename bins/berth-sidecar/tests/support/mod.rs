//! Running the compiled `berth-sidecar` against moto (optionally through a FaultProxy).

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetTypeEnum};
use berth_testing::{sdk_config, FaultProxy, MotoGuard, MotoServer};

/// The pod IP the tests register.
pub const POD_IP: &str = "10.0.1.5";

/// Target groups created in moto.
pub struct Groups {
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// `web`, port 80.
    pub web: String,
    /// `api`, port 8443.
    pub api: String,
}

/// What most tests start from: moto (held for the test), the two target groups, and
/// a fault proxy in front of moto.
pub struct Stage {
    pub moto: MotoGuard,
    pub groups: Groups,
    pub proxy: FaultProxy,
}

impl Stage {
    pub async fn start() -> Stage {
        let moto = MotoServer::isolated().await;
        let groups = create_groups(&moto.endpoint()).await;
        let proxy = FaultProxy::start(&moto.endpoint()).await;
        Stage {
            moto,
            groups,
            proxy,
        }
    }
}

/// Creates a VPC and two IP target groups, `web` (port 80) and `api` (port 8443).
pub async fn create_groups(moto: &str) -> Groups {
    let config = sdk_config(moto);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .expect("CreateVpc")
        .vpc
        .and_then(|v| v.vpc_id)
        .expect("a VPC id");
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let mut arns = Vec::new();
    for (name, port) in [("web", 80), ("api", 8443)] {
        let out = elb
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Tcp)
            .port(port)
            .vpc_id(&vpc)
            .target_type(TargetTypeEnum::Ip)
            .send()
            .await
            .expect("CreateTargetGroup");
        arns.push(
            out.target_groups()[0]
                .target_group_arn()
                .expect("an ARN")
                .to_owned(),
        );
    }
    Groups {
        elb,
        api: arns.pop().expect("api"),
        web: arns.pop().expect("web"),
    }
}

impl Groups {
    /// `id:port` of every target in the group, as moto has it.
    pub async fn targets(&self, arn: &str) -> Vec<String> {
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .expect("DescribeTargetHealth");
        let mut targets: Vec<String> = out
            .target_health_descriptions()
            .iter()
            .filter_map(|d| d.target())
            .map(|t| {
                format!(
                    "{}:{}",
                    t.id().unwrap_or_default(),
                    t.port().unwrap_or_default()
                )
            })
            .collect();
        targets.sort();
        targets
    }
}

/// A free loopback port (bound then released: good enough for a test).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running `berth-sidecar`.
pub struct Sidecar {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The threads reading stdout and stderr; they end at the pipes' end.
    readers: [JoinHandle<()>; 2],
    pub listen: String,
}

impl Sidecar {
    /// A command for the binary with AWS pointed at `endpoint`, POD_IP set, and
    /// every BERTH_* variable of the test environment removed.
    pub fn command(endpoint: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth-sidecar"));
        for (key, _) in std::env::vars() {
            if key.starts_with("BERTH_") && key != "BERTH_MOTO_SERVER" {
                cmd.env_remove(key);
            }
        }
        cmd.envs(berth_testing::aws_env(endpoint))
            .env("POD_IP", POD_IP)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts `cmd`, serving HTTP on a free port (through `BERTH_LISTEN`, so the
    /// command line itself stays as the test wrote it).
    pub fn spawn(mut cmd: Command) -> Sidecar {
        let listen = format!("127.0.0.1:{}", free_port());
        cmd.env("BERTH_LISTEN", &listen);
        let mut child = cmd.spawn().expect("spawn berth-sidecar");
        let (stdout, out_reader) = collect(child.stdout.take().expect("stdout"));
        let (stderr, err_reader) = collect(child.stderr.take().expect("stderr"));
        Sidecar {
            child,
            stdout,
            stderr,
            readers: [out_reader, err_reader],
            listen,
        }
    }

    /// Everything the sidecar wrote on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything the sidecar wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `GET path`: (status, body), or None if nothing answers yet.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(&self.listen).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.get(9..12)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((status, body))
    }

    /// Waits until `/readyz` answers 200; panics with the logs otherwise. Returns the
    /// `/readyz` statuses seen before.
    pub async fn until_ready(&mut self, within: Duration) -> Vec<(u16, String)> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "berth-sidecar exited ({status}) before being ready; stderr:\n{}",
                    self.stderr()
                );
            }
            match self.get("/readyz") {
                Some((200, _)) => return seen,
                Some(other) => seen.push(other),
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("not ready within {within:?}; stderr:\n{}", self.stderr());
    }

    /// Sends SIGTERM with `kill(1)`.
    pub fn terminate(&self) {
        self.kill("-TERM");
    }

    /// Sends SIGKILL with `kill(1)`: the sidecar dies without deregistering.
    pub fn kill_hard(&self) {
        self.kill("-KILL");
    }

    /// Sends SIGINT with `kill(1)` (what Ctrl-C does).
    pub fn interrupt(&self) {
        self.kill("-INT");
    }

    fn kill(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Runs `cmd` to its end (at most `within`): its exit status and stderr.
    pub async fn run(cmd: Command, within: Duration) -> (ExitStatus, String) {
        let mut sidecar = Sidecar::spawn(cmd);
        let status = sidecar.wait(within).await;
        (status, sidecar.stderr())
    }

    /// After the exit: waits until the reader threads have taken the last lines (the
    /// pipes end once nothing the sidecar started holds them), at most 10 s. A fixed
    /// pause raced the readers on a loaded machine.
    async fn until_output_read(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.readers.iter().all(JoinHandle::is_finished) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits for the exit; panics with the logs after `within`.
    pub async fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.until_output_read().await;
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "berth-sidecar still running after {within:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Polls `check` every 100 ms until it holds; panics naming `what` after `within`.
/// For state a running process produces after the condition a test waited on.
pub async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {within:?}");
}

/// Reads a pipe into a shared string on a thread, which ends at the pipe's end.
fn collect(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (text, reader)
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
