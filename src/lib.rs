//! routelb: LoadBalancer addresses for bare-metal Kubernetes, announced through the routing
//! daemon already on each node (FRR or BIRD).
//!
//! Pure core, one module per step: [`ipam`] (and [`allocator::changes`]), [`election`],
//! [`plan`], [`render`], [`agent::status`]. Shells: [`allocator`] and [`agent`] (Kubernetes),
//! [`netlink`] and [`garp`] (the kernel), [`daemon`] (vtysh/birdc), [`metrics`] (Prometheus and
//! health endpoints), [`telemetry`] (logs).

pub mod agent;
pub mod allocator;
pub mod api;
pub mod backoff;
pub mod crdgen;
pub mod daemon;
pub mod election;
pub mod events;
pub mod files;
pub mod garp;
pub mod ipam;
pub mod last_valid;
pub mod manifests;
pub mod membership;
pub mod metrics;
pub mod netlink;
pub mod node;
pub mod offline;
pub mod plan;
pub mod render;
pub mod service;
pub mod standalone;
pub mod status;
pub mod telemetry;
pub mod watch;
