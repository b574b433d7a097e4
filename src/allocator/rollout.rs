//! The allocator's side of a staged rollout (shell): snapshots the cluster's routing inputs
//! into a revision (a ControllerRevision), moves the followed RoutingRollout one step
//! ([`crate::rollout::step`], pure) and writes its status and Events. Agents do the rest: each
//! renders the revision its node is allowed.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Resource, ResourceExt};

use super::decide::StatusWrite;
use super::{Ctx, WriteError};
use crate::api::{RoutingPolicy, RoutingRollout, RoutingRolloutStatus};
use crate::metrics::ReasonLabels;
use crate::rollout::step::{self, Strategy};
use crate::rollout::{Content, REVISION_LABEL};

/// Revisions kept besides the stable and the target one.
const KEPT_REVISIONS: usize = 5;

/// The rollout status last written, with the version of the object it was stepped from: until
/// the watch brings the write back, a pass steps from it rather than from the older status
/// in the cache (which would repeat the step's Events).
#[derive(Default)]
pub(super) struct Written(Option<(String, RoutingRolloutStatus)>);

impl Written {
    fn current(&self, rollout: &RoutingRollout) -> RoutingRolloutStatus {
        match &self.0 {
            Some((version, status)) if rollout.resource_version().as_ref() == Some(version) => {
                status.clone()
            }
            _ => rollout.status.clone().unwrap_or_default(),
        }
    }
}

impl Ctx {
    /// One step of the followed rollout, if one exists. Returns the failed writes and when to
    /// step again though nothing changed (a soak or a deadline ends).
    pub(super) async fn step_rollout(&mut self) -> (usize, Option<Duration>) {
        let follow = &self.cfg.rollout;
        let rollouts = self.caches.rollouts.state();
        let Some(rollout) = rollouts.iter().find(|r| r.name_any() == follow.name) else {
            return (0, None);
        };
        let current = self.rollout_written.current(rollout);
        let inputs = Strategy::from_spec(&rollout.spec)
            .and_then(|strategy| Ok((strategy, self.templates()?)));
        let (strategy, templates) = match inputs {
            Ok(inputs) => inputs,
            Err(why) => {
                let mut status = current.clone();
                if current.phase.as_deref() == Some(step::HALTED) {
                    // Why it halted stays what the status says.
                    return (0, None);
                }
                status.message = Some(format!("{why}; nothing rolls out"));
                let ok = self.write_rollout(rollout, &current, status, vec![]).await;
                return (usize::from(!ok), None);
            }
        };
        let policies: Vec<RoutingPolicy> = crate::watch::owned(&self.caches.policies);
        let content = Content::new(&policies, templates);
        let target = content.revision_name(&follow.name);
        if let Err(e) = self.ensure_revision(&target, &content).await {
            self.write_failed(&e);
            return (1, None);
        }
        let states = self.caches.node_states.state();
        let nodes_meta = self.caches.nodes.state();
        let nodes: Vec<step::Node> = self
            .live_nodes
            .iter()
            .map(|name| step::Node {
                name,
                labels: nodes_meta
                    .iter()
                    .find(|n| n.name_any() == *name)
                    .map(|n| n.labels()),
                revision: states
                    .iter()
                    .find(|s| s.name_any() == *name)
                    .and_then(|s| s.status.as_ref())
                    .and_then(|s| s.revision.as_ref()),
            })
            .collect();
        let now = k8s_openapi::jiff::Timestamp::now();
        let next = step::step(&current, &target, &strategy, &nodes, now);
        self.record_rollout(&next);
        let mut failed = usize::from(
            !self
                .write_rollout(rollout, &current, next.status.clone(), next.events)
                .await,
        );
        failed += self.forget_old_revisions(&next.status, &target).await;
        (failed, next.wake_in)
    }

    /// Logs the step's Events and counts them; the gauges say where the rollout is.
    fn record_rollout(&self, step: &step::Step) {
        for e in &step.events {
            e.log();
            self.metrics
                .rollout_events
                .get_or_create(&ReasonLabels {
                    reason: e.reason.into(),
                })
                .inc();
        }
        let s = &step.status;
        self.metrics
            .rollout_updated_nodes
            .set(s.updated_nodes.len() as i64);
        self.metrics
            .rollout_halted
            .set(i64::from(s.phase.as_deref() == Some(step::HALTED)));
    }

