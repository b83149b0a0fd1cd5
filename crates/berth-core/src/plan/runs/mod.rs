//! The provisioner's rules, as plain functions: what a cluster name and an instance
//! type may be, the state of a Terraform run from what its Job and runner report, who
//! may take a cluster's lock, and when a cluster's state may be deleted. The name
//! grammars are in `names.rs`.

use std::fmt;
use std::time::Duration;

mod names;
#[cfg(test)]
mod tests;

pub use names::{cluster_name_error, is_instance_type, state_secret_suffix};

/// What a run does with Terraform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `terraform plan` only.
    Plan,
    /// `terraform plan` then `apply`.
    Apply,
    /// `terraform destroy`.
    Destroy,
}

impl Operation {
    /// The name used in labels, the API and the runner's environment.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Plan => "plan",
            Operation::Apply => "apply",
            Operation::Destroy => "destroy",
        }
    }

    /// Parses [`Operation::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "plan" => Some(Operation::Plan),
            "apply" => Some(Operation::Apply),
            "destroy" => Some(Operation::Destroy),
            _ => None,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run's state, named as Terraform Cloud names its run states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Created; the runner has not started Terraform yet.
    Pending,
    /// `terraform init`/`plan` is running.
    Planning,
    /// A plan finished and an apply will follow.
    Planned,
    /// `terraform apply`/`destroy` is running.
    Applying,
    /// The apply or destroy succeeded.
    Applied,
    /// A plan-only run succeeded.
    PlannedAndFinished,
    /// The run failed (Terraform failed, the runner died, or its Job vanished).
    Errored,
    /// The run was canceled.
    Canceled,
}

impl RunState {
    /// The wire name (`planned_and_finished`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Planning => "planning",
            RunState::Planned => "planned",
            RunState::Applying => "applying",
            RunState::Applied => "applied",
            RunState::PlannedAndFinished => "planned_and_finished",
            RunState::Errored => "errored",
            RunState::Canceled => "canceled",
        }
    }

    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Applied
                | RunState::PlannedAndFinished
                | RunState::Errored
                | RunState::Canceled
        )
    }

    /// Whether the run ended well.
    pub fn succeeded(self) -> bool {
        matches!(self, RunState::Applied | RunState::PlannedAndFinished)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a Job is, from its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// No terminal condition yet.
    Active,
    /// `Complete=True`.
    Complete,
    /// `Failed=True`.
    Failed,
}

/// Reads a Job's conditions `(type, status)`. Only `Complete` and `Failed` are
/// terminal: `FailureTarget` and `SuccessCriteriaMet` appear before the pods are gone.
pub fn job_outcome<'a>(conditions: impl IntoIterator<Item = (&'a str, &'a str)>) -> JobOutcome {
    let mut outcome = JobOutcome::Active;
    for (kind, status) in conditions {
        if status != "True" {
            continue;
        }
        match kind {
            "Failed" => return JobOutcome::Failed,
            "Complete" => outcome = JobOutcome::Complete,
            _ => {}
        }
    }
    outcome
}

/// What the runner last reported about its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerPhase {
    /// `terraform init` or `plan`.
    Planning,
    /// The plan is done, the apply about to start.
    Planned,
    /// `terraform apply` or `destroy`.
    Applying,
    /// The runner ended; `true` when Terraform succeeded.
    Finished(bool),
}

impl RunnerPhase {
    /// Parses the runner's report (`planning`, `planned`, `applying`, `succeeded`, `failed`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "planning" => Some(RunnerPhase::Planning),
            "planned" => Some(RunnerPhase::Planned),
            "applying" => Some(RunnerPhase::Applying),
            "succeeded" => Some(RunnerPhase::Finished(true)),
            "failed" => Some(RunnerPhase::Finished(false)),
            _ => None,
        }
    }
}

/// What is known about a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunObservation {
    /// The run's operation.
    pub operation: Operation,
    /// Its Job, if it still exists.
    pub job: Option<JobOutcome>,
    /// The runner's last report, if any.
    pub runner: Option<RunnerPhase>,
    /// Whether a cancel was asked for.
    pub cancel_requested: bool,
}

/// A run's state. The Job's terminal condition is the truth while the Job exists (a
/// runner killed before it could report still fails its Job); once the Job is gone
/// (`ttlSecondsAfterFinished`), the runner's final report is; a Job gone with no final
/// report is an errored run.
pub fn run_state(run: &RunObservation) -> RunState {
    let ended = |ok: bool| match (ok, run.operation) {
        (true, Operation::Plan) => RunState::PlannedAndFinished,
        (true, _) => RunState::Applied,
        (false, _) if run.cancel_requested => RunState::Canceled,
        (false, _) => RunState::Errored,
    };
    match (run.job, run.runner) {
        (Some(JobOutcome::Complete), _) => ended(true),
        (Some(JobOutcome::Failed), _) => ended(false),
        (None, Some(RunnerPhase::Finished(ok))) => ended(ok),
        (None, _) => ended(false),
        (Some(JobOutcome::Active), phase) => match phase {
            None => RunState::Pending,
            Some(RunnerPhase::Planning) => RunState::Planning,
            Some(RunnerPhase::Planned) => RunState::Planned,
            // The runner reported its end; the Job's condition follows shortly.
            Some(RunnerPhase::Applying | RunnerPhase::Finished(_)) => RunState::Applying,
        },
    }
}

