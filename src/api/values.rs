//! Typed, validated values. Everything a user writes in a CRD field or an annotation is parsed
//! into one of these before it is used, so no string from the API ever reaches a daemon as is.

use std::fmt;
use std::str::FromStr;

use super::{
    AttributeAllowance, BgpAttributes, IsisAttributes, OspfAttributes, RipAttributes,
    RoutingPolicySpec, ServiceOverrides,
};

/// A BGP standard community, `asn:value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u16, pub u16);

/// A BGP large community, `global:local1:local2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity(pub u32, pub u32, pub u32);

/// An inclusive range of communities, `FIRST-LAST` or a single one. Standard communities
/// compare as 32-bit numbers, large ones by global admin, then local data 1, then 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span<T> {
    pub first: T,
    pub last: T,
}

pub type CommunityRange = Span<Community>;
pub type LargeCommunityRange = Span<LargeCommunity>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn bounded(s: &str) -> Result<&str, ValueError> {
    // Long enough for any legal value; anything longer is refused before it is echoed back.
    if s.len() > 64 {
        return Err(ValueError(format!(
            "value of {} characters is too long",
            s.len()
        )));
    }
    Ok(s.trim())
}

fn parse_part<T: FromStr>(part: &str, what: &str, whole: &str) -> Result<T, ValueError> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError(format!("{what} in {whole:?} is not a number")));
    }
    part.parse()
        .map_err(|_| ValueError(format!("{what} in {whole:?} is out of range")))
}

impl FromStr for Community {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let s = bounded(s)?;
        let (a, b) = s
            .split_once(':')
            .ok_or_else(|| ValueError(format!("community {s:?} is not of the form ASN:VALUE")))?;
        Ok(Community(
            parse_part(a, "ASN", s)?,
            parse_part(b, "value", s)?,
        ))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

impl Community {
    pub fn as_u32(self) -> u32 {
        (u32::from(self.0) << 16) | u32::from(self.1)
    }
}

impl FromStr for LargeCommunity {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let s = bounded(s)?;
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 3 {
            return Err(ValueError(format!(
                "large community {s:?} is not of the form GLOBAL:LOCAL1:LOCAL2"
            )));
        }
        Ok(LargeCommunity(
            parse_part(parts[0], "global admin", s)?,
            parse_part(parts[1], "local data 1", s)?,
            parse_part(parts[2], "local data 2", s)?,
        ))
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.0, self.1, self.2)
    }
}

impl<T: FromStr<Err = ValueError> + Ord + Copy> FromStr for Span<T> {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let s = bounded(s)?;
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (a.parse::<T>()?, b.parse::<T>()?),
            None => {
                let c = s.parse::<T>()?;
                (c, c)
            }
        };
        if first > last {
            return Err(ValueError(format!("range {s:?} is empty")));
        }
        Ok(Span { first, last })
    }
}

impl<T: Ord> Span<T> {
    pub fn contains(&self, c: &T) -> bool {
        (&self.first..=&self.last).contains(&c)
    }
}

/// A name the kernel accepts for an interface or VRF (IFNAMSIZ) and no daemon parser can misread:
/// 1-15 letters, digits, `-`, `_` or `.`.
pub fn is_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// How much of a user-supplied value messages show.
pub const SHOWN_BYTES: usize = 64;

