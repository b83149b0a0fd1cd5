//! [`FakeImds`]: a loopback EC2 instance metadata service that speaks IMDSv2 only.
//!
//! It hands out session tokens on `PUT /latest/api/token` and answers `401` to every
//! request without a token it issued, so a client that passes against it uses IMDSv2,
//! never v1 (seed 000 used v1 and broke on instances that require v2).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Where IMDSv2 hands out session tokens.
pub const TOKEN_PATH: &str = "/latest/api/token";
/// The instance identity document.
pub const IDENTITY_PATH: &str = "/latest/dynamic/instance-identity/document";
/// The spot interruption notice: 404 until EC2 schedules an interruption.
pub const SPOT_ACTION_PATH: &str = "/latest/meta-data/spot/instance-action";

/// What the server has seen.
#[derive(Debug, Default, Clone)]
pub struct ImdsRequests {
    /// Session tokens issued.
    pub tokens_issued: usize,
    /// Paths read with a valid token, in order.
    pub authorised_gets: Vec<String>,
    /// `METHOD path` of every request refused for lack of a valid token.
    pub rejected: Vec<String>,
}

#[derive(Default)]
struct State {
    /// Path → (status, body) for authorised `GET`s; unknown paths are 404.
    routes: HashMap<String, (u16, String)>,
    issued: Vec<String>,
    seen: ImdsRequests,
}

/// An IMDSv2-only metadata server on a free loopback port, serving on its own threads
/// (it works for a spawned binary and from synchronous tests). Stops when dropped.
pub struct FakeImds {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stopped: Arc<AtomicBool>,
}

impl FakeImds {
    /// Starts the server. Every path is 404 until routed.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn start() -> FakeImds {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("FakeImds: bind a loopback port");
        let addr = listener.local_addr().expect("FakeImds: local address");
        let state = Arc::new(Mutex::new(State::default()));
        let stopped = Arc::new(AtomicBool::new(false));
        let (shared, stop) = (state.clone(), stopped.clone());
        std::thread::Builder::new()
            .name("fake-imds".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = shared.clone();
                    std::thread::spawn(move || serve(stream, &state));
                }
            })
            .expect("FakeImds: spawn the server thread");
        FakeImds {
            addr,
            state,
            stopped,
        }
    }

    /// `http://127.0.0.1:<port>`, for `Imds::with_endpoint` or a binary's flag.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers authorised `GET path` with `status` and `body` from now on.
    pub fn route(&self, path: &str, status: u16, body: &str) {
        self.lock()
            .routes
            .insert(path.to_owned(), (status, body.to_owned()));
    }

    /// Serves an instance identity document for `instance_id` in `region`'s zone `a`.
    pub fn set_identity(&self, instance_id: &str, region: &str, private_ip: &str) {
        let document = format!(
            r#"{{"accountId": "123456789012", "architecture": "x86_64", "availabilityZone": "{region}a", "imageId": "ami-12c6146b", "instanceId": "{instance_id}", "instanceType": "m6i.large", "pendingTime": "2024-05-01T10:00:00Z", "privateIp": "{private_ip}", "region": "{region}", "version": "2017-09-30"}}"#
        );
        self.route(IDENTITY_PATH, 200, &document);
    }

    /// Schedules a spot interruption: `action` (`terminate`, `stop`, `hibernate`) at
    /// `time` (RFC 3339, e.g. `2024-05-01T10:02:00Z`), as EC2 announces it.
    pub fn set_spot_action(&self, action: &str, time: &str) {
        let body = format!(r#"{{"action": "{action}", "time": "{time}"}}"#);
        self.route(SPOT_ACTION_PATH, 200, &body);
    }

    /// Withdraws the spot interruption notice (404 again).
    pub fn clear_spot_action(&self) {
        self.lock().routes.remove(SPOT_ACTION_PATH);
    }

    /// What the server has seen so far.
    pub fn requests(&self) -> ImdsRequests {
        self.lock().seen.clone()
    }

    /// How many authorised `GET`s of `path` were served.
    pub fn gets(&self, path: &str) -> usize {
        self.lock()
            .seen
            .authorised_gets
            .iter()
            .filter(|p| *p == path)
            .count()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Answers the one request of a connection, then closes it.
fn serve(stream: TcpStream, state: &Mutex<State>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);

    let (status, extra_header, body) = answer(&method, &path, &headers, state);
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{extra_header}connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = writer.write_all(response.as_bytes());
}

fn answer(
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
    state: &Mutex<State>,
) -> (u16, String, String) {
    let mut state = lock(state);
    if method == "PUT" && path == TOKEN_PATH {
        let Some(ttl) = headers.get("x-aws-ec2-metadata-token-ttl-seconds") else {
            return (400, String::new(), "missing TTL".into());
        };
        state.seen.tokens_issued += 1;
        let token = format!("token-{}", state.seen.tokens_issued);
        state.issued.push(token.clone());
        let header = format!("x-aws-ec2-metadata-token-ttl-seconds: {ttl}\r\n");
        return (200, header, token);
    }
    let authorised = headers
        .get("x-aws-ec2-metadata-token")
        .is_some_and(|token| state.issued.contains(token));
    if method != "GET" || !authorised {
        state.seen.rejected.push(format!("{method} {path}"));
        return (401, String::new(), String::new());
    }
    state.seen.authorised_gets.push(path.to_owned());
    match state.routes.get(path) {
        Some((status, body)) => (*status, String::new(), body.clone()),
        None => (404, String::new(), "Not Found".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(imds: &FakeImds, text: &str) -> String {
        let mut stream = TcpStream::connect(imds.addr).unwrap();
        stream.write_all(text.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn refuses_imdsv1_and_serves_imdsv2() {
        let imds = FakeImds::start();
        imds.set_spot_action("terminate", "2024-05-01T10:02:00Z");
        let v1 = request(
            &imds,
            &format!("GET {SPOT_ACTION_PATH} HTTP/1.1\r\nhost: x\r\n\r\n"),
        );
        assert!(v1.starts_with("HTTP/1.1 401"), "{v1}");

        let token = request(
            &imds,
            &format!(
                "PUT {TOKEN_PATH} HTTP/1.1\r\nhost: x\r\nx-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n"
            ),
        );
        let token = token.rsplit("\r\n\r\n").next().unwrap().to_owned();
        let v2 = request(
            &imds,
            &format!(
                "GET {SPOT_ACTION_PATH} HTTP/1.1\r\nhost: x\r\nx-aws-ec2-metadata-token: {token}\r\n\r\n"
            ),
        );
        assert!(v2.starts_with("HTTP/1.1 200"), "{v2}");
        assert!(v2.ends_with(r#""time": "2024-05-01T10:02:00Z"}"#), "{v2}");

        imds.clear_spot_action();
        let gone = request(
            &imds,
            &format!(
                "GET {SPOT_ACTION_PATH} HTTP/1.1\r\nhost: x\r\nx-aws-ec2-metadata-token: {token}\r\n\r\n"
            ),
        );
        assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");
        let seen = imds.requests();
        assert_eq!(seen.tokens_issued, 1);
        assert_eq!(seen.rejected, [format!("GET {SPOT_ACTION_PATH}")]);
        assert_eq!(imds.gets(SPOT_ACTION_PATH), 2);
    }
}
