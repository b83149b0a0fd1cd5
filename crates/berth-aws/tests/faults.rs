//! The adapters and berth-core's engine through faults moto cannot produce, injected
//! by berth-testing's `FaultProxy` between the SDK and moto: throttling, 500/503,
//! connection resets, latency, refused permissions, and target and DNS states
//! (`initial`, `unhealthy`, `draining`, `PENDING`) as canned answers.
//!
//! Fixtures are created on moto directly; the adapters talk through the proxy, so
//! the proxy's and the `CallCounter`'s counts are the adapters' requests alone.
#![cfg(all(feature = "elbv2", feature = "route53"))]

mod fixtures;

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetTypeEnum};
use aws_sdk_elasticloadbalancingv2::Client as ElbClient;
use berth_aws::elbv2::ElbTargetGroups;
use berth_aws::route53::Route53Zones;
use berth_aws::CallCounter;
use berth_core::domain::{
    DnsRecord, RecordType, Registration, Target, TargetGroupArn, TargetState,
};
use berth_core::engine::{
    retry, wait_for_targets, ApplyOptions, DnsProviders, Engine, MembershipProviders, Status,
    WaitFor,
};
use berth_core::plan::{MembershipChange, Plan, RecordChange};
use berth_core::provider::{DnsChange, DnsZones, TargetGroups};
use berth_core::Error;
use berth_testing::{sdk_config, Fault, FaultProxy, MotoGuard, MotoServer, Rule};
use fixtures::*;

const ELB_XMLNS: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

/// moto, a proxy in front of it, a VPC and a target group created on moto directly.
struct Setup {
    _moto: MotoGuard,
    proxy: FaultProxy,
    /// A raw client straight to moto, for fixtures and read-back.
    elb: ElbClient,
    /// The adapters' configuration: through the proxy, with fast SDK retries.
    config: SdkConfig,
    counter: CallCounter,
    group: TargetGroupArn,
}

async fn setup(sdk_attempts: u32) -> Setup {
    let moto = MotoServer::isolated().await;
    let direct = sdk_config(&moto.endpoint());
    let elb = ElbClient::new(&direct);
    let vpc = vpc(&direct).await;
    let group = target_group(&elb, &vpc, "nodes", TargetTypeEnum::Instance, 30080).await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let config = fast_sdk_retries(&sdk_config(&proxy.endpoint()), sdk_attempts);
    Setup {
        _moto: moto,
        proxy,
        elb,
        config,
        counter: CallCounter::new(),
        group,
    }
}

impl Setup {
    fn targets(&self) -> ElbTargetGroups {
        ElbTargetGroups::new(&self.config, self.counter.clone())
    }

    async fn register_directly(&self, targets: &[Target]) {
        let descriptions = targets
            .iter()
            .map(|t| {
                TargetDescription::builder()
                    .id(t.id.as_ref())
                    .port(i32::from(t.port))
                    .build()
            })
            .collect();
        self.elb
            .register_targets()
            .target_group_arn(self.group.as_str())
            .set_targets(Some(descriptions))
            .send()
            .await
            .expect("RegisterTargets");
    }

    /// `n` targets, registered on moto directly.
    async fn registered(&self, n: usize) -> Vec<Target> {
        let registered = targets(n);
        self.register_directly(&registered).await;
        registered
    }

    /// Waits through `adapter` (polling quickly, up to `deadline`) until `targets` are
    /// `until` in the group.
    async fn wait(
        &self,
        adapter: &ElbTargetGroups,
        targets: &[Target],
        until: WaitFor,
        deadline: Duration,
    ) -> Result<Duration, Error> {
        wait_for_targets(adapter, &self.group, targets, until, quick_poll(deadline)).await
    }
}

fn targets(n: usize) -> Vec<Target> {
    instance_ids(n)
        .iter()
        .map(|id| Target::new(id, 30080))
        .collect()
}

/// A `DescribeTargetHealth` answer with the given `(target, state, reason)` rows.
fn health_answer(rows: &[(&Target, &str, &str)]) -> Fault {
    let members: String = rows
        .iter()
        .map(|(t, state, reason)| {
            format!(
                "<member><Target><Id>{}</Id><Port>{}</Port></Target>\
                 <TargetHealth><State>{state}</State><Reason>{reason}</Reason></TargetHealth></member>",
                t.id, t.port
            )
        })
        .collect();
    Fault::Respond {
        status: 200,
        body: format!(
            "<DescribeTargetHealthResponse xmlns=\"{ELB_XMLNS}\"><DescribeTargetHealthResult>\
             <TargetHealthDescriptions>{members}</TargetHealthDescriptions>\
             </DescribeTargetHealthResult><ResponseMetadata><RequestId>canned</RequestId>\
             </ResponseMetadata></DescribeTargetHealthResponse>"
        ),
    }
}

