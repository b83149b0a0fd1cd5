//! Target ownership kept in a ConfigMap: one ConfigMap per owner, one key per target
//! group, each value the owned targets (`id:port`, space-separated). Every update is a
//! compare-and-swap on the ConfigMap's `resourceVersion`, retried on conflict under
//! berth-core's one [`CasPolicy`] (the ledger's ownership rows use the same), so
//! concurrent writers (several DaemonSet pods, an old and a new leader) never lose
//! each other's claims.
//!
//! A store can adopt the records of earlier owner ids ([`ConfigMapOwnership::adopting`],
//! the same mechanism as berth-core's `DnsNames::adopting`): they are read as its own,
//! and moved under its owner at the next write ([`ConfigMapOwnership::adopt`] does it at
//! once), so an upgrade that changes the owner id neither orphans nor wrongly removes
//! anything.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use berth_core::domain::{Owner, Target, TargetGroupArn};
use berth_core::provider::{CasPolicy, OwnedTargets, Swap, TargetOwnership};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams, Preconditions};
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
    /// The ConfigMap is named after its owner ([`ConfigMapOwnership::new`]), so an
    /// earlier owner's records are in its own ConfigMap.
    named_by_owner: bool,
    /// Earlier owners whose records are this owner's.
    adopted: Vec<Adopted>,
    /// Extra labels and annotations of a ConfigMap this store creates.
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    /// Delete the ConfigMap once its last target is released (one per sidecar pod:
    /// an empty one would be left behind by every pod).
    delete_when_empty: bool,
}

/// An earlier owner, and the ConfigMap holding its records.
#[derive(Debug, Clone)]
struct Adopted {
    owner: Owner,
    name: String,
}

