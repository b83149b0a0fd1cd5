//! The provisioner's rules, as plain functions: what a cluster name and an instance
//! type may be, the state of a Terraform run from what its Job and runner report, who
//! may take a cluster's lock, and when a cluster's state may be deleted.

use std::fmt;
use std::time::Duration;

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

/// Why a cluster name is refused.
pub fn cluster_name_error(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("must not be empty");
    }
    if name.len() > 63 {
        return Some("must be at most 63 characters (a DNS-1123 label)");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("must contain only lowercase letters, digits and '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must start and end with a letter or digit");
    }
    None
}

/// Whether `text` is an EC2 instance type: a family of lowercase alphanumeric
/// segments joined by '-' (`m5`, `m7i-flex`, `u-6tb1`, `mac2-m2pro`) with a digit in
/// its first or second segment, a '.', and a size (`nano` ... `large`, `xlarge`,
/// `<n>xlarge`, `metal`, `metal-<n>xl`).
pub fn is_instance_type(text: &str) -> bool {
    if text.len() > 64 {
        return false;
    }
    let Some((family, size)) = text.split_once('.') else {
        return false;
    };
    valid_family(family) && valid_size(size)
}

fn valid_family(family: &str) -> bool {
    let segments: Vec<&str> = family.split('-').collect();
    let alnum = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let Some(first) = segments.first() else {
        return false;
    };
    first.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && segments.iter().all(|s| alnum(s))
        && segments
            .iter()
            .take(2)
            .any(|s| s.bytes().any(|b| b.is_ascii_digit()))
}

fn valid_size(size: &str) -> bool {
    let number =
        |s: &str| !s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit());
    match size {
        "nano" | "micro" | "small" | "medium" | "large" | "xlarge" | "metal" => true,
        _ => {
            if let Some(n) = size.strip_suffix("xlarge") {
                number(n)
            } else if let Some(n) = size
                .strip_prefix("metal-")
                .and_then(|s| s.strip_suffix("xl"))
            {
                number(n)
            } else {
                false
            }
        }
    }
}

