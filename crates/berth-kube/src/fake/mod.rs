//! A loopback Kubernetes API server for tests (feature `test-util`).
//!
//! It speaks the real protocol to a real `kube::Client` for any resource path
//! (`/api/v1/...`, `/apis/<group>/<version>/...`, namespaced or not): list with a
//! `resourceVersion` (paginated by `limit`/`continue`), `?watch=true` as chunked JSON lines (resuming after a given
//! `resourceVersion`), get, create (`generateName` too), replace with optimistic
//! concurrency (a stale `resourceVersion` gets 409), merge patch, delete. Field
//! selectors on `metadata.name`/`metadata.namespace` and equality/existence label
//! selectors are honoured; anything else is refused with 400 so a test cannot pass by
//! accident. [`FakeApiServer::inject`] makes it refuse chosen requests ([`Fault`]);
//! [`FakeApiServer::resource_requests`] lists what was asked, as RBAC authorizes it.
//! It runs on its own thread and runtime: it outlives a test's runtime and
//! can serve a spawned binary through [`FakeApiServer::write_kubeconfig`].

mod access;
mod fault;
mod kinds;
mod store;
mod subresource;

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::events::v1 as events;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use access::ResourceRequest;
pub use fault::Fault;
use store::{Failure, Key, Selector, Store};

/// The fake API server. Dropping it stops it (open watches end).
pub struct FakeApiServer {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    stop: Option<oneshot::Sender<()>>,
}

