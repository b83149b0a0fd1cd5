//! What the fault and leader-change tests share (e2e_aws_faults.rs, scale_faults.rs):
//! an estate of target groups and node pools, the 20 % AWS fault mix, and per-target
//! counts of the registrations AWS actually received.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use berth_core::domain::Owner;
use berth_kube::ownership::ConfigMapOwnership;
use berth_testing::{Fault, FaultProxy, Match, Rule, RuleId};
use k8s_openapi::api::core::v1::ConfigMap;

use crate::common::{instance, World};

/// Target groups, and nodes in pools each bound to 2–4 of them by the static rules.
pub struct Estate {
    /// Group ARNs, `tg-0` first.
    pub arns: Vec<String>,
    /// The rules file.
    pub config: PathBuf,
    /// Per group ARN, the `id:port` targets that belong in it.
    pub expected: BTreeMap<String, BTreeSet<String>>,
}

impl Estate {
    /// `groups` instance groups `tg-<g>` (port 30000 + g) and `nodes` Ready nodes:
    /// node i is in pool `p<i % pools>` (pools = groups / 2), and pool p belongs in
    /// 2 + p % 3 consecutive groups from `tg-<2p>`, wrapping.
    pub async fn build(w: &World, nodes: usize, groups: usize) -> Estate {
        assert!(groups >= 4, "at least 4 groups");
        let mut arns = Vec::new();
        for g in 0..groups {
            arns.push(w.group(&format!("tg-{g}"), port(g)).await);
        }
        let pools = groups / 2;
        let pool_groups =
            |p: usize| -> Vec<usize> { (0..2 + p % 3).map(|j| (2 * p + j) % groups).collect() };
        let mut config = String::from("rules:\n");
        for p in 0..pools {
            let refs: Vec<String> = pool_groups(p)
                .into_iter()
                .map(|g| format!("{{name: tg-{g}}}"))
                .collect();
            config.push_str(&format!(
                "  - nodeSelector: {{matchLabels: {{pool: p{p}}}}}\n    targetGroups: [{}]\n",
                refs.join(", ")
            ));
        }
        let config = w.write("config.yaml", &config);
        let mut expected: BTreeMap<String, BTreeSet<String>> =
            arns.iter().map(|a| (a.clone(), BTreeSet::new())).collect();
        for i in 0..nodes {
            let p = i % pools;
            w.add_node(
                &format!("node-{i}"),
                &instance(i),
                &[("pool", &format!("p{p}"))],
            );
            for g in pool_groups(p) {
                expected.get_mut(&arns[g]).expect("group").insert(format!(
                    "{}:{}",
                    instance(i),
                    port(g)
                ));
            }
        }
        Estate {
            arns,
            config,
            expected,
        }
    }

    /// (group, target) pairs that belong.
    pub fn registrations(&self) -> usize {
        self.expected.values().map(BTreeSet::len).sum()
    }

    /// The daemon's arguments: cluster mode, these rules, and `extra`.
    pub fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "--mode",
            "cluster",
            "--config",
            self.config.to_str().expect("UTF-8 path"),
        ];
        args.extend_from_slice(extra);
        args
    }

    /// Groups whose members in moto differ from what belongs (empty: converged).
    pub async fn differences(&self, w: &World) -> Vec<String> {
        let mut wrong = Vec::new();
        for (arn, want) in &self.expected {
            let have = w.members(arn).await;
            if &have != want {
                let missing = want.difference(&have).count();
                let extra = have.difference(want).count();
                wrong.push(format!("{arn}: {missing} missing, {extra} extra"));
            }
        }
        wrong
    }
}

fn port(group: usize) -> i32 {
    30000 + i32::try_from(group).expect("small group index")
}

/// The ids of the rules of [`fault_mix`].
pub struct FaultMix {
    pub delay: RuleId,
    pub throttle: RuleId,
    pub server_error: RuleId,
    pub reset: RuleId,
}

