//! [`build`]: the data contract for one node (or any node) from pools, policies, services and
//! the daemon's instances. Policies are resolved first ([`super::policy`]); then prefix lists
//! ([`super::lists`], [`super::services`]) and the targets of each protocol ([`super::bgp`],
//! [`super::igp`]) are built from them.

use super::model::{Built, CONTRACT, FragmentData, RenderInput};
use super::{bgp, fallback, hooks, igp, lists, policy, services, weights};
use crate::api::Protocol;
use crate::api::values;

/// The contract for `input`, what could not be honoured, and the routed pools this node
/// exports.
pub fn build(input: &RenderInput) -> Built {
    // Node selectors count only when rendering for a node.
    let node_labels = input.node.map(|_| input.node_labels);
    let mut resolved = policy::resolve(input.pools, input.policies, node_labels);
    let mut problems = std::mem::take(&mut resolved.problems);
    let pool_lists = lists::pool_lists(&resolved);
    let service_lists = services::service_lists(&resolved, input.services);
    let inst = input.instances;
    let (bgp, weight_lists) = bgp::targets(
        resolved.rules(Protocol::Bgp),
        &pool_lists,
        &service_lists,
        &inst.bgp,
        &mut problems,
        |in_vrf, route_map, asn| {
            weights::weights(
                &resolved,
                in_vrf,
                input.services,
                input.local_endpoints,
                route_map,
                asn,
            )
        },
    );
    let route_map_hooks = hooks::hooks(
        resolved.rules(Protocol::Bgp),
        &pool_lists,
        inst,
        &mut problems,
    );
    let igp_input = |protocol| igp::IgpInput {
        rules: resolved.rules(protocol),
        lists: &pool_lists,
        services: &service_lists,
    };
    let ospf = igp::ospf(&igp_input(Protocol::Ospf), inst, &mut problems);
    let isis = igp::isis(&igp_input(Protocol::Isis), &inst.isis, &mut problems);
    let rip = igp::rip(&igp_input(Protocol::Rip), inst, &mut problems);
    let base_fallbacks =
        fallback::fallbacks(bgp.iter().chain(&ospf).chain(&isis).chain(&rip), inst);
    let mut prefix_lists = pool_lists.into_lists();
    prefix_lists.extend(service_lists.into_iter().map(|s| s.list));
    prefix_lists.extend(weight_lists);
    let node = input.node.filter(|n| values::is_dns_name(n));
    let data = FragmentData {
        contract: CONTRACT,
        generator: format!("routelb {}", env!("CARGO_PKG_VERSION")),
        node: node.unwrap_or_default().to_string(),
        lb_interface: input.lb_interface.to_string(),
        prefix_lists,
        bgp,
        ospf,
        isis,
        rip,
        route_map_hooks,
        base_fallbacks,
        bfd: Default::default(),
    };
    Built {
        data,
        problems,
        exported_pools: resolved.exported_pools,
    }
}
