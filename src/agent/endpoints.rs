//! Where each Service has ready endpoints, from EndpointSlices (pure). The API server may serve
//! them as `discovery.k8s.io/v1` or only as `v1beta1` (Kubernetes < 1.21); both carry what we
//! read, so slices are read as dynamic objects of whichever version the server offers
//! (`caches.rs` finds out which).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use kube::ResourceExt;
use kube::api::DynamicObject;

use crate::election::Readiness;
use crate::ipam::ServiceKey;

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The deprecated v1beta1 `topology` key naming the node, as a JSON pointer.
const HOSTNAME_TOPOLOGY: &str = "/topology/kubernetes.io~1hostname";

/// Readiness per service over all its slices, with the endpoints on node `here`. An endpoint
/// whose `ready` condition is absent counts as ready, as the API defines; its node comes from
/// `nodeName` (v1, and v1beta1 from Kubernetes 1.20) or the deprecated
/// `topology["kubernetes.io/hostname"]` (v1beta1).
pub fn readiness(
    slices: &[std::sync::Arc<DynamicObject>],
    here: &str,
) -> BTreeMap<ServiceKey, Readiness> {
    let summaries: Vec<SliceSummary> = slices.iter().map(|s| summarise(s, here)).collect();
    merge(summaries.iter())
}

/// Trims a cached EndpointSlice to what [`readiness`] reads (the `modify` of the agent's slice
/// cache): per endpoint its first address, its ready condition and its node; no ports, no
/// managed fields, no other conditions. At 10,000 Services the slices were most of the
/// agent's memory.
pub fn slim(slice: &mut DynamicObject) {
    slice.managed_fields_mut().clear();
    slice.annotations_mut().clear();
    let endpoints = slice.data.get("endpoints").and_then(|e| e.as_array());
    let kept: Option<Vec<serde_json::Value>> = endpoints.map(|eps| {
        eps.iter()
            .map(|ep| {
                let mut out = serde_json::Map::new();
                if let Some(first) = ep.pointer("/addresses/0") {
                    out.insert(
                        "addresses".into(),
                        serde_json::Value::Array(vec![first.clone()]),
                    );
                }
                if let Some(ready) = ep.pointer("/conditions/ready") {
                    out.insert("conditions".into(), serde_json::json!({ "ready": ready }));
                }
                if let Some(node) = ep.get("nodeName") {
                    out.insert("nodeName".into(), node.clone());
                }
                if let Some(host) = ep.pointer(HOSTNAME_TOPOLOGY) {
                    out.insert(
                        "topology".into(),
                        serde_json::json!({ "kubernetes.io/hostname": host }),
                    );
                }
                serde_json::Value::Object(out)
            })
            .collect()
    });
    slice.data = match kept {
        Some(eps) => serde_json::json!({ "endpoints": eps }),
        None => serde_json::json!({}),
    };
}

/// What one slice says for the readiness of its Service.
#[derive(Clone, Debug, PartialEq)]
struct SliceSummary {
    service: Option<ServiceKey>,
    any: bool,
    nodes: Vec<String>,
    here: Vec<IpAddr>,
}

fn summarise(s: &DynamicObject, here: &str) -> SliceSummary {
    let service = match (s.namespace(), s.labels().get(SERVICE_NAME_LABEL)) {
        (Some(ns), Some(svc)) => Some(ServiceKey::new(ns, svc.clone())),
        _ => None,
    };
    let mut summary = SliceSummary {
        service,
        any: false,
        nodes: vec![],
        here: vec![],
    };
    let endpoints = s.data.get("endpoints").and_then(|e| e.as_array());
    for ep in endpoints.into_iter().flatten() {
        let ready = ep
            .pointer("/conditions/ready")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        if !ready {
            continue;
        }
        summary.any = true;
        let node = ep
            .get("nodeName")
            .and_then(|v| v.as_str())
            .or_else(|| ep.pointer(HOSTNAME_TOPOLOGY).and_then(|v| v.as_str()));
        if let Some(n) = node {
            if n == here {
                let first = ep.pointer("/addresses/0").and_then(|a| a.as_str());
                summary
                    .here
                    .extend(first.and_then(|a| a.parse::<IpAddr>().ok()));
            }
            summary.nodes.push(n.to_string());
        }
    }
    summary
}

