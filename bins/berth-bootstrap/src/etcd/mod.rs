//! etcd membership (issue 12, module 5): wiring only. The rules are berth-core's
//! (`decide_etcd`, the `EtcdBootstrap` workflow); this module builds the providers
//! (Auto Scaling, EC2, the DynamoDB marker, etcd), reads the data dir and the drop-in,
//! runs the workflow (every call through the run's engine `Caller`) and writes the
//! drop-in it renders; after etcd started, `promote-learner` promotes this node's
//! learner once it is in sync.

mod local;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_aws::autoscaling::AutoScaling;
use berth_aws::dynamodb::DynamoLedger;
use berth_aws::ec2::Ec2Instances;
use berth_core::domain::Owner;
use berth_core::plan::{self, EtcdTls};
use berth_core::provider::{Ledger, PollPolicy};
use berth_core::workflow::{
    EtcdAction, EtcdBootstrap, EtcdBootstrapSettings, EtcdProviders, LocalNode,
};
use berth_etcd::{EtcdAdapter, EtcdClientConfig, EtcdTlsConfig};
use tokio::time::Instant;

use crate::config::{EtcdSettings, Schema};
use crate::context::{EtcdRun, EtcdStep, TlsFiles};
use crate::summary::ModuleReport;

pub use local::{has_wal, write_drop_in, DropInWrite};

/// The marker table's partition key (a string).
pub const MARKER_KEY: &str = "id";
/// Who writes the marker.
const OWNER: &str = "berth-bootstrap";

/// Joins, restarts or creates the cluster for this instance and writes the drop-in.
/// A cluster that may exist but does not answer, or a deadline passed while waiting,
/// is an error (exit 1: systemd retries; recovery is the operator's).
pub async fn run(input: EtcdRun<'_>) -> anyhow::Result<ModuleReport> {
    let settings = input.settings;
    let group = settings
        .auto_scaling_group
        .clone()
        .or_else(|| input.identity.auto_scaling_group.clone())
        .context(
            "this instance is in no Auto Scaling group (no aws:autoscaling:groupName tag): \
             set etcd.auto_scaling_group",
        )?;
    let me = plan::NodeIdentity {
        instance_id: input.identity.instance_id.clone(),
        private_ip: input.identity.private_ip,
    };
    let local = LocalNode {
        has_wal: has_wal(&settings.data_dir)
            .with_context(|| format!("reading etcd's data dir {}", settings.data_dir.display()))?,
        drop_in_exists: settings.drop_in_file.exists(),
    };
    let aws = input.aws;
    let marker: Option<Arc<dyn Ledger>> = settings.marker_table.as_ref().map(|table| {
        Arc::new(DynamoLedger::new(
            &aws.sdk,
            aws.counter.clone(),
            table,
            MARKER_KEY,
        )) as Arc<dyn Ledger>
    });
    let providers = EtcdProviders {
        membership: Arc::new(EtcdAdapter::new(client_config(settings, input.tls)?)),
        groups: Arc::new(AutoScaling::new(&aws.sdk, aws.counter.clone())),
        instances: Arc::new(Ec2Instances::new(&aws.sdk, aws.counter.clone())),
        marker,
    };
    let left = input.deadline.saturating_duration_since(Instant::now());
    let workflow = EtcdBootstrap::new(
        providers,
        EtcdBootstrapSettings {
            etcd: core_settings(settings, &group, input.tls, input.root),
            group,
            owner: Owner::new(OWNER)?,
            wait: PollPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(15),
                // Leave a moment to write the drop-in and the summary.
                deadline: left.saturating_sub(Duration::from_secs(2)),
            },
        },
        input.caller.clone(),
    );
    if input.step == EtcdStep::PromoteLearner {
        let summary = workflow.promote_self(&me, input.dry_run).await?;
        let mut report = ModuleReport::new(input.dry_run);
        if summary.promoted.is_some() {
            report.change(format!("promote this node's learner {}", me.instance_id));
        }
        report.detail("membership", &summary);
        return Ok(report);
    }
    let summary = workflow.run(&me, local, input.dry_run).await?;

    let mut report = ModuleReport::new(input.dry_run);
    if let Some(removal) = &summary.removed {
        report.change(format!(
            "remove stale member {} ({:x}): {}",
            removal.member.name, removal.member.id, removal.reason
        ));
    }
    if let Some(promoted) = &summary.promoted {
        report.change(format!("promote learner {promoted}"));
    }
    match summary.action {
        EtcdAction::Joined => report.change(format!(
            "add member {} ({}) to the cluster{}",
            me.instance_id,
            core_settings(settings, "", None, input.root).peer_url(me.private_ip),
            if summary.learner { " as a learner" } else { "" }
        )),
        EtcdAction::Created => report.change(format!(
            "create a new cluster of {} members",
            settings.cluster_size
        )),
        EtcdAction::Restart
        | EtcdAction::Listed
        | EtcdAction::Wait
        | EtcdAction::Promoted
        | EtcdAction::Voter => {}
    }
    if summary.marker_written {
        report.change("write the \"cluster created\" marker".to_owned());
    }
    if let Some(drop_in) = &summary.drop_in {
        let path = &settings.drop_in_file;
        match write_drop_in(path, &drop_in.to_string(), input.dry_run)
            .with_context(|| format!("writing the etcd drop-in {}", path.display()))?
        {
            DropInWrite::Unchanged => {}
            DropInWrite::Written | DropInWrite::WouldWrite => {
                report.change(format!("write the etcd drop-in {}", path.display()));
            }
        }
    }
    report.detail("drop_in_file", &settings.drop_in_file);
    report.detail("membership", &summary);
    Ok(report)
}

