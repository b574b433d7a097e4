use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::step::{self, HALTED, Node, PROGRESSING, Strategy, regression, step as next};
use super::{Content, revision_for};
use crate::api::rollout::{HealthCounts, RevisionStatus};
use crate::api::{RoutingPolicy, RoutingRolloutSpec, RoutingRolloutStatus};

fn policy(name: &str, community: &str) -> RoutingPolicy {
    serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingPolicy",
        "metadata": { "name": name, "uid": format!("uid-{name}") },
        "spec": { "protocols": ["bgp"], "bgp": { "communities": [community] } },
    }))
    .unwrap()
}

fn strategy(spec: serde_json::Value) -> Strategy {
    let spec: RoutingRolloutSpec = serde_json::from_value(spec).unwrap();
    Strategy::from_spec(&spec).unwrap()
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn counts(secs: i64, up: u32, advertised: u32, missing: u32) -> HealthCounts {
    HealthCounts {
        time: at(secs).to_string(),
        sessions_up: up,
        sessions_total: 2,
        advertised,
        missing,
    }
}

/// `n` nodes named node-1…, with what each reports.
struct Cluster {
    names: Vec<String>,
    labels: BTreeMap<String, BTreeMap<String, String>>,
    reports: BTreeMap<String, RevisionStatus>,
}

impl Cluster {
    fn new(n: usize) -> Self {
        Cluster {
            names: (1..=n).map(|i| format!("node-{i}")).collect(),
            labels: BTreeMap::new(),
            reports: BTreeMap::new(),
        }
    }

    fn nodes(&self) -> Vec<Node<'_>> {
        self.names
            .iter()
            .map(|n| Node {
                name: n,
                labels: self.labels.get(n),
                revision: self.reports.get(n),
            })
            .collect()
    }

    /// `node` applied `rev` at `applied`, looked at `looked` and saw `after`.
    fn report(&mut self, node: &str, rev: &str, applied: i64, after: HealthCounts) {
        self.reports.insert(
            node.into(),
            RevisionStatus {
                name: rev.into(),
                applied: Some(at(applied).to_string()),
                before: Some(counts(applied - 1, 2, 4, 0)),
                after: Some(after),
                error: None,
            },
        );
    }

    fn step(&self, s: &RoutingRolloutStatus, target: &str, st: &Strategy, t: i64) -> step::Step {
        next(s, target, st, &self.nodes(), at(t))
    }
}

fn stable(rev: &str) -> RoutingRolloutStatus {
    RoutingRolloutStatus {
        phase: Some(step::COMPLETE.into()),
        stable_revision: Some(rev.into()),
        ..Default::default()
    }
}

#[test]
fn a_revision_is_named_after_its_content_only() {
    let a = Content::new(&[policy("a", "65000:1"), policy("b", "65000:2")], None);
    let b = Content::new(&[policy("b", "65000:2"), policy("a", "65000:1")], None);
    assert_eq!(a.revision_name("default"), b.revision_name("default"));
    assert!(a.revision_name("default").starts_with("default-"));
    let edited = Content::new(&[policy("a", "65000:9"), policy("b", "65000:2")], None);
    assert_ne!(a.revision_name("default"), edited.revision_name("default"));
    let templates = BTreeMap::from([("frr.bgp.conf.tera".to_string(), "x".to_string())]);
    let with_templates = Content::new(
        &[policy("a", "65000:1"), policy("b", "65000:2")],
        Some(templates),
    );
    assert_ne!(
        a.revision_name("default"),
        with_templates.revision_name("default")
    );
    // And it survives the trip through a ControllerRevision's data.
    let back: Content =
        serde_json::from_value(serde_json::to_value(&with_templates).unwrap()).unwrap();
    assert_eq!(back, with_templates);
}

#[test]
fn a_revisions_policies_keep_live_metadata_and_its_own_specs() {
    let content = Content::new(&[policy("a", "65000:1"), policy("gone", "65000:3")], None);
    let live = [policy("a", "65000:9")];
    let policies = content.policies(&live);
    assert_eq!(policies.len(), 2);
    assert_eq!(policies[0].metadata.uid.as_deref(), Some("uid-a"));
    assert_eq!(
        policies[0].spec.bgp.as_ref().unwrap().communities,
        ["65000:1"]
    );
    assert_eq!(policies[1].metadata.name.as_deref(), Some("gone"));
}

#[test]
fn a_revisions_templates_are_split_by_daemon() {
    let templates = BTreeMap::from([
        ("frr.bgp.conf.tera".to_string(), "f".to_string()),
        ("bird.bgp.conf.tera".to_string(), "b".to_string()),
        ("README".to_string(), "r".to_string()),
    ]);
    let content = Content::new(&[], Some(templates));
    assert_eq!(
        content.templates_of("frr").unwrap(),
        BTreeMap::from([("bgp".to_string(), "f".to_string())])
    );
    assert_eq!(Content::new(&[], None).templates_of("frr"), None);
}

