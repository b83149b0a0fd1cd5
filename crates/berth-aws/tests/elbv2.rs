//! `ElbTargetGroups` against a real moto server: resources are created with the raw
//! SDK, changed through the adapter (or berth-core's engine over it) and read back
//! with the raw SDK.
//!
//! moto registers targets as `healthy` at once and forgets deregistered ones at once
//! (no `initial`/`draining`); those states are covered in `tests/faults.rs` with
//! canned answers. moto also keys targets by id alone and drops the
//! AvailabilityZone, so zones are checked on the request (unit test in `elbv2.rs`).
#![cfg(feature = "elbv2")]

mod fixtures;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum;
use aws_sdk_elasticloadbalancingv2::Client as ElbClient;
use berth_aws::elbv2::ElbTargetGroups;
use berth_aws::CallCounter;
use berth_core::domain::{
    Registration, Target, TargetGroupArn, TargetGroupRef, TargetState, TargetType,
};
use berth_core::engine::{wait_for_targets, ApplyOptions, Engine, MembershipProviders, WaitFor};
use berth_core::plan::{MembershipChange, Plan};
use berth_core::provider::{Deregistered, TargetGroups};
use berth_core::Error;
use berth_testing::{sdk_config, Fault, FaultProxy, MotoServer, Rule};
use fixtures::*;

struct Setup {
    config: aws_config::SdkConfig,
    elb: ElbClient,
    adapter: ElbTargetGroups,
    counter: CallCounter,
    vpc: String,
}

async fn setup(moto: &MotoServer) -> Setup {
    let config = sdk_config(&moto.endpoint());
    let counter = CallCounter::new();
    Setup {
        elb: ElbClient::new(&config),
        adapter: ElbTargetGroups::new(&config, counter.clone()),
        vpc: vpc(&config).await,
        counter,
        config,
    }
}

fn registrations(ids: &[String], port: u16) -> Vec<Registration> {
    ids.iter()
        .map(|id| Registration::from(Target::new(id, port)))
        .collect()
}

#[tokio::test]
async fn resolve_reads_type_port_and_deregistration_delay_once_per_group() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let arn = target_group(&s.elb, &s.vpc, "web", TargetTypeEnum::Instance, 30080).await;
    set_deregistration_delay(&s.elb, &arn, 45).await;

    let by_name = s
        .adapter
        .resolve(&TargetGroupRef::Name("web".into()))
        .await
        .unwrap();
    assert_eq!(by_name.arn, arn);
    assert_eq!(by_name.name, "web");
    assert_eq!(by_name.target_type, TargetType::Instance);
    assert_eq!(by_name.port, Some(30080));
    assert_eq!(by_name.deregistration_delay, Duration::from_secs(45));

    // Cached under both its name and its ARN.
    let by_arn = s
        .adapter
        .resolve(&TargetGroupRef::Arn(arn.clone()))
        .await
        .unwrap();
    assert_eq!(by_arn, by_name);
    s.adapter
        .resolve(&TargetGroupRef::Name("web".into()))
        .await
        .unwrap();
    assert_eq!(s.counter.get("DescribeTargetGroups"), 1);
    assert_eq!(s.counter.get("DescribeTargetGroupAttributes"), 1);

    // A changed delay is re-read once the copy is older than the TTL:
    // tests/elbv2_cache.rs.

    // An IP group with moto's default delay, resolved by ARN first.
    let ip_arn = target_group(&s.elb, &s.vpc, "pods", TargetTypeEnum::Ip, 8080).await;
    let pods = s
        .adapter
        .resolve(&TargetGroupRef::Arn(ip_arn))
        .await
        .unwrap();
    assert_eq!(pods.target_type, TargetType::Ip);
    assert_eq!(pods.deregistration_delay, Duration::from_secs(300));
    assert_iam_listed(&s.counter, "elbv2", "elasticloadbalancing");
}