/// Route53's answer to a change batch it refuses.
fn invalid_change_batch(message: &str) -> Fault {
    Fault::Respond {
        status: 400,
        body: format!(
            "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
             <Error><Type>Sender</Type><Code>InvalidChangeBatch</Code><Message>[{message}]</Message>\
             </Error><RequestId>canned</RequestId></ErrorResponse>"
        ),
    }
}

/// The 403 AWS answers when the role lacks `action`.
fn access_denied(xmlns: &str, action: &str) -> Fault {
    Fault::Respond {
        status: 403,
        body: format!(
            "<ErrorResponse xmlns=\"{xmlns}\"><Error><Type>Sender</Type><Code>AccessDenied</Code>\
             <Message>User: arn:aws:sts::123456789012:assumed-role/berth/i-0 is not authorized \
             to perform: {action}</Message></Error><RequestId>canned</RequestId></ErrorResponse>"
        ),
    }
}

#[tokio::test]
async fn engine_registers_500_targets_through_throttling_errors_resets_and_latency() {
    // Two SDK attempts per engine attempt, so faults reach the engine too.
    let s = setup(2).await;
    for rule in [
        Rule::new("RegisterTargets", Fault::Delay(Duration::from_millis(20))),
        Rule::new("RegisterTargets", Fault::Throttle).times(3),
        Rule::new("RegisterTargets", Fault::ServerError { status: 500 }).times(2),
        Rule::new("RegisterTargets", Fault::ServerError { status: 503 }).times(2),
        Rule::new("RegisterTargets", Fault::Reset).times(2),
    ] {
        s.proxy.add(rule);
    }
    let wanted = targets(500);
    let providers = MembershipProviders::owned_by_construction(Arc::new(s.targets()));
    let engine = Engine::new(ApplyOptions {
        target_batch_size: 100,
        retry: fast_engine_retries(),
        ..ApplyOptions::default()
    });
    let plan = Plan {
        changes: vec![MembershipChange::Register {
            group: s.group.clone(),
            targets: wanted.iter().cloned().map(Registration::from).collect(),
        }],
        ..Plan::default()
    };

    let report = engine.apply(&providers, &plan).await;

    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.done(), 500);
    // Nothing lost: every target is in the group.
    let expected: std::collections::BTreeSet<(String, u16)> =
        wanted.iter().map(|t| (t.id.to_string(), t.port)).collect();
    assert_eq!(members(&s.elb, &s.group).await, expected);
    // 5 batches + 9 faulted requests; the counter sees every attempt the proxy does.
    assert_eq!(s.proxy.count("RegisterTargets"), 14);
    assert_eq!(s.counter.get("RegisterTargets"), 14);
    // At most two SDK attempts per engine attempt: the engine retried as well.
    let engine_attempts: u32 = report.outcomes.iter().map(|o| o.attempts).sum();
    assert!(engine_attempts >= 7, "{engine_attempts}");
}

