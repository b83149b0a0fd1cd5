//! A big estate, built fast, for the scale benchmarks (`tests/scale.rs`, and any other
//! test that needs thousands of nodes):
//!
//! - `nodes` moto instances (RunInstances in batches of [`RUN_BATCH`]) and as many
//!   Ready nodes in the fake API server, shaped like real EKS nodes (managed fields,
//!   images, capacity, node info: ~9 KB of JSON each), whose providerID names the
//!   instance;
//! - `groups` instance target groups; node `i` belongs in [`groups_of`]`(i)`, 2–4 of
//!   them, through one static rule per group selecting the label `fleet/tg-<g>`
//!   (every fifth group referenced by name, the others by ARN);
//! - [`Fleet::daemon`] starts the compiled daemon in cluster mode with a resync interval;
//! - [`Fleet::expected`] is what moto should hold for the fleet's current state, and
//!   [`Fleet::diff`] compares it with moto's (one `DescribeTargetHealth` per group,
//!   straight to moto, so the proxy's counts only show the daemon's calls);
//! - [`memory`] reads a process's `VmRSS`/`VmHWM`.
//!
//! Nodes can churn: [`Fleet::add`], [`Fleet::remove`], [`Fleet::set_ready`] change the
//! fake API server and the expectation together. Spare instances (`spare` in
//! [`Fleet::build`]) back nodes added later.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::InstanceType;
use berth_testing::sdk_config;
use k8s_openapi::api::core::v1 as core;

use super::{Daemon, World};

/// Instances per RunInstances call.
pub const RUN_BATCH: i32 = 500;

/// The estate: the peers, the groups, the instances, the nodes present.
pub struct Fleet {
    pub world: World,
    /// Target group ARNs; group `g` is `groups[g]`, named `tg-<g>`.
    pub groups: Vec<String>,
    /// Instance ids; node `i` runs on `instances[i]`.
    pub instances: Vec<String>,
    /// The static rules file.
    pub config: std::path::PathBuf,
    /// Nodes in the fake API server by index, and whether each is Ready.
    present: BTreeMap<usize, bool>,
}

/// The groups node `i` belongs in: 2, 3 or 4 (by `i % 3`) consecutive groups from
/// `7 i mod groups`, so every group gets about the same number of nodes.
pub fn groups_of(i: usize, groups: usize) -> Vec<usize> {
    let count = (2 + i % 3).min(groups);
    (0..count).map(|k| (i * 7 + k) % groups).collect()
}

/// Node `i`'s name.
pub fn node_name(i: usize) -> String {
    format!(
        "ip-10-{}-{}-{}.eu-west-1.compute.internal",
        i / 65536,
        (i / 256) % 256,
        i % 256
    )
}

impl Fleet {
    /// Builds `nodes` nodes (indexes `0..nodes`, all Ready) over `groups` groups
    /// (at least 4), with `spare` more instances for nodes added later
    /// (indexes `nodes..nodes + spare`). Nothing is registered yet.
    pub async fn build(nodes: usize, groups: usize, spare: usize) -> Fleet {
        assert!(
            groups >= 4,
            "2–4 distinct groups per node need at least 4 groups"
        );
        let world = World::new().await;
        let config = sdk_config(&world.moto.endpoint());
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let mut instances = Vec::with_capacity(nodes + spare);
        while instances.len() < nodes + spare {
            let batch = RUN_BATCH.min(i32::try_from(nodes + spare - instances.len()).unwrap());
            let out = ec2
                .run_instances()
                .image_id("ami-12c6146b")
                .instance_type(InstanceType::T3Micro)
                .min_count(batch)
                .max_count(batch)
                .send()
                .await
                .expect("RunInstances");
            instances.extend(
                out.instances()
                    .iter()
                    .map(|i| i.instance_id().expect("instance id").to_owned()),
            );
        }
        let mut arns = Vec::with_capacity(groups);
        let mut rules = String::from("rules:\n");
        for g in 0..groups {
            let port = 30000 + i32::try_from(g).unwrap();
            let arn = world.group(&format!("tg-{g}"), port).await;
            let reference = if g % 5 == 0 {
                format!("{{name: tg-{g}}}")
            } else {
                format!("{{arn: \"{arn}\"}}")
            };
            rules.push_str(&format!(
                "  - nodeSelector: {{matchLabels: {{fleet/tg-{g}: \"true\"}}}}\n    targetGroups: [{reference}]\n"
            ));
            arns.push(arn);
        }
        let config = world.write("fleet-rules.yaml", &rules);
        let mut fleet = Fleet {
            world,
            groups: arns,
            instances,
            config,
            present: BTreeMap::new(),
        };
        for i in 0..nodes {
            fleet.add(i);
        }
        fleet
    }

