//! The DNS module: an A record `<hostname>.<zone>` → private IP, with berth's
//! `_berth.` ownership marker. One read of the name and its marker, never a listing
//! of the zone; the zone id from `hosted_zone.id` or one `ListHostedZonesByName`.
//! A name that exists without berth's marker for this owner is refused, never
//! overwritten.

use std::sync::Arc;

use anyhow::Context;
use berth_aws::route53::Route53Zones;
use berth_core::domain::{DnsRecord, Owner, RecordType};
use berth_core::engine::{ApplyOptions, Engine, Providers};
use berth_core::plan::{plan_dns, DnsIntent};
use berth_core::provider::DnsZones;

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
    report.detail("fqdn", &record.name);
    report.detail("zone_id", &zone_id);
    if plan.is_empty() {
        return Ok(report);
    }
    for change in &plan.changes {
        report.change(format!("{change}"));
    }
    if dry_run {
        return Ok(report);
    }
    let engine = Engine::new(
        Providers {
            dns: Some(Arc::new(zones) as Arc<dyn DnsZones>),
            ..Providers::default()
        },
        ApplyOptions::default(),
    );
    let applied = engine.apply(&plan).await;
    if let Some((_, error)) = applied.errors().next() {
        return Err(error.clone()).with_context(|| format!("upserting {}", record.name));
    }
    Ok(report)
}
