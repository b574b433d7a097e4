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

/// Returns whether we hold the lease after this round.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    observed: &mut Option<(String, Instant)>,
) -> Result<bool, kube::Error> {
    let duration_secs = cfg.lease_duration.as_secs().max(1) as i32;
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let fp = fingerprint(&spec);
    if observed.as_ref().is_none_or(|(f, _)| *f != fp) {
        *observed = Some((fp, Instant::now()));
    }
    let their_duration =
        Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration_secs).max(1) as u64);
    let expired = holder.is_empty()
        || observed
            .as_ref()
            .is_some_and(|(_, t)| t.elapsed() >= their_duration);
    let ours = holder == cfg.identity;
    if !ours && !expired {
        return Ok(false);
    }
    let mut new_spec = spec.clone();
    new_spec.holder_identity = Some(cfg.identity.clone());
    new_spec.lease_duration_seconds = Some(duration_secs);
    new_spec.renew_time = Some(now());
    if !ours {
        new_spec.acquire_time = Some(now());
        new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        tracing::info!(previous = %holder, "lease expired or released; taking over");
    }
    lease.spec = Some(new_spec);
    // `replace` carries the resourceVersion we read: if another replica wrote in between, the
    // API server refuses with 409 and we simply try again next round.
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
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
