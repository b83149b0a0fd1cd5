//! The daemon's pass on the in-memory providers: the merge of configurations and label
//! rules, holds, ownership, the spot rule, drains (paused time) and `requeue_after`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::domain::{Owner, Target, TargetGroup, TargetGroupRef, TargetState, TargetType};
use crate::engine::{ApplyOptions, RetryPolicy};
use crate::memory::{MemoryLedger, MemoryNodeConfigurations, MemoryTargetGroups};
use crate::plan::{NodeGroup, NodeGroups, TaintMatch};
use crate::provider::{GroupBinding, LedgerOwnership, TargetGroups};

mod absent;
mod drains;
mod labels;
mod notice_taints;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

struct Rig {
    tg: Arc<MemoryTargetGroups>,
    castai: Arc<MemoryNodeConfigurations>,
    ownership: Arc<LedgerOwnership<Arc<MemoryLedger>>>,
    web: TargetGroup,
    api: TargetGroup,
}

impl Rig {
    /// `web` (port 80, delay 45 s) is in configuration `cfg-1`; `api` (port 443) is
    /// bound by a label rule `role=api` on port 8443.
    fn new() -> Rig {
        let tg = Arc::new(MemoryTargetGroups::default());
        let web = tg.add_group("web", TargetType::Instance, Some(80));
        tg.set_deregistration_delay(&web.arn, Duration::from_secs(45));
        let api = tg.add_group("api", TargetType::Instance, Some(443));
        let castai = Arc::new(MemoryNodeConfigurations::default());
        castai.insert(
            "cfg-1",
            vec![GroupBinding {
                group: TargetGroupRef::Arn(web.arn.clone()),
                port: None,
            }],
        );
        Rig {
            tg,
            castai,
            ownership: Arc::new(LedgerOwnership::new(
                Arc::new(MemoryLedger::default()),
                Owner::new("berth/test").unwrap(),
            )),
            web: TargetGroup {
                deregistration_delay: Duration::from_secs(45),
                ..web
            },
            api,
        }
    }

    fn workflow(&self, scope: Scope) -> NodeTargets {
        self.workflow_over(scope, self.tg.clone())
    }

    /// The workflow over other target groups (e.g. a wrapper of the rig's).
    fn workflow_over(&self, scope: Scope, target_groups: Arc<dyn TargetGroups>) -> NodeTargets {
        let engine = Engine::new(ApplyOptions {
            retry: RetryPolicy {
                base_delay: Duration::from_millis(1),
                ..RetryPolicy::default()
            },
            ..ApplyOptions::default()
        });
        let providers = NodeTargetsProviders {
            target_groups,
            ownership: self.ownership.clone(),
            node_configurations: Some(self.castai.clone()),
        };
        let settings = NodeTargetsSettings {
            label_rules: vec![LabelRule {
                name: "api".into(),
                match_labels: [("role".to_owned(), "api".to_owned())].into(),
                target_groups: vec![GroupBinding {
                    group: TargetGroupRef::Name("api".into()),
                    port: Some(8443),
                }],
            }],
            scope,
            drain_poll: PollPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(5),
                deadline: Duration::from_secs(20),
            },
            ..NodeTargetsSettings::default()
        };
        NodeTargets::new(engine, providers, settings)
    }
}

fn node(i: u32, config: Option<&str>, api: bool) -> Node {
    let mut n =
        Node::new(format!("node-{i}")).with_provider_id(&format!("aws:///us-east-1a/i-{i:08x}"));
    if let Some(c) = config {
        n.labels.insert(NODE_CONFIGURATION_LABEL.into(), c.into());
    }
    if api {
        n.labels.insert("role".into(), "api".into());
    }
    n
}

fn target(i: u32, port: u16) -> Target {
    Target::new(format!("i-{i:08x}"), port)
}

fn count(pass: &Pass, pred: impl Fn(&Notice) -> bool) -> usize {
    pass.notices.iter().filter(|n| pred(n)).count()
}

