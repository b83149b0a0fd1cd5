//! Planning target-group membership at cluster scale: 10,000 instances × 100 target
//! groups. Run with `cargo bench -p berth-core --bench membership`.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::time::Duration;

use berth_core::domain::{
    Target, TargetGroup, TargetGroupArn, TargetHealth, TargetState, TargetType,
};
use berth_core::plan::{plan_membership, DesiredMembership, ObservedMembership};
use berth_core::provider::OwnedTargets;
use criterion::{criterion_group, criterion_main, Criterion};

const INSTANCES: usize = 10_000;
const GROUPS: usize = 100;

fn groups() -> Vec<TargetGroup> {
    (0..GROUPS)
        .map(|g| TargetGroup {
            arn: TargetGroupArn::new(format!(
                "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/g{g}/{g:016x}"
            ))
            .unwrap(),
            name: format!("g{g}"),
            target_type: TargetType::Instance,
            port: Some(30_000 + g as u16),
            deregistration_delay: Duration::from_secs(300),
        })
        .collect()
}

/// Every instance desired in every group (1,000,000 pairs); `registered` of them are
/// registered and owned already; `leaving` owned ones are no longer desired.
fn estate(
    registered: usize,
    leaving: usize,
) -> (DesiredMembership, ObservedMembership, OwnedTargets) {
    let groups = groups();
    let mut desired = DesiredMembership::new();
    let mut observed = ObservedMembership::new();
    let mut owned = BTreeMap::new();
    for g in &groups {
        let port = g.port.unwrap();
        let mut health = Vec::with_capacity(INSTANCES);
        let mut mine = BTreeSet::new();
        for i in 0..INSTANCES {
            let t = Target::new(format!("i-{i:017x}"), port);
            if i >= leaving {
                desired.want_target(&g.arn, t.clone(), None);
            }
            if i < registered {
                health.push(TargetHealth {
                    target: t.clone(),
                    state: TargetState::Healthy,
                    reason: None,
                });
                mine.insert(t);
            }
        }
        observed.observe(&g.arn, health);
        owned.insert(g.arn.clone(), mine);
    }
    (desired, observed, owned)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan_membership 10k instances x 100 groups");
    group.sample_size(20);
    let (d, o, w) = estate(INSTANCES, 0);
    group.bench_function("converged (resync, nothing to do)", |b| {
        b.iter_with_large_drop(|| {
            black_box(plan_membership(black_box(&d), black_box(&o), black_box(&w)))
        })
    });
    let (d, o, w) = estate(INSTANCES - 100, 100);
    group.bench_function("steady state (100 joining, 100 leaving per group)", |b| {
        b.iter_with_large_drop(|| {
            black_box(plan_membership(black_box(&d), black_box(&o), black_box(&w)))
        })
    });
    let (d, o, w) = estate(0, 0);
    group.bench_function("cold start (register all 1,000,000)", |b| {
        b.iter_with_large_drop(|| {
            black_box(plan_membership(black_box(&d), black_box(&o), black_box(&w)))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
