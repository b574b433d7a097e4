//! The allocator's rollout decision (pure): from the rollout's status, the revision the
//! cluster's inputs make now, and what each live node reports, the next status and its Events.
//! A halt empties the updated nodes, which sends them back to the stable revision: that is the
//! rollback.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::core::{Selector, SelectorExt};
use sha2::{Digest, Sha256};

use crate::api::RoutingRolloutSpec;
use crate::api::RoutingRolloutStatus;
use crate::api::rollout::{HealthCounts, RevisionStatus};
use crate::status::EventSpec;

pub const COMPLETE: &str = "Complete";
pub const PROGRESSING: &str = "Progressing";
pub const PAUSED: &str = "Paused";
pub const HALTED: &str = "Halted";

/// The spec, parsed.
#[derive(Clone, Debug)]
pub struct Strategy {
    pub canary_nodes: u32,
    pub canary_percent: u32,
    pub canary_selector: Option<Selector>,
    pub wave_percent: u32,
    pub soak: Duration,
    pub max_prefix_drop_percent: u32,
    pub progress_deadline: Duration,
    pub paused: bool,
}

impl Strategy {
    /// The spec's strategy, or what does not parse.
    pub fn from_spec(spec: &RoutingRolloutSpec) -> Result<Strategy, String> {
        let duration = |field: &str, text: &str| {
            humantime::parse_duration(text).map_err(|e| format!("spec.{field}: {text:?}: {e}"))
        };
        let canary_selector = spec
            .canary
            .node_selector
            .clone()
            .map(Selector::try_from)
            .transpose()
            .map_err(|e| format!("spec.canary.nodeSelector: {e}"))?;
        Ok(Strategy {
            canary_nodes: spec.canary.nodes,
            canary_percent: spec.canary.percent.min(100),
            canary_selector,
            wave_percent: spec.wave_percent.clamp(1, 100),
            soak: duration("soak", &spec.soak)?,
            max_prefix_drop_percent: spec.max_prefix_drop_percent.min(100),
            progress_deadline: duration("progressDeadline", &spec.progress_deadline)?,
            paused: spec.paused,
        })
    }
}

/// A live node, as the rollout sees it.
#[derive(Clone, Debug, Default)]
pub struct Node<'a> {
    pub name: &'a str,
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// `NodeState.status.revision`.
    pub revision: Option<&'a RevisionStatus>,
}

/// What a step decided.
#[derive(Debug, Default)]
pub struct Step {
    pub status: RoutingRolloutStatus,
    pub events: Vec<EventSpec>,
    /// When to look again without any change: the end of a soak or of a deadline.
    pub wake_in: Option<Duration>,
}

/// How one updated node is doing with the target.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Not applied yet, or no look since; due by then.
    Waiting(String),
    /// Healthy so far; soaked once `remaining` is zero.
    Soaking(Duration),
    Soaked,
    Failed(String),
}

/// One step of the rollout towards `target` (the revision the cluster's inputs make now).
/// `nodes` are the live nodes, sorted by name or not.
pub fn step(
    current: &RoutingRolloutStatus,
    target: &str,
    strategy: &Strategy,
    nodes: &[Node],
    now: Timestamp,
) -> Step {
    let mut step = Step {
        status: current.clone(),
        ..Step::default()
    };
    let s = &mut step.status;
    let stable = match s.stable_revision.clone() {
        None => {
            // The first revision: nothing to compare it with, every node renders it now.
            complete(s, target.to_string());
            return finish(step, nodes.len());
        }
        Some(stable) => stable,
    };
    if target == stable {
        if let Some(old) = s.target_revision.take() {
            step.events.push(event(
                false,
                "RolloutSuperseded",
                format!("{old} gave way to {target}, the stable revision: nothing to roll out"),
            ));
        }
        complete(&mut step.status, stable);
        return finish(step, nodes.len());
    }
    if s.target_revision.as_deref() != Some(target) {
        if let Some(old) = &s.target_revision {
            step.events.push(event(
                false,
                "RolloutSuperseded",
                format!("{old} gave way to {target}"),
            ));
        }
        *s = RoutingRolloutStatus {
            phase: Some(PROGRESSING.into()),
            stable_revision: Some(stable.clone()),
            target_revision: Some(target.into()),
            started: Some(now.to_string()),
            ..Default::default()
        };
        step.events.push(event(
            false,
            "RolloutStarted",
            format!("rolling out {target} (stable: {stable})"),
        ));
    }
    if step.status.phase.as_deref() == Some(HALTED) {
        return finish(step, nodes.len());
    }
    advance(&mut step, &stable, target, strategy, nodes, now);
    finish(step, nodes.len())
}

