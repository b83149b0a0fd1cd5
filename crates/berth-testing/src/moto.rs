//! A real `moto_server` on a free loopback port, shared by a test binary.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Environment variable that overrides the `moto_server` executable.
const MOTO_BIN_ENV: &str = "BERTH_MOTO_SERVER";
/// How long moto may take to answer after it was started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of moto's output is kept for error messages.
const LOG_TAIL_BYTES: usize = 64 * 1024;
/// How many free ports are tried if another process grabs ours first.
const START_ATTEMPTS: usize = 3;

const INSTALL_HINT: &str = "install it with `pip install 'moto[server]'` (moto 5.x) so that \
     `moto_server` is on PATH, or set BERTH_MOTO_SERVER to its path";

/// Runs `moto_server` and kills it as soon as this shell's stdin reaches EOF.
///
/// Our stdin is a pipe whose only write end is held by the test process, so
/// EOF means the test process is gone (however it ended: statics never drop,
/// `process::exit`, a panic, SIGKILL). If moto exits on its own, the shell
/// reports the status on stderr and exits too, which the test process sees.
const WATCHDOG: &str = r#"
exec 3<&0 </dev/null
"$1" -H 127.0.0.1 -p "$2" 3<&- 1>&2 &
moto=$!
( read -r _ <&3; kill "$moto" 2>/dev/null ) &
watch=$!
exec 3<&-
wait "$moto"
status=$?
kill "$watch" 2>/dev/null
echo "berth-testing: moto_server exited with status $status" >&2
exit "$status"
"#;

static SHARED: OnceLock<Result<MotoServer, String>> = OnceLock::new();
static ISOLATION: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running `moto_server` on `127.0.0.1`.
///
/// Use [`MotoServer::shared`] (one server per test binary) and, in every test
/// that creates or reads moto state, [`MotoServer::isolated`], which
/// serialises those tests and resets moto first.
///
/// The moto process is started through a small `sh` watchdog and dies when
/// the test process exits, even though a static is never dropped. A server
/// from [`MotoServer::start`] is also stopped when dropped.
pub struct MotoServer {
    port: u16,
    child: Mutex<Child>,
    log: Arc<Mutex<VecDeque<u8>>>,
}

impl std::fmt::Debug for MotoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MotoServer")
            .field("endpoint", &self.endpoint())
            .finish_non_exhaustive()
    }
}

impl MotoServer {
    /// The server shared by every test of this test binary, started on first
    /// use.
    ///
    /// # Panics
    /// If `moto_server` is not installed (the message says how to install it)
    /// or does not answer within 30 s (the message includes its output).
    pub fn shared() -> &'static MotoServer {
        match SHARED.get_or_init(MotoServer::start) {
            Ok(server) => server,
            Err(message) => panic!("{message}"),
        }
    }

    /// Takes the binary-wide isolation lock, resets the shared server and
    /// returns a guard that holds the lock until dropped (keep it for the
    /// whole test). Works across the separate runtimes of `#[tokio::test]`s.
    ///
    /// # Panics
    /// As [`MotoServer::shared`], or if the reset fails.
    pub async fn isolated() -> MotoGuard {
        let lock = ISOLATION.lock().await;
        MotoGuard::new(lock)
    }

    /// [`MotoServer::isolated`] for synchronous tests.
    ///
    /// # Panics
    /// When called from within an async runtime (use `isolated().await`), and
    /// as [`MotoServer::isolated`].
    pub fn isolated_blocking() -> MotoGuard {
        let lock = ISOLATION.blocking_lock();
        MotoGuard::new(lock)
    }

    /// Starts a new, private moto server (most tests want
    /// [`MotoServer::shared`]). It is stopped when dropped.
    ///
    /// # Errors
    /// If `moto_server` is not installed or does not come up; the message
    /// says how to install it or includes moto's output.
    pub fn start() -> Result<MotoServer, String> {
        let bin = find_moto()?;
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
            match Self::start_on(&bin, port) {
                Ok(server) => return Ok(server),
                // Another process took the port between our probe and moto's bind.
                Err((message, true)) => last_error = message,
                Err((message, false)) => return Err(message),
            }
        }
        Err(last_error)
    }

    /// Starts moto on `port`; the error says whether a retry on another port
    /// may help.
    fn start_on(bin: &Path, port: u16) -> Result<MotoServer, (String, bool)> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("berth-moto-watchdog")
            .arg(bin)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| (format!("cannot run `sh` to start moto_server: {e}"), false))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let drain = child
            .stderr
            .take()
            .map(|stderr| drain_into(stderr, log.clone()));
        let server = MotoServer {
            port,
            child: Mutex::new(child),
            log,
        };

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok((200, _)) = server.request("GET", "/moto-api/") {
                return Ok(server);
            }
            let exited = server.lock_child().try_wait().ok().flatten();
            if let Some(status) = exited {
                // Let the drain thread collect the last words before reporting.
                let until = Instant::now() + Duration::from_secs(2);
                while drain.as_ref().is_some_and(|d| !d.is_finished()) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let output = server.recent_output();
                let port_taken = output.contains("Address already in use");
                return Err((
                    format!(
                        "moto_server ({}) exited ({status}) before answering on port {port}; \
                         its output:\n{output}",
                        bin.display()
                    ),
                    port_taken,
                ));
            }
            if Instant::now() >= deadline {
                let message = format!(
                    "moto_server ({}) did not answer GET {}/moto-api/ within {:?}; its output:\n{}",
                    bin.display(),
                    server.endpoint(),
                    STARTUP_TIMEOUT,
                    server.recent_output()
                );
                return Err((message, false));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Deletes all state in moto (`POST /moto-api/reset`). Tests sharing the
    /// server should use [`MotoServer::isolated`] rather than calling this.
    ///
    /// # Panics
    /// If moto does not answer 200 (the message includes its output).
    pub fn reset(&self) {
        match self.request("POST", "/moto-api/reset") {
            Ok((200, _)) => {}
            Ok((status, body)) => panic!(
                "POST {}/moto-api/reset answered {status}: {body}\nmoto's output:\n{}",
                self.endpoint(),
                self.recent_output()
            ),
            Err(e) => panic!(
                "POST {}/moto-api/reset failed: {e}\nmoto's output:\n{}",
                self.endpoint(),
                self.recent_output()
            ),
        }
    }

    /// The last 64 KiB of moto's stdout and stderr (its request log), for
    /// diagnosing a failing test.
    pub fn recent_output(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = log.as_slices();
        let mut bytes = a.to_vec();
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn lock_child(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A minimal blocking HTTP/1.1 request to moto: (status, body).
    fn request(&self, method: &str, path: &str) -> std::io::Result<(u16, String)> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not an HTTP response: {response:.200}"),
                )
            })?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        // Closing the watchdog's stdin makes it kill moto and exit.
        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Exclusive use of the shared [`MotoServer`], reset when acquired.
