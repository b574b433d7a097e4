//! Draining a node (pure): why this node should stop announcing — cordoned, labelled
//! `node.kubernetes.io/exclude-from-external-load-balancers`, a taint the operator named, the
//! agent shutting down — and the phases it goes through: **draining** (its routes made less
//! preferred, [`crate::render::drain`]; its local addresses handed to the next node at once,
//! as they have no preference to lower), then after the drain time **drained** (nothing held,
//! routes withdrawn). Reasons gone: serving again. The time is passed in.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;

use crate::election::Member;
use crate::status::EventSpec;

/// The label with which Kubernetes keeps a node out of load balancers.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Why this node should not announce, from its Node object and the taints the operator named
/// (`--drain-taint`); empty when it should.
pub fn reasons(node: Option<&Node>, drain_taints: &[String]) -> Vec<String> {
    let Some(node) = node else {
        return vec![];
    };
    let mut out = vec![];
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable) == Some(true) {
        out.push("cordoned".to_string());
    }
    if node
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(EXCLUDE_LABEL))
    {
        out.push(format!("labelled {EXCLUDE_LABEL}"));
    }
    for t in spec.and_then(|s| s.taints.as_ref()).into_iter().flatten() {
        if drain_taints.contains(&t.key) {
            out.push(format!("tainted {}", t.key));
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    Serving,
    /// Routes less preferred until `until`; local addresses already handed over.
    Draining {
        reasons: Vec<String>,
        until: Instant,
    },
    /// Nothing announced.
    Drained {
        reasons: Vec<String>,
    },
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Serving => "Serving",
            Phase::Draining { .. } => "Draining",
            Phase::Drained { .. } => "Drained",
        }
    }

    pub fn reasons(&self) -> &[String] {
        match self {
            Phase::Serving => &[],
            Phase::Draining { reasons, .. } | Phase::Drained { reasons } => reasons,
        }
    }

    /// Whether the routes are to be made less preferred.
    pub fn lowers_preference(&self) -> bool {
        !matches!(self, Phase::Serving)
    }

    /// When the next step is due, if one is.
    pub fn due(&self, now: Instant) -> Option<Duration> {
        match self {
            Phase::Draining { until, .. } => Some(until.saturating_duration_since(now)),
            _ => None,
        }
    }

    /// This node as it offers itself to the election: no subnets while draining (local
    /// addresses move at once), nothing at all once drained.
    pub fn member(&self, mut me: Member) -> Member {
        match self {
            Phase::Serving => {}
            Phase::Draining { .. } => me.subnets.clear(),
            Phase::Drained { .. } => {
                me.subnets.clear();
                me.routed_pools.clear();
            }
        }
        me
    }
}

/// The next phase. `first`: the agent's first pass — a node that starts with a reason has
/// nothing to drain and never announces.
pub fn next(
    current: &Phase,
    reasons: Vec<String>,
    now: Instant,
    drain_time: Duration,
    first: bool,
) -> Phase {
    if reasons.is_empty() {
        return Phase::Serving;
    }
    match current {
        Phase::Serving if first || drain_time.is_zero() => Phase::Drained { reasons },
        Phase::Serving => Phase::Draining {
            reasons,
            until: now + drain_time,
        },
        Phase::Draining { until, .. } if now >= *until => Phase::Drained { reasons },
        Phase::Draining { until, .. } => Phase::Draining {
            reasons,
            until: *until,
        },
        Phase::Drained { .. } => Phase::Drained { reasons },
    }
}

/// The Event of a change of phase.
pub fn event(before: &Phase, after: &Phase, drain_time: Duration) -> Option<EventSpec> {
    if before.name() == after.name() {
        return None;
    }
    let why = after.reasons().join(", ");
    let (reason, note) = match after {
        Phase::Serving => ("DrainEnded", "serving again".to_string()),
        Phase::Draining { .. } => (
            "Draining",
            format!(
                "draining ({why}): routes made less preferred and local addresses handed over; withdrawn in {}",
                humantime::format_duration(drain_time)
            ),
        ),
        Phase::Drained { .. } => ("Drained", format!("drained ({why}): nothing announced")),
    };
    Some(EventSpec {
        warning: false,
        reason,
        note,
    })
}

