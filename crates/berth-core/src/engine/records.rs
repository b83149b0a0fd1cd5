//! DNS record sets through the engine: how a [`RecordChange`] is applied.

use std::sync::Arc;

use async_trait::async_trait;

use super::{wait_dns_sync_through, Applied, Apply, ApplyOptions, Caller};
use crate::plan::RecordChange;
use crate::provider::{DnsZones, PollPolicy};
use crate::Result;

/// What applying record changes needs.
#[derive(Clone)]
pub struct DnsProviders {
    /// The hosted zones.
    pub zones: Arc<dyn DnsZones>,
    /// Wait for each change batch to be `INSYNC` under this policy (`None`: do not
    /// wait; callers rarely need it).
    pub wait_in_sync: Option<PollPolicy>,
}

impl DnsProviders {
    /// The zones, not waiting for changes to propagate.
    pub fn new(zones: Arc<dyn DnsZones>) -> Self {
        DnsProviders {
            zones,
            wait_in_sync: None,
        }
    }
}

#[async_trait]
impl Apply for RecordChange {
    type Providers = DnsProviders;

    fn batch_size(options: &ApplyOptions) -> usize {
        options.dns_batch_size
    }

    async fn apply(&self, providers: &DnsProviders, caller: &Caller) -> Result<Applied<Self>> {
        let zones = providers.zones.as_ref();
        let changes = self.dns_changes();
        let change_id = caller
            .call("ChangeResourceRecordSets", || {
                zones.change(self.zone_id(), &changes)
            })
            .await?;
        if let Some(policy) = providers.wait_in_sync {
            wait_dns_sync_through(zones, caller, &change_id, policy).await?;
        }
        Ok(Applied::changed())
    }
}
