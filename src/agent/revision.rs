//! Which routing revision this node renders from (see [`crate::rollout`]), and what NodeState
//! says of it: applied when, routing health before and since, or why it could not be applied.
//! Pure but for the clock passed in; the pass asks and reports.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::ResourceExt;

use crate::api::rollout::{HealthCounts, PendingRevision, PlannedStep, RevisionStatus};
use crate::api::{RoutingPolicy, RoutingRollout};
use crate::daemon::advertised::Verification;
use crate::daemon::health::Tracker;
use crate::render::{DaemonKind, Templates};
use crate::rollout::{Content, revision_for};

/// What the pass renders from.
pub enum Inputs {
    /// No rollout is followed (or it has no stable revision yet): the live policies and the
    /// agent's own templates.
    Live,
    /// A revision: its policies, and its templates when it carries any.
    Revision { name: String, content: Content },
}

#[derive(Default)]
pub struct State {
    /// The revision rendered last, kept for a pass that finds its revision not cached yet.
    last: Option<(String, Content)>,
    /// The templates of the last revision that carried templates that compiled.
    templates: Option<(String, Templates)>,
    report: Option<RevisionStatus>,
    /// What the daemon would change with the rollout's target, before this node gets it.
    pub pending: Option<PendingRevision>,
    /// A problem for NodeState's `RoutingProblems` (a revision not found).
    pub problem: Option<String>,
}

impl State {
    /// The inputs for this pass: the revision this node is allowed, else (its revision not in
    /// the cache yet) the one rendered last, else the live inputs.
    pub fn inputs(
        &mut self,
        node: &str,
        rollouts: &[Arc<RoutingRollout>],
        revisions: &[Arc<ControllerRevision>],
    ) -> Inputs {
        self.problem = None;
        let status = rollouts.first().and_then(|r| r.status.as_ref());
        let Some(name) = revision_for(node, status) else {
            self.last = None;
            return Inputs::Live;
        };
        // Revisions are immutable: the one rendered last is not parsed again.
        let found = match &self.last {
            Some((last, content)) if last == name => Some(content.clone()),
            _ => revisions
                .iter()
                .find(|r| r.name_any() == name)
                .and_then(|r| serde_json::from_value::<Content>(r.data.as_ref()?.0.clone()).ok()),
        };
        let (name, content) = match (found, &self.last) {
            (Some(content), _) => (name.to_string(), content),
            (None, Some((last, content))) => (last.clone(), content.clone()),
            (None, None) => {
                // The live policies serve for addresses and election; the daemon keeps what it
                // has until the revision arrives (it may not be allowed the live edits).
                self.problem = Some(format!(
                    "routing revision {name} not found yet; the daemon keeps its configuration"
                ));
                return Inputs::Live;
            }
        };
        self.last = Some((name.clone(), content.clone()));
        Inputs::Revision { name, content }
    }

    /// The templates a revision carries, compiled (once per revision); Err when they do not
    /// compile (the caller keeps its templates and reports the error).
    pub fn templates(
        &mut self,
        name: &str,
        content: &Content,
        daemon: DaemonKind,
    ) -> Result<Option<&Templates>, String> {
        let Some(sources) = content.templates_of(daemon.name()) else {
            return Ok(None);
        };
        if self.templates.as_ref().is_none_or(|(n, _)| n != name) {
            let compiled = Templates::from_sources(daemon, &sources).map_err(|e| e.to_string())?;
            self.templates = Some((name.to_string(), compiled));
        }
        Ok(self.templates.as_ref().map(|(_, t)| t))
    }

    /// The daemon has what `name` renders to: a new report, with `before` as the baseline,
    /// unless it had it already.
    /// True when it is new (the daemon did not have this revision before).
    pub fn applied(&mut self, name: &str, now: &str, before: Option<HealthCounts>) -> bool {
        let already = self
            .report
            .as_ref()
            .is_some_and(|r| r.name == name && r.error.is_none() && r.applied.is_some());
        if !already {
            self.report = Some(RevisionStatus {
                name: name.into(),
                applied: Some(now.into()),
                before,
                after: None,
                error: None,
            });
        }
        !already
    }

    /// `name` could not be rendered or applied.
    pub fn failed(&mut self, name: &str, error: String) {
        self.report = Some(RevisionStatus {
            name: name.into(),
            error: Some(error),
            ..Default::default()
        });
    }

