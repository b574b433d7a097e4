//! `kubectl routelb pools`: per pool and family, how full it is.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use serde::Serialize;

use super::*;
use crate::api::{AddressPool, FamilyCounts, annotations};

/// One pool and family: how full it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolRow {
    pub name: String,
    pub health: Health,
    pub mode: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    pub allocated: u64,
    pub available: u64,
    /// Allocated out of allocated + available, in percent.
    pub used_percent: f64,
    /// Services that may use only this pool and got no address from it (its name in their
    /// `routelb.io/pool` annotation).
    pub waiting_services: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// How full a pool must be for its row to read as a warning.
pub const NEARLY_FULL_PERCENT: f64 = 90.0;

/// Each pool's families that hold addresses (both when it holds none, so it shows), sorted
/// by name.
pub fn pools(s: &Snapshot) -> Vec<PoolRow> {
    let mut rows = Vec::new();
    let mut sorted: Vec<&AddressPool> = s.pools.iter().collect();
    sorted.sort_by_key(|p| p.name_any());
    for pool in sorted {
        let problem = match &pool.status {
            None => Some("no status yet: is the allocator running and leading?".to_string()),
            Some(st) => pool_problem(&st.conditions),
        };
        let status = pool.status.clone().unwrap_or_default();
        let waiting = s
            .services
            .iter()
            .filter(|svc| {
                svc.annotations().get(annotations::POOL) == Some(&pool.name_any())
                    && svc
                        .annotations()
                        .contains_key(annotations::ALLOCATION_ERROR)
            })
            .count() as u32;
        let families: Vec<(&str, &FamilyCounts)> = [("ipv4", &status.ipv4), ("ipv6", &status.ipv6)]
            .into_iter()
            .filter(|(_, c)| c.allocated + c.available > 0)
            .collect();
        let families = if families.is_empty() {
            vec![("ipv4", &status.ipv4)]
        } else {
            families
        };
        for (family, counts) in families {
            let total = counts.allocated.saturating_add(counts.available);
            let used_percent = if total == 0 {
                0.0
            } else {
                counts.allocated as f64 * 100.0 / total as f64
            };
            let health = if problem.is_some() || (counts.available == 0 && waiting > 0) {
                Health::Error
            } else if used_percent >= NEARLY_FULL_PERCENT || waiting > 0 {
                Health::Warning
            } else {
                Health::Ok
            };
            rows.push(PoolRow {
                name: pool.name_any(),
                health,
                mode: mode_name(pool.spec.mode).into(),
                family: family.into(),
                allocated: counts.allocated,
                available: counts.available,
                used_percent,
                waiting_services: waiting,
                problem: problem.clone(),
            });
        }
    }
    rows
}

pub(super) fn pool_problem(conditions: &[Condition]) -> Option<String> {
    let bad: Vec<String> = conditions
        .iter()
        .filter(|c| match c.type_.as_str() {
            "Ready" => c.status != "True",
            "Invalid" | "Overlapping" => c.status == "True",
            _ => false,
        })
        .map(|c| format!("{}: {}", c.type_, c.message))
        .collect();
    (!bad.is_empty()).then(|| bad.join("; "))
}

/// `[#######...]` of `width` cells, `percent` of them full.
pub fn bar(percent: f64, width: usize) -> String {
    let full = ((percent / 100.0) * width as f64)
        .round()
        .clamp(0.0, width as f64) as usize;
    format!("[{}{}]", "#".repeat(full), ".".repeat(width - full))
}
