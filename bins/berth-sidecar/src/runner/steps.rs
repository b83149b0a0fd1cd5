//! The steps the run loop performs: resolve, register, wait, deregister, drain, hooks.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use berth_core::domain::{Target, TargetType};
use berth_core::engine::{Leaving, Status as ChangeStatus};
use berth_core::plan::MembershipChange as Change;
use berth_core::provider::PollPolicy;
use berth_core::workflow::{JoinFailure, Slot};
use futures::future::join_all;

use super::{delays, Runner};
use crate::args::drain_bound;
use crate::duration::format_go_duration;
use crate::hook::{self, Hook};

impl Runner {
    /// Resolves every group, computes the target in each, runs the pre-register hook.
    pub(super) async fn start(&self) -> anyhow::Result<Vec<Slot>> {
        let s = &self.settings;
        let slots = self
            .resolve()
            .await
            .inspect_err(|_| self.status.metrics.failed("resolve"))?;
        if let Some(h) = &s.pre_register {
            tracing::info!(command = %h.command, "running the pre-register command");
            let run = hook::run(h, &s.target_id).await;
            if !run.succeeded() {
                self.status.metrics.failed("pre_register_hook");
                return Err(anyhow!(
                    "pre-register command {}; nothing was registered",
                    run.describe(h)
                ));
            }
            tracing::info!(output = %run.output.trim(), "pre-register command succeeded");
        }
        Ok(slots)
    }

    async fn resolve(&self) -> anyhow::Result<Vec<Slot>> {
        let s = &self.settings;
        let resolved = join_all(s.groups.iter().map(|g| async move {
            let provider = self.provider.as_ref();
            let r = self
                .slots
                .engine()
                .caller()
                .call("DescribeTargetGroups", || provider.resolve(g))
                .await;
            r.with_context(|| format!("cannot resolve target group {g}"))
        }))
        .await;
        let mut slots = Vec::new();
        for group in resolved {
            let group = group?;
            if group.target_type == TargetType::Instance {
                anyhow::bail!(
                    "target group {} has target type `instance`; berth-sidecar registers IP \
                     targets (use berth-daemon for instances)",
                    group.name
                );
            }
            let port = group
                .resolve_port(s.port)
                .with_context(|| format!("no port for target group {}", group.name))?;
            let target = Target::new(&s.target_id, port);
            tracing::info!(group = %group.name, arn = %group.arn, %target, "resolved target group");
            slots.push(Slot { group, target });
        }
        Ok(slots)
    }

    pub(super) async fn register(&self, slots: &[Slot]) -> anyhow::Result<()> {
        // A target still draining from a previous life is waited out for as long as
        // the health wait (else the drain bound) allows.
        let bound = self
            .settings
            .wait_in_service
            .unwrap_or_else(|| drain_bound(self.settings.drain_timeout, &delays(slots)));
        let report = self
            .slots
            .register(slots, self.poll(bound))
            .await
            .map_err(join_failure)?;
        for outcome in &report.outcomes {
            if let (Change::Register { group, targets }, ChangeStatus::Done) =
                (&outcome.change, &outcome.status)
            {
                let name = group.name();
                for t in targets {
                    tracing::info!(group = name, target = %t.target, "registered");
                    self.status.metrics.registered(name);
                }
            }
        }
        if let Some((change, e)) = report.errors().next() {
            return Err(anyhow!("{change} failed: {e}"));
        }
        Ok(())
    }

    pub(super) async fn wait_healthy(&self, slots: &[Slot]) -> anyhow::Result<()> {
        let Some(bound) = self.settings.wait_in_service else {
            return Ok(());
        };
        let waited = self.slots.wait_healthy(slots, self.poll(bound)).await;
        let failures = slots
            .iter()
            .zip(waited)
            .filter_map(|(slot, w)| w.err().map(|e| (slot, e)));
        let mut messages = Vec::new();
        for (slot, e) in failures {
            messages.push(format!(
                "{} in {}: {e}; last state: {}",
                slot.target,
                slot.group.name,
                self.last_state(slot).await
            ));
        }
        if messages.is_empty() {
            return Ok(());
        }
        Err(anyhow!("{}", messages.join("; ")).context(format!(
            "the target did not become healthy within {}",
            format_go_duration(bound)
        )))
    }

    async fn last_state(&self, slot: &Slot) -> String {
        match self.slots.state(slot).await {
            Ok(Some(h)) => match h.reason {
                Some(reason) => format!("{} ({reason})", h.state),
                None => h.state.to_string(),
            },
            Ok(None) => "not registered".to_owned(),
            Err(e) => format!("unknown ({e})"),
        }
    }

