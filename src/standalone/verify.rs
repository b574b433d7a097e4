//! Standalone's verification of what the daemon advertises: in the background, a little
//! after every pass and then periodically, the same verification as the agent's, logged when
//! its verdict changes (a warning naming the peer and filter when a prefix reaches no peer);
//! and the same look at the daemon's sessions, each transition logged.

use std::collections::BTreeSet;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::watch;

use crate::daemon::Driver;
use crate::daemon::advertised::{self, NAMED_MISSING, Verdict, Verification};
use crate::daemon::health::{self, Tracker};
use crate::daemon::observe::{self, Verifier};
use crate::render::model::FragmentData;
use crate::status::EventSpec;

const PERIOD: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(2);

/// What to verify: the fragment's data and the load-balancer interface's prefixes.
type Input = Option<(FragmentData, BTreeSet<IpNet>)>;

/// The background verification; dropped with the session.
pub(super) struct Background {
    input: watch::Sender<Input>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    pub(super) fn start(driver: Driver) -> Background {
        let (input, rx) = watch::channel(None);
        Background {
            input,
            task: tokio::spawn(run(driver, rx)),
        }
    }

    /// A pass ended with this fragment and these prefixes: verify them soon.
    pub(super) fn update(&self, data: FragmentData, prefixes: BTreeSet<IpNet>) {
        self.input.send_replace(Some((data, prefixes)));
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(driver: Driver, mut input: watch::Receiver<Input>) {
    let mut verifier = Verifier::default();
    let mut sessions = Tracker::default();
    let mut last: Option<Verification> = None;
    let mut wait = PERIOD;
    loop {
        tokio::select! {
            changed = input.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::time::sleep(SETTLE).await;
            }
            _ = tokio::time::sleep(wait) => {}
        }
        look_at_routing(&driver, &mut sessions).await;
        let Some((data, prefixes)) = input.borrow_and_update().clone() else {
            continue;
        };
        wait = match verifier.verify(&driver, &data, &prefixes).await {
            Ok((v, recheck)) => {
                log(last.as_ref(), &v);
                last = Some(v);
                if recheck { SETTLE } else { PERIOD }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not verify what the daemon advertises");
                PERIOD
            }
        };
    }
}

/// Logs each transition of the daemon's sessions.
async fn look_at_routing(driver: &Driver, sessions: &mut Tracker) {
    match observe::track(driver, sessions).await {
        Ok(transitions) => health::events(&transitions).iter().for_each(EventSpec::log),
        Err(e) => tracing::warn!(error = %e, "could not ask the daemon about its sessions"),
    }
}

/// Logs the verdict when it changes, and the prefixes that reach no peer when they change.
fn log(before: Option<&Verification>, now: &Verification) {
    let verdict = |v: &Verification| -> Verdict { v.verdict.clone() };
    if let Some(e) = advertised::event(before.map(verdict).as_ref(), &now.verdict) {
        if e.warning {
            tracing::warn!(reason = e.reason, "not advertised: {}", e.note);
        } else {
            tracing::info!(reason = e.reason, "{}", e.note);
        }
    }
    let gone: Vec<String> = now.unadvertised.keys().map(ToString::to_string).collect();
    let was: Vec<String> = before
        .map(|b| b.unadvertised.keys().map(ToString::to_string).collect())
        .unwrap_or_default();
    if !gone.is_empty() && gone != was {
        tracing::warn!(
            count = gone.len(),
            first = ?&gone[..gone.len().min(NAMED_MISSING)],
            "prefixes reach no peer: {}",
            now.unadvertised.values().next().cloned().unwrap_or_default()
        );
    }
}
