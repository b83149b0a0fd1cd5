//! Route53 hosted zones: [`Route53Zones`] implements berth-core's [`DnsZones`] over
//! `aws-sdk-route53`.
//!
//! Records are read name by name (`ListResourceRecordSets` from `StartRecordName`
//! with a small `MaxItems`), never by listing a whole zone, so the cost does not grow
//! with the zone. Changes are one change batch each, checked against Route53's batch
//! limits before they are sent. Ownership (the `_berth.<name>` TXT markers) is
//! decided by berth-core's `plan_dns`; this adapter reads and writes the markers like
//! any other record.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_sdk_route53::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use berth_core::domain::{DnsRecord, HostedZone, RecordType};
use berth_core::provider::{DnsChange, DnsZones};
use berth_core::{Error, Result};

use crate::error::from_sdk;
use crate::CallCounter;

/// Route53 counts at most this many `ResourceRecord` values in one change batch,
/// an UPSERT twice.
pub const MAX_BATCH_RECORDS: usize = 1000;
/// Route53 accepts at most this many characters of record values in one batch, an
/// UPSERT's twice.
pub const MAX_BATCH_CHARACTERS: usize = 32_000;
/// Record sets read per `ListResourceRecordSets` page: the few types berth writes
/// at one name fit in one page.
const RECORDS_PER_NAME: i32 = 10;
/// The label berth's ownership markers sit under (`_berth.<name>`).
const OWNERSHIP_LABEL: &str = "_berth.";

/// Route53 hosted zones through the AWS SDK.
#[derive(Debug, Clone)]
pub struct Route53Zones {
    client: Client,
}

impl Route53Zones {
    /// A client from the shared configuration, counting its calls in `counter`.
    pub fn new(config: &SdkConfig, counter: CallCounter) -> Self {
        let config = aws_sdk_route53::config::Builder::from(config)
            .interceptor(counter)
            .build();
        Route53Zones {
            client: Client::from_conf(config),
        }
    }