#[tokio::test]
async fn resolving_an_unknown_group_is_not_found_naming_it() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let err = s
        .adapter
        .resolve(&TargetGroupRef::Name("missing".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { what } if what.contains("missing")),
        "{err:?}"
    );
    let arn = TargetGroupArn::new(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef",
    )
    .unwrap();
    let err = s
        .adapter
        .resolve(&TargetGroupRef::Arn(arn))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn registers_and_deregisters_instances_and_ips_with_ports_and_zones() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let nodes = target_group(&s.elb, &s.vpc, "nodes", TargetTypeEnum::Instance, 30080).await;
    let pods = target_group(&s.elb, &s.vpc, "pods", TargetTypeEnum::Ip, 8080).await;
    let ids = instance_ids(3);

    let instances = vec![
        Registration::from(Target::new(&ids[0], 30080)),
        Registration::from(Target::new(&ids[1], 30443)),
        Registration {
            target: Target::new(&ids[2], 30080),
            availability_zone: Some("us-east-1a".into()),
        },
    ];
    s.adapter.register(&nodes, &instances).await.unwrap();
    let ips = vec![
        Registration {
            target: Target::new("10.0.1.10", 8080),
            availability_zone: Some("all".into()),
        },
        Registration::from(Target::new("10.0.1.11", 9090)),
    ];
    s.adapter.register(&pods, &ips).await.unwrap();

    let expected_nodes = [
        (ids[0].clone(), 30080),
        (ids[1].clone(), 30443),
        (ids[2].clone(), 30080),
    ];
    assert_eq!(
        members(&s.elb, &nodes).await,
        expected_nodes.into_iter().collect()
    );
    assert_eq!(
        members(&s.elb, &pods).await,
        [
            ("10.0.1.10".to_owned(), 8080),
            ("10.0.1.11".to_owned(), 9090)
        ]
        .into_iter()
        .collect()
    );

    // The adapter reads the same membership, with states.
    let health = s.adapter.health(&nodes).await.unwrap();
    assert_eq!(health.len(), 3);
    assert!(health.iter().all(|h| h.state == TargetState::Healthy));
    assert!(health
        .iter()
        .any(|h| h.target == Target::new(&ids[1], 30443)));

    s.adapter
        .deregister(&nodes, &[Target::new(&ids[0], 30080)])
        .await
        .unwrap();
    s.adapter
        .deregister(&pods, &[Target::new("10.0.1.11", 9090)])
        .await
        .unwrap();
    assert_eq!(
        members(&s.elb, &nodes).await,
        [(ids[1].clone(), 30443), (ids[2].clone(), 30080)]
            .into_iter()
            .collect()
    );
    assert_eq!(
        members(&s.elb, &pods).await,
        [("10.0.1.10".to_owned(), 8080)].into_iter().collect()
    );

    // Empty changes cost nothing.
    let before = s.counter.total();
    s.adapter.register(&nodes, &[]).await.unwrap();
    s.adapter.deregister(&nodes, &[]).await.unwrap();
    assert_eq!(s.counter.total(), before);
    assert_iam_listed(&s.counter, "elbv2", "elasticloadbalancing");
}

#[tokio::test]
async fn deregistering_absent_targets_succeeds() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let group = target_group(&s.elb, &s.vpc, "nodes", TargetTypeEnum::Instance, 30080).await;
    let ids = instance_ids(3);
    s.adapter
        .register(&group, &registrations(&ids[..2], 30080))
        .await
        .unwrap();

    // One present, one never registered: the present one goes, no error.
    s.adapter
        .deregister(
            &group,
            &[Target::new(&ids[0], 30080), Target::new(&ids[2], 30080)],
        )
        .await
        .unwrap();
    assert_eq!(
        members(&s.elb, &group).await,
        [(ids[1].clone(), 30080)].into_iter().collect()
    );
    // Nothing present: success, nothing changed.
    s.adapter
        .deregister(&group, &[Target::new(&ids[0], 30080)])
        .await
        .unwrap();
    assert_eq!(members(&s.elb, &group).await.len(), 1);
    // The fallback is bounded: a refused batch costs one membership read and at most
    // one more call (moto removes the targets before the refused one, so the first
    // deregistration needs no second call there; AWS refuses atomically); a refused
    // single target is absent, with no read.
    let deregister_calls = s.counter.get("DeregisterTargets");
    assert!((2..=3).contains(&deregister_calls), "{deregister_calls}");
    assert_eq!(s.counter.get("DescribeTargetHealth"), 1);
}

