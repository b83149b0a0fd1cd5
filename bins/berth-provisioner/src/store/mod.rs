//! Runs, cluster specs, locks and logs as Kubernetes objects in the API's namespace:
//! - a run is a ConfigMap named by its id (its record, which outlives the Job) and a
//!   Job of the same name (its execution);
//! - a cluster's spec is the ConfigMap `berth-cluster-<name>`;
//! - a cluster's lock is the Lease `berth-lock-<name>`, naming the run that holds it;
//! - a run's log is a series of ConfigMaps `<run>-log-<seq>` the runner writes;
//! - Terraform's state is its `kubernetes` backend's Secret `tfstate-default-<suffix>`.

mod job;
mod lock;
mod logs;
mod run;
mod state;

pub(crate) use run::{ErroredState, Run};

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_core::plan::runs::{
    job_outcome, run_state, JobOutcome, Operation, RunObservation, RunState, RunnerPhase,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use crate::config::ServerConfig;
use crate::metrics::ProvisionerMetrics;
use crate::validate::ClusterSpec;

pub(crate) const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub(crate) const MANAGER: &str = "berth-provisioner";
pub(crate) const CLUSTER: &str = "berth.dev/cluster";
pub(crate) const OPERATION: &str = "berth.dev/operation";
pub(crate) const RUN: &str = "berth.dev/run";
pub(crate) const OBJECT: &str = "berth.dev/object";
pub(crate) const IDEMPOTENCY: &str = "berth.dev/idempotency-key";

/// What can go wrong with a run request.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// The cluster is held by this live run.
    Held(String),
    /// No such run or cluster.
    NotFound(String),
    /// The request conflicts with the current state.
    Conflict(String),
    /// Kubernetes failed.
    Kube(kube::Error),
}

impl From<kube::Error> for StoreError {
    fn from(e: kube::Error) -> Self {
        StoreError::Kube(e)
    }
}

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

/// The Kubernetes side of the API.
#[derive(Clone)]
pub(crate) struct Store {
    client: kube::Client,
    namespace: String,
    config: Arc<ServerConfig>,
    metrics: ProvisionerMetrics,
}

impl Store {
    pub(crate) fn new(
        client: kube::Client,
        namespace: String,
        config: Arc<ServerConfig>,
        metrics: ProvisionerMetrics,
    ) -> Self {
        Store {
            client,
            namespace,
            config,
            metrics,
        }
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub(crate) fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Starts a run: checks the idempotency key, takes the cluster's lock, writes the
    /// run's record, creates its Job. `Ok((run, false))` when the key named an existing run.
    pub(crate) async fn start(
        &self,
        cluster: &str,
        operation: Operation,
        spec: &ClusterSpec,
        idempotency_key: Option<&str>,
    ) -> Result<(Run, bool)> {
        let key_label = idempotency_key.map(key_digest);
        if let Some(label) = &key_label {
            let selector = format!("{CLUSTER}={cluster},{OBJECT}=run,{IDEMPOTENCY}={label}");
            if let Some(run) = self.runs_matching(&selector).await?.into_iter().next() {
                return Ok((run, false));
            }
        }
        let id = new_run_id();
        self.acquire_lock(cluster, &id).await?;
        let created_at = now_rfc3339();
        let record = self.run_record(&id, cluster, operation, spec, &created_at, key_label);
        let created = async {
            self.api::<ConfigMap>()
                .create(&PostParams::default(), &record)
                .await?;
            let job = job::manifest(&self.config, &self.namespace, &id, cluster, operation, spec);
            self.api::<Job>().create(&PostParams::default(), &job).await
        }
        .await;
        if let Err(e) = created {
            // Nothing runs: give the cluster back and drop the half-made run.
            self.release_lock(cluster, &id).await;
            let _ = self
                .api::<ConfigMap>()
                .delete(&id, &Default::default())
                .await;
            return Err(e.into());
        }
        tracing::info!(run = %id, cluster, operation = %operation, "run started");
        self.metrics.run_started(operation);
        let run = Run {
            id,
            cluster: cluster.to_owned(),
            operation,
            spec: spec.clone(),
            created_at,
            state: RunState::Pending,
            cancel_requested: false,
            resources: None,
            errored_state: None,
        };
        Ok((run, true))
    }

    fn run_record(
        &self,
        id: &str,
        cluster: &str,
        operation: Operation,
        spec: &ClusterSpec,
        created_at: &str,
        key_label: Option<String>,
    ) -> ConfigMap {
        let mut labels = run_labels(id, cluster, operation);
        labels.insert(OBJECT.into(), "run".into());
        if let Some(label) = key_label {
            labels.insert(IDEMPOTENCY.into(), label);
        }
        let mut data = spec_data(spec);
        data.extend([
            ("cluster".to_owned(), cluster.to_owned()),
            ("operation".to_owned(), operation.as_str().to_owned()),
            ("created_at".to_owned(), created_at.to_owned()),
        ]);
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(id.to_owned()),
                labels: Some(labels),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }
    }

