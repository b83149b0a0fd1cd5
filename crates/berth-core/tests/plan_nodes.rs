//! The daemon's node rules (`desire_nodes`) followed by `plan_membership`, including
//! the seed-000 defects: never deregistering, re-registering draining targets,
//! ignoring the port (a null port broke it).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use berth_core::domain::{
    InstanceId, Node, Taint, TaintEffect, Target, TargetGroup, TargetGroupArn, TargetHealth,
    TargetState, TargetType,
};
use berth_core::plan::{
    desire_nodes, owned_by_instances, plan_membership, LeaveReason, MembershipChange as Change,
    NodeDecision, NodeGroup, NodeGroups, NodeRules, ObservedMembership, Plan,
};
use berth_core::provider::OwnedTargets;
use proptest::prelude::*;

const NOW_SECS: u64 = 1_700_000_000;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn group(name: &str, port: Option<u16>) -> TargetGroup {
    TargetGroup {
        arn: TargetGroupArn::new(format!(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/0123456789abcdef"
        ))
        .unwrap(),
        name: name.into(),
        target_type: TargetType::Instance,
        port,
        deregistration_delay: Duration::from_secs(30),
    }
}

fn node(n: u32) -> Node {
    let mut node =
        Node::new(format!("node-{n}")).with_provider_id(&format!("aws:///us-east-1a/i-{n:08x}"));
    node.ready_since = Some(now() - Duration::from_secs(3600));
    node
}

fn iid(n: u32) -> String {
    format!("i-{n:08x}")
}

fn serving(groups: &[(&TargetGroup, Option<u16>)]) -> NodeGroups {
    NodeGroups::Resolved(
        groups
            .iter()
            .map(|(g, port)| NodeGroup {
                group: (*g).clone(),
                port: *port,
            })
            .collect(),
    )
}

struct World {
    health: BTreeMap<TargetGroupArn, Vec<TargetHealth>>,
    observed: ObservedMembership,
    owned: OwnedTargets,
}

impl World {
    fn new(groups: &[&TargetGroup]) -> Self {
        let health: BTreeMap<_, _> = groups.iter().map(|g| (g.arn.clone(), vec![])).collect();
        let mut observed = ObservedMembership::new();
        for g in groups {
            observed.observe(&g.arn, vec![]);
        }
        World {
            health,
            observed,
            owned: OwnedTargets::new(),
        }
    }

    /// A target in a group, owned by berth or not.
    fn put(&mut self, g: &TargetGroup, target: Target, state: TargetState, owned: bool) {
        let health = self.health.entry(g.arn.clone()).or_default();
        health.retain(|h| h.target != target);
        health.push(TargetHealth {
            target: target.clone(),
            state,
            reason: None,
        });
        // `observe` replaces a group's whole answer, as one DescribeTargetHealth does.
        self.observed.observe(&g.arn, health.clone());
        if owned {
            self.owned.entry(g.arn.clone()).or_default().insert(target);
        }
    }

    fn plan(
        &self,
        nodes: &[Node],
        groups: &BTreeMap<String, NodeGroups>,
        rules: &NodeRules,
    ) -> Plan<Change> {
        let desire = desire_nodes(nodes, groups, rules, now(), &self.observed, &self.owned);
        plan_membership(&desire.membership, &self.observed, &self.owned)
    }
}

fn registered(plan: &Plan<Change>) -> Vec<String> {
    items(plan, "register")
}

fn deregistered(plan: &Plan<Change>) -> Vec<String> {
    items(plan, "deregister")
}

fn items(plan: &Plan<Change>, verb: &str) -> Vec<String> {
    let mut out = Vec::new();
    for c in &plan.changes {
        match c {
            Change::Register { group, targets } if verb == "register" => out.extend(
                targets
                    .iter()
                    .map(|r| format!("{}@{}", r.target, group.name())),
            ),
            Change::Deregister { group, targets } if verb == "deregister" => {
                out.extend(targets.iter().map(|t| format!("{t}@{}", group.name())))
            }
            _ => {}
        }
    }
    out.sort();
    out
}