impl ConfigMapOwnership {
    /// Ownership of `owner` in namespace `namespace`, in the ConfigMap named by
    /// [`ConfigMapOwnership::config_map_name`].
    pub fn new(client: Client, namespace: &str, owner: Owner) -> Self {
        let name = Self::config_map_name(&owner);
        let mut store = Self::with_name(client, namespace, &name, owner);
        store.named_by_owner = true;
        store
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
            named_by_owner: false,
            adopted: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            delete_when_empty: false,
        }
    }

    /// Extra labels and annotations on the ConfigMap when this store creates it (e.g.
    /// the identity of the pod whose registrations it records).
    pub fn labelled(
        mut self,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) -> Self {
        self.labels = labels;
        self.annotations = annotations;
        self
    }

    /// Deletes the ConfigMap (if unchanged since read) once it records no target
    /// (RBAC: `delete` on `configmaps` too).
    pub fn deleting_when_empty(mut self) -> Self {
        self.delete_when_empty = true;
        self
    }

    /// Deletes the ConfigMap if it records no target (and is unchanged since read);
    /// returns whether it is gone now.
    pub async fn delete_if_empty(&self) -> Result<bool, Error> {
        let Some(map) = self.read().await? else {
            return Ok(true);
        };
        if map.data.as_ref().is_some_and(|d| !d.is_empty()) {
            return Ok(false);
        }
        self.delete(&map).await.map(|()| true)
    }

    /// Deletes `map` if its resourceVersion is still the one read (409 otherwise).
    async fn delete(&self, map: &ConfigMap) -> Result<(), Error> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: map.metadata.resource_version.clone(),
                uid: map.metadata.uid.clone(),
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&self.name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(Error::kube(self.operation("delete"), e)),
        }
    }

    /// Adopts the records of `previous` owners (the owner ids of earlier releases): read
    /// as this owner's, and moved under it at the next write. Each is looked for where
    /// this store would have kept it: its own ConfigMap
    /// ([`ConfigMapOwnership::config_map_name`]) for a store made with
    /// [`ConfigMapOwnership::new`], this store's ConfigMap (then annotated with the
    /// previous owner) for one made with [`ConfigMapOwnership::with_name`].
    pub fn adopting(mut self, previous: impl IntoIterator<Item = Owner>) -> Self {
        self.adopted = previous
            .into_iter()
            .filter(|o| *o != self.owner)
            .map(|owner| Adopted {
                name: if self.named_by_owner {
                    Self::config_map_name(&owner)
                } else {
                    self.name.clone()
                },
                owner,
            })
            .collect();
        self
    }

    /// Moves every adopted record under this owner now (one write, then the earlier
    /// owners' ConfigMaps are deleted). Returns whether there was anything to move.
    pub async fn adopt(&self) -> Result<bool, Error> {
        self.update(None, |_| {}).await
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
            let ours = owner.is_some_and(|o| {
                o == self.owner.as_str()
                    || self
                        .adopted
                        .iter()
                        .any(|a| a.name == self.name && a.owner.as_str() == o)
            });
            if !ours {
                return Err(Error::Invalid(format!(
                    "ConfigMap {}/{} belongs to owner {:?}, not {}",
                    self.namespace, self.name, owner, self.owner
                )));
            }
        }
        Ok(map)
    }

    /// The earlier owners' ConfigMaps that still exist (those kept apart from this
    /// store's), each checked to belong to its owner.
    async fn read_adopted(&self) -> Result<Vec<ConfigMap>, Error> {
        let mut maps = Vec::new();
        for adopted in self.adopted.iter().filter(|a| a.name != self.name) {
            let operation = || format!("get ConfigMap {}/{}", self.namespace, adopted.name);
            let Some(map) = self
                .api
                .get_opt(&adopted.name)
                .await
                .map_err(|e| Error::kube(operation(), e))?
            else {
                continue;
            };
            if owner_of(&map) != Some(adopted.owner.as_str()) {
                return Err(Error::Invalid(format!(
                    "ConfigMap {}/{} belongs to owner {:?}, not {}",
                    self.namespace,
                    adopted.name,
                    owner_of(&map),
                    adopted.owner
                )));
            }
            maps.push(map);
        }
        Ok(maps)
    }

    /// Deletes an earlier owner's ConfigMap once its records are in this store's, if it
    /// did not change meanwhile. A failure is only logged: the records are then in both,
    /// which reads the same, and the next write tries again.
    async fn retire(&self, map: &ConfigMap) {
        let name = map.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: map.metadata.resource_version.clone(),
                uid: map.metadata.uid.clone(),
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&name, &params).await {
            Ok(_) => tracing::info!(
                config_map = %name,
                owner = %self.owner,
                "adopted an earlier owner's target ownership records"
            ),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => tracing::warn!(
                config_map = %name,
                error = %e,
                "could not delete an adopted ownership ConfigMap; retried at the next write"
            ),
        }
    }

    /// Read-modify-write of one group's key (none: only adoption), retried when
    /// another writer got there first; the records of adopted owners are folded in.
    /// Returns whether anything was written.
    async fn update(
        &self,
        group: Option<&TargetGroupArn>,
        edit: impl Fn(&mut BTreeSet<Target>),
    ) -> Result<bool, Error> {
        let key = group.map(encode_group);
        let done = self
            .cas
            .run(|| async {
                let current = self.read().await?;
                let elsewhere = self.read_adopted().await?;
                let mut data = current
                    .as_ref()
                    .and_then(|m| m.data.clone())
                    .unwrap_or_default();
                let mut changed = false;
                for map in &elsewhere {
                    for (k, text) in map.data.iter().flatten() {
                        changed |= edit_key(&mut data, k, |set| {
                            set.extend(decode_targets(text)?);
                            Ok(())
                        })?;
                    }
                }
                if let Some(key) = &key {
                    changed |= edit_key(&mut data, key, |set| {
                        edit(set);
                        Ok(())
                    })?;
                }
                let adopted_here = current
                    .as_ref()
                    .is_some_and(|m| owner_of(m) != Some(self.owner.as_str()));
                if !changed && !adopted_here {
                    for map in &elsewhere {
                        self.retire(map).await;
                    }
                    return Ok(Swap::Done(!elsewhere.is_empty()));
                }
                let result = match current {
                    Some(map) if self.delete_when_empty && data.is_empty() => {
                        self.delete(&map).await
                    }
                    None if self.delete_when_empty && data.is_empty() => Ok(()),
                    None => {
                        let mut map = self.empty_map();
                        map.data = Some(data);
                        self.api
                            .create(&PostParams::default(), &map)
                            .await
                            .map(drop)
                            .map_err(|e| Error::kube(self.operation("create"), e))
                    }
                    Some(mut map) => {
                        map.data = Some(data);
                        map.metadata
                            .annotations
                            .get_or_insert_with(BTreeMap::new)
                            .insert(OWNER_ANNOTATION.to_owned(), self.owner.as_str().to_owned());
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
                    Ok(()) => {
                        for map in &elsewhere {
                            self.retire(map).await;
                        }
                        Ok(Swap::Done(true))
                    }
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
        let mut labels = self.labels.clone();
        labels.insert(MANAGED_BY_LABEL.0.to_owned(), MANAGED_BY_LABEL.1.to_owned());
        let mut annotations = self.annotations.clone();
        annotations.insert(OWNER_ANNOTATION.to_owned(), self.owner.as_str().to_owned());
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
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
        let maps = self
            .read()
            .await?
            .into_iter()
            .chain(self.read_adopted().await?);
        for map in maps {
            for (key, text) in map.data.unwrap_or_default() {
                let group = decode_group(&key)?;
                let targets = decode_targets(&text)?;
                if !targets.is_empty() {
                    owned.entry(group).or_default().extend(targets);
                }
            }
        }
        Ok(owned)
    }

    async fn claim(&self, group: &TargetGroupArn, targets: &[Target]) -> berth_core::Result<()> {
        self.update(Some(group), |set| set.extend(targets.iter().cloned()))
            .await?;
        Ok(())
    }

    async fn release(&self, group: &TargetGroupArn, targets: &[Target]) -> berth_core::Result<()> {
        self.update(Some(group), |set| {
            for t in targets {
                set.remove(t);
            }
        })
        .await?;
        Ok(())
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

/// The owner a ConfigMap is annotated with.
fn owner_of(map: &ConfigMap) -> Option<&str> {
    map.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(OWNER_ANNOTATION))
        .map(String::as_str)
}

/// Edits the targets under `key` in `data` (an emptied key is removed); returns whether
/// they changed.
fn edit_key(
    data: &mut BTreeMap<String, String>,
    key: &str,
    edit: impl FnOnce(&mut BTreeSet<Target>) -> Result<(), Error>,
) -> Result<bool, Error> {
    let before = match data.get(key) {
        Some(text) => decode_targets(text)?,
        None => BTreeSet::new(),
    };
    let mut targets = before.clone();
    edit(&mut targets)?;
    if targets == before {
        return Ok(false);
    }
    if targets.is_empty() {
        data.remove(key);
    } else {
        data.insert(
            key.to_owned(),
            berth_core::provider::encode_targets(&targets),
        );
    }
    Ok(true)
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
