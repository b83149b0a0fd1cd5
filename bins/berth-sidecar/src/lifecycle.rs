//! The sidecar's life as a pure state machine: which step follows which outcome.
//!
//! The runner performs the [`Action`]s and feeds back [`Event`]s; every rule that
//! fixes a defect of the seed lives here and is tested with plain values:
//! - a failed registration or health wait deregisters and exits non-zero (the seed
//!   logged it and looked ready);
//! - a signal during registration cancels it and still deregisters;
//! - deregistration is followed by a drain wait before the post-deregister hook;
//! - the post-deregister hook runs only after a clean deregistration, and its exit
//!   code becomes the process's.

/// Where the sidecar is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Resolving groups and running the pre-register hook; nothing registered yet.
    Starting,
    /// Registering in every group.
    Registering,
    /// Waiting for the target to be healthy in every group.
    WaitingHealthy,
    /// Registered (and healthy if waited for): `/readyz` answers 200.
    Ready,
    /// Deregistering from every group.
    Deregistering,
    /// Waiting for the target to leave `draining`.
    Draining,
    /// Running the post-deregister hook.
    PostHook,
    /// Finished with this exit code.
    Done(u8),
}

impl Phase {
    /// Lower-case name for logs, metrics and `/readyz`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Registering => "registering",
            Phase::WaitingHealthy => "waiting-healthy",
            Phase::Ready => "ready",
            Phase::Deregistering => "deregistering",
            Phase::Draining => "draining",
            Phase::PostHook => "post-deregister-hook",
            Phase::Done(_) => "done",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Groups resolved and the pre-register hook (if any) succeeded.
    StartPassed,
    /// A group could not be resolved or the pre-register hook failed.
    StartFailed,
    /// Registered in every group.
    Registered,
    /// Registration failed in some group.
    RegistrationFailed,
    /// Healthy in every group.
    Healthy,
    /// Not healthy in time, or health could not be read.
    HealthyWaitFailed,
    /// SIGTERM or SIGINT.
    Signal,
    /// Deregistered from every group.
    Deregistered,
    /// Deregistration failed in some group.
    DeregistrationFailed,
    /// The drain wait ended (the targets left, or the bound was reached).
    DrainEnded,
    /// The post-deregister hook ended; this is the exit code it stands for.
    PostHookEnded(u8),
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Resolve groups and run the pre-register hook.
    Start,
    /// Register in every group.
    Register,
    /// Wait until healthy everywhere.
    WaitHealthy,
    /// Answer ready and wait for a signal.
    ServeReady,
    /// Deregister from every group.
    Deregister,
    /// Wait for the targets to drain.
    WaitDrain,
    /// Stop waiting for the drain (a second signal: the operator is impatient).
    CutDrainShort,
    /// Run the post-deregister hook.
    RunPostHook,
    /// Nothing new: keep doing what is being done.
    Continue,
    /// Exit with this code.
    Exit(u8),
}

/// The sidecar's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lifecycle {
    phase: Phase,
    wait_healthy: bool,
    has_post_hook: bool,
    /// Set once something failed: the exit code will be non-zero.
    failed: bool,
    /// Set once a signal asked us to stop.
    stopping: bool,
}

impl Lifecycle {
    /// A lifecycle that waits for health if `wait_healthy` and has a post hook if
    /// `has_post_hook`. Returns it with the first action.
    pub(crate) fn new(wait_healthy: bool, has_post_hook: bool) -> (Self, Action) {
        let lifecycle = Lifecycle {
            phase: Phase::Starting,
            wait_healthy,
            has_post_hook,
            failed: false,
            stopping: false,
        };
        (lifecycle, Action::Start)
    }

    /// The current phase.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether `/readyz` answers 200.
    pub(crate) fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Advances on `event` and says what to do next.
    pub(crate) fn on(&mut self, event: Event) -> Action {
        use Event as E;
        use Phase as P;
        let action = match (self.phase, event) {
            (P::Starting, E::StartPassed) => self.go(P::Registering, Action::Register),
            // Nothing is registered yet: leave at once.
            (P::Starting, E::StartFailed) => self.exit(1),
            (P::Starting, E::Signal) => self.exit(0),

            (P::Registering, E::Registered) if self.wait_healthy => {
                self.go(P::WaitingHealthy, Action::WaitHealthy)
            }
            (P::Registering, E::Registered) => self.go(P::Ready, Action::ServeReady),
            (P::Registering | P::WaitingHealthy, E::RegistrationFailed | E::HealthyWaitFailed) => {
                self.failed = true;
                self.go(P::Deregistering, Action::Deregister)
            }
            (P::WaitingHealthy, E::Healthy) => self.go(P::Ready, Action::ServeReady),
            (P::Registering | P::WaitingHealthy | P::Ready, E::Signal) => {
                self.stopping = true;
                self.go(P::Deregistering, Action::Deregister)
            }

            (P::Deregistering, E::Deregistered) => self.go(P::Draining, Action::WaitDrain),
            // Drain what did leave; the failure is remembered and blocks the post hook.
            (P::Deregistering, E::DeregistrationFailed) => {
                self.failed = true;
                self.go(P::Draining, Action::WaitDrain)
            }
            (P::Draining, E::Signal) => Action::CutDrainShort,
            (P::Draining, E::DrainEnded) if self.stopping && !self.failed && self.has_post_hook => {
                self.go(P::PostHook, Action::RunPostHook)
            }
            (P::Draining, E::DrainEnded) => self.exit(u8::from(self.failed)),
            (P::PostHook, E::PostHookEnded(code)) => self.exit(code),

            // Further signals while shutting down change nothing.
            (P::Deregistering | P::PostHook | P::Done(_), E::Signal) => Action::Continue,
            (phase, event) => {
                // A runner bug, not a user error: say so loudly, and end safely.
                tracing::error!(phase = phase.name(), ?event, "unexpected lifecycle event");
                self.failed = true;
                match phase {
                    P::Done(code) => Action::Exit(code),
                    P::Starting => self.exit(1),
                    _ => self.go(P::Deregistering, Action::Deregister),
                }
            }
        };
        action
    }

