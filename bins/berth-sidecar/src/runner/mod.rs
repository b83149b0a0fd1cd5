//! Performs the [`Lifecycle`]'s actions through berth-core's [`TargetSlots`]
//! workflow: resolve, pre-register hook, register (observed, planned and applied in
//! berth-core), wait healthy, serve ready, deregister and drain (the engine's
//! `deregister` and `Leaving::drain`, the halves of `deregister_and_drain`),
//! post-deregister hook. Works over any [`TargetGroups`].

use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::TargetGroupRef;
use berth_core::engine::{ApplyOptions, Engine, Leaving, MembershipProviders};
use berth_core::provider::{OwnedByConstruction, TargetGroups, TargetOwnership};
use berth_core::workflow::{Slot, TargetSlots};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::duration::format_go_duration;
use crate::hook::Hook;
use crate::lifecycle::{Action, Event, Lifecycle};
use crate::status::Status;

/// What the runner needs from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Groups to resolve.
    pub(crate) groups: Vec<TargetGroupRef>,
    /// The pod IP.
    pub(crate) target_id: String,
    /// Explicit port.
    pub(crate) port: Option<u16>,
    /// Explicit Availability Zone.
    pub(crate) availability_zone: Option<String>,
    /// Before registering.
    pub(crate) pre_register: Option<Hook>,
    /// After deregistering and draining.
    pub(crate) post_deregister: Option<Hook>,
    /// Health wait bound; `None`: do not wait.
    pub(crate) wait_in_service: Option<Duration>,
    /// Explicit drain bound.
    pub(crate) drain_timeout: Option<Duration>,
    /// First and longest delay between two health polls.
    pub(crate) poll: (Duration, Duration),
}

/// How the run ended: the exit code and, unless it is 0, why.
#[derive(Debug)]
pub(crate) struct Finish {
    /// Process exit code.
    pub(crate) code: u8,
    /// What went wrong.
    pub(crate) error: Option<anyhow::Error>,
}

/// Drives one sidecar life.
pub(crate) struct Runner {
    provider: Arc<dyn TargetGroups>,
    /// Where registrations are recorded (`OwnedByConstruction`: nowhere; see
    /// `crate::record`).
    ownership: Arc<dyn TargetOwnership>,
    /// The workflow over the same target groups.
    slots: TargetSlots,
    settings: Settings,
    status: Arc<Status>,
}

impl Runner {
    /// A runner over `provider`, publishing to `status`.
    pub(crate) fn new(
        provider: Arc<dyn TargetGroups>,
        settings: Settings,
        status: Arc<Status>,
    ) -> Self {
        let ownership: Arc<dyn TargetOwnership> = Arc::new(OwnedByConstruction);
        Runner {
            slots: slots(&provider, &ownership, Engine::default(), &settings),
            provider,
            ownership,
            settings,
            status,
        }
    }

    /// Spaces the engine's AWS calls by at least `interval` (`--aws-max-rps`).
    pub(crate) fn min_call_interval(mut self, interval: Duration) -> Self {
        let options = ApplyOptions {
            min_call_interval: interval,
            ..self.slots.engine().options().clone()
        };
        self.slots = slots(
            &self.provider,
            &self.ownership,
            Engine::new(options),
            &self.settings,
        );
        self
    }

    /// Records every registration in `ownership` (claimed before `RegisterTargets`,
    /// released after `DeregisterTargets`).
    pub(crate) fn record_in(mut self, ownership: Arc<dyn TargetOwnership>) -> Self {
        self.ownership = ownership;
        let engine = self.slots.engine().clone();
        self.slots = slots(&self.provider, &self.ownership, engine, &self.settings);
        self
    }

