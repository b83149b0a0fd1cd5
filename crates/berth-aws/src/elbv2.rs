//! ELBv2 target groups: [`ElbTargetGroups`] implements berth-core's
//! [`TargetGroups`] over `aws-sdk-elasticloadbalancingv2`.
//!
//! One API call per trait method: the engine sizes batches and retries. Resolved
//! groups are cached (name and ARN), since a group's identity, type, port and
//! deregistration delay are read on every reconcile and rarely change — but never
//! served stale for long: an entry expires after a bounded TTL, and is dropped at once
//! when AWS answers `TargetGroupNotFound` for its group (deleted, perhaps recreated
//! under the same name with a new ARN).
//!
//! Deregistering a target the group does not have succeeds and is answered (and
//! logged) as "already absent": AWS's `InvalidTarget` refusal, read from the modelled
//! error, means exactly that for `DeregisterTargets` (see `deregister_absent_ok`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_elasticloadbalancingv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_elasticloadbalancingv2::operation::deregister_targets::DeregisterTargetsError;
use aws_sdk_elasticloadbalancingv2::types::{
    TargetDescription, TargetHealthDescription, TargetHealthStateEnum,
};
use aws_sdk_elasticloadbalancingv2::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use berth_core::domain::{
    Registration, Target, TargetGroup, TargetGroupArn, TargetGroupRef, TargetHealth, TargetState,
    TargetType,
};
use berth_core::provider::{Deregistered, TargetGroups};
use berth_core::{Error, Result};

use crate::error::from_sdk;
use crate::CallCounter;

/// The deregistration delay ELBv2 applies when the attribute is absent.
const DEFAULT_DEREGISTRATION_DELAY: Duration = Duration::from_secs(300);
const DEREGISTRATION_DELAY_KEY: &str = "deregistration_delay.timeout_seconds";
/// How long a resolved group is trusted by default: a changed deregistration delay or
/// port is seen within this long.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

/// ELBv2 target groups through the AWS SDK.
#[derive(Debug)]
pub struct ElbTargetGroups {
    client: Client,
    /// Resolved groups by name and by ARN, with when they were resolved.
    cache: Mutex<HashMap<String, (TargetGroup, Instant)>>,
    ttl: Duration,
}

impl ElbTargetGroups {
    /// A client from the shared configuration, counting its calls in `counter`.
    pub fn new(config: &SdkConfig, counter: CallCounter) -> Self {
        let config = aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
            .interceptor(counter)
            .build();
        ElbTargetGroups {
            client: Client::from_conf(config),
            cache: Mutex::new(HashMap::new()),
            ttl: DEFAULT_CACHE_TTL,
        }
    }