#[test]
fn a_node_renders_the_target_only_once_updated() {
    assert_eq!(revision_for("node-1", None), None);
    assert_eq!(
        revision_for("node-1", Some(&RoutingRolloutStatus::default())),
        None
    );
    let mut s = stable("r-1");
    assert_eq!(revision_for("node-1", Some(&s)), Some("r-1"));
    s.target_revision = Some("r-2".into());
    s.updated_nodes = vec!["node-2".into()];
    assert_eq!(revision_for("node-1", Some(&s)), Some("r-1"));
    assert_eq!(revision_for("node-2", Some(&s)), Some("r-2"));
}

#[test]
fn the_first_revision_is_stable_at_once() {
    let c = Cluster::new(3);
    let st = strategy(json!({}));
    let s = c.step(&RoutingRolloutStatus::default(), "r-1", &st, 0);
    assert_eq!(s.status.phase.as_deref(), Some(step::COMPLETE));
    assert_eq!(s.status.stable_revision.as_deref(), Some("r-1"));
    assert_eq!(s.status.updated.as_deref(), Some("3/3"));
    // Nothing changes while the inputs do not.
    let again = c.step(&s.status, "r-1", &st, 10);
    assert_eq!(again.status, s.status);
    assert!(again.events.is_empty());
}

#[test]
fn a_healthy_change_goes_canary_then_waves_then_complete() {
    let mut c = Cluster::new(5);
    let st = strategy(json!({"canary": {"nodes": 1}, "wavePercent": 40, "soak": "30s"}));
    let s = c.step(&stable("r-1"), "r-2", &st, 0);
    assert_eq!(s.status.phase.as_deref(), Some(PROGRESSING));
    assert_eq!(s.status.wave, 1);
    assert_eq!(s.status.updated_nodes.len(), 1);
    assert_eq!(s.status.updated.as_deref(), Some("1/5"));
    let reasons: Vec<_> = s.events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["RolloutStarted", "WaveStarted"]);
    let canary = s.status.updated_nodes[0].clone();

    // Waits for the canary to apply and look.
    let waiting = c.step(&s.status, "r-2", &st, 5);
    assert_eq!(waiting.status.updated_nodes, std::slice::from_ref(&canary));
    assert!(waiting.status.message.as_ref().unwrap().contains(&canary));
    assert!(waiting.events.is_empty());

    // Applied and healthy, but not soaked: still waiting, woken when the soak ends.
    c.report(&canary, "r-2", 6, counts(10, 2, 4, 0));
    let soaking = c.step(&waiting.status, "r-2", &st, 12);
    assert_eq!(soaking.status.wave, 1);
    assert_eq!(soaking.wake_in, Some(Duration::from_secs(24)));

    // A look 30 s after applying: the next wave, 40 % of 5 = 2 nodes.
    c.report(&canary, "r-2", 6, counts(36, 2, 4, 0));
    let wave2 = c.step(&soaking.status, "r-2", &st, 37);
    assert_eq!(wave2.status.wave, 2);
    assert_eq!(wave2.status.updated_nodes.len(), 3);
    assert_eq!(wave2.status.updated.as_deref(), Some("3/5"));

    let mut status = wave2.status;
    let mut t = 40;
    while status.phase.as_deref() == Some(PROGRESSING) {
        for n in status.updated_nodes.clone() {
            if !c.reports.contains_key(&n) {
                c.report(&n, "r-2", t, counts(t + 31, 2, 4, 0));
            }
        }
        t += 40;
        status = c.step(&status, "r-2", &st, t).status;
        assert!(t < 400, "never completed: {status:?}");
    }
    assert_eq!(status.phase.as_deref(), Some(step::COMPLETE));
    assert_eq!(status.stable_revision.as_deref(), Some("r-2"));
    assert!(status.updated_nodes.is_empty());
}