    /// A run by id. An id that cannot name a ConfigMap is no run (and never reaches
    /// the Kubernetes client, which refuses to build such a URL: a 502 before).
    pub(crate) async fn run(&self, id: &str) -> Result<Run> {
        if !is_object_name(id) {
            return Err(StoreError::NotFound(format!("run {id:?} not found")));
        }
        let record = self
            .api::<ConfigMap>()
            .get_opt(id)
            .await?
            .filter(|cm| label(cm, OBJECT) == Some("run"))
            .ok_or_else(|| StoreError::NotFound(format!("run {id} not found")))?;
        self.observe(record).await
    }

    /// A cluster's runs, newest first (by creation time, then id: ids grow with time).
    pub(crate) async fn runs_of(&self, cluster: &str) -> Result<Vec<Run>> {
        self.runs_matching(&format!("{CLUSTER}={cluster},{OBJECT}=run"))
            .await
    }

    async fn runs_matching(&self, selector: &str) -> Result<Vec<Run>> {
        let mut records = self
            .api::<ConfigMap>()
            .list(&ListParams::default().labels(selector))
            .await?
            .items;
        records.sort_by(|a, b| {
            let key = |cm: &ConfigMap| (data(cm, "created_at").to_owned(), name(cm).to_owned());
            key(b).cmp(&key(a))
        });
        let mut runs = Vec::with_capacity(records.len());
        for record in records {
            runs.push(self.observe(record).await?);
        }
        Ok(runs)
    }

    async fn observe(&self, record: ConfigMap) -> Result<Run> {
        let id = name(&record).to_owned();
        let operation = Operation::parse(data(&record, "operation"))
            .ok_or_else(|| StoreError::NotFound(format!("run {id} has no operation")))?;
        let job = self.job_outcome(&id).await?;
        let cancel_requested = !data(&record, "cancel").is_empty();
        let state = run_state(&RunObservation {
            operation,
            job,
            runner: RunnerPhase::parse(data(&record, "phase")),
            cancel_requested,
        });
        Ok(Run {
            cluster: data(&record, "cluster").to_owned(),
            operation,
            spec: spec_of(&record),
            created_at: data(&record, "created_at").to_owned(),
            state,
            cancel_requested,
            resources: data(&record, "resources").parse().ok(),
            errored_state: ErroredState::parse(data(&record, "errored_state")),
            id,
        })
    }

    /// The outcome of a run's Job; `None` when there is no such Job.
    async fn job_outcome(&self, id: &str) -> Result<Option<JobOutcome>> {
        let job = self.api::<Job>().get_opt(id).await?;
        Ok(job.map(|job| {
            let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
            job_outcome(
                conditions
                    .iter()
                    .map(|c| (c.type_.as_str(), c.status.as_str()))
                    .collect::<Vec<_>>(),
            )
        }))
    }

