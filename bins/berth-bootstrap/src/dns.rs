//! The DNS module: an A record `<hostname>.<zone>` → private IP, with berth's
//! `_berth.` ownership marker. One read of the name and its marker, never a listing
//! of the zone; the zone id from `hosted_zone.id` or one `ListHostedZonesByName`.
//! A name that exists without berth's marker for this owner is refused, never
//! overwritten. Writing goes through berth-core's `DnsNames` workflow, the one way
//! every mode writes DNS.

use std::sync::Arc;

use anyhow::Context;
use berth_aws::route53::Route53Zones;
use berth_core::domain::{DnsRecord, Owner, RecordType};
use berth_core::engine::{retry, RetryPolicy};
use berth_core::plan::{plan_dns, DnsIntent};
use berth_core::provider::DnsZones;
use berth_core::workflow::{DnsNames, Expect, NameWrite};

use crate::config::HostedZoneSettings;
use crate::identity::Aws;
use crate::run::NodeNames;
use crate::summary::ModuleReport;

/// The name exists and berth (this owner) did not create it.
#[derive(Debug, thiserror::Error)]
#[error("{name} exists and is not berth's ({reason}); refusing to overwrite it")]
pub struct NameTaken {
    /// The FQDN.
    pub name: String,
    /// Why it is not ours.
    pub reason: String,
}

/// Upserts the node's A record and its ownership marker.
pub async fn apply(
    settings: &HostedZoneSettings,
    aws: &Aws,
    names: &NodeNames,
    dry_run: bool,
) -> anyhow::Result<ModuleReport> {
    let mut report = ModuleReport::new(dry_run);
    let zones = Route53Zones::new(&aws.sdk, aws.counter.clone());
    let zone_id = match &settings.id {
        Some(id) => id.clone(),
        None => {
            zones
                .find_zone(&settings.name)
                .await
                .with_context(|| format!("finding hosted zone {}", settings.name))?
                .id
        }
    };
    let owner = Owner::new(settings.owner.clone())?;
    let record = DnsRecord::new(
        &names.fqdn,
        RecordType::A,
        settings.ttl,
        vec![names.private_ip.to_string()],
    );
    let intent = DnsIntent {
        zone_id: zone_id.clone(),
        owner,
        adopt: Vec::new(),
        upsert: vec![record.clone()],
        delete: Vec::new(),
    };
    report.detail("fqdn", &record.name);
    report.detail("zone_id", &zone_id);
    if dry_run {
        // The same single read the claim makes, and the same refusal; nothing written.
        let observed = zones
            .records(&zone_id, &intent.names())
            .await
            .with_context(|| format!("reading {} in zone {zone_id}", record.name))?;
        let plan = plan_dns(&intent, &observed);
        if let Some(skip) = plan.skipped.first() {
            return Err(NameTaken {
                name: skip.subject.clone(),
                reason: skip.reason.clone(),
            }
            .into());
        }
        for change in &plan.changes {
            report.change(format!("{change}"));
        }
        return Ok(report);
    }
    let dns_names = DnsNames::new(Arc::new(zones) as Arc<dyn DnsZones>, zone_id, intent.owner);
    // A rebooting node's name exists: read it once, then UPSERT what differs.
    let (written, _attempts) = retry(&RetryPolicy::default(), || {
        dns_names.claim(&record, Expect::Existing)
    })
    .await;
    match written.with_context(|| format!("claiming {}", record.name))? {
        NameWrite::Unchanged => {}
        NameWrite::Created | NameWrite::Updated => report.change(format!(
            "upsert {} A {} with its ownership marker",
            record.name,
            names_ip(&record)
        )),
    }
    Ok(report)
}

fn names_ip(record: &DnsRecord) -> String {
    record.values.join(", ")
}