impl FakeApiServer {
    /// Starts the server on a free loopback port, on its own thread and runtime.
    pub fn start() -> io::Result<Self> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Mutex::new(Store::default()));
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let served = store.clone();
        std::thread::Builder::new()
            .name("fake-kube-api".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "fake API server cannot listen");
                            return;
                        }
                    };
                    tokio::select! {
                        () = serve(listener, served) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(FakeApiServer {
            addr,
            store,
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port>/as/<client>`: this server, with the requests sent here
    /// recorded as `client`'s ([`FakeApiServer::resource_requests_of`]). It stands for
    /// the credentials that tell a real API server's authorizer who asks: give each
    /// process under test its own, the way each runs as its own ServiceAccount.
    pub fn url_as(&self, client: &str) -> String {
        format!("{}/as/{client}", self.url())
    }

    /// [`FakeApiServer::kubeconfig`] for [`FakeApiServer::url_as`]`(client)`.
    pub fn kubeconfig_as(&self, client: &str) -> String {
        kubeconfig(&self.url_as(client))
    }

    /// A `kube::Config` for this server, default namespace `default`.
    pub fn config(&self) -> kube::Config {
        let mut config = kube::Config::new(self.url().parse().unwrap_or_default());
        config.default_namespace = "default".into();
        config
    }

    /// A client of this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config())
            .unwrap_or_else(|e| unreachable!("a plain-HTTP kube config always builds: {e}"))
    }

    /// A kubeconfig (JSON, which kubeconfig readers accept as YAML) pointing here.
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.url())
    }

    /// Writes [`FakeApiServer::kubeconfig`] to `path` (for a binary's `KUBECONFIG`).
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Adds a node, or replaces it if one has that name (watchers see ADDED or MODIFIED).
    pub fn add_node(&self, node: core::Node) {
        self.put(&node);
    }

    /// Replaces a node (same as [`FakeApiServer::add_node`]; named for the test's intent).
    pub fn update_node(&self, node: core::Node) {
        self.put(&node);
    }

    /// Deletes a node; `false` if there was none.
    pub fn delete_node(&self, name: &str) -> bool {
        self.delete::<core::Node>(None, name)
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<core::Node> {
        self.get(None, name)
    }

    /// Every node.
    pub fn nodes(&self) -> Vec<core::Node> {
        self.list(None)
    }

    /// Every Event (`events.k8s.io/v1`) posted, in every namespace.
    pub fn events(&self) -> Vec<events::Event> {
        self.list(None)
    }

    /// Creates or replaces any object (unconditionally), stamping its metadata.
    pub fn put<K>(&self, object: &K)
    where
        K: kube::Resource<DynamicType = ()> + Serialize,
    {
        let value = serde_json::to_value(object).unwrap_or_default();
        let key = key_of::<K>(
            object.meta().namespace.as_deref(),
            object.meta().name.as_deref().unwrap_or_default(),
        );
        let mut store = self.lock();
        let result = if store.get(&key).is_some() {
            let mut value = value;
            if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
            store.replace(key, value)
        } else {
            store.create(key, value)
        };
        if let Err(e) = result {
            tracing::error!(message = %e.message, "fake API server refused a put");
        }
    }

    /// An object by namespace (None: cluster-scoped) and name.
    pub fn get<K>(&self, namespace: Option<&str>, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let value = self.lock().get(&key_of::<K>(namespace, name)).cloned()?;
        serde_json::from_value(value).ok()
    }

    /// Every object of a kind, in one namespace or (None) in all.
    pub fn list<K>(&self, namespace: Option<&str>) -> Vec<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let key = key_of::<K>(namespace, "");
        let selector = Selector {
            prefix: key.prefix,
            resource: key.resource,
            namespace: namespace.map(str::to_owned),
            ..Selector::default()
        };
        self.lock()
            .list(&selector)
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect()
    }

    /// Deletes an object; `false` if there was none.
    pub fn delete<K>(&self, namespace: Option<&str>, name: &str) -> bool
    where
        K: kube::Resource<DynamicType = ()>,
    {
        self.lock().delete(&key_of::<K>(namespace, name)).is_ok()
    }

    /// Ends every open watch, as a dropped connection would; clients re-watch from
    /// their last resourceVersion.
    pub fn close_watches(&self) {
        self.lock().close_watches();
    }

    /// Compacts the change history, as etcd does: a watch resuming from a
    /// resourceVersion older than now gets 410 Gone and must list again. With
    /// [`FakeApiServer::close_watches`] this simulates a client that was away long
    /// enough to miss changes (e.g. a deletion) it can only notice by re-listing.
    pub fn compact(&self) {
        self.lock().compact();
    }

    /// How many watches are open now.
    pub fn open_watches(&self) -> usize {
        self.lock().open_watches()
    }

    /// Waits (up to 10 s) until at least `count` watches are open; `false` on timeout.
    pub async fn wait_for_watches(&self, count: usize) -> bool {
        for _ in 0..1000 {
            if self.open_watches() >= count {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    }

    /// Sets what `GET .../pods/<name>/log` answers for a pod (a kubelet's job).
    pub fn set_pod_log(&self, namespace: &str, pod: &str, log: &str) {
        self.lock()
            .pod_logs
            .insert((namespace.to_owned(), pod.to_owned()), log.to_owned());
    }

    /// Every request received so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.lock()
            .requests
            .iter()
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// Every resource request received so far, as RBAC authorizes it (verb, group,
    /// resource, namespace, name): what a role must allow for the client to work.
    pub fn resource_requests(&self) -> Vec<ResourceRequest> {
        self.lock()
            .requests
            .iter()
            .filter_map(|(_, line)| ResourceRequest::of(line))
            .collect()
    }

    /// [`FakeApiServer::resource_requests`] of one client only: those sent to
    /// [`FakeApiServer::url_as`]`(client)`.
    pub fn resource_requests_of(&self, client: &str) -> Vec<ResourceRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|(from, _)| from.as_deref() == Some(client))
            .filter_map(|(_, line)| ResourceRequest::of(line))
            .collect()
    }

    /// Installs a fault: matching requests are refused until it is used up or cleared.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.install(fault);
    }

    /// Removes every fault; later requests are served.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The requests faults refused so far, as `METHOD path`.
    pub fn refused(&self) -> Vec<String> {
        self.lock().faults.refused.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A ready node named `name` whose providerID is `aws:///eu-west-1a/<instance_id>`,
/// with these labels.
pub fn ready_node(name: &str, instance_id: &str, labels: &[(&str, &str)]) -> core::Node {
    let value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<serde_json::Map<_, _>>(),
        },
        "spec": {"providerID": format!("aws:///eu-west-1a/{instance_id}")},
        "status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastTransitionTime": "2024-05-01T10:00:00Z", "lastHeartbeatTime": "2024-05-01T10:00:00Z"
        }]}
    });
    serde_json::from_value(value).unwrap_or_default()
}

/// A list, paginated as the real server does with `limit` and `continue`: every page
/// carries the first page's resourceVersion (the watch that follows resumes from there,
/// replaying what changed meanwhile), and a token older than the last compaction gets
/// 410 Gone. Returns the version, the items and the next page's token.
fn list(
    store: &Store,
    selector: &Selector,
    limit: Option<usize>,
    token: Option<&str>,
) -> Result<(u64, Vec<Value>, Option<String>), Failure> {
    let Some(limit) = limit else {
        return Ok((store.version(), store.list(selector), None));
    };
    let (version, after) = match token {
        None => (store.version(), None),
        Some(token) => {
            let invalid = || {
                Failure::new(
                    400,
                    "BadRequest",
                    format!("invalid continue token {token:?}"),
                )
            };
            let mut parts = token.splitn(3, '/');
            let version: u64 = parts
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(invalid)?;
            let namespace = parts.next().ok_or_else(invalid)?;
            let name = parts.next().ok_or_else(invalid)?;
            if version < store.compacted() {
                return Err(Failure::new(
                    410,
                    "Expired",
                    "the provided continue parameter is too old",
                ));
            }
            let namespace = (!namespace.is_empty()).then(|| namespace.to_owned());
            (version, Some((namespace, name.to_owned())))
        }
    };
    let (items, cursor) = store.list_page(selector, limit, after.as_ref());
    let next = cursor.map(|(ns, name)| format!("{version}/{}/{name}", ns.unwrap_or_default()));
    Ok((version, items, next))
}

