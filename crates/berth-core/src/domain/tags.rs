use std::collections::BTreeMap;
use std::fmt;

use crate::Error;

/// Resource tags, sorted by key.
pub type Tags = BTreeMap<String, String>;

/// One clause of a [`TagFilter`]: a key that must be present, optionally with a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagMatch {
    /// The tag key.
    pub key: String,
    /// The value it must have; `None` means "present with any value".
    pub value: Option<String>,
}

/// A conjunction of tag clauses, written `key=value,key2` (all must match).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TagFilter {
    /// The clauses; an empty filter matches everything.
    pub clauses: Vec<TagMatch>,
}

impl TagFilter {
    /// Parses `key=value,key2,...`. Whitespace around items is ignored; empty keys are
    /// rejected so a stray comma cannot widen the filter silently.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut clauses = Vec::new();
        for item in text.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().to_owned())),
                None => (item, None),
            };
            if key.is_empty() {
                return Err(Error::invalid(format!(
                    "tag filter item {item:?} has an empty key"
                )));
            }
            clauses.push(TagMatch {
                key: key.to_owned(),
                value,
            });
        }
        Ok(TagFilter { clauses })
    }

    /// Whether `tags` satisfies every clause.
    pub fn matches(&self, tags: &Tags) -> bool {
        self.clauses
            .iter()
            .all(|c| match (&c.value, tags.get(&c.key)) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(want), Some(have)) => want == have,
            })
    }

    /// Whether the filter has no clause (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }
}

impl fmt::Display for TagFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.clauses.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match &c.value {
                Some(v) => write!(f, "{}={}", c.key, v)?,
                None => f.write_str(&c.key)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_matches_presence_and_values() {
        let f = TagFilter::parse("karpenter.sh/nodepool, team=live").unwrap();
        assert_eq!(f.to_string(), "karpenter.sh/nodepool,team=live");
        assert!(f.matches(&tags(&[
            ("karpenter.sh/nodepool", "default"),
            ("team", "live")
        ])));
        assert!(!f.matches(&tags(&[
            ("karpenter.sh/nodepool", "default"),
            ("team", "dev")
        ])));
        assert!(!f.matches(&tags(&[("team", "live")])));
    }

    #[test]
    fn seed_002_karpenter_v1_tag_is_expressible() {
        // The seed matched Karpenter v1alpha5's tag; v1 labels `karpenter.sh/nodepool`.
        let f = TagFilter::parse("karpenter.sh/nodepool").unwrap();
        assert!(f.matches(&tags(&[("karpenter.sh/nodepool", "x")])));
        assert!(!f.matches(&tags(&[("karpenter.sh/provisioner-name", "x")])));
    }

    #[test]
    fn empty_key_is_rejected() {
        assert!(TagFilter::parse("=x").is_err());
        assert!(TagFilter::parse("").unwrap().is_empty());
    }
}
