//! Reading the states of fast failover's BFD sessions ([`crate::failover`]) often and cheaply:
//! over a connection of its own (FRR: bfdd's vty socket; BIRD: its control socket), so a
//! long apply on the driver's connections never delays a look.

use std::net::IpAddr;

use super::health::parse;
use super::vty::Vty;
use super::{DaemonError, Driver};
use crate::failover::SessionState;

pub enum BfdReader {
    Frr(Vty),
    Bird(Vec<super::bird_daemon::BirdDaemon>),
}

impl BfdReader {
    pub fn new(driver: &Driver) -> BfdReader {
        match driver {
            Driver::Frr(d) => BfdReader::Frr(Vty::new(d.vty_dir().to_path_buf())),
            Driver::Bird(d) => BfdReader::Bird(d.daemons.clone()),
        }
    }

    /// Every BFD session the daemon reports (not only routelb's): peer address and whether
    /// it is up. An error when the daemon does not answer (FRR: bfdd not running).
    pub async fn read(&self) -> Result<Vec<SessionState>, DaemonError> {
        let sessions = match self {
            BfdReader::Frr(vty) => {
                let reply = vty
                    .show("bfdd", "show bfd peers json")
                    .await?
                    .ok_or_else(|| DaemonError::Unreachable("bfdd is not running".into()))?;
                if !reply.ok() {
                    return Err(DaemonError::Rejected(format!(
                        "bfdd: show bfd peers json: {}",
                        reply.message()
                    )));
                }
                parse::frr_bfd_peers(&reply.output)
                    .map_err(|e| DaemonError::Unreachable(format!("bfdd: {e}")))?
            }
            BfdReader::Bird(daemons) => {
                let mut all = Vec::new();
                for d in daemons {
                    all.extend(parse::bird_bfd_sessions(
                        &d.text("show bfd sessions").await?,
                    ));
                }
                all
            }
        };
        Ok(sessions
            .into_iter()
            .filter_map(|s| {
                Some(SessionState {
                    peer: s.key.peer.parse::<IpAddr>().ok()?,
                    up: s.up,
                })
            })
            .collect())
    }
}