/// The core settings from the configuration. The cluster token (also the marker's key)
/// is the peers' group name: the same on every node, different per cluster.
fn core_settings(
    settings: &EtcdSettings,
    group: &str,
    tls: Option<&TlsFiles>,
    root: &Path,
) -> plan::EtcdSettings {
    plan::EtcdSettings {
        client_scheme: settings.client_schema.as_str().to_owned(),
        client_port: settings.client_port,
        peer_scheme: settings.peer_schema.as_str().to_owned(),
        peer_port: settings.peer_port,
        cluster_size: u32::from(settings.cluster_size),
        learner: settings.learner,
        cluster_token: group.to_owned(),
        tls: tls.map(|t| EtcdTls {
            cert_file: host_path(&t.cert_file, root),
            key_file: host_path(&t.key_file, root),
            trusted_ca_file: host_path(&t.ca_file, root),
        }),
    }
}

/// `path` as etcd on the host sees it: written under the chroot `root` by a
/// containerised berth-bootstrap, read without it by the host's etcd.
fn host_path(path: &Path, root: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(relative) => Path::new("/").join(relative).display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// How the etcd client reaches members: with the node certificate over https.
fn client_config(
    settings: &EtcdSettings,
    tls: Option<&TlsFiles>,
) -> anyhow::Result<EtcdClientConfig> {
    let tls = match (settings.client_schema, tls) {
        (Schema::Https, Some(files)) => {
            let read = |p: &std::path::Path| {
                std::fs::read(p).with_context(|| format!("reading {}", p.display()))
            };
            Some(EtcdTlsConfig {
                ca_pem: read(&files.ca_file)?,
                cert_pem: Some(read(&files.cert_file)?),
                key_pem: Some(read(&files.key_file)?),
            })
        }
        _ => None,
    };
    Ok(EtcdClientConfig {
        tls,
        ..EtcdClientConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_paths_in_the_drop_in_are_the_hosts() {
        let root = Path::new("/media/root");
        assert_eq!(
            host_path(Path::new("/media/root/etc/ssl/node_certs/n.pem"), root),
            "/etc/ssl/node_certs/n.pem"
        );
        assert_eq!(
            host_path(Path::new("/etc/ssl/ca.pem"), root),
            "/etc/ssl/ca.pem"
        );
        assert_eq!(
            host_path(Path::new("/etc/ssl/ca.pem"), Path::new("/")),
            "/etc/ssl/ca.pem"
        );
    }
}
