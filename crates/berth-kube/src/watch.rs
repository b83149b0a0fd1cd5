//! A stream of node changes from a kube-rs watcher, with a cache of berth [`Node`]s
//! beside it.
//!
//! The cache holds berth-core's plain [`Node`], converted as each object arrives, not
//! the API objects: at 5,000 nodes the objects, even cut down, held most of the
//! daemon's memory (see docs/benchmarks.md, "Cluster mode at 5,000 nodes"). With
//! [`Labels::Only`] it also keeps only the labels the decision reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError, RwLock};

use berth_core::domain::Node;
use futures::stream::BoxStream;
use futures::{future, StreamExt};
use k8s_openapi::api::core::v1 as core;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::{node_from_k8s, Error};

/// Nodes per page of the initial listing (kube-runtime's default is 500): a page is
/// held whole (the response text and every object in full) until its nodes are
/// converted.
pub const LIST_PAGE: u32 = 100;

/// Which nodes to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeScope {
    /// Every node (cluster mode).
    All,
    /// One node by name (node mode: `NODE_NAME`), selected with the field selector
    /// `metadata.name=<name>` so the API server sends nothing else.
    Named(String),
}

/// Which of a node's labels the cache and the stream keep.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Labels {
    /// Every label.
    #[default]
    All,
    /// Only these keys (the ones the decision reads, e.g. berth-core's
    /// `NodeTargetsSettings::label_keys`): an EKS node carries ~15 labels, most of
    /// which no rule looks at.
    Only(BTreeSet<String>),
}

impl Labels {
    fn keep(&self, node: &core::Node) -> Node {
        let mut node = node_from_k8s(node);
        if let Labels::Only(keys) = self {
            node.labels.retain(|k, _| keys.contains(k));
        }
        node
    }
}

/// One change seen by the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeChange {
    /// A node was added or changed.
    Applied(Node),
    /// A node was deleted; its last known state.
    Deleted(Node),
    /// The watch (re)started from a full listing: these are all the nodes in scope now.
    /// A node known before but missing here was deleted while the watch was down.
    Synced(Vec<Node>),
}

/// The watcher's cache of the nodes in scope, by name, always as fresh as the stream:
/// a change is in the cache before the stream yields it.
#[derive(Clone)]
pub struct NodeCache {
    nodes: Arc<RwLock<BTreeMap<String, Node>>>,
    ready: watch::Receiver<bool>,
}

impl NodeCache {
    /// Every cached node, by name.
    pub fn nodes(&self) -> Vec<Node> {
        self.read().values().cloned().collect()
    }

    /// One cached node by name.
    pub fn get(&self, name: &str) -> Option<Node> {
        self.read().get(name).cloned()
    }

    /// Waits until the first full listing has been received (the stream must be polled
    /// meanwhile). Fails only if the stream was dropped before that.
    pub async fn wait_until_ready(&self) -> Result<(), Error> {
        let mut ready = self.ready.clone();
        let outcome = ready.wait_for(|ready| *ready).await.map(|_| ());
        outcome
            .map_err(|_| Error::Invalid("the node watch stopped before its first listing".into()))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Node>> {
        self.nodes.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The stream's side of the cache.
struct CacheWriter {
    nodes: Arc<RwLock<BTreeMap<String, Node>>>,
    ready: watch::Sender<bool>,
}

impl CacheWriter {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Node>> {
        self.nodes.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts watching nodes. The stream must be polled for the cache to fill; it never
/// ends by itself: after an error (yielded as `Err`) the watcher backs off and
/// re-lists, which then shows as [`NodeChange::Synced`].
pub fn watch_nodes(
    client: Client,
    scope: NodeScope,
    labels: Labels,
) -> (NodeCache, BoxStream<'static, Result<NodeChange, Error>>) {
    let api: Api<core::Node> = Api::all(client);
    let config = match &scope {
        NodeScope::All => watcher::Config::default().page_size(LIST_PAGE),
        NodeScope::Named(name) => {
            watcher::Config::default().fields(&format!("metadata.name={name}"))
        }
    };
    let nodes = Arc::new(RwLock::new(BTreeMap::new()));
    let (ready_tx, ready) = watch::channel(false);
    let writer = CacheWriter {
        nodes: nodes.clone(),
        ready: ready_tx,
    };
    // The listing being received (a re-list replaces the cache only once complete,
    // as kube-runtime's reflector does).
    let changes = watcher(api, config)
        .default_backoff()
        .scan(None::<Vec<Node>>, move |listing, event| {
            let out = match event {
                Err(e) => Some(Err(Error::Watch(e))),
                Ok(watcher::Event::Apply(n)) => {
                    let node = labels.keep(&n);
                    writer.write().insert(node.name.clone(), node.clone());
                    Some(Ok(NodeChange::Applied(node)))
                }
                Ok(watcher::Event::Delete(n)) => {
                    let node = labels.keep(&n);
                    writer.write().remove(&node.name);
                    Some(Ok(NodeChange::Deleted(node)))
                }
                Ok(watcher::Event::Init) => {
                    *listing = Some(Vec::new());
                    None
                }
                Ok(watcher::Event::InitApply(n)) => {
                    listing.get_or_insert_with(Vec::new).push(labels.keep(&n));
                    None
                }
                Ok(watcher::Event::InitDone) => {
                    let nodes = listing.take().unwrap_or_default();
                    *writer.write() = nodes.iter().map(|n| (n.name.clone(), n.clone())).collect();
                    writer.ready.send_replace(true);
                    Some(Ok(NodeChange::Synced(nodes)))
                }
            };
            future::ready(Some(out))
        })
        .filter_map(future::ready)
        .boxed();
    (NodeCache { nodes, ready }, changes)
}