fn one(node: &Node, groups: NodeGroups) -> BTreeMap<String, NodeGroups> {
    [(node.name.clone(), groups)].into()
}

#[test]
fn a_ready_node_is_registered_in_each_of_its_groups_on_the_right_port() {
    let web = group("web", Some(80));
    let api = group("api", Some(443));
    let world = World::new(&[&web, &api]);
    let n = node(1);
    let plan = world.plan(
        std::slice::from_ref(&n),
        &one(&n, serving(&[(&web, None), (&api, Some(8080))])),
        &NodeRules::default(),
    );
    assert_eq!(
        registered(&plan),
        [format!("{}:8080@api", iid(1)), format!("{}:80@web", iid(1))]
    );
    assert!(deregistered(&plan).is_empty());
}

#[test]
fn seed_000_port_is_honoured_and_a_null_port_means_the_groups_port() {
    // The seed registered every node without a port (so on the group's port, whatever
    // Cast.ai said) and broke on a null port.
    let tg = group("web", Some(30080));
    let world = World::new(&[&tg]);
    let n = node(1);
    let explicit = world.plan(
        std::slice::from_ref(&n),
        &one(&n, serving(&[(&tg, Some(8080))])),
        &NodeRules::default(),
    );
    assert_eq!(registered(&explicit), [format!("{}:8080@web", iid(1))]);
    let null = world.plan(
        std::slice::from_ref(&n),
        &one(&n, serving(&[(&tg, None)])),
        &NodeRules::default(),
    );
    assert_eq!(registered(&null), [format!("{}:30080@web", iid(1))]);
}

#[test]
fn a_group_without_a_port_and_a_null_port_is_a_warning_not_a_crash() {
    let tg = group("portless", None);
    let world = World::new(&[&tg]);
    let n = node(1);
    let groups = one(&n, serving(&[(&tg, None)]));
    let desire = desire_nodes(
        &[n],
        &groups,
        &NodeRules::default(),
        now(),
        &world.observed,
        &world.owned,
    );
    assert_eq!(desire.verdicts[0].decision, NodeDecision::Serve(vec![]));
    assert!(
        desire.verdicts[0].warnings[0].contains("no default port"),
        "{:?}",
        desire.verdicts[0].warnings
    );
    assert!(desire.membership.is_empty());
}

#[test]
fn seed_000_a_cordoned_node_is_deregistered() {
    // The seed never deregistered anything.
    let tg = group("web", Some(80));
    let mut world = World::new(&[&tg]);
    world.put(&tg, Target::new(iid(1), 80), TargetState::Healthy, true);
    let mut n = node(1);
    n.unschedulable = true;
    let plan = world.plan(
        std::slice::from_ref(&n),
        &one(&n, serving(&[(&tg, None)])),
        &NodeRules::default(),
    );
    assert_eq!(deregistered(&plan), [format!("{}:80@web", iid(1))]);
    assert!(registered(&plan).is_empty());
}

#[test]
fn cordon_can_be_configured_to_keep_the_node() {
    let tg = group("web", Some(80));
    let mut world = World::new(&[&tg]);
    world.put(&tg, Target::new(iid(1), 80), TargetState::Healthy, true);
    let mut n = node(1);
    n.unschedulable = true;
    n.taints.push(Taint::new(
        "node.kubernetes.io/unschedulable",
        TaintEffect::NoSchedule,
    ));
    let rules = NodeRules {
        deregister_on_cordon: false,
        ..NodeRules::default()
    };
    let plan = world.plan(
        std::slice::from_ref(&n),
        &one(&n, serving(&[(&tg, None)])),
        &rules,
    );
    assert!(plan.is_empty(), "{plan}");
}

#[test]
fn the_exclusion_label_deregisters_unless_it_says_false() {
    let tg = group("web", Some(80));
    let mut world = World::new(&[&tg]);
    world.put(&tg, Target::new(iid(1), 80), TargetState::Healthy, true);
    let mut n = node(1);
    n.labels.insert(
        "node.kubernetes.io/exclude-from-external-load-balancers".into(),
        "".into(),
    );
    let groups = one(&n, serving(&[(&tg, None)]));
    assert_eq!(
        deregistered(&world.plan(std::slice::from_ref(&n), &groups, &NodeRules::default())).len(),
        1
    );
    n.labels.insert(
        "node.kubernetes.io/exclude-from-external-load-balancers".into(),
        "false".into(),
    );
    assert!(world.plan(&[n], &groups, &NodeRules::default()).is_empty());
}

