//! What to write, worked out purely from what IPAM decided and what the API server shows.
//! The shell in `mod.rs` only carries these changes out.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::{
    AddressPoolStatus, FamilyCounts, RoutingPolicySpec, RoutingPolicyStatus, annotations, values,
};
use crate::ipam::{Assignment, Counts, Decision, PoolReport};
use crate::status::{EventSpec, condition};

/// Changes to one Service. Empty means nothing to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceChange {
    /// New `status.loadBalancer.ingress` IPs; `Some(vec![])` clears it.
    pub ingress: Option<Vec<IpAddr>>,
    /// Annotations to set (`Some`) or remove (`None`).
    pub annotations: BTreeMap<&'static str, Option<String>>,
    pub events: Vec<EventSpec>,
    /// Newly allocated / released, for metrics.
    pub allocated: bool,
    pub released: bool,
    pub failure_reason: Option<&'static str>,
}

impl ServiceChange {
    pub fn is_empty(&self) -> bool {
        self.ingress.is_none() && self.annotations.is_empty() && self.events.is_empty()
    }

    /// Sets a note annotation (`None` removes it) and, when it says something new, a
    /// warning Event with it. Returns whether there was such an Event.
    fn note(
        &mut self,
        ann: &BTreeMap<String, String>,
        key: &'static str,
        value: Option<String>,
        reason: &'static str,
    ) -> bool {
        if ann.get(key) == value.as_ref() {
            return false;
        }
        let new = value.clone().map(|note| EventSpec {
            warning: true,
            reason,
            note,
        });
        self.annotations.insert(key, value);
        let told = new.is_some();
        self.events.extend(new);
        told
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Takes back what a service holds, with an Event saying so (`why` is appended to the note).
fn release(change: &mut ServiceChange, current: &[IpAddr], why: &str) {
    if current.is_empty() {
        return;
    }
    change.ingress = Some(vec![]);
    change.released = true;
    change.events.push(EventSpec {
        warning: false,
        reason: "AddressReleased",
        note: format!("Released {}{why}", join(current)),
    });
}

/// Gives a service the addresses IPAM assigned, with an Event saying so, unless it has them.
fn assign(change: &mut ServiceChange, current: &[IpAddr], a: &Assignment) {
    if current == a.addresses {
        return;
    }
    change.ingress = Some(a.addresses.clone());
    change.allocated = true;
    let note = if current.is_empty() {
        format!("Assigned {} from pool {}", join(&a.addresses), a.pool)
    } else {
        format!(
            "Changed from {} to {} (pool {})",
            join(current),
            join(&a.addresses),
            a.pool
        )
    };
    change.events.push(EventSpec {
        warning: false,
        reason: "Allocated",
        note,
    });
}

/// `decision` is `None` for a service routelb no longer serves (its type changed): whatever
/// routelb gave it is taken back. `refused`: the per-service attribute requests no policy
/// grants ([`crate::attributes::summary`]).
pub fn service_change(
    svc: &Service,
    decision: Option<&Decision>,
    refused: Option<String>,
) -> ServiceChange {
    let ann = svc.metadata.annotations.clone().unwrap_or_default();
    let current = crate::ipam::ingress_ips(svc);
    let mut change = ServiceChange::default();
    let set_ann = |change: &mut ServiceChange, key: &'static str, value: Option<String>| {
        if ann.get(key) != value.as_ref() {
            change.annotations.insert(key, value);
        }
    };
    match decision {
        Some(Decision::Assigned(a)) => {
            assign(&mut change, &current, a);
            set_ann(&mut change, annotations::POOL_USED, Some(a.pool.clone()));
            set_ann(&mut change, annotations::ALLOCATION_ERROR, None);
            let warning = (!a.warnings.is_empty()).then(|| a.warnings.join("; "));
            change.note(
                &ann,
                annotations::ALLOCATION_WARNING,
                warning,
                "AllocationWarning",
            );
            change.note(
                &ann,
                annotations::REFUSED_ATTRIBUTES,
                refused,
                "AttributeRefused",
            );
        }
        Some(Decision::Failed(e)) => {
            release(&mut change, &current, "");
            let reason = Some(e.to_string());
            if change.note(
                &ann,
                annotations::ALLOCATION_ERROR,
                reason,
                "AllocationFailed",
            ) {
                change.failure_reason = Some(e.kind());
            }
            set_ann(&mut change, annotations::POOL_USED, None);
            set_ann(&mut change, annotations::ALLOCATION_WARNING, None);
            set_ann(&mut change, annotations::REFUSED_ATTRIBUTES, None);
        }
        None => {
            release(
                &mut change,
                &current,
                ": the service is no longer of type LoadBalancer",
            );
            for key in [
                annotations::POOL_USED,
                annotations::ALLOCATION_ERROR,
                annotations::ALLOCATION_WARNING,
                annotations::REFUSED_ATTRIBUTES,
            ] {
                set_ann(&mut change, key, None);
            }
        }
    }
    change
}

fn saturate(n: u128) -> u64 {
    n.min(i64::MAX as u128) as u64
}

fn short(n: u64) -> String {
    if n >= 1 << 40 {
        "2^40+".to_string()
    } else {
        n.to_string()
    }
}

/// The status an AddressPool should have. Conditions keep their transition time when unchanged.
pub fn pool_status(
    report: &PoolReport,
    generation: Option<i64>,
    old: Option<&AddressPoolStatus>,
    now: &Time,
) -> AddressPoolStatus {
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let ipv4 = family_counts(report.v4);
    let ipv6 = family_counts(report.v6);
    let conditions = pool_conditions(report)
        .into_iter()
        .map(|(type_, ok, reason, message)| {
            condition(type_, ok, reason, message, generation, old_conditions, now)
        })
        .collect();
    AddressPoolStatus {
        allocated_summary: Some(summary(ipv4.allocated, ipv6.allocated)),
        available_summary: Some(summary(ipv4.available, ipv6.available)),
        ipv4,
        ipv6,
        conditions,
        observed_generation: generation,
    }
}

fn family_counts(c: Counts) -> FamilyCounts {
    FamilyCounts {
        allocated: saturate(c.allocated),
        available: saturate(c.available),
    }
}

/// `ipv4/ipv6`, as the printer columns show counts.
fn summary(v4: u64, v6: u64) -> String {
    format!("{}/{}", short(v4), short(v6))
}

/// A pool's conditions as (type, status, reason, message), in the order they are written.
fn pool_conditions(report: &PoolReport) -> [(&'static str, bool, &'static str, String); 3] {
    let ready = match &report.invalid {
        None => ("Ready", true, "Valid", "addresses can be allocated".into()),
        Some(e) => ("Ready", false, "Invalid", e.clone()),
    };
    let invalid = match &report.invalid {
        None => ("Invalid", false, "Valid", "every entry parses".into()),
        Some(e) => ("Invalid", true, "ParseError", e.clone()),
    };
    let overlapping = if report.overlaps.is_empty() {
        (
            "Overlapping",
            false,
            "NoOverlap",
            "no other pool shares these ranges".into(),
        )
    } else {
        (
            "Overlapping",
            true,
            "RangesOverlap",
            format!(
                "ranges overlap pool(s) {}; an address is still never given twice",
                report.overlaps.join(", ")
            ),
        )
    };
    [ready, invalid, overlapping]
}

/// Events for a pool whose conditions turned bad.
pub fn pool_events(new: &AddressPoolStatus, old: Option<&AddressPoolStatus>) -> Vec<EventSpec> {
    let was_true = |t: &str| {
        old.is_some_and(|o| {
            o.conditions
                .iter()
                .any(|c| c.type_ == t && c.status == "True")
        })
    };
    let mut events = Vec::new();
    for c in &new.conditions {
        if c.status == "True" && !was_true(&c.type_) && c.type_ != "Ready" {
            events.push(EventSpec {
                warning: true,
                reason: if c.type_ == "Invalid" {
                    "InvalidPool"
                } else {
                    "OverlappingPool"
                },
                note: c.message.clone(),
            });
        }
    }
    events
}

/// The status a RoutingPolicy should have as far as the cluster can tell: whether it is valid.
/// (Whether each node's daemon has the instances it names is reported by that node's agent.)
pub fn policy_status(
    spec: &RoutingPolicySpec,
    generation: Option<i64>,
    old: Option<&RoutingPolicyStatus>,
    now: &Time,
) -> RoutingPolicyStatus {
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let mut problems = values::validate_policy(spec).err().unwrap_or_default();
    for (what, sel) in [
        ("spec.poolSelector", &spec.pool_selector),
        ("spec.nodeSelector", &spec.node_selector),
    ] {
        if let Some(sel) = sel
            && let Err(e) = kube::core::Selector::try_from(sel.clone())
        {
            problems.push(format!("{what}: {e}"));
        }
    }
    let conditions = if problems.is_empty() {
        vec![
            condition(
                "Ready",
                true,
                "Valid",
                "every field is valid".into(),
                generation,
                old_conditions,
                now,
            ),
            condition(
                "Invalid",
                false,
                "Valid",
                "every field is valid".into(),
                generation,
                old_conditions,
                now,
            ),
        ]
    } else {
        let message = problems.join("; ");
        vec![
            condition(
                "Ready",
                false,
                "Invalid",
                message.clone(),
                generation,
                old_conditions,
                now,
            ),
            condition(
                "Invalid",
                true,
                "ValidationFailed",
                message,
                generation,
                old_conditions,
                now,
            ),
        ]
    };
    RoutingPolicyStatus {
        conditions,
        observed_generation: generation,
    }
}

/// Events for a policy that turned invalid.
pub fn policy_events(
    new: &RoutingPolicyStatus,
    old: Option<&RoutingPolicyStatus>,
) -> Vec<EventSpec> {
    let was_invalid = old.is_some_and(|o| {
        o.conditions
            .iter()
            .any(|c| c.type_ == "Invalid" && c.status == "True")
    });
    new.conditions
        .iter()
        .filter(|c| c.type_ == "Invalid" && c.status == "True" && !was_invalid)
        .map(|c| EventSpec {
            warning: true,
            reason: "InvalidPolicy",
            note: c.message.clone(),
        })
        .collect()
}

/// Whether two statuses differ in anything but condition timestamps.
pub fn pool_status_differs(a: &AddressPoolStatus, b: &AddressPoolStatus) -> bool {
    let strip = |s: &AddressPoolStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) != strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::{AllocationError, Assignment};
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};

    fn now() -> Time {
        Time(Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn service(ingress: &[&str], ann: &[(&str, &str)]) -> Service {
        let mut s = Service::default();
        s.metadata.annotations = Some(
            ann.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        if !ingress.is_empty() {
            s.status = Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ingress
                            .iter()
                            .map(|ip| LoadBalancerIngress {
                                ip: Some(ip.to_string()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            });
        }
        s
    }

    fn assigned(ips: &[&str], pool: &str) -> Decision {
        Decision::Assigned(Assignment {
            pool: pool.into(),
            addresses: ips.iter().map(|i| i.parse().unwrap()).collect(),
            warnings: vec![],
            admitted: true,
        })
    }

    #[test]
    fn new_allocation_writes_status_annotation_and_event() {
        let c = service_change(
            &service(&[], &[]),
            Some(&assigned(&["10.0.0.1"], "a")),
            None,
        );
        assert_eq!(c.ingress, Some(vec!["10.0.0.1".parse().unwrap()]));
        assert_eq!(c.annotations[annotations::POOL_USED], Some("a".into()));
        assert_eq!(c.events[0].reason, "Allocated");
        assert!(c.allocated);
    }

    #[test]
    fn converged_service_needs_nothing() {
        let svc = service(&["10.0.0.1"], &[(annotations::POOL_USED, "a")]);
        assert!(service_change(&svc, Some(&assigned(&["10.0.0.1"], "a")), None).is_empty());
    }

    #[test]
    fn refused_attributes_are_annotated_and_told_once() {
        let d = assigned(&["10.0.0.1"], "a");
        let why = "routelb.io/bgp-med: not granted to this Service (policy p)".to_string();
        let svc = service(&["10.0.0.1"], &[(annotations::POOL_USED, "a")]);
        let c = service_change(&svc, Some(&d), Some(why.clone()));
        assert_eq!(
            c.annotations[annotations::REFUSED_ATTRIBUTES],
            Some(why.clone())
        );
        assert_eq!(
            (c.events.len(), c.events[0].reason, c.events[0].warning),
            (1, "AttributeRefused", true)
        );
        let told = service(
            &["10.0.0.1"],
            &[
                (annotations::POOL_USED, "a"),
                (annotations::REFUSED_ATTRIBUTES, &why),
            ],
        );
        assert!(service_change(&told, Some(&d), Some(why)).is_empty());
        // Granted since (or the annotation removed): the note goes, without an Event.
        let c = service_change(&told, Some(&d), None);
        assert_eq!(c.annotations[annotations::REFUSED_ATTRIBUTES], None);
        assert!(c.events.is_empty());
    }

    #[test]
    fn failure_is_reported_once() {
        let d = Decision::Failed(AllocationError::NoMatchingPool);
        let c = service_change(&service(&[], &[]), Some(&d), None);
        assert_eq!(c.events.len(), 1);
        assert_eq!(c.failure_reason, Some("NoMatchingPool"));
        let reason = d.clone();
        let Decision::Failed(e) = reason else {
            unreachable!()
        };
        let svc = service(&[], &[(annotations::ALLOCATION_ERROR, &e.to_string())]);
        assert!(service_change(&svc, Some(&d), None).is_empty());
    }

    #[test]
    fn type_change_releases() {
        let svc = service(&["10.0.0.1"], &[(annotations::POOL_USED, "a")]);
        let c = service_change(&svc, None, None);
        assert_eq!(c.ingress, Some(vec![]));
        assert_eq!(c.annotations[annotations::POOL_USED], None);
        assert_eq!(c.events[0].reason, "AddressReleased");
        assert!(c.released);
    }

    #[test]
    fn policy_status_reports_every_problem_once() {
        let spec = RoutingPolicySpec {
            pool_selector: None,
            node_selector: None,
            protocols: vec![],
            bgp: Some(crate::api::BgpAttributes {
                communities: vec!["1:x".into()],
                ..Default::default()
            }),
            ospf: None,
            isis: None,
            rip: None,
            service_overrides: None,
        };
        let s = policy_status(&spec, Some(1), None, &now());
        let invalid = s.conditions.iter().find(|c| c.type_ == "Invalid").unwrap();
        assert_eq!(invalid.status, "True");
        assert!(
            invalid.message.contains("protocols") && invalid.message.contains("1:x"),
            "{}",
            invalid.message
        );
        assert_eq!(policy_events(&s, None).len(), 1);
        let again = policy_status(&spec, Some(1), Some(&s), &now());
        assert!(!crate::status::conditions_differ(
            &s.conditions,
            &again.conditions
        ));
        assert!(policy_events(&again, Some(&s)).is_empty());
    }

    #[test]
    fn pool_status_conditions_and_events() {
        let report = PoolReport {
            invalid: None,
            overlaps: vec!["b".into()],
            v4: Counts {
                allocated: 3,
                available: 5,
            },
            v6: Counts {
                allocated: 0,
                available: u128::MAX,
            },
        };
        let s = pool_status(&report, Some(2), None, &now());
        assert_eq!(s.allocated_summary.as_deref(), Some("3/0"));
        assert_eq!(s.available_summary.as_deref(), Some("5/2^40+"));
        assert_eq!(s.ipv6.available, i64::MAX as u64);
        let events = pool_events(&s, None);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "OverlappingPool");
        // Recomputing later keeps timestamps and raises no new event.
        let again = pool_status(&report, Some(2), Some(&s), &now());
        assert!(!pool_status_differs(&s, &again));
        assert_eq!(s.conditions, again.conditions);
        assert!(pool_events(&again, Some(&s)).is_empty());
    }

    #[test]
    fn an_invalid_pool_is_not_ready_and_says_why() {
        let report = PoolReport {
            invalid: Some("spec.addresses is empty".into()),
            ..Default::default()
        };
        assert_eq!(
            pool_conditions(&report),
            [
                (
                    "Ready",
                    false,
                    "Invalid",
                    "spec.addresses is empty".to_string()
                ),
                (
                    "Invalid",
                    true,
                    "ParseError",
                    "spec.addresses is empty".into()
                ),
                (
                    "Overlapping",
                    false,
                    "NoOverlap",
                    "no other pool shares these ranges".into()
                ),
            ]
        );
        let s = pool_status(&report, None, None, &now());
        assert_eq!(s.allocated_summary.as_deref(), Some("0/0"));
        let types: Vec<_> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Invalid", "Overlapping"]);
        assert_eq!(pool_events(&s, None)[0].reason, "InvalidPool");
    }
}
