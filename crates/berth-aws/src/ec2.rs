//! EC2 instances and Elastic IPs: [`Ec2Instances`] implements
//! [`berth_core::provider::Instances`], [`Ec2Addresses`] implements
//! [`berth_core::provider::Addresses`].
//!
//! Instances are always described through filters, never `InstanceIds`: EC2 fails the
//! whole call when one id is unknown, while the trait leaves unknown ids out.

use std::net::IpAddr;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, Tag};
use aws_sdk_ec2::Client;
use berth_core::domain::{
    AllocationId, Association, AssociationTarget, ElasticIp, Instance, InstanceId, InstanceState,
    NetworkInterface, TagFilter, Tags,
};
use berth_core::provider::{Addresses, Instances};
use berth_core::{Error, Result};

use crate::error::from_sdk;
use crate::CallCounter;

/// How many values EC2 accepts in one filter; longer id lists are split.
const MAX_FILTER_VALUES: usize = 200;

/// The EC2 error code for an association that no longer exists.
const ASSOCIATION_NOT_FOUND: &str = "InvalidAssociationID.NotFound";

/// A client with the call counter attached.
fn client(config: &SdkConfig, counter: CallCounter) -> Client {
    let config = aws_sdk_ec2::config::Builder::from(config)
        .interceptor(counter)
        .build();
    Client::from_conf(config)
}

/// EC2 filters for a tag filter: `tag:<key>` with the value, or `*` for "any value".
fn tag_filters(filter: &TagFilter) -> Vec<Filter> {
    filter
        .clauses
        .iter()
        .map(|clause| {
            Filter::builder()
                .name(format!("tag:{}", clause.key))
                .values(clause.value.as_deref().unwrap_or("*"))
                .build()
        })
        .collect()
}

fn tags_of(tags: &[Tag]) -> Tags {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// An IP address EC2 sent, or `Error::Provider` if it is not one.
fn parse_ip(operation: &str, what: &str, text: &str) -> Result<IpAddr> {
    text.parse().map_err(|_| Error::Provider {
        operation: operation.to_owned(),
        message: format!("{what} {text:?} is not an IP address"),
        retryable: false,
    })
}

/// Reads instances through EC2 `DescribeInstances`.
#[derive(Debug, Clone)]
pub struct Ec2Instances {
    client: Client,
}

impl Ec2Instances {
    /// An adapter over `config`, counting its calls in `counter`.
    pub fn new(config: &SdkConfig, counter: CallCounter) -> Self {
        Ec2Instances {
            client: client(config, counter),
        }
    }

    /// Every instance matching `filters`, following the pages.
    async fn describe_filtered(&self, filters: Vec<Filter>) -> Result<Vec<Instance>> {
        let mut instances = Vec::new();
        let mut next_token = None;
        loop {
            let page = self
                .client
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| from_sdk("DescribeInstances", "ec2:DescribeInstances", e))?;
            for reservation in page.reservations() {
                for instance in reservation.instances() {
                    instances.push(convert_instance(instance)?);
                }
            }
            next_token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if next_token.is_none() {
                return Ok(instances);
            }
        }
    }
}

#[async_trait]
impl Instances for Ec2Instances {
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Instance>> {
        let mut instances = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            let filter = Filter::builder()
                .name("instance-id")
                .set_values(Some(
                    chunk.iter().map(|id| id.as_str().to_owned()).collect(),
                ))
                .build();
            instances.extend(self.describe_filtered(vec![filter]).await?);
        }
        Ok(instances)
    }

    async fn matching(&self, filter: &TagFilter) -> Result<Vec<Instance>> {
        self.describe_filtered(tag_filters(filter)).await
    }
}

