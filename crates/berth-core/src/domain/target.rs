use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;

/// The ARN of an ELBv2 target group. Cheap to clone: plans carry it many times.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetGroupArn(Arc<str>);

impl TargetGroupArn {
    /// Accepts `arn:<partition>:elasticloadbalancing:...:targetgroup/...`.
    pub fn new(arn: impl AsRef<str>) -> Result<Self, Error> {
        let arn = arn.as_ref();
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let valid = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "elasticloadbalancing"
            && parts[5].starts_with("targetgroup/");
        if !valid {
            return Err(Error::invalid(format!("{arn:?} is not a target group ARN")));
        }
        Ok(TargetGroupArn(Arc::from(arn)))
    }

    /// The ARN as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The group name embedded in the ARN (`targetgroup/<name>/<id>`).
    pub fn name(&self) -> &str {
        self.0
            .rsplit(':')
            .next()
            .and_then(|r| r.split('/').nth(1))
            .unwrap_or_default()
    }
}

impl fmt::Display for TargetGroupArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a user names a target group: by ARN or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetGroupRef {
    /// A full ARN.
    Arn(TargetGroupArn),
    /// A name, resolved by the provider (and cached there).
    Name(String),
}

impl FromStr for TargetGroupRef {
    type Err = Error;
    /// `arn:...` is an ARN; anything else must be a valid target group name
    /// (1–32 characters, alphanumerics and hyphens, no leading or trailing hyphen).
    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        if s.starts_with("arn:") {
            return TargetGroupArn::new(s).map(TargetGroupRef::Arn);
        }
        let valid = !s.is_empty()
            && s.len() <= 32
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if !valid {
            return Err(Error::invalid(format!(
                "{s:?} is neither a target group ARN nor a valid target group name"
            )));
        }
        Ok(TargetGroupRef::Name(s.to_owned()))
    }
}

impl fmt::Display for TargetGroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetGroupRef::Arn(a) => a.fmt(f),
            TargetGroupRef::Name(n) => f.write_str(n),
        }
    }
}

/// What a target group's targets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetType {
    /// EC2 instance ids.
    Instance,
    /// IP addresses (pods).
    Ip,
    /// A Lambda function (berth does not manage these).
    Lambda,
    /// An Application Load Balancer behind an NLB.
    Alb,
}

impl FromStr for TargetType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "instance" => TargetType::Instance,
            "ip" => TargetType::Ip,
            "lambda" => TargetType::Lambda,
            "alb" => TargetType::Alb,
            other => return Err(Error::invalid(format!("unknown target type {other:?}"))),
        })
    }
}

/// A resolved target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    /// Its ARN.
    pub arn: TargetGroupArn,
    /// Its name.
    pub name: String,
    /// Instance or IP targets.
    pub target_type: TargetType,
    /// The group's default port (targets registered without a port use it).
    pub port: Option<u16>,
    /// How long a deregistered target stays `draining`.
    pub deregistration_delay: Duration,
}

impl TargetGroup {
    /// The port a target should be registered on: the explicit one, else the group's.
    /// Seed 000 ignored the port, and a null port broke it; here a null port means the
    /// group's own port, and a group without one needs an explicit port.
    pub fn resolve_port(&self, explicit: Option<u16>) -> Result<u16, Error> {
        explicit.or(self.port).ok_or_else(|| {
            Error::invalid(format!(
                "target group {} has no default port and no port was given",
                self.name
            ))
        })
    }
}

/// A target's identity within a group: an id (instance id or IP) and a port.
///
/// Ordered by id, then port. Planning compares millions of these per resync, so the
/// comparisons are written out (eight bytes at a time) instead of calling `memcmp`
/// for each short id; the order is the same as comparing the ids as strings.
#[derive(Debug, Clone)]
pub struct Target {
    /// Instance id or IP address.
    pub id: Arc<str>,
    /// The port traffic is sent to.
    pub port: u16,
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        self.port == other.port
            && (Arc::ptr_eq(&self.id, &other.id)
                || compare_bytes(self.id.as_bytes(), other.id.as_bytes()).is_eq())
    }
}

impl Eq for Target {}

impl std::hash::Hash for Target {
    // Equal targets have equal ids and ports, so hashing both agrees with `eq`.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
        self.port.hash(state);
    }
}

