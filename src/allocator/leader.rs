//! Leader election over a `coordination.k8s.io/v1` Lease, so exactly one allocator replica
//! writes. Expiry is judged on this replica's own clock — how long the record has gone unchanged
//! since we saw it change — so clock skew between replicas does not matter (as client-go does).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease stays valid without renewal; a standby takes over after this.
    pub lease_duration: Duration,
    /// How often the leader renews and a standby checks.
    pub renew_period: Duration,
}

/// Runs until `cancel` fires, publishing whether we lead on `leading`. On cancel, a leader
/// releases the lease so a standby takes over at once instead of waiting for expiry.
pub async fn run(
    client: Client,
    cfg: LeaseConfig,
    leading: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut observed: Option<(String, Instant)> = None; // (record fingerprint, when it last changed)
    let mut last_renewed: Option<Instant> = None;
    loop {
        match try_acquire_or_renew(&api, &cfg, &mut observed).await {
            Ok(true) => {
                last_renewed = Some(Instant::now());
                if !*leading.borrow() {
                    tracing::info!(identity = %cfg.identity, lease = %cfg.name, "became leader");
                }
                leading.send_replace(true);
            }
            Ok(false) => {
                if *leading.borrow() {
                    tracing::warn!(identity = %cfg.identity, "lost the lease to another replica");
                }
                leading.send_replace(false);
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease update failed");
                // Stop writing once the lease may have expired for others.
                if *leading.borrow()
                    && last_renewed.is_none_or(|t| t.elapsed() >= cfg.lease_duration)
                {
                    tracing::warn!("could not renew the lease in time; stepping down");
                    leading.send_replace(false);
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(cfg.renew_period) => {}
        }
    }
    if *leading.borrow() {
        leading.send_replace(false);
        if let Err(e) = release(&api, &cfg).await {
            tracing::warn!(error = %e, "could not release the lease; a standby will wait for it to expire");
        } else {
            tracing::info!("released the lease");
        }
    }
}

fn fingerprint(spec: &LeaseSpec) -> String {
    format!(
        "{:?}|{:?}|{:?}",
        spec.holder_identity,
        spec.renew_time.as_ref().map(|t| t.0),
        spec.lease_transitions
    )
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// The lease record as this replica last saw it change, on its own clock.
pub type Observed = Option<(String, Instant)>;

/// What to do about the lease as it stands (pure).
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// There is none: create it, held by us.
    Create(LeaseSpec),
    /// Ours to renew, or expired or released: write this spec.
    Write(LeaseSpec),
    /// Another replica holds it and it has not expired.
    HeldElsewhere,
}

/// Decides from the lease (`None`: there is none) whether to create, renew or take it over,
/// judging expiry by how long the record has gone unchanged on our clock (`now`), so clock
/// skew between replicas does not matter. `wall` stamps what we write.
pub fn claim(
    current: Option<&LeaseSpec>,
    cfg: &LeaseConfig,
    observed: &mut Observed,
    now: Instant,
    wall: MicroTime,
) -> Claim {
    let duration_secs = cfg.lease_duration.as_secs().max(1) as i32;
    let Some(spec) = current else {
        return Claim::Create(LeaseSpec {
            holder_identity: Some(cfg.identity.clone()),
            lease_duration_seconds: Some(duration_secs),
            acquire_time: Some(wall.clone()),
            renew_time: Some(wall),
            lease_transitions: Some(0),
            ..Default::default()
        });
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let fp = fingerprint(spec);
    if observed.as_ref().is_none_or(|(f, _)| *f != fp) {
        *observed = Some((fp, now));
    }
    let their_duration =
        Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration_secs).max(1) as u64);
    let expired = holder.is_empty()
        || observed
            .as_ref()
            .is_some_and(|(_, t)| now.saturating_duration_since(*t) >= their_duration);
    let ours = holder == cfg.identity;
    if !ours && !expired {
        return Claim::HeldElsewhere;
    }
    let mut new_spec = spec.clone();
    new_spec.holder_identity = Some(cfg.identity.clone());
    new_spec.lease_duration_seconds = Some(duration_secs);
    new_spec.renew_time = Some(wall.clone());
    if !ours {
        new_spec.acquire_time = Some(wall);
        new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        tracing::info!(previous = %holder, "lease expired or released; taking over");
    }
    Claim::Write(new_spec)
}

/// Returns whether we hold the lease after this round.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    observed: &mut Observed,
) -> Result<bool, kube::Error> {
    let current = api.get_opt(&cfg.name).await?;
    let spec = current.as_ref().map(|l| l.spec.clone().unwrap_or_default());
    let result = match claim(spec.as_ref(), cfg, observed, Instant::now(), now()) {
        Claim::HeldElsewhere => return Ok(false),
        Claim::Create(spec) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await
        }
        Claim::Write(spec) => {
            let mut lease = current.expect("a lease to write over");
            lease.spec = Some(spec);
            // `replace` carries the resourceVersion we read: if another replica wrote in
            // between, the API server refuses with 409 and we simply try again next round.
            api.replace(&cfg.name, &PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(l) => {
            *observed = l.spec.as_ref().map(|s| (fingerprint(s), Instant::now()));
            Ok(true)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(1);
    api.replace(&cfg.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: "routelb-system".into(),
            name: "routelb-allocator".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_period: Duration::from_secs(2),
        }
    }

    fn wall(s: i64) -> MicroTime {
        MicroTime(Timestamp::from_second(s).unwrap())
    }

    fn held_by(who: &str, renewed: i64, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(who.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(wall(renewed)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    #[test]
    fn no_lease_is_created_held_by_us() {
        let mut seen = None;
        let Claim::Create(spec) = claim(None, &cfg("a"), &mut seen, Instant::now(), wall(1)) else {
            panic!("not created")
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(0));
    }

    #[test]
    fn a_live_lease_of_another_is_left_and_an_unchanged_one_taken_after_its_duration() {
        let t0 = Instant::now();
        let mut seen = None;
        let theirs = held_by("b", 100, 3);
        assert_eq!(
            claim(Some(&theirs), &cfg("a"), &mut seen, t0, wall(1)),
            Claim::HeldElsewhere
        );
        let later = t0 + Duration::from_secs(14);
        assert_eq!(
            claim(Some(&theirs), &cfg("a"), &mut seen, later, wall(2)),
            Claim::HeldElsewhere
        );
        // Renewed meanwhile: the clock starts again from when we saw the change.
        let renewed = held_by("b", 114, 3);
        let at = t0 + Duration::from_secs(20);
        assert_eq!(
            claim(Some(&renewed), &cfg("a"), &mut seen, at, wall(3)),
            Claim::HeldElsewhere
        );
        // Unchanged for a whole duration on our clock, whatever its own timestamps say.
        let expired_at = at + Duration::from_secs(15);
        let Claim::Write(spec) = claim(Some(&renewed), &cfg("a"), &mut seen, expired_at, wall(4))
        else {
            panic!("not taken over")
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.acquire_time, Some(wall(4)));
    }

    #[test]
    fn ours_is_renewed_and_a_released_one_taken_at_once() {
        let mut seen = None;
        let now = Instant::now();
        let Claim::Write(spec) = claim(
            Some(&held_by("a", 1, 2)),
            &cfg("a"),
            &mut seen,
            now,
            wall(5),
        ) else {
            panic!("not renewed")
        };
        assert_eq!(spec.renew_time, Some(wall(5)));
        assert_eq!(
            spec.lease_transitions,
            Some(2),
            "a renewal is no transition"
        );
        let mut released = held_by("b", 1, 2);
        released.holder_identity = None;
        let mut seen = None;
        assert!(matches!(
            claim(Some(&released), &cfg("a"), &mut seen, now, wall(6)),
            Claim::Write(_)
        ));
    }
}
