//! The hostname module: `<tag value><glue><last N octets joined by ip glue>`, written
//! to `<root>/etc/hostname` and set as the kernel hostname.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use berth_core::domain::Tags;

use crate::config::HostnameSettings;
use crate::files;
use crate::summary::ModuleReport;

/// Why no hostname could be built. A bad-input error: exit code 2, nothing changed
/// (NodeReg wrote `none` as the hostname).
#[derive(Debug, thiserror::Error)]
pub enum HostnameError {
    /// The instance lacks the tag.
    #[error("the instance has no `{tag}` tag (hostname.tag_name): no hostname can be built")]
    MissingTag {
        /// The tag name.
        tag: String,
    },
    /// The result is not a valid RFC 1123 label.
    #[error(
        "the hostname {hostname:?} built from tag `{tag}` is not a valid RFC 1123 label: {reason}"
    )]
    Invalid {
        /// The tag name.
        tag: String,
        /// What was built.
        hostname: String,
        /// What is wrong.
        reason: String,
    },
    /// The address part needs an IPv4 address.
    #[error("the private IP {0} is not an IPv4 address")]
    NotIpv4(IpAddr),
}

/// Builds the hostname from the tags and the private IP.
pub fn build(
    settings: &HostnameSettings,
    tags: &Tags,
    private_ip: IpAddr,
) -> Result<String, HostnameError> {
    let tag = &settings.tag_name;
    let value = tags
        .get(tag)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| HostnameError::MissingTag { tag: tag.clone() })?;
    let IpAddr::V4(ip) = private_ip else {
        return Err(HostnameError::NotIpv4(private_ip));
    };
    let octets = ip.octets();
    let wanted = usize::from(settings.ip_address.octets).min(4);
    let address = octets[4 - wanted..]
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(&settings.ip_address.glue);
    let hostname = format!("{value}{}{address}", settings.glue);
    check_label(&hostname).map_err(|reason| HostnameError::Invalid {
        tag: tag.clone(),
        hostname: hostname.clone(),
        reason,
    })?;
    Ok(hostname)
}

/// RFC 1123 label as Kubernetes node names need it: 1 to 63 characters of lower-case
/// letters, digits and `-`, starting and ending with a letter or digit.
fn check_label(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!("{} characters (1 to 63 allowed)", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "{c:?} is not allowed (lower-case letters, digits and '-' only)"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("it must start and end with a letter or digit".into());
    }
    Ok(())
}

/// Writes `<root>/etc/hostname` (only if it differs) and sets the kernel hostname
/// (only if it differs and `set_kernel`), or in a dry run lists what it would do.
pub fn apply(
    settings: &HostnameSettings,
    root: &Path,
    hostname: &str,
    dry_run: bool,
) -> anyhow::Result<ModuleReport> {
    let mut report = ModuleReport::new(dry_run);
    let path: PathBuf = root.join("etc/hostname");
    let current = files::read_if_exists(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned());
    if current.as_deref() != Some(hostname) {
        report.change(format!(
            "write {}: {:?} -> {hostname:?}",
            path.display(),
            current.unwrap_or_default()
        ));
        if !dry_run {
            files::write_atomic(&path, format!("{hostname}\n").as_bytes(), files::PUBLIC)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if settings.set_kernel {
        let kernel = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        if kernel != hostname {
            report.change(format!(
                "set the kernel hostname: {kernel:?} -> {hostname:?}"
            ));
            if !dry_run {
                rustix::system::sethostname(hostname.as_bytes()).with_context(|| {
                    "setting the kernel hostname (a container needs the host's UTS \
                     namespace and CAP_SYS_ADMIN)"
                })?;
            }
        }
    }
    report.detail("hostname", hostname);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn tag_glue_and_last_octets() {
        let mut settings = Config::defaults().hostname;
        let ip = "10.1.2.3".parse().unwrap();
        assert_eq!(
            build(&settings, &tags(&[("Role", "master")]), ip).unwrap(),
            "master2-3"
        );
        settings.glue = "-".into();
        settings.ip_address.octets = 4;
        assert_eq!(
            build(&settings, &tags(&[("Role", "worker")]), ip).unwrap(),
            "worker-10-1-2-3"
        );
    }

    // NodeReg built `none` when the tag was missing and went on with it.
    #[test]
    fn a_missing_tag_is_an_error_naming_it_not_none() {
        let settings = Config::defaults().hostname;
        let error = build(&settings, &tags(&[]), "10.0.0.1".parse().unwrap()).unwrap_err();
        assert!(matches!(error, HostnameError::MissingTag { ref tag } if tag == "Role"));
        assert!(error.to_string().contains("`Role`"));
    }

    #[test]
    fn invalid_labels_are_refused() {
        let settings = Config::defaults().hostname;
        let ip = "10.0.0.1".parse().unwrap();
        for value in ["Master", "a_b", "-x", &"a".repeat(62)] {
            let error = build(&settings, &tags(&[("Role", value)]), ip).unwrap_err();
            assert!(matches!(error, HostnameError::Invalid { .. }), "{value}");
        }
        let v6 = "fd00::1".parse().unwrap();
        assert!(matches!(
            build(&settings, &tags(&[("Role", "m")]), v6),
            Err(HostnameError::NotIpv4(_))
        ));
    }

    #[test]
    fn writes_once_then_leaves_an_unchanged_name() {
        let root = tempfile::tempdir().unwrap();
        let mut settings = Config::defaults().hostname;
        settings.set_kernel = false;
        let plan = apply(&settings, root.path(), "master1-2", true).unwrap();
        assert_eq!(plan.changes.len(), 1);
        assert!(!root.path().join("etc/hostname").exists());
        let done = apply(&settings, root.path(), "master1-2", false).unwrap();
        assert_eq!(done.changes.len(), 1);
        let path = root.path().join("etc/hostname");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "master1-2\n");
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let again = apply(&settings, root.path(), "master1-2", false).unwrap();
        assert!(again.changes.is_empty());
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified
        );
    }
}
