//! The one way tests wait for something: poll a probe until it answers, within a timeout, and
//! learn how long it took.

use std::future::Future;
use std::time::{Duration, Instant};

/// What a wait found, and how long it took to find it.
#[derive(Debug)]
pub struct Waited<T> {
    #[allow(dead_code)] // unread where the wait is for a condition
    pub value: T,
    #[allow(dead_code)] // for those who report timings
    pub took: Duration,
}

/// A wait of at most some time, polling at some period.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    timeout: Duration,
    every: Duration,
}

/// A wait of at most `timeout`, polling every 25 ms (see [`Wait::every`]).
pub fn up_to(timeout: Duration) -> Wait {
    Wait {
        timeout,
        every: Duration::from_millis(25),
    }
}

impl Wait {
    /// Polls at this period instead.
    #[allow(dead_code)] // waits on commands rather than the API server
    pub fn every(self, every: Duration) -> Wait {
        Wait { every, ..self }
    }

    /// Polls `probe` until it returns `Some`; `None` once the timeout has passed.
    #[allow(dead_code)] // async tests
    pub async fn until<T, F, Fut>(self, mut probe: F) -> Option<Waited<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(value) = probe().await {
                return Some(Waited {
                    value,
                    took: start.elapsed(),
                });
            }
            if start.elapsed() > self.timeout {
                return None;
            }
            tokio::time::sleep(self.every).await;
        }
    }

    /// [`Wait::until`] for code that runs outside an async runtime (plain `#[test]`s, threads).
    #[allow(dead_code)] // plain #[test]s and benchmarks
    pub fn until_blocking<T>(self, mut probe: impl FnMut() -> Option<T>) -> Option<Waited<T>> {
        let start = Instant::now();
        loop {
            if let Some(value) = probe() {
                return Some(Waited {
                    value,
                    took: start.elapsed(),
                });
            }
            if start.elapsed() > self.timeout {
                return None;
            }
            std::thread::sleep(self.every);
        }
    }
}