fn merge<'a>(summaries: impl Iterator<Item = &'a SliceSummary>) -> BTreeMap<ServiceKey, Readiness> {
    let mut out: BTreeMap<ServiceKey, Readiness> = BTreeMap::new();
    for s in summaries {
        let Some(key) = &s.service else { continue };
        let r = out.entry(key.clone()).or_default();
        r.any |= s.any;
        r.nodes.extend(s.nodes.iter().cloned());
        r.here.extend(s.here.iter().copied());
    }
    out
}

/// [`readiness`] for a pass that runs again and again over mostly the same slices: each
/// slice's JSON is read once per version (uid and resourceVersion), and only the Services
/// whose slices changed are merged again. Profiled at 10,000 Services, reading every slice's
/// JSON each pass was a third of the agent's CPU, and merging them all again a tenth.
#[derive(Default)]
pub struct Readings {
    /// The node readiness is read for.
    here: String,
    /// Each slice's version and summary, by uid.
    by_slice: HashMap<String, (String, SliceSummary)>,
    /// Which slices each Service has.
    by_service: HashMap<ServiceKey, HashSet<String>>,
    last: Arc<BTreeMap<ServiceKey, Readiness>>,
}

impl Readings {
    pub fn new(here: &str) -> Readings {
        Readings {
            here: here.to_string(),
            ..Default::default()
        }
    }

