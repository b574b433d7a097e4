//! Where each Service has ready endpoints, from EndpointSlices (pure). The API server may serve
//! them as `discovery.k8s.io/v1` or only as `v1beta1` (Kubernetes < 1.21); both carry what we
//! read, so slices are read as dynamic objects of whichever version the server offers
//! (`caches.rs` finds out which).

use std::collections::BTreeMap;
use std::net::IpAddr;

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
    let mut out: BTreeMap<ServiceKey, Readiness> = BTreeMap::new();
    for s in slices {
        let (Some(ns), Some(svc)) = (s.namespace(), s.labels().get(SERVICE_NAME_LABEL)) else {
            continue;
        };
        let r = out.entry(ServiceKey::new(ns, svc.clone())).or_default();
        let Some(endpoints) = s.data.get("endpoints").and_then(|e| e.as_array()) else {
            continue;
        };
        for ep in endpoints {
            let ready = ep
                .pointer("/conditions/ready")
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            if !ready {
                continue;
            }
            r.any = true;
            let node = ep
                .get("nodeName")
                .and_then(|v| v.as_str())
                .or_else(|| ep.pointer(HOSTNAME_TOPOLOGY).and_then(|v| v.as_str()));
            if let Some(n) = node {
                if n == here {
                    let first = ep.pointer("/addresses/0").and_then(|a| a.as_str());
                    r.here.extend(first.and_then(|a| a.parse::<IpAddr>().ok()));
                }
                r.nodes.insert(n.to_string());
            }
        }
    }
    out
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
        let db = &r[&ServiceKey::new("default", "db")];
        assert!(!db.any && db.nodes.is_empty());
        assert!(!r[&ServiceKey::new("default", "empty")].any);
    }
}