/// Judges the updated nodes; halts, waits, or starts the next wave (or completes).
fn advance(
    step: &mut Step,
    stable: &str,
    target: &str,
    strategy: &Strategy,
    nodes: &[Node],
    now: Timestamp,
) {
    let s = &mut step.status;
    let (waiting, wake_in) = match judge_wave(s, target, strategy, nodes, now) {
        Ok(pending) => pending,
        Err((name, why)) => {
            let message = format!("{name}: {why}; rolled back to {stable}");
            step.events
                .push(event(true, "RolloutHalted", message.clone()));
            s.phase = Some(HALTED.into());
            s.updated_nodes.clear();
            s.halted_by = Some(name);
            s.halted = Some(now.to_string());
            s.message = Some(message);
            return;
        }
    };
    if strategy.paused {
        s.phase = Some(PAUSED.into());
        s.message = Some("paused by spec.paused".into());
        return;
    }
    s.phase = Some(PROGRESSING.into());
    if !waiting.is_empty() {
        s.message = Some(format!(
            "wave {}: waiting for {}",
            s.wave,
            waiting.join(", ")
        ));
        step.wake_in = wake_in;
        return;
    }
    if nodes.is_empty() {
        s.message = Some("no live node to roll out to".into());
        return;
    }
    let next = next_wave(s, target, strategy, nodes);
    if next.is_empty() {
        step.events.push(event(
            false,
            "RolloutComplete",
            format!("every node renders {target}"),
        ));
        complete(s, target.to_string());
        return;
    }
    s.wave += 1;
    s.wave_started = Some(now.to_string());
    let what = if s.wave == 1 { "canary" } else { "wave" };
    step.events.push(event(
        false,
        "WaveStarted",
        format!("{target} {what} {}: {}", s.wave, next.join(", ")),
    ));
    s.message = Some(format!("wave {}: waiting for {}", s.wave, next.join(", ")));
    s.updated_nodes.extend(next);
    step.wake_in = Some(strategy.progress_deadline);
}

/// The updated nodes still waiting (applying, or soaking), and when the first wait ends; or
/// the first node that failed, with why.
fn judge_wave(
    s: &RoutingRolloutStatus,
    target: &str,
    strategy: &Strategy,
    nodes: &[Node],
    now: Timestamp,
) -> Result<(Vec<String>, Option<Duration>), (String, String)> {
    let wave_started = parse_time(s.wave_started.as_deref()).unwrap_or(now);
    let mut waiting: Vec<String> = vec![];
    let mut wake_in: Option<Duration> = None;
    for name in &s.updated_nodes {
        let Some(node) = nodes.iter().find(|n| n.name == name) else {
            // It may have died of the change (or cannot reach the API any more, and will not
            // learn of a rollback): no next wave on its word.
            let why = format!("stopped renewing its lease after it was given {target}");
            return Err((name.clone(), why));
        };
        match verdict(node.revision, target, strategy, wave_started, now) {
            Verdict::Failed(why) => return Err((name.clone(), why)),
            Verdict::Waiting(due) => {
                waiting.push(format!("{name} ({due})"));
                let deadline = until(wave_started, strategy.progress_deadline, now);
                wake_in = earliest(wake_in, deadline);
            }
            Verdict::Soaking(left) => {
                waiting.push(format!(
                    "{name} (healthy, soaking {}s more)",
                    left.as_secs()
                ));
                wake_in = earliest(wake_in, Some(left));
            }
            Verdict::Soaked => {}
        }
    }
    Ok((waiting, wake_in))
}

/// The nodes of the next wave: the canary first (selected nodes before others), then waves;
/// within each, an order that depends on the target, so a bad change does not always land on
/// the same node first.
fn next_wave(
    s: &RoutingRolloutStatus,
    target: &str,
    strategy: &Strategy,
    nodes: &[Node],
) -> Vec<String> {
    let total = nodes.len() as u32;
    let share = |percent: u32| (total * percent).div_ceil(100);
    let count = if s.updated_nodes.is_empty() {
        strategy.canary_nodes.max(share(strategy.canary_percent))
    } else {
        share(strategy.wave_percent)
    }
    .max(1) as usize;
    let mut rest: Vec<&Node> = nodes
        .iter()
        .filter(|n| !s.updated_nodes.iter().any(|u| u == n.name))
        .collect();
    let preferred = |n: &Node| {
        s.updated_nodes.is_empty()
            && strategy
                .canary_selector
                .as_ref()
                .is_some_and(|sel| n.labels.is_some_and(|l| sel.matches(l)))
    };
    rest.sort_by_cached_key(|n| (!preferred(n), order_key(target, n.name)));
    rest.into_iter()
        .take(count)
        .map(|n| n.name.to_string())
        .collect()
}