    pub fn readiness(
        &mut self,
        slices: &[Arc<DynamicObject>],
    ) -> Arc<BTreeMap<ServiceKey, Readiness>> {
        let mut affected: HashSet<ServiceKey> = HashSet::new();
        let mut next = HashMap::with_capacity(slices.len());
        for s in slices {
            let id = s.uid().unwrap_or_else(|| {
                format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any())
            });
            let version = s.resource_version();
            let entry = match self.by_slice.remove(&id) {
                // An object without a version (never from the API server) is read each time.
                Some((v, summary)) if version.as_ref() == Some(&v) && !v.is_empty() => (v, summary),
                old => {
                    let summary = summarise(s, &self.here);
                    self.moved(
                        &id,
                        old.and_then(|(_, o)| o.service),
                        &summary.service,
                        &mut affected,
                    );
                    (version.unwrap_or_default(), summary)
                }
            };
            next.insert(id, entry);
        }
        // What is left was deleted.
        for (id, (_, gone)) in std::mem::take(&mut self.by_slice) {
            self.moved(&id, gone.service, &None, &mut affected);
        }
        self.by_slice = next;
        if !affected.is_empty() {
            let map = Arc::make_mut(&mut self.last);
            for key in affected {
                match self.by_service.get(&key) {
                    Some(ids) => {
                        let summaries = ids.iter().filter_map(|id| self.by_slice.get(id));
                        let merged = merge(summaries.map(|(_, s)| s)).remove(&key);
                        map.insert(key, merged.unwrap_or_default());
                    }
                    None => {
                        map.remove(&key);
                    }
                }
            }
        }
        self.last.clone()
    }

    /// Slice `id` now belongs to `to` (none: deleted or unlabelled), no longer to `from`;
    /// both Services are merged again.
    fn moved(
        &mut self,
        id: &str,
        from: Option<ServiceKey>,
        to: &Option<ServiceKey>,
        affected: &mut HashSet<ServiceKey>,
    ) {
        if let Some(from) = from {
            if let Some(ids) = self.by_service.get_mut(&from) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_service.remove(&from);
                }
            }
            affected.insert(from);
        }
        if let Some(to) = to {
            self.by_service
                .entry(to.clone())
                .or_default()
                .insert(id.to_string());
            affected.insert(to.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(name: &str, svc: &str, endpoints: serde_json::Value) -> std::sync::Arc<DynamicObject> {
        std::sync::Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": { "name": name, "namespace": "default",
                              "labels": { SERVICE_NAME_LABEL: svc } },
                "addressType": "IPv4",
                "endpoints": endpoints,
            }))
            .unwrap(),
        )
    }

    /// The slices as the agent's cache keeps them.
    fn slimmed(slices: &[std::sync::Arc<DynamicObject>]) -> Vec<std::sync::Arc<DynamicObject>> {
        slices
            .iter()
            .map(|s| {
                let mut s = (**s).clone();
                slim(&mut s);
                std::sync::Arc::new(s)
            })
            .collect()
    }

    #[test]
    fn ready_nodes_from_v1_and_v1beta1_shapes() {
        let slices = [
            slice(
                "web-1",
                "web",
                json!([
                    { "addresses": ["10.1.0.1"], "conditions": { "ready": true }, "nodeName": "a" },
                    { "addresses": ["10.1.0.2"], "conditions": { "ready": false }, "nodeName": "b" },
                ]),
            ),
            slice(
                "web-2",
                "web",
                json!([
                    // v1beta1: the node in topology, no ready condition (means ready).
                    { "addresses": ["10.1.0.3"], "topology": { "kubernetes.io/hostname": "c" } },
                    { "addresses": ["10.1.0.4"], "conditions": {} },
                ]),
            ),
            slice(
                "db-1",
                "db",
                json!([
                    { "addresses": ["10.1.0.9"], "conditions": { "ready": false }, "nodeName": "a" },
                ]),
            ),
            slice("empty-1", "empty", serde_json::Value::Null),
        ];
        let r = readiness(&slices, "a");
        let web = &r[&ServiceKey::new("default", "web")];
        assert!(web.any);
        assert_eq!(
            web.nodes.iter().map(String::as_str).collect::<Vec<_>>(),
            ["a", "c"]
        );
        // only node a's ready endpoints, by address
        let here: Vec<String> = web.here.iter().map(|a| a.to_string()).collect();
        assert_eq!(here, ["10.1.0.1"]);
        assert!(
            readiness(&slices, "c")[&ServiceKey::new("default", "web")]
                .here
                .contains(&"10.1.0.3".parse().unwrap())
        );
        // What the cache keeps of a slice reads the same.
        let slimmed = slimmed(&slices);
        for node in ["a", "b", "c"] {
            assert_eq!(readiness(&slimmed, node), readiness(&slices, node));
        }
        let db = &r[&ServiceKey::new("default", "db")];
        assert!(!db.any && db.nodes.is_empty());
        assert!(!r[&ServiceKey::new("default", "empty")].any);
    }

    proptest::proptest! {
        /// The remembered readings equal reading every slice afresh, over any sequence of
        /// slices created, changed (a new resourceVersion) and deleted.
        #[test]
        fn readings_equal_reading_every_slice(
            steps in proptest::collection::vec(
                (0usize..6, proptest::option::of((0usize..3, proptest::collection::vec(
                    (0usize..3, proptest::option::of(proptest::bool::ANY), 0u8..4, proptest::bool::ANY),
                    0..4,
                )))),
                1..40,
            )
        ) {
            let mut model: BTreeMap<usize, (u64, std::sync::Arc<DynamicObject>)> = BTreeMap::new();
            let mut readings = Readings::new("n0");
            let mut version = 0;
            for (id, change) in steps {
                match change {
                    None => { model.remove(&id); }
                    Some((svc, endpoints)) => {
                        version += 1;
                        let eps: Vec<serde_json::Value> = endpoints
                            .iter()
                            .map(|(node, ready, addr, topology)| {
                                let mut ep = json!({ "addresses": [format!("10.0.0.{addr}")] });
                                if let Some(r) = ready {
                                    ep["conditions"] = json!({ "ready": r });
                                }
                                if *topology {
                                    ep["topology"] = json!({ "kubernetes.io/hostname": format!("n{node}") });
                                } else {
                                    ep["nodeName"] = json!(format!("n{node}"));
                                }
                                ep
                            })
                            .collect();
                        let mut s = (*slice(&format!("s{id}"), &format!("svc{svc}"), json!(eps))).clone();
                        s.metadata.uid = Some(format!("uid-{id}"));
                        s.metadata.resource_version = Some(version.to_string());
                        model.insert(id, (version, std::sync::Arc::new(s)));
                    }
                }
                let slices: Vec<_> = model.values().map(|(_, s)| s.clone()).collect();
                proptest::prop_assert_eq!(&*readings.readiness(&slices), &readiness(&slices, "n0"));
                proptest::prop_assert_eq!(readiness(&slimmed(&slices), "n0"), readiness(&slices, "n0"));
            }
        }
    }
}