    /// Asks a live run to stop: the runner sees the request and sends terraform
    /// SIGINT, which lets it finish writing its state.
    pub(crate) async fn cancel(&self, id: &str) -> Result<Run> {
        let run = self.run(id).await?;
        if run.state.is_final() {
            return Err(StoreError::Conflict(format!(
                "run {id} has already ended ({})",
                run.state
            )));
        }
        let patch = json!({"data": {"cancel": now_rfc3339()}});
        self.api::<ConfigMap>()
            .patch(id, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.shorten_deadline(id).await?;
        tracing::info!(run = %id, "cancel requested");
        self.run(id).await
    }

    /// Bounds a canceled run: its Job's `activeDeadlineSeconds` becomes its age plus
    /// the cancel grace (never longer than it was), so the Job controller ends a run
    /// whose terraform ignored the SIGINT, even if this API restarts meanwhile.
    async fn shorten_deadline(&self, id: &str) -> Result<()> {
        let Some(job) = self.api::<Job>().get_opt(id).await? else {
            return Ok(());
        };
        let started = job
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .or(job.metadata.creation_timestamp.as_ref())
            .map(|t| t.0);
        let age = started
            .map(|t| {
                k8s_openapi::jiff::Timestamp::now()
                    .duration_since(t)
                    .as_secs()
            })
            .unwrap_or(0)
            .max(0);
        let current = job.spec.as_ref().and_then(|s| s.active_deadline_seconds);
        let deadline = age + self.config.runner.cancel_grace_seconds;
        if current.is_none_or(|c| deadline < c) {
            let patch = json!({"spec": {"activeDeadlineSeconds": deadline}});
            self.api::<Job>()
                .patch(id, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Ok(())
    }

    /// Stores a cluster's desired spec.
    pub(crate) async fn put_spec(&self, cluster: &str, spec: &ClusterSpec) -> Result<()> {
        let name = spec_name(cluster);
        let object = ConfigMap {
            metadata: owned_meta(&name, cluster, "cluster"),
            data: Some(spec_data(spec)),
            ..Default::default()
        };
        let api = self.api::<ConfigMap>();
        match api.get_opt(&name).await? {
            None => {
                api.create(&PostParams::default(), &object).await?;
            }
            Some(current) => {
                let mut object = object;
                object.metadata.resource_version = current.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &object).await?;
            }
        }
        Ok(())
    }

    /// A cluster's desired spec, if one was stored.
    pub(crate) async fn spec(&self, cluster: &str) -> Result<Option<ClusterSpec>> {
        let cm = self.api::<ConfigMap>().get_opt(&spec_name(cluster)).await?;
        Ok(cm.map(|cm| spec_of(&cm)))
    }

    /// Cluster names with a stored spec, sorted, after `after`, at most `limit`; and
    /// whether more follow.
    pub(crate) async fn clusters(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, ClusterSpec)>, bool)> {
        let mut specs: Vec<(String, ClusterSpec)> = self
            .api::<ConfigMap>()
            .list(&ListParams::default().labels(&format!("{OBJECT}=cluster")))
            .await?
            .items
            .iter()
            .filter_map(|cm| Some((label(cm, CLUSTER)?.to_owned(), spec_of(cm))))
            .filter(|(n, _)| after.is_none_or(|a| n.as_str() > a))
            .collect();
        specs.sort_by(|a, b| a.0.cmp(&b.0));
        let more = specs.len() > limit;
        specs.truncate(limit);
        Ok((specs, more))
    }
}

fn spec_name(cluster: &str) -> String {
    format!("berth-cluster-{cluster}")
}

/// Metadata of an object the API keeps for `cluster`: its name and the labels
/// `managed-by`, `cluster` and `object` (`cluster`, `lock`).
fn owned_meta(name: &str, cluster: &str, object: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(BTreeMap::from([
            (MANAGED_BY.to_owned(), MANAGER.to_owned()),
            (CLUSTER.to_owned(), cluster.to_owned()),
            (OBJECT.to_owned(), object.to_owned()),
        ])),
        ..Default::default()
    }
}

/// A spec as ConfigMap data (a cluster's spec, a run's record); [`spec_of`] reads it.
fn spec_data(spec: &ClusterSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "kubernetes_version".to_owned(),
            spec.kubernetes_version.clone(),
        ),
        ("instance_type".to_owned(), spec.instance_type.clone()),
        ("ip_family".to_owned(), spec.ip_family.clone()),
    ])
}

fn spec_of(cm: &ConfigMap) -> ClusterSpec {
    ClusterSpec {
        kubernetes_version: data(cm, "kubernetes_version").to_owned(),
        instance_type: data(cm, "instance_type").to_owned(),
        ip_family: data(cm, "ip_family").to_owned(),
    }
}

pub(crate) fn run_labels(
    id: &str,
    cluster: &str,
    operation: Operation,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGER.to_owned()),
        (CLUSTER.to_owned(), cluster.to_owned()),
        (OPERATION.to_owned(), operation.as_str().to_owned()),
        (RUN.to_owned(), id.to_owned()),
    ])
}

fn name(cm: &ConfigMap) -> &str {
    cm.metadata.name.as_deref().unwrap_or_default()
}

fn label<'a>(cm: &'a ConfigMap, key: &str) -> Option<&'a str> {
    cm.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn data<'a>(cm: &'a ConfigMap, key: &str) -> &'a str {
    cm.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(String::as_str)
        .unwrap_or_default()
}

/// A run id: `run-` + milliseconds since the epoch in base 36 (ids sort by creation)
/// + 4 random hex digits. 17 characters: a valid Job and label value.
fn new_run_id() -> String {
    let millis = k8s_openapi::jiff::Timestamp::now().as_millisecond().max(0) as u64;
    let mut digits = Vec::new();
    let mut n = millis;
    while n > 0 {
        let d = (n % 36) as u8;
        digits.push(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        n /= 36;
    }
    digits.reverse();
    format!(
        "run-{}-{:04x}",
        String::from_utf8_lossy(&digits),
        fastrand::u16(..)
    )
}

/// An idempotency key as a label value: the first 40 hex digits of its SHA-256.
fn key_digest(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

/// Now, RFC 3339 with milliseconds.
pub(crate) fn now_rfc3339() -> String {
    // Always three digits, so the strings sort as the times do.
    format!("{:.3}", k8s_openapi::jiff::Timestamp::now())
}

/// A Kubernetes object name (a DNS subdomain): 1-253 lowercase letters, digits, '-'
/// and '.', starting and ending with a letter or digit.
fn is_object_name(id: &str) -> bool {
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=253).contains(&id.len())
        && id
            .bytes()
            .all(|b| alphanumeric(b) || b == b'-' || b == b'.')
        && id.bytes().next().is_some_and(alphanumeric)
        && id.bytes().last().is_some_and(alphanumeric)
}