    /// Starts the daemon in cluster mode, resyncing every `resync_seconds`, with
    /// `extra` arguments after the fleet's and `env` (`RUST_BACKTRACE=0` unless `env`
    /// says otherwise).
    pub fn daemon(&self, resync_seconds: u64, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let resync = resync_seconds.to_string();
        let mut args = vec![
            "--mode",
            "cluster",
            "--config",
            self.config.to_str().expect("UTF-8 path"),
            "--sleep-interval",
            &resync,
        ];
        args.extend_from_slice(extra);
        // As in a pod: with RUST_BACKTRACE inherited from a developer's shell, errors
        // capture and symbolize backtraces, ~19 MiB more at 1,000 nodes (debug build).
        let mut env_with = vec![("RUST_BACKTRACE", "0")];
        env_with.extend_from_slice(env);
        self.world.daemon(&args, &env_with)
    }

    /// Adds node `i` (or replaces it), Ready, in its groups.
    pub fn add(&mut self, i: usize) {
        self.world.kube.add_node(rich_node(
            i,
            &self.instances[i],
            &groups_of(i, self.groups.len()),
        ));
        self.present.insert(i, true);
    }

    /// Deletes node `i` from the API server.
    pub fn remove(&mut self, i: usize) {
        self.world.kube.delete_node(&node_name(i));
        self.present.remove(&i);
    }

    /// Turns node `i` Ready or NotReady. NotReady dates from an hour ago, so any
    /// `--not-ready-grace` shorter than that has run out.
    pub fn set_ready(&mut self, i: usize, ready: bool) {
        let since = if ready {
            SystemTime::now()
        } else {
            SystemTime::now() - Duration::from_secs(3600)
        };
        self.world.set_ready(&node_name(i), ready, since);
        self.present.insert(i, ready);
    }

    /// The indexes of the nodes present, and whether each is Ready.
    pub fn present(&self) -> &BTreeMap<usize, bool> {
        &self.present
    }

    /// The instance ids each group should hold: the Ready nodes present in it.
    pub fn expected(&self) -> Vec<BTreeSet<String>> {
        let mut groups = vec![BTreeSet::new(); self.groups.len()];
        for (&i, _) in self.present.iter().filter(|(_, ready)| **ready) {
            for g in groups_of(i, self.groups.len()) {
                groups[g].insert(self.instances[i].clone());
            }
        }
        groups
    }

    /// Every group's registered instance ids, from moto.
    pub async fn registered(&self) -> Vec<BTreeSet<String>> {
        let mut out = Vec::with_capacity(self.groups.len());
        for arn in &self.groups {
            let health = self
                .world
                .elb
                .describe_target_health()
                .target_group_arn(arn)
                .send()
                .await
                .expect("DescribeTargetHealth");
            out.push(
                health
                    .target_health_descriptions()
                    .iter()
                    .filter_map(|d| d.target().and_then(|t| t.id()))
                    .map(str::to_owned)
                    .collect(),
            );
        }
        out
    }