#[test]
fn disruption_taints_deregister_ahead_of_the_disruption() {
    let tg = group("web", Some(80));
    for key in [
        "karpenter.sh/disrupted",
        "aws-node-termination-handler/spot-itn",
        "aws-node-termination-handler/scheduled-maintenance",
        "aws-node-termination-handler/rebalance-recommendation",
        "aws-node-termination-handler/asg-lifecycle-termination",
        "ToBeDeletedByClusterAutoscaler",
    ] {
        let mut world = World::new(&[&tg]);
        world.put(&tg, Target::new(iid(1), 80), TargetState::Healthy, true);
        let mut n = node(1);
        n.taints.push(Taint::new(key, TaintEffect::NoSchedule));
        let groups = one(&n, serving(&[(&tg, None)]));
        let desire = desire_nodes(
            std::slice::from_ref(&n),
            &groups,
            &NodeRules::default(),
            now(),
            &world.observed,
            &world.owned,
        );
        assert_eq!(
            desire.verdicts[0].decision,
            NodeDecision::Leave(LeaveReason::Disrupted(key.into()))
        );
        assert_eq!(
            deregistered(&world.plan(&[n], &groups, &NodeRules::default())).len(),
            1,
            "{key}"
        );
    }
    let mut n = node(1);
    n.taints
        .push(Taint::new("example.com/dedicated", TaintEffect::NoSchedule));
    let world = World::new(&[&tg]);
    assert_eq!(
        registered(&world.plan(
            std::slice::from_ref(&n),
            &one(&n, serving(&[(&tg, None)])),
            &NodeRules::default()
        ))
        .len(),
        1
    );
}

#[test]
fn not_ready_is_held_within_the_grace_and_deregistered_after_it() {
    let tg = group("web", Some(80));
    let mut world = World::new(&[&tg]);
    world.put(&tg, Target::new(iid(1), 80), TargetState::Unhealthy, true);
    let rules = NodeRules {
        not_ready_grace: Duration::from_secs(120),
        ..NodeRules::default()
    };
    let mut n = node(1);
    n.ready = false;
    n.ready_since = Some(now() - Duration::from_secs(60));
    let groups = one(&n, serving(&[(&tg, None)]));
    assert!(world
        .plan(std::slice::from_ref(&n), &groups, &rules)
        .is_empty());
    n.ready_since = Some(now() - Duration::from_secs(121));
    assert_eq!(
        deregistered(&world.plan(std::slice::from_ref(&n), &groups, &rules)).len(),
        1
    );
    // A new node that is not Ready yet is not registered.
    let fresh = World::new(&[&tg]);
    n.ready_since = Some(now() - Duration::from_secs(5));
    assert!(fresh.plan(&[n], &groups, &rules).is_empty());
}

#[test]
fn seed_000_a_draining_target_is_never_re_registered() {
    let tg = group("web", Some(80));
    let mut world = World::new(&[&tg]);
    world.put(&tg, Target::new(iid(1), 80), TargetState::Draining, true);
    world.put(&tg, Target::new(iid(2), 80), TargetState::Draining, false);
    let (a, b) = (node(1), node(2));
    let groups: BTreeMap<_, _> = [
        (a.name.clone(), serving(&[(&tg, None)])),
        (b.name.clone(), serving(&[(&tg, None)])),
    ]
    .into();
    let plan = world.plan(&[a, b], &groups, &NodeRules::default());
    assert!(registered(&plan).is_empty(), "{plan}");
    assert!(deregistered(&plan).is_empty(), "{plan}");
    assert_eq!(plan.skipped.len(), 2, "{plan}");
}

