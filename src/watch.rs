//! Watch caches shared by the roles: a reflector per kind, kept current in the background.

use std::sync::Arc;

use futures::TryStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio::sync::Notify;

/// How long a watch of a busy kind (Services, EndpointSlices, node Leases, NodeStates) lasts
/// before it is renewed from where it was. Under a burst the API server drops a watcher that
/// falls behind, and kube-apiserver (1.20 at least, measured with 10,000 Services created at
/// 200/s) then leaves the dropped stream open, silent, until the watch's own timeout: with
/// the default 290 s a dropped Service watch stalled both roles for 4.5 minutes. Renewing
/// every minute bounds that stall to a minute for one re-watch per minute per busy kind (a
/// read served from the API server's watch cache).
pub const BUSY_WATCH_TIMEOUT_S: u32 = 60;

/// The watcher configuration for a busy kind: see [`BUSY_WATCH_TIMEOUT_S`].
pub fn busy() -> watcher::Config {
    watcher::Config::default().timeout(BUSY_WATCH_TIMEOUT_S)
}

/// A cache of every `K`, kept current by a watch in the background; `modify` trims each object
/// before it is stored. Every watch event wakes the role's loop through `trigger`.
pub fn cache<K>(
    api: Api<K>,
    config: watcher::Config,
    name: &'static str,
    modify: fn(&mut K),
    trigger: Arc<Notify>,
) -> Store<K>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    cache_with(api, Default::default(), config, name, modify, trigger)
}

/// [`cache`] for kinds known only at run time (dynamic objects).
pub fn cache_with<K>(
    api: Api<K>,
    dyntype: K::DynamicType,
    config: watcher::Config,
    name: &'static str,
    modify: fn(&mut K),
    trigger: Arc<Notify>,
) -> Store<K>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(dyntype);
    let store = writer.as_reader();
    let stream = reflector::reflector(
        writer,
        watcher(api, config).default_backoff().modify(modify),
    );
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            match stream.try_next().await {
                Ok(Some(_)) => trigger.notify_one(),
                Ok(None) => break,
                Err(e) => tracing::warn!(watch = name, error = %e, "watch error; retrying"),
            }
        }
    });
    store
}

/// The objects of a cache, owned (for pure code that takes slices of them).
pub fn owned<K>(store: &Store<K>) -> Vec<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state().iter().map(|o| (**o).clone()).collect()
}

/// A `modify` that keeps objects as they are.
pub fn keep<K>(_: &mut K) {}

/// Each object's labels by name: namespace labels for pool admission, in both roles.
pub fn labels_by_name<K>(
    store: &Store<K>,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .state()
        .iter()
        .map(|n| (n.name_any(), n.labels().clone()))
        .collect()
}

/// What the cache keeps of a Service: managed fields and kubectl's last-applied copy are often
/// most of an object's size and are never read here (we only merge-patch our own keys).
pub fn slim_service(svc: &mut k8s_openapi::api::core::v1::Service) {
    svc.managed_fields_mut().clear();
    svc.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// The RoutingRollout a role follows (by name).
pub fn rollout_cache(
    client: &kube::Client,
    follow: &crate::rollout::Follow,
    trigger: Arc<Notify>,
) -> Store<crate::api::RoutingRollout> {
    cache(
        kube::Api::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={}", follow.name)),
        "routingrollout",
        |r: &mut crate::api::RoutingRollout| r.managed_fields_mut().clear(),
        trigger,
    )
}

/// The followed rollout's revisions (ControllerRevisions labelled with its name).
pub fn revision_cache(
    client: &kube::Client,
    follow: &crate::rollout::Follow,
    trigger: Arc<Notify>,
) -> Store<k8s_openapi::api::apps::v1::ControllerRevision> {
    cache(
        kube::Api::namespaced(client.clone(), &follow.namespace),
        watcher::Config::default().labels(&format!(
            "{}={}",
            crate::rollout::REVISION_LABEL,
            follow.name
        )),
        "routing revisions",
        |r: &mut k8s_openapi::api::apps::v1::ControllerRevision| r.managed_fields_mut().clear(),
        trigger,
    )
}
