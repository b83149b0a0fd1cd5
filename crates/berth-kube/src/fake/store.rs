//! The fake API server's object store: every object under its resource path, a global
//! resourceVersion counter, the history of changes for watches, and live watchers.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

/// Where an object lives: `api/v1` or `apis/<group>/<version>`, the plural resource,
/// the namespace (None: cluster-scoped) and the name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) prefix: String,
    pub(crate) resource: String,
    pub(crate) namespace: Option<String>,
    pub(crate) name: String,
}

/// Which objects a list or watch wants.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    pub(crate) prefix: String,
    pub(crate) resource: String,
    /// `None`: every namespace (and cluster-scoped objects).
    pub(crate) namespace: Option<String>,
    /// `metadata.name=` from the field selector.
    pub(crate) name: Option<String>,
    /// Label requirements: (key, Some(value)) equality, (key, None) existence;
    /// negated ones in `labels_absent`.
    pub(crate) labels: Vec<(String, Option<String>)>,
    pub(crate) labels_not: Vec<(String, Option<String>)>,
}

impl Selector {
    pub(crate) fn matches(&self, key: &Key, object: &Value) -> bool {
        if key.prefix != self.prefix || key.resource != self.resource {
            return false;
        }
        if self.namespace.is_some() && key.namespace != self.namespace {
            return false;
        }
        if self.name.as_ref().is_some_and(|n| n != &key.name) {
            return false;
        }
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let has = |(k, v): &(String, Option<String>)| {
            let actual = labels.and_then(|l| l.get(k)).and_then(Value::as_str);
            match v {
                Some(v) => actual == Some(v.as_str()),
                None => actual.is_some(),
            }
        };
        self.labels.iter().all(has) && !self.labels_not.iter().any(has)
    }
}

/// A failure answered as a Kubernetes `Status`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            code,
            reason,
            message: message.into(),
        }
    }

    pub(crate) fn status(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code
        })
    }
}

struct Watcher {
    selector: Selector,
    tx: mpsc::UnboundedSender<Bytes>,
}

/// One recorded change.
struct Change {
    version: u64,
    kind: &'static str,
    key: Key,
    object: Value,
}

#[derive(Default)]
pub(crate) struct Store {
    objects: BTreeMap<Key, Value>,
    version: u64,
    history: Vec<Change>,
    watchers: Vec<Watcher>,
    next_uid: u64,
    /// Watches from before this version get 410 Gone (history compacted).
    compacted: u64,
    /// Every request line, `METHOD path?query`, for tests to inspect, with the client
    /// that sent it (the `<client>` of a [`super::FakeApiServer::url_as`] URL).
    pub(crate) requests: Vec<(Option<String>, String)>,
    /// `pods/<name>/log` answers, by (namespace, pod).
    pub(crate) pod_logs: BTreeMap<(String, String), String>,
    /// Injected faults ([`super::FakeApiServer::inject`]).
    pub(crate) faults: super::fault::Faults,
}