    /// The templates ConfigMap's data, when revisions carry templates.
    fn templates(&self) -> Result<Option<BTreeMap<String, String>>, String> {
        let Some(store) = &self.caches.templates else {
            return Ok(None);
        };
        let name = self.cfg.templates_configmap.as_deref().unwrap_or_default();
        let maps = store.state();
        let map = maps.iter().find(|c| c.name_any() == name).ok_or_else(|| {
            format!(
                "templates ConfigMap {}/{name} not found",
                self.cfg.rollout.namespace
            )
        })?;
        Ok(Some(map.data.clone().unwrap_or_default()))
    }

    /// Creates the revision unless it exists; numbered after the newest.
    async fn ensure_revision(&self, name: &str, content: &Content) -> Result<(), WriteError> {
        let existing = self.caches.revisions.state();
        if existing.iter().any(|r| r.name_any() == name) {
            return Ok(());
        }
        let follow = &self.cfg.rollout;
        let revision = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(follow.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    REVISION_LABEL.to_string(),
                    follow.name.clone(),
                )])),
                ..Default::default()
            },
            data: Some(RawExtension(
                serde_json::to_value(content).expect("content always serializes"),
            )),
            revision: existing.iter().map(|r| r.revision).max().unwrap_or(0) + 1,
        };
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &follow.namespace);
        match api.create(&PostParams::default(), &revision).await {
            Ok(_) => {
                tracing::info!(revision = name, "routing revision written");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(source) => Err(WriteError {
                kind: "ControllerRevision".into(),
                name: name.into(),
                what: "object",
                source,
            }),
        }
    }

    /// Writes the rollout's status when it changed, then its Events. True unless it failed.
    async fn write_rollout(
        &mut self,
        rollout: &RoutingRollout,
        current: &RoutingRolloutStatus,
        status: RoutingRolloutStatus,
        events: Vec<crate::status::EventSpec>,
    ) -> bool {
        if status == *current && events.is_empty() {
            return true;
        }
        let written = self
            .write_status::<RoutingRollout, _>(StatusWrite {
                name: rollout.name_any(),
                object: rollout.object_ref(&()),
                status: with_nulls(&status),
                events,
            })
            .await;
        if written {
            self.rollout_written = Written(rollout.resource_version().map(|v| (v, status)));
        }
        written
    }

    /// Deletes revisions neither stable nor targeted, but the newest few. Returns failures.
    async fn forget_old_revisions(&self, status: &RoutingRolloutStatus, target: &str) -> usize {
        let mut old: Vec<_> = self
            .caches
            .revisions
            .state()
            .into_iter()
            .filter(|r| {
                let name = r.name_any();
                name != target
                    && status.stable_revision.as_deref() != Some(&name)
                    && status.target_revision.as_deref() != Some(&name)
            })
            .collect();
        old.sort_by_key(|r| std::cmp::Reverse(r.revision));
        let api: Api<ControllerRevision> =
            Api::namespaced(self.client.clone(), &self.cfg.rollout.namespace);
        let mut failed = 0;
        for r in old.iter().skip(KEPT_REVISIONS) {
            match api.delete(&r.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => {
                    self.write_failed(&WriteError {
                        kind: "ControllerRevision".into(),
                        name: r.name_any(),
                        what: "deletion",
                        source,
                    });
                    failed += 1;
                }
            }
        }
        failed
    }
}

/// The status as a merge patch: the optional fields it lacks are nulled, or the old values
/// would stay.
fn with_nulls(status: &RoutingRolloutStatus) -> serde_json::Value {
    let mut value = serde_json::to_value(status).expect("status always serializes");
    if let Some(map) = value.as_object_mut() {
        for key in [
            "phase",
            "updated",
            "stableRevision",
            "targetRevision",
            "message",
            "haltedBy",
            "started",
            "waveStarted",
            "halted",
        ] {
            map.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    value
}
