//! Target ownership kept in a ConfigMap: one ConfigMap per owner, one key per target
//! group, each value the owned targets (`id:port`, space-separated). Every update is a
//! compare-and-swap on the ConfigMap's `resourceVersion`, retried on conflict under
//! berth-core's one [`CasPolicy`] (the ledger's ownership rows use the same), so
//! concurrent writers (several DaemonSet pods, an old and a new leader) never lose
//! each other's claims.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use berth_core::domain::{Owner, Target, TargetGroupArn};
use berth_core::provider::{CasPolicy, OwnedTargets, Swap, TargetOwnership};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::Error;

/// Annotation naming the owner a ConfigMap belongs to; checked on every read.
pub const OWNER_ANNOTATION: &str = "berth.dev/owner";
/// Label marking berth's ownership ConfigMaps.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "berth");

/// [`TargetOwnership`] in a ConfigMap (RBAC: `get`, `create`, `update` on
/// `configmaps` in its namespace).
pub struct ConfigMapOwnership {
    api: Api<ConfigMap>,
    namespace: String,
    name: String,
    owner: Owner,
    cas: CasPolicy,
}

impl ConfigMapOwnership {
    /// Ownership of `owner` in namespace `namespace`, in the ConfigMap named by
    /// [`ConfigMapOwnership::config_map_name`].
    pub fn new(client: Client, namespace: &str, owner: Owner) -> Self {
        let name = Self::config_map_name(&owner);
        Self::with_name(client, namespace, &name, owner)
    }

    /// Ownership in a ConfigMap of the caller's choosing (e.g. one per node in node
    /// mode, to spare hundreds of pods from contending on one object).
    pub fn with_name(client: Client, namespace: &str, name: &str, owner: Owner) -> Self {
        ConfigMapOwnership {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            owner,
            cas: CasPolicy::default(),
        }
    }

    /// `berth-owner-<owner>`, lowercased, with anything but alphanumerics turned into
    /// `-`, cut to fit the 253-character limit, plus a short hash of the exact owner
    /// id so that distinct owners never share a ConfigMap.
    pub fn config_map_name(owner: &Owner) -> String {
        let mut slug: String = owner
            .as_str()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        slug.truncate(200);
        let slug = slug.trim_matches('-');
        format!("berth-owner-{slug}-{:08x}", fnv1a(owner.as_str()))
    }

