//! A stream of node changes from a kube-rs watcher, with a reflector cache beside it.
//!
//! Every node is cut down by [`slim_node`] as it arrives, before the cache and the
//! stream see it: at 5,000 nodes the whole objects would hold most of the daemon's
//! memory (see docs/benchmarks.md, "Cluster mode at 5,000 nodes").

use std::sync::Arc;

use berth_core::domain::Node;
use futures::stream::BoxStream;
use futures::{future, StreamExt};
use k8s_openapi::api::core::v1 as core;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};

use crate::{node_from_k8s, slim_node, Error};

/// Nodes per page of the initial listing (kube-runtime's default is 500).
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

/// The watcher's cache of the nodes in scope, always as fresh as the stream.
#[derive(Clone)]
pub struct NodeCache {
    store: Store<core::Node>,
}

impl NodeCache {
    /// Every cached node.
    pub fn nodes(&self) -> Vec<Node> {
        self.store
            .state()
            .iter()
            .map(|n| node_from_k8s(n))
            .collect()
    }

    /// One cached node by name.
    pub fn get(&self, name: &str) -> Option<Node> {
        self.store
            .get(&ObjectRef::new(name))
            .map(|n| node_from_k8s(&n))
    }

    /// The cached API object, cut down by [`slim_node`]: only the fields
    /// [`node_from_k8s`] reads are present.
    pub fn get_raw(&self, name: &str) -> Option<Arc<core::Node>> {
        self.store.get(&ObjectRef::new(name))
    }

    /// Waits until the first full listing has been received (the stream must be polled
    /// meanwhile). Fails only if the stream was dropped before that.
    pub async fn wait_until_ready(&self) -> Result<(), Error> {
        self.store
            .wait_until_ready()
            .await
            .map_err(|_| Error::Invalid("the node watch stopped before its first listing".into()))
    }
}

/// Starts watching nodes. The stream must be polled for the cache to fill; it never
/// ends by itself: after an error (yielded as `Err`) the watcher backs off and
/// re-lists, which then shows as [`NodeChange::Synced`].
pub fn watch_nodes(
    client: Client,
    scope: NodeScope,
) -> (NodeCache, BoxStream<'static, Result<NodeChange, Error>>) {
    let api: Api<core::Node> = Api::all(client);
    let config = match &scope {
        // Pages of LIST_PAGE nodes: a page is held whole (the response text and
        // every object in full) before slim_node cuts each down.
        NodeScope::All => watcher::Config::default().page_size(LIST_PAGE),
        NodeScope::Named(name) => {
            watcher::Config::default().fields(&format!("metadata.name={name}"))
        }
    };
    let (store, writer) = reflector::store();
    let events = reflector::reflector(
        writer,
        watcher(api, config).default_backoff().modify(slim_node),
    );
    let changes = events
        .scan(None::<Vec<Node>>, |listing, event| {
            let out = match event {
                Err(e) => Some(Err(Error::Watch(e))),
                Ok(watcher::Event::Apply(n)) => Some(Ok(NodeChange::Applied(node_from_k8s(&n)))),
                Ok(watcher::Event::Delete(n)) => Some(Ok(NodeChange::Deleted(node_from_k8s(&n)))),
                Ok(watcher::Event::Init) => {
                    *listing = Some(Vec::new());
                    None
                }
                Ok(watcher::Event::InitApply(n)) => {
                    listing.get_or_insert_with(Vec::new).push(node_from_k8s(&n));
                    None
                }
                Ok(watcher::Event::InitDone) => {
                    Some(Ok(NodeChange::Synced(listing.take().unwrap_or_default())))
                }
            };
            future::ready(Some(out))
        })
        .filter_map(future::ready)
        .boxed();
    (NodeCache { store }, changes)
}
