//! The grammars of what a user names: a cluster, an EC2 instance type, and the state
//! Secret's suffix derived from a cluster's name.

/// Why a cluster name is refused.
pub fn cluster_name_error(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("must not be empty");
    }
    if name.len() > 63 {
        return Some("must be at most 63 characters (a DNS-1123 label)");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("must contain only lowercase letters, digits and '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must start and end with a letter or digit");
    }
    None
}

/// Whether `text` is an EC2 instance type: a family of lowercase alphanumeric
/// segments joined by '-' (`m5`, `m7i-flex`, `u-6tb1`, `mac2-m2pro`) with a digit in
/// its first or second segment, a '.', and a size (`nano` ... `large`, `xlarge`,
/// `<n>xlarge`, `metal`, `metal-<n>xl`).
pub fn is_instance_type(text: &str) -> bool {
    if text.len() > 64 {
        return false;
    }
    let Some((family, size)) = text.split_once('.') else {
        return false;
    };
    valid_family(family) && valid_size(size)
}

fn valid_family(family: &str) -> bool {
    let segments: Vec<&str> = family.split('-').collect();
    let alnum = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let Some(first) = segments.first() else {
        return false;
    };
    first.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && segments.iter().all(|s| alnum(s))
        && segments
            .iter()
            .take(2)
            .any(|s| s.bytes().any(|b| b.is_ascii_digit()))
}

fn valid_size(size: &str) -> bool {
    let number =
        |s: &str| !s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit());
    match size {
        "nano" | "micro" | "small" | "medium" | "large" | "xlarge" | "metal" => true,
        _ => {
            if let Some(n) = size.strip_suffix("xlarge") {
                number(n)
            } else if let Some(n) = size
                .strip_prefix("metal-")
                .and_then(|s| s.strip_suffix("xl"))
            {
                number(n)
            } else {
                false
            }
        }
    }
}

/// The `secret_suffix` of a cluster's state in Terraform's `kubernetes` backend. It
/// becomes a label value (at most 63 characters) and must not end in `-<number>`
/// (Terraform reads that as a workspace index), so a name like `prod-001` gets a
/// stable hashed suffix instead: `prod-001-h<10 hex>`.
pub fn state_secret_suffix(cluster: &str) -> String {
    let ends_in_number = cluster
        .rsplit_once('-')
        .is_some_and(|(_, tail)| !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()));
    if !ends_in_number && cluster.len() <= 63 && !cluster.is_empty() {
        return cluster.to_owned();
    }
    let head: String = cluster.chars().take(50).collect();
    format!(
        "{}-h{:010x}",
        head.trim_end_matches('-'),
        fnv1a(cluster) & 0xff_ffff_ffff
    )
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