    /// The ConfigMap's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn operation(&self, verb: &str) -> String {
        format!("{verb} ConfigMap {}/{}", self.namespace, self.name)
    }

    /// Reads the ConfigMap, refusing one that belongs to another owner.
    async fn read(&self) -> Result<Option<ConfigMap>, Error> {
        let map = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| Error::kube(self.operation("get"), e))?;
        if let Some(map) = &map {
            let owner = map
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(OWNER_ANNOTATION));
            if owner.map(String::as_str) != Some(self.owner.as_str()) {
                return Err(Error::Invalid(format!(
                    "ConfigMap {}/{} belongs to owner {:?}, not {}",
                    self.namespace, self.name, owner, self.owner
                )));
            }
        }
        Ok(map)
    }

    /// Read-modify-write of one group's key, retried when another writer got there first.
    async fn update(
        &self,
        group: &TargetGroupArn,
        edit: impl Fn(&mut BTreeSet<Target>),
    ) -> Result<(), Error> {
        let key = encode_group(group);
        let done = self
            .cas
            .run(|| async {
                let current = self.read().await?;
                let mut targets = match current
                    .as_ref()
                    .and_then(|m| m.data.as_ref())
                    .and_then(|d| d.get(&key))
                {
                    Some(text) => decode_targets(text)?,
                    None => BTreeSet::new(),
                };
                let before = targets.clone();
                edit(&mut targets);
                if targets == before {
                    return Ok(Swap::Done(()));
                }
                let result = match current {
                    None => {
                        let mut map = self.empty_map();
                        map.data = Some(BTreeMap::from([(
                            key.clone(),
                            berth_core::provider::encode_targets(&targets),
                        )]));
                        self.api
                            .create(&PostParams::default(), &map)
                            .await
                            .map(drop)
                            .map_err(|e| Error::kube(self.operation("create"), e))
                    }
                    Some(mut map) => {
                        let data = map.data.get_or_insert_with(BTreeMap::new);
                        if targets.is_empty() {
                            data.remove(&key);
                        } else {
                            data.insert(
                                key.clone(),
                                berth_core::provider::encode_targets(&targets),
                            );
                        }
                        // The resourceVersion read above rides along: a concurrent write
                        // makes this a 409, and we start over from a fresh read.
                        self.api
                            .replace(&self.name, &PostParams::default(), &map)
                            .await
                            .map(drop)
                            .map_err(|e| Error::kube(self.operation("replace"), e))
                    }
                };
                match result {
                    Ok(()) => Ok(Swap::Done(())),
                    Err(e) if e.status_code() == Some(409) => Ok(Swap::Lost),
                    Err(e) => Err(e),
                }
            })
            .await?;
        done.ok_or_else(|| {
            Error::Conflict(format!(
                "ConfigMap {}/{} kept changing under us ({} attempts)",
                self.namespace, self.name, self.cas.max_attempts
            ))
        })
    }

    fn empty_map(&self) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_LABEL.0.to_owned(),
                    MANAGED_BY_LABEL.1.to_owned(),
                )])),
                annotations: Some(BTreeMap::from([(
                    OWNER_ANNOTATION.to_owned(),
                    self.owner.as_str().to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }
}

#[async_trait]
impl TargetOwnership for ConfigMapOwnership {
    async fn owned(&self) -> berth_core::Result<OwnedTargets> {
        let mut owned = OwnedTargets::new();
        let Some(map) = self.read().await? else {
            return Ok(owned);
        };
        for (key, text) in map.data.unwrap_or_default() {
            let group = decode_group(&key)?;
            let targets = decode_targets(&text)?;
            if !targets.is_empty() {
                owned.insert(group, targets);
            }
        }
        Ok(owned)
    }

    async fn claim(&self, group: &TargetGroupArn, targets: &[Target]) -> berth_core::Result<()> {
        Ok(self
            .update(group, |set| set.extend(targets.iter().cloned()))
            .await?)
    }

    async fn release(&self, group: &TargetGroupArn, targets: &[Target]) -> berth_core::Result<()> {
        Ok(self
            .update(group, |set| {
                for t in targets {
                    set.remove(t);
                }
            })
            .await?)
    }
}

/// ConfigMap keys allow `[-._a-zA-Z0-9]`; ARNs use `:` and `/` but never `_` or `.`
/// (partition, region, account and group names are alphanumerics and hyphens), so the
/// mapping `:`→`_`, `/`→`.` is reversible.
pub fn encode_group(group: &TargetGroupArn) -> String {
    group.as_str().replace(':', "_").replace('/', ".")
}

/// The inverse of [`encode_group`].
pub fn decode_group(key: &str) -> Result<TargetGroupArn, Error> {
    TargetGroupArn::new(key.replace('_', ":").replace('.', "/"))
        .map_err(|e| Error::Invalid(format!("ownership key {key:?}: {e}")))
}

fn decode_targets(text: &str) -> Result<BTreeSet<Target>, Error> {
    berth_core::provider::decode_targets(text).map_err(|e| Error::Invalid(e.to_string()))
}

/// 32-bit FNV-1a: stable across releases and platforms (std's hasher is not).
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keys_round_trip_and_are_valid_config_map_keys() {
        let arn = TargetGroupArn::new(
            "arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:targetgroup/my-tg/0123abcd",
        )
        .unwrap();
        let key = encode_group(&arn);
        assert!(key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)));
        assert_eq!(decode_group(&key).unwrap(), arn);
        assert!(decode_group("not-a-group").is_err());
    }

    #[test]
    fn targets_round_trip() {
        let set: BTreeSet<Target> = [Target::new("i-1", 80), Target::new("fd00::1", 8080)].into();
        assert_eq!(
            decode_targets(&berth_core::provider::encode_targets(&set)).unwrap(),
            set
        );
        assert!(decode_targets("i-1").is_err());
    }

    #[test]
    fn config_map_names_are_dns_names_and_distinct() {
        let a = ConfigMapOwnership::config_map_name(&Owner::new("berth/prod-eu-1/daemon").unwrap());
        let b = ConfigMapOwnership::config_map_name(&Owner::new("berth/prod_eu_1/daemon").unwrap());
        assert!(a.starts_with("berth-owner-berth-prod-eu-1-daemon-"), "{a}");
        assert_ne!(a, b);
        assert!(a.len() <= 253);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}
