//! The agent's background tasks, so a pass never waits on the API server: the writer of
//! Events and NodeState status, and the renewal of this node's Lease.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{Config, status_pace};
use crate::api::{NodeState, NodeStateStatus, RoutingPolicy};
use crate::backoff::sleep_until;
use crate::election::Member;
use crate::events::EventPublisher;
use crate::ipam::ServiceKey;
use crate::membership;
use crate::metrics::{AgentMetrics, KindLabels};
use crate::status::EventSpec;

/// A write the shell hands to the writer.
pub enum Write {
    ServiceEvent {
        key: ServiceKey,
        event: EventSpec,
    },
    PolicyEvent {
        policy: String,
        event: EventSpec,
    },
    /// The node's status; `urgent` ([`super::status::urgent`]) goes at once, the rest in
    /// the node's next slot among the cluster's `nodes` ([`super::status_pace`]).
    NodeStatus {
        status: Box<NodeStateStatus>,
        urgent: bool,
        nodes: usize,
    },
    /// An Event about this node, on its NodeState.
    NodeEvent(EventSpec),
}

/// Carries out writes in order, NodeState statuses paced; a failed one is logged and
/// counted, and the next status supersedes it.
pub async fn writer(
    client: Client,
    node: String,
    metrics: Arc<AgentMetrics>,
    mut rx: mpsc::UnboundedReceiver<Write>,
) {
    let events = EventPublisher::new(client.clone(), "routelb-agent", &node, "Announce");
    let mut status = StatusWriter::new(client.clone(), node.clone(), metrics);
    loop {
        let due = status.due();
        let step = tokio::select! {
            w = rx.recv() => match w {
                Some(w) => WriterStep::Write(w),
                None => WriterStep::Closed,
            },
            _ = sleep_until(due) => WriterStep::Slot,
        };
        match step {
            WriterStep::Write(w) => write(&node, &events, &mut status, w).await,
            WriterStep::Slot => status.flush().await,
            WriterStep::Closed => return status.flush().await,
        }
    }
}

enum WriterStep {
    Write(Write),
    /// The node's slot to write its pending status came.
    Slot,
    /// The agent is gone: what is pending is written now.
    Closed,
}

async fn write(node: &str, events: &EventPublisher, status: &mut StatusWriter, w: Write) {
    match w {
        Write::ServiceEvent { key, event } => {
            let reference = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Service".into()),
                namespace: Some(key.namespace.clone()),
                name: Some(key.name.clone()),
                ..Default::default()
            };
            events.publish(&reference, event).await;
        }
        Write::PolicyEvent { policy, event } => {
            let reference = ObjectReference {
                api_version: Some(RoutingPolicy::api_version(&()).into()),
                kind: Some("RoutingPolicy".into()),
                name: Some(policy),
                ..Default::default()
            };
            events.publish(&reference, event).await;
        }
        Write::NodeEvent(event) => {
            let reference = ObjectReference {
                api_version: Some(NodeState::api_version(&()).into()),
                kind: Some("NodeState".into()),
                name: Some(node.to_string()),
                ..Default::default()
            };
            events.publish(&reference, event).await;
        }
        Write::NodeStatus {
            status: s,
            urgent,
            nodes,
        } => {
            status.pending = Some(*s);
            status.window = status_pace::window(nodes);
            if urgent {
                status.flush().await;
            }
        }
    }
}

/// The node's NodeState status: the latest not yet written, and when the last write went.
struct StatusWriter {
    client: Client,
    node: String,
    metrics: Arc<AgentMetrics>,
    pending: Option<NodeStateStatus>,
    last_write_ms: Option<u64>,
    window: Duration,
    /// The node's place among the cluster's slots ([`status_pace::phase`]): its name's hash.
    rank: u64,
    /// The object exists (created by this agent, or found): later writes patch its status only.
    created: bool,
}

impl StatusWriter {
    fn new(client: Client, node: String, metrics: Arc<AgentMetrics>) -> Self {
        StatusWriter {
            rank: status_pace::rank(&node),
            client,
            node,
            metrics,
            pending: None,
            last_write_ms: None,
            window: Duration::ZERO,
            created: false,
        }
    }

    /// When the pending status may be written, if one is.
    fn due(&self) -> Option<tokio::time::Instant> {
        self.pending.as_ref()?;
        let now_ms = wall_ms(SystemTime::now());
        let phase = status_pace::phase(self.rank, self.window);
        let at = status_pace::next_write(now_ms, self.last_write_ms, self.window, phase);
        Some(tokio::time::Instant::now() + Duration::from_millis(at - now_ms))
    }

    async fn flush(&mut self) {
        let Some(status) = self.pending.take() else {
            return;
        };
        self.last_write_ms = Some(wall_ms(SystemTime::now()));
        let written = write_node_status(&self.client, &self.node, status, !self.created).await;
        match written {
            Ok(()) => self.created = true,
            Err(e) => {
                // Created again next time, should it have been deleted.
                self.created = false;
                self.metrics
                    .write_errors
                    .get_or_create(&KindLabels {
                        kind: "NodeState".into(),
                    })
                    .inc();
                tracing::warn!(kind = "NodeState", error = %e, "write failed");
            }
        }
    }
}