/// What a sidecar does when its registration was cancelled before reaching AWS: it
/// deregisters an IP the group never had. AWS and moto answer `InvalidTarget`; the
/// adapter takes it as "already absent": one call, success.
#[tokio::test]
async fn deregistering_a_never_registered_target_succeeds_as_absent() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let group = target_group(&s.elb, &s.vpc, "pods", TargetTypeEnum::Ip, 80).await;
    let other = Target::new("10.0.3.9", 80);
    s.adapter
        .register(&group, &[Registration::from(other.clone())])
        .await
        .unwrap();

    let answer = s
        .adapter
        .deregister(&group, &[Target::new("10.0.3.7", 80)])
        .await
        .expect("an absent target is deregistered already");
    assert_eq!(answer, Deregistered::absent(&[Target::new("10.0.3.7", 80)]));
    assert_eq!(s.counter.get("DeregisterTargets"), 1);
    assert_eq!(
        s.counter.get("DescribeTargetHealth"),
        0,
        "no membership read"
    );
    // The refusal was AWS's: moto did answer InvalidTarget, and the other target stays.
    let refusals: Vec<_> = s
        .counter
        .errors()
        .into_iter()
        .map(|(e, n)| (e.call.operation, e.error_code, n))
        .collect();
    assert_eq!(
        refusals,
        [(
            "DeregisterTargets".to_owned(),
            "InvalidTarget".to_owned(),
            1
        )]
    );
    assert_eq!(
        members(&s.elb, &group).await,
        [("10.0.3.9".to_owned(), 80)].into_iter().collect()
    );
}

/// The answer says which targets left and which were not there, from AWS's
/// `InvalidTarget` refusal: a single target, a batch, and through the engine's
/// report. (moto refuses target by target in order, removing those before the refused
/// one, where AWS refuses the whole call: with the absent target first, both refuse
/// before removing anything.)
#[tokio::test]
async fn a_deregistration_answers_which_targets_were_removed_and_which_absent() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let group = target_group(&s.elb, &s.vpc, "pods", TargetTypeEnum::Ip, 80).await;
    let ip = |last: u8| Target::new(format!("10.0.4.{last}"), 80);
    s.adapter
        .register(&group, &[1, 2, 3].map(|i| Registration::from(ip(i))))
        .await
        .unwrap();

    let one = s.adapter.deregister(&group, &[ip(1)]).await.unwrap();
    assert_eq!(one, Deregistered::removed(&[ip(1)]));
    let again = s.adapter.deregister(&group, &[ip(1)]).await.unwrap();
    assert_eq!(
        again,
        Deregistered::absent(&[ip(1)]),
        "removed before: absent now"
    );
    let batch = s.adapter.deregister(&group, &[ip(9), ip(2)]).await.unwrap();
    assert_eq!(
        batch,
        Deregistered {
            removed: vec![ip(2)],
            absent: vec![ip(9)]
        }
    );

    // Through the engine: the report tells the absent target apart, and succeeds.
    let providers = MembershipProviders::owned_by_construction(Arc::new(ElbTargetGroups::new(
        &s.config,
        CallCounter::new(),
    )));
    let left = Engine::default()
        .deregister(&providers, &group, &[ip(8), ip(3)])
        .await;
    assert!(left.report.is_success(), "{}", left.report);
    assert_eq!(left.report.already(), 1, "{}", left.report);
    assert_eq!(
        left.outcome(),
        Deregistered {
            removed: vec![ip(3)],
            absent: vec![ip(8)]
        }
    );
    assert!(members(&s.elb, &group).await.is_empty());
}

