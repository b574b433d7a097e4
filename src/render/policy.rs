//! Policy resolution: which valid RoutingPolicies apply on this node, and which routed pools
//! each protocol exports through them. Pure and usable without rendering: the agent's election
//! needs only [`Resolved::exported_pools`].

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use super::model::Problem;
use crate::api::values;
use crate::api::{AddressPool, PoolMode, Protocol, RoutingPolicy};
use crate::ipam::Pool;

/// A routed pool whose spec parses and whose name may appear in a daemon's configuration.
pub struct RoutedPool<'a> {
    pub object: &'a AddressPool,
    pub name: String,
    pub parsed: Pool,
}

/// One valid policy as it applies to one protocol.
pub struct Rule<'a> {
    pub policy: &'a RoutingPolicy,
    pub name: String,
    /// The pools it exports: indexes into [`Resolved::pools`], ascending.
    pub pools: Vec<usize>,
}

pub struct Resolved<'a> {
    /// Routed pools in use, by name (invalid ones are left out: they export nothing).
    pub pools: Vec<RoutedPool<'a>>,
    /// Per protocol, the rules of the policies that apply here, by policy name; a protocol no
    /// such policy names has no key.
    pub rules: BTreeMap<Protocol, Vec<Rule<'a>>>,
    /// Routed pools some rule exports: the pools whose addresses this node puts on the
    /// load-balancer interface.
    pub exported_pools: BTreeSet<String>,
    /// `Invalid` for each policy skipped because a field does not parse.
    pub problems: Vec<Problem>,
}

impl<'a> Resolved<'a> {
    /// The rules for `protocol`, empty when no policy exports through it.
    pub fn rules(&self, protocol: Protocol) -> &[Rule<'a>] {
        self.rules.get(&protocol).map_or(&[], Vec::as_slice)
    }

    /// The rule of `protocol` that decides a pool's per-service attributes (and, for BGP,
    /// its weights): the first by policy name that exports it, with its index in that
    /// protocol's rules. `pool` indexes `pools`.
    pub fn rule_of(&self, protocol: Protocol, pool: usize) -> Option<(usize, &Rule<'a>)> {
        self.rules(protocol)
            .iter()
            .enumerate()
            .find(|(_, r)| r.pools.contains(&pool))
    }
}

/// Resolves `policies` against `pools`. `node_labels` are the labels of the node rendered for;
/// `None` renders for any node, so node selectors are ignored.
pub fn resolve<'a>(
    pools: &'a [AddressPool],
    policies: &'a [RoutingPolicy],
    node_labels: Option<&BTreeMap<String, String>>,
) -> Resolved<'a> {
    let pools = routed_pools(pools);
    let mut rules: BTreeMap<Protocol, Vec<Rule>> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut sorted: Vec<&RoutingPolicy> = policies.iter().collect();
    sorted.sort_by_key(|p| p.name_any());
    for policy in sorted {
        let name = policy.name_any();
        let (pool_sel, node_sel) = match selectors(policy) {
            Ok(s) => s,
            Err(message) => {
                problems.push(Problem::invalid(&name, message));
                continue;
            }
        };
        if let (Some(labels), Some(sel)) = (node_labels, &node_sel)
            && !sel.matches(labels)
        {
            continue;
        }
        let selected: Vec<usize> = (0..pools.len())
            .filter(|&i| {
                pool_sel
                    .as_ref()
                    .is_none_or(|s| s.matches(pools[i].object.labels()))
            })
            .collect();
        let mut protocols = policy.spec.protocols.clone();
        protocols.sort();
        protocols.dedup();
        for proto in protocols {
            rules.entry(proto).or_default().push(Rule {
                policy,
                name: name.clone(),
                pools: selected.clone(),
            });
        }
    }
    let exported_pools = rules
        .values()
        .flatten()
        .flat_map(|r| r.pools.iter().map(|&i| pools[i].name.clone()))
        .collect();
    Resolved {
        pools,
        rules,
        exported_pools,
        problems,
    }
}

/// Routed pools that parse and have a DNS-1123 name, sorted by name.
fn routed_pools(pools: &[AddressPool]) -> Vec<RoutedPool<'_>> {
    let mut out: Vec<RoutedPool> = pools
        .iter()
        .filter(|p| p.spec.mode == PoolMode::Routed)
        .filter_map(|object| {
            let name = object.name_any();
            if !values::is_dns_name(&name) {
                return None;
            }
            let parsed = Pool::from_spec(&name, &object.spec).ok()?;
            Some(RoutedPool {
                object,
                name,
                parsed,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The policy's pool and node selectors, or why the policy is invalid (every field problem, or
/// the first selector that does not parse).
fn selectors(policy: &RoutingPolicy) -> Result<(Option<Selector>, Option<Selector>), String> {
    values::validate_policy(&policy.spec).map_err(|errs| errs.join("; "))?;
    let selector = |what: &str, s: &Option<LabelSelector>| {
        s.clone()
            .map(Selector::try_from)
            .transpose()
            .map_err(|e| format!("{what}: {e}"))
    };
    Ok((
        selector("spec.poolSelector", &policy.spec.pool_selector)?,
        selector("spec.nodeSelector", &policy.spec.node_selector)?,
    ))
}
