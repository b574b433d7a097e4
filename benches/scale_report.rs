//! The load harness's results as docs/scale.md shows them: the table of every point measured
//! (the latest run of each, from target/scale_api.jsonl or SCALE_API_RESULTS) and, with
//! SCALE_PLOT=path, a chart of what one Service change costs against N and S.
//!
//!   cargo bench --bench scale_report
//!   SCALE_PLOT=docs/scale-api.svg cargo bench --bench scale_report

#[path = "scale/plot.rs"]
mod plot;
#[path = "scale_api/sample.rs"]
#[allow(dead_code)] // the harness builds samples; this only reads them
mod sample;

use std::collections::BTreeMap;

use sample::Sample;

fn main() {
    let path = std::env::var("SCALE_API_RESULTS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/scale_api.jsonl").to_string()
    });
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (run integration/scale/run.sh first)"));
    let points = latest(&text);
    sample::print_header();
    for p in points.values() {
        p.print_row();
    }
    if let Ok(out) = std::env::var("SCALE_PLOT") {
        std::fs::write(&out, chart(&points)).expect("write the plot");
        println!("\n(plot written to {out})");
    }
}

/// The last line of each (nodes, Services) point: a rerun replaces an earlier one.
fn latest(jsonl: &str) -> BTreeMap<(usize, usize), Sample> {
    jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Sample>(l).expect("a result line"))
        .map(|s| ((s.nodes, s.services), s))
        .collect()
}

/// One Service change: the agent's pass and the allocator's pass, against S, a line per N.
fn chart(points: &BTreeMap<(usize, usize), Sample>) -> String {
    let mut series = vec![];
    let nodes: Vec<usize> = {
        let mut n: Vec<usize> = points.keys().map(|k| k.0).collect();
        n.dedup();
        n
    };
    for (who, pass) in [
        (
            "agent",
            (|s: &Sample| s.change_agent_pass_ms) as fn(&Sample) -> f64,
        ),
        ("allocator", |s: &Sample| s.change_allocator_pass_ms),
    ] {
        for &n in &nodes {
            let points: Vec<(f64, f64)> = points
                .range((n, 0)..=(n, usize::MAX))
                .map(|(&(_, s), p)| (s as f64, pass(p).max(0.1)))
                .collect();
            series.push(plot::Series {
                label: format!("{who}, {n} nodes"),
                points,
            });
        }
    }
    plot::svg(
        "One Service change: a pass's time (real API server), median",
        "Services",
        "ms per pass",
        &series,
    )
}
