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

use super::Config;
use crate::api::{NodeState, NodeStateStatus, RoutingPolicy};
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
    NodeStatus(Box<NodeStateStatus>),
    /// An Event about this node, on its NodeState.
    NodeEvent(EventSpec),
}

/// Carries out writes in order; a failed one is logged and counted, and the next status
/// supersedes it.
pub async fn writer(
    client: Client,
    node: String,
    metrics: Arc<AgentMetrics>,
    mut rx: mpsc::UnboundedReceiver<Write>,
) {
    let events = EventPublisher::new(client.clone(), "routelb-agent", &node, "Announce");
    while let Some(w) = rx.recv().await {
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
                    name: Some(node.clone()),
                    ..Default::default()
                };
                events.publish(&reference, event).await;
            }
            Write::NodeStatus(status) => {
                if let Err(e) = write_node_status(&client, &node, *status).await {
                    metrics
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
}

/// Creates this node's NodeState if needed (server-side apply), then merges its status.
async fn write_node_status(
    client: &Client,
    node: &str,
    status: NodeStateStatus,
) -> Result<(), kube::Error> {
    let api: Api<NodeState> = Api::all(client.clone());
    let object = json!({
        "apiVersion": NodeState::api_version(&()),
        "kind": "NodeState",
        "metadata": { "name": node },
        "spec": {},
    });
    api.patch(
        node,
        &PatchParams::apply("routelb-agent"),
        &Patch::Apply(&object),
    )
    .await?;
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
