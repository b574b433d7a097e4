//! routelb: LoadBalancer addresses for bare-metal Kubernetes, announced through the routing
//! daemon already on each node (FRR or BIRD).
//!
//! Pure core: [`ipam`]. Shells: [`allocator`] (Kubernetes), [`metrics`], [`telemetry`].

pub mod api;
pub mod ipam;