#[test]
fn the_merge_puts_rules_first_then_the_configuration_without_duplicates() {
    let rule = |name: &str, port| GroupBinding {
        group: TargetGroupRef::Name(name.into()),
        port,
    };
    let rules = vec![
        LabelRule {
            name: "a".into(),
            match_labels: [("role".to_owned(), "web".to_owned())].into(),
            target_groups: vec![rule("web", Some(30080)), rule("tls", None)],
        },
        LabelRule {
            name: "all".into(),
            match_labels: Default::default(),
            target_groups: vec![rule("tls", None), rule("all", None)],
        },
    ];
    let web = [("role".to_owned(), "web".to_owned())].into();
    let from_rules = rule_bindings(&rules, &web);
    assert_eq!(
        from_rules,
        vec![
            rule("web", Some(30080)),
            rule("tls", None),
            rule("all", None)
        ]
    );
    assert_eq!(rule_bindings(&rules, &Default::default()).len(), 2);
    let castai = Ok(vec![rule("all", None), rule("web", None)]);
    assert_eq!(
        merge_bindings(from_rules.clone(), Some(&castai)).unwrap(),
        vec![
            rule("web", Some(30080)),
            rule("tls", None),
            rule("all", None),
            rule("web", None)
        ],
        "the same group on another port is another binding"
    );
    assert_eq!(
        merge_bindings(from_rules.clone(), None).unwrap(),
        from_rules
    );
    let outage = Err("node configuration cfg-1: 500".to_owned());
    assert_eq!(
        merge_bindings(from_rules, Some(&outage)),
        outage,
        "a configuration that cannot be read makes the node's groups unknown, rules or not"
    );
}

#[test]
fn one_unresolved_group_makes_the_node_unknown() {
    let tg = MemoryTargetGroups::default();
    let web = tg.add_group("web", TargetType::Instance, Some(80));
    let by_name = |n: &str| TargetGroupRef::Name(n.into());
    let answers = [
        (by_name("web"), Ok(web.clone())),
        (
            by_name("gone"),
            Err("target group gone: not found".to_owned()),
        ),
    ]
    .into_iter()
    .collect();
    let bind = |n: &str| GroupBinding {
        group: by_name(n),
        port: Some(8080),
    };
    assert_eq!(
        node_groups(&Ok(vec![bind("web")]), &answers),
        NodeGroups::Resolved(vec![NodeGroup {
            group: web,
            port: Some(8080)
        }])
    );
    assert_eq!(
        node_groups(&Ok(vec![bind("web"), bind("gone")]), &answers),
        NodeGroups::Unknown {
            reason: "target group gone: not found".into()
        }
    );
    assert!(matches!(
        node_groups(&Ok(vec![bind("never-asked")]), &answers),
        NodeGroups::Unknown { .. }
    ));
}

#[tokio::test]
async fn registers_from_the_configuration_and_the_rules_asking_once_per_id_and_group() {
    let rig = Rig::new();
    let w = rig.workflow(Scope::Cluster);
    let nodes = vec![
        node(1, Some("cfg-1"), false),
        node(2, Some("cfg-1"), true),
        node(3, None, true),
        node(4, None, false),
    ];
    let pass = w.pass(&nodes, t0()).await.unwrap();
    assert!(pass.converged(), "{}", pass.report);
    assert_eq!(rig.castai.faults.calls("GetNodeConfiguration"), 1);
    assert_eq!(rig.tg.faults.calls("DescribeTargetGroups"), 2);
    assert_eq!(rig.tg.faults.calls("DescribeTargetHealth"), 2);
    let web = rig.tg.members(&rig.web.arn);
    let api = rig.tg.members(&rig.api.arn);
    assert_eq!(web.len(), 2);
    assert!(web.contains_key(&target(1, 80)) && web.contains_key(&target(2, 80)));
    assert_eq!(api.len(), 2);
    assert!(
        api.contains_key(&target(2, 8443)) && api.contains_key(&target(3, 8443)),
        "the rule's api group on its explicit port: {api:?}"
    );
    let registered = count(&pass, |n| {
        matches!(n, Notice::Registered { node: Some(_), .. })
    });
    assert_eq!(registered, 4);
    assert_eq!(pass.skipped_nodes(), 1);
    assert!(pass
        .notices
        .iter()
        .any(|n| matches!(n, Notice::Skipped { node, .. } if node == "node-4")));
    assert_eq!(pass.requeue_after, None, "nothing to wait for");
    // Again: nothing to do, and the skip is not reported twice.
    let again = w.pass(&nodes, t0()).await.unwrap();
    assert!(again.plan.is_empty(), "{}", again.plan);
    assert!(again.notices.is_empty(), "{:?}", again.notices);
}

