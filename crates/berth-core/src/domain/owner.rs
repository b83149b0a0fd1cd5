use std::fmt;

use crate::Error;

/// Which berth installation made a binding. Ownership is explicit: berth removes only
/// what carries its own owner, never what another system (or another berth) created.
///
/// Every binary derives its owner the same way, from an [`InstallationId`] and its
/// [`Mode`]: [`Owner::for_installation`] gives `berth/<installation>/<mode>`. Nothing
/// else goes into it, so renaming a table, a cluster or a zone never changes it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Owner(String);

impl Owner {
    /// An owner id as stored (e.g. read back from a ledger row or a DNS marker). Empty
    /// ids are refused. New owners come from [`Owner::for_installation`].
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        if id.trim().is_empty() {
            return Err(Error::invalid("owner id must not be empty"));
        }
        Ok(Owner(id))
    }

    /// The owner of everything `mode` writes for `installation`:
    /// `berth/<installation>/<mode>`, e.g. `berth/default/lambda`.
    pub fn for_installation(installation: &InstallationId, mode: Mode) -> Self {
        Owner(format!("berth/{installation}/{mode}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of one berth installation, chosen by the operator (`--installation-id`,
/// `BERTH_INSTALLATION_ID`) and the same for every binary of it. Two installations
/// that share an account, a hosted zone or a ledger must have distinct ids.
///
/// 1 to 63 ASCII letters, digits, `-`, `_` or `.`: it is safe in DNS TXT values,
/// DynamoDB, Kubernetes label values and object names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstallationId(String);

impl InstallationId {
    /// The id an installation has when the operator sets none.
    pub const DEFAULT: &'static str = "default";

    /// Parses an id; anything but 1-63 of `A-Z a-z 0-9 - _ .` is refused with the reason.
    pub fn new(id: &str) -> Result<Self, Error> {
        let id = id.trim();
        let valid = !id.is_empty()
            && id.len() <= 63
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(Error::invalid(format!(
                "installation id {id:?} must be 1-63 of the characters A-Z a-z 0-9 - _ ."
            )));
        }
        Ok(InstallationId(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for InstallationId {
    fn default() -> Self {
        InstallationId(Self::DEFAULT.to_owned())
    }
}

impl fmt::Display for InstallationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for InstallationId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        InstallationId::new(s)
    }
}

/// The berth binary (deployment mode) that writes under an owner. Modes of one
/// installation own their bindings separately: one never removes another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// `berth-daemon`.
    Daemon,
    /// `berth-sidecar`.
    Sidecar,
    /// `berth-lambda`.
    Lambda,
    /// `berth-bootstrap`.
    Bootstrap,
    /// `berth-provisioner`.
    Provisioner,
}

impl Mode {
    /// The mode's name as it appears in owners: `daemon`, `sidecar`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Daemon => "daemon",
            Mode::Sidecar => "sidecar",
            Mode::Lambda => "lambda",
            Mode::Bootstrap => "bootstrap",
            Mode::Provisioner => "provisioner",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_derive_from_the_installation_and_the_mode_only() {
        let id = InstallationId::new("prod-eu-1").unwrap();
        assert_eq!(
            Owner::for_installation(&id, Mode::Lambda).as_str(),
            "berth/prod-eu-1/lambda"
        );
        assert_eq!(
            Owner::for_installation(&InstallationId::default(), Mode::Daemon).as_str(),
            "berth/default/daemon"
        );
        assert_ne!(
            Owner::for_installation(&id, Mode::Lambda),
            Owner::for_installation(&id, Mode::Bootstrap)
        );
    }

    #[test]
    fn installation_ids_are_checked() {
        assert_eq!(
            " a.b_c-1 ".parse::<InstallationId>().unwrap().as_str(),
            "a.b_c-1"
        );
        for bad in ["", "  ", "a/b", "a b", "é", &"x".repeat(64)] {
            let err = InstallationId::new(bad).unwrap_err();
            assert!(
                err.to_string().contains("installation id"),
                "{bad:?}: {err}"
            );
        }
        assert!(Owner::new(" ").is_err());
    }
}
