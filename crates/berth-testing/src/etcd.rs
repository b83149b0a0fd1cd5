//! Real `etcd` members (Debian's etcd 3.4) on loopback addresses, for tests of the
//! etcd adapter and of berth-bootstrap.
//!
//! Every member runs under a small `sh` watchdog that SIGKILLs it when the test
//! process goes away (our end of its stdin closes), so no member outlives a test
//! run; data dirs live under one temporary directory removed on drop.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Environment variable that overrides the `etcd` executable.
const ETCD_BIN_ENV: &str = "BERTH_ETCD";
/// How long `stop` waits after SIGTERM before SIGKILL (a member that lost quorum may
/// never stop on SIGTERM).
const STOP_GRACE: Duration = Duration::from_secs(5);

const INSTALL_HINT: &str = "install Debian's `etcd-server` package (etcd 3.4) so that `etcd` \
     is on PATH, or set BERTH_ETCD to its path";

/// Runs `etcd` (the remaining arguments) with the environment it was given, writes its
/// pid to `$1`, and SIGKILLs it as soon as this shell's stdin reaches EOF (the test
/// process is gone).
const WATCHDOG: &str = r#"
pidfile=$1; shift
exec 3<&0 </dev/null
"$@" 3<&- &
etcd=$!
echo "$etcd" > "$pidfile"
( read -r _ <&3; kill -9 "$etcd" 2>/dev/null ) &
watch=$!
exec 3<&-
wait "$etcd"
status=$?
kill "$watch" 2>/dev/null
exit "$status"
"#;

static NEXT_ROOT: AtomicU64 = AtomicU64::new(0);

/// A port free on every loopback address (bound on 0.0.0.0 to find it).
pub fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free TCP port")
}

/// Where one member listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAddr {
    /// Its name (`--name`).
    pub name: String,
    /// The address its client and peer URLs use.
    pub ip: IpAddr,
    /// Client port.
    pub client_port: u16,
    /// Peer port.
    pub peer_port: u16,
}

impl MemberAddr {
    /// `http://ip:client_port`.
    pub fn client_url(&self) -> String {
        format!("http://{}", SocketAddr::new(self.ip, self.client_port))
    }

    /// `http://ip:peer_port`.
    pub fn peer_url(&self) -> String {
        format!("http://{}", SocketAddr::new(self.ip, self.peer_port))
    }
}

struct Running {
    child: Child,
    pid: Option<u32>,
    log: PathBuf,
}

/// A set of etcd processes with their data dirs under one temporary directory.
pub struct EtcdProcesses {
    bin: PathBuf,
    root: PathBuf,
    running: BTreeMap<String, Running>,
}

