//! What drives the daemon's controller: its triggers (node watch changes, spot
//! interruption notices) and its leadership gate (the Lease elector's, mirrored in
//! `berth_daemon_leader`).

use berth_kube::watch::NodeChange;
use berth_runtime::controller::{Leadership, Trigger};
use futures::stream::{BoxStream, Stream, StreamExt};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use berth_core::workflow::node_targets::InstanceNotice;

use crate::metrics::Metrics;
use crate::notice::Notices;

/// The controller's triggers: node changes (debounced, by node name), the first full
/// listing (and every re-list), a spot interruption notice (a pass at once). Ends when
/// the node watch ends.
pub(crate) fn triggers(
    changes: BoxStream<'static, Result<NodeChange, berth_kube::Error>>,
    spot: watch::Receiver<Notices>,
    metrics: Metrics,
) -> impl Stream<Item = Trigger<String>> + Send {
    let nodes = changes
        .filter_map(move |change| {
            let trigger = match change {
                Ok(NodeChange::Synced(nodes)) => {
                    tracing::debug!(nodes = nodes.len(), "node list in");
                    Some(Trigger::Synced)
                }
                Ok(NodeChange::Applied(node) | NodeChange::Deleted(node)) => {
                    tracing::debug!(node = %node.name, "node changed");
                    Some(Trigger::Changed(node.name))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "node watch error; the watcher backs off and re-lists");
                    metrics.error_kind("kubernetes");
                    None
                }
            };
            std::future::ready(trigger.map(Some))
        })
        // `None` marks the end of the node watch.
        .chain(futures::stream::once(std::future::ready(None)));
    let notices = futures::stream::unfold(spot, |mut spot| async move {
        loop {
            if spot.changed().await.is_err() {
                // The poller is gone: no notice will come.
                std::future::pending::<()>().await;
            }
            if spot
                .borrow_and_update()
                .contains(&InstanceNotice::SpotInterruption)
            {
                tracing::warn!("spot interruption notice: deregistering ahead of it");
                return Some((Some(Trigger::Now), spot));
            }
        }
    });
    futures::stream::select(nodes, notices).scan((), |(), t| std::future::ready(t))
}

/// The Lease elector's leadership, mirrored in `berth_daemon_leader`.
pub(crate) struct Reported {
    inner: watch::Receiver<bool>,
    gauge: Gauge,
}

impl Reported {
    pub(crate) fn new(inner: watch::Receiver<bool>, gauge: Gauge) -> Self {
        gauge.set(i64::from(*inner.borrow()));
        Reported { inner, gauge }
    }
}

impl Leadership for Reported {
    fn is_leader(&self) -> bool {
        self.inner.is_leader()
    }

    async fn changed(&mut self) -> Option<bool> {
        let leading = Leadership::changed(&mut self.inner).await?;
        self.gauge.set(i64::from(leading));
        Some(leading)
    }
}

#[cfg(test)]
mod tests {
    use berth_core::domain::Node;
    use futures::stream;

    use super::*;

    fn changes(
        items: Vec<Result<NodeChange, berth_kube::Error>>,
    ) -> BoxStream<'static, Result<NodeChange, berth_kube::Error>> {
        stream::iter(items).boxed()
    }

    #[tokio::test]
    async fn node_changes_become_triggers_and_the_end_of_the_watch_ends_them() {
        let metrics = Metrics::new();
        let (spot_tx, spot_rx) = watch::channel(Notices::new());
        let items = vec![
            Ok(NodeChange::Synced(vec![Node::new("a")])),
            Ok(NodeChange::Applied(Node::new("a"))),
            Err(berth_kube::Error::Invalid("watch broke".into())),
            Ok(NodeChange::Deleted(Node::new("b"))),
        ];
        // The spot sender is alive: the stream still ends with the node watch.
        let got: Vec<_> = triggers(changes(items), spot_rx, metrics.clone())
            .collect()
            .await;
        assert_eq!(
            got,
            vec![
                Trigger::Synced,
                Trigger::Changed("a".to_owned()),
                Trigger::Changed("b".to_owned())
            ]
        );
        assert!(metrics
            .render()
            .contains("berth_daemon_errors_total{kind=\"kubernetes\"} 1"));
        drop(spot_tx);
    }

    #[tokio::test]
    async fn a_spot_notice_is_a_pass_now_once() {
        let (spot_tx, spot_rx) = watch::channel(Notices::new());
        let mut got = Box::pin(triggers(stream::pending().boxed(), spot_rx, Metrics::new()));
        // A rebalance recommendation alone is not node mode's business.
        spot_tx.send_modify(|n| {
            n.insert(InstanceNotice::RebalanceRecommendation);
        });
        let none = tokio::time::timeout(std::time::Duration::from_millis(50), got.next()).await;
        assert!(none.is_err(), "no pass for a recommendation: {none:?}");
        spot_tx.send_modify(|n| {
            n.insert(InstanceNotice::SpotInterruption);
        });
        assert_eq!(got.next().await, Some(Trigger::Now));
        drop(spot_tx);
        let more = tokio::time::timeout(std::time::Duration::from_millis(50), got.next()).await;
        assert!(more.is_err(), "no second notice: {more:?}");
    }

    #[tokio::test]
    async fn leadership_changes_are_mirrored_in_the_gauge() {
        let (tx, rx) = watch::channel(false);
        let gauge = Gauge::default();
        let mut leadership = Reported::new(rx, gauge.clone());
        assert!(!leadership.is_leader());
        assert_eq!(gauge.get(), 0);
        tx.send(true).unwrap();
        assert_eq!(leadership.changed().await, Some(true));
        assert_eq!(gauge.get(), 1);
        tx.send(false).unwrap();
        assert_eq!(leadership.changed().await, Some(false));
        assert_eq!(gauge.get(), 0);
        drop(tx);
        assert_eq!(leadership.changed().await, None);
    }
}
