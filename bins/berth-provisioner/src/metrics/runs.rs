//! Runs active, finished and their durations, from a watch of the runs' Jobs: a run
//! counts as finished when its Job is seen getting `Complete` or `Failed` (Jobs that
//! had ended before this process started are not counted again), with its run state
//! (`applied`, `planned_and_finished`, `errored`, `canceled`) as the result.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth_core::plan::runs::{job_outcome, JobOutcome, Operation};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;

use super::ProvisionerMetrics;
use crate::store::{Store, MANAGED_BY, MANAGER, OPERATION};

/// What the watch knows of one run's Job.
#[derive(Debug, Clone, Copy)]
struct Seen {
    operation: Operation,
    ended: bool,
}

/// The Jobs seen so far, and whether the first listing is complete.
#[derive(Debug, Default)]
struct Tracker {
    jobs: BTreeMap<String, Seen>,
    /// Names seen during a (re-)listing, to forget the Jobs deleted meanwhile.
    listing: Option<BTreeSet<String>>,
    listed_once: bool,
}

impl Tracker {
    /// Records a Job's state; `true` when it has just ended — seen active before, or
    /// first seen after the first listing (it started and ended while watched).
    fn observe(&mut self, name: &str, operation: Operation, ended: bool) -> bool {
        if let Some(listing) = &mut self.listing {
            listing.insert(name.to_owned());
        }
        let before = self.jobs.insert(name.to_owned(), Seen { operation, ended });
        ended
            && match before {
                Some(seen) => !seen.ended,
                None => self.listed_once,
            }
    }

    fn relist(&mut self) {
        self.listing = Some(BTreeSet::new());
    }

    fn listed(&mut self) {
        if let Some(listing) = self.listing.take() {
            self.jobs.retain(|name, _| listing.contains(name));
        }
        self.listed_once = true;
    }

    fn active(&self, operation: Operation) -> i64 {
        let live = self.jobs.values();
        live.filter(|s| s.operation == operation && !s.ended)
            .count() as i64
    }
}

/// How long the Job ran: from its start to its terminal condition.
fn duration(job: &Job) -> Option<Duration> {
    let status = job.status.as_ref()?;
    let started = status
        .start_time
        .as_ref()
        .or(job.metadata.creation_timestamp.as_ref())?;
    let ended = status
        .conditions
        .iter()
        .flatten()
        .filter(|c| c.status == "True" && matches!(c.type_.as_str(), "Complete" | "Failed"))
        .find_map(|c| c.last_transition_time.as_ref())
        .or(status.completion_time.as_ref())?;
    Duration::try_from(ended.0.duration_since(started.0)).ok()
}

fn outcome(job: &Job) -> JobOutcome {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    job_outcome(
        conditions
            .into_iter()
            .flatten()
            .map(|c| (c.type_.as_str(), c.status.as_str())),
    )
}

/// Watches the runs' Jobs until `shutdown`, keeping the run metrics.
pub(crate) async fn watch_runs(
    store: Store,
    metrics: ProvisionerMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let api: Api<Job> = store.api();
    let config = watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER}"));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tracker = Tracker::default();
    loop {
        let event = tokio::select! {
            () = &mut shutdown => return,
            event = events.next() => event,
        };
        let Some(event) = event else { return };
        match event {
            Ok(watcher::Event::Init) => tracker.relist(),
            Ok(watcher::Event::InitDone) => tracker.listed(),
            Ok(watcher::Event::InitApply(job) | watcher::Event::Apply(job)) => {
                let name = job.metadata.name.clone().unwrap_or_default();
                let labels = job.metadata.labels.as_ref();
                let Some(operation) = labels
                    .and_then(|l| l.get(OPERATION))
                    .and_then(|o| Operation::parse(o))
                else {
                    continue;
                };
                let outcome = outcome(&job);
                if tracker.observe(&name, operation, outcome != JobOutcome::Active) {
                    // The run's state (canceled or errored, by its record) is the result.
                    let result = match store.run(&name).await {
                        Ok(run) => run.state.as_str(),
                        Err(_) if outcome == JobOutcome::Complete => "applied",
                        Err(_) => "errored",
                    };
                    metrics.run_finished(operation, result, duration(&job));
                }
            }
            Ok(watcher::Event::Delete(job)) => {
                tracker
                    .jobs
                    .remove(job.metadata.name.as_deref().unwrap_or_default());
            }
            Err(e) => tracing::debug!(error = %e, "the watch of run Jobs failed; retrying"),
        }
        for operation in [Operation::Plan, Operation::Apply, Operation::Destroy] {
            metrics.set_active(operation, tracker.active(operation));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_counts_once_and_only_if_it_ended_while_watched() {
        let mut t = Tracker::default();
        t.relist();
        assert!(
            !t.observe("old", Operation::Apply, true),
            "ended before we started"
        );
        assert!(!t.observe("live", Operation::Apply, false));
        t.listed();
        assert_eq!(t.active(Operation::Apply), 1);
        assert!(t.observe("live", Operation::Apply, true));
        assert!(!t.observe("live", Operation::Apply, true), "counted once");
        assert!(
            t.observe("quick", Operation::Plan, true),
            "started and ended while watched"
        );
        assert!(!t.observe("new", Operation::Destroy, false));
        assert_eq!(t.active(Operation::Destroy), 1);
        // A re-listing forgets the Jobs deleted meanwhile.
        t.relist();
        t.observe("new", Operation::Destroy, false);
        t.listed();
        assert_eq!(t.jobs.len(), 1);
        assert_eq!(t.active(Operation::Apply), 0);
    }
}