    fn go(&mut self, phase: Phase, action: Action) -> Action {
        self.phase = phase;
        action
    }

    fn exit(&mut self, code: u8) -> Action {
        self.phase = Phase::Done(code);
        Action::Exit(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action as A;
    use Event as E;

    /// Feeds events, returning the actions.
    fn drive(wait: bool, post: bool, events: &[Event]) -> (Lifecycle, Vec<Action>) {
        let (mut lc, first) = Lifecycle::new(wait, post);
        let mut actions = vec![first];
        for e in events {
            actions.push(lc.on(*e));
        }
        (lc, actions)
    }

    #[test]
    fn happy_path_waits_healthy_then_drains_then_runs_the_post_hook() {
        let (lc, actions) = drive(
            true,
            true,
            &[
                E::StartPassed,
                E::Registered,
                E::Healthy,
                E::Signal,
                E::Deregistered,
                E::DrainEnded,
                E::PostHookEnded(0),
            ],
        );
        assert_eq!(
            actions,
            [
                A::Start,
                A::Register,
                A::WaitHealthy,
                A::ServeReady,
                A::Deregister,
                A::WaitDrain,
                A::RunPostHook,
                A::Exit(0)
            ]
        );
        assert_eq!(lc.phase(), Phase::Done(0));
    }

    #[test]
    fn ready_only_after_healthy() {
        let (mut lc, _) = Lifecycle::new(true, false);
        lc.on(E::StartPassed);
        assert!(!lc.is_ready());
        lc.on(E::Registered);
        assert!(!lc.is_ready(), "registered but not yet healthy");
        lc.on(E::Healthy);
        assert!(lc.is_ready());
        lc.on(E::Signal);
        assert!(!lc.is_ready(), "not ready once shutting down");
    }

    #[test]
    fn without_waiting_ready_after_registration() {
        let (_, actions) = drive(false, false, &[E::StartPassed, E::Registered]);
        assert_eq!(actions.last(), Some(&A::ServeReady));
    }

    #[test]
    fn the_post_hook_exit_code_is_the_process_exit_code() {
        let (_, actions) = drive(
            false,
            true,
            &[
                E::StartPassed,
                E::Registered,
                E::Signal,
                E::Deregistered,
                E::DrainEnded,
                E::PostHookEnded(7),
            ],
        );
        assert_eq!(actions.last(), Some(&A::Exit(7)));
    }

    #[test]
    fn failed_start_registers_nothing_and_exits_1() {
        let (_, actions) = drive(true, true, &[E::StartFailed]);
        assert_eq!(actions, [A::Start, A::Exit(1)]);
    }

    #[test]
    fn failed_registration_or_health_deregisters_and_exits_1_without_the_post_hook() {
        for failure in [E::RegistrationFailed, E::HealthyWaitFailed] {
            let mut events = vec![E::StartPassed];
            if failure == E::HealthyWaitFailed {
                events.push(E::Registered);
            }
            events.extend([failure, E::Deregistered, E::DrainEnded]);
            let (lc, actions) = drive(true, true, &events);
            assert_eq!(
                actions[actions.len() - 3..],
                [A::Deregister, A::WaitDrain, A::Exit(1)],
                "{failure:?}"
            );
            assert!(!lc.is_ready());
        }
    }

    #[test]
    fn a_signal_during_registration_still_deregisters() {
        let (_, actions) = drive(
            true,
            false,
            &[E::StartPassed, E::Signal, E::Deregistered, E::DrainEnded],
        );
        assert_eq!(
            actions,
            [
                A::Start,
                A::Register,
                A::Deregister,
                A::WaitDrain,
                A::Exit(0)
            ]
        );
        let (_, actions) = drive(true, false, &[E::StartPassed, E::Registered, E::Signal]);
        assert_eq!(
            actions.last(),
            Some(&A::Deregister),
            "during the health wait"
        );
    }

    #[test]
    fn a_signal_before_registration_just_exits() {
        let (_, actions) = drive(true, true, &[E::Signal]);
        assert_eq!(actions, [A::Start, A::Exit(0)]);
    }

    #[test]
    fn failed_deregistration_exits_1_and_skips_the_post_hook() {
        let (_, actions) = drive(
            false,
            true,
            &[
                E::StartPassed,
                E::Registered,
                E::Signal,
                E::DeregistrationFailed,
                E::DrainEnded,
            ],
        );
        assert_eq!(actions[actions.len() - 2..], [A::WaitDrain, A::Exit(1)]);
    }

    #[test]
    fn second_signal_cuts_the_drain_short_and_is_otherwise_ignored() {
        let (mut lc, _) = drive(false, false, &[E::StartPassed, E::Registered, E::Signal]);
        assert_eq!(lc.on(E::Signal), A::Continue, "while deregistering");
        lc.on(E::Deregistered);
        assert_eq!(lc.on(E::Signal), A::CutDrainShort);
        assert_eq!(lc.on(E::DrainEnded), A::Exit(0));
    }

    #[test]
    fn an_unexpected_event_ends_safely() {
        let (mut lc, _) = drive(false, false, &[E::StartPassed, E::Registered]);
        // Healthy while Ready is not a valid event: deregister and fail.
        assert_eq!(lc.on(E::Healthy), A::Deregister);
        lc.on(E::Deregistered);
        assert_eq!(lc.on(E::DrainEnded), A::Exit(1));
    }
}