fn wall_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Creates this node's NodeState when `create` (server-side apply; the first write, or after
/// one failed), then merges its status.
async fn write_node_status(
    client: &Client,
    node: &str,
    status: NodeStateStatus,
    create: bool,
) -> Result<(), kube::Error> {
    let api: Api<NodeState> = Api::all(client.clone());
    let object = json!({
        "apiVersion": NodeState::api_version(&()),
        "kind": "NodeState",
        "metadata": { "name": node },
        "spec": {},
    });
    if create {
        api.patch(
            node,
            &PatchParams::apply("routelb-agent"),
            &Patch::Apply(&object),
        )
        .await?;
    }
    let mut status = serde_json::to_value(status).expect("status always serializes");
    // A node that no longer follows a rollout says so: a stale revision would gate one.
    // A merge patch merges nested objects too: their optional fields are nulled the same way
    // (a revision's old error would otherwise stay beside a new revision and halt it).
    let fields = status.as_object_mut().expect("a status is an object");
    for (key, inner) in [
        ("revision", &["applied", "before", "after", "error"][..]),
        ("pendingRevision", &["error"][..]),
    ] {
        let value = fields.entry(key).or_insert(serde_json::Value::Null);
        if let Some(object) = value.as_object_mut() {
            for field in inner {
                object
                    .entry(field.to_string())
                    .or_insert(serde_json::Value::Null);
            }
        }
    }
    api.patch_status(
        node,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

/// Renews this node's Lease every `renew_period` and whenever the node's facts change.
/// Publishes whether the API is reachable: false once no renewal succeeded for a lease duration.
pub async fn renew_lease(
    client: Client,
    cfg: Config,
    mut me: watch::Receiver<Option<Member>>,
    reachable: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.lease_namespace);
    let name = membership::lease_name(&cfg.node);
    let mut last_ok = Instant::now();
    loop {
        let current = me.borrow_and_update().clone();
        if let Some(m) = current {
            let obj = membership::lease_object(
                &m,
                &cfg.lease_namespace,
                cfg.lease_duration,
                SystemTime::now(),
            );
            let params = PatchParams::apply("routelb-agent").force();
            let patch = Patch::Apply(&obj);
            let call = api.patch(&name, &params, &patch);
            match tokio::time::timeout(cfg.renew_period.max(Duration::from_secs(1)), call).await {
                Ok(Ok(_)) => {
                    last_ok = Instant::now();
                    reachable.send_if_modified(|r| !std::mem::replace(r, true));
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "could not renew the node lease"),
                Err(_) => tracing::warn!("renewing the node lease timed out"),
            }
            if last_ok.elapsed() > cfg.lease_duration {
                reachable.send_if_modified(|r| std::mem::replace(r, false));
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(cfg.renew_period) => {}
            r = me.changed() => if r.is_err() { return },
        }
    }
}

/// Deletes this node's Lease, so the others take over at once (graceful leave).
pub async fn delete_lease(client: Client, cfg: &Config) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.lease_namespace);
    let name = membership::lease_name(&cfg.node);
    match tokio::time::timeout(
        Duration::from_secs(3),
        api.delete(&name, &Default::default()),
    )
    .await
    {
        Ok(Ok(_)) | Ok(Err(kube::Error::Api(_))) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not delete the node lease"),
        Err(_) => tracing::warn!("deleting the node lease timed out"),
    }
}

/// Looks at fast failover's BFD sessions every `interval` while there is one (none: this node
/// keeps no BFD peer, and nothing is read), publishing each look that differs from the last
/// (`None`: the daemon did not answer). Its own connection: a long apply never delays it.
pub async fn watch_bfd(
    reader: crate::daemon::bfd::BfdReader,
    mut interval: watch::Receiver<Option<Duration>>,
    looks: watch::Sender<super::fast_failover::BfdLook>,
    cancel: CancellationToken,
) {
    loop {
        let every = *interval.borrow_and_update();
        let Some(every) = every else {
            // No peers: what was read last is forgotten, so that sessions configured again
            // later are judged from a fresh read, never from a stale "up".
            looks.send_if_modified(|l| l.replace(vec![]) != Some(vec![]));
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = interval.changed() => if r.is_err() { return } else { continue },
            }
        };
        let look = match reader.read().await {
            Ok(mut sessions) => {
                sessions.sort_by_key(|s| (s.peer, s.up));
                Some(sessions)
            }
            Err(e) => {
                tracing::debug!(error = %e, "no answer about BFD sessions");
                None
            }
        };
        looks.send_if_modified(|l| {
            let changed = *l != look;
            if changed {
                *l = look;
            }
            changed
        });
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
            r = interval.changed() => if r.is_err() { return },
        }
    }
}
