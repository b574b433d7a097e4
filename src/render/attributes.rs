//! Which policies judge a Service's per-service attributes ([`crate::attributes`]), and what
//! no node will render: the allocator's view, across every node's policies.

use kube::ResourceExt;

use super::policy::Resolved;
use crate::api::{AddressPool, PoolMode, Protocol, RoutingPolicy};
use crate::attributes::{Refusal, Request, evaluate, protocol_name};

/// The pools and policies requests are judged against, resolved once for many Services.
pub struct Judge<'a> {
    pools: &'a [AddressPool],
    resolved: Resolved<'a>,
}

impl<'a> Judge<'a> {
    pub fn new(pools: &'a [AddressPool], policies: &'a [RoutingPolicy]) -> Judge<'a> {
        Judge {
            pools,
            resolved: super::policy::resolve(pools, policies, None),
        }
    }

    /// Everything of `request` no node will render, and why, for the Service's annotation and
    /// Events. `pool` is the pool its addresses come from, `admitted` whether that pool
    /// admits it. A protocol's requests are judged by each policy that decides them on some
    /// node: in name order, the policies exporting the pool through that protocol, up to the
    /// first without a node selector (it decides on every node the earlier ones do not
    /// select).
    pub fn refusals(&self, request: &Request, pool: &str, admitted: bool) -> Vec<Refusal> {
        if request.is_empty() {
            return vec![];
        }
        let refuse_all = |why: String| -> Vec<Refusal> {
            request
                .asks
                .keys()
                .map(|annotation| Refusal {
                    annotation,
                    why: why.clone(),
                })
                .collect()
        };
        let Some(object) = self.pools.iter().find(|p| p.name_any() == pool) else {
            return vec![];
        };
        if !admitted {
            return refuse_all(format!(
                "pool {pool} does not admit this Service (its spec.allocation), so it grants nothing per Service"
            ));
        }
        if object.spec.mode != PoolMode::Routed {
            return refuse_all(format!(
                "pool {pool} is a local pool: its addresses are not announced through a routing protocol"
            ));
        }
        if object.spec.aggregation.is_some() {
            return refuse_all(format!(
                "pool {pool} announces aggregates, not a route per Service"
            ));
        }
        let Some(index) = self.resolved.pools.iter().position(|p| p.name == pool) else {
            return vec![];
        };
        let mut out = Vec::new();
        for protocol in request.protocols() {
            let deciding = deciding_policies(&self.resolved, protocol, index);
            if deciding.is_empty() {
                out.extend(request.asks_of(protocol).map(|(annotation, _)| Refusal {
                    annotation,
                    why: format!(
                        "no RoutingPolicy exports pool {pool} through {}",
                        protocol_name(protocol)
                    ),
                }));
            }
            for policy in deciding {
                out.extend(evaluate(request, protocol, policy).1);
            }
        }
        out.sort_by(|a, b| (a.annotation, &a.why).cmp(&(b.annotation, &b.why)));
        out.dedup();
        out
    }
}

fn deciding_policies<'a>(
    resolved: &Resolved<'a>,
    protocol: Protocol,
    pool: usize,
) -> Vec<&'a RoutingPolicy> {
    let mut out = Vec::new();
    for rule in resolved.rules(protocol) {
        if !rule.pools.contains(&pool) {
            continue;
        }
        out.push(rule.policy);
        if rule.policy.spec.node_selector.is_none() {
            break;
        }
    }
    out
}
