//! EC2's notices that this instance is about to go, from IMDS: `spot/instance-action`
//! and `events/recommendations/rebalance`. Node mode polls until it sees them
//! ([`spawn_watch`]: its own node leaves at once); notice mode ([`run`]) keeps polling
//! both and keeps its Node's taints as IMDS says — a notice's taint added when it is
//! pending, berth's own taint of a notice removed when IMDS shows it is not
//! (`crate::notice_taints`) — and leaves every ELB call to the cluster-mode leader: no
//! AWS API call, no ConfigMap, so its cost does not grow with the fleet. The taints and
//! what they mean are berth-core's spot rule (`workflow::node_targets::leaving`).

use std::collections::BTreeSet;
use std::time::Duration;

use berth_aws::imds::Imds;
use berth_core::domain::Taint;
use berth_core::workflow::node_targets::{InstanceNotice, NoticeState, NoticeStates};
use berth_kube::events::EventRecorder;
use berth_kube::taints::NodeTaints;
use berth_runtime::{CancellationToken, ExitStatus, Failure, Process};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::notice_taints::NodeNoticeTaints;

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
                match read(&imds, *notice).await {
                    Ok(Some(detail)) => {
                        tracing::warn!("{notice}: {detail}");
                        tx.send_modify(|seen| {
                            seen.insert(*notice);
                        });
                    }
                    Ok(None) => {}
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

/// What IMDS says about `notice` now: `Some` (what it announces, for the log) while
/// pending, `None` when there is none.
async fn read(imds: &Imds, notice: InstanceNotice) -> Result<Option<String>, berth_core::Error> {
    Ok(match notice {
        InstanceNotice::SpotInterruption => imds
            .spot_interruption()
            .await?
            .map(|n| format!("action {} at {:?}", n.action, n.time)),
        InstanceNotice::RebalanceRecommendation => imds
            .rebalance_recommendation()
            .await?
            .map(|time| format!("noticed at {time:?}")),
    })
}

/// Polls IMDSv2 every `every` for every notice until `shutdown`; the receiver holds
/// what the last answer about each said (a read that failed leaves its notice as it
/// was: an error never changes a state, and a notice never read has none). Changes of
/// state are logged; IMDS errors once per kind of failure.
fn spawn_states(
    imds: Imds,
    every: Duration,
    shutdown: CancellationToken,
) -> watch::Receiver<NoticeStates> {
    let (tx, rx) = watch::channel(NoticeStates::new());
    tokio::spawn(async move {
        let mut last_error = String::new();
        loop {
            let mut states = tx.borrow().clone();
            for notice in InstanceNotice::ALL {
                match read(&imds, notice).await {
                    Ok(answer) => {
                        let state = match answer {
                            Some(_) => NoticeState::Pending,
                            None => NoticeState::Absent,
                        };
                        let before = states.insert(notice, state);
                        match (&answer, before) {
                            (Some(detail), Some(NoticeState::Absent) | None) => {
                                tracing::warn!("{notice}: {detail}");
                            }
                            (None, Some(NoticeState::Pending)) => {
                                tracing::info!("IMDS no longer shows the {notice}");
                            }
                            _ => {}
                        }
                    }
                    Err(e) => {
                        let text = e.to_string();
                        if text != last_error {
                            tracing::warn!(error = %text, "IMDS {notice} check failed");
                            last_error = text;
                        }
                    }
                }
            }
            tx.send_if_modified(|now| {
                let changed = *now != states;
                *now = states;
                changed
            });
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    });
    rx
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
    /// This pod's name, as the reporting instance of its Events.
    pub pod_name: Option<String>,
}

/// Notice mode: polls IMDS and keeps Node `settings.node_name`'s notice taints as
/// IMDS says — a pending notice's taint added where absent, berth's own taint of a
/// notice IMDS shows not pending removed (at start, and whenever a notice goes), never
/// another taint; nothing while IMDS cannot be read. One `get`, and one `patch` only if
/// something changes, per change of what IMDS says. Runs until `process.shutdown` (0),
/// or with `once` until one poll is written (0, else 1).
pub async fn run(
    client: kube::Client,
    imds: Imds,
    settings: NoticeSettings,
    process: &Process,
) -> Result<ExitStatus, Failure> {
    let metrics = Metrics::register(&process.metrics);
    let taints = NodeTaints::new(client.clone());
    let node = settings.node_name.as_str();
    tracing::info!(
        node,
        poll = ?settings.every,
        dry_run = settings.dry_run,
        "berth-daemon started in notice mode: IMDS only, no AWS API call"
    );
    let writer = NodeNoticeTaints {
        taints: taints.clone(),
        events: (!settings.dry_run)
            .then(|| EventRecorder::new(client, "berth-daemon", settings.pod_name.clone())),
        metrics: metrics.clone(),
        node: node.to_owned(),
        dry_run: settings.dry_run,
    };
    if settings.once {
        let mut states = NoticeStates::new();
        for notice in InstanceNotice::ALL {
            let state = match read(&imds, notice).await.map_err(anyhow::Error::from)? {
                Some(detail) => {
                    tracing::warn!("{notice}: {detail}");
                    NoticeState::Pending
                }
                None => NoticeState::Absent,
            };
            states.insert(notice, state);
        }
        return Ok(if writer.apply(&states).await {
            ExitStatus::SUCCESS
        } else {
            ExitStatus::FAILURE
        });
    }
    let mut states = spawn_states(imds, settings.every, process.shutdown.clone());
    // Ready once the Node can be read: a missing Node or RBAC must show now, not when
    // an interruption comes.
    let Some(start_taints) = node_readable(&taints, node, settings.every, process, &metrics).await
    else {
        tracing::info!("berth-daemon stopped");
        return Ok(ExitStatus::SUCCESS);
    };
    process.readiness.ready();
    // The start-up read answers the first decision when that needs no write: a quiet
    // start costs that one `get`.
    let mut start_taints = Some(start_taints);
    // What IMDS said when the Node was last made to match it: written again only when
    // that changes, so a taint someone removed by hand while its notice stands is not
    // fought (until this pod restarts).
    let mut written: Option<NoticeStates> = None;
    let mut polling = true;
    loop {
        let now = states.borrow_and_update().clone();
        if written.as_ref() != Some(&now) {
            let done = match start_taints.take_if(|_| !now.is_empty()) {
                Some(current) if writer.already(&current, &now) => true,
                _ => writer.apply(&now).await,
            };
            if done {
                written = Some(now.clone());
            }
        }
        // A write that failed is retried after one poll interval.
        let failed = written.as_ref() != Some(&now);
        tokio::select! {
            () = process.shutdown.cancelled() => break,
            changed = states.changed(), if polling => polling = changed.is_ok(),
            () = tokio::time::sleep(settings.every), if failed => {}
        }
    }
    tracing::info!("berth-daemon stopped");
    Ok(ExitStatus::SUCCESS)
}

/// Reads Node `node` until it succeeds (every `every`, not ready meanwhile): its
/// taints; `None` if `process.shutdown` came first.
async fn node_readable(
    taints: &NodeTaints,
    node: &str,
    every: Duration,
    process: &Process,
    metrics: &Metrics,
) -> Option<Vec<Taint>> {
    let mut last_error = String::new();
    loop {
        match taints.current(node).await {
            Ok(current) => return Some(current),
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
            () = process.shutdown.cancelled() => return None,
            () = tokio::time::sleep(every) => {}
        }
    }
}
