//! The base's own `redistribute connected`, kept: FRR holds one such line per instance (and
//! per BGP address family, per IS-IS level and family), so routelb's line replaces the base's.
//! Each of routelb's route-maps there ends with an entry that passes what the base's line
//! passed, with the same attributes ([`BaseFallback`]).

use super::model::{
    BASE_FALLBACK_MARK, BASE_FALLBACK_SEQ, BaseFallback, BaseRedistribute, Instances, Target,
};

/// One fallback per route-map of `targets` (per family it carries) where the base redistributes
/// connected routes itself. IS-IS instances at one level share a route-map: one entry serves
/// them all.
pub(super) fn fallbacks<'t>(
    targets: impl IntoIterator<Item = &'t Target>,
    instances: &Instances,
) -> Vec<BaseFallback> {
    let mut out: Vec<BaseFallback> = Vec::new();
    for t in targets {
        for (family, carried) in [("V4", t.v4), ("V6", t.v6)] {
            let name = format!("{}-{family}", t.route_map);
            if !carried || out.iter().any(|f| f.route_map == name) {
                continue;
            }
            if let Some(base) = instances.redistributed.get(&name) {
                out.push(fallback(name, base));
            }
        }
    }
    out
}

/// The entry that reproduces `base` at the end of routelb's route-map `route_map`.
pub fn fallback(route_map: String, base: &BaseRedistribute) -> BaseFallback {
    BaseFallback {
        route_map,
        seq: BASE_FALLBACK_SEQ,
        description: format!("{BASE_FALLBACK_MARK}{}", base.line),
        call: base.route_map.clone(),
        metric: base.metric,
        metric_type: base.metric_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(route_map: &str, v4: bool, v6: bool) -> Target {
        Target {
            route_map: route_map.into(),
            asn: None,
            vrf: None,
            tag: None,
            level: None,
            v4,
            v6,
            entries: vec![],
            weights: vec![],
        }
    }

    #[test]
    fn one_fallback_per_route_map_where_the_base_redistributes() {
        let base = BaseRedistribute {
            line: "redistribute connected metric 30 route-map LOOPBACKS".into(),
            route_map: Some("LOOPBACKS".into()),
            metric: Some(30),
            metric_type: None,
        };
        let inst = Instances {
            redistributed: [
                ("ROUTELB-OSPF-V4".to_string(), base.clone()),
                ("ROUTELB-ISIS-L2-V6".to_string(), base.clone()),
                ("ROUTELB-RIP-V4".to_string(), base),
            ]
            .into(),
            ..Instances::default()
        };
        let targets = [
            target("ROUTELB-OSPF", true, true),
            target("ROUTELB-ISIS-L2", false, true),
            target("ROUTELB-ISIS-L2", false, true),
            // RIP's IPv4 side is not rendered: its fallback would be an unused entry.
            target("ROUTELB-RIP", false, true),
        ];
        let f = fallbacks(&targets, &inst);
        let names: Vec<&str> = f.iter().map(|f| f.route_map.as_str()).collect();
        assert_eq!(names, ["ROUTELB-OSPF-V4", "ROUTELB-ISIS-L2-V6"]);
        assert_eq!(
            f[0],
            BaseFallback {
                route_map: "ROUTELB-OSPF-V4".into(),
                seq: 65_535,
                description: "base: redistribute connected metric 30 route-map LOOPBACKS".into(),
                call: Some("LOOPBACKS".into()),
                metric: Some(30),
                metric_type: None,
            }
        );
    }
}