/// Dereferences to the server.
#[must_use = "the isolation lock is released when the guard is dropped"]
pub struct MotoGuard {
    server: &'static MotoServer,
    _lock: tokio::sync::MutexGuard<'static, ()>,
}

impl MotoGuard {
    fn new(lock: tokio::sync::MutexGuard<'static, ()>) -> MotoGuard {
        let server = MotoServer::shared();
        server.reset();
        MotoGuard {
            server,
            _lock: lock,
        }
    }
}

impl std::fmt::Debug for MotoGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MotoGuard").field(self.server).finish()
    }
}

impl Deref for MotoGuard {
    type Target = MotoServer;

    fn deref(&self) -> &MotoServer {
        self.server
    }
}

/// `$BERTH_MOTO_SERVER`, or `moto_server` on PATH.
fn find_moto() -> Result<PathBuf, String> {
    find_moto_in(
        std::env::var_os(MOTO_BIN_ENV),
        std::env::var_os("PATH").unwrap_or_default(),
    )
}

fn find_moto_in(override_bin: Option<OsString>, path: OsString) -> Result<PathBuf, String> {
    if let Some(bin) = override_bin {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "{MOTO_BIN_ENV}={} is not a file; {INSTALL_HINT}",
                bin.display()
            ))
        };
    }
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "moto_server (the AWS emulator these tests run against) is not on PATH; \
                 {INSTALL_HINT}"
            )
        })
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Keeps reading `source` (so moto never blocks on a full pipe), retaining
/// the last [`LOG_TAIL_BYTES`].
fn drain_into(source: impl Read + Send + 'static, log: Arc<Mutex<VecDeque<u8>>>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("moto-output".into())
        .spawn(move || {
            let mut reader = BufReader::new(source);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                log.extend(line.drain(..));
                let excess = log.len().saturating_sub(LOG_TAIL_BYTES);
                log.drain(..excess);
            }
        })
        .expect("spawn moto output thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_moto_says_how_to_install_it() {
        let error = find_moto_in(None, OsString::from("/nonexistent:/also/not/here")).unwrap_err();
        assert!(error.contains("pip install 'moto[server]'"), "{error}");
        let error =
            find_moto_in(Some("/nonexistent/moto_server".into()), OsString::new()).unwrap_err();
        assert!(
            error.contains("BERTH_MOTO_SERVER") && error.contains("pip install"),
            "{error}"
        );
    }
}
