//! Binding a running instance: claim a free address in the ledger, associate it,
//! re-check when EC2's answer is unclear, then the DNS record and the bound row.

use super::*;

impl AddressBinder {
    pub(in crate::workflow) async fn bind(&self, id: &InstanceId) -> Result<Outcome> {
        let described = self.instances.describe(std::slice::from_ref(id)).await?;
        let Some(instance) = described.into_iter().find(|i| &i.id == id) else {
            return Ok(Outcome::ignored(format!("EC2 does not know instance {id}")));
        };
        if !self.settings.instance_filter.matches(&instance.tags) {
            return Ok(Outcome::ignored(format!(
                "the instance's tags do not match {}",
                self.settings.instance_filter
            )));
        }
        if instance.state.is_terminating() || instance.state.is_stopping() {
            return Ok(Outcome::ignored(format!(
                "the event says running but EC2 says {}",
                instance.state
            )));
        }
        // EC2's associations say which addresses are free; the claim then asks the
        // ledger, in the same write that takes the row.
        let pool = self.addresses.list(&self.settings.pool).await?;
        let now = self.now();
        let decision = plan_address(
            id,
            InstanceState::Running,
            Some(&instance),
            &pool,
            self.settings.policy,
        )?;
        match decision {
            AddressDecision::Keep(eip) => {
                let row = self.read_row(&eip.allocation_id).await?;
                self.settle(&instance, &eip, row, false).await
            }
            AddressDecision::Exhausted => Err(self.exhausted()),
            AddressDecision::Bind { target, candidates } => {
                for allocation in candidates {
                    let Some(eip) = pool.iter().find(|a| a.allocation_id == allocation) else {
                        continue;
                    };
                    if let Some(outcome) = self.try_candidate(&instance, eip, &target, now).await? {
                        return Ok(outcome);
                    }
                }
                Err(self.exhausted())
            }
            AddressDecision::Release(_) | AddressDecision::Nothing(_) => {
                Ok(Outcome::ignored("nothing to bind for a running instance"))
            }
        }
    }

    /// Claims and associates one candidate. `Ok(None)`: someone else got it first,
    /// try the next one (our claim is withdrawn).
    pub(super) async fn try_candidate(
        &self,
        instance: &Instance,
        eip: &ElasticIp,
        target: &AssociationTarget,
        now: u64,
    ) -> Result<Option<Outcome>> {
        // Render first: a template that cannot be rendered fails before any change.
        self.dns_name(instance, eip.public_ip)?;
        let Some(claimed) = self.claim(eip, &instance.id, now).await? else {
            return Ok(None);
        };
        let refused = match self.addresses.associate(&eip.allocation_id, target).await {
            // With reassociation refused, an association id is EC2 saying the address
            // is on our interface now: that answer is the re-check.
            Ok(association_id) => {
                let associated = ElasticIp {
                    association: Some(Association {
                        association_id,
                        instance_id: Some(instance.id.clone()),
                        network_interface_id: Some(target.network_interface_id.clone()),
                        private_ip: Some(target.private_ip),
                    }),
                    ..eip.clone()
                };
                return self
                    .settle(instance, &associated, Some(claimed), true)
                    .await
                    .map(Some);
            }
            // Taken, or no clear answer (the association may have happened): ask EC2.
            Err(e) if matches!(e, Error::Conflict { .. }) || e.is_retryable() => e,
            Err(e) => {
                self.unclaim(&claimed).await;
                return Err(e);
            }
        };
        let pool = self.addresses.list(&self.settings.pool).await?;
        let on_target: Vec<&ElasticIp> = pool.iter().filter(|a| holds(a, target)).collect();
        if let Some(ours) = on_target
            .iter()
            .find(|a| a.allocation_id == eip.allocation_id)
        {
            return self
                .settle(instance, ours, Some(claimed), true)
                .await
                .map(Some);
        }
        self.unclaim(&claimed).await;
        if let Some(other) = on_target.first() {
            // Another invocation for this instance bound a different address.
            let row = self.read_row(&other.allocation_id).await?;
            return self.settle(instance, other, row, false).await.map(Some);
        }
        if !matches!(refused, Error::Conflict { .. }) {
            return Err(refused);
        }
        tracing::info!(
            allocation_id = %eip.allocation_id,
            instance_id = %instance.id,
            "address taken by someone else before association; trying the next one"
        );
        Ok(None)
    }