    /// Runs until the lifecycle ends. `signals` delivers SIGTERM/SIGINT (by name).
    pub(crate) async fn run(&self, mut signals: mpsc::UnboundedReceiver<&'static str>) -> Finish {
        let s = &self.settings;
        let (mut lifecycle, mut action) =
            Lifecycle::new(s.wait_in_service.is_some(), s.post_deregister.is_some());
        let mut slots: Vec<Slot> = Vec::new();
        let mut leaving: Vec<Leaving> = Vec::new();
        let mut error: Option<anyhow::Error> = None;
        let mut stop_asked = Instant::now();
        let mut registering_since = Instant::now();
        loop {
            self.status.set(lifecycle.phase(), lifecycle.is_ready());
            let event = match action {
                Action::Start => tokio::select! {
                    started = self.start() => match started {
                        Ok(resolved) => { slots = resolved; Event::StartPassed }
                        Err(e) => { error = Some(e); Event::StartFailed }
                    },
                    name = next_signal(&mut signals) => { stop_asked = signalled(name); Event::Signal }
                },
                Action::Register => {
                    registering_since = Instant::now();
                    tokio::select! {
                        registered = self.register(&slots) => match registered {
                            Ok(()) => Event::Registered,
                            Err(e) => { self.status.metrics.failed("register"); error = Some(e); Event::RegistrationFailed }
                        },
                        name = next_signal(&mut signals) => {
                            tracing::warn!("registration cancelled by the signal; deregistering what may have been registered");
                            stop_asked = signalled(name);
                            Event::Signal
                        }
                    }
                }
                Action::WaitHealthy => tokio::select! {
                    healthy = self.wait_healthy(&slots) => match healthy {
                        Ok(()) => {
                            let took = registering_since.elapsed();
                            self.status.metrics.healthy_after(took);
                            tracing::info!(took = %format_go_duration(took), "healthy in every target group");
                            Event::Healthy
                        }
                        Err(e) => { self.status.metrics.failed("wait_healthy"); error = Some(e); Event::HealthyWaitFailed }
                    },
                    name = next_signal(&mut signals) => { stop_asked = signalled(name); Event::Signal }
                },
                Action::ServeReady => {
                    tracing::info!(target = %s.target_id, groups = slots.len(), "ready; waiting for SIGTERM or SIGINT");
                    stop_asked = signalled(next_signal(&mut signals).await);
                    Event::Signal
                }
                Action::Deregister => {
                    let (left, failure) = self.deregister(&slots).await;
                    leaving = left;
                    match failure {
                        None => Event::Deregistered,
                        Some(e) => {
                            self.status.metrics.failed("deregister");
                            error = Some(error.map_or(e, |first| {
                                first.context("and then deregistration failed")
                            }));
                            Event::DeregistrationFailed
                        }
                    }
                }
                Action::WaitDrain => {
                    let drain = self.drain(std::mem::take(&mut leaving), delays(&slots));
                    tokio::pin!(drain);
                    loop {
                        tokio::select! {
                            () = &mut drain => break,
                            name = next_signal(&mut signals) => {
                                if lifecycle.on(Event::Signal) == Action::CutDrainShort {
                                    tracing::warn!(signal = name, "second signal: no longer waiting for the drain");
                                    break;
                                }
                            }
                        }
                    }
                    let took = stop_asked.elapsed();
                    self.status.metrics.drained_after(took);
                    Event::DrainEnded
                }
                Action::RunPostHook => {
                    let code = match &s.post_deregister {
                        Some(h) => self.post_hook(h, &mut error).await,
                        None => 0,
                    };
                    Event::PostHookEnded(code)
                }
                Action::Exit(code) => {
                    self.status.set(lifecycle.phase(), false);
                    return Finish { code, error };
                }
                // Only produced inside the drain wait above.
                Action::Continue | Action::CutDrainShort => Event::DrainEnded,
            };
            action = lifecycle.on(event);
        }
    }
}

fn slots(
    provider: &Arc<dyn TargetGroups>,
    ownership: &Arc<dyn TargetOwnership>,
    engine: Engine,
    settings: &Settings,
) -> TargetSlots {
    let providers = MembershipProviders::new(provider.clone(), ownership.clone());
    TargetSlots::new(engine, providers).availability_zone(settings.availability_zone.clone())
}

fn delays(slots: &[Slot]) -> Vec<Duration> {
    slots.iter().map(|s| s.group.deregistration_delay).collect()
}

fn signalled(name: &'static str) -> Instant {
    tracing::info!(signal = name, "signal received; deregistering");
    Instant::now()
}

/// The next signal; never, if the sender is gone.
async fn next_signal(signals: &mut mpsc::UnboundedReceiver<&'static str>) -> &'static str {
    match signals.recv().await {
        Some(name) => name,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod record_tests;
mod steps;
#[cfg(test)]
mod tests;