/// A membership read that disagrees with the refusal (here a canned answer listing
/// every target; on AWS a stale read, or a target no longer counted as registered):
/// each target is then deregistered alone, and a refusal of one target means absent.
/// Bounded: one read and one call per target more.
#[tokio::test]
async fn a_batch_refusal_the_membership_contradicts_ends_in_single_deregistrations() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let group = target_group(&s.elb, &s.vpc, "pods", TargetTypeEnum::Ip, 80).await;
    let (present, absent) = (Target::new("10.0.3.1", 80), Target::new("10.0.3.2", 80));
    s.adapter
        .register(&group, &[Registration::from(present.clone())])
        .await
        .unwrap();
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let both_listed = format!(
        "<DescribeTargetHealthResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\
         <DescribeTargetHealthResult><TargetHealthDescriptions>{}{}</TargetHealthDescriptions>\
         </DescribeTargetHealthResult><ResponseMetadata><RequestId>canned</RequestId>\
         </ResponseMetadata></DescribeTargetHealthResponse>",
        healthy_row(&present),
        healthy_row(&absent)
    );
    proxy.add(
        Rule::new(
            "DescribeTargetHealth",
            Fault::Respond {
                status: 200,
                body: both_listed,
            },
        )
        .times(1),
    );
    let counter = CallCounter::new();
    let adapter = ElbTargetGroups::new(&sdk_config(&proxy.endpoint()), counter.clone());

    // The absent target first: moto, which refuses target by target, removes nothing
    // before refusing (as AWS, which refuses the whole call).
    let answer = adapter
        .deregister(&group, &[absent.clone(), present.clone()])
        .await
        .expect("both end up out of the group");
    assert_eq!(
        answer,
        Deregistered {
            removed: vec![present.clone()],
            absent: vec![absent.clone()]
        },
        "the single refusal is the answer, not the contradicting read"
    );
    assert!(members(&s.elb, &group).await.is_empty());
    assert_eq!(counter.get("DescribeTargetHealth"), 1);
    assert_eq!(
        counter.get("DeregisterTargets"),
        3,
        "the batch, then each alone"
    );
}

fn healthy_row(target: &Target) -> String {
    format!(
        "<member><Target><Id>{}</Id><Port>{}</Port></Target>\
         <TargetHealth><State>healthy</State></TargetHealth></member>",
        target.id, target.port
    )
}

/// Absent targets are a success only in a group that exists: a deleted or unknown
/// group is still `NotFound` (`TargetGroupNotFound`), for one target and a batch.
#[tokio::test]
async fn deregistering_from_a_missing_group_is_not_found() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let gone = TargetGroupArn::new(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef",
    )
    .unwrap();
    for targets in [
        vec![Target::new("10.0.3.7", 80)],
        vec![Target::new("10.0.3.7", 80), Target::new("10.0.3.8", 80)],
    ] {
        let err = s.adapter.deregister(&gone, &targets).await.unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { what } if what.contains("DeregisterTargets")),
            "{err:?}"
        );
    }
    assert_eq!(s.counter.get("DescribeTargetHealth"), 0);
}

#[tokio::test]
async fn membership_of_500_targets_is_one_call() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let group = target_group(&s.elb, &s.vpc, "big", TargetTypeEnum::Instance, 30080).await;
    let ids = instance_ids(500);
    // Registered with the raw SDK, so only the read is counted.
    for chunk in ids.chunks(250) {
        let targets = chunk
            .iter()
            .map(|id| {
                aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                    .id(id)
                    .port(30080)
                    .build()
            })
            .collect();
        s.elb
            .register_targets()
            .target_group_arn(group.as_str())
            .set_targets(Some(targets))
            .send()
            .await
            .expect("RegisterTargets");
    }

    let health = s.adapter.health(&group).await.unwrap();
    assert_eq!(health.len(), 500);
    assert_eq!(s.counter.get("DescribeTargetHealth"), 1);
    assert_eq!(s.counter.total(), 1);
}