    /// Claims the row in one conditional write: it must be absent, free, or already
    /// this instance's (a duplicate delivery continues its own claim). When that
    /// loses, the row is read: a lapsed claim is taken over by version; a live claim,
    /// a binding for another instance or another owner's row means `None`.
    pub(super) async fn claim(
        &self,
        eip: &ElasticIp,
        id: &InstanceId,
        now: u64,
    ) -> Result<Option<AddressRow>> {
        let claim = AddressRow {
            state: RowState::Claimed,
            instance_id: Some(id.clone()),
            claim_expires_at: Some(now + self.settings.claim_ttl.as_secs().max(1)),
            ..AddressRow::new(eip.allocation_id.clone(), Some(eip.public_ip))
        };
        let claimable = WriteCondition::AbsentOrAny(vec![
            AttributeEquals::new(attr::STATE, RowState::Free.as_str()),
            AttributeEquals::new(attr::INSTANCE_ID, id.as_str()),
        ]);
        match self
            .ledger
            .put(claim.encode(&self.settings.owner, now), claimable)
            .await
        {
            Ok(stored) => return AddressRow::decode(&stored).map(Some),
            Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
        for _ in 0..CAS_ATTEMPTS {
            let current = match self.read_row(&eip.allocation_id).await {
                Ok(row) => row,
                Err(Error::Conflict { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            if current.as_ref().is_some_and(|r| r.held_by_other(id, now)) {
                return Ok(None);
            }
            let next = AddressRow {
                version: current.and_then(|c| c.version),
                ..claim.clone()
            };
            match self.write(&next).await {
                Ok(row) => return Ok(Some(row)),
                Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Withdraws a claim we made (best effort: an unwithdrawn claim lapses anyway).
    pub(super) async fn unclaim(&self, claimed: &AddressRow) {
        let free = AddressRow {
            version: claimed.version,
            ..AddressRow::new(claimed.allocation_id.clone(), claimed.public_ip)
        };
        if let Err(error) = self.write(&free).await {
            tracing::warn!(allocation_id = %claimed.allocation_id, %error,
                "could not withdraw a claim; it lapses on its own");
        }
    }

    /// Makes the DNS record and the row match an address EC2 shows on the instance.
    pub(super) async fn settle(
        &self,
        instance: &Instance,
        eip: &ElasticIp,
        row: Option<AddressRow>,
        newly: bool,
    ) -> Result<Outcome> {
        let association_id = eip
            .association
            .as_ref()
            .map(|a| a.association_id.clone())
            .unwrap_or_default();
        let name = self.dns_name(instance, eip.public_ip)?;
        let dns_skipped = self.upsert_dns(&name, eip.public_ip, newly).await?;
        let dns_name = dns_skipped.is_none().then_some(name);
        let bound = AddressRow {
            state: RowState::Bound,
            instance_id: Some(instance.id.clone()),
            association_id: Some(association_id.clone()),
            dns_name: dns_name.clone(),
            claim_expires_at: None,
            ..AddressRow::new(eip.allocation_id.clone(), Some(eip.public_ip))
        };
        // After a lost write, a row another invocation bound to this instance stands,
        // unless it names another association: then two invocations associated in
        // turn, and EC2 says which association is current.
        let mut bound = bound;
        let mut current = row;
        for _ in 0..CAS_ATTEMPTS {
            let yielded = self
                .store(&bound, current.take(), |c| {
                    !(c.state == RowState::Bound && c.instance_id.as_ref() == Some(&instance.id))
                })
                .await?;
            let Some(found) = yielded else { break };
            if found.association_id == bound.association_id {
                break;
            }
            let pool = self.addresses.list(&self.settings.pool).await?;
            let Some(now) = pool
                .iter()
                .find(|a| a.allocation_id == eip.allocation_id && a.is_on(&instance.id))
                .and_then(|a| a.association.as_ref())
            else {
                break;
            };
            bound.association_id = Some(now.association_id.clone());
            current = Some(found);
        }
        let association_id = bound.association_id.clone().unwrap_or_default();
        Ok(Outcome::Bound {
            binding: Binding {
                allocation_id: eip.allocation_id.clone(),
                public_ip: eip.public_ip,
                association_id,
                dns_name,
                dns_skipped,
            },
            newly,
        })
    }
}

/// Whether `eip` is on the association target: its interface, or its instance when
/// EC2 did not say which interface.
fn holds(eip: &ElasticIp, target: &AssociationTarget) -> bool {
    eip.is_on_interface(&target.network_interface_id)
        || (eip.is_on(&target.instance_id)
            && eip
                .association
                .as_ref()
                .is_some_and(|a| a.network_interface_id.is_none()))
}
