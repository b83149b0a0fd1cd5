//! Running the compiled `berth-provisioner` against the fake Kubernetes API server,
//! and a small HTTP client for it.

#![allow(dead_code, unreachable_pub)]

pub mod kubelet;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_kube::fake::FakeApiServer;
use serde_json::Value;

pub const TOKEN: &str = "s3cr3t-token-for-tests";
pub const NAMESPACE: &str = "provisioner";

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "berth-provisioner-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The server configuration the tests use; `runner` is the YAML of the `runner:` map.
pub fn config_yaml(terraform_vars: &[(&str, &str)], runner: &str) -> String {
    let mut vars = String::new();
    for (k, v) in terraform_vars {
        vars.push_str(&format!("  {k}: \"{v}\"\n"));
    }
    format!(
        "kubernetes_versions: [\"1.31\", \"1.32\", \"1.33\"]\nregion: ap-south-1\nterraform_vars:\n  vpc_id: vpc-test\n{vars}runner:\n{runner}"
    )
}

/// The default runner map: an image and command no kubelet here will run.
pub const IDLE_RUNNER: &str = "  image: berth-runner:test\n  command: [\"/bin/false\"]\n";

/// The address right after `marker` in a log line, text (`addr=127.0.0.1:8080 ...`)
/// or JSON (`"addr":"127.0.0.1:8080",...`).
fn address_after(line: &str, marker: &str) -> Option<String> {
    let rest = line.split(marker).nth(1)?;
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == ',')
        .unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_owned())
}

/// A running `berth-provisioner`.
pub struct Provisioner {
    child: Child,
    pub addr: String,
    /// berth-runtime's admin server (`/metrics`).
    pub admin: String,
    pub scratch: Scratch,
    pub token_file: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Provisioner {
    /// Starts the binary against `api` with this configuration.
    pub fn start(api: &FakeApiServer, config: &str) -> Self {
        Provisioner::start_with_kubeconfig(&api.kubeconfig(), config)
    }

    /// [`Provisioner::start`] with this kubeconfig (e.g. the fake API server's
    /// `kubeconfig_as`, so its requests are told from the runner's).
    pub fn start_with_kubeconfig(kubeconfig_text: &str, config: &str) -> Self {
        let scratch = Scratch::new();
        let kubeconfig = scratch.0.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text).expect("write a kubeconfig");
        let config_path = scratch.0.join("config.yaml");
        std::fs::write(&config_path, config).expect("write the config");
        let token_file = scratch.0.join("tokens");
        std::fs::write(&token_file, format!("# tokens\n{TOKEN}\n")).expect("write tokens");
        // BERTH_PROVISIONER_BIN: another build of the binary (the benchmark's release one).
        let binary = std::env::var_os("BERTH_PROVISIONER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth-provisioner")));
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAMESPACE", NAMESPACE)
            .env("BERTH_PROVISIONER_TOKEN_FILE", &token_file)
            .env("BERTH_PROVISIONER_CONFIG", &config_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth-provisioner");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                eprintln!("[provisioner] {line}");
                lines.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let found = stderr
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| address_after(l, "listening on "));
            if let Some(addr) = found {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("berth-provisioner exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "berth-provisioner did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let admin = stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("admin server listening"))
            .find_map(|l| address_after(l, "addr=").or_else(|| address_after(l, "\"addr\":\"")))
            .expect("the admin server's address in the log");
        Provisioner {
            child,
            addr,
            admin,
            scratch,
            token_file,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the binary logged so far.
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// `GET /v1/runs/{id}`.
    pub fn run(&self, id: &str) -> Value {
        self.call("GET", &format!("/v1/runs/{id}"), None).json()
    }

    /// Waits (up to 3 minutes: terraform runs for real) until the run is in `states`.
    pub async fn wait_for(&self, id: &str, states: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let run = self.run(id);
            if states.contains(&run["state"].as_str().unwrap_or_default()) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} never reached {states:?}: {run}\n{}",
                self.log(id)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits (up to a minute) until the run's log shows `text`.
    pub async fn wait_for_log(&self, id: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log(id).contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in\n{}",
                self.log(id)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `GET /v1/runs/{id}/logs`.
    pub fn log(&self, id: &str) -> String {
        self.call("GET", &format!("/v1/runs/{id}/logs"), None)
            .text()
    }

    /// A request with the test token.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.request(
            method,
            path,
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            body,
        )
    }

    /// The admin server's `/metrics` text.
    pub fn metrics(&self) -> String {
        let reply = http(&self.admin, "GET", "/metrics", &[], None);
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.text()
    }

    /// `POST /clusters/<endpoint>` (`provision` or `test`) with the seed's body.
    pub fn seed_post(&self, endpoint: &str, cluster: &str, instance_type: &str) -> Reply {
        let body = seed_body(cluster, instance_type);
        self.call("POST", &format!("/clusters/{endpoint}"), Some(&body))
    }

    /// [`Provisioner::seed_post`], which must start a run: the run id (`job_name`).
    pub fn seed_run(&self, endpoint: &str, cluster: &str, instance_type: &str) -> String {
        let reply = self.seed_post(endpoint, cluster, instance_type);
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()["job_name"]
            .as_str()
            .expect("the run id in job_name")
            .to_owned()
    }

    /// A request with exactly these headers.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        http(&self.addr, method, path, headers, body.map(str::as_bytes))
    }
}

impl Drop for Provisioner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a problem+json answer with this status and returns its body.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        body
    }
}

/// One HTTP/1.1 exchange (`Connection: close`), chunked bodies decoded.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect to berth-provisioner");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send");
    if let Some(body) = body {
        stream.write_all(body).expect("send the body");
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&raw[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = end + 2;
        out.extend_from_slice(&raw[start..(start + size).min(raw.len())]);
        raw = &raw[(start + size + 2).min(raw.len())..];
    }
}

/// The seed's request body.
pub fn seed_body(name: &str, instance_type: &str) -> String {
    serde_json::json!({
        "cluster_name": name,
        "kubernetes_version": "1.33",
        "instance_type": instance_type,
        "ip_family": "ipv6",
    })
    .to_string()
}

/// The repository's root.
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}
