//! [`DnsNames`] on the in-memory Route53: what each call writes, how many calls it
//! makes, and that a name berth does not own is never written or deleted.

use std::sync::Arc;

use super::*;
use crate::domain::{DnsRecord, Owner, RecordType};
use crate::memory::MemoryDns;
use crate::Error;

const ZONE: &str = "Z1";
const NAME: &str = "node-1.example.com.";

fn owner() -> Owner {
    Owner::new("berth/prod/bootstrap").unwrap()
}

fn a(value: &str) -> DnsRecord {
    DnsRecord::new(NAME, RecordType::A, 60, vec![value.into()])
}

fn setup() -> (Arc<MemoryDns>, DnsNames) {
    let dns = MemoryDns::default();
    dns.add_zone(ZONE, "example.com");
    let dns = Arc::new(dns);
    let names = DnsNames::new(dns.clone(), ZONE, owner());
    (dns, names)
}

fn calls(dns: &MemoryDns) -> (u64, u64) {
    (
        dns.faults.calls("ListResourceRecordSets"),
        dns.faults.calls("ChangeResourceRecordSets"),
    )
}

#[tokio::test]
async fn a_new_name_is_created_with_its_marker_in_one_call() {
    let (dns, names) = setup();
    let wrote = names.claim(&a("192.0.2.1"), Expect::New).await.unwrap();
    assert_eq!(wrote, NameWrite::Created);
    assert_eq!(calls(&dns), (0, 1));
    assert_eq!(
        dns.all(ZONE),
        vec![DnsRecord::ownership(NAME, &owner(), 60), a("192.0.2.1")]
    );
}

#[tokio::test]
async fn an_own_name_is_read_once_and_upserted_only_when_it_differs() {
    let (dns, names) = setup();
    names.claim(&a("192.0.2.1"), Expect::New).await.unwrap();
    let same = names.claim(&a("192.0.2.1"), Expect::Existing).await;
    assert_eq!(same.unwrap(), NameWrite::Unchanged);
    assert_eq!(calls(&dns), (1, 1), "one read, no write");
    let moved = names.claim(&a("192.0.2.2"), Expect::Existing).await;
    assert_eq!(moved.unwrap(), NameWrite::Updated);
    assert_eq!(calls(&dns), (2, 2));
    // Expect::New on an existing own name: the CREATE is refused, one read, one UPSERT.
    let again = names.claim(&a("192.0.2.3"), Expect::New).await;
    assert_eq!(again.unwrap(), NameWrite::Updated);
    assert_eq!(calls(&dns), (3, 4));
    assert!(dns.all(ZONE).contains(&a("192.0.2.3")));
}

#[tokio::test]
async fn a_name_someone_else_holds_is_a_typed_error_and_is_not_written() {
    for expect in [Expect::New, Expect::Existing] {
        // Another installation's marker.
        let (dns, names) = setup();
        let theirs = Owner::new("berth/other/bootstrap").unwrap();
        dns.put(ZONE, a("198.51.100.9"));
        dns.put(ZONE, DnsRecord::ownership(NAME, &theirs, 60));
        let before = dns.all(ZONE);
        let err = names.claim(&a("192.0.2.1"), expect).await.unwrap_err();
        match &err {
            Error::NotOwned { what, held_by } => {
                assert!(what.contains(NAME), "{err}");
                assert_eq!(held_by, "owner berth/other/bootstrap");
            }
            other => panic!("{other:?}"),
        }
        assert!(!err.is_retryable());
        assert_eq!(dns.all(ZONE), before, "{expect:?}: not overwritten");
        assert_eq!(dns.faults.calls("ListResourceRecordSets"), 1, "one read");

        // Records another system made, without any marker.
        let (dns, names) = setup();
        dns.put(ZONE, a("198.51.100.9"));
        let err = names.claim(&a("192.0.2.1"), expect).await.unwrap_err();
        assert!(
            matches!(&err, Error::NotOwned { held_by, .. } if held_by == "no berth ownership marker"),
            "{err:?}"
        );
        assert!(err.to_string().contains("does not own"), "{err}");
        assert_eq!(dns.all(ZONE), vec![a("198.51.100.9")]);
    }
}

#[tokio::test]
async fn release_deletes_only_the_type_berth_wrote_at_names_it_owns() {
    let (dns, names) = setup();
    names.claim(&a("192.0.2.1"), Expect::New).await.unwrap();
    let theirs = DnsRecord::new(NAME, RecordType::Txt, 300, vec!["\"v=spf1\"".into()]);
    dns.put(ZONE, theirs.clone());
    let foreign = DnsRecord::new(
        "other.example.com",
        RecordType::A,
        60,
        vec!["198.51.100.1".into()],
    );
    dns.put(ZONE, foreign.clone());
    let deleted = names
        .release(&[
            (NAME.into(), RecordType::A),
            ("other.example.com".into(), RecordType::A),
            ("gone.example.com".into(), RecordType::A),
        ])
        .await
        .unwrap();
    assert_eq!(deleted, vec![NAME.to_owned()]);
    assert_eq!(dns.all(ZONE), vec![theirs, foreign]);
    assert_eq!(calls(&dns), (1, 2), "one read, one batch");
    // Releasing again succeeds and writes nothing.
    assert!(names
        .release(&[(NAME.into(), RecordType::A)])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(calls(&dns), (2, 2));
    assert!(names.release(&[]).await.unwrap().is_empty());
    assert_eq!(calls(&dns), (2, 2), "nothing to release: no call");
}

#[tokio::test]
async fn names_of_an_adopted_earlier_owner_are_taken_over_not_orphaned() {
    let (dns, _) = setup();
    let legacy = Owner::new("berth-lambda/berth-ledger").unwrap();
    dns.put(ZONE, a("192.0.2.1"));
    dns.put(ZONE, DnsRecord::ownership(NAME, &legacy, 60));
    let without = DnsNames::new(dns.clone(), ZONE, owner());
    assert!(matches!(
        without.claim(&a("192.0.2.2"), Expect::Existing).await,
        Err(Error::NotOwned { .. })
    ));
    let names = without.adopting([legacy, owner()]);
    let wrote = names.claim(&a("192.0.2.2"), Expect::Existing).await;
    assert_eq!(wrote.unwrap(), NameWrite::Updated);
    assert_eq!(
        dns.all(ZONE),
        vec![DnsRecord::ownership(NAME, &owner(), 60), a("192.0.2.2")],
        "the marker now names the current owner"
    );

    // A name still under the earlier owner's marker is released like our own.
    let legacy_name = "node-2.example.com.";
    let legacy = Owner::new("berth-lambda/berth-ledger").unwrap();
    let record = DnsRecord::new(legacy_name, RecordType::A, 60, vec!["192.0.2.7".into()]);
    dns.put(ZONE, record);
    dns.put(ZONE, DnsRecord::ownership(legacy_name, &legacy, 60));
    let deleted = names
        .release(&[(legacy_name.into(), RecordType::A)])
        .await
        .unwrap();
    assert_eq!(deleted, vec![legacy_name.to_owned()]);
    assert_eq!(dns.all(ZONE).len(), 2, "only node-1's record and marker");
}