/// Where a cluster is, from its runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterPhase {
    /// No apply or destroy ran yet.
    Defined,
    /// An apply is live.
    Provisioning,
    /// The last apply applied.
    Ready,
    /// The last apply or destroy failed or was canceled.
    Failed,
    /// A destroy is live.
    Destroying,
    /// The last destroy applied.
    Destroyed,
}

impl ClusterPhase {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterPhase::Defined => "defined",
            ClusterPhase::Provisioning => "provisioning",
            ClusterPhase::Ready => "ready",
            ClusterPhase::Failed => "failed",
            ClusterPhase::Destroying => "destroying",
            ClusterPhase::Destroyed => "destroyed",
        }
    }
}

/// A cluster's phase from its runs, newest first: the newest apply or destroy decides
/// (plans change nothing).
pub fn cluster_phase(runs: &[(Operation, RunState)]) -> ClusterPhase {
    match runs.iter().find(|(op, _)| *op != Operation::Plan) {
        None => ClusterPhase::Defined,
        Some((op, state)) if !state.is_final() => match op {
            Operation::Destroy => ClusterPhase::Destroying,
            _ => ClusterPhase::Provisioning,
        },
        Some((Operation::Destroy, RunState::Applied)) => ClusterPhase::Destroyed,
        Some((_, RunState::Applied)) => ClusterPhase::Ready,
        Some(_) => ClusterPhase::Failed,
    }
}

/// The run holding a cluster's lock, as seen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockHolder {
    /// The holder's Job: `None` when it does not exist (yet, or any more).
    pub job: Option<JobOutcome>,
    /// How long ago the lock was taken.
    pub held_for: Duration,
}

/// How long a lock may name a run whose Job does not exist yet: the API takes the
/// lock, then creates the Job.
pub const JOB_CREATION_GRACE: Duration = Duration::from_secs(120);

/// What to do about a cluster's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockDecision {
    /// No lock: create it.
    Create,
    /// The holder's run is over (Job finished, or gone past the creation grace):
    /// replace the lock, conditioned on its resourceVersion.
    TakeOver,
    /// The holder is live: refuse.
    Held,
}

/// Decides whether a new run may take a cluster's lock.
pub fn lock_decision(holder: Option<LockHolder>) -> LockDecision {
    match holder {
        None => LockDecision::Create,
        Some(LockHolder {
            job: Some(JobOutcome::Complete | JobOutcome::Failed),
            ..
        }) => LockDecision::TakeOver,
        Some(LockHolder {
            job: None,
            held_for,
        }) if held_for > JOB_CREATION_GRACE => LockDecision::TakeOver,
        Some(_) => LockDecision::Held,
    }
}

/// Why a cluster's state may not be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupRefusal {
    /// A run is live.
    RunActive,
    /// The state still holds resources.
    StateHoldsResources(usize),
    /// The last apply or destroy was not a destroy that applied.
    NotDestroyed,
}

impl fmt::Display for CleanupRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CleanupRefusal::RunActive => f.write_str("a run of this cluster is active"),
            CleanupRefusal::StateHoldsResources(n) => {
                write!(f, "the Terraform state still holds {n} resource(s)")
            }
            CleanupRefusal::NotDestroyed => {
                f.write_str("the cluster's last apply or destroy is not a destroy that applied")
            }
        }
    }
}

/// Whether a cluster's state, lock and finished Jobs may be deleted. `runs` are the
/// cluster's runs, newest first. A cluster only ever planned (no apply or destroy)
/// may be cleaned up when its state is empty; one that was applied needs its last
/// apply-or-destroy run to be a destroy that applied, and an empty state.
pub fn cleanup_decision(
    runs: &[(Operation, RunState)],
    state_resources: usize,
) -> Result<(), CleanupRefusal> {
    if runs.iter().any(|(_, state)| !state.is_final()) {
        return Err(CleanupRefusal::RunActive);
    }
    if state_resources > 0 {
        return Err(CleanupRefusal::StateHoldsResources(state_resources));
    }
    match runs.iter().find(|(op, _)| *op != Operation::Plan) {
        None | Some((Operation::Destroy, RunState::Applied)) => Ok(()),
        Some(_) => Err(CleanupRefusal::NotDestroyed),
    }
}
