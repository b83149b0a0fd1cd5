use super::*;

const GRACE: Duration = Duration::from_secs(300);

fn arn(name: &str) -> TargetGroupArn {
    TargetGroupArn::new(format!(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/0123456789abcdef"
    ))
    .unwrap()
}

fn pod(name: &str, uid: &str) -> PodIdentity {
    PodIdentity {
        namespace: "web".into(),
        name: name.into(),
        uid: uid.into(),
    }
}

fn record(name: &str, uid: &str, ip: &str) -> SidecarRecord {
    SidecarRecord {
        key: format!("web/berth-sidecar-{uid}"),
        pod: pod(name, uid),
        targets: [(arn("tg"), [Target::new(ip, 80)].into())].into(),
    }
}

fn live(uids: &[&str], ips: &[&str]) -> LivePods {
    LivePods {
        uids: uids.iter().map(|s| s.to_string()).collect(),
        ips: ips.iter().map(|s| s.to_string()).collect(),
    }
}

fn members(ips: &[&str]) -> BTreeMap<TargetGroupArn, BTreeSet<Target>> {
    [(
        arn("tg"),
        ips.iter().map(|ip| Target::new(ip, 80)).collect(),
    )]
    .into()
}

/// Runs the clock to `after` past the first sighting and plans.
fn plan_after(
    records: &[SidecarRecord],
    pods: &LivePods,
    registered: &BTreeMap<TargetGroupArn, BTreeSet<Target>>,
    after: Duration,
) -> (GcDue, GcPlan) {
    let mut gc = IpTargetGc::new(GRACE);
    let start = Instant::now();
    gc.due(start, records, pods);
    let due = gc.due(start + after, records, pods);
    let plan = plan_ip_target_gc(records, &due.due, pods, registered);
    (due, plan)
}

#[test]
fn a_live_pod_is_never_collected() {
    let records = [record("a", "uid-a", "10.0.0.1")];
    let pods = live(&["uid-a"], &["10.0.0.1"]);
    let (due, plan) = plan_after(&records, &pods, &members(&["10.0.0.1"]), GRACE * 10);
    assert_eq!(due, GcDue::default());
    assert_eq!(plan, GcPlan::default());
}

#[test]
fn a_gone_pod_within_its_grace_waits() {
    let records = [record("a", "uid-a", "10.0.0.1")];
    let pods = live(&[], &[]);
    let (due, plan) = plan_after(
        &records,
        &pods,
        &members(&["10.0.0.1"]),
        Duration::from_secs(60),
    );
    assert_eq!(due.due, Vec::<usize>::new());
    assert_eq!(due.waiting, vec![(0, Duration::from_secs(240))]);
    assert_eq!(plan, GcPlan::default());
    assert_eq!(
        IpTargetGc::new(GRACE).next_due(&due),
        Some(Duration::from_secs(240))
    );
}

#[test]
fn a_gone_pod_after_its_grace_is_deregistered_and_the_others_stay() {
    let records = [
        record("a", "uid-a", "10.0.0.1"),
        record("b", "uid-b", "10.0.0.2"),
    ];
    let pods = live(&["uid-b"], &["10.0.0.2"]);
    let (due, plan) = plan_after(
        &records,
        &pods,
        &members(&["10.0.0.1", "10.0.0.2", "10.9.9.9"]),
        GRACE,
    );
    assert_eq!(due.due, vec![0]);
    assert_eq!(
        plan.actions,
        vec![GcAction::Deregister {
            record: "web/berth-sidecar-uid-a".into(),
            group: arn("tg"),
            targets: vec![Target::new("10.0.0.1", 80)],
        }]
    );
    assert!(plan.held.is_empty());
}

#[test]
fn a_pod_recreated_under_the_same_name_does_not_keep_the_old_record_alive() {
    let records = [record("web-0", "uid-old", "10.0.0.1")];
    let pods = live(&["uid-new"], &["10.0.0.7"]);
    let (_, plan) = plan_after(&records, &pods, &members(&["10.0.0.1"]), GRACE);
    assert_eq!(plan.count("deregister"), 1);
}

#[test]
fn a_recreated_pod_that_reuses_the_target_keeps_it_and_the_stale_record_is_forgotten() {
    // Same name, new UID, same IP, and its sidecar recorded the same target.
    let records = [
        record("web-0", "uid-old", "10.0.0.1"),
        record("web-0", "uid-new", "10.0.0.1"),
    ];
    let pods = live(&["uid-new"], &["10.0.0.1"]);
    let (_, plan) = plan_after(&records, &pods, &members(&["10.0.0.1"]), GRACE);
    assert_eq!(
        plan.actions,
        vec![GcAction::Forget {
            record: "web/berth-sidecar-uid-old".into(),
            group: arn("tg"),
            targets: vec![Target::new("10.0.0.1", 80)],
        }]
    );
}

