//! EC2's notices that this instance is about to go, from IMDS: the one poll of
//! `spot/instance-action` and `events/recommendations/rebalance` ([`spawn_watch`]),
//! used by node mode (its own node leaves at once) and by notice mode ([`run`]), which
//! only writes the notice as a taint on its own Node and leaves every ELB call to the
//! cluster-mode leader: no AWS API call, no ConfigMap, so its cost does not grow with
//! the fleet. The taints and what they mean are berth-core's spot rule
//! (`workflow::node_targets::leaving`).

use std::collections::BTreeSet;
use std::time::Duration;

use berth_aws::imds::Imds;
use berth_core::domain::Taint;
use berth_core::workflow::node_targets::{taints_to_add, InstanceNotice};
use berth_kube::taints::NodeTaints;
use berth_runtime::{CancellationToken, ExitStatus, Failure, Process};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// The notices seen so far (a notice, once seen, stays: nothing berth does undoes it).
pub type Notices = BTreeSet<InstanceNotice>;

/// Polls IMDSv2 every `every` for the notices in `watching` until all of them have
/// been seen or `shutdown`; the receiver holds the notices seen so far. IMDS errors are
/// logged (once per kind of failure) and polling goes on.
pub(crate) fn spawn_watch(
    imds: Imds,
    watching: Notices,
    every: Duration,
    shutdown: CancellationToken,
) -> watch::Receiver<Notices> {
    let (tx, rx) = watch::channel(Notices::new());
    tokio::spawn(async move {
        let mut last_error = String::new();
        loop {
            let seen = tx.borrow().clone();
            for notice in watching.difference(&seen) {
                match poll(&imds, *notice).await {
                    Ok(true) => {
                        tx.send_modify(|seen| {
                            seen.insert(*notice);
                        });
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let text = e.to_string();
                        if text != last_error {
                            tracing::warn!(error = %text, "IMDS {notice} check failed");
                            last_error = text;
                        }
                    }
                }
            }
            if watching.is_subset(&tx.borrow()) {
                return;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    });
    rx
}

/// Whether IMDS announces `notice` now.
async fn poll(imds: &Imds, notice: InstanceNotice) -> Result<bool, berth_core::Error> {
    match notice {
        InstanceNotice::SpotInterruption => {
            let Some(n) = imds.spot_interruption().await? else {
                return Ok(false);
            };
            tracing::warn!(action = %n.action, time = ?n.time, "spot interruption scheduled");
        }
        InstanceNotice::RebalanceRecommendation => {
            let Some(time) = imds.rebalance_recommendation().await? else {
                return Ok(false);
            };
            tracing::warn!(time = ?time, "rebalance recommendation");
        }
    }
    Ok(true)
}

/// What notice mode needs.
pub struct NoticeSettings {
    /// This node's name.
    pub node_name: String,
    /// How often IMDS is polled.
    pub every: Duration,
    /// Poll once, taint if needed, and stop.
    pub once: bool,
    /// Log the taints that would be written and write nothing.
    pub dry_run: bool,
}

/// Notice mode: polls IMDS and, on a spot interruption notice or a rebalance
/// recommendation, adds its taint to Node `settings.node_name` where absent (one `get`,
/// one `patch` only if something is missing, per new notice). Runs until
/// `process.shutdown` (0), or with `once` until one poll is written (0, else 1).
pub async fn run(
    client: kube::Client,
    imds: Imds,
    settings: NoticeSettings,
    process: &Process,
) -> Result<ExitStatus, Failure> {
    let metrics = Metrics::register(&process.metrics);
    let taints = NodeTaints::new(client);
    let node = settings.node_name.as_str();
    tracing::info!(
        node,
        poll = ?settings.every,
        dry_run = settings.dry_run,
        "berth-daemon started in notice mode: IMDS only, no AWS API call"
    );
    if settings.once {
        let mut seen = Notices::new();
        for notice in InstanceNotice::ALL {
            if poll(&imds, notice).await.map_err(anyhow::Error::from)? {
                seen.insert(notice);
            }
        }
        let written = write(&taints, node, &seen, settings.dry_run, &metrics).await;
        return Ok(if written {
            ExitStatus::SUCCESS
        } else {
            ExitStatus::FAILURE
        });
    }
    let mut notices = spawn_watch(
        imds,
        InstanceNotice::ALL.into(),
        settings.every,
        process.shutdown.clone(),
    );
    // Ready once the Node can be read: a missing Node or RBAC must show now, not when
    // an interruption comes.
    if !node_readable(&taints, node, settings.every, process, &metrics).await {
        tracing::info!("berth-daemon stopped");
        return Ok(ExitStatus::SUCCESS);
    }
    process.readiness.ready();
    let mut written = Notices::new();
    let mut polling = true;
    loop {
        let seen = notices.borrow_and_update().clone();
        if !seen.is_subset(&written)
            && write(&taints, node, &seen, settings.dry_run, &metrics).await
        {
            written = seen.clone();
        }
        // A write that failed is retried after one poll interval; once every notice is
        // seen and written, nothing is left to do but wait for the end.
        let failed = !seen.is_subset(&written);
        tokio::select! {
            () = process.shutdown.cancelled() => break,
            changed = notices.changed(), if polling => polling = changed.is_ok(),
            () = tokio::time::sleep(settings.every), if failed => {}
        }
    }
    tracing::info!("berth-daemon stopped");
    Ok(ExitStatus::SUCCESS)
}

/// Reads Node `node` until it succeeds (every `every`, not ready meanwhile); `false`
/// if `process.shutdown` came first.
async fn node_readable(
    taints: &NodeTaints,
    node: &str,
    every: Duration,
    process: &Process,
    metrics: &Metrics,
) -> bool {
    let mut last_error = String::new();
    loop {
        match taints.current(node).await {
            Ok(_) => return true,
            Err(e) => {
                let text = e.to_string();
                process
                    .readiness
                    .not_ready(format!("cannot read its Node: {text}"));
                if text != last_error {
                    tracing::warn!(node, error = %text, "cannot read the Node; retrying");
                    metrics.error("kubernetes", &berth_core::Error::from(e));
                    last_error = text;
                }
            }
        }
        tokio::select! {
            () = process.shutdown.cancelled() => return false,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Adds the taints of `seen` that Node `node` lacks; whether it carries them all now.
async fn write(
    taints: &NodeTaints,
    node: &str,
    seen: &Notices,
    dry_run: bool,
    metrics: &Metrics,
) -> bool {
    if seen.is_empty() {
        return true;
    }
    let missing = |current: &[Taint]| taints_to_add(current, seen.iter().copied());
    if dry_run {
        tracing::info!(node, notices = ?seen, "dry run: the notice taints are not written");
        return true;
    }
    match taints.add_missing(node, missing).await {
        Ok(added) if added.is_empty() => {
            tracing::info!(node, notices = ?seen, "the node already carries the notice taints");
            true
        }
        Ok(added) => {
            for taint in &added {
                metrics.notice_taint(&taint.key);
                tracing::warn!(
                    node,
                    taint = %taint.key,
                    effect = taint.effect.as_str(),
                    "tainted the node: the cluster-mode leader deregisters it"
                );
            }
            true
        }
        Err(e) => {
            tracing::warn!(node, error = %e, "could not taint the node; retrying");
            metrics.error("kubernetes", &berth_core::Error::from(e));
            false
        }
    }
}
