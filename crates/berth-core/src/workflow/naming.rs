//! DNS names for bound addresses: `<template>.<suffix>`.

use std::fmt;
use std::net::IpAddr;

use crate::domain::Instance;
use crate::{Error, Result};

/// One piece of a [`DnsNameTemplate`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    InstanceId,
    PublicIp,
    PublicIpDashed,
    PrivateIpDashed,
    Tag(String),
}

/// A DNS name template with the placeholders `{instance_id}`, `{public_ip}`,
/// `{public_ip_dashed}`, `{private_ip_dashed}` (the primary interface's) and
/// `{tag:KEY}` (an instance tag). The default is `{public_ip_dashed}`.
///
/// Rendering never invents a value: a missing tag or a value that is not a valid DNS
/// label fails with a message naming it (seed 003 produced the hostname `none`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsNameTemplate {
    source: String,
    parts: Vec<Part>,
}

impl Default for DnsNameTemplate {
    fn default() -> Self {
        DnsNameTemplate {
            source: "{public_ip_dashed}".to_owned(),
            parts: vec![Part::PublicIpDashed],
        }
    }
}

impl fmt::Display for DnsNameTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl DnsNameTemplate {
    /// Parses a template; unknown placeholders, unbalanced braces and an empty
    /// template are refused.
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(Error::invalid("the DNS name template is empty"));
        }
        let source = rest.to_owned();
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(i) if rest.as_bytes()[i] == b'}' => {
                    return Err(Error::invalid(format!(
                        "DNS name template {source:?} has an unmatched '}}'"
                    )))
                }
                Some(i) => {
                    if i > 0 {
                        parts.push(Part::Text(rest[..i].to_ascii_lowercase()));
                    }
                    let end = rest[i..].find('}').ok_or_else(|| {
                        Error::invalid(format!("DNS name template {source:?} has an unclosed '{{'"))
                    })? + i;
                    let name = &rest[i + 1..end];
                    parts.push(match name {
                        "instance_id" => Part::InstanceId,
                        "public_ip" => Part::PublicIp,
                        "public_ip_dashed" => Part::PublicIpDashed,
                        "private_ip_dashed" => Part::PrivateIpDashed,
                        _ => match name.strip_prefix("tag:") {
                            Some(key) if !key.is_empty() => Part::Tag(key.to_owned()),
                            _ => {
                                return Err(Error::invalid(format!(
                                    "DNS name template {source:?}: unknown placeholder {{{name}}} \
                                     (known: {{instance_id}}, {{public_ip}}, {{public_ip_dashed}}, \
                                     {{private_ip_dashed}}, {{tag:KEY}})"
                                )))
                            }
                        },
                    });
                    rest = &rest[end + 1..];
                }
                None => {
                    parts.push(Part::Text(rest.to_ascii_lowercase()));
                    rest = "";
                }
            }
        }
        Ok(DnsNameTemplate { source, parts })
    }

    /// Renders the name of `instance` holding `public_ip`, under `suffix`, fully
    /// qualified with a trailing dot.
    pub fn render(&self, instance: &Instance, public_ip: IpAddr, suffix: &str) -> Result<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::InstanceId => out.push_str(instance.id.as_str()),
                Part::PublicIp => out.push_str(&public_ip.to_string()),
                Part::PublicIpDashed => out.push_str(&dashed(public_ip)),
                Part::PrivateIpDashed => {
                    let primary = instance.primary_interface().ok_or_else(|| {
                        Error::invalid(format!(
                            "instance {} has no primary interface for {{private_ip_dashed}}",
                            instance.id
                        ))
                    })?;
                    out.push_str(&dashed(primary.private_ip));
                }
                Part::Tag(key) => {
                    let value = instance.tags.get(key).ok_or_else(|| {
                        Error::invalid(format!(
                            "instance {} has no tag {key:?}, which the DNS name template {} needs",
                            instance.id, self.source
                        ))
                    })?;
                    out.push_str(&value.to_ascii_lowercase());
                }
            }
        }
        qualify(out, suffix)
    }
}

impl DnsNameTemplate {
    /// Whether a name renders from the public IP alone (no instance id, private IP or
    /// tag): then the name of an address is known without its instance, and the pool
    /// sweep can find a record a dead invocation wrote before its row named it.
    pub fn depends_on_ip_only(&self) -> bool {
        self.parts
            .iter()
            .all(|p| matches!(p, Part::Text(_) | Part::PublicIp | Part::PublicIpDashed))
    }

