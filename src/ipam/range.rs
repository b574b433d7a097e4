//! Address arithmetic: both families as `u128` so one code path serves IPv4 and IPv6.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::error::RangeError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The name Kubernetes uses in `spec.ipFamilies`.
    pub fn k8s_name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.k8s_name())
    }
}

/// An address as (family, number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr {
    pub family: Family,
    pub value: u128,
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Addr {
                family: Family::V4,
                value: u128::from(u32::from(v4)),
            },
            IpAddr::V6(v6) => Addr {
                family: Family::V6,
                value: u128::from(v6),
            },
        }
    }
}

impl From<Addr> for IpAddr {
    fn from(a: Addr) -> Self {
        match a.family {
            // Values of V4 addresses always fit in 32 bits: they only come from `From<IpAddr>`
            // or from ranges built out of such values.
            Family::V4 => IpAddr::V4(Ipv4Addr::from(a.value as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(a.value)),
        }
    }
}

impl Addr {
    /// IPv4 addresses ending in .0 or .255, which some old clients mistake for network or
    /// broadcast addresses.
    pub fn is_buggy(self) -> bool {
        self.family == Family::V4 && matches!(self.value & 0xff, 0 | 0xff)
    }
}

/// An inclusive range of addresses of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpRange {
    pub family: Family,
    pub first: u128,
    pub last: u128,
}

impl IpRange {
    pub fn contains(&self, a: Addr) -> bool {
        a.family == self.family && self.first <= a.value && a.value <= self.last
    }

    /// Number of addresses; saturates for a whole IPv6 space.
    pub fn size(&self) -> u128 {
        (self.last - self.first).saturating_add(1)
    }

    /// Number of addresses `avoidBuggyIPs` removes from this range.
    pub fn buggy_count(&self) -> u128 {
        if self.family != Family::V4 {
            return 0;
        }
        // Count of x in [first, last] with x % 256 == r is floor((last - r)/256) - floor((first - 1 - r)/256).
        let count = |r: i128| {
            let (a, b) = (self.first as i128, self.last as i128);
            ((b - r).div_euclid(256) - (a - 1 - r).div_euclid(256)) as u128
        };
        count(0) + count(255)
    }

    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.family == other.family && self.first <= other.last && other.first <= self.last
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = IpAddr::from(Addr {
            family: self.family,
            value: self.first,
        });
        let last = IpAddr::from(Addr {
            family: self.family,
            value: self.last,
        });
        write!(f, "{first}-{last}")
    }
}

/// Parses one pool entry: a CIDR (`192.0.2.0/24`), a single address, or an inclusive range
/// `a-b` of one family.
pub fn parse_range(entry: &str) -> Result<IpRange, RangeError> {
    let s = entry.trim();
    let shown: String = s.chars().take(80).collect();
    if let Some((a, b)) = s.split_once('-') {
        return parse_bounds(a.trim(), b.trim(), shown);
    }
    if s.contains('/') {
        let net: IpNet = s.parse().map_err(|_| RangeError::NotAnEntry {
            entry: shown.clone(),
        })?;
        if net.network() != net.addr() {
            return Err(RangeError::HostBitsSet {
                entry: shown,
                network: net.trunc(),
            });
        }
        let first = Addr::from(net.network());
        let last = Addr::from(net.broadcast());
        return Ok(IpRange {
            family: first.family,
            first: first.value,
            last: last.value,
        });
    }
    let ip: IpAddr = s
        .parse()
        .map_err(|_| RangeError::NotAnEntry { entry: shown })?;
    let a = Addr::from(ip);
    Ok(IpRange {
        family: a.family,
        first: a.value,
        last: a.value,
    })
}

/// The range `a-b` (both trimmed) of the entry shown as `entry`.
fn parse_bounds(a: &str, b: &str, entry: String) -> Result<IpRange, RangeError> {
    let (a, b) = match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => (Addr::from(a), Addr::from(b)),
        (Err(_), Err(_)) => return Err(RangeError::NotAnEntry { entry }),
        (Err(_), _) => {
            return Err(RangeError::NotAnAddress {
                entry,
                bound: a.into(),
            });
        }
        (_, Err(_)) => {
            return Err(RangeError::NotAnAddress {
                entry,
                bound: b.into(),
            });
        }
    };
    if a.family != b.family {
        return Err(RangeError::MixedFamilies { entry });
    }
    if a.value > b.value {
        return Err(RangeError::Backwards { entry });
    }
    Ok(IpRange {
        family: a.family,
        first: a.value,
        last: b.value,
    })
}