fn order_key(target: &str, node: &str) -> [u8; 8] {
    let digest = Sha256::digest(format!("{target}/{node}"));
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    key
}

/// How an updated node is doing with `target`.
fn verdict(
    revision: Option<&RevisionStatus>,
    target: &str,
    strategy: &Strategy,
    wave_started: Timestamp,
    now: Timestamp,
) -> Verdict {
    // The deadline runs from the wave's start to apply, and from the apply to look: an agent
    // restarted mid-rollout applies again and gets its own time to look.
    let overdue = |what: &str, since: Timestamp| {
        if elapsed(since, now) >= strategy.progress_deadline {
            Verdict::Failed(format!(
                "{what} within {}",
                humantime::format_duration(strategy.progress_deadline)
            ))
        } else {
            Verdict::Waiting(what.replacen("did not ", "to ", 1))
        }
    };
    let Some(r) = revision.filter(|r| r.name == target) else {
        return overdue(&format!("did not apply {target}"), wave_started);
    };
    if let Some(e) = &r.error {
        return Verdict::Failed(format!("could not apply {target}: {e}"));
    }
    let Some(applied) = parse_time(r.applied.as_deref()) else {
        return overdue(&format!("did not apply {target}"), wave_started);
    };
    let after = r
        .after
        .as_ref()
        .filter(|a| parse_time(Some(&a.time)).is_some_and(|t| t >= applied));
    let Some(after) = after else {
        return overdue("did not look at its routing after applying", applied);
    };
    // Without a look before the apply (an agent that had just started), nothing lost is the
    // baseline for prefixes; sessions cannot be compared.
    let unknown = HealthCounts {
        sessions_up: 0,
        missing: 0,
        ..after.clone()
    };
    let before = r.before.as_ref().unwrap_or(&unknown);
    if let Some(why) = regression(before, after, strategy.max_prefix_drop_percent) {
        return Verdict::Failed(format!("after applying {target}, {why}"));
    }
    // Soaked on evidence: a healthy look at least the soak after the apply (the agent looks
    // every 10 s during a soak, and after it only writes figures that change).
    let looked = parse_time(Some(&after.time)).unwrap_or(applied);
    if elapsed(applied, looked) >= strategy.soak {
        return Verdict::Soaked;
    }
    match strategy.soak.checked_sub(elapsed(applied, now)) {
        Some(left) if !left.is_zero() => Verdict::Soaking(left),
        // The soak is over; its last look is on its way.
        _ => overdue("did not look at its routing after the soak", applied),
    }
}

/// Why the health after a change is worse than before, if it is: a session or adjacency
/// lost, or more of this node's prefixes not reaching a peer than the bound allows.
pub fn regression(before: &HealthCounts, after: &HealthCounts, max_drop: u32) -> Option<String> {
    if after.sessions_up < before.sessions_up {
        return Some(format!(
            "sessions up fell from {} to {} (of {})",
            before.sessions_up, after.sessions_up, after.sessions_total
        ));
    }
    // A node that had nothing to advertise at its last look before the change (a Service
    // created moments before) counts what it should advertise now.
    let expected =
        u64::from((before.advertised + before.missing).max(after.advertised + after.missing));
    let lost = u64::from(after.missing.saturating_sub(before.missing));
    (lost > 0 && lost * 100 > u64::from(max_drop) * expected).then(|| {
        format!(
            "peers stopped getting {lost} of this node's {expected} prefixes (bound: {max_drop}%)"
        )
    })
}

fn complete(s: &mut RoutingRolloutStatus, stable: String) {
    *s = RoutingRolloutStatus {
        phase: Some(COMPLETE.into()),
        stable_revision: Some(stable),
        ..Default::default()
    };
}

fn finish(mut step: Step, live: usize) -> Step {
    let s = &mut step.status;
    s.updated = Some(match s.target_revision {
        Some(_) => format!("{}/{live}", s.updated_nodes.len()),
        None => format!("{live}/{live}"),
    });
    step
}

fn event(warning: bool, reason: &'static str, note: String) -> EventSpec {
    EventSpec {
        warning,
        reason,
        note,
    }
}

fn parse_time(t: Option<&str>) -> Option<Timestamp> {
    t?.parse().ok()
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    to.duration_since(from).try_into().unwrap_or(Duration::ZERO)
}

fn until(from: Timestamp, after: Duration, now: Timestamp) -> Option<Duration> {
    Some(
        after
            .saturating_sub(elapsed(from, now))
            .max(Duration::from_secs(1)),
    )
}

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
