//! A world for the etcd scenarios: moto with an Auto Scaling group whose instances get
//! loopback private IPs (a VPC in 127.0.0.0/16), one real etcd member per instance on
//! its own IP, one fake IMDSv2 per run of the compiled binary.

// Each test binary uses a part of the world.
#![allow(dead_code)]

#[path = "../subnet/mod.rs"]
mod subnet;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use berth_core::provider::{EtcdMember, EtcdMembership};
use berth_etcd::{EtcdAdapter, EtcdClientConfig};
use berth_testing::etcd::{drop_in_environment, free_port, EtcdProcesses};
use berth_testing::imds::FakeImds;
use berth_testing::{aws_env, sdk_config, MotoGuard, MotoServer, TEST_REGION};
use serde_json::Value;

pub(crate) const GROUP: &str = "etcd-masters";
pub(crate) const MARKER_TABLE: &str = "etcd-clusters";

/// One instance of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) ip: IpAddr,
}

/// What one run of the binary printed and returned.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) summary: Value,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl Run {
    /// The etcd module's membership summary.
    pub(crate) fn membership(&self) -> &Value {
        &self.summary["modules"]["etcd"]["details"]["membership"]
    }

    /// The run exited 0.
    pub(crate) fn assert_done(&self) {
        assert_eq!(self.code, 0, "{}\n{}", self.summary, self.stderr);
    }

    /// AWS calls of the run, per operation.
    pub(crate) fn aws_calls(&self) -> BTreeMap<String, u64> {
        serde_json::from_value(self.summary["aws_calls"].clone()).unwrap_or_default()
    }
}

pub(crate) struct World {
    _moto: MotoGuard,
    endpoint: String,
    pub(crate) sdk: SdkConfig,
    pub(crate) etcd: EtcdProcesses,
    pub(crate) client_port: u16,
    pub(crate) peer_port: u16,
}

impl World {
    /// moto reset, a VPC and subnet in 127.0.0.0/16, a group of `desired` instances
    /// and the marker table.
    pub(crate) async fn new(desired: i32) -> World {
        let moto = MotoServer::isolated().await;
        let endpoint = moto.endpoint();
        let sdk = sdk_config(&endpoint);
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let subnet_id = subnet::create(
            &ec2,
            "127.0.0.0/16",
            "127.0.1.0/24",
            &format!("{TEST_REGION}a"),
        )
        .await;
        let asg = aws_sdk_autoscaling::Client::new(&sdk);
        asg.create_launch_configuration()
            .launch_configuration_name("etcd")
            .image_id("ami-12c6146b")
            .instance_type("t3.micro")
            .send()
            .await
            .expect("CreateLaunchConfiguration");
        asg.create_auto_scaling_group()
            .auto_scaling_group_name(GROUP)
            .launch_configuration_name("etcd")
            .min_size(0)
            .max_size(6)
            .desired_capacity(desired)
            .vpc_zone_identifier(&subnet_id)
            .send()
            .await
            .expect("CreateAutoScalingGroup");
        aws_sdk_dynamodb::Client::new(&sdk)
            .create_table()
            .table_name(MARKER_TABLE)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("CreateTable");
        World {
            _moto: moto,
            endpoint,
            sdk,
            etcd: EtcdProcesses::new(),
            client_port: free_port(),
            peer_port: free_port(),
        }
    }

