//! The certificates module: the CA certificate under `ca_path`, the node certificate
//! and key (FQDN, hostname and private IP as SANs) under `certificates_path`, both
//! named by common name as NodeReg did. The key is made on the node and written 0600;
//! a valid certificate for the same names that is not yet due is left alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use berth_aws::acmpca::AcmPca;
use berth_pki::{
    decide, key_matches, CertificateInfo, CertificateRequest, Decision, LocalCa, PrivateKey,
    RenewalPolicy,
};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::config::{CertificateAuthority, CertificateSettings};
use crate::context::TlsFiles;
use crate::files;
use crate::identity::Aws;
use crate::run::NodeNames;
use crate::summary::ModuleReport;

/// The longest berth waits for ACM Private CA to issue, within the run's deadline.
const MAX_ISSUE_WAIT: Duration = Duration::from_secs(300);

/// Which command runs the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The boot run: issue what is missing, invalid, for other names or due.
    Ensure,
    /// `renew-certs`: the same, then the reload command if a certificate was replaced.
    Renew,
}

/// The CA, ready to sign.
enum Signer {
    Local(Box<LocalCa>),
    AcmPca { client: AcmPca, arn: String },
}

/// Installs the CA certificate and the node certificate. Returns the report and,
/// when the node certificate is managed, where its files are.
pub async fn apply(
    settings: &CertificateSettings,
    aws: &Aws,
    names: &NodeNames,
    mode: Mode,
    dry_run: bool,
    deadline: Instant,
) -> anyhow::Result<(ModuleReport, Option<TlsFiles>)> {
    let mut report = ModuleReport::new(dry_run);
    let authority = settings
        .authority()
        .context("no CA configured (certificates.ca_cert_file + ca_key_file, or acm_pca_arn)")?;
    let (signer, ca_pem) = load_signer(&authority, aws).await?;
    let ca = CertificateInfo::from_pem("the CA certificate", ca_pem.as_bytes())?;
    let ca_name = ca
        .common_name
        .clone()
        .context("the CA certificate has no common name")?;
    let ca_file = settings
        .ca_path
        .join(format!("{}.pem", file_stem(&ca_name)));
    install_public(
        &mut report,
        &ca_file,
        &ca_pem,
        "the CA certificate",
        dry_run,
    )?;
    report.detail("ca_file", &ca_file);

    if !settings.node_certificate {
        return Ok((report, None));
    }
    let files = node_files(settings, &names.fqdn, ca_file);
    let request = CertificateRequest {
        common_name: names.fqdn.clone(),
        dns_names: vec![names.fqdn.clone(), names.hostname.clone()],
        ip_addresses: vec![names.private_ip],
        validity: Duration::from_secs(u64::from(settings.validity_days) * 86_400),
    };
    let existing = read_existing(&files)?;
    let now = OffsetDateTime::now_utc();
    let decision = decide(
        existing.as_ref().map(|(cert, _)| cert),
        existing.as_ref().is_some_and(|(_, matches)| *matches),
        &request,
        &ca.subject_der,
        RenewalPolicy {
            renew_at_percent: settings.renew_at_percent,
        },
        now,
    );
    report.detail("certificate_file", &files.cert_file);
    report.detail("key_file", &files.key_file);
    let reason = match decision {
        Decision::Keep { due_at } => {
            report.detail("due_at", due_at.unix_timestamp());
            tracing::info!(
                certificate = %files.cert_file.display(),
                "the node certificate is valid and not due; left alone"
            );
            return Ok((report, Some(files)));
        }
        Decision::Issue { reason } => reason,
    };
    report.change(format!(
        "issue the node certificate {} for {} ({reason})",
        files.cert_file.display(),
        describe(&request)
    ));
    if dry_run {
        return Ok((report, Some(files)));
    }
    let key = PrivateKey::generate()?;
    let certificate = match &signer {
        Signer::Local(ca) => ca.sign(&request, &key, now)?,
        Signer::AcmPca { client, arn } => {
            let csr = request.csr_pem(&key)?;
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(MAX_ISSUE_WAIT);
            let token: String = std::iter::repeat_with(fastrand::alphanumeric)
                .take(32)
                .collect();
            let issued = client
                .issue(arn, &csr, settings.validity_days, &token, wait)
                .await
                .with_context(|| {
                    format!("ACM Private CA {arn} issuing for {}", request.common_name)
                })?;
            report.detail("certificate_arn", &issued.arn);
            format!("{}{}", issued.certificate_pem, issued.chain_pem)
        }
    };
    // Key first: a crash between the two writes leaves a key that does not match the
    // certificate, which the next run notices and replaces.
    files::write_atomic(&files.key_file, key.to_pem().as_bytes(), files::PRIVATE)
        .with_context(|| format!("writing {}", files.key_file.display()))?;
    files::write_atomic(&files.cert_file, certificate.as_bytes(), files::PUBLIC)
        .with_context(|| format!("writing {}", files.cert_file.display()))?;
    if mode == Mode::Renew {
        if let Some(command) = &settings.reload_command {
            report.change(format!("run the reload command {command:?}"));
            reload(command).await?;
        }
    }
    Ok((report, Some(files)))
}