    /// How moto differs from [`Fleet::expected`]: one line per group that differs
    /// (how many missing and extra, and a few of them); empty when they match.
    pub async fn diff(&self) -> Vec<String> {
        let expected = self.expected();
        let registered = self.registered().await;
        let mut lines = Vec::new();
        for (g, (want, have)) in expected.iter().zip(&registered).enumerate() {
            let missing: Vec<&String> = want.difference(have).collect();
            let extra: Vec<&String> = have.difference(want).collect();
            if !missing.is_empty() || !extra.is_empty() {
                lines.push(format!(
                    "tg-{g}: {} missing (e.g. {:?}), {} extra (e.g. {:?})",
                    missing.len(),
                    &missing[..missing.len().min(3)],
                    extra.len(),
                    &extra[..extra.len().min(3)],
                ));
            }
        }
        lines
    }

    /// Waits until moto holds exactly [`Fleet::expected`]; the time it took. Moto is
    /// compared after each completed reconcile pass only (a diff costs one
    /// `DescribeTargetHealth` per group), so the time is that of the end of the pass
    /// that converged. Panics after `timeout` with the remaining differences.
    pub async fn wait_converged(&self, daemon: &Daemon, timeout: Duration) -> Duration {
        let started = std::time::Instant::now();
        let mut compared_at = None;
        loop {
            let passes = daemon.passes();
            if compared_at != Some(passes) && passes > 0 {
                let ended = started.elapsed();
                let diff = self.diff().await;
                if diff.is_empty() {
                    return ended;
                }
                if started.elapsed() > timeout {
                    panic!(
                        "not converged after {timeout:?} ({passes} passes):\n{}\n--- daemon log ---\n{}",
                        diff.join("\n"),
                        super::tail(&daemon.log_text(), 6000)
                    );
                }
                compared_at = Some(passes);
            } else if started.elapsed() > timeout {
                panic!(
                    "no reconcile pass completed after {timeout:?}\n--- daemon log ---\n{}",
                    super::tail(&daemon.log_text(), 6000)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Registrations the fleet expects in total (targets across groups).
    pub fn expected_targets(&self) -> usize {
        self.expected().iter().map(BTreeSet::len).sum()
    }
}

/// A process's resident memory, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now, KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size so far, KiB.
    pub hwm_kib: u64,
    /// `RssAnon`: the resident heap and stacks, KiB (VmRSS = RssAnon + RssFile +
    /// RssShmem).
    pub anon_kib: u64,
    /// `RssFile`: resident pages of mapped files (the executable's code), KiB.
    pub file_kib: u64,
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VmRSS {:.1} MiB (RssAnon {:.1}, RssFile {:.1}), VmHWM {:.1} MiB",
            self.rss_kib as f64 / 1024.0,
            self.anon_kib as f64 / 1024.0,
            self.file_kib as f64 / 1024.0,
            self.hwm_kib as f64 / 1024.0
        )
    }
}

/// `VmRSS` and `VmHWM` of process `pid`.
pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        anon_kib: field("RssAnon:"),
        file_kib: field("RssFile:"),
    }
}

