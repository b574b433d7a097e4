//! The CRDs as YAML, generated from the Rust types. `crds/` holds the same text, checked by a
//! test so the committed files never drift from the types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::api::{AddressPool, NodeState, RoutingPolicy, RoutingRollout};

/// Every CRD, in a stable order, with the file name it is committed under.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("addresspools.yaml", AddressPool::crd()),
        ("routingpolicies.yaml", RoutingPolicy::crd()),
        ("nodestates.yaml", NodeState::crd()),
        ("routingrollouts.yaml", RoutingRollout::crd()),
    ]
}

pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    serde_yaml::to_string(crd).expect("a CRD always serializes")
}

/// All CRDs as one multi-document YAML stream.
pub fn multi_document() -> String {
    all()
        .iter()
        .map(|(_, crd)| format!("---\n{}", to_yaml(crd)))
        .collect()
}
