//! The leadership gate: [`Leadership`], held by a Lease elector's receiver or
//! [`AlwaysLeader`].

use std::future::Future;

use tokio::sync::watch;

/// Whether this process may act. berth-kube's Lease elector hands out a
/// `watch::Receiver<bool>` (`LeaderElector::subscribe`), which implements it.
pub trait Leadership: Send + Sync {
    /// Whether this process leads now.
    fn is_leader(&self) -> bool;

    /// Waits for a change of leadership and returns the new value; `None` once it can
    /// no longer change (the elector is gone: the last value holds).
    fn changed(&mut self) -> impl Future<Output = Option<bool>> + Send;
}

impl Leadership for watch::Receiver<bool> {
    fn is_leader(&self) -> bool {
        *self.borrow()
    }

    async fn changed(&mut self) -> Option<bool> {
        watch::Receiver::changed(self).await.ok()?;
        Some(*self.borrow_and_update())
    }
}

/// Always the leader (node mode, one-off runs).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysLeader;

impl Leadership for AlwaysLeader {
    fn is_leader(&self) -> bool {
        true
    }

    async fn changed(&mut self) -> Option<bool> {
        None
    }
}