#[tokio::test]
async fn a_configuration_outage_holds_without_retrying_inside_the_pass() {
    let rig = Rig::new();
    let w = rig.workflow(Scope::Cluster);
    let nodes = vec![node(1, Some("cfg-1"), false)];
    w.pass(&nodes, t0()).await.unwrap();
    let outage = Error::Unavailable {
        operation: "GetNodeConfiguration".into(),
        message: "500".into(),
    };
    rig.castai.faults.fail("GetNodeConfiguration", outage, 2);
    let mut more = nodes.clone();
    more.push(node(2, Some("cfg-1"), false));
    let held = w.pass(&more, t0()).await.unwrap();
    assert_eq!(
        rig.castai.faults.calls("GetNodeConfiguration"),
        2,
        "no retry"
    );
    assert!(
        held.plan.is_empty(),
        "an outage changes nothing: {}",
        held.plan
    );
    assert!(!held.converged());
    assert_eq!(
        count(
            &held,
            |n| matches!(n, Notice::ConfigurationUnavailable { configuration, error: Error::Unavailable { .. } } if configuration == "cfg-1")
        ),
        1
    );
    assert_eq!(
        count(&held, |n| matches!(
            n,
            Notice::Held {
                reason: HoldReason::GroupsUnknown { .. },
                ..
            }
        )),
        2
    );
    let still = w.pass(&more, t0()).await.unwrap();
    assert!(still.plan.is_empty());
    assert_eq!(
        count(&still, |n| matches!(n, Notice::Held { .. })),
        0,
        "a hold is reported once per change of reason"
    );
    let after = w.pass(&more, t0()).await.unwrap();
    assert!(after.converged());
    assert_eq!(after.report.done(), 1, "{}", after.report);
    assert!(rig.tg.members(&rig.web.arn).contains_key(&target(2, 80)));
}

#[tokio::test]
async fn an_unresolvable_group_holds_the_node_and_says_where_it_came_from() {
    let rig = Rig::new();
    rig.castai.insert(
        "cfg-2",
        vec![GroupBinding {
            group: TargetGroupRef::Name("missing".into()),
            port: None,
        }],
    );
    let w = rig.workflow(Scope::Cluster);
    let pass = w.pass(&[node(1, Some("cfg-2"), true)], t0()).await.unwrap();
    assert!(pass.plan.is_empty(), "{}", pass.plan);
    assert!(!pass.converged());
    assert!(pass.notices.iter().any(|n| matches!(
        n,
        Notice::GroupUnresolved { group: TargetGroupRef::Name(name), error: Error::NotFound { .. } } if name == "missing"
    )));
    assert!(pass.notices.iter().any(|n| matches!(
        n,
        Notice::Held { node, reason: HoldReason::GroupsUnknown { reason } } if node == "node-1" && reason.contains("missing")
    )));
}

#[tokio::test]
async fn foreign_targets_are_never_deregistered_and_node_scope_keeps_to_its_instance() {
    let rig = Rig::new();
    rig.tg
        .set_state(&rig.web.arn, target(99, 80), TargetState::Healthy);
    let cluster = rig.workflow(Scope::Cluster);
    cluster
        .pass(
            &[node(1, Some("cfg-1"), false), node(2, Some("cfg-1"), false)],
            t0(),
        )
        .await
        .unwrap();
    // Node mode on node-1 sees only node-1: node-2's targets, same owner, stay.
    let mine = rig.workflow(Scope::Node {
        name: "node-1".into(),
        instance: None,
    });
    let pass = mine
        .pass(&[node(1, Some("cfg-1"), false)], t0())
        .await
        .unwrap();
    assert!(pass.plan.is_empty(), "{}", pass.plan);
    // Cluster mode with node-2 deleted: node-2's target leaves, the foreign one stays.
    let pass = cluster
        .pass(&[node(1, Some("cfg-1"), false)], t0())
        .await
        .unwrap();
    assert_eq!(pass.plan.count("deregister"), 1, "{}", pass.plan);
    let members = rig.tg.members(&rig.web.arn);
    assert_eq!(members[&target(99, 80)], TargetState::Healthy);
    assert_eq!(members[&target(2, 80)], TargetState::Draining);
    assert!(pass.notices.iter().any(|n| matches!(
        n,
        Notice::Deregistering { node: None, why, delay: Some(d), .. } if why == "node deleted" && *d == Duration::from_secs(45)
    )));
}

