//! Subresources: `status` (GET; PUT and PATCH change only `.status`, as a real API
//! server does for Jobs and Pods) and `pods/<name>/log` (what a kubelet would answer,
//! set by the test through [`super::FakeApiServer::set_pod_log`]).

use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::{Method, Response, StatusCode};
use serde_json::Value;

use super::store::{Failure, Key, Store};
use super::{failure, json, lock, ResponseBody};

pub(super) fn handle(
    method: &Method,
    subresource: &str,
    key: Key,
    body: &[u8],
    store: &Mutex<Store>,
) -> Response<ResponseBody> {
    let parse = || {
        serde_json::from_slice::<Value>(body)
            .map_err(|e| Failure::new(400, "BadRequest", format!("body is not JSON: {e}")))
    };
    let result = match (subresource, method) {
        ("status", &Method::GET) => lock(store).get(&key).cloned().ok_or_else(|| {
            Failure::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", key.resource, key.name),
            )
        }),
        ("status", &Method::PUT) => parse().and_then(|sent| lock(store).replace_status(key, &sent)),
        ("status", &Method::PATCH) => {
            parse().and_then(|patch| lock(store).patch_status(key, &patch))
        }
        ("log", &Method::GET) if key.resource == "pods" => {
            let store = lock(store);
            if store.get(&key).is_none() {
                return failure(&Failure::new(
                    404,
                    "NotFound",
                    format!("pods \"{}\" not found", key.name),
                ));
            }
            let namespace = key.namespace.clone().unwrap_or_default();
            let log = store
                .pod_logs
                .get(&(namespace, key.name.clone()))
                .cloned()
                .unwrap_or_default();
            let mut response = Response::new(Either::Left(Full::new(Bytes::from(log))));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain"),
            );
            return response;
        }
        _ => Err(Failure::new(
            405,
            "MethodNotAllowed",
            format!("{method} {subresource} of {}", key.resource),
        )),
    };
    match result {
        Ok(object) => json(StatusCode::OK, &object),
        Err(f) => failure(&f),
    }
}
