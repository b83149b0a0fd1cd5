//! `Route53Zones` against a real moto server: zones and foreign records are created
//! with the raw SDK, changed through the adapter (or berth-core's engine over it)
//! and read back with the raw SDK.
//!
//! moto reports every change `INSYNC` at once (`PENDING` is covered in
//! `tests/faults.rs` with a canned answer) and accepts CREATE over existing names;
//! berth only ever UPSERTs and DELETEs.
#![cfg(feature = "route53")]

mod fixtures;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_route53::types::{
    Change as SdkChange, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_sdk_route53::Client as Route53Client;
use berth_aws::route53::Route53Zones;
use berth_aws::CallCounter;
use berth_core::domain::{DnsRecord, HostedZone, Owner, RecordType};
use berth_core::engine::{ApplyOptions, DnsProviders, Engine};
use berth_core::plan::{plan_dns, DnsIntent, Plan, RecordChange};
use berth_core::provider::{DnsChange, DnsZones};
use berth_core::Error;
use berth_testing::{sdk_config, MotoServer};
use fixtures::*;

struct Setup {
    route53: Route53Client,
    adapter: Route53Zones,
    counter: CallCounter,
    zone_id: String,
}

async fn setup(moto: &MotoServer) -> Setup {
    let config = sdk_config(&moto.endpoint());
    let counter = CallCounter::new();
    let route53 = Route53Client::new(&config);
    let zone_id = hosted_zone(&route53, "example.com").await;
    Setup {
        adapter: Route53Zones::new(&config, counter.clone()),
        route53,
        counter,
        zone_id,
    }
}

fn a(name: &str, ttl: u32, ip: &str) -> DnsRecord {
    DnsRecord::new(name, RecordType::A, ttl, vec![ip.to_owned()])
}

/// Creates a record set with the raw SDK, as someone other than berth would.
async fn foreign_record(
    route53: &Route53Client,
    zone_id: &str,
    name: &str,
    kind: RrType,
    value: &str,
) {
    let set = ResourceRecordSet::builder()
        .name(name)
        .r#type(kind)
        .ttl(300)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .build()
        .unwrap();
    route53
        .change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    SdkChange::builder()
                        .action(ChangeAction::Create)
                        .resource_record_set(set)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("ChangeResourceRecordSets");
}

/// The zone's records except its NS and SOA.
async fn berth_visible(route53: &Route53Client, zone_id: &str) -> Vec<String> {
    zone_records(route53, zone_id)
        .await
        .into_iter()
        .filter(|r| !r.contains(" NS ") && !r.contains(" SOA "))
        .collect()
}

#[tokio::test]
async fn finds_zones_by_name() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    hosted_zone(&s.route53, "other.org").await;

    let zone = HostedZone {
        id: s.zone_id.clone(),
        name: "example.com.".into(),
    };
    assert_eq!(s.adapter.find_zone("Example.com").await.unwrap(), zone);
    assert_eq!(s.adapter.find_zone("example.com.").await.unwrap(), zone);

    let err = s.adapter.find_zone("example.net").await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { what } if what.contains("example.net.")),
        "{err:?}"
    );
    assert_eq!(s.counter.get("ListHostedZonesByName"), 3);
    assert_iam_listed(&s.counter, "route53", "route53");
}

#[tokio::test]
async fn reads_only_the_given_names_one_call_each() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    for (name, kind, value) in [
        ("a.example.com", RrType::A, "10.0.0.1"),
        ("a.example.com", RrType::Txt, "\"hello\""),
        ("a.example.com", RrType::Mx, "10 mail.example.com"),
        ("b.example.com", RrType::A, "10.0.0.2"),
        ("c.example.com", RrType::Cname, "b.example.com"),
        ("d.example.com", RrType::A, "10.0.0.4"),
    ] {
        foreign_record(&s.route53, &s.zone_id, name, kind, value).await;
    }

    let records = s
        .adapter
        .records(
            &s.zone_id,
            &[
                "A.example.com".into(),
                "c.example.com.".into(),
                "missing.example.com".into(),
            ],
        )
        .await
        .unwrap();
    let mut got: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "a.example.com. 300 A 10.0.0.1",
            "a.example.com. 300 TXT \"hello\"",
            "c.example.com. 300 CNAME b.example.com",
        ]
    );
    // One call per name, never a listing of the zone.
    assert_eq!(s.counter.get("ListResourceRecordSets"), 3);
}