#[tokio::test]
async fn a_spot_interruption_notice_takes_the_node_out() {
    let rig = Rig::new();
    let w = rig.workflow(Scope::Node {
        name: "node-1".into(),
        instance: None,
    });
    let nodes = [node(1, Some("cfg-1"), false)];
    w.pass(&nodes, t0()).await.unwrap();
    w.notice_spot_interruption("node-1");
    let pass = w.pass(&nodes, t0()).await.unwrap();
    assert_eq!(pass.plan.count("deregister"), 1, "{}", pass.plan);
    assert!(pass.notices.iter().any(|n| matches!(
        n,
        Notice::Deregistering { why, .. } if why.contains(SPOT_INTERRUPTION_TAINT)
    )));
    assert!(w
        .settings()
        .node_rules
        .disruption_taints
        .contains(&TaintMatch::Key(SPOT_INTERRUPTION_TAINT.into())));
}

#[tokio::test]
async fn a_notice_taint_on_the_node_object_takes_it_out_in_cluster_scope() {
    // What the notice DaemonSet writes, seen by the cluster-mode leader: the same
    // decision as node mode's in-memory notice, and only the tainted node leaves.
    for notice in InstanceNotice::ALL {
        let rig = Rig::new();
        let w = rig.workflow(Scope::Cluster);
        let mut nodes = [node(1, Some("cfg-1"), false), node(2, Some("cfg-1"), false)];
        let first = w.pass(&nodes, t0()).await.unwrap();
        assert_eq!(first.plan.count("register"), 2, "{}", first.plan);
        nodes[0]
            .taints
            .extend(taints_to_add(&nodes[0].taints, [notice]));
        let pass = w.pass(&nodes, t0()).await.unwrap();
        assert_eq!(pass.plan.count("deregister"), 1, "{notice}: {}", pass.plan);
        assert!(
            pass.notices.iter().any(|n| matches!(
                n,
                Notice::Deregistering { node: Some(node), target: t, why, .. }
                    if node == "node-1" && *t == target(1, 80) && why.contains(notice.taint_key())
            )),
            "{notice}: {:?}",
            pass.notices
        );
        // Later passes keep it out and the untainted node in.
        let again = w.pass(&nodes, t0()).await.unwrap();
        assert!(again.plan.is_empty(), "{notice}: {}", again.plan);
        assert!(w
            .settings()
            .node_rules
            .disruption_taints
            .contains(&TaintMatch::Key(notice.taint_key().into())));
    }
}

#[tokio::test]
async fn an_owned_group_gone_from_aws_is_forgotten() {
    let rig = Rig::new();
    let w = rig.workflow(Scope::Cluster);
    w.pass(&[node(1, Some("cfg-1"), false)], t0())
        .await
        .unwrap();
    let gone = Error::not_found("target group web");
    rig.tg.faults.fail("DescribeTargetHealth", gone, 1);
    let pass = w.pass(&[], t0()).await.unwrap();
    assert!(pass.unobserved.is_empty());
    assert!(pass
        .notices
        .iter()
        .any(|n| matches!(n, Notice::GroupGone { group } if group == &rig.web.arn)));
    assert_eq!(pass.plan.count("forget"), 1, "{}", pass.plan);
    assert!(rig.ownership.owned().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_group_that_cannot_be_observed_is_left_alone_and_the_pass_does_not_converge() {
    let rig = Rig::new();
    let w = rig.workflow(Scope::Cluster);
    w.pass(&[node(1, Some("cfg-1"), false)], t0())
        .await
        .unwrap();
    let slow = Error::AccessDenied {
        action: "elasticloadbalancing:DescribeTargetHealth".into(),
        message: "no".into(),
    };
    rig.tg.faults.fail("DescribeTargetHealth", slow, 1);
    let pass = w.pass(&[], t0()).await.unwrap();
    assert!(pass.plan.is_empty(), "{}", pass.plan);
    assert!(!pass.converged());
    assert!(pass.notices.iter().any(|n| matches!(
        n,
        Notice::GroupUnobserved {
            error: Error::AccessDenied { .. },
            ..
        }
    )));
}

#[test]
fn failures_say_where_they_came_from() {
    let e = Error::not_found("x");
    let n = Notice::ConfigurationUnavailable {
        configuration: "cfg-1".into(),
        error: e.clone(),
    };
    assert_eq!(n.failure(), Some((Source::NodeConfigurations, &e)));
    let n = Notice::GroupUnresolved {
        group: TargetGroupRef::Name("web".into()),
        error: e.clone(),
    };
    assert_eq!(n.failure(), Some((Source::TargetGroups, &e)));
    let n = Notice::Skipped {
        node: "n".into(),
        reason: "r".into(),
    };
    assert_eq!(n.failure(), None);
}
