//! Releasing a stopped or terminated instance's address, and the ledger rows and DNS
//! records binding and releasing write.

use super::*;

impl AddressBinder {
    pub(in crate::workflow) async fn release(
        &self,
        id: &InstanceId,
        state: InstanceState,
    ) -> Result<Outcome> {
        let rows = self.rows().await?;
        let pool = self.addresses.list(&self.settings.pool).await?;
        let held = match plan_address(id, state, None, &pool, self.settings.policy)? {
            AddressDecision::Release(held) => held,
            _ => Vec::new(),
        };
        // Rows for this instance whose address EC2 does not show on another instance
        // (if it does, the row is stale and that instance's own events fix it).
        let mine: Vec<&AddressRow> = rows
            .values()
            .filter(|r| r.instance_id.as_ref() == Some(id) && r.state != RowState::Free)
            .filter(|r| {
                !pool.iter().any(|a| {
                    a.allocation_id == r.allocation_id
                        && a.association.as_ref().is_some_and(|x| {
                            x.instance_id.as_ref().is_some_and(|other| other != id)
                        })
                })
            })
            .collect();
        for eip in &held {
            if let Some(association) = &eip.association {
                self.addresses
                    .disassociate(&association.association_id)
                    .await?;
            }
        }
        let names: Vec<(String, RecordType)> = mine
            .iter()
            .filter_map(|r| Some((r.dns_name.clone()?, address_record_type(r.public_ip?))))
            .collect();
        let dns_names = self.names.release(&names).await?;
        for row in &mine {
            let free = AddressRow::new(row.allocation_id.clone(), row.public_ip);
            self.store(&free, Some((*row).clone()), |current| {
                current.instance_id.as_ref() == Some(id) && current.state != RowState::Free
            })
            .await?;
        }
        let mut addresses: BTreeSet<AllocationId> =
            held.iter().map(|a| a.allocation_id.clone()).collect();
        addresses.extend(mine.iter().map(|r| r.allocation_id.clone()));
        Ok(Outcome::Released {
            addresses: addresses.into_iter().collect(),
            dns_names,
        })
    }

    /// Writes `desired` over `current` with compare-and-swap. On conflict the row is
    /// read again and written again only while `still_ours` holds for what was found.
    /// A row that already says the same is not written again. Returns the row found
    /// when it yielded to it.
    pub(super) async fn store(
        &self,
        desired: &AddressRow,
        mut current: Option<AddressRow>,
        still_ours: impl Fn(&AddressRow) -> bool,
    ) -> Result<Option<AddressRow>> {
        for attempt in 0..CAS_ATTEMPTS {
            if let Some(c) = &current {
                if c.same_binding(desired) {
                    return Ok(None);
                }
                if attempt > 0 && !still_ours(c) {
                    return Ok(current);
                }
            }
            let next = AddressRow {
                version: current.as_ref().and_then(|c| c.version),
                ..desired.clone()
            };
            match self.write(&next).await {
                Ok(_) => return Ok(None),
                Err(Error::Conflict { .. }) => {
                    current = self.read_row(&desired.allocation_id).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(format!(
            "ledger row {} kept changing under us",
            desired.allocation_id
        )))
    }

    /// One conditional write: on the version read, or on absence for a new row.
    pub(in crate::workflow) async fn write(&self, row: &AddressRow) -> Result<AddressRow> {
        let condition = match row.version {
            Some(v) => crate::domain::WriteCondition::Version(v),
            None => crate::domain::WriteCondition::Absent,
        };
        let stored = self
            .ledger
            .put(row.encode(&self.settings.owner, self.now()), condition)
            .await?;
        AddressRow::decode(&stored)
    }

    pub(super) async fn read_row(&self, allocation: &AllocationId) -> Result<Option<AddressRow>> {
        match self.ledger.get(&allocation.0).await? {
            Some(r) if self.owns(&r.owner) => AddressRow::decode(&r).map(Some),
            Some(_) => Err(Error::conflict(format!(
                "ledger row {allocation} belongs to another owner"
            ))),
            None => Ok(None),
        }
    }

    /// Every row of ours; other owners' rows and unreadable ones are left alone.
    pub(in crate::workflow) async fn rows(&self) -> Result<BTreeMap<AllocationId, AddressRow>> {
        let mut rows = BTreeMap::new();
        for record in self.ledger.scan(ALLOCATION_PREFIX).await? {
            if !self.owns(&record.owner) {
                continue;
            }
            match AddressRow::decode(&record) {
                Ok(row) => {
                    rows.insert(row.allocation_id.clone(), row);
                }
                Err(error) => {
                    tracing::warn!(%error, "unreadable ledger row; its address is left alone");
                }
            }
        }
        Ok(rows)
    }

    pub(in crate::workflow) fn dns_name(&self, instance: &Instance, ip: IpAddr) -> Result<String> {
        self.settings
            .name_template
            .render(instance, ip, &self.settings.dns_suffix)
    }

    /// Writes the record and its ownership marker unless another system owns the
    /// name; returns why it was skipped, if it was. `fresh`: the name is probably new
    /// (a first binding), so it is CREATEd with its marker first.
    pub(super) async fn upsert_dns(
        &self,
        name: &str,
        ip: IpAddr,
        fresh: bool,
    ) -> Result<Option<String>> {
        let record = DnsRecord::new(
            name,
            address_record_type(ip),
            self.settings.dns_ttl,
            vec![ip.to_string()],
        );
        let expect = if fresh { Expect::New } else { Expect::Existing };
        match self.names.claim(&record, expect).await {
            Ok(_) => Ok(None),
            Err(refused @ Error::NotOwned { .. }) => {
                tracing::warn!(error = %refused, "DNS name left alone");
                Ok(Some(refused.to_string()))
            }
            Err(e) => Err(e),
        }
    }
}