    /// A look at the routing since the revision was applied. Every look counts while the
    /// rollout's soak since the apply lasts (`soaking`: the allocator needs a look at its
    /// end); after it, only figures that change (a time alone would write NodeState every look
    /// on every node).
    pub fn looked(&mut self, counts: HealthCounts, soaking: bool) {
        let Some(r) = self.report.as_mut().filter(|r| r.applied.is_some()) else {
            return;
        };
        let same = r.after.as_ref().is_some_and(|a| {
            HealthCounts {
                time: counts.time.clone(),
                ..a.clone()
            } == counts
        });
        if soaking || !same {
            r.after = Some(counts);
        }
    }

    /// When the revision was applied, if it was.
    pub fn applied_at(&self) -> Option<&str> {
        self.report.as_ref()?.applied.as_deref()
    }

    /// Whether the daemon must keep what it has: this node's revision is not in the cache
    /// and nothing was rendered from one before (see [`State::inputs`]).
    pub fn holds_daemon(&self) -> bool {
        self.problem.is_some()
    }
}

/// Whether a revision applied at `applied` may still be soaking at `now`: the rollout's soak
/// (60 s when its spec does not say) and one more look.
pub fn soaking(rollouts: &[Arc<RoutingRollout>], applied: Option<&str>, now: Timestamp) -> bool {
    let soak = rollouts
        .first()
        .and_then(|r| humantime::parse_duration(&r.spec.soak).ok())
        .unwrap_or(Duration::from_secs(60));
    let Some(applied) = applied.and_then(|a| a.parse::<Timestamp>().ok()) else {
        return false;
    };
    let since: Duration = now.duration_since(applied).try_into().unwrap_or_default();
    since <= soak + crate::agent::verify::PERIOD
}

impl State {
    /// Rendering from the live inputs: nothing to report.
    pub fn live(&mut self) {
        self.report = None;
        self.templates = None;
    }

    pub fn status(&self) -> Option<RevisionStatus> {
        self.report.clone()
    }
}

/// The revision this node's rollout rolls out when this node does not render it yet, and
/// its content (once cached): what to plan.
pub fn pending_target(
    rendering: &Inputs,
    rollouts: &[Arc<RoutingRollout>],
    revisions: &[Arc<ControllerRevision>],
) -> Option<(String, Content)> {
    let target = pending_name(rendering, rollouts)?;
    let revision = revisions.iter().find(|r| r.name_any() == target)?;
    let content = serde_json::from_value(revision.data.as_ref()?.0.clone()).ok()?;
    Some((target, content))
}

/// The name of the revision this node's rollout rolls out, when this node does not render it.
pub fn pending_name(rendering: &Inputs, rollouts: &[Arc<RoutingRollout>]) -> Option<String> {
    let target = rollouts.first()?.status.as_ref()?.target_revision.clone()?;
    let rendered = matches!(rendering, Inputs::Revision { name, .. } if *name == target);
    (!rendered).then_some(target)
}

/// Most changes and lines a pending plan lists in NodeState.
const PLANNED_STEPS: usize = 24;
const PLANNED_LINES: usize = 12;

/// A plan as NodeState shows it, bounded.
pub fn pending(name: &str, planned: Result<Vec<crate::impact::Step>, String>) -> PendingRevision {
    match planned {
        Ok(steps) => PendingRevision {
            name: name.into(),
            summary: crate::impact::summary_line(&steps),
            steps: steps
                .iter()
                .take(PLANNED_STEPS)
                .map(|s| PlannedStep {
                    object: s.object.clone(),
                    lines: s.lines.iter().take(PLANNED_LINES).cloned().collect(),
                    more_lines: s.lines.len().saturating_sub(PLANNED_LINES) as u32,
                    effects: s.effects.iter().map(ToString::to_string).collect(),
                })
                .collect(),
            error: None,
        },
        Err(error) => PendingRevision {
            name: name.into(),
            error: Some(error),
            ..Default::default()
        },
    }
}

/// The policies a pass renders: the revision's, or the live ones.
pub fn policies(inputs: &Inputs, live: Vec<RoutingPolicy>) -> Vec<RoutingPolicy> {
    match inputs {
        Inputs::Live => live,
        Inputs::Revision { content, .. } => content.policies(&live),
    }
}

