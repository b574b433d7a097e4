//! routelb: LoadBalancer addresses for bare-metal Kubernetes, announced through the routing
//! daemon already on each node (FRR or BIRD).
//!
//! Pure core, one module per step: [`ipam`], [`election`], [`plan`], [`render`], and each
//! role's deciders ([`allocator::decide`], [`agent::decide`], [`standalone::allocate`]) and
//! what operators are shown ([`views`]), over shared plain types ([`node`], [`service`], [`status`], [`last_valid`]). Shells: the roles'
//! `mod.rs` (Kubernetes), [`netlink`] and [`garp`] (the kernel), [`daemon`] (FRR's vty sockets,
//! birdc), [`metrics`] (Prometheus and health endpoints), [`telemetry`] (logs), [`plugin`]
//! (`kubectl routelb`).
//! docs/architecture.md has the module map. Modules only the crate uses are `pub(crate)`, so
//! the compiler reports what nothing uses.

pub(crate) mod address_refresh;
pub mod agent;
pub mod allocator;
pub mod analysis;
pub mod api;
pub mod attributes;
pub(crate) mod backoff;
pub mod coalesce;
pub mod crdgen;
pub mod daemon;
pub mod election;
pub(crate) mod events;
pub mod failover;
pub mod family;
pub(crate) mod files;
pub(crate) mod garp;
pub mod impact;
pub mod ipam;
pub(crate) mod last_valid;
pub mod manifests;
pub mod membership;
pub mod metrics;
pub mod netlink;
pub mod node;
pub mod offline;
pub mod peer_config;
pub(crate) mod plan;
pub mod plugin;
pub mod render;
pub mod rollout;
pub mod service;
pub mod standalone;
pub(crate) mod status;
pub mod telemetry;
pub mod views;
pub(crate) mod watch;