    /// The underlying SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Finds a hosted zone by its domain name (`example.com` or `example.com.`),
    /// with one `ListHostedZonesByName` call. Fails with [`Error::NotFound`] if no
    /// zone has exactly that name, and with [`Error::Conflict`] if several do (a
    /// public and a private zone: name the zone by id then).
    pub async fn find_zone(&self, name: &str) -> Result<HostedZone> {
        let wanted = DnsRecord::new(name, RecordType::A, 0, Vec::new()).name;
        let output = self
            .client
            .list_hosted_zones_by_name()
            .dns_name(&wanted)
            .max_items(10)
            .send()
            .await
            .map_err(|e| failed("ListHostedZonesByName", e))?;
        let matching: Vec<HostedZone> = output
            .hosted_zones()
            .iter()
            .map(|z| hosted_zone(z.id(), z.name()))
            .filter(|z| z.name == wanted)
            .collect();
        match matching.as_slice() {
            [] => Err(Error::not_found(format!("hosted zone {wanted}"))),
            [zone] => Ok(zone.clone()),
            several => Err(Error::conflict(format!(
                "{} hosted zones are named {wanted} ({}); configure the zone by id",
                several.len(),
                several
                    .iter()
                    .map(|z| z.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The record sets at one name, following pages only while they stay at it.
    /// The record sets at `name` and, when asked for, at `marker` (its `_berth.`
    /// ownership marker, which lives in `name`'s subtree): one listing from `name`,
    /// paged only while it stays among names that start like `name`, so the common
    /// case is a single call for both.
    async fn records_at(
        &self,
        zone_id: &str,
        name: &str,
        marker: Option<&str>,
    ) -> Result<Vec<DnsRecord>> {
        let prefix = reversed(name);
        let mut found = Vec::new();
        let mut seen_marker = false;
        let mut start: Option<(String, Option<RrType>)> = None;
        loop {
            let (start_name, start_type) = match start.take() {
                Some((n, t)) => (n, t),
                None => (name.to_owned(), None),
            };
            let output = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id)
                .start_record_name(start_name)
                .set_start_record_type(start_type)
                .max_items(RECORDS_PER_NAME)
                .send()
                .await
                .map_err(|e| failed("ListResourceRecordSets", e))?;
            let mut done = false;
            for set in output.resource_record_sets() {
                let at = normalize(set.name());
                let is_marker = Some(at.as_str()) == marker;
                if at == name || is_marker {
                    seen_marker |= is_marker;
                    if let Some(record) = record(set) {
                        found.push(record);
                    }
                    continue;
                }
                // Another name. Without a marker to find, or once the marker's sets
                // (contiguous) are behind us, or out of the names sharing `name`'s
                // reversed prefix (where the marker must sort), the listing is done.
                if marker.is_none() || seen_marker || !reversed(&at).starts_with(&prefix) {
                    done = true;
                    break;
                }
            }
            if done || !output.is_truncated() {
                return Ok(found);
            }
            // Read on only while the next page may still hold what was asked for.
            let wanted_next = |next: &str| {
                let next = normalize(next);
                next == name
                    || Some(next.as_str()) == marker
                    || (marker.is_some() && !seen_marker && reversed(&next).starts_with(&prefix))
            };
            match output.next_record_name() {
                Some(next) if wanted_next(next) => {
                    start = Some((next.to_owned(), output.next_record_type().cloned()));
                }
                _ => return Ok(found),
            }
        }
    }
}

/// A DNS name with its labels reversed (`com.example.www`), the order Route53 lists in.
fn reversed(name: &str) -> String {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    trimmed.rsplit('.').collect::<Vec<_>>().join(".")
}

#[async_trait]
impl DnsZones for Route53Zones {
    async fn records(&self, zone_id: &str, names: &[String]) -> Result<Vec<DnsRecord>> {
        let names: BTreeSet<String> = names.iter().map(|n| normalize(n)).collect();
        let mut records = Vec::new();
        for name in &names {
            // A marker asked for with its name is read in the name's listing.
            let is_marker_of_another = name
                .strip_prefix(OWNERSHIP_LABEL)
                .is_some_and(|owned| names.contains(owned));
            if is_marker_of_another {
                continue;
            }
            let marker = DnsRecord::ownership_name(name);
            let marker = names.contains(&marker).then_some(marker.as_str());
            records.extend(self.records_at(zone_id, name, marker).await?);
        }
        Ok(records)
    }

    async fn change(&self, zone_id: &str, changes: &[DnsChange]) -> Result<String> {
        check_batch_limits(changes)?;
        let changes = changes
            .iter()
            .map(to_sdk_change)
            .collect::<Result<Vec<_>>>()?;
        let batch = ChangeBatch::builder()
            .set_changes(Some(changes))
            .build()
            .map_err(|e| Error::invalid(format!("change batch: {e}")))?;
        let output = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| {
                // A CREATE over an existing record set is a lost race, not a bad request.
                let exists = match e.as_service_error() {
                    Some(ChangeResourceRecordSetsError::InvalidChangeBatch(batch)) => batch
                        .message()
                        .into_iter()
                        .chain(batch.messages().iter().map(String::as_str))
                        .any(|m| m.contains("already exists")),
                    _ => false,
                };
                match failed("ChangeResourceRecordSets", e) {
                    Error::Invalid(message) if exists => Error::conflict(message),
                    other => other,
                }
            })?;
        let info = output.change_info().ok_or_else(|| Error::Provider {
            operation: "ChangeResourceRecordSets".into(),
            message: "the answer carried no change id".into(),
            retryable: false,
        })?;
        Ok(strip_prefix(info.id(), "/change/").to_owned())
    }

    async fn is_in_sync(&self, change_id: &str) -> Result<bool> {
        let output = self
            .client
            .get_change()
            .id(change_id)
            .send()
            .await
            .map_err(|e| failed("GetChange", e))?;
        Ok(output
            .change_info()
            .is_some_and(|info| *info.status() == ChangeStatus::Insync))
    }
}

/// Refuses a batch Route53 would refuse, before sending it: at most
/// [`MAX_BATCH_RECORDS`] values and [`MAX_BATCH_CHARACTERS`] characters, an UPSERT
/// counting twice. The engine's `dns_batch_size` keeps batches below this.
pub fn check_batch_limits(changes: &[DnsChange]) -> Result<()> {
    let (mut records, mut characters) = (0usize, 0usize);
    for change in changes {
        let (record, weight) = match change {
            DnsChange::Upsert(r) => (r, 2),
            DnsChange::Create(r) | DnsChange::Delete(r) => (r, 1),
        };
        records += weight * record.values.len();
        characters += weight * record.values.iter().map(String::len).sum::<usize>();
    }
    if records > MAX_BATCH_RECORDS || characters > MAX_BATCH_CHARACTERS {
        return Err(Error::invalid(format!(
            "a Route53 change batch holds at most {MAX_BATCH_RECORDS} record values and \
             {MAX_BATCH_CHARACTERS} characters (UPSERTs count twice); this one has \
             {records} and {characters}: use smaller batches"
        )));
    }
    Ok(())
}

fn failed<E>(operation: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    from_sdk(operation, &format!("route53:{operation}"), err)
}

fn hosted_zone(id: &str, name: &str) -> HostedZone {
    HostedZone {
        id: strip_prefix(id, "/hostedzone/").to_owned(),
        name: normalize(name),
    }
}

fn strip_prefix<'a>(id: &'a str, prefix: &str) -> &'a str {
    id.strip_prefix(prefix).unwrap_or(id)
}

/// A name as berth-core stores it: unescaped, lower case, fully qualified.
fn normalize(name: &str) -> String {
    DnsRecord::new(&unescape(name), RecordType::A, 0, Vec::new()).name
}

/// Route53 answers with special characters as `\ooo` octal escapes (`*` is `\052`).
fn unescape(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match escape.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                i += 4;
            }
            None => {
                out.push(char::from(bytes[i]));
                i += 1;
            }
        }
    }
    out
}

