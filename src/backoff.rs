//! Retry delays after failures: 1 s doubling to a minute, so a persistent fault costs a log
//! line a minute, not one a second, and a fixed one is retried soon; and waiting for such a
//! deadline in an event loop, where there may be none.

use std::time::Duration;

/// Until `t`; never, without one (a `select!` arm that waits for an optional deadline).
pub async fn sleep_until(t: Option<impl Into<tokio::time::Instant>>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

#[derive(Clone, Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Counts a failure; returns how long to wait before the next attempt.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        Duration::from_secs(1 << (self.failures - 1).min(6)).min(Duration::from_secs(60))
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_minute() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| b.fail().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.reset();
        assert_eq!(b.fail(), Duration::from_secs(1));
    }
}