    /// The name of `public_ip` under `suffix` when the template depends on the IP
    /// alone ([`DnsNameTemplate::depends_on_ip_only`]), else `None`.
    pub fn render_ip(&self, public_ip: IpAddr, suffix: &str) -> Option<Result<String>> {
        if !self.depends_on_ip_only() {
            return None;
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::PublicIp => out.push_str(&public_ip.to_string()),
                _ => out.push_str(&dashed(public_ip)),
            }
        }
        Some(qualify(out, suffix))
    }
}

/// `name` under `suffix`, validated, fully qualified with a trailing dot.
fn qualify(name: String, suffix: &str) -> Result<String> {
    let suffix = suffix.trim().trim_matches('.').to_ascii_lowercase();
    let name = if suffix.is_empty() {
        name
    } else {
        format!("{name}.{suffix}")
    };
    validate_name(&name)?;
    Ok(format!("{name}."))
}

fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// RFC 1035 host names: labels of 1–63 letters, digits and hyphens, no hyphen at either
/// end, at most 253 characters in all.
fn validate_name(name: &str) -> Result<()> {
    if name.len() > 253 {
        return Err(Error::invalid(format!(
            "DNS name {name:?} is longer than 253 characters"
        )));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(Error::invalid(format!(
                "DNS name {name:?} has an invalid label {label:?} \
                 (1-63 letters, digits or hyphens, no hyphen at either end)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{InstanceId, InstanceState, NetworkInterface, Tags};

    fn instance(tags: &[(&str, &str)]) -> Instance {
        Instance {
            id: InstanceId::new("i-0abc").unwrap(),
            state: InstanceState::Running,
            availability_zone: "eu-west-1a".into(),
            private_ips: vec![],
            interfaces: vec![NetworkInterface {
                id: "eni-1".into(),
                device_index: 0,
                private_ip: "10.0.1.7".parse().unwrap(),
                public_ip: None,
            }],
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Tags>(),
        }
    }

    const IP: &str = "203.0.113.9";

    #[test]
    fn default_is_public_ip_dashed() {
        let t = DnsNameTemplate::default();
        let name = t
            .render(&instance(&[]), IP.parse().unwrap(), "live.example.com.")
            .unwrap();
        assert_eq!(name, "203-0-113-9.live.example.com.");
        assert_eq!(
            DnsNameTemplate::parse("{public_ip_dashed}").unwrap(),
            DnsNameTemplate::default()
        );
    }

    #[test]
    fn names_that_need_only_the_ip_render_without_the_instance() {
        let ip = IP.parse().unwrap();
        let t = DnsNameTemplate::parse("node-{public_ip_dashed}").unwrap();
        assert_eq!(
            t.render_ip(ip, "example.com").unwrap().unwrap(),
            t.render(&instance(&[]), ip, "example.com").unwrap()
        );
        for needs_instance in ["{instance_id}", "{tag:team}", "{private_ip_dashed}"] {
            let t = DnsNameTemplate::parse(needs_instance).unwrap();
            assert!(t.render_ip(ip, "example.com").is_none(), "{needs_instance}");
        }
    }

    #[test]
    fn every_placeholder_renders() {
        let t =
            DnsNameTemplate::parse("Node-{tag:team}-{instance_id}.{private_ip_dashed}.{public_ip}")
                .unwrap();
        let name = t
            .render(
                &instance(&[("team", "Live")]),
                IP.parse().unwrap(),
                "example.com",
            )
            .unwrap();
        assert_eq!(name, "node-live-i-0abc.10-0-1-7.203.0.113.9.example.com.");
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        for (text, needle) in [
            ("{nope}", "unknown placeholder {nope}"),
            ("{tag:}", "unknown placeholder"),
            ("a{public_ip", "unclosed"),
            ("a}b", "unmatched"),
            ("  ", "empty"),
        ] {
            let err = DnsNameTemplate::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn missing_tag_and_invalid_labels_fail_rather_than_invent_a_name() {
        let t = DnsNameTemplate::parse("{tag:team}").unwrap();
        let err = t
            .render(&instance(&[]), IP.parse().unwrap(), "example.com")
            .unwrap_err();
        assert!(err.to_string().contains("no tag \"team\""), "{err}");
        let err = t
            .render(
                &instance(&[("team", "a b")]),
                IP.parse().unwrap(),
                "example.com",
            )
            .unwrap_err();
        assert!(err.to_string().contains("invalid label"), "{err}");
        let long = DnsNameTemplate::parse(&"a".repeat(64)).unwrap();
        assert!(long
            .render(&instance(&[]), IP.parse().unwrap(), "x")
            .is_err());
    }
}