#[test]
fn a_deleted_node_is_deregistered_but_not_someone_elses_target() {
    let tg = group("web", Some(80));
    let mut world = World::new(&[&tg]);
    world.put(&tg, Target::new(iid(1), 80), TargetState::Healthy, true);
    world.put(&tg, Target::new(iid(9), 80), TargetState::Healthy, false);
    let plan = world.plan(&[], &BTreeMap::new(), &NodeRules::default());
    assert_eq!(deregistered(&plan), [format!("{}:80@web", iid(1))]);
}

#[test]
fn unknown_groups_hold_what_is_registered_and_never_deregister() {
    // A Cast.ai outage must not deregister anything.
    let tg = group("web", Some(80));
    let mut world = World::new(&[&tg]);
    world.put(&tg, Target::new(iid(1), 80), TargetState::Healthy, true);
    let n = node(1);
    let unknown = one(
        &n,
        NodeGroups::Unknown {
            reason: "Cast.ai answered 500".into(),
        },
    );
    let desire = desire_nodes(
        std::slice::from_ref(&n),
        &unknown,
        &NodeRules::default(),
        now(),
        &world.observed,
        &world.owned,
    );
    assert_eq!(
        desire.verdicts[0].decision,
        NodeDecision::Hold("Cast.ai answered 500".into())
    );
    assert!(plan_membership(&desire.membership, &world.observed, &world.owned).is_empty());
    // A node absent from the resolution is unknown too, not "matches nothing".
    assert!(world
        .plan(
            std::slice::from_ref(&n),
            &BTreeMap::new(),
            &NodeRules::default()
        )
        .is_empty());
    // But a leaving node leaves even while its groups are unknown.
    let mut cordoned = n;
    cordoned.unschedulable = true;
    assert_eq!(
        deregistered(&world.plan(&[cordoned], &unknown, &NodeRules::default())).len(),
        1
    );
}

#[test]
fn a_node_that_no_longer_matches_is_deregistered_and_one_without_groups_is_skipped() {
    let tg = group("web", Some(80));
    let mut world = World::new(&[&tg]);
    world.put(&tg, Target::new(iid(1), 80), TargetState::Healthy, true);
    let n = node(1);
    let groups = one(&n, NodeGroups::Resolved(vec![]));
    let desire = desire_nodes(
        std::slice::from_ref(&n),
        &groups,
        &NodeRules::default(),
        now(),
        &world.observed,
        &world.owned,
    );
    assert!(
        matches!(&desire.verdicts[0].decision, NodeDecision::Skip(r) if r.contains("no node-configuration label"))
    );
    assert_eq!(
        deregistered(&world.plan(&[n], &groups, &NodeRules::default())).len(),
        1
    );
}

#[test]
fn a_port_change_moves_the_target() {
    let tg = group("web", Some(80));
    let mut world = World::new(&[&tg]);
    world.put(&tg, Target::new(iid(1), 80), TargetState::Healthy, true);
    let n = node(1);
    let plan = world.plan(
        std::slice::from_ref(&n),
        &one(&n, serving(&[(&tg, Some(8080))])),
        &NodeRules::default(),
    );
    assert_eq!(registered(&plan), [format!("{}:8080@web", iid(1))]);
    assert_eq!(deregistered(&plan), [format!("{}:80@web", iid(1))]);
}

#[test]
fn a_node_without_an_instance_id_is_skipped() {
    let tg = group("web", Some(80));
    let world = World::new(&[&tg]);
    let n = Node::new("kind-worker").with_provider_id("kind://docker/kind/kind-worker");
    let groups = one(&n, serving(&[(&tg, None)]));
    let desire = desire_nodes(
        &[n],
        &groups,
        &NodeRules::default(),
        now(),
        &world.observed,
        &world.owned,
    );
    assert!(
        matches!(&desire.verdicts[0].decision, NodeDecision::Skip(r) if r.contains("providerID"))
    );
    assert!(desire.membership.is_empty());
}