#[tokio::test]
async fn engine_registers_and_deregisters_500_targets_in_ceil_batches() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let group = target_group(&s.elb, &s.vpc, "big", TargetTypeEnum::Instance, 30080).await;
    let ids = instance_ids(500);
    let adapter = Arc::new(s.adapter);
    let options = ApplyOptions {
        target_batch_size: 200,
        ..ApplyOptions::default()
    };
    let engine = Engine::new(options);
    let providers = MembershipProviders::owned_by_construction(adapter.clone());

    let register = Plan {
        changes: vec![MembershipChange::Register {
            group: group.clone(),
            targets: registrations(&ids, 30080),
        }],
        ..Plan::default()
    };
    let report = engine.apply(&providers, &register).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(s.counter.get("RegisterTargets"), 3); // ceil(500 / 200)
    assert_eq!(members(&s.elb, &group).await.len(), 500);

    let deregister = Plan {
        changes: vec![MembershipChange::Deregister {
            group: group.clone(),
            targets: ids[..450].iter().map(|id| Target::new(id, 30080)).collect(),
        }],
        ..Plan::default()
    };
    let report = engine.apply(&providers, &deregister).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(s.counter.get("DeregisterTargets"), 3); // ceil(450 / 200)
    let left = members(&s.elb, &group).await;
    let expected: std::collections::BTreeSet<(String, u16)> =
        ids[450..].iter().map(|id| (id.clone(), 30080)).collect();
    assert_eq!(left, expected);
    assert_iam_listed(&s.counter, "elbv2", "elasticloadbalancing");
}

#[tokio::test]
async fn waits_end_as_soon_as_moto_reports_the_state() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let group = target_group(&s.elb, &s.vpc, "nodes", TargetTypeEnum::Instance, 30080).await;
    let targets: Vec<Target> = instance_ids(2)
        .iter()
        .map(|id| Target::new(id, 30080))
        .collect();
    let registrations: Vec<Registration> =
        targets.iter().cloned().map(Registration::from).collect();
    s.adapter.register(&group, &registrations).await.unwrap();

    let poll = quick_poll(Duration::from_secs(5));
    wait_for_targets(&s.adapter, &group, &targets, WaitFor::Healthy, poll)
        .await
        .unwrap();
    assert_eq!(s.counter.get("DescribeTargetHealth"), 1);

    s.adapter.deregister(&group, &targets).await.unwrap();
    wait_for_targets(&s.adapter, &group, &targets, WaitFor::Gone, poll)
        .await
        .unwrap();
    assert_eq!(s.counter.get("DescribeTargetHealth"), 2);

    // Never healthy: a target that is not registered times out at the deadline.
    let err = wait_for_targets(
        &s.adapter,
        &group,
        &targets[..1],
        WaitFor::Healthy,
        quick_poll(Duration::from_millis(100)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn a_group_deleted_and_recreated_under_its_name_is_followed() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let old = target_group(&s.elb, &s.vpc, "web", TargetTypeEnum::Instance, 30080).await;
    let web = TargetGroupRef::Name("web".into());
    assert_eq!(s.adapter.resolve(&web).await.unwrap().arn, old);

    s.elb
        .delete_target_group()
        .target_group_arn(old.as_str())
        .send()
        .await
        .expect("DeleteTargetGroup");
    let new = target_group(&s.elb, &s.vpc, "web", TargetTypeEnum::Instance, 30081).await;
    assert_ne!(new, old);

    // The old ARN is still served until AWS says it is gone...
    assert_eq!(s.adapter.resolve(&web).await.unwrap().arn, old);
    let err = s.adapter.health(&old).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    // ...which drops it: the next resolution finds the new group.
    let again = s.adapter.resolve(&web).await.unwrap();
    assert_eq!(again.arn, new);
    assert_eq!(again.port, Some(30081));
    assert_eq!(s.counter.get("DescribeTargetGroups"), 2);
}