/// The `Draining` condition: true while draining or drained, with why.
pub fn condition(phase: &Phase) -> (&'static str, bool, &'static str, String) {
    let message = match phase {
        Phase::Serving => "announcing".to_string(),
        p => p.reasons().join(", "),
    };
    ("Draining", phase.lowers_preference(), phase.name(), message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn reasons_from_the_node() {
        let taints = vec!["example.com/maintenance".to_string()];
        let plain = node(json!({ "metadata": { "name": "n1" } }));
        assert!(reasons(Some(&plain), &taints).is_empty());
        assert!(reasons(None, &taints).is_empty());
        let all = node(json!({
            "metadata": { "name": "n1", "labels": { EXCLUDE_LABEL: "" } },
            "spec": { "unschedulable": true, "taints": [
                { "key": "example.com/maintenance", "effect": "NoSchedule" },
                { "key": "other", "effect": "NoSchedule" } ] },
        }));
        assert_eq!(
            reasons(Some(&all), &taints),
            [
                "cordoned",
                "labelled node.kubernetes.io/exclude-from-external-load-balancers",
                "tainted example.com/maintenance"
            ]
        );
    }

    #[test]
    fn drains_then_withdraws_then_serves_again() {
        let t0 = Instant::now();
        let d = Duration::from_secs(30);
        let why = || vec!["cordoned".to_string()];
        let p = next(&Phase::Serving, why(), t0, d, false);
        assert_eq!(
            p,
            Phase::Draining {
                reasons: why(),
                until: t0 + d
            }
        );
        assert_eq!(
            p.due(t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(20))
        );
        let e = event(&Phase::Serving, &p, d).unwrap();
        assert_eq!(
            (e.reason, e.note.as_str()),
            (
                "Draining",
                "draining (cordoned): routes made less preferred and local addresses handed over; withdrawn in 30s"
            )
        );
        let p = next(&p, why(), t0 + Duration::from_secs(10), d, false);
        assert_eq!(p.name(), "Draining");
        let p = next(&p, why(), t0 + d, d, false);
        assert_eq!(p, Phase::Drained { reasons: why() });
        assert_eq!(p.due(t0 + d), None);
        let served = next(&p, vec![], t0 + d, d, false);
        assert_eq!(served, Phase::Serving);
        assert_eq!(event(&p, &served, d).unwrap().reason, "DrainEnded");
        assert_eq!(
            condition(&p),
            ("Draining", true, "Drained", "cordoned".to_string())
        );
        assert!(!condition(&served).1);
        // Uncordoned while draining: serving again at once.
        let p = next(&Phase::Serving, why(), t0, d, false);
        assert_eq!(next(&p, vec![], t0, d, false), Phase::Serving);
    }

    #[test]
    fn a_node_that_starts_excluded_never_announces() {
        let t0 = Instant::now();
        let p = next(
            &Phase::Serving,
            vec!["cordoned".into()],
            t0,
            Duration::from_secs(30),
            true,
        );
        assert_eq!(p.name(), "Drained");
        let p = next(&Phase::Serving, vec!["x".into()], t0, Duration::ZERO, false);
        assert_eq!(p.name(), "Drained");
    }

    #[test]
    fn the_member_offers_less_as_the_drain_goes_on() {
        let me = Member {
            node: "n1".into(),
            subnets: vec![("eth0".into(), "10.0.0.0/24".parse().unwrap())],
            routed_pools: ["web".to_string()].into(),
            ..Default::default()
        };
        assert_eq!(Phase::Serving.member(me.clone()), me);
        let draining = Phase::Draining {
            reasons: vec![],
            until: Instant::now(),
        }
        .member(me.clone());
        assert!(draining.subnets.is_empty());
        assert_eq!(draining.routed_pools, me.routed_pools);
        let drained = Phase::Drained { reasons: vec![] }.member(me);
        assert!(drained.subnets.is_empty() && drained.routed_pools.is_empty());
    }
}
