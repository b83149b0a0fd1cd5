//! `Ec2Instances` and `Ec2Addresses` against a real moto server: fixtures are created
//! with the raw SDK, the adapter is called, the result is read back with the SDK.
#![cfg(feature = "ec2")]

use std::net::IpAddr;

use aws_sdk_ec2::types::{
    DomainType, InstanceNetworkInterfaceSpecification, ResourceType, Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use berth_aws::ec2::{Ec2Addresses, Ec2Instances};
use berth_aws::CallCounter;
use berth_core::domain::{AllocationId, AssociationTarget, InstanceId, InstanceState, TagFilter};
use berth_core::provider::{Addresses, Instances};
use berth_core::Error;
use berth_testing::{sdk_config, MotoServer};

/// An AMI moto knows.
const AMI: &str = "ami-12c6146b";
const AZ: &str = "us-east-1b";

struct Fixture {
    client: Client,
    config: aws_config::SdkConfig,
    subnet: String,
}

async fn fixture(moto: &MotoServer) -> Fixture {
    let config = sdk_config(&moto.endpoint());
    let client = Client::new(&config);
    let vpc = client
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .expect("CreateVpc")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_owned();
    let subnet = client
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block("10.0.1.0/24")
        .availability_zone(AZ)
        .send()
        .await
        .expect("CreateSubnet")
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_owned();
    Fixture {
        client,
        config,
        subnet,
    }
}

fn tag_spec(resource: ResourceType, tags: &[(&str, &str)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(resource);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    spec.build()
}

impl Fixture {
    /// One instance in the subnet with `tags`; returns its id.
    async fn instance(&self, tags: &[(&str, &str)]) -> String {
        let mut request = self
            .client
            .run_instances()
            .image_id(AMI)
            .min_count(1)
            .max_count(1)
            .subnet_id(&self.subnet);
        if !tags.is_empty() {
            request = request.tag_specifications(tag_spec(ResourceType::Instance, tags));
        }
        request.send().await.expect("RunInstances").instances()[0]
            .instance_id()
            .expect("instance id")
            .to_owned()
    }

    /// An instance with two interfaces, the one at device index 1 requested (and
    /// listed by moto) first; returns the instance id.
    async fn two_interface_instance(&self, primary_ip: &str, secondary_eni_ip: &str) -> String {
        let eni = |index: i32, ip: &str| {
            InstanceNetworkInterfaceSpecification::builder()
                .device_index(index)
                .subnet_id(&self.subnet)
                .private_ip_address(ip)
                .build()
        };
        self.client
            .run_instances()
            .image_id(AMI)
            .min_count(1)
            .max_count(1)
            .network_interfaces(eni(1, secondary_eni_ip))
            .network_interfaces(eni(0, primary_ip))
            .tag_specifications(tag_spec(ResourceType::Instance, &[("role", "edge")]))
            .send()
            .await
            .expect("RunInstances")
            .instances()[0]
            .instance_id()
            .expect("instance id")
            .to_owned()
    }

    /// The raw SDK view of an instance.
    async fn raw_instance(&self, id: &str) -> aws_sdk_ec2::types::Instance {
        self.client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("DescribeInstances")
            .reservations()[0]
            .instances()[0]
            .clone()
    }

    /// An Elastic IP with `tags`; returns its allocation id.
    async fn address(&self, tags: &[(&str, &str)]) -> String {
        let mut request = self.client.allocate_address().domain(DomainType::Vpc);
        if !tags.is_empty() {
            request = request.tag_specifications(tag_spec(ResourceType::ElasticIp, tags));
        }
        request
            .send()
            .await
            .expect("AllocateAddress")
            .allocation_id()
            .expect("allocation id")
            .to_owned()
    }

    /// The raw SDK view of an address.
    async fn raw_address(&self, allocation: &str) -> aws_sdk_ec2::types::Address {
        self.client
            .describe_addresses()
            .allocation_ids(allocation)
            .send()
            .await
            .expect("DescribeAddresses")
            .addresses()[0]
            .clone()
    }
}

/// Every operation the adapters called is in the IAM action list.
fn assert_declared(counter: &CallCounter) {
    for operation in counter.snapshot().keys() {
        assert!(
            berth_aws::iam::iam_action("ec2", operation).is_some(),
            "{operation} is missing from the ec2 IAM actions"
        );
    }
}

fn id(text: &str) -> InstanceId {
    InstanceId::new(text).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[tokio::test]
async fn describe_reports_primary_interface_by_device_index_not_listing_order() {
    let moto = MotoServer::isolated().await;
    let fx = fixture(&moto).await;
    let instance_id = fx.two_interface_instance("10.0.1.10", "10.0.1.20").await;

    // Give the primary interface a secondary private IP as well.
    let raw = fx.raw_instance(&instance_id).await;
    let raw_primary = raw
        .network_interfaces()
        .iter()
        .find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0))
        .expect("an interface at device index 0");
    let primary_eni = raw_primary.network_interface_id().unwrap().to_owned();
    fx.client
        .assign_private_ip_addresses()
        .network_interface_id(&primary_eni)
        .private_ip_addresses("10.0.1.11")
        .send()
        .await
        .expect("AssignPrivateIpAddresses");
    // The test only proves something if EC2 (moto) lists the other interface first.
    let raw = fx.raw_instance(&instance_id).await;
    assert_eq!(
        raw.network_interfaces()[0]
            .attachment()
            .and_then(|a| a.device_index()),
        Some(1),
        "moto lists the device-index-1 interface first"
    );

    let counter = CallCounter::new();
    let instances = Ec2Instances::new(&fx.config, counter.clone());
    let described = instances.describe(&[id(&instance_id)]).await.unwrap();
    assert_eq!(counter.get("DescribeInstances"), 1);

    assert_eq!(described.len(), 1);
    let instance = &described[0];
    assert_eq!(instance.id, id(&instance_id));
    assert_eq!(instance.state, InstanceState::Running);
    assert_eq!(instance.availability_zone, AZ);
    assert_eq!(instance.tags.get("role").map(String::as_str), Some("edge"));
    assert_eq!(instance.interfaces.len(), 2);
    let primary = instance.primary_interface().expect("primary interface");
    assert_eq!(primary.id, primary_eni);
    assert_eq!(primary.device_index, 0);
    assert_eq!(primary.private_ip, ip("10.0.1.10"));
    assert_ne!(
        instance.interfaces[0].id, primary.id,
        "interfaces keep EC2's order; the primary is found by device index"
    );
    // Primary interface first (its primary IP, then its secondary), then the others.
    assert_eq!(
        instance.private_ips,
        vec![ip("10.0.1.10"), ip("10.0.1.11"), ip("10.0.1.20")]
    );
}

#[tokio::test]
async fn describe_leaves_unknown_ids_out_and_reports_states() {
    let moto = MotoServer::isolated().await;
    let fx = fixture(&moto).await;
    let running = fx.instance(&[]).await;
    let stopped = fx.instance(&[]).await;
    let terminated = fx.instance(&[]).await;
    fx.client
        .stop_instances()
        .instance_ids(&stopped)
        .send()
        .await
        .expect("StopInstances");
    fx.client
        .terminate_instances()
        .instance_ids(&terminated)
        .send()
        .await
        .expect("TerminateInstances");

    let instances = Ec2Instances::new(&fx.config, CallCounter::new());
    let unknown = id("i-0123456789abcdef0");
    let mut described = instances
        .describe(&[id(&running), unknown.clone(), id(&stopped), id(&terminated)])
        .await
        .expect("unknown ids do not fail the call");
    described.sort_by_key(|i| i.state.as_str());

    let states: Vec<(String, InstanceState)> = described
        .iter()
        .map(|i| (i.id.to_string(), i.state))
        .collect();
    let mut expected = vec![
        (running.clone(), InstanceState::Running),
        (stopped.clone(), InstanceState::Stopped),
        (terminated.clone(), InstanceState::Terminated),
    ];
    expected.sort_by_key(|(_, s)| s.as_str());
    assert_eq!(states, expected);
    // Each state matches what the SDK reads.
    for instance in &described {
        let raw = fx.raw_instance(instance.id.as_str()).await;
        let raw_state = raw.state().and_then(|s| s.name()).unwrap().as_str();
        assert_eq!(instance.state.as_str(), raw_state);
        assert_eq!(
            instance
                .private_ips
                .first()
                .map(ToString::to_string)
                .as_deref(),
            raw.private_ip_address()
        );
    }

    assert!(instances.describe(&[unknown]).await.unwrap().is_empty());
    assert!(instances.describe(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn list_filters_the_pool_by_tags_and_reports_associations() {
    let moto = MotoServer::isolated().await;
    let fx = fixture(&moto).await;
    let free = fx.address(&[("berth/pool", "edge")]).await;
    let taken = fx.address(&[("berth/pool", "edge"), ("extra", "x")]).await;
    let _other_pool = fx.address(&[("berth/pool", "other")]).await;
    let _untagged = fx.address(&[]).await;

    let instance_id = fx.instance(&[]).await;
    let raw = fx.raw_instance(&instance_id).await;
    let eni = raw.network_interfaces()[0].network_interface_id().unwrap();
    let private_ip = raw.private_ip_address().unwrap();
    let association_id = fx
        .client
        .associate_address()
        .allocation_id(&taken)
        .network_interface_id(eni)
        .send()
        .await
        .expect("AssociateAddress")
        .association_id()
        .unwrap()
        .to_owned();

    let counter = CallCounter::new();
    let addresses = Ec2Addresses::new(&fx.config, counter.clone());
    let mut pool = addresses
        .list(&TagFilter::parse("berth/pool=edge").unwrap())
        .await
        .unwrap();
    assert_eq!(counter.get("DescribeAddresses"), 1);
    pool.sort_by(|a, b| a.allocation_id.cmp(&b.allocation_id));
    let mut expected = vec![free.clone(), taken.clone()];
    expected.sort();
    assert_eq!(
        pool.iter()
            .map(|a| a.allocation_id.0.clone())
            .collect::<Vec<_>>(),
        expected
    );

    let free_eip = pool.iter().find(|a| a.allocation_id.0 == free).unwrap();
    assert_eq!(free_eip.association, None);
    assert_eq!(
        free_eip.public_ip.to_string(),
        fx.raw_address(&free).await.public_ip().unwrap()
    );

    let taken_eip = pool.iter().find(|a| a.allocation_id.0 == taken).unwrap();
    let association = taken_eip.association.as_ref().expect("associated");
    assert_eq!(association.association_id, association_id);
    assert_eq!(association.network_interface_id.as_deref(), Some(eni));
    assert_eq!(association.private_ip, Some(ip(private_ip)));
    assert!(taken_eip.is_on_interface(eni));
    // moto leaves `InstanceId` empty after an association by interface (EC2 fills
    // it); the adapter names the instance from the interface's attachment.
    assert_eq!(
        fx.raw_address(&taken)
            .await
            .instance_id()
            .unwrap_or_default(),
        ""
    );
    assert_eq!(association.instance_id, Some(id(&instance_id)));
    assert!(taken_eip.is_on(&id(&instance_id)));
    assert_eq!(counter.get("DescribeNetworkInterfaces"), 1);
    assert_declared(&counter);
    assert_eq!(taken_eip.tags.get("extra").map(String::as_str), Some("x"));

    // Presence-only clauses work for addresses too.
    let all_pools = addresses
        .list(&TagFilter::parse("berth/pool").unwrap())
        .await
        .unwrap();
    assert_eq!(all_pools.len(), 3);
}

#[tokio::test]
async fn associate_binds_the_primary_interface_and_never_takes_an_associated_address() {
    let moto = MotoServer::isolated().await;
    let fx = fixture(&moto).await;
    let first = fx.two_interface_instance("10.0.1.10", "10.0.1.20").await;
    let second = fx.instance(&[]).await;
    let allocation = fx.address(&[("berth/pool", "edge")]).await;

    let counter = CallCounter::new();
    let instances = Ec2Instances::new(&fx.config, counter.clone());
    let addresses = Ec2Addresses::new(&fx.config, counter.clone());
    let target_of = |instance: &berth_core::domain::Instance| {
        let primary = instance.primary_interface().expect("primary interface");
        AssociationTarget {
            instance_id: instance.id.clone(),
            network_interface_id: primary.id.clone(),
            private_ip: primary.private_ip,
        }
    };
    let described = instances
        .describe(&[id(&first), id(&second)])
        .await
        .unwrap();
    let first_target = target_of(described.iter().find(|i| i.id.as_str() == first).unwrap());
    let second_target = target_of(described.iter().find(|i| i.id.as_str() == second).unwrap());

    let allocation_id = AllocationId(allocation.clone());
    let association_id = addresses
        .associate(&allocation_id, &first_target)
        .await
        .unwrap();
    assert_eq!(counter.get("AssociateAddress"), 1);

    let raw = fx.raw_address(&allocation).await;
    assert_eq!(raw.association_id(), Some(association_id.as_str()));
    assert_eq!(
        raw.network_interface_id(),
        Some(first_target.network_interface_id.as_str())
    );
    assert_eq!(raw.private_ip_address(), Some("10.0.1.10"));

    // Already associated: refused, and the address stays where it is.
    let err = addresses
        .associate(&allocation_id, &second_target)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let raw = fx.raw_address(&allocation).await;
    assert_eq!(raw.association_id(), Some(association_id.as_str()));
    assert_eq!(
        raw.network_interface_id(),
        Some(first_target.network_interface_id.as_str())
    );

    // An unknown allocation is not found.
    let err = addresses
        .associate(
            &AllocationId("eipalloc-00000000000000000".into()),
            &second_target,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_declared(&counter);
}

#[tokio::test]
async fn disassociate_removes_the_association_and_a_gone_one_is_success() {
    let moto = MotoServer::isolated().await;
    let fx = fixture(&moto).await;
    let instance_id = fx.instance(&[]).await;
    let raw = fx.raw_instance(&instance_id).await;
    let eni = raw.network_interfaces()[0].network_interface_id().unwrap();
    let allocation = fx.address(&[]).await;
    let association_id = fx
        .client
        .associate_address()
        .allocation_id(&allocation)
        .network_interface_id(eni)
        .send()
        .await
        .expect("AssociateAddress")
        .association_id()
        .unwrap()
        .to_owned();

    let counter = CallCounter::new();
    let addresses = Ec2Addresses::new(&fx.config, counter.clone());
    addresses.disassociate(&association_id).await.unwrap();
    let raw = fx.raw_address(&allocation).await;
    assert!(
        raw.association_id().unwrap_or_default().is_empty(),
        "{raw:?}"
    );
    assert!(raw.network_interface_id().unwrap_or_default().is_empty());

    // Repeating it (an at-least-once event delivered twice) succeeds.
    addresses.disassociate(&association_id).await.unwrap();
    assert_eq!(counter.get("DisassociateAddress"), 2);
}
