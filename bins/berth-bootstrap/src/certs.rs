//! The certificates module: the CA certificate under `ca_path`, the node certificate
//! and key (FQDN, hostname and private IP as SANs) under `certificates_path`.

use crate::config::CertificateSettings;
use crate::context::TlsFiles;
use crate::identity::Aws;
use crate::run::NodeNames;
use crate::summary::ModuleReport;

/// What the module does with a certificate that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The default run: issue what is missing, invalid or for other names; leave a
    /// valid certificate alone.
    Ensure,
    /// `renew-certs`: also replace a certificate that is due, then run the reload
    /// command.
    Renew,
}

/// Installs the CA certificate and the node certificate. Returns the report and,
/// when the node certificate is managed, where its files are.
pub async fn apply(
    settings: &CertificateSettings,
    aws: &Aws,
    names: &NodeNames,
    mode: Mode,
    dry_run: bool,
) -> anyhow::Result<(ModuleReport, Option<TlsFiles>)> {
    let _ = (aws, names, mode, dry_run);
    Err(anyhow::anyhow!(
        "certificate issuance lands in the next change ({:?}); run with --skip-certificates",
        settings.authority()
    ))
}