/// The first [`SHOWN_BYTES`] of `s`, or fewer to end on a character.
pub fn head(s: &str) -> &str {
    let mut end = SHOWN_BYTES.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` if short, else its start and its size: `abc… (100000 bytes)`, so a 100 KB value never
/// fills a log line, an Event or a status.
pub fn short(s: &str) -> String {
    if s.len() <= SHOWN_BYTES {
        return s.into();
    }
    format!("{}… ({} bytes)", head(s), s.len())
}

/// `s` quoted (control characters escaped), cut like [`short`]: `"abc"… (100000 bytes)`.
pub fn shown(s: &str) -> String {
    if s.len() <= SHOWN_BYTES {
        return format!("{s:?}");
    }
    format!("{:?}… ({} bytes)", head(s), s.len())
}

/// A Kubernetes object name (DNS-1123 subdomain): at most 253 characters, dot-separated parts of
/// lower-case letters, digits and `-`, each starting and ending with a letter or digit.
pub fn is_dns_name(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_label_chars)
}

/// A DNS-1123 label, as namespace names must be: at most 63 lower-case letters, digits and `-`,
/// starting and ending with a letter or digit.
pub fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && is_label_chars(name)
}

/// A DNS-1035 label, as Service names must be: a DNS-1123 label starting with a letter.
pub fn is_dns1035_label(name: &str) -> bool {
    is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
}

fn is_label_chars(part: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (part.bytes().next(), part.bytes().last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && part.bytes().all(|b| alnum(b) || b == b'-')
        }
        _ => false,
    }
}

pub fn validate_vrf_name(name: &str) -> Result<(), ValueError> {
    if is_ifname(name) {
        Ok(())
    } else {
        Err(ValueError(format!(
            "VRF name {:?} must be 1-15 characters of letters, digits, '-', '_' or '.'",
            name.chars().take(32).collect::<String>()
        )))
    }
}

/// At most this many communities per Service: FRR refuses a `set community` line of more
/// than about 250 values, and one Service's line must never freeze a node's whole fragment.
pub const MAX_SERVICE_COMMUNITIES: usize = 32;
/// At most this many standard, and as many large, communities per RoutingPolicy.
pub const MAX_POLICY_COMMUNITIES: usize = 64;
/// At most this many ranges in each community list of `serviceOverrides` (and its grants).
pub const MAX_OVERRIDE_RANGES: usize = 64;
/// The longest community-list annotation read (32 large communities take at most 1,056).
pub const MAX_COMMUNITIES_ANNOTATION: usize = 2048;

/// Parses a comma-separated community annotation (`what` names the kind) and keeps what
/// `allowed` allows. Returns the accepted values and a message per refused one. An annotation
/// over the limits is refused whole.
pub fn listed_values<T>(annotation: &str, allowed: &[Span<T>], what: &str) -> (Vec<T>, Vec<String>)
where
    T: FromStr<Err = ValueError> + Ord + Copy + fmt::Display,
{
    if annotation.len() > MAX_COMMUNITIES_ANNOTATION {
        return (
            vec![],
            vec![format!(
                "the annotation is {} bytes; at most {MAX_COMMUNITIES_ANNOTATION} are read",
                annotation.len()
            )],
        );
    }
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for item in annotation
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match item.parse::<T>() {
            Ok(c) if allowed.iter().any(|r| r.contains(&c)) => accepted.push(c),
            Ok(c) => refused.push(format!("{what} {c} is not allowed")),
            Err(e) => refused.push(e.0),
        }
    }
    accepted.sort();
    accepted.dedup();
    if accepted.len() > MAX_SERVICE_COMMUNITIES {
        refused.push(format!(
            "{} values; at most {MAX_SERVICE_COMMUNITIES} per Service, so none is applied",
            accepted.len()
        ));
        accepted.clear();
    }
    (accepted, refused)
}

/// Checks every field of a RoutingPolicy; returns all problems found, not just the first.
pub fn validate_policy(spec: &RoutingPolicySpec) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if spec.protocols.is_empty() {
        problems.push("spec.protocols is empty: name at least one of bgp, ospf, isis, rip".into());
    }
    if let Some(bgp) = &spec.bgp {
        problems.extend(bgp_problems(bgp));
    }
    problems.extend(metric_problems(spec));
    if let Some(o) = &spec.service_overrides {
        problems.extend(override_problems(o));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `spec.bgp`: how many communities, whether each parses, the prepend count and the VRF name.
fn bgp_problems(bgp: &BgpAttributes) -> Vec<String> {
    let mut problems = Vec::new();
    for (field, n) in [
        ("communities", bgp.communities.len()),
        ("largeCommunities", bgp.large_communities.len()),
    ] {
        if n > MAX_POLICY_COMMUNITIES {
            problems.push(format!(
                "spec.bgp.{field} has {n} entries; at most {MAX_POLICY_COMMUNITIES}"
            ));
        }
    }
    for c in &bgp.communities {
        if let Err(e) = c.parse::<Community>() {
            problems.push(format!("spec.bgp.communities: {e}"));
        }
    }
    for c in &bgp.large_communities {
        if let Err(e) = c.parse::<LargeCommunity>() {
            problems.push(format!("spec.bgp.largeCommunities: {e}"));
        }
    }
    if let Some(n) = bgp.as_path_prepend
        && !(1..=10).contains(&n)
    {
        problems.push(format!("spec.bgp.asPathPrepend {n} must be 1-10"));
    }
    if let Some(vrf) = &bgp.vrf
        && let Err(e) = validate_vrf_name(vrf)
    {
        problems.push(format!("spec.bgp.vrf: {e}"));
    }
    problems.extend(route_map_problems(&bgp.outbound_route_maps));
    problems
}

/// At most this many route-maps in `spec.bgp.outboundRouteMaps` (one per neighbor or
/// peer-group is the common case).
pub const MAX_OUTBOUND_ROUTE_MAPS: usize = 64;
/// The longest route-map name accepted: room for an IPv6 neighbor address, a VRF name and a
/// suffix, as frr-k8s names its maps (`fd00::1-red-out`).
pub const MAX_ROUTE_MAP_NAME: usize = 63;
/// The prefix of every object routelb owns in FRR ([`crate::daemon::frr_config::PREFIX`]).
const OWNED_PREFIX: &str = "ROUTELB-";

/// A route-map name FRR reads as one word and no parser can misread: 1-63 letters, digits,
/// `-`, `_`, `.` or `:` (frr-k8s names maps after neighbor addresses, IPv6 ones included).
pub fn is_route_map_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROUTE_MAP_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// `spec.bgp.outboundRouteMaps`: how many, each a valid name and not one of routelb's own.
fn route_map_problems(names: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if names.len() > MAX_OUTBOUND_ROUTE_MAPS {
        problems.push(format!(
            "spec.bgp.outboundRouteMaps has {} entries; at most {MAX_OUTBOUND_ROUTE_MAPS}",
            names.len()
        ));
    }
    for name in names {
        if !is_route_map_name(name) {
            problems.push(format!(
                "spec.bgp.outboundRouteMaps: route-map name {} must be 1-{MAX_ROUTE_MAP_NAME} letters, digits, '-', '_', '.' or ':'",
                shown(name)
            ));
        } else if name.to_ascii_uppercase().starts_with(OWNED_PREFIX) {
            problems.push(format!(
                "spec.bgp.outboundRouteMaps: {name:?} is one of routelb's own names ({OWNED_PREFIX}*); name a route-map of the base configuration"
            ));
        }
    }
    problems
}

/// The OSPF, IS-IS and RIP metrics (and OSPF metric type), each in its protocol's range.
fn metric_problems(spec: &RoutingPolicySpec) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(OspfAttributes {
        metric,
        metric_type,
    }) = &spec.ospf
    {
        if let Some(m) = metric
            && *m > 16_777_214
        {
            problems.push(format!("spec.ospf.metric {m} must be 0-16777214"));
        }
        if let Some(t) = metric_type
            && !matches!(t, 1 | 2)
        {
            problems.push(format!("spec.ospf.metricType {t} must be 1 or 2"));
        }
    }
    if let Some(IsisAttributes {
        metric: Some(m), ..
    }) = &spec.isis
        && *m > 16_777_215
    {
        problems.push(format!("spec.isis.metric {m} must be 0-16777215"));
    }
    if let Some(RipAttributes { metric: Some(m) }) = &spec.rip
        && !(1..=16).contains(m)
    {
        problems.push(format!("spec.rip.metric {m} must be 1-16"));
    }
    problems
}

/// The most a metric or preference may be, per `serviceOverrides` field: what the daemons
/// accept for it.
pub fn override_limit(field: &str) -> u32 {
    match field {
        "bgpAsPathPrepend" => 10,
        "ospfMetric" => 16_777_214,
        "isisMetric" => 16_777_215,
        _ => u32::MAX,
    }
}

/// `spec.serviceOverrides` and each of its grants: the community ranges (how many, whether
/// each parses), the value ranges (ordered, within what the daemon takes) and the selectors.
fn override_problems(o: &ServiceOverrides) -> Vec<String> {
    let mut problems = allowance_problems("spec.serviceOverrides", &o.allowed);
    for (i, g) in o.grants.iter().enumerate() {
        let at = format!("spec.serviceOverrides.grants[{i}]");
        problems.extend(allowance_problems(&at, &g.allowed));
        for ns in &g.namespaces {
            if !is_dns_label(ns) {
                problems.push(format!(
                    "{at}.namespaces: {} is not a namespace name",
                    shown(ns)
                ));
            }
        }
        for (field, sel) in [
            ("namespaceSelector", &g.namespace_selector),
            ("serviceSelector", &g.service_selector),
        ] {
            if let Some(sel) = sel
                && let Err(e) = kube::core::Selector::try_from(sel.clone())
            {
                problems.push(format!("{at}.{field}: {e}"));
            }
        }
    }
    problems
}

fn allowance_problems(at: &str, a: &AttributeAllowance) -> Vec<String> {
    let mut problems = Vec::new();
    for (field, ranges) in [
        ("bgpCommunities", &a.bgp_communities),
        ("bgpLargeCommunities", &a.bgp_large_communities),
    ] {
        if ranges.len() > MAX_OVERRIDE_RANGES {
            problems.push(format!(
                "{at}.{field} has {} entries; at most {MAX_OVERRIDE_RANGES}",
                ranges.len()
            ));
        }
    }
    for r in &a.bgp_communities {
        if let Err(e) = r.parse::<CommunityRange>() {
            problems.push(format!("{at}.bgpCommunities: {e}"));
        }
    }
    for r in &a.bgp_large_communities {
        if let Err(e) = r.parse::<LargeCommunityRange>() {
            problems.push(format!("{at}.bgpLargeCommunities: {e}"));
        }
    }
    for (field, range) in [
        ("bgpLocalPreference", a.bgp_local_preference),
        ("bgpMed", a.bgp_med),
        ("bgpAsPathPrepend", a.bgp_as_path_prepend),
        ("ospfMetric", a.ospf_metric),
        ("isisMetric", a.isis_metric),
    ] {
        let Some(r) = range else { continue };
        let limit = override_limit(field);
        if r.min > r.max {
            problems.push(format!(
                "{at}.{field}: min {} is above max {}",
                r.min, r.max
            ));
        } else if r.max > limit {
            problems.push(format!("{at}.{field}: max {} is above {limit}", r.max));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BgpAttributes, Protocol, ServiceOverrides};

    #[test]
    fn communities_parse_and_refuse_injection() {
        assert_eq!(
            "65000:100".parse::<Community>().unwrap(),
            Community(65000, 100)
        );
        for hostile in [
            "65000:100\nrouter bgp 1",
            "65000:100!",
            "65000:}",
            "\"65000:1\"",
            "65536:1",
            "1:2:3",
            &"9".repeat(200),
            "",
        ] {
            assert!(
                hostile.parse::<Community>().is_err(),
                "{hostile:?} accepted"
            );
        }
        assert_eq!(
            "4200000000:1:2".parse::<LargeCommunity>().unwrap(),
            LargeCommunity(4_200_000_000, 1, 2)
        );
        assert!("1:2".parse::<LargeCommunity>().is_err());
    }

    #[test]
    fn kubernetes_names() {
        for ok in ["a", "web", "a-b", "1a", "a.b", "a.b-c.d", &"a".repeat(253)] {
            assert!(is_dns_name(ok), "{ok:?}");
        }
        for bad in [
            "",
            "A",
            "a_b",
            "-a",
            "a-",
            ".a",
            "a.",
            "a..b",
            "a.-b",
            &"a".repeat(254),
        ] {
            assert!(!is_dns_name(bad), "{bad:?}");
        }
        for ok in ["a", "web-1", "1a", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok:?}");
        }
        for bad in ["", "a.b", "-a", "a-", "A", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad:?}");
        }
        assert!(is_dns1035_label("web-1"));
        for bad in ["1web", "a.b", "", &"a".repeat(64)] {
            assert!(!is_dns1035_label(bad), "{bad:?}");
        }
    }

    #[test]
    fn service_communities_are_bounded_by_policy() {
        let allowed = vec!["65000:100-65000:199".parse().unwrap()];
        let (ok, refused) = listed_values::<Community>(
            "65000:150, 65000:200,bad\n,65000:100",
            &allowed,
            "community",
        );
        assert_eq!(ok, vec![Community(65000, 100), Community(65000, 150)]);
        assert_eq!(refused.len(), 2);
        let (ok, _) = listed_values::<Community>("65000:150", &[], "community");
        assert!(ok.is_empty());
        let large: Vec<LargeCommunityRange> = vec!["64512:1:0-64512:1:99".parse().unwrap()];
        let (ok, refused) =
            listed_values::<LargeCommunity>("64512:1:7,64512:2:7", &large, "large community");
        assert_eq!(ok, vec![LargeCommunity(64512, 1, 7)]);
        assert_eq!(refused, ["large community 64512:2:7 is not allowed"]);
    }

    #[test]
    fn policy_validation_lists_every_problem() {
        let spec = RoutingPolicySpec {
            pool_selector: None,
            node_selector: None,
            protocols: vec![Protocol::Bgp],
            bgp: Some(BgpAttributes {
                communities: vec!["65000:1".into(), "x:1".into()],
                large_communities: vec!["1:2:3".into()],
                local_preference: Some(200),
                med: None,
                as_path_prepend: Some(11),
                vrf: Some("red\n}".into()),
                outbound_route_maps: vec!["ROUTELB-BGP-V4".into()],
                weighted_ecmp: false,
            }),
            ospf: Some(OspfAttributes {
                metric: Some(10),
                metric_type: Some(3),
            }),
            isis: None,
            rip: Some(RipAttributes { metric: Some(17) }),
            service_overrides: Some(ServiceOverrides {
                allowed: AttributeAllowance {
                    bgp_communities: vec!["65000:9-65000:1".into()],
                    ..Default::default()
                },
                grants: vec![],
            }),
        };
        let problems = validate_policy(&spec).unwrap_err();
        assert_eq!(problems.len(), 7, "{problems:#?}");
    }

    #[test]
    fn each_part_of_a_policy_names_its_field() {
        let bgp = BgpAttributes {
            communities: vec!["x:1".into()],
            large_communities: vec!["1:2".into()],
            as_path_prepend: Some(0),
            vrf: Some("red\n}".into()),
            ..Default::default()
        };
        let p = bgp_problems(&bgp);
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(p[0].starts_with("spec.bgp.communities: "), "{}", p[0]);
        assert!(p[1].starts_with("spec.bgp.largeCommunities: "), "{}", p[1]);
        assert_eq!(p[2], "spec.bgp.asPathPrepend 0 must be 1-10");
        assert!(p[3].starts_with("spec.bgp.vrf: "), "{}", p[3]);
        let hooks = BgpAttributes {
            outbound_route_maps: vec![
                "10.0.0.1-out".into(),
                "fd00:30::1-red-out".into(),
                "peer out".into(),
                "x\n}".into(),
                "ROUTELB-BGP-V4".into(),
                "routelb-mine".into(),
                "a".repeat(MAX_ROUTE_MAP_NAME + 1),
                String::new(),
            ],
            ..Default::default()
        };
        let p = bgp_problems(&hooks);
        assert_eq!(p.len(), 6, "{p:#?}");
        assert!(
            p.iter()
                .all(|m| m.starts_with("spec.bgp.outboundRouteMaps: "))
        );
        assert!(p[2].contains("routelb's own"), "{}", p[2]);
        let many = BgpAttributes {
            outbound_route_maps: vec!["peer-out".into(); MAX_OUTBOUND_ROUTE_MAPS + 1],
            ..Default::default()
        };
        assert_eq!(
            bgp_problems(&many),
            ["spec.bgp.outboundRouteMaps has 65 entries; at most 64"]
        );
        let many = BgpAttributes {
            communities: vec!["65000:1".into(); MAX_POLICY_COMMUNITIES + 1],
            ..Default::default()
        };
        assert_eq!(
            bgp_problems(&many),
            ["spec.bgp.communities has 65 entries; at most 64"]
        );

        let spec = RoutingPolicySpec {
            pool_selector: None,
            node_selector: None,
            protocols: vec![],
            bgp: None,
            ospf: Some(OspfAttributes {
                metric: Some(16_777_215),
                metric_type: Some(2),
            }),
            isis: Some(IsisAttributes {
                metric: Some(16_777_216),
                ..Default::default()
            }),
            rip: Some(RipAttributes { metric: Some(0) }),
            service_overrides: None,
        };
        assert_eq!(
            metric_problems(&spec),
            [
                "spec.ospf.metric 16777215 must be 0-16777214",
                "spec.isis.metric 16777216 must be 0-16777215",
                "spec.rip.metric 0 must be 1-16",
            ]
        );

        let o = overrides(AttributeAllowance {
            bgp_communities: vec!["65000:0-65000:99".into(); MAX_OVERRIDE_RANGES + 1],
            ..Default::default()
        });
        assert_eq!(
            override_problems(&o),
            ["spec.serviceOverrides.bgpCommunities has 65 entries; at most 64"]
        );
        let o = overrides(AttributeAllowance {
            bgp_communities: vec!["65000:9-65000:1".into()],
            ..Default::default()
        });
        let p = override_problems(&o);
        assert!(
            p.len() == 1 && p[0].starts_with("spec.serviceOverrides.bgpCommunities: "),
            "{p:#?}"
        );
    }

    fn overrides(allowed: AttributeAllowance) -> ServiceOverrides {
        ServiceOverrides {
            allowed,
            grants: vec![],
        }
    }

    #[test]
    fn grants_and_value_ranges_are_checked() {
        use crate::api::{ServiceGrant, ValueRange};
        let o = ServiceOverrides {
            allowed: AttributeAllowance {
                bgp_med: Some(ValueRange { min: 10, max: 5 }),
                ..Default::default()
            },
            grants: vec![ServiceGrant {
                namespaces: vec!["Team A".into()],
                service_selector: Some(
                    serde_json::from_value(serde_json::json!({"matchExpressions": [
                        {"key": "tier", "operator": "In"}
                    ]}))
                    .unwrap(),
                ),
                allowed: AttributeAllowance {
                    bgp_as_path_prepend: Some(ValueRange { min: 0, max: 11 }),
                    ospf_metric: Some(ValueRange {
                        min: 0,
                        max: 16_777_214,
                    }),
                    bgp_large_communities: vec!["64512:2:0-64512:1:0".into()],
                    ..Default::default()
                },
                ..Default::default()
            }],
        };
        let p = override_problems(&o);
        assert_eq!(p.len(), 5, "{p:#?}");
        assert_eq!(p[0], "spec.serviceOverrides.bgpMed: min 10 is above max 5");
        assert!(p[1].starts_with("spec.serviceOverrides.grants[0].bgpLargeCommunities: range"));
        assert_eq!(
            p[2],
            "spec.serviceOverrides.grants[0].bgpAsPathPrepend: max 11 is above 10"
        );
        assert!(p[3].contains("grants[0].namespaces"), "{}", p[3]);
        assert!(p[4].starts_with("spec.serviceOverrides.grants[0].serviceSelector"));
    }
}