#[tokio::test]
async fn a_name_with_more_record_sets_than_a_page_is_read_page_by_page() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let name = "multi.example.com";
    for (kind, value) in [
        (RrType::A, "10.0.0.1"),
        (RrType::Aaaa, "2001:db8::1"),
        (RrType::Caa, "0 issue \"amazon.com\""),
        (RrType::Mx, "10 mail.example.com"),
        (
            RrType::Naptr,
            "100 10 \"u\" \"E2U+sip\" \"!^.*$!sip:x@example.com!\" .",
        ),
        (RrType::Ptr, "host.example.com"),
        (RrType::Spf, "\"v=spf1 -all\""),
        (RrType::Srv, "1 1 5060 sip.example.com"),
        (
            RrType::Sshfp,
            "1 1 0123456789abcdef0123456789abcdef01234567",
        ),
        (RrType::Tlsa, "3 1 1 0123456789abcdef"),
        (RrType::Txt, "\"last\""),
    ] {
        foreign_record(&s.route53, &s.zone_id, name, kind, value).await;
    }
    foreign_record(
        &s.route53,
        &s.zone_id,
        "next.example.com",
        RrType::A,
        "10.0.0.9",
    )
    .await;

    let mut records = s.adapter.records(&s.zone_id, &[name.into()]).await.unwrap();
    records.sort();
    let got: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        got,
        [
            "multi.example.com. 300 A 10.0.0.1",
            "multi.example.com. 300 AAAA 2001:db8::1",
            "multi.example.com. 300 TXT \"last\"",
        ]
    );
    // 11 record sets at the name, 10 per page: two pages, and no third for the
    // next name.
    assert_eq!(s.counter.get("ListResourceRecordSets"), 2);
}

#[tokio::test]
async fn upserts_replaces_and_deletes_records_and_reports_sync() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let owner = Owner::new("berth/test").unwrap();
    let record = a("node-1.example.com", 60, "192.0.2.10");
    let marker = DnsRecord::ownership("node-1.example.com", &owner, 60);

    let change_id = s
        .adapter
        .change(
            &s.zone_id,
            &[
                DnsChange::Upsert(record.clone()),
                DnsChange::Upsert(marker.clone()),
            ],
        )
        .await
        .unwrap();
    assert!(!change_id.is_empty() && !change_id.starts_with('/'));
    assert!(s.adapter.is_in_sync(&change_id).await.unwrap());
    assert_eq!(
        berth_visible(&s.route53, &s.zone_id).await,
        [
            "_berth.node-1.example.com. TXT 60 \"berth-owner=berth/test\"",
            "node-1.example.com. A 60 192.0.2.10",
        ]
    );

    // UPSERT replaces; the adapter reads back what it wrote.
    let moved = a("node-1.example.com", 60, "192.0.2.99");
    s.adapter
        .change(&s.zone_id, &[DnsChange::Upsert(moved.clone())])
        .await
        .unwrap();
    let names = [record.name.clone(), marker.name.clone()];
    let mut read = s.adapter.records(&s.zone_id, &names).await.unwrap();
    read.sort();
    assert_eq!(read, vec![marker.clone(), moved.clone()]);
    assert_eq!(read[0].owner(), Some("berth/test"));

    s.adapter
        .change(
            &s.zone_id,
            &[DnsChange::Delete(moved), DnsChange::Delete(marker)],
        )
        .await
        .unwrap();
    assert!(berth_visible(&s.route53, &s.zone_id).await.is_empty());
    assert_iam_listed(&s.counter, "route53", "route53");
}

#[tokio::test]
async fn create_writes_a_new_name_and_a_repeat_is_a_conflict_that_changes_nothing() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let owner = Owner::new("berth/test").unwrap();
    let record = a("fresh.example.com", 60, "192.0.2.20");
    let marker = DnsRecord::ownership("fresh.example.com", &owner, 60);
    let create = [
        DnsChange::Create(marker.clone()),
        DnsChange::Create(record.clone()),
    ];
    s.adapter.change(&s.zone_id, &create).await.unwrap();
    let visible = berth_visible(&s.route53, &s.zone_id).await;
    assert_eq!(
        visible,
        [
            "_berth.fresh.example.com. TXT 60 \"berth-owner=berth/test\"",
            "fresh.example.com. A 60 192.0.2.20",
        ]
    );
    // Route53 refuses a CREATE over an existing record set, and berth reads that as
    // a lost race (`Conflict`), not a bad request. (moto refuses only a CREATE it has
    // already seen with the same values; the AWS answer for others is in faults.rs.)
    let err = s.adapter.change(&s.zone_id, &create).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(berth_visible(&s.route53, &s.zone_id).await, visible);
}

