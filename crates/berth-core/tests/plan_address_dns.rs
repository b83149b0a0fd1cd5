//! Elastic IP and DNS planning rules, including the seed-002 and seed-003 defects.

use std::collections::BTreeSet;
use std::net::IpAddr;

use berth_core::domain::{
    AllocationId, Association, DnsRecord, ElasticIp, Instance, InstanceId, InstanceState,
    NetworkInterface, Owner, RecordType, Tags,
};
use berth_core::plan::{
    plan_address, plan_dns, AddressDecision, AddressPolicy, DnsIntent, RecordChange,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn instance(id: &str) -> Instance {
    Instance {
        id: InstanceId::new(id).unwrap(),
        state: InstanceState::Running,
        availability_zone: "us-east-1a".into(),
        private_ips: vec![ip("10.0.0.1")],
        interfaces: vec![
            NetworkInterface {
                id: format!("eni-{id}-b"),
                device_index: 1,
                private_ip: ip("10.0.1.1"),
                public_ip: None,
            },
            NetworkInterface {
                id: format!("eni-{id}-a"),
                device_index: 0,
                private_ip: ip("10.0.0.1"),
                public_ip: None,
            },
        ],
        tags: Tags::new(),
    }
}

fn eip(n: u8, on: Option<(&str, &str)>) -> ElasticIp {
    ElasticIp {
        allocation_id: AllocationId(format!("eipalloc-{n}")),
        public_ip: ip(&format!("203.0.113.{n}")),
        association: on.map(|(inst, eni)| Association {
            association_id: format!("eipassoc-{n}"),
            instance_id: Some(InstanceId::new(inst).unwrap()),
            network_interface_id: Some(eni.into()),
            private_ip: None,
        }),
        tags: Tags::new(),
    }
}

fn decide(
    id: &str,
    state: InstanceState,
    pool: &[ElasticIp],
    policy: AddressPolicy,
) -> AddressDecision {
    let inst = instance(id);
    plan_address(&inst.id, state, Some(&inst), pool, policy).unwrap()
}

#[test]
fn an_instance_holding_a_pool_address_keeps_it() {
    let pool = [eip(1, None), eip(2, Some(("i-1", "eni-i-1-a")))];
    assert_eq!(
        decide(
            "i-1",
            InstanceState::Running,
            &pool,
            AddressPolicy::default()
        ),
        AddressDecision::Keep(pool[1].clone())
    );
}

#[test]
fn binds_on_the_primary_interface_device_index_zero() {
    let pool = [eip(1, None)];
    match decide(
        "i-1",
        InstanceState::Running,
        &pool,
        AddressPolicy::default(),
    ) {
        AddressDecision::Bind { target, candidates } => {
            assert_eq!(target.network_interface_id, "eni-i-1-a");
            assert_eq!(candidates, vec![AllocationId("eipalloc-1".into())]);
        }
        other => panic!("expected Bind, got {other:?}"),
    }
}

#[test]
fn candidates_are_deterministic_per_instance_and_spread_across_instances() {
    let pool: Vec<ElasticIp> = (1..=20).map(|n| eip(n, None)).collect();
    let first = |id: &str| match decide(id, InstanceState::Running, &pool, AddressPolicy::default())
    {
        AddressDecision::Bind { candidates, .. } => candidates,
        other => panic!("{other:?}"),
    };
    assert_eq!(first("i-1"), first("i-1"));
    let starts: BTreeSet<AllocationId> = (1..=20)
        .map(|n| first(&format!("i-{n}"))[0].clone())
        .collect();
    assert!(
        starts.len() > 5,
        "20 instances should not all start at the same few addresses: {starts:?}"
    );
}

#[test]
fn addresses_taken_are_not_candidates_and_an_empty_pool_is_exhausted() {
    let taken = eip(1, Some(("i-9", "eni-x")));
    let decide_running = |pool: &[ElasticIp]| {
        decide(
            "i-1",
            InstanceState::Running,
            pool,
            AddressPolicy::default(),
        )
    };
    match decide_running(&[taken.clone(), eip(2, None)]) {
        AddressDecision::Bind { candidates, .. } => {
            assert_eq!(candidates, vec![AllocationId("eipalloc-2".into())])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(decide_running(&[taken]), AddressDecision::Exhausted);
    assert_eq!(decide_running(&[]), AddressDecision::Exhausted);
}

#[test]
fn seed_002_never_released_on_terminate() {
    let pool = [eip(1, Some(("i-1", "eni-i-1-a"))), eip(2, None)];
    for state in [InstanceState::ShuttingDown, InstanceState::Terminated] {
        assert_eq!(
            decide("i-1", state, &pool, AddressPolicy::default()),
            AddressDecision::Release(vec![pool[0].clone()])
        );
    }
}

#[test]
fn stop_keeps_the_address_unless_release_on_stop() {
    let pool = [eip(1, Some(("i-1", "eni-i-1-a")))];
    assert!(matches!(
        decide(
            "i-1",
            InstanceState::Stopped,
            &pool,
            AddressPolicy::default()
        ),
        AddressDecision::Nothing(_)
    ));
    let release = AddressPolicy {
        release_on_stop: true,
    };
    assert!(matches!(
        decide("i-1", InstanceState::Stopping, &pool, release),
        AddressDecision::Release(_)
    ));
}

#[test]
fn releasing_what_is_already_released_is_nothing_to_do() {
    let pool = [eip(1, None)];
    assert!(matches!(
        decide(
            "i-1",
            InstanceState::Terminated,
            &pool,
            AddressPolicy::default()
        ),
        AddressDecision::Nothing(_)
    ));
}

fn owner() -> Owner {
    Owner::new("berth/test").unwrap()
}

fn a(name: &str, value: &str) -> DnsRecord {
    DnsRecord::new(name, RecordType::A, 60, vec![value.into()])
}

fn intent(upsert: Vec<DnsRecord>, delete: Vec<&str>) -> DnsIntent {
    DnsIntent {
        zone_id: "Z1".into(),
        owner: owner(),
        adopt: Vec::new(),
        upsert,
        delete: delete
            .into_iter()
            .map(|n| (n.to_owned(), RecordType::A))
            .collect(),
    }
}

#[test]
fn seed_002_and_003_create_instead_of_upsert_a_free_name_gets_record_and_marker() {
    let plan = plan_dns(
        &intent(vec![a("n1.example.com", "203.0.113.1")], vec![]),
        &[],
    );
    match &plan.changes[..] {
        [RecordChange::Upsert { records, .. }] => {
            assert_eq!(records.len(), 2);
            assert_eq!(records[1].owner(), Some("berth/test"));
        }
        other => panic!("{other:?}"),
    }
    // Re-planning over the applied state is empty: a retry is not an error.
    let applied = vec![
        a("n1.example.com", "203.0.113.1"),
        DnsRecord::ownership("n1.example.com", &owner(), 60),
    ];
    assert!(plan_dns(
        &intent(vec![a("n1.example.com", "203.0.113.1")], vec![]),
        &applied
    )
    .is_empty());
}

#[test]
fn an_owned_name_with_a_changed_value_is_upserted_without_touching_the_marker() {
    let observed = vec![
        a("n1.example.com", "203.0.113.1"),
        DnsRecord::ownership("n1.example.com", &owner(), 60),
    ];
    let plan = plan_dns(
        &intent(vec![a("n1.example.com", "203.0.113.2")], vec![]),
        &observed,
    );
    assert_eq!(plan.count("upsert"), 1);
}

#[test]
fn a_name_someone_else_made_is_never_overwritten_or_deleted() {
    let observed = vec![a("n1.example.com", "198.51.100.7")];
    let plan = plan_dns(
        &intent(
            vec![a("n1.example.com", "203.0.113.1")],
            vec!["n1.example.com"],
        ),
        &observed,
    );
    assert!(plan.is_empty(), "{plan}");
    assert_eq!(plan.skipped.len(), 2);
    let other = Owner::new("berth/other").unwrap();
    let theirs = vec![
        a("n2.example.com", "1.1.1.1"),
        DnsRecord::ownership("n2.example.com", &other, 60),
    ];
    assert!(plan_dns(&intent(vec![], vec!["n2.example.com"]), &theirs).is_empty());
}

#[test]
fn deleting_an_owned_name_removes_record_and_marker() {
    let observed = vec![
        a("n1.example.com", "203.0.113.1"),
        DnsRecord::ownership("n1.example.com", &owner(), 60),
    ];
    let plan = plan_dns(&intent(vec![], vec!["N1.example.com."]), &observed);
    assert_eq!(plan.count("delete"), 2);
    assert!(plan_dns(&intent(vec![], vec!["n1.example.com"]), &[]).is_empty());
}

#[test]
fn deleting_an_owned_name_leaves_other_systems_records_of_other_types() {
    let theirs = DnsRecord::new(
        "n1.example.com",
        RecordType::Aaaa,
        300,
        vec!["2001:db8::1".into()],
    );
    let observed = vec![
        a("n1.example.com", "203.0.113.1"),
        theirs.clone(),
        DnsRecord::ownership("n1.example.com", &owner(), 60),
    ];
    let plan = plan_dns(&intent(vec![], vec!["n1.example.com"]), &observed);
    match &plan.changes[..] {
        [RecordChange::Delete { records, .. }] => {
            assert_eq!(records.len(), 2, "{records:?}");
            assert!(!records.contains(&theirs), "{records:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn intent_names_cover_markers() {
    let i = intent(vec![a("n1.example.com", "1.2.3.4")], vec!["n2.example.com"]);
    assert_eq!(
        i.names(),
        vec![
            "_berth.n1.example.com.",
            "_berth.n2.example.com.",
            "n1.example.com.",
            "n2.example.com."
        ]
    );
}
