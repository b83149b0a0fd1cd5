//! The systemd drop-in that tells etcd who it is and which cluster it starts in.

use std::fmt;

use super::{EtcdSettings, NodeIdentity};

/// Certificate files for https client and peer URLs (the node certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// The node certificate (PEM).
    pub cert_file: String,
    /// Its private key (PEM). Only the path is ever printed.
    pub key_file: String,
    /// The CA that signed every member's certificate (PEM).
    pub trusted_ca_file: String,
}

/// `ETCD_INITIAL_CLUSTER_STATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialClusterState {
    /// A cluster bootstrapped by the members of `ETCD_INITIAL_CLUSTER` together.
    New,
    /// Joining (or restarting in) a cluster that exists.
    Existing,
}

impl InitialClusterState {
    /// etcd's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InitialClusterState::New => "new",
            InitialClusterState::Existing => "existing",
        }
    }
}

/// The drop-in's `Environment=` variables, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DropIn {
    /// `(name, value)` pairs.
    pub environment: Vec<(String, String)>,
}

impl DropIn {
    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.environment
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for DropIn {
    /// The file: a `[Service]` section of quoted `Environment=` lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "# Written by berth-bootstrap: etcd membership of this node."
        )?;
        writeln!(f, "[Service]")?;
        for (name, value) in &self.environment {
            // Values are URLs, names and paths; systemd unquotes "..." and \ escapes.
            let value = value.replace('\\', "\\\\").replace('"', "\\\"");
            writeln!(f, "Environment=\"{name}={value}\"")?;
        }
        Ok(())
    }
}

/// Renders the drop-in for this node. `initial_cluster` is `(name, peer URL)` pairs;
/// this node is added if missing and a member without a name (added, never started)
/// keeps an empty name, as etcdctl prints it. Sorted, so a rerun renders the same
/// bytes and the file is not rewritten. Pure.
pub fn render_drop_in(
    settings: &EtcdSettings,
    me: &NodeIdentity,
    initial_cluster: &[(String, String)],
    state: InitialClusterState,
) -> DropIn {
    let name = me.instance_id.to_string();
    let peer_url = settings.peer_url(me.private_ip);
    let client_url = settings.client_url(me.private_ip);
    let mut cluster: Vec<(String, String)> = initial_cluster
        .iter()
        .filter(|(n, u)| n != &name && u != &peer_url)
        .cloned()
        .collect();
    cluster.push((name.clone(), peer_url.clone()));
    cluster.sort();
    cluster.dedup();
    let initial: Vec<String> = cluster.iter().map(|(n, u)| format!("{n}={u}")).collect();
    let mut environment = vec![
        ("ETCD_NAME".to_owned(), name),
        ("ETCD_INITIAL_CLUSTER".to_owned(), initial.join(",")),
        (
            "ETCD_INITIAL_CLUSTER_STATE".to_owned(),
            state.as_str().to_owned(),
        ),
        (
            "ETCD_INITIAL_CLUSTER_TOKEN".to_owned(),
            settings.cluster_token.clone(),
        ),
        (
            "ETCD_INITIAL_ADVERTISE_PEER_URLS".to_owned(),
            peer_url.clone(),
        ),
        ("ETCD_LISTEN_PEER_URLS".to_owned(), peer_url),
        ("ETCD_ADVERTISE_CLIENT_URLS".to_owned(), client_url.clone()),
        ("ETCD_LISTEN_CLIENT_URLS".to_owned(), client_url),
    ];
    if let Some(tls) = &settings.tls {
        if settings.client_scheme == "https" {
            environment.extend([
                ("ETCD_CERT_FILE".to_owned(), tls.cert_file.clone()),
                ("ETCD_KEY_FILE".to_owned(), tls.key_file.clone()),
                (
                    "ETCD_TRUSTED_CA_FILE".to_owned(),
                    tls.trusted_ca_file.clone(),
                ),
                ("ETCD_CLIENT_CERT_AUTH".to_owned(), "true".to_owned()),
            ]);
        }
        if settings.peer_scheme == "https" {
            environment.extend([
                ("ETCD_PEER_CERT_FILE".to_owned(), tls.cert_file.clone()),
                ("ETCD_PEER_KEY_FILE".to_owned(), tls.key_file.clone()),
                (
                    "ETCD_PEER_TRUSTED_CA_FILE".to_owned(),
                    tls.trusted_ca_file.clone(),
                ),
                ("ETCD_PEER_CLIENT_CERT_AUTH".to_owned(), "true".to_owned()),
            ]);
        }
    }
    DropIn { environment }
}
