//! Per-service lists: a Service whose pool a BGP rule exports, and which asks for communities
//! that rule's `serviceOverrides` allow, gets a list of its own addresses so its route-map entry
//! can carry them. Everything else it asks for is refused and reported.

use super::lists;
use super::model::{PrefixList, Problem};
use super::policy::Resolved;
use crate::api::values::{self, Community, CommunityRange};
use crate::api::{Protocol, RoutingPolicy};
use crate::service::ServiceAddresses;

/// A service's own list, and what its entry adds to its policy's attributes.
pub(super) struct ServiceList {
    /// The BGP rule exporting the service's pool: an index into the BGP rules.
    pub rule: usize,
    pub list: PrefixList,
    pub communities: Vec<Community>,
}

/// The services with accepted communities, sorted by namespace and name.
pub(super) fn service_lists(
    resolved: &Resolved,
    services: &[ServiceAddresses],
    problems: &mut Vec<Problem>,
) -> Vec<ServiceList> {
    let bgp = resolved.rules(Protocol::Bgp);
    if bgp.is_empty() {
        return vec![];
    }
    let mut asking: Vec<&ServiceAddresses> = services
        .iter()
        .filter(|s| s.bgp_communities.is_some())
        .collect();
    asking.sort_by(|a, b| a.key.cmp(&b.key));
    asking
        .into_iter()
        .filter_map(|svc| service_list(resolved, svc, problems))
        .collect()
}

fn service_list(
    resolved: &Resolved,
    svc: &ServiceAddresses,
    problems: &mut Vec<Problem>,
) -> Option<ServiceList> {
    let pool = resolved.pools.iter().position(|p| p.name == svc.pool)?;
    if !svc.admitted {
        problems.push(Problem::service_refused(
            None,
            format!(
                "service {}: pool {} does not admit it, so its per-service attributes are not honoured",
                svc.key, svc.pool
            ),
        ));
        return None;
    }
    let (index, rule) = resolved.bgp_rule_of(pool)?;
    let refuse = |message: String| Problem::service_refused(Some(&rule.name), message);
    let annotation = svc.bgp_communities.as_deref().unwrap_or("");
    let (accepted, refused) = values::service_communities(annotation, &allowed(rule.policy));
    problems.extend(
        refused
            .into_iter()
            .map(|why| refuse(format!("service {}: {why}", svc.key))),
    );
    if accepted.is_empty() {
        return None;
    }
    if resolved.pools[pool].object.spec.aggregation.is_some() {
        problems.push(refuse(format!(
            "service {}: per-service communities do not apply to aggregated pool {}",
            svc.key, svc.pool
        )));
        return None;
    }
    let (ns, name) = (&svc.key.namespace, &svc.key.name);
    if !values::is_dns_label(ns) || !values::is_dns_label(name) {
        problems.push(refuse(format!(
            "service {}: not a valid Kubernetes namespace/name",
            values::shown(&svc.key.to_string())
        )));
        return None;
    }
    Some(ServiceList {
        rule: index,
        list: lists::service_list(ns, name, &svc.addresses),
        communities: accepted,
    })
}

/// The community ranges a policy lets services add; unparsable ones allow nothing.
fn allowed(policy: &RoutingPolicy) -> Vec<CommunityRange> {
    policy
        .spec
        .service_overrides
        .as_ref()
        .map(|o| {
            o.bgp_communities
                .iter()
                .filter_map(|r| r.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