impl Store {
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    pub(crate) fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    pub(crate) fn list(&self, selector: &Selector) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, v)| selector.matches(k, v))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// One page of a list: at most `limit` matching objects after the `after`
    /// (namespace, name), in key order, and the last one's (namespace, name) if more
    /// follow. A change between pages shows in the next page if it lands after the
    /// cursor; the watch that follows the list replays it either way.
    pub(crate) fn list_page(
        &self,
        selector: &Selector,
        limit: usize,
        after: Option<&(Option<String>, String)>,
    ) -> (Vec<Value>, Option<(Option<String>, String)>) {
        let mut page: Vec<(&Key, &Value)> = self
            .objects
            .iter()
            .filter(|(k, v)| selector.matches(k, v))
            .filter(|(k, _)| after.is_none_or(|(ns, name)| (&k.namespace, &k.name) > (ns, name)))
            .take(limit.saturating_add(1))
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        let cursor = more
            .then(|| {
                page.last()
                    .map(|(k, _)| (k.namespace.clone(), k.name.clone()))
            })
            .flatten();
        (page.into_iter().map(|(_, v)| v.clone()).collect(), cursor)
    }

    /// Below this resourceVersion, history is forgotten ([`Store::compact`]).
    pub(crate) fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Creates an object; `generateName` is honoured.
    pub(crate) fn create(&mut self, mut key: Key, mut object: Value) -> Result<Value, Failure> {
        if key.name.is_empty() {
            let generate = object
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .ok_or_else(|| Failure::new(422, "Invalid", "metadata.name: Required value"))?;
            key.name = format!("{generate}{:05x}", fastrand::u32(..0xfffff));
        }
        if self.objects.contains_key(&key) {
            return Err(Failure::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", key.resource, key.name),
            ));
        }
        self.next_uid += 1;
        let meta = metadata(&mut object);
        meta.insert("name".into(), json!(key.name));
        meta.insert(
            "uid".into(),
            json!(format!("fake-uid-{:08}", self.next_uid)),
        );
        meta.insert(
            "creationTimestamp".into(),
            json!(k8s_openapi::jiff::Timestamp::now()
                .round(k8s_openapi::jiff::Unit::Second)
                .map(|t| t.to_string())
                .unwrap_or_default()),
        );
        Ok(self.write("ADDED", key, object))
    }

    /// Replaces an object; a `resourceVersion` in the body must match (optimistic
    /// concurrency), none means unconditional.
    pub(crate) fn replace(&mut self, key: Key, mut object: Value) -> Result<Value, Failure> {
        let Some(current) = self.objects.get(&key) else {
            return Err(not_found(&key));
        };
        let current_version = current.pointer("/metadata/resourceVersion").cloned();
        let sent = object.pointer("/metadata/resourceVersion").cloned();
        if sent.as_ref().is_some_and(|v| v != &Value::Null) && sent != current_version {
            return Err(Failure::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; \
                     please apply your changes to the latest version and try again",
                    key.resource, key.name
                ),
            ));
        }
        // Identity fields stay the server's.
        for field in ["uid", "creationTimestamp"] {
            if let Some(v) = current.pointer(&format!("/metadata/{field}")).cloned() {
                metadata(&mut object).insert(field.into(), v);
            }
        }
        Ok(self.write("MODIFIED", key, object))
    }

    /// JSON merge patch (RFC 7386), also used for strategic-merge and apply patches.
    pub(crate) fn patch(&mut self, key: Key, patch: &Value) -> Result<Value, Failure> {
        let Some(current) = self.objects.get(&key) else {
            return Err(not_found(&key));
        };
        let mut object = current.clone();
        if let Some(sent) = patch.pointer("/metadata/resourceVersion") {
            if Some(sent) != current.pointer("/metadata/resourceVersion") {
                return Err(Failure::new(
                    409,
                    "Conflict",
                    "the object has been modified",
                ));
            }
        }
        merge(&mut object, patch);
        Ok(self.write("MODIFIED", key, object))
    }

    pub(crate) fn delete(&mut self, key: &Key) -> Result<Value, Failure> {
        let Some(object) = self.objects.remove(key) else {
            return Err(not_found(key));
        };
        self.version += 1;
        let mut object = object;
        metadata(&mut object).insert("resourceVersion".into(), json!(self.version.to_string()));
        self.record("DELETED", key.clone(), object.clone());
        Ok(object)
    }

    /// Registers a watcher and returns the events it must see first: every change
    /// after `since`, or with no usable `since`, every matching object as ADDED.
    pub(crate) fn watch(
        &mut self,
        selector: Selector,
        since: Option<u64>,
    ) -> mpsc::UnboundedReceiver<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        if since.is_some_and(|s| s > 0 && s < self.compacted) {
            // As etcd compaction does: the client must list again.
            let gone = Failure::new(410, "Expired", "too old resource version");
            let line = json!({"type": "ERROR", "object": gone.status()}).to_string() + "\n";
            let _ = tx.send(Bytes::from(line));
            return rx;
        }
        let backlog: Vec<Bytes> = match since {
            Some(since) if since > 0 => self
                .history
                .iter()
                .filter(|c| c.version > since && selector.matches(&c.key, &c.object))
                .map(|c| event_line(c.kind, &c.object))
                .collect(),
            _ => self
                .objects
                .iter()
                .filter(|(k, v)| selector.matches(k, v))
                .map(|(_, v)| event_line("ADDED", v))
                .collect(),
        };
        for line in backlog {
            let _ = tx.send(line);
        }
        self.watchers.push(Watcher { selector, tx });
        rx
    }

    /// How many watches are open (a closed client connection counts until the next write).
    pub(crate) fn open_watches(&self) -> usize {
        self.watchers.iter().filter(|w| !w.tx.is_closed()).count()
    }

    /// Forgets the history up to now: a watch resuming from an older resourceVersion
    /// gets 410 Gone and must list again.
    pub(crate) fn compact(&mut self) {
        self.compacted = self.version + 1;
        self.history.clear();
    }

    /// Ends every open watch (as a dropped connection would); clients re-watch.
    pub(crate) fn close_watches(&mut self) {
        self.watchers.clear();
    }

    /// Replaces only the object's `status` (the `status` subresource): the rest of
    /// the object stays as stored. A `resourceVersion` in `sent` must match.
    pub(crate) fn replace_status(&mut self, key: Key, sent: &Value) -> Result<Value, Failure> {
        let Some(current) = self.objects.get(&key) else {
            return Err(not_found(&key));
        };
        if let Some(version) = sent
            .pointer("/metadata/resourceVersion")
            .filter(|v| !v.is_null())
        {
            if Some(version) != current.pointer("/metadata/resourceVersion") {
                return Err(Failure::new(
                    409,
                    "Conflict",
                    "the object has been modified",
                ));
            }
        }
        let mut object = current.clone();
        let status = sent.get("status").cloned().unwrap_or(Value::Null);
        ensure_object(&mut object).insert("status".into(), status);
        Ok(self.write("MODIFIED", key, object))
    }

    /// Merge-patches only the object's `status`.
    pub(crate) fn patch_status(&mut self, key: Key, patch: &Value) -> Result<Value, Failure> {
        let Some(current) = self.objects.get(&key) else {
            return Err(not_found(&key));
        };
        let mut object = current.clone();
        if let Some(status) = patch.get("status") {
            merge(&mut object, &json!({ "status": status }));
        }
        Ok(self.write("MODIFIED", key, object))
    }

    fn write(&mut self, kind: &'static str, key: Key, mut object: Value) -> Value {
        self.version += 1;
        super::kinds::stamp(&key.prefix, &key.resource, &mut object);
        let meta = metadata(&mut object);
        meta.insert("resourceVersion".into(), json!(self.version.to_string()));
        meta.insert("name".into(), json!(key.name));
        match &key.namespace {
            Some(ns) => meta.insert("namespace".into(), json!(ns)),
            None => meta.remove("namespace"),
        };
        self.objects.insert(key.clone(), object.clone());
        self.record(kind, key, object.clone());
        object
    }

    fn record(&mut self, kind: &'static str, key: Key, object: Value) {
        let line = event_line(kind, &object);
        self.watchers
            .retain(|w| !w.selector.matches(&key, &object) || w.tx.send(line.clone()).is_ok());
        self.history.push(Change {
            version: self.version,
            kind,
            key,
            object,
        });
    }
}

