//! `Imds` against a small local metadata server that speaks IMDSv2 only: it hands out
//! session tokens on `PUT /latest/api/token` and answers `401` to every `GET` without
//! a valid token, so a passing test proves the adapter uses IMDSv2, never v1.
#![cfg(feature = "imds")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_aws::imds::{Imds, InstanceIdentity, SpotAction, SpotInterruption};
use berth_core::domain::InstanceId;
use berth_core::Error;

const TOKEN_PATH: &str = "/latest/api/token";
const IDENTITY_PATH: &str = "/latest/dynamic/instance-identity/document";
const SPOT_PATH: &str = "/latest/meta-data/spot/instance-action";

#[derive(Default)]
struct State {
    /// Path → (status, body) for authorised `GET`s; unknown paths are 404.
    routes: HashMap<String, (u16, String)>,
    issued: Vec<String>,
    token_requests: usize,
    authorised_gets: Vec<String>,
    rejected: Vec<String>,
}

/// An IMDSv2-only metadata server on a free loopback port.
struct MetadataServer {
    endpoint: String,
    state: Arc<Mutex<State>>,
}

impl MetadataServer {
    fn start() -> MetadataServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        MetadataServer { endpoint, state }
    }

    fn route(&self, path: &str, status: u16, body: &str) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_owned(), (status, body.to_owned()));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

/// Answers the requests of one connection, then closes it.
fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
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
    let mut state = state.lock().unwrap();
    if method == "PUT" && path == TOKEN_PATH {
        let Some(ttl) = headers.get("x-aws-ec2-metadata-token-ttl-seconds") else {
            return (400, String::new(), "missing TTL".into());
        };
        state.token_requests += 1;
        let token = format!("token-{}", state.token_requests);
        state.issued.push(token.clone());
        let header = format!("x-aws-ec2-metadata-token-ttl-seconds: {ttl}\r\n");
        return (200, header, token);
    }
    let authorised = headers
        .get("x-aws-ec2-metadata-token")
        .is_some_and(|token| state.issued.contains(token));
    if method != "GET" || !authorised {
        state.rejected.push(format!("{method} {path}"));
        return (401, String::new(), String::new());
    }
    state.authorised_gets.push(path.to_owned());
    match state.routes.get(path) {
        Some((status, body)) => (*status, String::new(), body.clone()),
        None => (404, String::new(), "Not Found".into()),
    }
}

const IDENTITY: &str = r#"{
  "accountId" : "123456789012",
  "architecture" : "x86_64",
  "availabilityZone" : "eu-west-1b",
  "imageId" : "ami-12c6146b",
  "instanceId" : "i-0abc123def4567890",
  "instanceType" : "m6gd.large",
  "pendingTime" : "2024-05-01T10:00:00Z",
  "privateIp" : "10.1.2.3",
  "region" : "eu-west-1",
  "version" : "2017-09-30"
}"#;

#[tokio::test]
async fn identity_is_read_with_an_imdsv2_session_token() {
    let server = MetadataServer::start();
    server.route(IDENTITY_PATH, 200, IDENTITY);

    let imds = Imds::with_endpoint(&server.endpoint).unwrap();
    let identity = imds.identity().await.unwrap();
    assert_eq!(
        identity,
        InstanceIdentity {
            instance_id: InstanceId::new("i-0abc123def4567890").unwrap(),
            region: "eu-west-1".into(),
            availability_zone: "eu-west-1b".into(),
            private_ip: "10.1.2.3".parse().unwrap(),
        }
    );

    // A second read reuses the cached token.
    imds.identity().await.unwrap();
    let state = server.state();
    assert_eq!(state.token_requests, 1);
    assert_eq!(state.authorised_gets, [IDENTITY_PATH, IDENTITY_PATH]);
    assert!(state.rejected.is_empty(), "{:?}", state.rejected);
}

#[test]
fn the_test_server_refuses_imdsv1() {
    // Guards the test above: an IMDSv1 request (no token) is refused by the server.
    let server = MetadataServer::start();
    server.route(IDENTITY_PATH, 200, IDENTITY);
    let address = server.endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {IDENTITY_PATH} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert_eq!(server.state().rejected, [format!("GET {IDENTITY_PATH}")]);
}

#[tokio::test]
async fn no_spot_interruption_is_none() {
    let server = MetadataServer::start();
    let imds = Imds::with_endpoint(&server.endpoint).unwrap();
    assert_eq!(imds.spot_interruption().await.unwrap(), None);
    let state = server.state();
    assert_eq!(state.authorised_gets, [SPOT_PATH], "asked, and got a 404");
    assert!(state.rejected.is_empty());
}

#[tokio::test]
async fn a_scheduled_spot_interruption_is_reported() {
    let server = MetadataServer::start();
    server.route(
        SPOT_PATH,
        200,
        r#"{"action": "terminate", "time": "2024-05-01T10:02:00Z"}"#,
    );
    let imds = Imds::with_endpoint(&server.endpoint).unwrap();
    let notice = imds.spot_interruption().await.unwrap();
    assert_eq!(
        notice,
        Some(SpotInterruption {
            action: SpotAction::Terminate,
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_557_720),
        })
    );
}

#[tokio::test]
async fn a_missing_identity_document_is_not_found_and_garbage_is_a_provider_error() {
    let server = MetadataServer::start();
    let imds = Imds::with_endpoint(&server.endpoint).unwrap();
    let err = imds.identity().await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    server.route(IDENTITY_PATH, 200, "not json");
    let err = imds.identity().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Provider {
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unreachable_metadata_service_is_retryable() {
    // A port nobody listens on: bind one, then free it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let imds = Imds::with_endpoint(&format!("http://127.0.0.1:{port}")).unwrap();
    let err = imds.identity().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[test]
fn a_bad_endpoint_is_invalid() {
    let err = Imds::with_endpoint("not a url").unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
}