impl FaultMix {
    /// (fault, requests it acted on).
    pub fn fired(&self, proxy: &FaultProxy) -> Vec<(&'static str, usize)> {
        vec![
            ("delay 2 s", proxy.fired(self.delay)),
            ("throttle", proxy.fired(self.throttle)),
            ("503", proxy.fired(self.server_error)),
            ("reset", proxy.fired(self.reset)),
        ]
    }
}

/// One ELBv2 call in five (deterministic, by arrival order) fails or is slow: 2 s of
/// latency for one call in 10 (then answered normally), and of the calls left, one in
/// 15 throttled (`Throttling`), one in 14 a 503 (`ServiceUnavailable`), one in 13
/// closed without an answer — about a fifth failing, a tenth slow.
pub fn fault_mix(proxy: &FaultProxy) -> FaultMix {
    let elb = || Match::Service("elasticloadbalancing".into());
    FaultMix {
        delay: proxy.add(Rule::matching(elb(), Fault::Delay(Duration::from_secs(2))).every(10)),
        throttle: proxy.add(Rule::matching(elb(), Fault::Throttle).every(15)),
        server_error: proxy
            .add(Rule::matching(elb(), Fault::ServerError { status: 503 }).every(14)),
        reset: proxy.add(Rule::matching(elb(), Fault::Reset).every(13)),
    }
}

/// How often AWS received each target in a `RegisterTargets` request (the requests
/// the proxy forwarded to moto, whatever moto answered): `<group ARN> <id>:<port>` →
/// count. A target counted twice was registered twice: a second RegisterTargets of a
/// target already registered (AWS accepts it, so it only shows here).
pub fn registrations_received(proxy: &FaultProxy) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for body in proxy.forwarded_bodies("RegisterTargets") {
        let params: BTreeMap<String, String> = body
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), percent_decode(v)))
            .collect();
        let group = params.get("TargetGroupArn").cloned().unwrap_or_default();
        for n in 1.. {
            let Some(id) = params.get(&format!("Targets.member.{n}.Id")) else {
                break;
            };
            let port = params
                .get(&format!("Targets.member.{n}.Port"))
                .cloned()
                .unwrap_or_default();
            *counts.entry(format!("{group} {id}:{port}")).or_insert(0) += 1;
        }
    }
    counts
}

/// The targets counted more than once by [`registrations_received`].
pub fn registered_twice(counts: &BTreeMap<String, usize>) -> Vec<(&String, &usize)> {
    counts.iter().filter(|(_, n)| **n > 1).collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The (group, target) pairs the cluster-mode ownership ConfigMap records, as
/// `<group key> <id>:<port>`.
pub fn owned_pairs(w: &World) -> BTreeSet<String> {
    let name =
        ConfigMapOwnership::config_map_name(&Owner::new("berth/default/daemon").expect("owner id"));
    let cm: Option<ConfigMap> = w.kube.get(Some("default"), &name);
    cm.and_then(|cm| cm.data)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(group, targets)| {
            targets
                .split_whitespace()
                .map(|t| format!("{group} {t}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The sum of every sample of `metric` whose labels contain each of `labels`
/// (`key="value"`), in Prometheus text.
pub fn metric_sum(metrics: &str, metric: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `berth_aws_api_errors_total` per `operation error_code`, and
/// `berth_aws_api_calls_total` per operation, from the daemon's /metrics.
pub fn aws_calls_and_errors(metrics: &str) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let label = |line: &str, key: &str| -> String {
        line.split(&format!("{key}=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned()
    };
    let mut calls = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        if line.starts_with("berth_aws_api_calls_total{") {
            *calls.entry(label(line, "operation")).or_insert(0.0) += value;
        } else if line.starts_with("berth_aws_api_errors_total{") {
            let key = format!("{} {}", label(line, "operation"), label(line, "error_code"));
            *errors.entry(key).or_insert(0.0) += value;
        }
    }
    (calls, errors)
}
