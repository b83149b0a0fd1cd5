//! berth-etcd: berth-core's [`EtcdMembership`] over the `etcd-client` crate (etcd v3
//! gRPC API, tested against etcd 3.4).
//!
//! Each call reaches members one client URL at a time, with a connect timeout and a
//! request timeout, so that one dead member never stalls a call that another member
//! could answer. "Healthy" means a linearizable range read succeeded (on etcd 3.4
//! `MemberList` is answered from the member's local state and proves nothing).
//! https client URLs are reached with rustls (aws-lc-rs) and the node certificate
//! when [`EtcdTlsConfig`] is given. Adapters hold no policy: the membership rules
//! live in berth-core's `decide_etcd`.
#![warn(missing_docs)]

mod error;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use berth_core::provider::{EtcdMember, EtcdMembership, LocalView};
use berth_core::{Error, Result};
use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, Member, MemberAddOptions, TlsOptions,
};

pub use error::{from_etcd, is_unreachable};

/// The key read to prove quorum. Any key will do: the read goes through Raft's read
/// index whether the key exists or not.
const HEALTH_KEY: &str = "health";

/// The node certificate and the CA for https client URLs (PEM bytes).
#[derive(Clone)]
pub struct EtcdTlsConfig {
    /// The CA that signed the members' certificates.
    pub ca_pem: Vec<u8>,
    /// The client certificate (the node certificate), if members require one.
    pub cert_pem: Option<Vec<u8>>,
    /// Its private key. Never printed.
    pub key_pem: Option<Vec<u8>>,
}

impl fmt::Debug for EtcdTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdTlsConfig")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("client_certificate", &self.cert_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// How the adapter reaches members.
#[derive(Debug, Clone)]
pub struct EtcdClientConfig {
    /// Longest wait for a TCP (and TLS) connection to one member.
    pub connect_timeout: Duration,
    /// Longest wait for one answer. A member without quorum holds a linearizable read
    /// until this expires.
    pub request_timeout: Duration,
    /// For https client URLs.
    pub tls: Option<EtcdTlsConfig>,
}