#[test]
fn node_mode_scopes_ownership_to_its_own_instance() {
    let tg = group("web", Some(80));
    let mut world = World::new(&[&tg]);
    world.put(&tg, Target::new(iid(1), 80), TargetState::Healthy, true);
    world.put(&tg, Target::new(iid(2), 80), TargetState::Healthy, true);
    let me = node(1);
    let mine: BTreeSet<InstanceId> = [me.instance_id.clone().unwrap()].into();
    let owned = owned_by_instances(&world.owned, &mine);
    let desire = desire_nodes(
        std::slice::from_ref(&me),
        &one(&me, serving(&[(&tg, None)])),
        &NodeRules::default(),
        now(),
        &world.observed,
        &owned,
    );
    // The neighbour's target (owned, but not this daemon's node) stays.
    assert!(plan_membership(&desire.membership, &world.observed, &owned).is_empty());
}

proptest! {
    /// Whatever the nodes look like: nothing berth does not own is deregistered,
    /// nothing draining is registered, only serving nodes are registered, and leaving
    /// nodes keep nothing.
    #[test]
    fn rules_never_touch_foreign_or_draining_targets(
        specs in prop::collection::vec(
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), 0u64..600, 0u8..4, any::<bool>(), any::<bool>()),
            1..24,
        ),
    ) {
        let groups_all = [group("g0", Some(80)), group("g1", Some(443)), group("g2", None)];
        let mut world = World::new(&groups_all.iter().collect::<Vec<_>>());
        let mut nodes = Vec::new();
        let mut resolution = BTreeMap::new();
        for (i, (cordoned, excluded, ready, unknown, down, state, owned, present)) in specs.into_iter().enumerate() {
            let i = i as u32;
            let mut n = node(i);
            n.unschedulable = cordoned;
            if excluded {
                n.labels.insert("node.kubernetes.io/exclude-from-external-load-balancers".into(), "true".into());
            }
            n.ready = ready;
            n.ready_since = Some(now() - Duration::from_secs(down));
            let g = &groups_all[(i % 3) as usize];
            if present {
                let st = [TargetState::Healthy, TargetState::Draining, TargetState::Unhealthy, TargetState::Initial][state as usize];
                world.put(g, Target::new(iid(i), g.port.unwrap_or(8080)), st, owned);
            }
            let res = if unknown {
                NodeGroups::Unknown { reason: "outage".into() }
            } else {
                serving(&[(g, g.port.or(Some(8080)))])
            };
            resolution.insert(n.name.clone(), res);
            nodes.push(n);
        }
        let rules = NodeRules::default();
        let desire = desire_nodes(&nodes, &resolution, &rules, now(), &world.observed, &world.owned);
        let plan = plan_membership(&desire.membership, &world.observed, &world.owned);
        for c in &plan.changes {
            match c {
                Change::Deregister { group, targets } => for t in targets {
                    prop_assert!(world.owned.get(group).is_some_and(|o| o.contains(t)), "deregistered foreign {t}");
                    let v = desire.verdicts.iter().find(|v| v.instance_id.as_ref().map(|i| i.as_str()) == Some(&*t.id)).unwrap();
                    prop_assert!(matches!(v.decision, NodeDecision::Leave(_)), "deregistered {t} of {:?}", v.decision);
                },
                Change::Register { group, targets } => for r in targets {
                    prop_assert!(world.observed.state(group, &r.target).is_none(), "registered present {}", r.target);
                    let v = desire.verdicts.iter().find(|v| v.instance_id.as_ref().map(|i| i.as_str()) == Some(&*r.target.id)).unwrap();
                    prop_assert!(matches!(v.decision, NodeDecision::Serve(_)), "registered {} of {:?}", r.target, v.decision);
                },
                _ => {}
            }
        }
        // Leaving nodes keep nothing berth owns that is still active.
        for v in desire.verdicts.iter().filter(|v| matches!(v.decision, NodeDecision::Leave(_))) {
            let id = v.instance_id.as_ref().unwrap().as_str();
            for (group, targets) in &world.owned {
                for t in targets.iter().filter(|t| &*t.id == id) {
                    let active = world.observed.state(group, t).is_some_and(|s| !s.is_draining());
                    let entry = format!("{t}@{}", group.name());
                    prop_assert!(!active || deregistered(&plan).contains(&entry), "kept {}", entry);
                }
            }
        }
    }
}
