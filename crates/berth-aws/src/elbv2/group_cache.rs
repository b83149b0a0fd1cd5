//! The ELBv2 adapter's cache of resolved target groups.
//!
//! What ELBv2 lets change decides what expires:
//! - a group's ARN, name, target type and port cannot be modified (`ModifyTargetGroup`
//!   only changes health checks): they are kept until AWS answers `TargetGroupNotFound`
//!   for the ARN — the group was deleted, perhaps recreated under its name with a new
//!   ARN, and the next resolution by name finds the new one. Every pass of the daemon
//!   asks `DescribeTargetHealth` of each resolved group, so a deletion is seen on the
//!   next pass; a timer would only add calls.
//! - the deregistration delay (`deregistration_delay.timeout_seconds`) can change at
//!   any time: it is re-read when it is needed (a drain begins) and the copy is older
//!   than the delay TTL, so a changed delay is seen within that bound.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::{TargetGroup, TargetGroupArn, TargetGroupRef};
use tokio::time::Instant;

/// What time it is, for the delay TTL: tokio's clock unless a test injects its own.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Instant + Send + Sync>);

impl Clock {
    /// A clock reading `now`.
    pub fn new(now: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    pub(super) fn now(&self) -> Instant {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(Instant::now)
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

#[derive(Debug)]
struct Entry {
    group: TargetGroup,
    /// When `group.deregistration_delay` was read.
    delay_read_at: Instant,
}

/// Resolved groups by ARN, and the ARN of each name.
#[derive(Debug, Default)]
pub(super) struct GroupCache {
    by_arn: HashMap<TargetGroupArn, Entry>,
    by_name: HashMap<String, TargetGroupArn>,
}

impl GroupCache {
    /// The group `group` names, as last resolved (its delay as last read).
    pub(super) fn get(&self, group: &TargetGroupRef) -> Option<TargetGroup> {
        let arn = match group {
            TargetGroupRef::Arn(arn) => arn,
            TargetGroupRef::Name(name) => self.by_name.get(name)?,
        };
        self.by_arn.get(arn).map(|e| e.group.clone())
    }

    /// The group's delay, if it was read less than `ttl` before `now`.
    pub(super) fn fresh_delay(
        &self,
        arn: &TargetGroupArn,
        now: Instant,
        ttl: Duration,
    ) -> Option<Duration> {
        self.by_arn
            .get(arn)
            .filter(|e| now.saturating_duration_since(e.delay_read_at) < ttl)
            .map(|e| e.group.deregistration_delay)
    }

    /// Keeps a group just resolved (its delay read at `now`). Another ARN cached under
    /// its name is a group deleted since: it goes.
    pub(super) fn insert(&mut self, group: TargetGroup, now: Instant) {
        if let Some(old) = self.by_name.get(&group.name).cloned() {
            if old != group.arn {
                self.forget(&old);
            }
        }
        self.by_name.insert(group.name.clone(), group.arn.clone());
        self.by_arn.insert(
            group.arn.clone(),
            Entry {
                group,
                delay_read_at: now,
            },
        );
    }

    /// Records a delay read at `now` for a cached group (nothing if it is not cached).
    pub(super) fn set_delay(&mut self, arn: &TargetGroupArn, delay: Duration, now: Instant) {
        if let Some(e) = self.by_arn.get_mut(arn) {
            e.group.deregistration_delay = delay;
            e.delay_read_at = now;
        }
    }

    /// Drops the group with this ARN (AWS says it is gone).
    pub(super) fn forget(&mut self, arn: &TargetGroupArn) {
        if let Some(e) = self.by_arn.remove(arn) {
            if self.by_name.get(&e.group.name) == Some(arn) {
                self.by_name.remove(&e.group.name);
            }
        }
    }

    pub(super) fn clear(&mut self) {
        self.by_arn.clear();
        self.by_name.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::domain::TargetType;

    fn group(name: &str, id: u32, delay: u64) -> TargetGroup {
        TargetGroup {
            arn: TargetGroupArn::new(format!(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/{id:016x}"
            ))
            .unwrap(),
            name: name.into(),
            target_type: TargetType::Instance,
            port: Some(30080),
            deregistration_delay: Duration::from_secs(delay),
        }
    }

    #[test]
    fn identity_is_kept_and_the_delay_is_fresh_for_the_ttl() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut cache = GroupCache::default();
        let web = group("web", 1, 30);
        cache.insert(web.clone(), t0);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(
            cache.get(&TargetGroupRef::Name("web".into())),
            Some(web.clone())
        );
        assert_eq!(
            cache.get(&TargetGroupRef::Arn(web.arn.clone())),
            Some(web.clone())
        );
        let just_before = t0 + ttl - Duration::from_millis(1);
        assert_eq!(
            cache.fresh_delay(&web.arn, just_before, ttl),
            Some(Duration::from_secs(30))
        );
        assert_eq!(cache.fresh_delay(&web.arn, t0 + ttl, ttl), None);
        cache.set_delay(&web.arn, Duration::from_secs(5), later);
        assert_eq!(
            cache.fresh_delay(&web.arn, later, ttl),
            Some(Duration::from_secs(5))
        );
        let by_name = cache.get(&TargetGroupRef::Name("web".into())).unwrap();
        assert_eq!(by_name.deregistration_delay, Duration::from_secs(5));
    }

    #[test]
    fn a_recreated_group_replaces_the_old_arn_and_forgetting_drops_the_name() {
        let t0 = Instant::now();
        let mut cache = GroupCache::default();
        let old = group("web", 1, 30);
        let new = group("web", 2, 30);
        cache.insert(old.clone(), t0);
        cache.insert(new.clone(), t0);
        assert_eq!(cache.get(&TargetGroupRef::Arn(old.arn.clone())), None);
        assert_eq!(
            cache.get(&TargetGroupRef::Name("web".into())),
            Some(new.clone())
        );
        // Forgetting an ARN no longer under the name leaves the name alone.
        cache.forget(&old.arn);
        assert_eq!(
            cache.get(&TargetGroupRef::Name("web".into())),
            Some(new.clone())
        );
        cache.forget(&new.arn);
        assert_eq!(cache.get(&TargetGroupRef::Name("web".into())), None);
        assert_eq!(cache.get(&TargetGroupRef::Arn(new.arn)), None);
    }
}
