//! The provisioner's run rules and name grammars, case by case.

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
