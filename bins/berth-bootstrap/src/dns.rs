//! The DNS module: an A record `<hostname>.<zone>` → private IP, with berth's
//! `_berth.` ownership marker. One read of the name and its marker, never a listing
//! of the zone; the zone id from `hosted_zone.id` or one `ListHostedZonesByName`.
//! A name that exists without berth's marker for this owner is refused, never
//! overwritten. Reading and writing go through berth-core's `DnsNames` workflow, the
//! one way every mode writes DNS, and every call through the engine's `Caller`.

use std::sync::Arc;

use anyhow::Context;
use berth_aws::route53::Route53Zones;
use berth_core::domain::{DnsRecord, Owner, RecordType};
use berth_core::engine::Caller;
use berth_core::provider::DnsZones;
use berth_core::workflow::{DnsNames, Expect, NameWrite};

use crate::config::HostedZoneSettings;
use crate::identity::Aws;
use crate::run::NodeNames;
use crate::summary::ModuleReport;

/// Upserts the node's A record and its ownership marker.
pub async fn apply(
    settings: &HostedZoneSettings,
    aws: &Aws,
    caller: &Caller,
    names: &NodeNames,
    dry_run: bool,
) -> anyhow::Result<ModuleReport> {
    let mut report = ModuleReport::new(dry_run);
    let zones = Route53Zones::new(&aws.sdk, aws.counter.clone());
    let zone_id = match &settings.id {
        Some(id) => id.clone(),
        None => {
            caller
                .call("ListHostedZonesByName", || zones.find_zone(&settings.name))
                .await
                .with_context(|| format!("finding hosted zone {}", settings.name))?
                .id
        }
    };
    let record = DnsRecord::new(
        &names.fqdn,
        RecordType::A,
        settings.ttl,
        vec![names.private_ip.to_string()],
    );
    report.detail("fqdn", &record.name);
    report.detail("zone_id", &zone_id);
    let owner = Owner::new(settings.owner.clone())?;
    let dns_names =
        DnsNames::new(Arc::new(zones) as Arc<dyn DnsZones>, zone_id, owner).through(caller.clone());
    if dry_run {
        // The same single read the claim makes, and the same refusal; nothing written.
        let plan = dns_names
            .plan_claim(&record)
            .await
            .with_context(|| format!("reading {}", record.name))?;
        for change in &plan.changes {
            report.change(format!("{change}"));
        }
        return Ok(report);
    }
    // A rebooting node's name exists: read it once, then UPSERT what differs.
    let written = dns_names
        .claim(&record, Expect::Existing)
        .await
        .with_context(|| format!("claiming {}", record.name))?;
    match written {
        NameWrite::Unchanged => {}
        NameWrite::Created | NameWrite::Updated => report.change(format!(
            "upsert {} A {} with its ownership marker",
            record.name,
            record.values.join(", ")
        )),
    }
    Ok(report)
}
