use std::fmt;

/// Which berth installation made a binding. Ownership is explicit: berth removes only
/// what carries its own owner, never what another system (or another berth) created.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Owner(String);

impl Owner {
    /// An owner id such as `berth/prod-eu-1/daemon`. Empty ids are refused.
    pub fn new(id: impl Into<String>) -> Result<Self, crate::Error> {
        let id = id.into();
        if id.trim().is_empty() {
            return Err(crate::Error::invalid("owner id must not be empty"));
        }
        Ok(Owner(id))
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