#[test]
fn a_lost_session_or_prefix_halts_and_rolls_the_canary_back() {
    let st = strategy(json!({"soak": "30s"}));
    for (after, why) in [
        (counts(10, 1, 4, 0), "sessions up fell from 2 to 1"),
        (
            counts(10, 2, 0, 4),
            "peers stopped getting 4 of this node's 4 prefixes",
        ),
    ] {
        let mut c = Cluster::new(4);
        let s = c.step(&stable("r-1"), "r-2", &st, 0);
        let canary = s.status.updated_nodes[0].clone();
        c.report(&canary, "r-2", 6, after);
        let halted = c.step(&s.status, "r-2", &st, 11);
        assert_eq!(halted.status.phase.as_deref(), Some(HALTED));
        assert!(halted.status.updated_nodes.is_empty(), "rolled back");
        assert_eq!(halted.status.halted_by.as_deref(), Some(canary.as_str()));
        let message = halted.status.message.clone().unwrap();
        assert!(message.contains(why), "{message}");
        assert!(message.contains("rolled back to r-1"), "{message}");
        assert_eq!(halted.events.len(), 1);
        assert!(halted.events[0].warning);
        assert_eq!(halted.events[0].reason, "RolloutHalted");
        // A halted rollout stays halted: nobody else gets the target.
        let later = c.step(&halted.status, "r-2", &st, 100);
        assert_eq!(later.status.phase.as_deref(), Some(HALTED));
        assert!(later.status.updated_nodes.is_empty());
        assert!(later.events.is_empty());
        // Every node renders the stable revision again.
        for n in &c.names {
            assert_eq!(revision_for(n, Some(&later.status)), Some("r-1"));
        }
    }
}

#[test]
fn a_fix_starts_a_new_rollout_and_a_revert_ends_it() {
    let mut c = Cluster::new(3);
    let st = strategy(json!({}));
    let s = c.step(&stable("r-1"), "r-2", &st, 0);
    let canary = s.status.updated_nodes[0].clone();
    c.reports.insert(
        canary.clone(),
        RevisionStatus {
            name: "r-2".into(),
            error: Some("template bgp: unexpected end".into()),
            ..Default::default()
        },
    );
    let halted = c.step(&s.status, "r-2", &st, 3);
    assert_eq!(halted.status.phase.as_deref(), Some(HALTED));
    assert!(
        halted
            .status
            .message
            .as_ref()
            .unwrap()
            .contains("could not apply r-2: template bgp")
    );
    let fixed = c.step(&halted.status, "r-3", &st, 60);
    assert_eq!(fixed.status.phase.as_deref(), Some(PROGRESSING));
    assert_eq!(fixed.status.target_revision.as_deref(), Some("r-3"));
    assert_eq!(fixed.status.halted_by, None);
    let reverted = c.step(&halted.status, "r-1", &st, 60);
    assert_eq!(reverted.status.phase.as_deref(), Some(step::COMPLETE));
    assert_eq!(reverted.status.target_revision, None);
    assert_eq!(reverted.events[0].reason, "RolloutSuperseded");
}

#[test]
fn a_node_that_never_applies_halts_at_the_deadline() {
    let c = Cluster::new(2);
    let st = strategy(json!({"progressDeadline": "2m"}));
    let s = c.step(&stable("r-1"), "r-2", &st, 0);
    let waiting = c.step(&s.status, "r-2", &st, 119);
    assert_eq!(waiting.status.phase.as_deref(), Some(PROGRESSING));
    assert_eq!(waiting.wake_in, Some(Duration::from_secs(1)));
    let halted = c.step(&waiting.status, "r-2", &st, 120);
    assert_eq!(halted.status.phase.as_deref(), Some(HALTED));
    assert!(
        halted
            .status
            .message
            .as_ref()
            .unwrap()
            .contains("did not apply r-2 within 2m"),
        "{:?}",
        halted.status.message
    );
}

#[test]
fn the_canary_prefers_selected_nodes_and_the_share() {
    let mut c = Cluster::new(10);
    c.labels.insert(
        "node-7".into(),
        BTreeMap::from([("canary".to_string(), "yes".to_string())]),
    );
    let st = strategy(
        json!({"canary": {"nodes": 1, "nodeSelector": {"matchLabels": {"canary": "yes"}}}}),
    );
    let s = c.step(&stable("r-1"), "r-2", &st, 0);
    assert_eq!(s.status.updated_nodes, ["node-7"]);
    let st = strategy(json!({"canary": {"nodes": 1, "percent": 25}}));
    let s = c.step(&stable("r-1"), "r-2", &st, 0);
    assert_eq!(s.status.updated_nodes.len(), 3, "25 % of 10, rounded up");
}

#[test]
fn pausing_holds_the_next_wave() {
    let mut c = Cluster::new(3);
    let st = strategy(json!({"soak": "0s", "paused": true}));
    let s = c.step(&stable("r-1"), "r-2", &st, 0);
    assert_eq!(s.status.phase.as_deref(), Some(step::PAUSED));
    assert!(s.status.updated_nodes.is_empty());
    let st = strategy(json!({"soak": "0s"}));
    let s = c.step(&stable("r-1"), "r-2", &st, 0);
    let canary = s.status.updated_nodes[0].clone();
    c.report(&canary, "r-2", 1, counts(2, 2, 4, 0));
    let paused = c.step(
        &s.status,
        "r-2",
        &strategy(json!({"soak": "0s", "paused": true})),
        3,
    );
    assert_eq!(paused.status.phase.as_deref(), Some(step::PAUSED));
    assert_eq!(paused.status.updated_nodes, [canary]);
}

