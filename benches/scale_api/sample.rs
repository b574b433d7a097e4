//! One point's figures (N nodes, S Services): what the harness records in
//! target/scale_api.jsonl and `scale_report` reads back.

use serde::{Deserialize, Serialize};

/// One point's figures (N nodes, S Services).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Sample {
    pub nodes: usize,
    pub services: usize,
    pub burst_created_s: f64,
    pub burst_assigned_s: f64,
    pub burst_on_agent_s: f64,
    pub burst_at_router_s: f64,
    pub burst_allocator_cpu_s: f64,
    pub burst_agent_cpu_s: f64,
    pub burst_allocator_writes: u64,
    pub burst_agent_writes: u64,
    pub steady_allocator_cpu_pct: f64,
    pub steady_agent_cpu_pct: f64,
    /// The agent's node's zebra: every address added, removed or renewed is a message to it.
    pub steady_zebra_cpu_pct: f64,
    pub allocator_rss_mb: f64,
    pub agent_rss_mb: f64,
    /// (all, writes) per second.
    pub steady_allocator_req_per_s: (f64, f64),
    pub steady_agent_req_per_s: (f64, f64),
    /// The steady state's requests by what they did, over the window.
    pub steady_allocator_requests: std::collections::BTreeMap<String, u64>,
    pub steady_agent_requests: std::collections::BTreeMap<String, u64>,
    pub burst_allocator_requests: std::collections::BTreeMap<String, u64>,
    pub sim_renewals_per_s: f64,
    pub sim_renewals_due_per_s: f64,
    pub change_assigned_ms: f64,
    pub change_on_agent_ms: f64,
    pub change_at_router_ms: f64,
    pub change_allocator_cpu_ms: f64,
    pub change_agent_cpu_ms: f64,
    pub change_allocator_pass_ms: f64,
    pub change_agent_pass_ms: f64,
    pub death_agent_cpu_ms: f64,
    pub death_agent_pass_ms: f64,
    pub death_allocator_writes: u64,
    pub death_agent_writes: u64,
    pub return_agent_cpu_ms: f64,
    pub return_agent_pass_ms: f64,
}

impl Sample {
    pub fn new(nodes: usize, services: usize) -> Sample {
        Sample {
            nodes,
            services,
            ..Default::default()
        }
    }

    pub fn print_row(&self) {
        println!(
            "| {} | {} | {:.0} s / {:.0} s / {:.0} s | {:.1} s / {:.1} s | {:.0} / {:.0} | {:.0} ms / {:.0} ms / {:.0} ms | {:.1} / {:.1} ms (pass {:.1}) | {:.1} / {:.1} ms (pass {:.1}) | {:.0} / {:.0} | {:.1} / {:.1} % ({:.1} %) | {:.0} / {:.0} MiB | {:.2} ({:.2}) / {:.2} ({:.2}) | {:.0} of {:.0} |",
            self.nodes,
            self.services,
            self.burst_assigned_s,
            self.burst_on_agent_s,
            self.burst_at_router_s,
            self.burst_allocator_cpu_s,
            self.burst_agent_cpu_s,
            self.burst_allocator_writes,
            self.burst_agent_writes,
            self.change_assigned_ms,
            self.change_on_agent_ms,
            self.change_at_router_ms,
            self.change_allocator_cpu_ms,
            self.change_agent_cpu_ms,
            self.change_agent_pass_ms,
            self.death_agent_cpu_ms,
            self.return_agent_cpu_ms,
            self.death_agent_pass_ms,
            self.death_allocator_writes,
            self.death_agent_writes,
            self.steady_allocator_cpu_pct,
            self.steady_agent_cpu_pct,
            self.steady_zebra_cpu_pct,
            self.allocator_rss_mb,
            self.agent_rss_mb,
            self.steady_allocator_req_per_s.0,
            self.steady_allocator_req_per_s.1,
            self.steady_agent_req_per_s.0,
            self.steady_agent_req_per_s.1,
            self.sim_renewals_per_s,
            self.sim_renewals_due_per_s,
        );
    }
}

pub fn print_header() {
    println!(
        "| nodes | Services | burst: all assigned / on the agent / at the router | burst CPU: allocator / agent | burst API writes: allocator / agent | one Service: assigned / on the agent / at the router | its CPU beyond the steady state's: allocator / agent (agent pass) | a node died: agent CPU beyond the steady state's / came back (pass) | its API writes: allocator / agent | steady CPU: allocator / agent (its node's zebra) | RSS: allocator / agent | steady API req/s (writes): allocator / agent | simulated renewals/s, of due |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
}