#[test]
fn an_ip_now_held_by_another_live_pod_is_held_not_deregistered() {
    let records = [record("a", "uid-a", "10.0.0.1")];
    let pods = live(&["uid-x"], &["10.0.0.1"]);
    let (_, plan) = plan_after(&records, &pods, &members(&["10.0.0.1"]), GRACE);
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert_eq!(
        plan.held,
        vec![GcHold::IpInUse {
            record: "web/berth-sidecar-uid-a".into(),
            target: Target::new("10.0.0.1", 80)
        }]
    );
}

#[test]
fn a_target_without_a_record_is_never_named() {
    let records = [record("a", "uid-a", "10.0.0.1")];
    let pods = live(&[], &[]);
    let (_, plan) = plan_after(
        &records,
        &pods,
        &members(&["10.0.0.1", "10.0.0.99", "192.168.1.1"]),
        GRACE,
    );
    let named: Vec<Target> = plan
        .actions
        .iter()
        .flat_map(|a| match a {
            GcAction::Deregister { targets, .. } | GcAction::Forget { targets, .. } => {
                targets.clone()
            }
            GcAction::DeleteRecord { .. } => Vec::new(),
        })
        .collect();
    assert_eq!(named, vec![Target::new("10.0.0.1", 80)]);
}

#[test]
fn a_record_whose_target_is_already_gone_is_only_forgotten() {
    let records = [record("a", "uid-a", "10.0.0.1")];
    let pods = live(&[], &[]);
    let (_, plan) = plan_after(&records, &pods, &members(&["10.0.0.2"]), GRACE);
    assert_eq!(
        plan.actions,
        vec![GcAction::Forget {
            record: "web/berth-sidecar-uid-a".into(),
            group: arn("tg"),
            targets: vec![Target::new("10.0.0.1", 80)],
        }]
    );
}

#[test]
fn an_empty_record_of_a_gone_pod_is_deleted() {
    let mut empty = record("a", "uid-a", "10.0.0.1");
    empty.targets.clear();
    let (_, plan) = plan_after(&[empty], &live(&[], &[]), &members(&[]), GRACE);
    assert_eq!(
        plan.actions,
        vec![GcAction::DeleteRecord {
            record: "web/berth-sidecar-uid-a".into()
        }]
    );
}

#[test]
fn an_unobserved_group_decides_nothing() {
    let records = [record("a", "uid-a", "10.0.0.1")];
    let (_, plan) = plan_after(&records, &live(&[], &[]), &BTreeMap::new(), GRACE);
    assert!(plan.actions.is_empty());
    assert_eq!(
        plan.held,
        vec![GcHold::Unobserved {
            record: "web/berth-sidecar-uid-a".into(),
            group: arn("tg")
        }]
    );
}

#[test]
fn the_grace_restarts_when_a_pod_comes_back_and_the_plan_is_idempotent() {
    let records = [record("a", "uid-a", "10.0.0.1")];
    let mut gc = IpTargetGc::new(GRACE);
    let t0 = Instant::now();
    assert_eq!(gc.due(t0, &records, &live(&[], &[])).waiting.len(), 1);
    // Seen again (a watch relist that briefly missed it): the clock is forgotten.
    assert!(gc.due(t0 + GRACE / 2, &records, &live(&["uid-a"], &[])) == GcDue::default());
    let later = gc.due(t0 + GRACE, &records, &live(&[], &[]));
    assert_eq!(later.waiting, vec![(0, GRACE)]);
    let due = gc.due(t0 + GRACE * 2, &records, &live(&[], &[]));
    assert_eq!(due.due, vec![0]);
    let pods = live(&[], &[]);
    let registered = members(&["10.0.0.1"]);
    let first = plan_ip_target_gc(&records, &due.due, &pods, &registered);
    assert_eq!(
        first,
        plan_ip_target_gc(&records, &due.due, &pods, &registered)
    );
    // Once deregistered, the same record only needs forgetting.
    let after = plan_ip_target_gc(&records, &due.due, &pods, &members(&[]));
    assert_eq!(after.count("forget"), 1);
    assert_eq!(after.count("deregister"), 0);
}
