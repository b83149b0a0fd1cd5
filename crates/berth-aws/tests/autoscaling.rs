//! `AutoScaling` against a real moto server.
//!
//! moto launches group instances straight to `InService` and ignores lifecycle hooks,
//! so `Pending:Wait` and friends cannot be produced here; the adapter passes them
//! through `LifecycleState`'s parser, which the crate's unit tests cover.
#![cfg(feature = "autoscaling")]

use aws_sdk_autoscaling::Client;
use berth_aws::autoscaling::{AutoScaling, LifecycleState};
use berth_aws::CallCounter;
use berth_core::Error;
use berth_testing::{sdk_config, MotoServer};

const GROUP: &str = "etcd-peers";
const AZ: &str = "us-east-1a";

async fn group(client: &Client, desired: i32) {
    client
        .create_launch_configuration()
        .launch_configuration_name("etcd")
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .expect("CreateLaunchConfiguration");
    client
        .create_auto_scaling_group()
        .auto_scaling_group_name(GROUP)
        .launch_configuration_name("etcd")
        .min_size(0)
        .max_size(5)
        .desired_capacity(desired)
        .availability_zones(AZ)
        .send()
        .await
        .expect("CreateAutoScalingGroup");
}

#[tokio::test]
async fn instances_of_a_group_carry_lifecycle_state_zone_and_health() {
    let moto = MotoServer::isolated().await;
    let config = sdk_config(&moto.endpoint());
    let client = Client::new(&config);
    group(&client, 3).await;
    let raw = client
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(GROUP)
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = raw.auto_scaling_groups()[0]
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    client
        .enter_standby()
        .auto_scaling_group_name(GROUP)
        .instance_ids(&ids[0])
        .should_decrement_desired_capacity(true)
        .send()
        .await
        .expect("EnterStandby");
    client
        .set_instance_health()
        .instance_id(&ids[1])
        .health_status("Unhealthy")
        .send()
        .await
        .expect("SetInstanceHealth");

    let counter = CallCounter::new();
    let autoscaling = AutoScaling::new(&config, counter.clone());
    let mut instances = autoscaling.instances(GROUP).await.unwrap();
    assert_eq!(counter.get("DescribeAutoScalingGroups"), 1);
    for operation in counter.snapshot().keys() {
        assert!(
            berth_aws::iam::iam_action("autoscaling", operation).is_some(),
            "{operation} is missing from the autoscaling IAM actions"
        );
    }
    instances.sort_by_key(|i| ids.iter().position(|id| id == i.id.as_str()));

    let summary: Vec<(String, LifecycleState, bool)> = instances
        .iter()
        .map(|i| (i.id.to_string(), i.lifecycle_state.clone(), i.healthy))
        .collect();
    assert_eq!(
        summary,
        vec![
            (ids[0].clone(), LifecycleState::Standby, true),
            (ids[1].clone(), LifecycleState::InService, false),
            (ids[2].clone(), LifecycleState::InService, true),
        ]
    );
    assert!(instances.iter().all(|i| i.availability_zone == AZ));
    assert_eq!(
        instances
            .iter()
            .filter(|i| i.lifecycle_state.is_in_service())
            .count(),
        2
    );

    // Read back with the SDK: the states agree with DescribeAutoScalingInstances.
    let raw = client
        .describe_auto_scaling_instances()
        .set_instance_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap();
    for raw_instance in raw.auto_scaling_instances() {
        let ours = instances
            .iter()
            .find(|i| Some(i.id.as_str()) == raw_instance.instance_id())
            .expect("same instances");
        assert_eq!(
            Some(ours.lifecycle_state.as_str()),
            raw_instance.lifecycle_state()
        );
    }
}

#[tokio::test]
async fn an_empty_group_has_no_instances_and_an_unknown_group_is_not_found() {
    let moto = MotoServer::isolated().await;
    let config = sdk_config(&moto.endpoint());
    let client = Client::new(&config);
    group(&client, 0).await;

    let autoscaling = AutoScaling::new(&config, CallCounter::new());
    assert!(autoscaling.instances(GROUP).await.unwrap().is_empty());
    let err = autoscaling.instances("no-such-group").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