impl Default for EtcdClientConfig {
    fn default() -> Self {
        EtcdClientConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// [`EtcdMembership`] over etcd's v3 gRPC API.
#[derive(Debug, Clone)]
pub struct EtcdAdapter {
    config: EtcdClientConfig,
}

fn member(m: &Member) -> EtcdMember {
    EtcdMember {
        id: m.id(),
        name: m.name().to_owned(),
        peer_urls: m.peer_urls().to_vec(),
        client_urls: m.client_urls().to_vec(),
        is_learner: m.is_learner(),
    }
}

fn members(list: &[Member]) -> Vec<EtcdMember> {
    list.iter().map(member).collect()
}

impl EtcdAdapter {
    /// An adapter with this configuration.
    pub fn new(config: EtcdClientConfig) -> Self {
        EtcdAdapter { config }
    }

    fn options(&self) -> ConnectOptions {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.config.connect_timeout)
            .with_timeout(self.config.request_timeout);
        if let Some(tls) = &self.config.tls {
            let mut t = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let (Some(cert), Some(key)) = (&tls.cert_pem, &tls.key_pem) {
                t = t.identity(Identity::from_pem(cert, key));
            }
            options = options.with_tls(t);
        }
        options
    }

    /// A client of exactly one member.
    async fn client(&self, endpoint: &str) -> Result<Client> {
        Client::connect([endpoint], Some(self.options()))
            .await
            .map_err(|e| from_etcd("Connect", e))
    }

    /// Runs `call` against the first endpoint that answers; the last error if none
    /// does (unreachable members are skipped, a refusal is returned at once).
    async fn first<T, F>(&self, operation: &str, endpoints: &[String], call: F) -> Result<T>
    where
        F: for<'c> Fn(
                &'c mut Client,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, etcd_client::Error>> + Send + 'c>,
            > + Send
            + Sync,
        T: Send,
    {
        let mut last = Error::Unavailable {
            operation: operation.to_owned(),
            message: "no client URL to reach the cluster through".to_owned(),
        };
        for endpoint in endpoints {
            let mut client = match self.client(endpoint).await {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let limit = self.config.connect_timeout + self.config.request_timeout;
            // Enforced here too: a balanced channel with no ready endpoint may wait.
            let Ok(answer) = tokio::time::timeout(limit, call(&mut client)).await else {
                tracing::debug!(%endpoint, "{operation}: no answer in time");
                last = Error::Timeout {
                    operation: operation.to_owned(),
                    after: limit,
                };
                continue;
            };
            match answer {
                Ok(v) => return Ok(v),
                Err(e) if is_unreachable(&e) => {
                    tracing::debug!(%endpoint, error = %e, "{operation}: member unreachable");
                    last = from_etcd(operation, e);
                }
                Err(e) => return Err(from_etcd(operation, e)),
            }
        }
        Err(last)
    }
}

#[async_trait]
impl EtcdMembership for EtcdAdapter {
    async fn local_view(&self, client_url: &str) -> Result<Option<LocalView>> {
        let result = self
            .first("Status", &[client_url.to_owned()], |c| {
                Box::pin(async move {
                    let status = c.status().await?;
                    // A learner answers Status but refuses MemberList ("rpc not
                    // supported for learner"): it still runs, with data.
                    let list = if status.is_learner() {
                        None
                    } else {
                        Some(c.member_list().await?)
                    };
                    Ok((status, list))
                })
            })
            .await;
        match result {
            Ok((status, list)) => {
                let header = status.header();
                Ok(Some(LocalView {
                    member_id: header.map_or(0, |h| h.member_id()),
                    cluster_id: header.map_or(0, |h| h.cluster_id()),
                    members: list.map_or_else(Vec::new, |l| members(l.members())),
                }))
            }
            Err(e) if e.is_retryable() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn quorum_members(&self, endpoints: &[String]) -> Result<Option<Vec<EtcdMember>>> {
        let result = self
            .first("Range", endpoints, |c| {
                Box::pin(async move {
                    // Linearizable (the default): needs the leader's read index.
                    c.get(HEALTH_KEY, Some(GetOptions::new().with_count_only()))
                        .await?;
                    c.member_list().await
                })
            })
            .await;
        match result {
            Ok(list) => Ok(Some(members(list.members()))),
            Err(e) if e.is_retryable() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn add_member(
        &self,
        endpoints: &[String],
        peer_urls: &[String],
        learner: bool,
    ) -> Result<(EtcdMember, Vec<EtcdMember>)> {
        let urls = peer_urls.to_vec();
        let response = self
            .first("MemberAdd", endpoints, move |c| {
                let urls = urls.clone();
                Box::pin(async move {
                    let options = if learner {
                        MemberAddOptions::new().with_is_learner()
                    } else {
                        MemberAddOptions::new()
                    };
                    c.member_add(urls, Some(options)).await
                })
            })
            .await
            .map_err(error::membership_change)?;
        let added = response
            .member()
            .map(member)
            .ok_or_else(|| Error::Provider {
                operation: "MemberAdd".into(),
                message: "etcd answered without the new member".into(),
                retryable: false,
            })?;
        Ok((added, members(response.member_list())))
    }

    async fn remove_member(&self, endpoints: &[String], id: u64) -> Result<()> {
        self.first("MemberRemove", endpoints, move |c| {
            Box::pin(async move { c.member_remove(id).await })
        })
        .await
        .map(drop)
    }

    async fn promote_member(&self, endpoints: &[String], id: u64) -> Result<()> {
        self.first("MemberPromote", endpoints, move |c| {
            Box::pin(async move { c.member_promote(id).await })
        })
        .await
        .map(drop)
        .map_err(error::membership_change)
    }
}
