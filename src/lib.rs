//! routelb: LoadBalancer addresses for bare-metal Kubernetes, announced through the routing
//! daemon already on each node (FRR or BIRD).
//!
//! Pure core: [`ipam`] (and [`allocator::changes`]). Shells: [`allocator`] (Kubernetes),
//! [`metrics`] (Prometheus and health endpoints), [`telemetry`] (logs).

pub mod allocator;
pub mod api;
pub mod crdgen;
pub mod daemon;
pub mod ipam;
pub mod manifests;
pub mod metrics;
pub mod netlink;
pub mod offline;
pub mod plan;
pub mod render;
pub mod standalone;
pub mod telemetry;