impl std::fmt::Debug for EtcdProcesses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdProcesses")
            .field("root", &self.root)
            .field("running", &self.running.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn find_etcd() -> PathBuf {
    if let Some(path) = std::env::var_os(ETCD_BIN_ENV) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`etcd` is not installed: {INSTALL_HINT}"))
}

impl EtcdProcesses {
    /// No member yet; data dirs go under a fresh temporary directory.
    ///
    /// # Panics
    /// If `etcd` is not installed (the message says how to install it).
    pub fn new() -> Self {
        let bin = find_etcd();
        let root = std::env::temp_dir().join(format!(
            "berth-etcd-{}-{}",
            std::process::id(),
            NEXT_ROOT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&root).expect("create the etcd test directory");
        EtcdProcesses {
            bin,
            root,
            running: BTreeMap::new(),
        }
    }

    /// The data dir of member `name` (it survives `stop`, as a disk does).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.root.join(name).join("data")
    }

    /// A path under the temporary directory, for test files (drop-ins).
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Starts a new cluster of `members` (state `new`) and waits until it is healthy.
    pub fn start_cluster(&mut self, members: &[MemberAddr], token: &str) {
        let initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        for m in members {
            let env = vec![
                ("ETCD_NAME".to_owned(), m.name.clone()),
                ("ETCD_INITIAL_CLUSTER".to_owned(), initial.join(",")),
                ("ETCD_INITIAL_CLUSTER_STATE".to_owned(), "new".to_owned()),
                ("ETCD_INITIAL_CLUSTER_TOKEN".to_owned(), token.to_owned()),
                ("ETCD_INITIAL_ADVERTISE_PEER_URLS".to_owned(), m.peer_url()),
                ("ETCD_LISTEN_PEER_URLS".to_owned(), m.peer_url()),
                ("ETCD_ADVERTISE_CLIENT_URLS".to_owned(), m.client_url()),
                ("ETCD_LISTEN_CLIENT_URLS".to_owned(), m.client_url()),
            ];
            self.start_with_env(&m.name, &env);
        }
        let urls: Vec<String> = members.iter().map(MemberAddr::client_url).collect();
        self.wait_healthy(&urls, Duration::from_secs(30));
    }

    /// Starts member `name` with exactly these `ETCD_*` variables (as systemd would
    /// from a drop-in) and its data dir. Does not wait: see [`Self::wait_healthy`].
    pub fn start_with_env(&mut self, name: &str, env: &[(String, String)]) {
        assert!(
            !self.running.contains_key(name),
            "etcd member {name} already runs"
        );
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).expect("create the member directory");
        let log = dir.join("etcd.log");
        let pidfile = dir.join("pid");
        let _ = fs::remove_file(&pidfile);
        let stderr = fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the etcd log");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("berth-etcd-watchdog")
            .arg(&pidfile)
            .arg(&self.bin)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ETCD_DATA_DIR", self.data_dir(name))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `sh` to start etcd: {e}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        let pid = loop {
            if let Some(pid) = fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break Some(pid);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.running
            .insert(name.to_owned(), Running { child, pid, log });
    }

    /// Whether member `name`'s process still runs.
    pub fn is_running(&mut self, name: &str) -> bool {
        self.running
            .get_mut(name)
            .is_some_and(|r| matches!(r.child.try_wait(), Ok(None)))
    }

    /// Stops member `name`: SIGTERM, then SIGKILL after a grace period. Its data dir
    /// stays.
    pub fn stop(&mut self, name: &str) {
        let Some(mut r) = self.running.remove(name) else {
            return;
        };
        if let Some(pid) = r.pid {
            signal(pid, "TERM");
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if matches!(r.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            signal(pid, "KILL");
        }
        let _ = r.child.kill();
        let _ = r.child.wait();
    }

    /// Kills member `name` at once (a crash), keeping its data dir.
    pub fn kill(&mut self, name: &str) {
        if let Some(mut r) = self.running.remove(name) {
            if let Some(pid) = r.pid {
                signal(pid, "KILL");
            }
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    /// The last lines member `name` logged, for failure messages.
    pub fn log_tail(&self, name: &str) -> String {
        let path = self.root.join(name).join("etcd.log");
        let text = fs::read_to_string(path).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text[text.ceil_char_boundary(start)..].to_owned()
    }

    /// Waits until every client URL answers `GET /health` with `"health":"true"`
    /// (a leader and a quorum).
    ///
    /// # Panics
    /// After `timeout`, with the members' logs.
    pub fn wait_healthy(&self, client_urls: &[String], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if client_urls.iter().all(|u| is_healthy(u)) {
                return;
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = self
                    .running
                    .iter()
                    .map(|(n, r)| format!("--- {n} ({}):\n{}", r.log.display(), self.log_tail(n)))
                    .collect();
                panic!(
                    "etcd at {client_urls:?} not healthy within {timeout:?}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Default for EtcdProcesses {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for EtcdProcesses {
    fn drop(&mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            self.kill(&name);
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn signal(pid: u32, name: &str) {
    // The shell's builtin kill: no extra package, no unsafe.
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -s {name} {pid}"))
        .stderr(Stdio::null())
        .status();
}

/// `GET /health` on one client URL (plain http), `true` if etcd says healthy.
pub fn is_healthy(client_url: &str) -> bool {
    let Some(addr) = client_url
        .strip_prefix("http://")
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    let request = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

/// The `Environment="NAME=value"` lines of a systemd drop-in, as systemd reads them.
pub fn drop_in_environment(path: &Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the drop-in {}: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .map(|v| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            let v = v.replace("\\\"", "\"").replace("\\\\", "\\");
            let (name, value) = v.split_once('=').expect("NAME=value");
            (name.to_owned(), value.to_owned())
        })
        .collect()
}