fn key_of<K: kube::Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> Key {
    let group = K::group(&());
    let version = K::version(&());
    let prefix = if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    };
    Key {
        prefix,
        resource: K::plural(&()).into_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    }
}

type ResponseBody = Either<Full<Bytes>, WatchBody>;

/// A watch response: event lines as they come, ending when the watch is closed.
pub struct WatchBody(mpsc::UnboundedReceiver<Bytes>);

impl Body for WatchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|l| Ok(Frame::data(l))))
    }
}

async fn serve(listener: tokio::net::TcpListener, store: Arc<Mutex<Store>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let store = store.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let store = store.clone();
                async move { Ok::<_, Infallible>(handle(req, &store).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A parsed request path.
struct Route {
    prefix: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    /// `status` or `log` (`.../pods/<name>/log`).
    subresource: Option<String>,
}

fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => (format!("api/{version}"), rest),
        ["apis", group, version, rest @ ..] => (format!("apis/{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, resource, name, sub) = match rest {
        ["namespaces", ns, resource] => (Some(*ns), *resource, None, None),
        ["namespaces", ns, resource, name] => (Some(*ns), *resource, Some(*name), None),
        ["namespaces", ns, resource, name, sub] => (Some(*ns), *resource, Some(*name), Some(*sub)),
        [resource] => (None, *resource, None, None),
        [resource, name] => (None, *resource, Some(*name), None),
        [resource, name, sub] => (None, *resource, Some(*name), Some(*sub)),
        _ => return None,
    };
    Some(Route {
        prefix,
        resource: resource.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        subresource: sub.map(str::to_owned),
    })
}

/// A kubeconfig (JSON) for the server at `server`, default namespace `default`.
fn kubeconfig(server: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "fake", "user": {}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
        "current-context": "fake",
    })
    .to_string()
}

/// The client a path names (`/as/<client>/api/...`, see [`FakeApiServer::url_as`]) and
/// the path the server serves.
fn client_of(path: &str) -> (Option<String>, String) {
    let named = path.strip_prefix("/as/").and_then(|rest| {
        let (client, rest) = rest.split_once('/')?;
        (!client.is_empty()).then(|| (Some(decode(client)), format!("/{rest}")))
    });
    named.unwrap_or_else(|| (None, path.to_owned()))
}

async fn handle(req: Request<Incoming>, store: &Mutex<Store>) -> Response<ResponseBody> {
    let method = req.method().clone();
    let (client, path) = client_of(req.uri().path());
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let line = match req.uri().query() {
        Some(q) => format!("{method} {path}?{q}"),
        None => format!("{method} {path}"),
    };
    lock(store).requests.push((client, line));
    if let Some(f) = lock(store).faults.check(method.as_str(), &path) {
        return failure(&f);
    }
    let Some(route) = route(&path) else {
        return failure(&Failure::new(
            404,
            "NotFound",
            format!("no route for {path}"),
        ));
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return failure(&Failure::new(400, "BadRequest", e.to_string())),
    };
    let parse_body = || {
        serde_json::from_slice::<Value>(&body)
            .map_err(|e| Failure::new(400, "BadRequest", format!("body is not JSON: {e}")))
    };
    let key = |name: &str| Key {
        prefix: route.prefix.clone(),
        resource: route.resource.clone(),
        namespace: route.namespace.clone(),
        name: name.to_owned(),
    };
    if let (Some(sub), Some(name)) = (&route.subresource, &route.name) {
        return subresource::handle(&method, sub, key(name), &body, store);
    }
    let result = match (&method, &route.name) {
        (&Method::GET, None) => {
            let selector = match selector(&route, param("fieldSelector"), param("labelSelector")) {
                Ok(s) => s,
                Err(f) => return failure(&f),
            };
            if matches!(param("watch"), Some("true" | "1")) {
                let since = param("resourceVersion").and_then(|v| v.parse().ok());
                let rx = lock(store).watch(selector, since);
                return Response::new(Either::Right(WatchBody(rx)));
            }
            let store = lock(store);
            let (api_version, kind) = kinds::list_type(&route.prefix, &route.resource);
            let limit = param("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| *l > 0);
            let token = param("continue").filter(|t| !t.is_empty());
            list(&store, &selector, limit, token).map(|(version, items, next)| {
                let mut metadata = serde_json::json!({"resourceVersion": version.to_string()});
                if let Some(next) = next {
                    metadata["continue"] = next.into();
                }
                serde_json::json!({
                    "apiVersion": api_version,
                    "kind": kind,
                    "metadata": metadata,
                    "items": items,
                })
            })
        }
        (&Method::GET, Some(name)) => lock(store).get(&key(name)).cloned().ok_or_else(|| {
            Failure::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", route.resource),
            )
        }),
        (&Method::POST, None) => parse_body().and_then(|object| {
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            lock(store).create(key(&name), object)
        }),
        (&Method::PUT, Some(name)) => {
            parse_body().and_then(|object| lock(store).replace(key(name), object))
        }
        (&Method::PATCH, Some(name)) => {
            parse_body().and_then(|patch| lock(store).patch(key(name), &patch))
        }
        (&Method::DELETE, Some(name)) => lock(store).delete(&key(name)),
        _ => Err(Failure::new(
            405,
            "MethodNotAllowed",
            format!("{method} {path}"),
        )),
    };
    match result {
        Ok(object) => {
            let status = if method == Method::POST {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            json(status, &object)
        }
        Err(f) => failure(&f),
    }
}

/// Field selectors on `metadata.name`/`metadata.namespace`; label selectors with
/// `k=v`, `k==v`, `k!=v`, `k`, `!k`. Anything else is a 400.
fn selector(
    route: &Route,
    fields: Option<&str>,
    labels: Option<&str>,
) -> Result<Selector, Failure> {
    let mut selector = Selector {
        prefix: route.prefix.clone(),
        resource: route.resource.clone(),
        namespace: route.namespace.clone(),
        ..Selector::default()
    };
    for term in fields
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
    {
        let (field, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .ok_or_else(|| {
                Failure::new(
                    400,
                    "BadRequest",
                    format!("unsupported field selector {term:?}"),
                )
            })?;
        match field {
            "metadata.name" => selector.name = Some(value.to_owned()),
            "metadata.namespace" => selector.namespace = Some(value.to_owned()),
            _ => {
                return Err(Failure::new(
                    400,
                    "BadRequest",
                    format!("the fake API server does not support field selector {term:?}"),
                ))
            }
        }
    }
    for term in labels
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
    {
        if term.contains(" in ") || term.contains(" notin ") || term.contains('(') {
            return Err(Failure::new(
                400,
                "BadRequest",
                format!("the fake API server does not support label selector {term:?}"),
            ));
        }
        if let Some((k, v)) = term.split_once("!=") {
            selector.labels_not.push((k.to_owned(), Some(v.to_owned())));
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            selector.labels.push((k.to_owned(), Some(v.to_owned())));
        } else if let Some(k) = term.strip_prefix('!') {
            selector.labels_not.push((k.to_owned(), None));
        } else {
            selector.labels.push((term.to_owned(), None));
        }
    }
    Ok(selector)
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(value.to_string()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn failure(f: &Failure) -> Response<ResponseBody> {
    json(
        StatusCode::from_u16(f.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &f.status(),
    )
}

fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_query_decoding() {
        let r = route("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/berth").unwrap();
        assert_eq!(r.prefix, "apis/coordination.k8s.io/v1");
        assert_eq!(r.resource, "leases");
        assert_eq!(r.namespace.as_deref(), Some("kube-system"));
        assert_eq!(r.name.as_deref(), Some("berth"));
        let r = route("/api/v1/nodes").unwrap();
        assert_eq!(
            (r.resource.as_str(), r.namespace, r.name),
            ("nodes", None, None)
        );
        assert!(route("/version").is_none());
        assert_eq!(decode("metadata.name%3Dn-1"), "metadata.name=n-1");
        assert_eq!(decode("a%2"), "a%2");
    }

    #[test]
    fn a_client_is_named_by_its_path_prefix() {
        assert_eq!(
            client_of("/as/runner/api/v1/namespaces/ns/secrets"),
            (
                Some("runner".to_owned()),
                "/api/v1/namespaces/ns/secrets".to_owned()
            )
        );
        assert_eq!(
            client_of("/api/v1/nodes"),
            (None, "/api/v1/nodes".to_owned())
        );
        assert_eq!(client_of("/as//api/v1"), (None, "/as//api/v1".to_owned()));
    }
}