/// A record set berth understands; alias records and other types are left out
/// (berth never writes them, and a name holding them is not free).
fn record(set: &ResourceRecordSet) -> Option<DnsRecord> {
    let record_type: RecordType = set.r#type().as_str().parse().ok()?;
    if set.alias_target().is_some() {
        return None;
    }
    let ttl = u32::try_from(set.ttl().unwrap_or_default()).unwrap_or(u32::MAX);
    let values = set
        .resource_records()
        .iter()
        .map(|r| r.value().to_owned())
        .collect();
    Some(DnsRecord::new(
        &unescape(set.name()),
        record_type,
        ttl,
        values,
    ))
}

fn to_sdk_change(change: &DnsChange) -> Result<Change> {
    let (action, record) = match change {
        DnsChange::Create(r) => (ChangeAction::Create, r),
        DnsChange::Upsert(r) => (ChangeAction::Upsert, r),
        DnsChange::Delete(r) => (ChangeAction::Delete, r),
    };
    let values = record
        .values
        .iter()
        .map(|v| ResourceRecord::builder().value(v).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid(format!("record {record}: {e}")))?;
    let set = ResourceRecordSet::builder()
        .name(&record.name)
        .r#type(RrType::from(record.record_type.as_str()))
        .ttl(i64::from(record.ttl))
        .set_resource_records(Some(values))
        .build()
        .map_err(|e| Error::invalid(format!("record {record}: {e}")))?;
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| Error::invalid(format!("record {record}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: &str, values: usize) -> DnsRecord {
        let values = (0..values).map(|i| format!("10.0.{}.{}", i / 256, i % 256));
        DnsRecord::new(name, RecordType::A, 60, values.collect())
    }

    #[test]
    fn upserts_count_twice_against_the_batch_limit() {
        let upserts: Vec<DnsChange> = (0..500)
            .map(|i| DnsChange::Upsert(a(&format!("n{i}.example.com"), 1)))
            .collect();
        assert!(check_batch_limits(&upserts).is_ok());
        let mut too_many = upserts.clone();
        too_many.push(DnsChange::Upsert(a("one-more.example.com", 1)));
        assert!(matches!(
            check_batch_limits(&too_many),
            Err(Error::Invalid(_))
        ));
        let deletes: Vec<DnsChange> = (0..1000)
            .map(|i| DnsChange::Delete(a(&format!("n{i}.example.com"), 1)))
            .collect();
        assert!(check_batch_limits(&deletes).is_ok());
        assert!(check_batch_limits(&[DnsChange::Delete(a("big.example.com", 1001))]).is_err());
    }

    #[test]
    fn long_values_hit_the_character_limit() {
        let txt = DnsRecord::new(
            "t.example.com",
            RecordType::Txt,
            60,
            vec![format!("\"{}\"", "x".repeat(250)); 70],
        );
        // 70 values * 252 characters * 2 (UPSERT) > 32000.
        assert!(check_batch_limits(&[DnsChange::Upsert(txt.clone())]).is_err());
        assert!(check_batch_limits(&[DnsChange::Delete(txt)]).is_ok());
    }

    #[test]
    fn names_are_unescaped_and_normalised() {
        assert_eq!(normalize("\\052.Example.com"), "*.example.com.");
        assert_eq!(normalize("a.example.com."), "a.example.com.");
        assert_eq!(unescape("back\\slash"), "back\\slash");
        assert_eq!(unescape("end\\05"), "end\\05");
    }

    #[test]
    fn ids_lose_their_prefix() {
        let zone = hosted_zone("/hostedzone/Z123", "Example.COM.");
        assert_eq!(zone.id, "Z123");
        assert_eq!(zone.name, "example.com.");
        assert_eq!(strip_prefix("C42", "/change/"), "C42");
    }
}
