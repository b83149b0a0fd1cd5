//! The ELBv2 adapter's cache of resolved groups against moto, behind the FaultProxy
//! (which counts the calls that reach AWS), with an injected clock: a group is
//! resolved once for as long as its ARN exists; its deregistration delay is re-read
//! only when asked for and older than the delay TTL.

mod fixtures;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum;
use aws_sdk_elasticloadbalancingv2::Client as ElbClient;
use berth_aws::elbv2::{Clock, ElbTargetGroups, DEFAULT_DELAY_TTL};
use berth_aws::CallCounter;
use berth_core::domain::{TargetGroupArn, TargetGroupRef};
use berth_core::provider::TargetGroups;
use berth_core::Error;
use berth_testing::{sdk_config, FaultProxy, MotoGuard, MotoServer};
use fixtures::*;
use tokio::time::Instant;

struct Rig {
    _moto: MotoGuard,
    proxy: FaultProxy,
    elb: ElbClient,
    vpc: String,
    adapter: ElbTargetGroups,
    now: Arc<Mutex<Instant>>,
}

impl Rig {
    async fn new() -> Rig {
        let moto = MotoServer::isolated().await;
        let proxy = FaultProxy::start(&moto.endpoint()).await;
        let direct = sdk_config(&moto.endpoint());
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock = {
            let now = now.clone();
            Clock::new(move || *now.lock().unwrap_or_else(PoisonError::into_inner))
        };
        Rig {
            elb: ElbClient::new(&direct),
            vpc: vpc(&direct).await,
            adapter: ElbTargetGroups::new(&sdk_config(&proxy.endpoint()), CallCounter::new())
                .with_clock(clock),
            proxy,
            now,
            _moto: moto,
        }
    }

    fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    /// (`DescribeTargetGroups`, `DescribeTargetGroupAttributes`) that reached moto.
    fn reads(&self) -> (usize, usize) {
        (
            self.proxy.count("DescribeTargetGroups"),
            self.proxy.count("DescribeTargetGroupAttributes"),
        )
    }
}

#[tokio::test]
async fn a_resolved_group_is_not_resolved_again_however_long_it_lives() {
    let r = Rig::new().await;
    let arn = target_group(&r.elb, &r.vpc, "web", TargetTypeEnum::Instance, 30080).await;
    let by_name = TargetGroupRef::Name("web".into());
    let by_arn = TargetGroupRef::Arn(arn.clone());
    let first = r.adapter.resolve(&by_name).await.unwrap();
    assert_eq!(r.reads(), (1, 1));
    // A day of resyncs, by name and by ARN, health read each time.
    for _ in 0..288 {
        r.advance(Duration::from_secs(300));
        assert_eq!(r.adapter.resolve(&by_name).await.unwrap(), first);
        assert_eq!(r.adapter.resolve(&by_arn).await.unwrap(), first);
    }
    r.adapter.health(&arn).await.unwrap();
    assert_eq!(r.reads(), (1, 1), "resolved once, whatever the time");
}

#[tokio::test]
async fn a_changed_deregistration_delay_is_read_once_the_copy_is_as_old_as_the_ttl() {
    let r = Rig::new().await;
    let arn = target_group(&r.elb, &r.vpc, "web", TargetTypeEnum::Instance, 30080).await;
    set_deregistration_delay(&r.elb, &arn, 45).await;
    let web = TargetGroupRef::Name("web".into());
    assert_eq!(
        r.adapter.resolve(&web).await.unwrap().deregistration_delay,
        Duration::from_secs(45)
    );
    set_deregistration_delay(&r.elb, &arn, 5).await;

    // Younger than the TTL: the copy, no call.
    r.advance(DEFAULT_DELAY_TTL - Duration::from_millis(1));
    let delay = r.adapter.deregistration_delay(&arn).await.unwrap();
    assert_eq!(delay, Duration::from_secs(45));
    assert_eq!(r.reads(), (1, 1));

    // As old as the TTL: read again (one call), and the copy is updated.
    r.advance(Duration::from_millis(1));
    let delay = r.adapter.deregistration_delay(&arn).await.unwrap();
    assert_eq!(delay, Duration::from_secs(5));
    assert_eq!(r.reads(), (1, 2));
    assert_eq!(
        r.adapter.resolve(&web).await.unwrap().deregistration_delay,
        Duration::from_secs(5)
    );
    r.advance(DEFAULT_DELAY_TTL - Duration::from_millis(1));
    r.adapter.deregistration_delay(&arn).await.unwrap();
    assert_eq!(r.reads(), (1, 2), "fresh again for a TTL");

    // A group never resolved here (known from ownership only): one attribute read.
    let other = target_group(&r.elb, &r.vpc, "api", TargetTypeEnum::Instance, 30081).await;
    let delay = r.adapter.deregistration_delay(&other).await.unwrap();
    assert_eq!(delay, Duration::from_secs(300), "moto's default");
    assert_eq!(r.reads(), (1, 3));
}

#[tokio::test]
async fn a_group_gone_when_its_delay_is_read_is_dropped_and_resolved_again() {
    let r = Rig::new().await;
    let old = target_group(&r.elb, &r.vpc, "web", TargetTypeEnum::Instance, 30080).await;
    let web = TargetGroupRef::Name("web".into());
    assert_eq!(r.adapter.resolve(&web).await.unwrap().arn, old);
    r.elb
        .delete_target_group()
        .target_group_arn(old.as_str())
        .send()
        .await
        .expect("DeleteTargetGroup");
    let new = target_group(&r.elb, &r.vpc, "web", TargetTypeEnum::Instance, 30081).await;

    r.advance(DEFAULT_DELAY_TTL);
    let err = r.adapter.deregistration_delay(&old).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let again = r.adapter.resolve(&web).await.unwrap();
    assert_eq!((again.arn, again.port), (new, Some(30081)));
    assert_eq!(r.reads(), (2, 3));

    // The old ARN is not served from the cache any more.
    let err = r
        .adapter
        .resolve(&TargetGroupRef::Arn(old))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unknown_arn_is_not_found_when_its_delay_is_asked() {
    let r = Rig::new().await;
    let arn = TargetGroupArn::new(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef",
    )
    .unwrap();
    let err = r.adapter.deregistration_delay(&arn).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
