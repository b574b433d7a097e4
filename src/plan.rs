//! Planning (pure): which addresses this node puts on which interface. Routed pools go on the
//! load-balancer interface, with the pool's aggregation length when it has one (so the kernel
//! makes the aggregate the connected route) or as host routes; local pools go on the interface
//! whose subnet holds the address, with that subnet's length.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use kube::ResourceExt;

use crate::api::{AddressPool, PoolMode};
use crate::node::{IfAddress, NodeInterface};
use crate::service::ServiceAddresses;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Interface name → addresses routelb should hold there.
    pub interfaces: BTreeMap<String, BTreeSet<IfAddress>>,
    /// Addresses that cannot be placed on this node, with the reason.
    pub unplaced: Vec<String>,
}

pub fn plan(
    services: &[ServiceAddresses],
    pools: &[AddressPool],
    lb_interface: &str,
    node: &[NodeInterface],
) -> Plan {
    let mut p = Plan::default();
    p.interfaces.entry(lb_interface.to_string()).or_default();
    for svc in services {
        let Some(pool) = pools.iter().find(|x| x.name_any() == svc.pool) else {
            p.unplaced
                .push(format!("{}: pool {} no longer exists", svc.key, svc.pool));
            continue;
        };
        for ip in &svc.addresses {
            match pool.spec.mode {
                PoolMode::Routed => {
                    let agg = pool.spec.aggregation.as_ref();
                    let len = match ip {
                        IpAddr::V4(_) => agg.and_then(|a| a.ipv4).unwrap_or(32),
                        IpAddr::V6(_) => agg.and_then(|a| a.ipv6).unwrap_or(128),
                    };
                    p.interfaces
                        .entry(lb_interface.to_string())
                        .or_default()
                        .insert((*ip, len));
                }
                PoolMode::Local => {
                    let found = node
                        .iter()
                        .filter(|i| i.name != lb_interface)
                        .find_map(|i| {
                            i.subnets
                                .iter()
                                .find(|s| s.contains(ip))
                                .map(|s| (i, s.prefix_len()))
                        });
                    match found {
                        Some((iface, len)) => {
                            p.interfaces.entry(iface.name.clone()).or_default().insert((*ip, len));
                        }
                        None => p.unplaced.push(format!(
                            "{}: {ip} is in local pool {} but no interface of this node has a subnet holding it",
                            svc.key, svc.pool
                        )),
                    }
                }
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AddressPoolSpec, Aggregation};
    use crate::ipam::ServiceKey;

    fn pool(name: &str, mode: PoolMode, agg: Option<Aggregation>) -> AddressPool {
        AddressPool::new(
            name,
            AddressPoolSpec {
                addresses: vec![],
                mode,
                aggregation: agg,
                auto_assign: true,
                avoid_buggy_ips: false,
                allocation: None,
                fast_failover: None,
            },
        )
    }

    fn svc(name: &str, pool: &str, ips: &[&str]) -> ServiceAddresses {
        ServiceAddresses {
            key: ServiceKey::new("default", name),
            pool: pool.into(),
            addresses: ips.iter().map(|i| i.parse().unwrap()).collect(),
            attributes: Default::default(),
            admitted: true,
        }
    }

    #[test]
    fn routed_local_and_aggregated() {
        let pools = [
            pool("routed", PoolMode::Routed, None),
            pool(
                "agg",
                PoolMode::Routed,
                Some(Aggregation {
                    ipv4: Some(24),
                    ipv6: Some(64),
                }),
            ),
            pool("lan", PoolMode::Local, None),
        ];
        let node = [
            NodeInterface {
                name: "eth0".into(),
                index: 2,
                subnets: vec!["192.168.10.0/24".parse().unwrap()],
                addresses: vec![],
                up: true,
                mac: None,
            },
            NodeInterface {
                name: "kube-lb0".into(),
                index: 3,
                subnets: vec![],
                addresses: vec![],
                up: true,
                mac: None,
            },
        ];
        let p = plan(
            &[
                svc("a", "routed", &["203.0.113.5", "2001:db8::5"]),
                svc("b", "agg", &["198.51.100.7"]),
                svc("c", "lan", &["192.168.10.50"]),
                svc("d", "lan", &["10.0.0.1"]),
                svc("e", "gone", &["10.1.1.1"]),
            ],
            &pools,
            "kube-lb0",
            &node,
        );
        let lb: Vec<String> = p.interfaces["kube-lb0"]
            .iter()
            .map(|(ip, l)| format!("{ip}/{l}"))
            .collect();
        assert_eq!(lb, ["198.51.100.7/24", "203.0.113.5/32", "2001:db8::5/128"]);
        assert_eq!(
            p.interfaces["eth0"].iter().next().unwrap(),
            &("192.168.10.50".parse().unwrap(), 24)
        );
        assert_eq!(p.unplaced.len(), 2, "{:?}", p.unplaced);
    }
}
