//! Route53 hosted zones: `Route53Zones` (in progress).
