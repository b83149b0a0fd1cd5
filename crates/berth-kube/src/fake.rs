//! A loopback Kubernetes API server for tests (feature `test-util`).
//!
//! Being written: the server itself lands in the next commit; this is its API.

use std::io;
use std::path::Path;

use k8s_openapi::api::core::v1 as core;

/// A fake API server on 127.0.0.1, serving list/watch/get/create/replace/merge-patch/
/// delete for any resource path, with resourceVersions and optimistic concurrency.
pub struct FakeApiServer {
    url: String,
}

impl FakeApiServer {
    /// Starts the server on a free port, on its own thread and runtime.
    pub fn start() -> io::Result<Self> {
        Err(io::Error::other("FakeApiServer is not implemented yet"))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A kubeconfig (JSON, which kubeconfig readers accept) pointing at the server.
    pub fn kubeconfig(&self) -> String {
        String::new()
    }

    /// Writes [`FakeApiServer::kubeconfig`] to `path` (for `KUBECONFIG=` of a binary).
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Adds or replaces a node (watchers see ADDED or MODIFIED).
    pub fn add_node(&self, _node: core::Node) {}
}