    /// Deregisters from every group (absent targets included: a cancelled
    /// registration may have reached AWS). Returns the groups being left, to drain,
    /// and the failure.
    pub(super) async fn deregister(&self, slots: &[Slot]) -> (Vec<Leaving>, Option<anyhow::Error>) {
        let leaving = self.slots.deregister(slots).await;
        let mut errors = Vec::new();
        for (slot, left) in slots.iter().zip(&leaving) {
            let outcome = left.outcome();
            // Removed by someone else (an operator, the daemon's GC) or never registered
            // (a cancelled registration): nothing was deregistered, and that is said.
            if outcome.absent.contains(&slot.target) {
                tracing::info!(group = %slot.group.name, target = %slot.target, "already absent; nothing to deregister");
                self.status.metrics.already_absent(&slot.group.name);
            } else if outcome.removed.contains(&slot.target) {
                tracing::info!(group = %slot.group.name, target = %slot.target, "deregistered");
                self.status.metrics.deregistered(&slot.group.name);
            }
            for (change, e) in left.report.errors() {
                errors.push(format!("{change} failed: {e}"));
            }
        }
        let error =
            (!errors.is_empty()).then(|| anyhow!("deregistration failed: {}", errors.join("; ")));
        (leaving, error)
    }

    /// Waits until the target has left `draining` in every group it left, bounded.
    pub(super) async fn drain(&self, leaving: Vec<Leaving>, delays: Vec<Duration>) {
        let bound = drain_bound(self.settings.drain_timeout, &delays);
        tracing::info!(bound = %format_go_duration(bound), "waiting for the target to drain");
        let poll = self.poll(bound);
        let drains = leaving.into_iter().map(|left| async move {
            let group = left.group().name().to_owned();
            (group, left.drain(poll).await)
        });
        for (group, drained) in join_all(drains).await {
            match drained.drain {
                // The deregistration failed, or the target was already absent: nothing
                // to wait for.
                None => {}
                Some(Ok(took)) => {
                    tracing::info!(group, took = %format_go_duration(took), "drained")
                }
                Some(Err(e)) => {
                    self.status.metrics.failed("drain");
                    tracing::warn!(group, error = %e, "drain not finished within its bound; going on");
                }
            }
        }
    }

    pub(super) async fn post_hook(&self, h: &Hook, error: &mut Option<anyhow::Error>) -> u8 {
        tracing::info!(command = %h.command, "running the post-deregister command");
        let run = hook::run(h, &self.settings.target_id).await;
        let code = run.exit_code();
        if code == 0 {
            tracing::info!(output = %run.output.trim(), "post-deregister command succeeded");
        } else {
            self.status.metrics.failed("post_deregister_hook");
            tracing::error!(code, "post-deregister command failed");
            *error = Some(anyhow!("post-deregister command {}", run.describe(h)));
        }
        code
    }

    /// Resolves the groups and prints the plan (dry run): no hook, no change.
    pub(crate) async fn dry_run(&self) -> anyhow::Result<String> {
        let slots = self.resolve().await?;
        let plan = self
            .slots
            .plan_registration(&slots)
            .await
            .map_err(join_failure)?;
        let mut out = String::new();
        if let Some(h) = &self.settings.pre_register {
            out.push_str(&format!(
                "would run the pre-register command {:?}\n",
                h.command
            ));
        }
        out.push_str(&format!("would apply on start:\n{plan}"));
        out.push_str("would apply on SIGTERM/SIGINT:\n");
        for slot in &slots {
            out.push_str(&format!(
                "deregister {} from {} and wait up to {} for it to drain\n",
                slot.target,
                slot.group.name,
                format_go_duration(drain_bound(self.settings.drain_timeout, &delays(&slots)))
            ));
        }
        if let Some(h) = &self.settings.post_deregister {
            out.push_str(&format!(
                "then run the post-deregister command {:?}\n",
                h.command
            ));
        }
        Ok(out)
    }

    pub(super) fn poll(&self, deadline: Duration) -> PollPolicy {
        let (initial, max) = self.settings.poll;
        PollPolicy {
            initial,
            max,
            deadline,
        }
    }
}

/// A registration that did not start, with the provider's error as its source.
fn join_failure(failure: JoinFailure) -> anyhow::Error {
    let context = failure.to_string();
    anyhow::Error::new(failure.error().clone()).context(context)
}
