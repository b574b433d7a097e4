//! A node draining (pure): the same fragment data with its routes made less preferred, so
//! that routers move traffic to the other nodes before this one withdraws. Every BGP entry
//! gets RFC 8326's GRACEFUL_SHUTDOWN community (65535:0), and the local preference, MED and
//! AS-path prepends the operator asked for; OSPF, IS-IS and RIP entries get their protocol's
//! largest usable metric. Only `set` lines of routelb's own route-map entries change: a small
//! diff, no session reset, and the templates stay as reviewed.

use super::model::{CommunityData, FragmentData, Target};

/// RFC 8326 §4.
pub const GRACEFUL_SHUTDOWN: CommunityData = CommunityData {
    asn: 65535,
    value: 0,
};
/// OSPF's largest external metric, IS-IS's largest wide metric below the "not advertised"
/// value, RIP's largest reachable metric.
pub const OSPF_DRAIN_METRIC: u32 = 16_777_214;
pub const ISIS_DRAIN_METRIC: u32 = 16_777_214;
pub const RIP_DRAIN_METRIC: u32 = 15;

/// What a draining node adds to its BGP routes besides the community.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainAttributes {
    pub local_preference: Option<u32>,
    pub med: Option<u32>,
    /// How many times to prepend the instance's own AS.
    pub prepend: u8,
}

/// `data` as a draining node exports it (in place: the pool's entries are not copied).
pub fn drain(d: &mut FragmentData, a: &DrainAttributes) {
    for t in &mut d.bgp {
        drain_bgp(t, a);
    }
    let igp = [
        (d.ospf.iter_mut().collect::<Vec<_>>(), OSPF_DRAIN_METRIC),
        (d.isis.iter_mut().collect(), ISIS_DRAIN_METRIC),
        (d.rip.iter_mut().collect(), RIP_DRAIN_METRIC),
    ];
    for (targets, metric) in igp {
        for t in targets {
            for e in &mut t.entries {
                e.metric = Some(metric);
            }
        }
    }
}

fn drain_bgp(t: &mut Target, a: &DrainAttributes) {
    for e in &mut t.entries {
        if !e.communities.contains(&GRACEFUL_SHUTDOWN) {
            e.communities.push(GRACEFUL_SHUTDOWN);
        }
        if a.local_preference.is_some() {
            e.local_preference = a.local_preference;
        }
        if a.med.is_some() {
            e.med = a.med;
        }
        if let Some(asn) = t.asn {
            e.prepend
                .extend(std::iter::repeat_n(asn, usize::from(a.prepend)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AddressPool, RoutingPolicy};
    use crate::render::model::{BgpInstance, Instances};
    use crate::render::{DaemonKind, RenderInput, Templates, build};
    use serde_json::json;

    fn data(protocols: &[&str]) -> FragmentData {
        let pool: AddressPool = serde_json::from_value(json!({
            "metadata": { "name": "web" },
            "spec": { "addresses": ["198.51.100.0/24", "2001:db8:1::/64"] },
        }))
        .unwrap();
        let policy: RoutingPolicy = serde_json::from_value(json!({
            "metadata": { "name": "p" },
            "spec": { "protocols": protocols,
                      "bgp": { "communities": ["64512:10"], "localPreference": 150 },
                      "ospf": { "metric": 20 } },
        }))
        .unwrap();
        let instances = Instances {
            bgp: vec![BgpInstance {
                asn: 64512,
                vrf: None,
            }],
            ospf: true,
            ospf6: true,
            isis: vec!["CORE".into()],
            rip: true,
            ripng: true,
            ..Default::default()
        };
        build(&RenderInput {
            local_endpoints: &Default::default(),
            node: None,
            node_labels: &Default::default(),
            lb_interface: "kube-lb0",
            pools: &[pool],
            policies: &[policy],
            services: &[],
            instances: &instances,
        })
        .data
    }

    fn drained(data: &FragmentData, a: &DrainAttributes) -> FragmentData {
        let mut d = data.clone();
        drain(&mut d, a);
        d
    }

    #[test]
    fn bgp_entries_carry_graceful_shutdown_and_the_asked_attributes() {
        let before = data(&["bgp"]);
        let a = DrainAttributes {
            local_preference: Some(0),
            med: Some(1000),
            prepend: 2,
        };
        let after = drained(&before, &a);
        let e = &after.bgp[0].entries[0];
        assert_eq!(
            e.communities,
            [
                CommunityData {
                    asn: 64512,
                    value: 10
                },
                GRACEFUL_SHUTDOWN
            ]
        );
        assert_eq!((e.local_preference, e.med), (Some(0), Some(1000)));
        assert_eq!(e.prepend, [64512, 64512]);
        // Without extra attributes, only the community; the policy's own stay.
        let e = &drained(&before, &DrainAttributes::default()).bgp[0].entries[0];
        assert_eq!(e.local_preference, Some(150));
        assert!(e.prepend.is_empty());
        // Draining twice adds nothing more.
        assert_eq!(
            drained(&after, &DrainAttributes::default()).bgp[0].entries[0]
                .communities
                .len(),
            2
        );
        // The prefix lists, the targets and the instances are the same.
        assert_eq!(after.prefix_lists, before.prefix_lists);
        assert_eq!(after.bgp[0].route_map, before.bgp[0].route_map);
    }

    #[test]
    fn igp_entries_get_their_largest_metric() {
        let after = drained(&data(&["ospf", "isis", "rip"]), &DrainAttributes::default());
        let metric = |t: &Option<Target>| t.as_ref().map(|t| t.entries[0].metric);
        assert_eq!(metric(&after.ospf), Some(Some(OSPF_DRAIN_METRIC)));
        assert_eq!(after.isis[0].entries[0].metric, Some(ISIS_DRAIN_METRIC));
        assert_eq!(metric(&after.rip), Some(Some(RIP_DRAIN_METRIC)));
    }

    /// The drained fragment is what the templates render, and it differs from the serving
    /// one only in `set` lines.
    #[test]
    fn a_drained_fragment_differs_only_in_set_lines() {
        for (kind, protocols) in [
            (DaemonKind::Frr, vec!["bgp", "ospf", "isis", "rip"]),
            (DaemonKind::Bird, vec!["bgp", "ospf", "rip"]),
        ] {
            let t = Templates::embedded(kind).unwrap();
            let before = data(&protocols);
            let serving = t.render(&before).unwrap();
            let draining = t
                .render(&drained(&before, &DrainAttributes::default()))
                .unwrap();
            let lines = |s: &str| {
                s.lines()
                    .map(str::to_string)
                    .collect::<std::collections::BTreeSet<_>>()
            };
            let (a, b) = (lines(&serving), lines(&draining));
            let changed: Vec<&String> = a.symmetric_difference(&b).collect();
            assert!(!changed.is_empty());
            for l in changed {
                let l = l.trim();
                assert!(
                    l.starts_with("set ")
                        || l.starts_with("bgp_community.add")
                        || l.starts_with("ospf_metric")
                        || l.starts_with("rip_metric"),
                    "{kind:?}: {l}"
                );
            }
            assert!(draining.contains("65535"), "{kind:?}");
        }
    }
}
