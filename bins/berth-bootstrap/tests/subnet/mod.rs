//! A VPC and one subnet in moto, for the tests' instances (included by `node` and
//! `etcd_world`).

/// Creates a VPC of `vpc_cidr` with one subnet of `subnet_cidr` in `zone`; its id.
pub(crate) async fn create(
    ec2: &aws_sdk_ec2::Client,
    vpc_cidr: &str,
    subnet_cidr: &str,
    zone: &str,
) -> String {
    let vpc = ec2
        .create_vpc()
        .cidr_block(vpc_cidr)
        .send()
        .await
        .expect("CreateVpc");
    let subnet = ec2
        .create_subnet()
        .vpc_id(vpc.vpc().and_then(|v| v.vpc_id()).expect("a VPC id"))
        .cidr_block(subnet_cidr)
        .availability_zone(zone)
        .send()
        .await
        .expect("CreateSubnet");
    subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("a subnet id")
        .to_owned()
}
