//! The steps the run loop performs: resolve, register, wait, deregister, drain, hooks.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use berth_core::domain::{Target, TargetType};
use berth_core::engine::{wait_for_targets, Status as ChangeStatus, WaitFor};
use berth_core::plan::{
    plan_membership, DesiredMembership, MembershipChange as Change, ObservedMembership, Plan,
};
use berth_core::provider::{OwnedTargets, PollPolicy};
use futures::future::join_all;

use super::{delays, Runner, Slot};
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
                .engine
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

    /// The plan that registers the target where it is missing. A target still
    /// draining from a previous life of this pod is waited out first, never
    /// re-registered mid-drain.
    async fn plan_registration(&self, slots: &[Slot]) -> anyhow::Result<Plan<Change>> {
        let mut desired = DesiredMembership::new();
        let mut observed = ObservedMembership::new();
        for slot in slots {
            let arn = &slot.group.arn;
            desired.want_target(
                arn,
                slot.target.clone(),
                self.settings.availability_zone.clone(),
            );
            let provider = self.provider.as_ref();
            let health = self
                .engine
                .caller()
                .call("DescribeTargetHealth", || provider.health(arn))
                .await;
            let health = health
                .with_context(|| format!("cannot read the targets of {}", slot.group.name))?;
            observed.observe(arn, health);
        }
        let plan = plan_membership(&desired, &observed, &OwnedTargets::new());
        for slot in slots {
            let state = observed.state(&slot.group.arn, &slot.target);
            if state.is_some_and(|s| !s.is_draining()) {
                tracing::info!(group = %slot.group.name, target = %slot.target, "already registered (a restart); keeping it");
            }
        }
        Ok(plan)
    }

    pub(super) async fn register(&self, slots: &[Slot]) -> anyhow::Result<()> {
        let mut plan = self.plan_registration(slots).await?;
        if !plan.skipped.is_empty() {
            for skip in &plan.skipped {
                tracing::info!(subject = %skip.subject, reason = %skip.reason, "waiting before registering");
            }
            let bound = self
                .settings
                .wait_in_service
                .unwrap_or_else(|| drain_bound(self.settings.drain_timeout, &delays(slots)));
            let waits = slots.iter().map(|slot| {
                wait_for_targets(
                    self.provider.as_ref(),
                    &slot.group.arn,
                    std::slice::from_ref(&slot.target),
                    WaitFor::Gone,
                    self.poll(bound),
                )
            });
            for waited in join_all(waits).await {
                waited.context("the target is still draining from a previous run")?;
            }
            plan = self.plan_registration(slots).await?;
        }
        let report = self.engine.apply(&self.providers, &plan).await;
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
        let waits = slots.iter().map(|slot| async move {
            let targets = std::slice::from_ref(&slot.target);
            match wait_for_targets(
                self.provider.as_ref(),
                &slot.group.arn,
                targets,
                WaitFor::Healthy,
                self.poll(bound),
            )
            .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(anyhow!(
                    "{} in {}: {e}; last state: {}",
                    slot.target,
                    slot.group.name,
                    self.last_state(slot).await
                )),
            }
        });
        let failures: Vec<anyhow::Error> = join_all(waits)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        match failures.into_iter().reduce(|a, b| anyhow!("{a}; {b}")) {
            None => Ok(()),
            Some(e) => Err(e.context(format!(
                "the target did not become healthy within {}",
                format_go_duration(bound)
            ))),
        }
    }

    async fn last_state(&self, slot: &Slot) -> String {
        match self.provider.health(&slot.group.arn).await {
            Ok(health) => match health.into_iter().find(|h| h.target == slot.target) {
                Some(h) => match h.reason {
                    Some(reason) => format!("{} ({reason})", h.state),
                    None => h.state.to_string(),
                },
                None => "not registered".to_owned(),
            },
            Err(e) => format!("unknown ({e})"),
        }
    }

    /// Deregisters from every group (absent targets included: a cancelled
    /// registration may have reached AWS). Returns the groups it left and the failure.
    pub(super) async fn deregister(&self, slots: &[Slot]) -> (Vec<Slot>, Option<anyhow::Error>) {
        let plan = Plan {
            changes: slots
                .iter()
                .map(|slot| Change::Deregister {
                    group: slot.group.arn.clone(),
                    targets: vec![slot.target.clone()],
                })
                .collect(),
            skipped: Vec::new(),
        };
        let report = self.engine.apply(&self.providers, &plan).await;
        let mut left = Vec::new();
        let mut errors = Vec::new();
        for outcome in &report.outcomes {
            let Change::Deregister { group, targets } = &outcome.change else {
                continue;
            };
            match &outcome.status {
                ChangeStatus::Failed(e) => errors.push(format!("{} failed: {e}", outcome.change)),
                _ => {
                    tracing::info!(group = group.name(), targets = ?targets.iter().map(ToString::to_string).collect::<Vec<_>>(), "deregistered");
                    self.status.metrics.deregistered(group.name());
                    left.extend(slots.iter().filter(|s| &s.group.arn == group).cloned());
                }
            }
        }
        let error =
            (!errors.is_empty()).then(|| anyhow!("deregistration failed: {}", errors.join("; ")));
        (left, error)
    }

    /// Waits until the target has left `draining` in every group, bounded.
    pub(super) async fn drain(&self, slots: &[Slot]) {
        let bound = drain_bound(self.settings.drain_timeout, &delays(slots));
        tracing::info!(bound = %format_go_duration(bound), "waiting for the target to drain");
        let waits = slots.iter().map(|slot| async move {
            let targets = std::slice::from_ref(&slot.target);
            let waited = wait_for_targets(
                self.provider.as_ref(),
                &slot.group.arn,
                targets,
                WaitFor::Gone,
                self.poll(bound),
            )
            .await;
            (slot, waited)
        });
        for (slot, waited) in join_all(waits).await {
            match waited {
                Ok(took) => {
                    tracing::info!(group = %slot.group.name, took = %format_go_duration(took), "drained")
                }
                Err(e) => {
                    self.status.metrics.failed("drain");
                    tracing::warn!(group = %slot.group.name, error = %e, "drain not finished within its bound; going on");
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
        let plan = self.plan_registration(&slots).await?;
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