/// Node `i` on `instance`, in `groups`, as an EKS node looks to the API: labels and
/// annotations as the kubelet and cloud provider set them, managed fields, capacity,
/// conditions, addresses, node info and a list of cached images.
pub fn rich_node(i: usize, instance: &str, groups: &[usize]) -> core::Node {
    let name = node_name(i);
    let ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
    let mut labels = serde_json::json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "m5.xlarge",
        "beta.kubernetes.io/os": "linux",
        "eks.amazonaws.com/capacityType": "ON_DEMAND",
        "eks.amazonaws.com/nodegroup": "workers",
        "eks.amazonaws.com/nodegroup-image": "ami-0123456789abcdef0",
        "failure-domain.beta.kubernetes.io/region": "eu-west-1",
        "failure-domain.beta.kubernetes.io/zone": "eu-west-1a",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "m5.xlarge",
        "topology.ebs.csi.aws.com/zone": "eu-west-1a",
        "topology.kubernetes.io/region": "eu-west-1",
        "topology.kubernetes.io/zone": "eu-west-1a",
    });
    for g in groups {
        labels[format!("fleet/tg-{g}")] = "true".into();
    }
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        serde_json::json!({
            "type": kind, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": "2024-05-01T10:00:00Z", "lastTransitionTime": "2024-05-01T10:00:00Z"
        })
    };
    let images: Vec<serde_json::Value> = (0..25)
        .map(|n| {
            serde_json::json!({
                "names": [
                    format!("602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/image-{n}@sha256:{:064x}", n * 7919 + 1),
                    format!("602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/image-{n}:v1.{n}.0-eksbuild.1"),
                ],
                "sizeBytes": 10_000_000 + n * 1_234_567,
            })
        })
        .collect();
    let managed = |manager: &str, operation: &str, sub: Option<&str>| {
        let mut entry = serde_json::json!({
            "manager": manager, "operation": operation, "apiVersion": "v1",
            "time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:node.alpha.kubernetes.io/ttl": {}},
                "f:labels": {".": {}, "f:kubernetes.io/arch": {}, "f:kubernetes.io/hostname": {}, "f:kubernetes.io/os": {},
                    "f:node.kubernetes.io/instance-type": {}, "f:topology.kubernetes.io/region": {}, "f:topology.kubernetes.io/zone": {}}},
                "f:spec": {"f:providerID": {}},
                "f:status": {"f:conditions": {"k:{\"type\":\"DiskPressure\"}": {"f:lastHeartbeatTime": {}},
                    "k:{\"type\":\"MemoryPressure\"}": {"f:lastHeartbeatTime": {}}, "k:{\"type\":\"PIDPressure\"}": {"f:lastHeartbeatTime": {}},
                    "k:{\"type\":\"Ready\"}": {"f:lastHeartbeatTime": {}, "f:lastTransitionTime": {}, "f:message": {}, "f:reason": {}, "f:status": {}}},
                    "f:images": {}, "f:nodeInfo": {"f:bootID": {}}}}
        });
        if let Some(sub) = sub {
            entry["subresource"] = sub.into();
        }
        entry
    };
    let value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": format!("{:08x}-0000-4000-8000-{:012x}", i, i),
            "creationTimestamp": "2024-05-01T09:58:00Z",
            "labels": labels,
            "annotations": {
                "alpha.kubernetes.io/provided-node-ip": ip,
                "csi.volume.kubernetes.io/nodeid": format!("{{\"ebs.csi.aws.com\":\"{instance}\"}}"),
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
            "managedFields": [
                managed("kubelet", "Update", None),
                managed("kube-controller-manager", "Update", None),
                managed("kubelet", "Update", Some("status")),
            ],
        },
        "spec": {"providerID": format!("aws:///eu-west-1a/{instance}")},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "InternalDNS", "address": name},
                {"type": "Hostname", "address": name},
            ],
            "allocatable": {"cpu": "3920m", "ephemeral-storage": "95551679124", "hugepages-1Gi": "0",
                "hugepages-2Mi": "0", "memory": "15136012Ki", "pods": "58"},
            "capacity": {"cpu": "4", "ephemeral-storage": "104845292Ki", "hugepages-1Gi": "0",
                "hugepages-2Mi": "0", "memory": "16084236Ki", "pods": "58"},
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": images,
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": format!("{:08x}-1111-4111-8111-{:012x}", i, i),
                "containerRuntimeVersion": "containerd://1.7.11",
                "kernelVersion": "5.10.205-195.807.amzn2.x86_64",
                "kubeProxyVersion": "v1.29.0-eks-5e0fdde",
                "kubeletVersion": "v1.29.0-eks-5e0fdde",
                "machineID": format!("ec2{:029x}", i),
                "operatingSystem": "linux",
                "osImage": "Amazon Linux 2",
                "systemUUID": format!("ec2{:05x}-aaaa-bbbb-cccc-{:012x}", i, i),
            },
        }
    });
    serde_json::from_value(value).expect("a valid Node")
}
