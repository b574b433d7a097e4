//! What IPAM refuses, and why. The messages reach users as they are (pool conditions, Service
//! annotations and Events) and the docs and tests quote them: keep them stable.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::range::Family;
use super::service::MAX_NAME_ANNOTATION;

/// A pool entry (one item of `spec.addresses`) that is not a CIDR, an address or a range.
/// `entry` is the entry as shown: trimmed, at most 80 characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{entry:?} is neither a CIDR, an address nor a range a-b")]
    NotAnEntry { entry: String },
    /// One end of a range `a-b` is not an address (`bound`, trimmed).
    #[error("{entry:?}: {bound:?} is not an IP address")]
    NotAnAddress { entry: String, bound: String },
    #[error("{entry:?}: a range cannot mix IPv4 and IPv6")]
    MixedFamilies { entry: String },
    #[error("{entry:?}: the range is backwards (first address is after the last)")]
    Backwards { entry: String },
    /// A CIDR with host bits set; `network` is what it probably meant.
    #[error("{entry:?}: host bits are set (did you mean {network}?)")]
    HostBitsSet { entry: String, network: IpNet },
}

/// One reason an AddressPool cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolProblem {
    #[error("spec.addresses is empty")]
    NoAddresses,
    #[error(transparent)]
    Entry(#[from] RangeError),
    /// `spec.aggregation.<field>` longer than an address of its family (`max`).
    #[error("spec.aggregation.{field} must be 0-{max}")]
    AggregationTooLong { field: &'static str, max: u8 },
    /// An aggregate shorter than a block of the pool (`block`/`block_len`): it would announce
    /// addresses outside the pool.
    #[error(
        "spec.aggregation.{field} {len} is shorter than the pool's block {block}/{block_len}: \
         the aggregate would announce addresses outside the pool"
    )]
    AggregateOutsidePool {
        field: &'static str,
        len: u8,
        block: IpAddr,
        block_len: u8,
    },
    /// `spec.fastFailover` on a routed pool (its addresses have no single holder to fail).
    #[error("spec.fastFailover applies to local pools only (mode: local)")]
    FastFailoverNotLocal,
    /// BFD timers out of range.
    #[error("spec.fastFailover: intervalMs must be 10-10000 and detectMultiplier 2-50")]
    FastFailoverTimers,
    /// A label selector that does not parse (`field` is its path in the spec).
    #[error("{field}: {reason}")]
    Selector { field: &'static str, reason: String },
}

/// Why an AddressPool cannot be used: every problem found, shown `; `-separated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PoolError {
    pub problems: Vec<PoolProblem>,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Why what a Service asks for (its annotations, `spec.loadBalancerIP`) cannot be honoured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// An item of `routelb.io/addresses` (or `spec.loadBalancerIP`), at most 64 characters.
    #[error("{value:?} is not an IP address")]
    NotAnAddress { value: String },
    /// A pool name or sharing key longer than any legal one; not echoed.
    #[error("{annotation} is {len} bytes long; at most {MAX_NAME_ANNOTATION}")]
    NameTooLong {
        annotation: &'static str,
        len: usize,
    },
    /// A requested address of a family the service does not want (`only`: its family).
    #[error("requested address {address} is {family} but the service is {only} only")]
    WrongFamily {
        address: IpAddr,
        family: Family,
        only: Family,
    },
    #[error("more than one {0} address requested")]
    FamilyTwice(Family),
}
