//! Rules of target-group membership planning, including every seed-000 defect listed
//! in the design brief as a test that the seed's behaviour would fail.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth_core::domain::{
    Target, TargetGroup, TargetGroupArn, TargetHealth, TargetState, TargetType,
};
use berth_core::plan::{
    plan_membership, DesiredMembership, MembershipChange as Change, ObservedMembership,
};
use berth_core::provider::OwnedTargets;
use proptest::prelude::*;

fn group(name: &str, port: Option<u16>) -> TargetGroup {
    TargetGroup {
        arn: TargetGroupArn::new(format!(
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/{name}/abc"
        ))
        .unwrap(),
        name: name.into(),
        target_type: TargetType::Instance,
        port,
        deregistration_delay: Duration::from_secs(30),
    }
}

fn health(items: &[(&str, u16, TargetState)]) -> Vec<TargetHealth> {
    items
        .iter()
        .map(|(id, port, state)| TargetHealth {
            target: Target::new(id, *port),
            state: *state,
            reason: None,
        })
        .collect()
}

fn owned(g: &TargetGroup, items: &[(&str, u16)]) -> OwnedTargets {
    let set: BTreeSet<Target> = items.iter().map(|(id, p)| Target::new(id, *p)).collect();
    BTreeMap::from([(g.arn.clone(), set)])
}

#[test]
fn registers_what_is_missing_on_the_groups_port() {
    let web = group("web", Some(30080));
    let mut desired = DesiredMembership::new();
    desired.want(&web, "i-1", None, None).unwrap();
    desired.want(&web, "i-2", Some(8443), None).unwrap();
    let mut observed = ObservedMembership::new();
    observed.observe(&web.arn, health(&[("i-2", 8443, TargetState::Healthy)]));
    let plan = plan_membership(&desired, &observed, &OwnedTargets::new());
    assert_eq!(
        plan.changes,
        vec![Change::Register {
            group: web.arn.clone(),
            targets: vec![Target::new("i-1", 30080).into()]
        }]
    );
}

#[test]
fn seed_000_never_deregistered_owned_targets_that_are_no_longer_desired() {
    let web = group("web", Some(80));
    let mut desired = DesiredMembership::new();
    desired.declare_group(&web.arn);
    let mut observed = ObservedMembership::new();
    observed.observe(&web.arn, health(&[("i-gone", 80, TargetState::Healthy)]));
    let plan = plan_membership(&desired, &observed, &owned(&web, &[("i-gone", 80)]));
    assert_eq!(
        plan.changes,
        vec![Change::Deregister {
            group: web.arn.clone(),
            targets: vec![Target::new("i-gone", 80)]
        }]
    );
}

#[test]
fn seed_000_re_registered_draining_targets() {
    let web = group("web", Some(80));
    let mut desired = DesiredMembership::new();
    desired.want(&web, "i-1", None, None).unwrap();
    let mut observed = ObservedMembership::new();
    observed.observe(&web.arn, health(&[("i-1", 80, TargetState::Draining)]));
    let plan = plan_membership(&desired, &observed, &owned(&web, &[("i-1", 80)]));
    assert!(
        plan.is_empty(),
        "a draining target must not be re-registered: {plan}"
    );
    assert_eq!(plan.skipped.len(), 1);
    assert!(plan.skipped[0].reason.contains("draining"));
}

#[test]
fn seed_000_ignored_the_port_and_broke_on_a_null_port() {
    // Port 8080 desired, target present on 80 only: the 8080 registration is missing.
    let api = group("api", Some(80));
    let mut desired = DesiredMembership::new();
    desired.want(&api, "i-1", Some(8080), None).unwrap();
    let mut observed = ObservedMembership::new();
    observed.observe(&api.arn, health(&[("i-1", 80, TargetState::Healthy)]));
    let plan = plan_membership(&desired, &observed, &OwnedTargets::new());
    assert_eq!(plan.count("register"), 1);
    // And a null port resolves to the group's port instead of failing.
    let mut desired = DesiredMembership::new();
    desired.want(&api, "i-1", None, None).unwrap();
    assert!(plan_membership(&desired, &observed, &OwnedTargets::new()).is_empty());
}

#[test]
fn never_touches_targets_it_does_not_own() {
    let web = group("web", Some(80));
    let mut desired = DesiredMembership::new();
    desired.declare_group(&web.arn);
    let mut observed = ObservedMembership::new();
    observed.observe(
        &web.arn,
        health(&[
            ("i-theirs", 80, TargetState::Healthy),
            ("10.0.0.9", 80, TargetState::Healthy),
        ]),
    );
    let plan = plan_membership(&desired, &observed, &OwnedTargets::new());
    assert!(plan.is_empty(), "{plan}");
}

#[test]
fn desired_target_someone_else_registered_is_left_alone_and_not_claimed() {
    let web = group("web", Some(80));
    let mut desired = DesiredMembership::new();
    desired.want(&web, "i-1", None, None).unwrap();
    let mut observed = ObservedMembership::new();
    observed.observe(&web.arn, health(&[("i-1", 80, TargetState::Unhealthy)]));
    assert!(plan_membership(&desired, &observed, &OwnedTargets::new()).is_empty());
}