#[test]
fn a_node_that_dies_after_getting_the_target_halts_and_no_node_is_not_complete() {
    let mut c = Cluster::new(3);
    let st = strategy(json!({}));
    let s = c.step(&stable("r-1"), "r-2", &st, 0);
    let canary = s.status.updated_nodes[0].clone();
    c.names.retain(|n| *n != canary);
    let next = c.step(&s.status, "r-2", &st, 1);
    assert_eq!(next.status.phase.as_deref(), Some(HALTED));
    assert_eq!(next.status.halted_by.as_deref(), Some(canary.as_str()));
    assert!(
        next.status
            .message
            .unwrap()
            .contains("stopped renewing its lease")
    );
    // With no live node at all, a change waits: it never completes unseen.
    let none = Cluster::new(0);
    let waiting = none.step(&stable("r-1"), "r-2", &st, 0);
    assert_eq!(waiting.status.phase.as_deref(), Some(PROGRESSING));
    assert_eq!(waiting.status.stable_revision.as_deref(), Some("r-1"));
    let spec: RoutingRolloutSpec = serde_json::from_value(json!({"soak": "soon"})).unwrap();
    assert!(
        Strategy::from_spec(&spec)
            .unwrap_err()
            .contains("spec.soak")
    );
}

#[test]
fn a_restarted_agent_gets_its_own_time_to_look_and_no_baseline_is_strict() {
    let mut c = Cluster::new(2);
    let st = strategy(json!({"soak": "30s", "progressDeadline": "60s"}));
    let s = c.step(&stable("r-1"), "r-2", &st, 0);
    let canary = s.status.updated_nodes[0].clone();
    // Restarted 100 s into the wave: applied again, not looked yet — it waits, no halt.
    c.reports.insert(
        canary.clone(),
        RevisionStatus {
            name: "r-2".into(),
            applied: Some(at(100).to_string()),
            ..Default::default()
        },
    );
    let waiting = c.step(&s.status, "r-2", &st, 101);
    assert_eq!(
        waiting.status.phase.as_deref(),
        Some(PROGRESSING),
        "{waiting:?}"
    );
    // Its first look, with no baseline: a prefix not reaching a peer halts.
    c.reports.get_mut(&canary).unwrap().after = Some(counts(102, 2, 3, 1));
    let halted = c.step(&waiting.status, "r-2", &st, 103);
    assert_eq!(halted.status.phase.as_deref(), Some(HALTED));
}

#[test]
fn regression_within_the_bound_is_not_one() {
    let before = counts(0, 2, 90, 10);
    assert_eq!(
        regression(&before, &counts(1, 2, 80, 10), 0),
        None,
        "fewer Services"
    );
    assert_eq!(regression(&before, &counts(1, 3, 90, 10), 0), None);
    assert!(regression(&before, &counts(1, 2, 89, 11), 0).is_some());
    assert_eq!(regression(&before, &counts(1, 2, 85, 15), 5), None);
    assert!(regression(&before, &counts(1, 2, 84, 16), 5).is_some());
    // No prefix at the look before: what the node should advertise now is the measure.
    let empty = counts(0, 2, 0, 0);
    let why = regression(&empty, &counts(1, 2, 0, 2), 0).unwrap();
    assert!(why.contains("2 of this node's 2 prefixes"), "{why}");
}

#[test]
fn a_node_soaks_only_on_a_healthy_look_after_the_soak() {
    let mut c = Cluster::new(2);
    let st = strategy(json!({"soak": "30s", "progressDeadline": "60s"}));
    let s = c.step(&stable("r-1"), "r-2", &st, 0);
    let canary = s.status.updated_nodes[0].clone();
    // Healthy at its first look, 2 s after the apply; the soak is over, but no look since.
    c.report(&canary, "r-2", 1, counts(3, 2, 4, 0));
    let waiting = c.step(&s.status, "r-2", &st, 40);
    assert_eq!(
        waiting.status.wave, 1,
        "no next wave without a look after the soak"
    );
    assert!(
        waiting
            .status
            .message
            .as_ref()
            .unwrap()
            .contains("after the soak"),
        "{:?}",
        waiting.status.message
    );
    // The look comes: the next wave.
    c.report(&canary, "r-2", 1, counts(41, 2, 4, 0));
    assert_eq!(c.step(&waiting.status, "r-2", &st, 42).status.wave, 2);
    // It never comes: halted once the deadline since the apply is over.
    c.report(&canary, "r-2", 1, counts(3, 2, 4, 0));
    let halted = c.step(&waiting.status, "r-2", &st, 62);
    assert_eq!(halted.status.phase.as_deref(), Some(HALTED));
}
