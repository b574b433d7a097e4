//! Summaries of measured samples, for the benchmarks' tables.

use std::time::Duration;

/// The `p` quantile (0.0..=1.0) of the samples by the nearest-rank method: the smallest sample
/// that at least `p` of all samples do not exceed. `p = 1.0` is the maximum.
pub fn percentile<T: Copy + PartialOrd>(samples: &[T], p: f64) -> T {
    assert!(!samples.is_empty(), "no samples");
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("comparable samples"));
    let rank = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[allow(dead_code)] // benchmarks that report medians
pub fn median<T: Copy + PartialOrd>(samples: &[T]) -> T {
    percentile(samples, 0.5)
}

/// Milliseconds, for printing.
#[allow(dead_code)] // benchmarks that print durations
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
