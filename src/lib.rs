//! routelb: LoadBalancer addresses for bare-metal Kubernetes, announced through the routing
//! daemon already on each node (FRR or BIRD).
//!
//! Pure core: [`ipam`] (and [`allocator::changes`]). Shells: [`allocator`] (Kubernetes),
//! [`metrics`] (Prometheus and health endpoints), [`telemetry`] (logs).

pub mod allocator;
pub mod api;
pub mod crdgen;
pub mod ipam;
pub mod metrics;
pub mod telemetry;