#[test]
fn owned_target_already_draining_is_not_deregistered_again_and_is_forgotten_when_gone() {
    let web = group("web", Some(80));
    let desired = DesiredMembership::new();
    let mut observed = ObservedMembership::new();
    observed.observe(&web.arn, health(&[("i-1", 80, TargetState::Draining)]));
    let mine = owned(&web, &[("i-1", 80), ("i-2", 80)]);
    let plan = plan_membership(&desired, &observed, &mine);
    assert_eq!(
        plan.changes,
        vec![Change::Forget {
            group: web.arn.clone(),
            targets: vec![Target::new("i-2", 80)]
        }]
    );
}

#[test]
fn unobserved_group_is_skipped_not_guessed() {
    let web = group("web", Some(80));
    let mut desired = DesiredMembership::new();
    desired.want(&web, "i-1", None, None).unwrap();
    let plan = plan_membership(
        &desired,
        &ObservedMembership::new(),
        &owned(&web, &[("i-9", 80)]),
    );
    assert!(plan.is_empty());
    assert!(plan.skipped[0].reason.contains("could not be observed"));
}

#[test]
fn many_groups_at_once_and_the_plan_prints() {
    let groups: Vec<TargetGroup> = (0..3)
        .map(|i| group(&format!("g{i}"), Some(80 + i)))
        .collect();
    let mut desired = DesiredMembership::new();
    let mut observed = ObservedMembership::new();
    for g in &groups {
        for n in 0..4 {
            desired.want(g, &format!("i-{n}"), None, None).unwrap();
        }
        observed.observe(&g.arn, vec![]);
    }
    let plan = plan_membership(&desired, &observed, &OwnedTargets::new());
    assert_eq!(plan.len(), 12);
    assert_eq!(plan.changes.len(), 3);
    let text = plan.to_string();
    assert!(
        text.contains("register i-0:80, i-1:80, i-2:80, i-3:80 in g0"),
        "{text}"
    );
}

/// A small world: which (group, instance) pairs are desired, present (with a state) and owned.
fn world() -> impl Strategy<Value = Vec<(u8, u8, Option<u8>, bool, bool)>> {
    // (group, instance, observed state index or absent, desired, owned)
    prop::collection::vec(
        (
            0u8..3,
            0u8..6,
            prop::option::of(0u8..6),
            any::<bool>(),
            any::<bool>(),
        ),
        0..40,
    )
}

const STATES: [TargetState; 6] = [
    TargetState::Initial,
    TargetState::Healthy,
    TargetState::Unhealthy,
    TargetState::Unused,
    TargetState::Draining,
    TargetState::Unavailable,
];

proptest! {
    /// Applying a plan to the world it was made from and planning again yields nothing.
    #[test]
    fn planning_is_idempotent(items in world()) {
        let groups: Vec<TargetGroup> = (0..3).map(|i| group(&format!("g{i}"), Some(80))).collect();
        let mut desired = DesiredMembership::new();
        let mut present: BTreeMap<TargetGroupArn, BTreeMap<Target, TargetState>> =
            groups.iter().map(|g| (g.arn.clone(), BTreeMap::new())).collect();
        let mut mine = OwnedTargets::new();
        for (g, i, state, want, own) in &items {
            let g = &groups[*g as usize];
            let t = Target::new(format!("i-{i}"), 80);
            if *want { desired.want_target(&g.arn, t.clone(), None); }
            if let Some(s) = state { present.get_mut(&g.arn).unwrap().insert(t.clone(), STATES[*s as usize]); }
            if *own { mine.entry(g.arn.clone()).or_default().insert(t); }
        }
        let observe = |present: &BTreeMap<TargetGroupArn, BTreeMap<Target, TargetState>>| {
            let mut o = ObservedMembership::new();
            for (arn, ts) in present {
                o.observe(arn, ts.iter().map(|(t, s)| TargetHealth { target: t.clone(), state: *s, reason: None }).collect());
            }
            o
        };
        let plan = plan_membership(&desired, &observe(&present), &mine);
        // Invariants of any plan: deregister only owned, never register a draining target.
        for c in &plan.changes {
            match c {
                Change::Deregister { group, targets } => for t in targets {
                    prop_assert!(mine.get(group).is_some_and(|s| s.contains(t)), "deregistered {t}, not owned");
                    prop_assert!(!desired.contains(group, t));
                },
                Change::Register { group, targets } => for r in targets {
                    prop_assert!(!present[group].contains_key(&r.target), "registered a present target {}", r.target);
                },
                _ => {}
            }
        }
        // Apply it as ELBv2 would (deregistered targets drain).
        for c in &plan.changes {
            match c {
                Change::Register { group, targets } => for r in targets {
                    present.get_mut(group).unwrap().insert(r.target.clone(), TargetState::Initial);
                    mine.entry(group.clone()).or_default().insert(r.target.clone());
                },
                Change::Deregister { group, targets } => for t in targets {
                    present.get_mut(group).unwrap().insert(t.clone(), TargetState::Draining);
                    mine.get_mut(group).unwrap().remove(t);
                },
                Change::Forget { group, targets } => for t in targets {
                    mine.get_mut(group).unwrap().remove(t);
                },
            }
        }
        let again = plan_membership(&desired, &observe(&present), &mine);
        prop_assert!(again.is_empty(), "second plan not empty:\n{again}");
    }
}