fn not_found(key: &Key) -> Failure {
    Failure::new(
        404,
        "NotFound",
        format!("{} \"{}\" not found", key.resource, key.name),
    )
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn metadata(object: &mut Value) -> &mut Map<String, Value> {
    let obj = ensure_object(object);
    ensure_object(obj.entry("metadata").or_insert(Value::Null))
}

fn ensure_object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("the value was made an object just above"),
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Value::Object(obj) = target {
                for (k, v) in fields {
                    if v.is_null() {
                        obj.remove(k);
                    } else {
                        merge(obj.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key {
            prefix: "api/v1".into(),
            resource: "configmaps".into(),
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    #[test]
    fn replace_enforces_the_resource_version() {
        let mut store = Store::default();
        let created = store.create(key("a"), json!({"data": {"x": "1"}})).unwrap();
        let rv = created["metadata"]["resourceVersion"].clone();
        let mut stale = created.clone();
        store
            .replace(
                key("a"),
                json!({"metadata": {"resourceVersion": rv}, "data": {"x": "2"}}),
            )
            .unwrap();
        stale["data"]["x"] = json!("3");
        let err = store.replace(key("a"), stale).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(store.get(&key("a")).unwrap()["data"]["x"], "2");
        assert_eq!(store.create(key("a"), json!({})).unwrap_err().code, 409);
    }

    #[test]
    fn list_pages_follow_the_cursor() {
        let mut store = Store::default();
        for name in ["a", "b", "c", "d", "e"] {
            store.create(key(name), json!({})).unwrap();
        }
        let selector = Selector {
            prefix: "api/v1".into(),
            resource: "configmaps".into(),
            ..Selector::default()
        };
        let names = |page: &[Value]| -> Vec<String> {
            page.iter()
                .map(|v| v["metadata"]["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let (first, cursor) = store.list_page(&selector, 2, None);
        assert_eq!(names(&first), ["a", "b"]);
        let cursor = cursor.unwrap();
        store.delete(&key("a")).unwrap();
        let (second, cursor) = store.list_page(&selector, 2, Some(&cursor));
        assert_eq!(names(&second), ["c", "d"]);
        let (last, cursor) = store.list_page(&selector, 2, cursor.as_ref());
        assert_eq!(names(&last), ["e"]);
        assert_eq!(cursor, None);
        let (all, cursor) = store.list_page(&selector, 10, None);
        assert_eq!((names(&all).len(), cursor), (4, None));
    }

    #[test]
    fn merge_patch_and_watch_backlog() {
        let mut store = Store::default();
        store
            .create(key("a"), json!({"data": {"x": "1", "y": "2"}}))
            .unwrap();
        let since = store.version();
        store
            .patch(key("a"), &json!({"data": {"x": null, "z": "3"}}))
            .unwrap();
        assert_eq!(
            store.get(&key("a")).unwrap()["data"],
            json!({"y": "2", "z": "3"})
        );
        let selector = Selector {
            prefix: "api/v1".into(),
            resource: "configmaps".into(),
            ..Selector::default()
        };
        let mut rx = store.watch(selector, Some(since));
        let line = rx.try_recv().unwrap();
        assert!(std::str::from_utf8(&line).unwrap().contains("\"MODIFIED\""));
        assert!(rx.try_recv().is_err());
        store.delete(&key("a")).unwrap();
        assert!(std::str::from_utf8(&rx.try_recv().unwrap())
            .unwrap()
            .contains("\"DELETED\""));
    }
}