/// The smallest list of CIDR blocks (network value, prefix length) covering the range exactly.
pub fn to_cidrs(r: &IpRange) -> Vec<(u128, u8)> {
    let bits: u32 = if r.family == Family::V4 { 32 } else { 128 };
    let mut out = Vec::new();
    let mut start = r.first;
    loop {
        // Largest block aligned at `start` that stays within the range.
        let mut size_log = if start == 0 {
            bits
        } else {
            start.trailing_zeros().min(bits)
        };
        while size_log > 0 {
            let last = if size_log >= 128 {
                u128::MAX
            } else {
                start + ((1u128 << size_log) - 1)
            };
            if last <= r.last && last >= start {
                break;
            }
            size_log -= 1;
        }
        out.push((start, (bits - size_log) as u8));
        let block_last = if size_log >= 128 {
            u128::MAX
        } else {
            start + ((1u128 << size_log) - 1)
        };
        if block_last >= r.last {
            return out;
        }
        start = block_last + 1;
    }
}

/// Sorts ranges and merges those that touch or overlap.
pub fn normalize(mut ranges: Vec<IpRange>) -> Vec<IpRange> {
    ranges.sort();
    let mut out: Vec<IpRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        if let Some(last) = out.last_mut()
            && last.family == r.family
            && r.first <= last.last.saturating_add(1)
        {
            last.last = last.last.max(r.last);
            continue;
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cidrs_ranges_and_addresses() {
        let r = parse_range("192.0.2.0/30").unwrap();
        assert_eq!((r.first as u32, r.size()), (0xc000_0200, 4));
        let r = parse_range(" 192.0.2.10 - 192.0.2.20 ").unwrap();
        assert_eq!(r.size(), 11);
        let r = parse_range("2001:db8::/120").unwrap();
        assert_eq!((r.family, r.size()), (Family::V6, 256));
        assert_eq!(parse_range("2001:db8::1").unwrap().size(), 1);
        assert!(
            parse_range("192.0.2.1/24")
                .unwrap_err()
                .to_string()
                .contains("192.0.2.0/24")
        );
        assert!(parse_range("192.0.2.9-192.0.2.1").is_err());
        assert!(parse_range("192.0.2.1-2001:db8::1").is_err());
        assert!(parse_range("pool\n}").is_err());
    }

    #[test]
    fn counts_buggy_addresses() {
        let r = parse_range("10.0.0.0/23").unwrap();
        assert_eq!(r.buggy_count(), 4);
        let r = parse_range("10.0.0.1-10.0.0.254").unwrap();
        assert_eq!(r.buggy_count(), 0);
        let r = parse_range("10.0.0.255-10.0.1.0").unwrap();
        assert_eq!(r.buggy_count(), 2);
        let brute = |r: IpRange| {
            (r.first..=r.last)
                .filter(|v| matches!(v & 0xff, 0 | 0xff))
                .count() as u128
        };
        for s in ["10.0.0.7-10.0.3.9", "0.0.0.0/22", "10.0.0.255/32"] {
            let r = parse_range(s).unwrap();
            assert_eq!(r.buggy_count(), brute(r), "{s}");
        }
    }

    #[test]
    fn ranges_become_minimal_cidrs() {
        let show = |s: &str| -> Vec<String> {
            let r = parse_range(s).unwrap();
            to_cidrs(&r)
                .into_iter()
                .map(|(v, l)| {
                    format!(
                        "{}/{l}",
                        IpAddr::from(Addr {
                            family: r.family,
                            value: v
                        })
                    )
                })
                .collect()
        };
        assert_eq!(show("10.0.0.0/24"), ["10.0.0.0/24"]);
        assert_eq!(
            show("10.0.0.1-10.0.0.6"),
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        assert_eq!(show("0.0.0.0/0"), ["0.0.0.0/0"]);
        assert_eq!(show("::/0"), ["::/0"]);
        assert_eq!(show("2001:db8::5"), ["2001:db8::5/128"]);
    }

    #[test]
    fn normalize_merges_adjacent() {
        let rs = normalize(vec![
            parse_range("10.0.0.4/30").unwrap(),
            parse_range("10.0.0.0/30").unwrap(),
            parse_range("2001:db8::/127").unwrap(),
            parse_range("10.0.0.6-10.0.0.20").unwrap(),
        ]);
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].to_string(), "10.0.0.0-10.0.0.20");
    }
}
