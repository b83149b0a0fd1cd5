//! A scripted API server over `tower_test::mock::pair`: each step checks the method
//! and path of the next request the client makes, then answers it.

#![allow(dead_code, unreachable_pub)]

use http::{Request, Response};
use kube::client::Body;
use serde_json::Value;

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// A kube::Client whose every request goes to the returned handle.
pub fn mock_client() -> (kube::Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

/// A request the client made: method, path with query, JSON body (Null if none).
#[derive(Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: Value,
}

/// Waits for the next request, asserts `method path` (path without query), answers
/// with `status` and `answer`, and returns what was sent.
pub async fn expect(
    handle: &mut Handle,
    method: &str,
    path: &str,
    status: u16,
    answer: Value,
) -> Seen {
    let (request, respond) =
        tokio::time::timeout(std::time::Duration::from_secs(10), handle.next_request())
            .await
            .unwrap_or_else(|_| panic!("no request came; expected {method} {path}"))
            .unwrap_or_else(|| panic!("client gone; expected {method} {path}"));
    let seen_method = request.method().to_string();
    let seen_path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .expect("request body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("request body is JSON")
    };
    assert_eq!(
        (
            seen_method.as_str(),
            seen_path.split('?').next().unwrap_or_default()
        ),
        (method, path),
        "unexpected request; body {body}"
    );
    respond.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(answer.to_string().into_bytes()))
            .expect("response"),
    );
    Seen {
        method: seen_method,
        path: seen_path,
        body,
    }
}

/// A Kubernetes `Status` failure body.
pub fn status(code: u16, reason: &str) -> Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{reason} (test)"), "reason": reason, "code": code
    })
}