#[tokio::test]
async fn health_reads_and_waits_survive_throttling_errors_and_resets() {
    let s = setup(1).await; // no SDK retries: every fault reaches the caller
    let members = s.registered(3).await;
    for rule in [
        Rule::new("DescribeTargetHealth", Fault::Throttle).times(3),
        Rule::new("DescribeTargetHealth", Fault::ServerError { status: 503 }).times(1),
        Rule::new("DescribeTargetHealth", Fault::Reset).times(1),
    ] {
        s.proxy.add(rule);
    }
    let adapter = s.targets();

    let first = adapter.health(&s.group).await.unwrap_err();
    assert!(first.is_throttling(), "{first:?}");
    let (health, attempts) = retry(&fast_engine_retries(), || adapter.health(&s.group)).await;
    let health = health.unwrap();
    assert_eq!(attempts, 5); // 2 throttled, 503, reset, then moto's answer
    assert_eq!(health.len(), 3);
    assert_eq!(s.proxy.count("DescribeTargetHealth"), 6);

    // A wait keeps polling through retryable failures.
    s.proxy
        .add(Rule::new("DescribeTargetHealth", Fault::Throttle).times(2));
    s.wait(&adapter, &members, WaitFor::Healthy, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(s.proxy.count("DescribeTargetHealth"), 9);
}

#[tokio::test]
async fn wait_healthy_waits_through_initial() {
    let s = setup(1).await;
    let members = s.registered(2).await;
    s.proxy.add(
        Rule::new(
            "DescribeTargetHealth",
            health_answer(&[
                (&members[0], "initial", "Elb.RegistrationInProgress"),
                (&members[1], "healthy", ""),
            ]),
        )
        .times(2),
    );
    let adapter = s.targets();

    let health = adapter.health(&s.group).await.unwrap();
    assert_eq!(health[0].state, TargetState::Initial);
    assert_eq!(
        health[0].reason.as_deref(),
        Some("Elb.RegistrationInProgress")
    );
    let took = s
        .wait(&adapter, &members, WaitFor::Healthy, Duration::from_secs(5))
        .await
        .unwrap();
    // One canned `initial` left, then moto's `healthy`: two polls, one back-off.
    assert_eq!(s.proxy.count("DescribeTargetHealth"), 3);
    assert!(took >= Duration::from_millis(10), "{took:?}");
}

#[tokio::test]
async fn wait_gone_waits_through_draining() {
    let s = setup(1).await;
    let leaving = s.registered(2).await;
    let adapter = s.targets();
    adapter.deregister(&s.group, &leaving).await.unwrap();
    // moto forgets deregistered targets at once; AWS keeps them draining.
    s.proxy.add(
        Rule::new(
            "DescribeTargetHealth",
            health_answer(&[
                (&leaving[0], "draining", "Target.DeregistrationInProgress"),
                (
                    &leaving[1],
                    "unhealthy.draining",
                    "Target.DeregistrationInProgress",
                ),
            ]),
        )
        .times(3),
    );

    let health = adapter.health(&s.group).await.unwrap();
    assert!(
        health.iter().all(|h| h.state == TargetState::Draining),
        "{health:?}"
    );
    s.wait(&adapter, &leaving, WaitFor::Gone, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(s.proxy.count("DescribeTargetHealth"), 4);
    assert!(members(&s.elb, &s.group).await.is_empty());
}

#[tokio::test]
async fn waits_time_out_at_the_deadline_without_busy_polling() {
    let s = setup(1).await;
    let stuck = s.registered(1).await;
    s.proxy.add(Rule::new(
        "DescribeTargetHealth",
        health_answer(&[(&stuck[0], "unhealthy", "Target.FailedHealthChecks")]),
    ));
    let adapter = s.targets();

    let health = adapter.health(&s.group).await.unwrap();
    assert_eq!(health[0].state, TargetState::Unhealthy);
    let started = std::time::Instant::now();
    let err = s
        .wait(
            &adapter,
            &stuck,
            WaitFor::Healthy,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    // Backing off 10, 20, 40, 80, 80... ms: a handful of polls, not hundreds.
    let polls = s.proxy.count("DescribeTargetHealth") - 1;
    assert!((3..=10).contains(&polls), "{polls} polls");
}

#[tokio::test]
async fn refused_permissions_name_the_iam_action_and_are_not_retried() {
    let s = setup(3).await; // the SDK would retry anything retryable
    s.proxy.add(Rule::new(
        "RegisterTargets",
        access_denied(ELB_XMLNS, "elasticloadbalancing:RegisterTargets"),
    ));
    s.proxy.add(Rule::new(
        "DescribeTargetHealth",
        access_denied(ELB_XMLNS, "elasticloadbalancing:DescribeTargetHealth"),
    ));
    let adapter = Arc::new(s.targets());
    let providers = MembershipProviders::owned_by_construction(adapter.clone());
    let engine = Engine::new(ApplyOptions {
        retry: fast_engine_retries(),
        ..ApplyOptions::default()
    });
    let plan = Plan {
        changes: vec![MembershipChange::Register {
            group: s.group.clone(),
            targets: targets(3).into_iter().map(Registration::from).collect(),
        }],
        ..Plan::default()
    };

    let report = engine.apply(&providers, &plan).await;

    let [outcome] = report.outcomes.as_slice() else {
        panic!("one batch expected: {report:?}");
    };
    match &outcome.status {
        Status::Failed(Error::AccessDenied { action, message }) => {
            assert_eq!(action, "elasticloadbalancing:RegisterTargets");
            assert!(message.contains("not authorized"), "{message}");
        }
        other => panic!("expected AccessDenied, got {other:?}"),
    }
    assert_eq!(outcome.attempts, 1);
    assert_eq!(s.proxy.count("RegisterTargets"), 1);
    assert!(members(&s.elb, &s.group).await.is_empty());

    let err = adapter.health(&s.group).await.unwrap_err();
    assert!(
        matches!(&err, Error::AccessDenied { action, .. } if action == "elasticloadbalancing:DescribeTargetHealth"),
        "{err:?}"
    );
    assert_eq!(s.proxy.count("DescribeTargetHealth"), 1);
}

#[tokio::test]
async fn dns_changes_converge_through_faults_and_wait_through_pending() {
    let s = setup(2).await;
    let direct = sdk_config(&s.proxy.endpoint()); // only for the zone id below
    let raw = aws_sdk_route53::Client::new(&direct);
    let zone_id = hosted_zone(&raw, "example.com").await;
    s.proxy.reset_counts();
    for rule in [
        Rule::new(
            "ChangeResourceRecordSets",
            Fault::Delay(Duration::from_millis(20)),
        ),
        Rule::new("ChangeResourceRecordSets", Fault::Throttle).times(2),
        Rule::new(
            "ChangeResourceRecordSets",
            Fault::ServerError { status: 500 },
        )
        .times(1),
        Rule::new(
            "ChangeResourceRecordSets",
            Fault::ServerError { status: 503 },
        )
        .times(1),
        Rule::new("ChangeResourceRecordSets", Fault::Reset).times(1),
        Rule::new(
            "GetChange",
            Fault::Respond {
                status: 200,
                body: "<GetChangeResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
                       <ChangeInfo><Id>/change/C0PENDING</Id><Status>PENDING</Status>\
                       <SubmittedAt>2025-01-01T00:00:00.000Z</SubmittedAt></ChangeInfo>\
                       </GetChangeResponse>"
                    .into(),
            },
        )
        .times(2),
    ] {
        s.proxy.add(rule);
    }
    let zones = Route53Zones::new(&s.config, s.counter.clone());
    let records: Vec<DnsRecord> = (0..300)
        .map(|i| {
            DnsRecord::new(
                &format!("n{i}.example.com"),
                RecordType::A,
                60,
                vec![format!("10.2.{}.{}", i / 250, i % 250)],
            )
        })
        .collect();
    let providers = DnsProviders {
        zones: Arc::new(zones.clone()),
        wait_in_sync: Some(quick_poll(Duration::from_secs(5))),
    };
    let engine = Engine::new(ApplyOptions {
        dns_batch_size: 100,
        retry: fast_engine_retries(),
        ..ApplyOptions::default()
    });
    let plan = Plan {
        changes: vec![RecordChange::Upsert {
            zone_id: zone_id.clone(),
            records: records.clone(),
        }],
        ..Plan::default()
    };

    let report = engine.apply(&providers, &plan).await;

    assert!(report.is_success(), "{report:?}");
    let names: Vec<String> = records.iter().map(|r| r.name.clone()).collect();
    let mut stored = zones.records(&zone_id, &names).await.unwrap();
    stored.sort();
    let mut expected = records;
    expected.sort();
    assert_eq!(stored, expected);
    // 3 batches + 5 faulted; 3 syncs + 2 PENDING answers.
    assert_eq!(s.proxy.count("ChangeResourceRecordSets"), 8);
    assert_eq!(s.proxy.count("GetChange"), 5);

    // A refused Route53 change names its action.
    s.proxy.add(Rule::new(
        "ChangeResourceRecordSets",
        access_denied(
            "https://route53.amazonaws.com/doc/2013-04-01/",
            "route53:ChangeResourceRecordSets",
        ),
    ));
    let err = zones
        .change(&zone_id, &[DnsChange::Delete(stored[0].clone())])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::AccessDenied { action, .. } if action == "route53:ChangeResourceRecordSets"),
        "{err:?}"
    );
    assert_eq!(s.proxy.count("ChangeResourceRecordSets"), 9);
    s.proxy.clear();

    // A CREATE over a record set that exists: AWS's answer (moto accepts a CREATE
    // over a record set with other values) is a lost race, not a bad request.
    s.proxy.add(
        Rule::new(
            "ChangeResourceRecordSets",
            invalid_change_batch(
                "Tried to create resource record set [name='n0.example.com.', type='A'] \
                 but it already exists",
            ),
        )
        .times(1),
    );
    let err = zones
        .change(&zone_id, &[DnsChange::Create(stored[0].clone())])
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Conflict { .. }), "{err:?}");
    // Other refused batches stay bad requests.
    s.proxy.add(
        Rule::new(
            "ChangeResourceRecordSets",
            invalid_change_batch(
                "Tried to delete resource record set [name='n0.example.com.', type='A'] \
                 but it was not found",
            ),
        )
        .times(1),
    );
    let err = zones
        .change(&zone_id, &[DnsChange::Delete(stored[0].clone())])
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Invalid(_)), "{err:?}");
}
