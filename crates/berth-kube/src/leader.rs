//! Leader election over a `coordination.k8s.io/v1` Lease, the way client-go does it:
//! the holder renews `renewTime` every retry period; a candidate takes the Lease over
//! only after it has seen the same record, unchanged, for a whole lease duration
//! (measured on its own monotonic clock, so clock skew between nodes does not matter);
//! every write carries the `resourceVersion` it read, so two candidates never both win.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Error;

/// Where the Lease is and how leadership is timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease (one per elected component).
    pub name: String,
    /// This candidate's identity, unique among candidates (the pod name is customary).
    pub identity: String,
    /// How long a Lease lasts without renewal (`leaseDurationSeconds`). Default 15 s.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long steps down on its own; shorter than
    /// `lease_duration`, so it stops acting before anyone can take over. Default 10 s.
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew. Default 2 s.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A configuration with client-go's default timings (15 s / 10 s / 2 s).
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The shortest lease duration [`LeaseConfig::with_lease_duration`] is meant for:
    /// 5 s gives a renew deadline of 3.3 s and a retry period of 0.67 s, so a leader
    /// still gets several renewals (each a GET and a PUT) before it must step down;
    /// shorter, one slow API server answer would make leadership flap.
    pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(5);

    /// Sets the lease duration and derives the other timings in client-go's default
    /// proportions (15 s / 10 s / 2 s): the renew deadline is 2/3 of it and the retry
    /// period 2/15 of it, so a leader makes about five attempts to renew before its
    /// deadline, and steps down a third of a lease before anyone may take over.
    pub fn with_lease_duration(mut self, lease_duration: Duration) -> Self {
        self.lease_duration = lease_duration;
        self.renew_deadline = lease_duration * 2 / 3;
        self.retry_period = lease_duration * 2 / 15;
        self
    }
}

/// The last Lease record seen and when it was first seen (monotonic).
struct Observed {
    resource_version: String,
    since: Instant,
}

/// A candidate for leadership. Share it behind an `Arc`: one task runs
/// [`LeaderElector::run`], others read [`LeaderElector::is_leader`] or
/// [`LeaderElector::subscribe`].
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    leader: watch::Sender<bool>,
    observed: Mutex<Option<Observed>>,
    last_renewed: Mutex<Option<Instant>>,
}

impl LeaderElector {
    /// A candidate that is not leader yet.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            leader: watch::Sender::new(false),
            observed: Mutex::new(None),
            last_renewed: Mutex::new(None),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// Whether this candidate holds the Lease now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Leadership changes: `true` when acquired, `false` when lost or released.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    /// One round: creates the Lease if there is none, renews it if held, takes it over
    /// if it was released or expired. Returns whether this candidate leads afterwards.
    /// An API error is returned after stepping down if the renew deadline has passed.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, Error> {
        match self.round().await {
            Ok(leading) => {
                if leading {
                    *lock(&self.last_renewed) = Some(Instant::now());
                }
                self.set_leader(leading);
                Ok(leading)
            }
            Err(e) => {
                let renewed = *lock(&self.last_renewed);
                let overdue = renewed.is_none_or(|at| at.elapsed() >= self.config.renew_deadline);
                if self.is_leader() && overdue {
                    tracing::warn!(error = %e, lease = %self.config.name, "cannot renew the Lease in time; stepping down");
                    self.set_leader(false);
                }
                Err(e)
            }
        }
    }

    /// Gives the Lease up if this candidate holds it (holder cleared, duration 1 s), so
    /// the next candidate need not wait for it to expire. Steps down in any case.
    pub async fn release(&self) -> Result<(), Error> {
        let was_leader = self.is_leader();
        self.set_leader(false);
        *lock(&self.last_renewed) = None;
        if !was_leader {
            return Ok(());
        }
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| Error::kube(self.operation("get"), e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            // Someone else wrote it meanwhile: it is not ours to release any more.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(Error::kube(self.operation("replace"), e)),
        }
    }

    /// Campaigns until `shutdown` completes: a round every retry period (with a little
    /// jitter), then releases the Lease. Errors are logged, never fatal.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.try_acquire_or_renew().await {
                tracing::warn!(error = %e, lease = %self.config.name, "leader election round failed");
            }
            let jitter = self.config.retry_period.mul_f64(fastrand::f64() * 0.2);
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.config.retry_period + jitter) => {}
            }
        }
        if let Err(e) = self.release().await {
            tracing::warn!(error = %e, lease = %self.config.name, "releasing the Lease failed");
        }
    }

    fn set_leader(&self, leading: bool) {
        self.leader.send_if_modified(|current| {
            let changed = *current != leading;
            *current = leading;
            changed
        });
    }

    fn operation(&self, verb: &str) -> String {
        format!(
            "{verb} Lease {}/{}",
            self.config.namespace, self.config.name
        )
    }

    async fn round(&self) -> Result<bool, Error> {
        let now = MicroTime(Timestamp::now());
        let duration_secs =
            i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| Error::kube(self.operation("get"), e))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                // Another candidate created it first.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(Error::kube(self.operation("create"), e)),
            };
        };

        let expired = self.observe(&lease);
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        if !ours && holder.is_some() && !expired {
            return Ok(false);
        }
        if !ours {
            spec.holder_identity = Some(self.config.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.lease_duration_seconds = Some(duration_secs);
        spec.renew_time = Some(now);
        // `replace` sends the resourceVersion read above: a concurrent writer makes it 409.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(stored) => {
                self.observe(&stored);
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(Error::kube(self.operation("replace"), e)),
        }
    }

    /// Records the Lease as seen now if it changed; returns whether it has stayed the
    /// same for longer than its own lease duration.
    fn observe(&self, lease: &Lease) -> bool {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let duration = lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_duration_seconds)
            .map(|s| Duration::from_secs(u64::try_from(s.max(0)).unwrap_or(0)))
            .unwrap_or(self.config.lease_duration);
        let mut observed = lock(&self.observed);
        match observed.as_ref() {
            Some(o) if o.resource_version == version && !version.is_empty() => {
                o.since.elapsed() >= duration
            }
            _ => {
                *observed = Some(Observed {
                    resource_version: version,
                    since: Instant::now(),
                });
                false
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_derive_from_the_lease_duration_in_client_go_proportions() {
        let default = LeaseConfig::new("ns", "l", "me");
        assert_eq!(
            default.clone().with_lease_duration(Duration::from_secs(15)),
            default,
            "15 s gives client-go's 15 s / 10 s / 2 s"
        );
        let short = default.with_lease_duration(LeaseConfig::MIN_LEASE_DURATION);
        assert_eq!(short.lease_duration, Duration::from_secs(5));
        assert_eq!(
            short.renew_deadline,
            Duration::from_millis(3333) + Duration::from_nanos(333_333)
        );
        assert_eq!(
            short.retry_period,
            Duration::from_millis(666) + Duration::from_nanos(666_666)
        );
        // Jitter adds up to a fifth of the retry period: renewals still fit the deadline.
        assert!(short.renew_deadline > short.retry_period.mul_f64(1.2) * 4);
    }
}