fn convert_instance(instance: &aws_sdk_ec2::types::Instance) -> Result<Instance> {
    const OP: &str = "DescribeInstances";
    let id = InstanceId::new(instance.instance_id().unwrap_or_default())?;
    let state = instance
        .state()
        .and_then(|s| s.name())
        .ok_or_else(|| Error::Provider {
            operation: OP.into(),
            message: format!("instance {id} has no state"),
            retryable: false,
        })?
        .as_str()
        .parse::<InstanceState>()?;
    let availability_zone = instance
        .placement()
        .and_then(|p| p.availability_zone())
        .unwrap_or_default()
        .to_owned();

    let mut interfaces = Vec::new();
    // (device index, every private IP of the interface, its primary first)
    let mut ips_by_device: Vec<(u32, Vec<IpAddr>)> = Vec::new();
    for eni in instance.network_interfaces() {
        let (Some(eni_id), Some(primary_ip)) =
            (eni.network_interface_id(), eni.private_ip_address())
        else {
            continue;
        };
        let device_index = eni
            .attachment()
            .and_then(|a| a.device_index())
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| Error::Provider {
                operation: OP.into(),
                message: format!("interface {eni_id} of {id} has no device index"),
                retryable: false,
            })?;
        let private_ip = parse_ip(OP, "private IP", primary_ip)?;
        let public_ip = eni
            .association()
            .and_then(|a| a.public_ip())
            .filter(|ip| !ip.is_empty())
            .map(|ip| parse_ip(OP, "public IP", ip))
            .transpose()?;
        let mut ips = vec![private_ip];
        for secondary in eni.private_ip_addresses() {
            if let Some(text) = secondary.private_ip_address() {
                let ip = parse_ip(OP, "private IP", text)?;
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        ips_by_device.push((device_index, ips));
        interfaces.push(NetworkInterface {
            id: eni_id.to_owned(),
            device_index,
            private_ip,
            public_ip,
        });
    }
    ips_by_device.sort_by_key(|(device_index, _)| *device_index);
    let mut private_ips: Vec<IpAddr> = ips_by_device.into_iter().flat_map(|(_, ips)| ips).collect();
    // An instance without interface data (e.g. terminated) may still carry its IP.
    if private_ips.is_empty() {
        if let Some(ip) = instance.private_ip_address().filter(|ip| !ip.is_empty()) {
            private_ips.push(parse_ip(OP, "private IP", ip)?);
        }
    }

    Ok(Instance {
        id,
        state,
        availability_zone,
        private_ips,
        interfaces,
        tags: tags_of(instance.tags()),
    })
}

/// Elastic IPs through EC2 `DescribeAddresses`, `AssociateAddress` and
/// `DisassociateAddress`.
#[derive(Debug, Clone)]
pub struct Ec2Addresses {
    client: Client,
}

impl Ec2Addresses {
    /// An adapter over `config`, counting its calls in `counter`.
    pub fn new(config: &SdkConfig, counter: CallCounter) -> Self {
        Ec2Addresses {
            client: client(config, counter),
        }
    }

    /// Names the instance of associations that report an interface but no instance,
    /// from the interfaces' attachments (one `DescribeNetworkInterfaces`, only when
    /// needed). EC2 names the instance itself; moto leaves it empty after an
    /// association by interface, which is how berth associates.
    async fn fill_instance_ids(&self, addresses: &mut [ElasticIp]) -> Result<()> {
        let enis: Vec<String> = addresses
            .iter()
            .filter_map(|a| a.association.as_ref())
            .filter(|a| a.instance_id.is_none())
            .filter_map(|a| a.network_interface_id.clone())
            .collect();
        if enis.is_empty() {
            return Ok(());
        }
        let mut owners = std::collections::BTreeMap::new();
        for chunk in enis.chunks(MAX_FILTER_VALUES) {
            // A filter, not `NetworkInterfaceIds`: an interface deleted meanwhile
            // must not fail the listing.
            let output = self
                .client
                .describe_network_interfaces()
                .filters(
                    Filter::builder()
                        .name("network-interface-id")
                        .set_values(Some(chunk.to_vec()))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| {
                    from_sdk(
                        "DescribeNetworkInterfaces",
                        "ec2:DescribeNetworkInterfaces",
                        e,
                    )
                })?;
            for eni in output.network_interfaces() {
                let instance = eni
                    .attachment()
                    .and_then(|a| a.instance_id())
                    .filter(|id| !id.is_empty());
                if let (Some(eni_id), Some(instance)) = (eni.network_interface_id(), instance) {
                    owners.insert(eni_id.to_owned(), InstanceId::new(instance)?);
                }
            }
        }
        for association in addresses.iter_mut().filter_map(|a| a.association.as_mut()) {
            if association.instance_id.is_none() {
                association.instance_id = association
                    .network_interface_id
                    .as_ref()
                    .and_then(|eni| owners.get(eni).cloned());
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Addresses for Ec2Addresses {
    async fn list(&self, filter: &TagFilter) -> Result<Vec<ElasticIp>> {
        let output = self
            .client
            .describe_addresses()
            .set_filters(Some(tag_filters(filter)))
            .send()
            .await
            .map_err(|e| from_sdk("DescribeAddresses", "ec2:DescribeAddresses", e))?;
        let mut addresses = Vec::new();
        for address in output.addresses() {
            let eip = convert_address(address)?;
            if filter.matches(&eip.tags) {
                addresses.push(eip);
            }
        }
        self.fill_instance_ids(&mut addresses).await?;
        Ok(addresses)
    }

    async fn associate(
        &self,
        allocation: &AllocationId,
        target: &AssociationTarget,
    ) -> Result<String> {
        // The interface, not the instance: EC2 takes one or the other, and an
        // instance id is refused when several interfaces are attached.
        let output = self
            .client
            .associate_address()
            .allocation_id(&allocation.0)
            .network_interface_id(&target.network_interface_id)
            .private_ip_address(target.private_ip.to_string())
            .allow_reassociation(false)
            .send()
            .await
            .map_err(|e| from_sdk("AssociateAddress", "ec2:AssociateAddress", e))?;
        output
            .association_id()
            .map(str::to_owned)
            .ok_or_else(|| Error::Provider {
                operation: "AssociateAddress".into(),
                message: format!("no association id returned for {allocation}"),
                retryable: false,
            })
    }

    async fn disassociate(&self, association_id: &str) -> Result<()> {
        match self
            .client
            .disassociate_address()
            .association_id(association_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already gone (released, or the instance terminated): the goal holds.
            Err(e) if e.code() == Some(ASSOCIATION_NOT_FOUND) => Ok(()),
            Err(e) => Err(from_sdk(
                "DisassociateAddress",
                "ec2:DisassociateAddress",
                e,
            )),
        }
    }
}

fn convert_address(address: &aws_sdk_ec2::types::Address) -> Result<ElasticIp> {
    const OP: &str = "DescribeAddresses";
    let non_empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
    let allocation_id = non_empty(address.allocation_id()).ok_or_else(|| Error::Provider {
        operation: OP.into(),
        message: "an address without allocation id (EC2-Classic?)".into(),
        retryable: false,
    })?;
    let public_ip = parse_ip(OP, "public IP", address.public_ip().unwrap_or_default())?;
    let association = match non_empty(address.association_id()) {
        None => None,
        Some(association_id) => Some(Association {
            association_id,
            instance_id: non_empty(address.instance_id())
                .map(InstanceId::new)
                .transpose()?,
            network_interface_id: non_empty(address.network_interface_id()),
            private_ip: non_empty(address.private_ip_address())
                .map(|ip| parse_ip(OP, "private IP", &ip))
                .transpose()?,
        }),
    };
    Ok(ElasticIp {
        allocation_id: AllocationId(allocation_id),
        public_ip,
        association,
        tags: tags_of(address.tags()),
    })
}