/// The `secret_suffix` of a cluster's state in Terraform's `kubernetes` backend. It
/// becomes a label value (at most 63 characters) and must not end in `-<number>`
/// (Terraform reads that as a workspace index), so a name like `prod-001` gets a
/// stable hashed suffix instead: `prod-001-h<10 hex>`.
pub fn state_secret_suffix(cluster: &str) -> String {
    let ends_in_number = cluster
        .rsplit_once('-')
        .is_some_and(|(_, tail)| !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()));
    if !ends_in_number && cluster.len() <= 63 && !cluster.is_empty() {
        return cluster.to_owned();
    }
    let head: String = cluster.chars().take(50).collect();
    format!(
        "{}-h{:010x}",
        head.trim_end_matches('-'),
        fnv1a(cluster) & 0xff_ffff_ffff
    )
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(
        operation: Operation,
        job: Option<JobOutcome>,
        runner: Option<RunnerPhase>,
    ) -> RunObservation {
        RunObservation {
            operation,
            job,
            runner,
            cancel_requested: false,
        }
    }

    #[test]
    fn only_complete_and_failed_conditions_end_a_job() {
        assert_eq!(job_outcome([("FailureTarget", "True")]), JobOutcome::Active);
        assert_eq!(
            job_outcome([("SuccessCriteriaMet", "True")]),
            JobOutcome::Active
        );
        assert_eq!(job_outcome([("Complete", "False")]), JobOutcome::Active);
        assert_eq!(
            job_outcome([("SuccessCriteriaMet", "True"), ("Complete", "True")]),
            JobOutcome::Complete
        );
        assert_eq!(
            job_outcome([("FailureTarget", "True"), ("Failed", "True")]),
            JobOutcome::Failed
        );
    }

    #[test]
    fn run_states_follow_the_job_then_the_runner_report() {
        use JobOutcome::*;
        use Operation::*;
        assert_eq!(
            run_state(&obs(Apply, Some(Active), None)),
            RunState::Pending
        );
        assert_eq!(
            run_state(&obs(Apply, Some(Active), Some(RunnerPhase::Applying))),
            RunState::Applying
        );
        assert_eq!(
            run_state(&obs(Plan, Some(Complete), None)),
            RunState::PlannedAndFinished
        );
        assert_eq!(
            run_state(&obs(Destroy, Some(Complete), None)),
            RunState::Applied
        );
        // The runner claimed success but its Job failed: the Job wins.
        assert_eq!(
            run_state(&obs(Apply, Some(Failed), Some(RunnerPhase::Finished(true)))),
            RunState::Errored
        );
        assert_eq!(
            run_state(&obs(Apply, None, Some(RunnerPhase::Finished(true)))),
            RunState::Applied
        );
        assert_eq!(
            run_state(&obs(Apply, None, Some(RunnerPhase::Applying))),
            RunState::Errored
        );
        let mut canceled = obs(Apply, Some(Failed), None);
        canceled.cancel_requested = true;
        assert_eq!(run_state(&canceled), RunState::Canceled);
    }

    #[test]
    fn a_lock_is_taken_over_only_from_a_finished_or_long_missing_job() {
        assert_eq!(lock_decision(None), LockDecision::Create);
        let holder = |job, secs| {
            Some(LockHolder {
                job,
                held_for: Duration::from_secs(secs),
            })
        };
        assert_eq!(
            lock_decision(holder(Some(JobOutcome::Active), 9999)),
            LockDecision::Held
        );
        assert_eq!(
            lock_decision(holder(Some(JobOutcome::Failed), 1)),
            LockDecision::TakeOver
        );
        assert_eq!(
            lock_decision(holder(Some(JobOutcome::Complete), 1)),
            LockDecision::TakeOver
        );
        assert_eq!(lock_decision(holder(None, 5)), LockDecision::Held);
        assert_eq!(lock_decision(holder(None, 600)), LockDecision::TakeOver);
    }

    #[test]
    fn cleanup_needs_an_applied_destroy_and_an_empty_state() {
        use Operation::*;
        use RunState::*;
        assert_eq!(cleanup_decision(&[], 0), Ok(()));
        assert_eq!(cleanup_decision(&[(Plan, PlannedAndFinished)], 0), Ok(()));
        assert_eq!(
            cleanup_decision(&[(Destroy, Applied), (Apply, Applied)], 0),
            Ok(())
        );
        assert_eq!(
            cleanup_decision(&[(Apply, Applied)], 0),
            Err(CleanupRefusal::NotDestroyed)
        );
        assert_eq!(
            cleanup_decision(&[(Plan, PlannedAndFinished), (Destroy, Errored)], 0),
            Err(CleanupRefusal::NotDestroyed)
        );
        assert_eq!(
            cleanup_decision(&[(Destroy, Applied)], 3),
            Err(CleanupRefusal::StateHoldsResources(3))
        );
        assert_eq!(
            cleanup_decision(&[(Destroy, Applying)], 0),
            Err(CleanupRefusal::RunActive)
        );
    }

    #[test]
    fn the_newest_apply_or_destroy_decides_the_phase() {
        use Operation::*;
        use RunState::*;
        assert_eq!(cluster_phase(&[]), ClusterPhase::Defined);
        assert_eq!(cluster_phase(&[(Plan, Planning)]), ClusterPhase::Defined);
        assert_eq!(
            cluster_phase(&[(Plan, PlannedAndFinished), (Apply, Applied)]),
            ClusterPhase::Ready
        );
        assert_eq!(cluster_phase(&[(Apply, Errored)]), ClusterPhase::Failed);
        assert_eq!(
            cluster_phase(&[(Destroy, Pending)]),
            ClusterPhase::Destroying
        );
        assert_eq!(
            cluster_phase(&[(Apply, Applying)]),
            ClusterPhase::Provisioning
        );
        assert_eq!(
            cluster_phase(&[(Destroy, Applied), (Apply, Applied)]),
            ClusterPhase::Destroyed
        );
    }

    #[test]
    fn cluster_names_are_dns_labels_of_at_most_63() {
        assert_eq!(cluster_name_error(&"a".repeat(63)), None);
        assert!(cluster_name_error(&"a".repeat(64)).is_some());
        assert_eq!(cluster_name_error("test-cluster-001"), None);
        for bad in ["", "-a", "a-", "A", "a_b", "a.b"] {
            assert!(cluster_name_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn instance_type_grammar() {
        for good in [
            "m5.xlarge",
            "m6gd.large",
            "g4dn.xlarge",
            "c5.metal",
            "u-6tb1.112xlarge",
            "i4i.metal-24xl",
            "m7i-flex.large",
            "mac2-m2pro.metal",
            "t3.nano",
        ] {
            assert!(is_instance_type(good), "{good}");
        }
        for bad in [
            "",
            "m5",
            "m5.",
            ".large",
            "M5.large",
            "m5.hugelarge",
            "m5..large",
            "m5.large.x",
            "m5-.large",
            "m5.0xlarge",
            "m.large",
            "5m.large",
            "m5.metal-xl",
            "m5 .large",
        ] {
            assert!(!is_instance_type(bad), "{bad}");
        }
    }

    #[test]
    fn state_suffixes_fit_a_label_and_never_end_in_a_number() {
        assert_eq!(state_secret_suffix("prod"), "prod");
        for name in [
            "test-cluster-001",
            &"a".repeat(62),
            &format!("{}-7", "b".repeat(61)),
        ] {
            let suffix = state_secret_suffix(name);
            assert!(suffix.len() <= 63, "{suffix}");
            let tail = suffix.rsplit('-').next().unwrap();
            assert!(!tail.bytes().all(|b| b.is_ascii_digit()), "{suffix}");
            assert_eq!(suffix, state_secret_suffix(name), "stable");
        }
        assert_ne!(state_secret_suffix("a-1"), state_secret_suffix("a-2"));
    }
}