    /// The group's instances with their private IPs, sorted by id (the order of
    /// `ETCD_INITIAL_CLUSTER`).
    pub(crate) async fn nodes(&self) -> Vec<Node> {
        let asg = aws_sdk_autoscaling::Client::new(&self.sdk);
        let groups = asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(GROUP)
            .send()
            .await
            .expect("DescribeAutoScalingGroups");
        let ids: Vec<String> = groups.auto_scaling_groups()[0]
            .instances()
            .iter()
            .map(|i| i.instance_id().unwrap().to_owned())
            .collect();
        let ec2 = aws_sdk_ec2::Client::new(&self.sdk);
        let described = ec2
            .describe_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .expect("DescribeInstances");
        let mut nodes: Vec<Node> = described
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| Node {
                id: i.instance_id().unwrap().to_owned(),
                ip: i.private_ip_address().unwrap().parse().unwrap(),
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        assert!(
            nodes
                .iter()
                .all(|n| n.ip.to_string().starts_with("127.0.1.")),
            "moto should give loopback IPs: {nodes:?}"
        );
        nodes
    }

    pub(crate) async fn set_desired(&self, desired: i32) {
        aws_sdk_autoscaling::Client::new(&self.sdk)
            .set_desired_capacity()
            .auto_scaling_group_name(GROUP)
            .desired_capacity(desired)
            .send()
            .await
            .expect("SetDesiredCapacity");
    }

    /// Terminates an instance; the group launches a replacement (as AWS does when the
    /// desired capacity is kept).
    pub(crate) async fn terminate(&self, id: &str) {
        aws_sdk_autoscaling::Client::new(&self.sdk)
            .terminate_instance_in_auto_scaling_group()
            .instance_id(id)
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .expect("TerminateInstanceInAutoScalingGroup");
    }

    pub(crate) fn drop_in(&self, id: &str) -> PathBuf {
        self.etcd.path(&format!(
            "{id}/etc/systemd/system/etcd.service.d/70-initial-cluster.conf"
        ))
    }

    pub(crate) fn client_url(&self, node: &Node) -> String {
        format!("http://{}:{}", node.ip, self.client_port)
    }

    /// Runs the compiled binary as `node`, with only the etcd module.
    pub(crate) async fn run(&self, node: &Node, extra_args: &[&str]) -> Run {
        self.run_with(node, "", extra_args).await
    }

    /// [`World::run`] with more `etcd:` keys (`etcd_keys`: indented YAML lines);
    /// `--deadline` in `extra_args` replaces the default 90 s.
    pub(crate) async fn run_with(&self, node: &Node, etcd_keys: &str, extra_args: &[&str]) -> Run {
        let yaml = format!(
            "base:\n  chroot_path: false\nmodules: [etcd]\n{}{etcd_keys}",
            self.etcd_section(node)
        );
        self.run_config(node, &yaml, extra_args).await
    }

    /// The `etcd:` section of `node`'s configuration (its drop-in and data dir, the
    /// world's ports, the marker table).
    pub(crate) fn etcd_section(&self, node: &Node) -> String {
        format!(
            "etcd:\n  client_port: {}\n  peer_port: {}\n  drop_in_file: {}\n  data_dir: {}\n  \
             cluster_size: 3\n  marker_table: {MARKER_TABLE}\n",
            self.client_port,
            self.peer_port,
            self.drop_in(&node.id).display(),
            self.etcd.data_dir(&node.id).display(),
        )
    }

    /// Runs the compiled binary as `node` with this whole configuration.
    pub(crate) async fn run_config(&self, node: &Node, yaml: &str, extra_args: &[&str]) -> Run {
        self.run_config_through(&self.endpoint, node, yaml, extra_args)
            .await
    }

    /// moto's endpoint, to put a proxy in front of it.
    pub(crate) fn aws_endpoint(&self) -> &str {
        &self.endpoint
    }

    /// [`World::run_config`] with AWS at `aws_endpoint` (a proxy in front of moto).
    pub(crate) async fn run_config_through(
        &self,
        aws_endpoint: &str,
        node: &Node,
        yaml: &str,
        extra_args: &[&str],
    ) -> Run {
        let imds = FakeImds::start();
        imds.set_identity(&node.id, TEST_REGION, &node.ip.to_string());
        let config = self.etcd.path(&format!("{}/bootstrap.yaml", node.id));
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(&config, yaml).unwrap();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth-bootstrap"));
        command.arg("-c").arg(&config);
        if !extra_args.contains(&"--deadline") {
            command.args(["--deadline", "90s"]);
        }
        command
            .args(extra_args)
            .envs(
                aws_env(aws_endpoint)
                    .into_iter()
                    .filter(|(k, _)| *k != "AWS_EC2_METADATA_DISABLED"),
            )
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint())
            .env("BERTH_LOG", "info,berth_core=debug")
            .kill_on_drop(true);
        let started = Instant::now();
        let output = tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .expect("berth-bootstrap ran for more than 120 s")
            .expect("run berth-bootstrap");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "summary is not JSON ({e}): {stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        // berth-runtime's one-shot report {"outcome", "summary": {...}, "error"}: the
        // run's summary, with the outcome and the error beside its fields.
        let mut summary = match &report["summary"] {
            Value::Object(_) => report["summary"].clone(),
            _ => Value::Object(serde_json::Map::new()),
        };
        summary["outcome"] = report["outcome"].clone();
        summary["elapsed_seconds"] = report["elapsed_seconds"].clone();
        summary["error"] = report["error"].clone();
        Run {
            code: output.status.code().unwrap_or(-1),
            summary,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// Starts `node`'s etcd as systemd would: with the variables of its drop-in.
    pub(crate) fn start_from_drop_in(&mut self, node: &Node) {
        let env = drop_in_env(self, node);
        self.etcd.start_with_env(&node.id, &env);
    }

    /// The cluster's members through a linearizable read, once every given node is
    /// healthy.
    pub(crate) async fn members(&self, through: &[Node]) -> Vec<EtcdMember> {
        let urls: Vec<String> = through.iter().map(|n| self.client_url(n)).collect();
        self.etcd.wait_healthy(&urls, Duration::from_secs(60));
        let adapter = EtcdAdapter::new(EtcdClientConfig::default());
        let mut members = adapter
            .quorum_members(&urls)
            .await
            .expect("quorum read")
            .expect("a quorum answers");
        members.sort_by(|a, b| a.name.cmp(&b.name));
        members
    }

    /// The members' names through a linearizable read (sorted).
    pub(crate) async fn member_names(&self, through: &[Node]) -> Vec<String> {
        self.members(through)
            .await
            .into_iter()
            .map(|m| m.name)
            .collect()
    }

    /// A world whose three nodes formed one cluster, healthy through each of them.
    pub(crate) async fn formed() -> (World, Vec<Node>) {
        let mut world = World::new(3).await;
        let nodes = world.form_cluster().await;
        world.members(&nodes).await;
        (world, nodes)
    }

    /// The group grows by one instance: the new one.
    pub(crate) async fn grow(&self, nodes: &[Node]) -> Node {
        self.set_desired(i32::try_from(nodes.len()).unwrap() + 1)
            .await;
        self.newcomer(nodes).await
    }

    /// Starts `new`'s etcd from its drop-in; the members, healthy through `nodes` and it.
    pub(crate) async fn start_joined(&mut self, nodes: &[Node], new: &Node) -> Vec<EtcdMember> {
        self.start_from_drop_in(new);
        let mut through = nodes.to_vec();
        through.push(new.clone());
        self.members(&through).await
    }

    /// The group's instance that is not one of `known` (a replacement, a new node).
    pub(crate) async fn newcomer(&self, known: &[Node]) -> Node {
        self.nodes()
            .await
            .into_iter()
            .find(|n| !known.contains(n))
            .expect("a new instance in the group")
    }

    /// Kills `node`'s etcd and terminates its instance; the group replaces it.
    pub(crate) async fn lose(&mut self, node: &Node) {
        self.etcd.kill(&node.id);
        self.terminate(&node.id).await;
    }

    /// Three fresh nodes boot at the same moment (three binaries at once), then
    /// systemd starts each etcd from its drop-in. Returns the nodes.
    pub(crate) async fn form_cluster(&mut self) -> Vec<Node> {
        let nodes = self.nodes().await;
        assert_eq!(nodes.len(), 3);
        let (a, b, c) = tokio::join!(
            self.run(&nodes[0], &[]),
            self.run(&nodes[1], &[]),
            self.run(&nodes[2], &[])
        );
        for run in [&a, &b, &c] {
            assert_eq!(run.code, 0, "{}\n{}", run.summary, run.stderr);
            assert_eq!(run.membership()["action"], "created", "{}", run.summary);
        }
        for node in &nodes {
            self.start_from_drop_in(node);
        }
        nodes
    }
}

/// The `ETCD_*` variables of `node`'s drop-in.
pub(crate) fn drop_in_env(world: &World, node: &Node) -> Vec<(String, String)> {
    drop_in_environment(&world.drop_in(&node.id))
}

/// Call counts per operation, as [`Run::aws_calls`] returns them.
pub(crate) fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}