impl Ord for Target {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let ids = if Arc::ptr_eq(&self.id, &other.id) {
            std::cmp::Ordering::Equal
        } else {
            compare_bytes(self.id.as_bytes(), other.id.as_bytes())
        };
        ids.then(self.port.cmp(&other.port))
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Lexicographic byte comparison, a word at a time (big-endian words compare like
/// their bytes).
fn compare_bytes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let mut a_words = a.chunks_exact(8);
    let mut b_words = b.chunks_exact(8);
    for (x, y) in a_words.by_ref().zip(b_words.by_ref()) {
        let x = u64::from_be_bytes(x.try_into().expect("8 bytes"));
        let y = u64::from_be_bytes(y.try_into().expect("8 bytes"));
        if x != y {
            return x.cmp(&y);
        }
    }
    let done = a.len().min(b.len()) / 8 * 8;
    for (x, y) in a[done..].iter().zip(&b[done..]) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

impl Target {
    /// A target from an id and a port.
    pub fn new(id: impl AsRef<str>, port: u16) -> Self {
        Target {
            id: Arc::from(id.as_ref()),
            port,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.id, self.port)
    }
}

/// A target to register, with the Availability Zone ELBv2 needs for IPs outside the
/// VPC (`all`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Registration {
    /// The target.
    pub target: Target,
    /// The Availability Zone, or `None` to let ELBv2 infer it.
    pub availability_zone: Option<String>,
}

impl From<Target> for Registration {
    fn from(target: Target) -> Self {
        Registration {
            target,
            availability_zone: None,
        }
    }
}

/// ELBv2 target health states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetState {
    /// Registering, health checks not yet passed.
    Initial,
    /// Serving.
    Healthy,
    /// Failing health checks.
    Unhealthy,
    /// Not used by any listener rule, or in a disabled AZ.
    Unused,
    /// Deregistered, waiting out the deregistration delay. Never re-register it.
    Draining,
    /// Health checks are disabled.
    Unavailable,
}

impl TargetState {
    /// Leaving the group: re-registering it would cut in-flight flows short.
    pub fn is_draining(self) -> bool {
        self == TargetState::Draining
    }
}

impl FromStr for TargetState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "initial" => TargetState::Initial,
            "healthy" => TargetState::Healthy,
            "unhealthy" => TargetState::Unhealthy,
            "unused" => TargetState::Unused,
            "draining" => TargetState::Draining,
            "unavailable" => TargetState::Unavailable,
            other => return Err(Error::invalid(format!("unknown target state {other:?}"))),
        })
    }
}

impl fmt::Display for TargetState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetState::Initial => "initial",
            TargetState::Healthy => "healthy",
            TargetState::Unhealthy => "unhealthy",
            TargetState::Unused => "unused",
            TargetState::Draining => "draining",
            TargetState::Unavailable => "unavailable",
        })
    }
}

/// One row of `DescribeTargetHealth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    /// The target.
    pub target: Target,
    /// Its state.
    pub state: TargetState,
    /// The reason code ELBv2 gave, if any.
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";

    #[test]
    fn parses_refs() {
        let r: TargetGroupRef = ARN.parse().unwrap();
        match r {
            TargetGroupRef::Arn(a) => assert_eq!(a.name(), "web"),
            other => panic!("expected an ARN, got {other:?}"),
        }
        assert_eq!(
            "web-1".parse::<TargetGroupRef>().unwrap(),
            TargetGroupRef::Name("web-1".into())
        );
        assert!("-web".parse::<TargetGroupRef>().is_err());
        assert!("arn:aws:s3:::bucket".parse::<TargetGroupRef>().is_err());
        assert!("a".repeat(33).parse::<TargetGroupRef>().is_err());
    }

    #[test]
    fn null_port_means_group_port() {
        let g = TargetGroup {
            arn: TargetGroupArn::new(ARN).unwrap(),
            name: "web".into(),
            target_type: TargetType::Instance,
            port: Some(30080),
            deregistration_delay: Duration::from_secs(300),
        };
        assert_eq!(g.resolve_port(None).unwrap(), 30080);
        assert_eq!(g.resolve_port(Some(8443)).unwrap(), 8443);
        let no_port = TargetGroup { port: None, ..g };
        assert!(no_port.resolve_port(None).is_err());
    }

    #[test]
    fn target_order_is_the_string_order_of_ids_then_ports() {
        let ids = [
            "",
            "i",
            "i-0",
            "i-00000000000000001",
            "i-0000000000000001",
            "i-000000000000000a",
            "10.0.0.1",
            "fd00::1",
            "i-00000000",
        ];
        for a in ids {
            for b in ids {
                for (pa, pb) in [(80, 80), (80, 443), (443, 80)] {
                    let (ta, tb) = (Target::new(a, pa), Target::new(b, pb));
                    assert_eq!(ta.cmp(&tb), a.cmp(b).then(pa.cmp(&pb)), "{ta} vs {tb}");
                    assert_eq!(ta == tb, a == b && pa == pb);
                }
            }
        }
    }

    #[test]
    fn states_parse() {
        for s in [
            "initial",
            "healthy",
            "unhealthy",
            "unused",
            "draining",
            "unavailable",
        ] {
            assert_eq!(s.parse::<TargetState>().unwrap().to_string(), s);
        }
    }
}