/// The figures a rollout's gate compares, from the last look and verification.
pub fn counts(
    tracker: &Tracker,
    verification: Option<&Verification>,
    now: &str,
) -> Option<HealthCounts> {
    if !tracker.looked() {
        return None;
    }
    let (up, total) = tracker.counts();
    let peers = verification.map(|v| v.peers.as_slice()).unwrap_or_default();
    Some(HealthCounts {
        time: now.into(),
        sessions_up: up as u32,
        sessions_total: total as u32,
        advertised: peers.iter().map(|p| p.advertised as u32).sum(),
        missing: peers.iter().map(|p| p.missing.len() as u32).sum(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
    use serde_json::json;

    use super::*;
    use crate::api::RoutingRolloutStatus;

    fn rollout(stable: &str, target: Option<&str>, updated: &[&str]) -> Arc<RoutingRollout> {
        let mut r = RoutingRollout::new("default", Default::default());
        r.status = Some(RoutingRolloutStatus {
            stable_revision: Some(stable.into()),
            target_revision: target.map(Into::into),
            updated_nodes: updated.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        });
        Arc::new(r)
    }

    fn revision(name: &str, content: &Content) -> Arc<ControllerRevision> {
        Arc::new(ControllerRevision {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(RawExtension(serde_json::to_value(content).unwrap())),
            revision: 1,
        })
    }

    fn content(community: &str, bgp_template: Option<&str>) -> Content {
        let policy: RoutingPolicy = serde_json::from_value(json!({
            "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingPolicy",
            "metadata": { "name": "p" },
            "spec": { "protocols": ["bgp"], "bgp": { "communities": [community] } },
        }))
        .unwrap();
        let templates = bgp_template
            .map(|t| BTreeMap::from([("frr.bgp.conf.tera".to_string(), t.to_string())]));
        Content::new(&[policy], templates)
    }

    fn name_of(inputs: &Inputs) -> Option<&str> {
        match inputs {
            Inputs::Live => None,
            Inputs::Revision { name, .. } => Some(name),
        }
    }

    #[test]
    fn the_node_renders_its_allowed_revision_and_holds_while_one_is_not_cached() {
        let mut state = State::default();
        assert!(matches!(state.inputs("n1", &[], &[]), Inputs::Live));
        let revisions = [revision("r-1", &content("65000:1", None))];
        let stable = [rollout("r-1", None, &[])];
        assert_eq!(
            name_of(&state.inputs("n1", &stable, &revisions)),
            Some("r-1")
        );
        // Allowed r-2, which the cache does not have yet: r-1 still, and no problem.
        let canary = [rollout("r-1", Some("r-2"), &["n1"])];
        assert_eq!(
            name_of(&state.inputs("n1", &canary, &revisions)),
            Some("r-1")
        );
        assert_eq!(state.problem, None);
        // A fresh agent with nothing to hold says so and renders the live policies.
        let mut fresh = State::default();
        assert!(matches!(
            fresh.inputs("n1", &canary, &revisions),
            Inputs::Live
        ));
        assert!(fresh.problem.unwrap().contains("r-2 not found"));
    }

    #[test]
    fn a_revision_reports_applied_once_then_its_looks_and_failures() {
        let mut state = State::default();
        let counts = |up| HealthCounts {
            time: "t".into(),
            sessions_up: up,
            sessions_total: 2,
            advertised: 1,
            missing: 0,
        };
        state.looked(counts(2), true);
        assert_eq!(state.status(), None, "nothing applied, nothing to say");
        state.applied("r-1", "t1", Some(counts(2)));
        state.applied("r-1", "t2", Some(counts(1)));
        state.looked(counts(1), true);
        let r = state.status().unwrap();
        assert_eq!(
            (r.applied.as_deref(), r.before),
            (Some("t1"), Some(counts(2)))
        );
        assert_eq!(r.after, Some(counts(1)));
        // After the soak, a look with the same figures writes nothing new.
        let later = HealthCounts {
            time: "t9".into(),
            ..counts(1)
        };
        state.looked(later.clone(), false);
        assert_eq!(state.status().unwrap().after, Some(counts(1)));
        state.looked(later.clone(), true);
        assert_eq!(state.status().unwrap().after, Some(later));
        state.failed("r-2", "refused".into());
        state.looked(counts(2), true);
        let r = state.status().unwrap();
        assert_eq!(
            (r.name.as_str(), r.error.as_deref(), r.after),
            ("r-2", Some("refused"), None)
        );
        state.live();
        assert_eq!(state.status(), None);
    }

    #[test]
    fn a_revisions_templates_compile_once_and_a_bad_one_is_an_error() {
        let mut state = State::default();
        let plain = content("65000:1", None);
        assert!(
            state
                .templates("r-1", &plain, DaemonKind::Frr)
                .unwrap()
                .is_none()
        );
        let good = content("65000:1", Some("{#- routelb-contract: 1 -#}\n! nothing\n"));
        assert!(
            state
                .templates("r-2", &good, DaemonKind::Frr)
                .unwrap()
                .is_some()
        );
        let bad = content("65000:1", Some("{#- routelb-contract: 1 -#}\n{% if %}\n"));
        let e = state.templates("r-3", &bad, DaemonKind::Frr).err().unwrap();
        assert!(e.contains("bgp"), "{e}");
    }
}
