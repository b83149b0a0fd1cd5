use std::fmt;

use super::Owner;
use crate::Error;

/// The record types berth writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Alias name.
    Cname,
    /// Text (berth's ownership markers).
    Txt,
}

impl RecordType {
    /// The DNS spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
            RecordType::Txt => "TXT",
        }
    }
}

impl std::str::FromStr for RecordType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "A" => RecordType::A,
            "AAAA" => RecordType::Aaaa,
            "CNAME" => RecordType::Cname,
            "TXT" => RecordType::Txt,
            other => return Err(Error::invalid(format!("unsupported record type {other:?}"))),
        })
    }
}

/// A hosted zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedZone {
    /// The zone id, without the `/hostedzone/` prefix.
    pub id: String,
    /// The zone's name, fully qualified with a trailing dot.
    pub name: String,
}

/// A DNS record set. Names are stored fully qualified, lower case, with a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsRecord {
    /// Fully qualified name.
    pub name: String,
    /// Record type.
    pub record_type: RecordType,
    /// Time to live, seconds.
    pub ttl: u32,
    /// Values (addresses, or quoted text for TXT).
    pub values: Vec<String>,
}

/// The TXT value prefix that marks a name as berth's.
const OWNER_PREFIX: &str = "berth-owner=";
/// Ownership markers live beside the name, not on it, so a CNAME can still be owned.
const OWNER_LABEL: &str = "_berth.";

impl DnsRecord {
    /// A record with a normalised name.
    pub fn new(name: &str, record_type: RecordType, ttl: u32, values: Vec<String>) -> Self {
        DnsRecord {
            name: normalize_name(name),
            record_type,
            ttl,
            values,
        }
    }

    /// The TXT record that says `owner` made the records at `name`.
    pub fn ownership(name: &str, owner: &Owner, ttl: u32) -> Self {
        let name = format!("{OWNER_LABEL}{}", normalize_name(name));
        DnsRecord::new(
            &name,
            RecordType::Txt,
            ttl,
            vec![format!("\"{OWNER_PREFIX}{owner}\"")],
        )
    }

    /// The name of the ownership marker for `name`.
    pub fn ownership_name(name: &str) -> String {
        format!("{OWNER_LABEL}{}", normalize_name(name))
    }

    /// If this is an ownership marker, the owner it names.
    pub fn owner(&self) -> Option<&str> {
        if self.record_type != RecordType::Txt || !self.name.starts_with(OWNER_LABEL) {
            return None;
        }
        self.values
            .iter()
            .find_map(|v| v.trim_matches('"').strip_prefix(OWNER_PREFIX))
    }
}

impl fmt::Display for DnsRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.name,
            self.ttl,
            self.record_type.as_str(),
            self.values.join(",")
        )
    }
}

/// Lower-cases a DNS name and makes it fully qualified.
pub(crate) fn normalize_name(name: &str) -> String {
    let mut n = name.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_marker_round_trip() {
        let owner = Owner::new("berth/prod").unwrap();
        let txt = DnsRecord::ownership("Node-1.Example.com", &owner, 60);
        assert_eq!(txt.name, "_berth.node-1.example.com.");
        assert_eq!(txt.owner(), Some("berth/prod"));
        let a = DnsRecord::new(
            "node-1.example.com",
            RecordType::A,
            60,
            vec!["1.2.3.4".into()],
        );
        assert_eq!(a.owner(), None);
    }
}