#[tokio::test]
async fn ownership_markers_keep_berth_off_names_it_did_not_create() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    foreign_record(
        &s.route53,
        &s.zone_id,
        "taken.example.com",
        RrType::A,
        "198.51.100.1",
    )
    .await;
    let owner = Owner::new("berth/test").unwrap();
    let engine = Engine::new(ApplyOptions::default());
    let providers = DnsProviders::new(Arc::new(s.adapter.clone()));

    let intent = DnsIntent {
        zone_id: s.zone_id.clone(),
        owner: owner.clone(),
        adopt: vec![],
        upsert: vec![
            a("taken.example.com", 60, "192.0.2.1"),
            a("mine.example.com", 60, "192.0.2.2"),
        ],
        delete: vec![],
    };
    let observed = s
        .adapter
        .records(&s.zone_id, &intent.names())
        .await
        .unwrap();
    let plan = plan_dns(&intent, &observed);
    assert_eq!(plan.skipped.len(), 1, "{plan:?}");
    let report = engine.apply(&providers, &plan).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        berth_visible(&s.route53, &s.zone_id).await,
        [
            "_berth.mine.example.com. TXT 60 \"berth-owner=berth/test\"",
            "mine.example.com. A 60 192.0.2.2",
            "taken.example.com. A 300 198.51.100.1",
        ]
    );

    // Deleting both names removes only berth's, marker included.
    let intent = DnsIntent {
        upsert: vec![],
        delete: vec![
            ("taken.example.com".into(), RecordType::A),
            ("mine.example.com".into(), RecordType::A),
        ],
        ..intent
    };
    let observed = s
        .adapter
        .records(&s.zone_id, &intent.names())
        .await
        .unwrap();
    let report = engine
        .apply(&providers, &plan_dns(&intent, &observed))
        .await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        berth_visible(&s.route53, &s.zone_id).await,
        ["taken.example.com. A 300 198.51.100.1"]
    );
}

#[tokio::test]
async fn engine_writes_1200_records_in_batches_within_route53_limits() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    let records: Vec<DnsRecord> = (0..1200)
        .map(|i| {
            a(
                &format!("n{i}.example.com"),
                60,
                &format!("10.1.{}.{}", i / 250, i % 250),
            )
        })
        .collect();
    let engine = Engine::new(ApplyOptions {
        dns_batch_size: 500,
        ..ApplyOptions::default()
    });
    let providers = DnsProviders {
        zones: Arc::new(s.adapter.clone()),
        wait_in_sync: Some(quick_poll(Duration::from_secs(5))),
    };
    let plan = Plan {
        changes: vec![RecordChange::Upsert {
            zone_id: s.zone_id.clone(),
            records: records.clone(),
        }],
        ..Plan::default()
    };
    let report = engine.apply(&providers, &plan).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(s.counter.get("ChangeResourceRecordSets"), 3); // ceil(1200 / 500)
    assert_eq!(s.counter.get("GetChange"), 3);
    assert_eq!(berth_visible(&s.route53, &s.zone_id).await.len(), 1200);

    // A batch Route53 would refuse is refused before it is sent.
    let too_big: Vec<DnsChange> = records[..501]
        .iter()
        .cloned()
        .map(DnsChange::Upsert)
        .collect();
    let before = s.counter.total();
    let err = s.adapter.change(&s.zone_id, &too_big).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert_eq!(s.counter.total(), before);
}

#[tokio::test]
async fn a_name_and_its_ownership_marker_are_read_in_one_listing() {
    let moto = MotoServer::isolated().await;
    let s = setup(&moto).await;
    // Neighbours that sort around the name and inside its subtree, before the marker.
    for (name, value) in [
        ("n1.example.com", "10.0.0.1"),
        ("n1-a.example.com", "10.0.0.2"),
        ("0.n1.example.com", "10.0.0.3"),
        ("n10.example.com", "10.0.0.4"),
        ("zz.n1.example.com", "10.0.0.5"),
    ] {
        foreign_record(&s.route53, &s.zone_id, name, RrType::A, value).await;
    }
    foreign_record(
        &s.route53,
        &s.zone_id,
        "_berth.n1.example.com",
        RrType::Txt,
        "\"berth-owner=berth/test\"",
    )
    .await;

    let asked = |name: &str| vec![name.to_owned(), DnsRecord::ownership_name(name)];
    let mut records = s
        .adapter
        .records(&s.zone_id, &asked("n1.example.com"))
        .await
        .unwrap();
    records.sort();
    let got: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        got,
        [
            "_berth.n1.example.com. 300 TXT \"berth-owner=berth/test\"",
            "n1.example.com. 300 A 10.0.0.1",
        ]
    );
    assert_eq!(
        s.counter.get("ListResourceRecordSets"),
        1,
        "one listing for both"
    );

    // A fresh name with no marker: still one call, nothing found.
    let records = s
        .adapter
        .records(&s.zone_id, &asked("fresh.example.com"))
        .await
        .unwrap();
    assert!(records.is_empty(), "{records:?}");
    assert_eq!(s.counter.get("ListResourceRecordSets"), 2);
}
