//! ELBv2 target groups: [`ElbTargetGroups`] implements berth-core's
//! [`TargetGroups`] over `aws-sdk-elasticloadbalancingv2`.
//!
//! One API call per trait method: the engine sizes batches and retries. Resolved
//! groups are cached (see [`group_cache`]): a group's ARN, type and port never change,
//! so they are kept until AWS answers `TargetGroupNotFound` for the group (deleted,
//! perhaps recreated under the same name with a new ARN); its deregistration delay can
//! change, so [`TargetGroups::deregistration_delay`] re-reads it when the copy is older
//! than [`DEFAULT_DELAY_TTL`]. A steady pass over resolved groups makes no resolution
//! call at all.
//!
//! Deregistering a target the group does not have succeeds and is answered (and
//! logged) as "already absent": AWS's `InvalidTarget` refusal, read from the modelled
//! error, means exactly that for `DeregisterTargets` (see `deregister_absent_ok`).

pub mod group_cache;

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

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
pub use group_cache::Clock;
use group_cache::GroupCache;

/// The deregistration delay ELBv2 applies when the attribute is absent.
const DEFAULT_DEREGISTRATION_DELAY: Duration = Duration::from_secs(300);
const DEREGISTRATION_DELAY_KEY: &str = "deregistration_delay.timeout_seconds";
/// How long a deregistration delay read from AWS is trusted by default: a changed
/// delay is seen by the first drain that begins this long after the last read.
pub const DEFAULT_DELAY_TTL: Duration = Duration::from_secs(60);

/// ELBv2 target groups through the AWS SDK.
#[derive(Debug)]
pub struct ElbTargetGroups {
    client: Client,
    cache: Mutex<GroupCache>,
    delay_ttl: Duration,
    clock: Clock,
}

impl ElbTargetGroups {
    /// A client from the shared configuration, counting its calls in `counter`.
    pub fn new(config: &SdkConfig, counter: CallCounter) -> Self {
        let config = aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
            .interceptor(counter)
            .build();
        ElbTargetGroups {
            client: Client::from_conf(config),
            cache: Mutex::new(GroupCache::default()),
            delay_ttl: DEFAULT_DELAY_TTL,
            clock: Clock::default(),
        }
    }

    /// Trusts a deregistration delay read from AWS for `ttl` (zero: read it for every
    /// drain).
    pub fn with_delay_ttl(mut self, ttl: Duration) -> Self {
        self.delay_ttl = ttl;
        self
    }

    /// Measures the delay TTL with `clock` instead of tokio's (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
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

    fn cache(&self) -> std::sync::MutexGuard<'_, GroupCache> {
        // Every update of the cache is a single map operation: a panic cannot leave
        // it half-updated.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Passes `result` through, dropping the group from the cache if AWS says it is
    /// gone.
    fn seen<T>(&self, group: &TargetGroupArn, result: Result<T>) -> Result<T> {
        if let Err(Error::NotFound { .. }) = &result {
            tracing::debug!(group = %group, "target group not found; dropped from the cache");
            self.cache().forget(group);
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
        let deregistration_delay = self.read_deregistration_delay(&arn).await?;
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

    async fn read_deregistration_delay(&self, arn: &TargetGroupArn) -> Result<Duration> {
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
    /// The cached group if resolved before (its delay as last read), else one
    /// `DescribeTargetGroups` and one `DescribeTargetGroupAttributes`.
    async fn resolve(&self, group: &TargetGroupRef) -> Result<TargetGroup> {
        if let Some(cached) = self.cache().get(group) {
            return Ok(cached);
        }
        let resolved = match self.describe_group(group).await {
            Ok(resolved) => resolved,
            Err(e) => {
                if let (Error::NotFound { .. }, TargetGroupRef::Arn(arn)) = (&e, group) {
                    self.cache().forget(arn);
                }
                return Err(e);
            }
        };
        self.cache().insert(resolved.clone(), self.clock.now());
        Ok(resolved)
    }

    /// The cached delay if read less than the delay TTL ago, else one
    /// `DescribeTargetGroupAttributes`.
    async fn deregistration_delay(&self, group: &TargetGroupArn) -> Result<Duration> {
        let now = self.clock.now();
        if let Some(delay) = self.cache().fresh_delay(group, now, self.delay_ttl) {
            return Ok(delay);
        }
        let read = self.read_deregistration_delay(group).await;
        let delay = self.seen(group, read)?;
        self.cache().set_delay(group, delay, now);
        Ok(delay)
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