/// Where the module keeps the node's TLS files, without issuing anything: for the
/// etcd drop-in when the certificates module does not run in this run.
pub async fn locate(
    settings: &CertificateSettings,
    aws: &Aws,
    names: &NodeNames,
) -> anyhow::Result<TlsFiles> {
    let authority = settings
        .authority()
        .context("no CA configured (certificates.ca_cert_file + ca_key_file, or acm_pca_arn)")?;
    let (_, ca_pem) = load_signer(&authority, aws).await?;
    let ca = CertificateInfo::from_pem("the CA certificate", ca_pem.as_bytes())?;
    let ca_name = ca
        .common_name
        .context("the CA certificate has no common name")?;
    let ca_file = settings
        .ca_path
        .join(format!("{}.pem", file_stem(&ca_name)));
    Ok(node_files(settings, &names.fqdn, ca_file))
}

/// The node's TLS files as the module names them (for the etcd drop-in).
pub fn node_files(settings: &CertificateSettings, fqdn: &str, ca_file: PathBuf) -> TlsFiles {
    let stem = file_stem(fqdn);
    TlsFiles {
        ca_file,
        cert_file: settings.certificates_path.join(format!("{stem}.pem")),
        key_file: settings.certificates_path.join(format!("{stem}-key.pem")),
    }
}

async fn load_signer(
    authority: &CertificateAuthority,
    aws: &Aws,
) -> anyhow::Result<(Signer, String)> {
    match authority {
        CertificateAuthority::Local {
            cert_file,
            key_file,
        } => {
            let cert = std::fs::read_to_string(cert_file)
                .with_context(|| format!("reading the CA certificate {}", cert_file.display()))?;
            let key = std::fs::read_to_string(key_file)
                .with_context(|| format!("reading the CA key {}", key_file.display()))?;
            let what = format!("{} + {}", cert_file.display(), key_file.display());
            let ca = LocalCa::from_pem(&what, &cert, &key)?;
            Ok((Signer::Local(Box::new(ca)), cert))
        }
        CertificateAuthority::AcmPca { arn } => {
            let client = AcmPca::new(&aws.sdk, aws.counter.clone());
            let pem = client
                .ca_certificate(arn)
                .await
                .with_context(|| format!("reading the certificate of ACM Private CA {arn}"))?;
            Ok((
                Signer::AcmPca {
                    client,
                    arn: arn.clone(),
                },
                pem,
            ))
        }
    }
}

/// The existing certificate and whether the key file holds its key.
fn read_existing(files: &TlsFiles) -> anyhow::Result<Option<(CertificateInfo, bool)>> {
    let Some(cert) = files::read_if_exists(&files.cert_file)
        .with_context(|| format!("reading {}", files.cert_file.display()))?
    else {
        return Ok(None);
    };
    let Ok(info) = CertificateInfo::from_pem(&files.cert_file.display().to_string(), &cert) else {
        tracing::warn!(file = %files.cert_file.display(), "unreadable certificate; replacing it");
        return Ok(None);
    };
    let key = files::read_if_exists(&files.key_file)
        .with_context(|| format!("reading {}", files.key_file.display()))?;
    let matches = key
        .and_then(|k| String::from_utf8(k).ok())
        .and_then(|k| PrivateKey::from_pem(&files.key_file.display().to_string(), &k).ok())
        .is_some_and(|k| key_matches(&k, &info));
    Ok(Some((info, matches)))
}

fn install_public(
    report: &mut ModuleReport,
    path: &Path,
    contents: &str,
    what: &str,
    dry_run: bool,
) -> anyhow::Result<()> {
    let current =
        files::read_if_exists(path).with_context(|| format!("reading {}", path.display()))?;
    if current.as_deref() == Some(contents.as_bytes()) {
        return Ok(());
    }
    report.change(format!("install {what} as {}", path.display()));
    if !dry_run {
        files::write_atomic(path, contents.as_bytes(), files::PUBLIC)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn reload(command: &[String]) -> anyhow::Result<()> {
    let (program, args) = command.split_first().context("empty reload command")?;
    let status = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .with_context(|| format!("starting the reload command {program}"))?;
    if !status.success() {
        bail!("the reload command {command:?} failed: {status}");
    }
    Ok(())
}

fn describe(request: &CertificateRequest) -> String {
    request
        .dns_names
        .iter()
        .cloned()
        .chain(request.ip_addresses.iter().map(ToString::to_string))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A common name as a file name: path separators and odd characters become `_`.
fn file_stem(common_name: &str) -> String {
    common_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