    /// Trusts a resolved group for `ttl` (zero: never cache).
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The underlying SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Forgets every resolved group (e.g. after a group was recreated).
    pub fn clear_cache(&self) {
        self.cache().clear();
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (TargetGroup, Instant)>> {
        // A map of immutable values cannot be left half-updated by a panic.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached group under `key`, if resolved less than the TTL ago.
    fn cached(&self, key: &str) -> Option<TargetGroup> {
        let mut cache = self.cache();
        match cache.get(key) {
            Some((group, at)) if at.elapsed() < self.ttl => Some(group.clone()),
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }

    /// Drops every entry of the group with this ARN (under its name and its ARN).
    fn forget(&self, arn: &TargetGroupArn) {
        self.cache().retain(|_, (group, _)| &group.arn != arn);
    }

    /// Passes `result` through, dropping the group from the cache if AWS says it is
    /// gone.
    fn seen<T>(&self, group: &TargetGroupArn, result: Result<T>) -> Result<T> {
        if let Err(Error::NotFound { .. }) = &result {
            tracing::debug!(group = %group, "target group not found; dropped from the cache");
            self.forget(group);
        }
        result
    }

    async fn describe_group(&self, group: &TargetGroupRef) -> Result<TargetGroup> {
        let request = self.client.describe_target_groups();
        let request = match group {
            TargetGroupRef::Arn(arn) => request.target_group_arns(arn.as_str()),
            TargetGroupRef::Name(name) => request.names(name),
        };
        let output = request
            .send()
            .await
            .map_err(|e| match failed("DescribeTargetGroups", e) {
                Error::NotFound { .. } => Error::not_found(format!("target group {group}")),
                other => other,
            })?;
        let found = output
            .target_groups()
            .first()
            .ok_or_else(|| Error::not_found(format!("target group {group}")))?;
        let arn = TargetGroupArn::new(found.target_group_arn().unwrap_or_default())?;
        let target_type = found
            .target_type()
            .map_or(Ok(TargetType::Instance), |t| t.as_str().parse())?;
        let port = found
            .port()
            .map(|p| u16::try_from(p).map_err(|_| Error::invalid(format!("target group port {p}"))))
            .transpose()?;
        let deregistration_delay = self.deregistration_delay(&arn).await?;
        Ok(TargetGroup {
            name: found
                .target_group_name()
                .map_or_else(|| arn.name().to_owned(), str::to_owned),
            arn,
            target_type,
            port,
            deregistration_delay,
        })
    }

    async fn deregistration_delay(&self, arn: &TargetGroupArn) -> Result<Duration> {
        let output = self
            .client
            .describe_target_group_attributes()
            .target_group_arn(arn.as_str())
            .send()
            .await
            .map_err(|e| failed("DescribeTargetGroupAttributes", e))?;
        let value = output
            .attributes()
            .iter()
            .find(|a| a.key() == Some(DEREGISTRATION_DELAY_KEY))
            .and_then(|a| a.value());
        match value {
            None => Ok(DEFAULT_DEREGISTRATION_DELAY),
            Some(seconds) => seconds
                .parse()
                .map(Duration::from_secs)
                .map_err(|_| Error::invalid(format!("{DEREGISTRATION_DELAY_KEY} is {seconds:?}"))),
        }
    }
}

#[async_trait]
impl TargetGroups for ElbTargetGroups {
    async fn resolve(&self, group: &TargetGroupRef) -> Result<TargetGroup> {
        let key = group.to_string();
        if let Some(cached) = self.cached(&key) {
            return Ok(cached);
        }
        let resolved = match self.describe_group(group).await {
            Ok(resolved) => resolved,
            Err(e) => {
                if let (Error::NotFound { .. }, TargetGroupRef::Arn(arn)) = (&e, group) {
                    self.forget(arn);
                }
                return Err(e);
            }
        };
        if !self.ttl.is_zero() {
            let now = Instant::now();
            let mut cache = self.cache();
            // A recreated group has a new ARN: entries of the old one go with its name.
            cache.retain(|_, (g, _)| g.name != resolved.name);
            cache.insert(resolved.name.clone(), (resolved.clone(), now));
            cache.insert(resolved.arn.to_string(), (resolved.clone(), now));
        }
        Ok(resolved)
    }

    async fn health(&self, group: &TargetGroupArn) -> Result<Vec<TargetHealth>> {
        let result = self.health_call(group).await;
        self.seen(group, result)
    }

    async fn register(&self, group: &TargetGroupArn, targets: &[Registration]) -> Result<()> {
        let result = self.register_call(group, targets).await;
        self.seen(group, result)
    }

    async fn deregister(&self, group: &TargetGroupArn, targets: &[Target]) -> Result<Deregistered> {
        let result = self.deregister_absent_ok(group, targets).await;
        self.seen(group, result)
    }
}

impl ElbTargetGroups {
    async fn health_call(&self, group: &TargetGroupArn) -> Result<Vec<TargetHealth>> {
        let output = self
            .client
            .describe_target_health()
            .target_group_arn(group.as_str())
            .send()
            .await
            .map_err(|e| failed("DescribeTargetHealth", e))?;
        output
            .target_health_descriptions()
            .iter()
            .map(target_health)
            .collect()
    }

    async fn register_call(&self, group: &TargetGroupArn, targets: &[Registration]) -> Result<()> {
        if targets.is_empty() {
            return Ok(());
        }
        let descriptions = targets
            .iter()
            .map(|r| describe_target(&r.target, r.availability_zone.as_deref()))
            .collect();
        self.client
            .register_targets()
            .target_group_arn(group.as_str())
            .set_targets(Some(descriptions))
            .send()
            .await
            .map_err(|e| failed("RegisterTargets", e))?;
        Ok(())
    }

    /// Deregistering an absent target succeeds (the trait's promise), but ELBv2
    /// refuses the whole call with `InvalidTarget` when one target is not registered
    /// (AWS: "The following targets are not registered in target group"; moto: "The
    /// specified target does not exist"). The refusal is read from the modelled error
    /// variant, never from its message:
    /// - one target refused: it is absent, and that is the answer;
    /// - a batch refused: the membership is read (one call), the targets it lists are
    ///   deregistered again, and should that be refused too (the read disagrees with
    ///   the refusal: a stale read, or a target AWS no longer counts as registered)
    ///   each of them alone, where a refusal again means absent.
    ///
    /// Every target found absent is answered (and logged) as such: nothing is said to
    /// have left that was not there. This relies on AWS refusing the whole call; a
    /// service that removes the targets before the refused one (moto) has those
    /// answered absent after a batch refusal.
    async fn deregister_absent_ok(
        &self,
        group: &TargetGroupArn,
        targets: &[Target],
    ) -> Result<Deregistered> {
        if targets.is_empty() {
            return Ok(Deregistered::default());
        }
        match self.deregister_call(group, targets).await {
            Ok(()) => return Ok(Deregistered::removed(targets)),
            Err(Refused::NotRegistered) if targets.len() == 1 => {
                return Ok(already_absent(group, Deregistered::absent(targets)));
            }
            Err(Refused::NotRegistered) => {}
            Err(Refused::Other(err)) => return Err(err),
        }
        let members = self.health_call(group).await?;
        let (present, absent): (Vec<Target>, Vec<Target>) = targets
            .iter()
            .cloned()
            .partition(|t| members.iter().any(|m| &m.target == t));
        let mut answer = Deregistered {
            removed: Vec::new(),
            absent,
        };
        if present.is_empty() {
            return Ok(already_absent(group, answer));
        }
        if !answer.absent.is_empty() {
            match self.deregister_call(group, &present).await {
                Ok(()) => {
                    answer.removed = present;
                    return Ok(already_absent(group, answer));
                }
                Err(Refused::NotRegistered) => {}
                Err(Refused::Other(err)) => return Err(err),
            }
        }
        for target in present {
            match self
                .deregister_call(group, std::slice::from_ref(&target))
                .await
            {
                Ok(()) => answer.removed.push(target),
                Err(Refused::NotRegistered) => answer.absent.push(target),
                Err(Refused::Other(err)) => return Err(err),
            }
        }
        Ok(already_absent(group, answer))
    }
}

/// Logs the targets a deregistration found not registered, and passes the answer on.
fn already_absent(group: &TargetGroupArn, answer: Deregistered) -> Deregistered {
    for target in &answer.absent {
        tracing::info!(
            group = %group,
            %target,
            "target not registered in the group: already absent, nothing to deregister"
        );
    }
    answer
}

/// Why `DeregisterTargets` failed.
enum Refused {
    /// `InvalidTarget`: a target of the call is not registered in the group.
    NotRegistered,
    /// Anything else (`TargetGroupNotFound` included).
    Other(Error),
}

impl ElbTargetGroups {
    async fn deregister_call(
        &self,
        group: &TargetGroupArn,
        targets: &[Target],
    ) -> std::result::Result<(), Refused> {
        let descriptions = targets.iter().map(|t| describe_target(t, None)).collect();
        let result = self
            .client
            .deregister_targets()
            .target_group_arn(group.as_str())
            .set_targets(Some(descriptions))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(DeregisterTargetsError::is_invalid_target_exception) =>
            {
                Err(Refused::NotRegistered)
            }
            Err(err) => Err(Refused::Other(failed("DeregisterTargets", err))),
        }
    }
}

/// Maps an SDK error of an ELBv2 operation, naming its IAM action.
fn failed<E>(operation: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    from_sdk(operation, &format!("elasticloadbalancing:{operation}"), err)
}

fn describe_target(target: &Target, zone: Option<&str>) -> TargetDescription {
    TargetDescription::builder()
        .id(target.id.as_ref())
        .port(i32::from(target.port))
        .set_availability_zone(zone.map(str::to_owned))
        .build()
}

fn target_health(description: &TargetHealthDescription) -> Result<TargetHealth> {
    let target = description
        .target()
        .ok_or_else(|| Error::invalid("DescribeTargetHealth returned a row without a target"))?;
    let port = target.port().unwrap_or_default();
    let port = u16::try_from(port).map_err(|_| Error::invalid(format!("target port {port}")))?;
    let health = description.target_health();
    Ok(TargetHealth {
        target: Target::new(target.id().unwrap_or_default(), port),
        state: health
            .and_then(|h| h.state())
            .map_or(TargetState::Unavailable, target_state),
        reason: health
            .and_then(|h| h.reason())
            .map(|r| r.as_str().to_owned()),
    })
}

fn target_state(state: &TargetHealthStateEnum) -> TargetState {
    match state {
        TargetHealthStateEnum::Initial => TargetState::Initial,
        TargetHealthStateEnum::Healthy => TargetState::Healthy,
        TargetHealthStateEnum::Unhealthy => TargetState::Unhealthy,
        TargetHealthStateEnum::Unused => TargetState::Unused,
        // Leaving the group either way: never re-register it.
        TargetHealthStateEnum::Draining | TargetHealthStateEnum::UnhealthyDraining => {
            TargetState::Draining
        }
        // Unavailable, and states added to the API after this was written: not serving.
        _ => TargetState::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_carry_port_and_zone() {
        let target = Target::new("10.1.2.3", 8080);
        let described = describe_target(&target, Some("all"));
        assert_eq!(described.id(), Some("10.1.2.3"));
        assert_eq!(described.port(), Some(8080));
        assert_eq!(described.availability_zone(), Some("all"));
        assert_eq!(describe_target(&target, None).availability_zone(), None);
    }

    #[test]
    fn draining_variants_are_draining() {
        assert_eq!(
            target_state(&TargetHealthStateEnum::UnhealthyDraining),
            TargetState::Draining
        );
        assert_eq!(
            target_state(&TargetHealthStateEnum::from("brand-new")),
            TargetState::Unavailable
        );
        assert_eq!(
            target_state(&TargetHealthStateEnum::Initial),
            TargetState::Initial
        );
    }
}
