//! Per-service lists: a Service whose pool a rule exports, and which asks for attributes that
//! rule's `serviceOverrides` grant it ([`crate::attributes`]), gets a list of its own addresses
//! so an entry of its own can carry them. What is refused is not rendered; the allocator
//! reports it on the Service.

use super::lists;
use super::model::PrefixList;
use super::policy::Resolved;
use crate::api::Protocol;
use crate::api::values;
use crate::attributes::{self, Accepted};
use crate::service::ServiceAddresses;

/// A service's own list, and its entries' attributes per protocol.
pub(super) struct ServiceList {
    pub list: PrefixList,
    pub entries: Vec<ServiceEntry>,
}

/// What a service's entry adds to one rule's attributes.
pub(super) struct ServiceEntry {
    pub protocol: Protocol,
    /// The rule exporting the service's pool: an index into that protocol's rules.
    pub rule: usize,
    pub accepted: Accepted,
}

impl ServiceList {
    /// The entries for `protocol`'s rules.
    pub(super) fn of(&self, protocol: Protocol) -> impl Iterator<Item = &ServiceEntry> {
        self.entries.iter().filter(move |e| e.protocol == protocol)
    }
}

/// The services with accepted attributes, sorted by namespace and name.
pub(super) fn service_lists(
    resolved: &Resolved,
    services: &[ServiceAddresses],
) -> Vec<ServiceList> {
    let mut asking: Vec<&ServiceAddresses> = services
        .iter()
        .filter(|s| !s.attributes.is_empty() && s.admitted)
        .collect();
    asking.sort_by(|a, b| a.key.cmp(&b.key));
    asking
        .into_iter()
        .filter_map(|svc| service_list(resolved, svc))
        .collect()
}

fn service_list(resolved: &Resolved, svc: &ServiceAddresses) -> Option<ServiceList> {
    let pool = resolved.pools.iter().position(|p| p.name == svc.pool)?;
    let (ns, name) = (&svc.key.namespace, &svc.key.name);
    if resolved.pools[pool].object.spec.aggregation.is_some()
        || !values::is_dns_label(ns)
        || !values::is_dns_label(name)
    {
        return None;
    }
    let entries: Vec<ServiceEntry> = svc
        .attributes
        .protocols()
        .into_iter()
        .filter_map(|protocol| {
            let (rule, r) = resolved.rule_of(protocol, pool)?;
            let (accepted, _) = attributes::evaluate(&svc.attributes, protocol, r.policy);
            (!accepted.is_empty()).then_some(ServiceEntry {
                protocol,
                rule,
                accepted,
            })
        })
        .collect();
    (!entries.is_empty()).then(|| ServiceList {
        list: lists::service_list(ns, name, &svc.addresses),
        entries,
    })
}
