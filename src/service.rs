//! A Service as the node side sees it once it has addresses: the input of the election, the
//! planner and the per-service parts of rendering.

use std::net::IpAddr;

use crate::ipam::{Addr, Pool, ServiceKey};

/// A Service with its addresses and the pool they came from.
#[derive(Clone, Debug)]
pub struct ServiceAddresses {
    pub key: ServiceKey,
    pub pool: String,
    pub addresses: Vec<IpAddr>,
    /// Its per-service attribute annotations, raw, and its labels for the policy's grants.
    pub attributes: crate::attributes::Request,
    /// Whether the pool admits the service ([`crate::ipam::attribute`]): per-service
    /// attributes are honoured only then, whatever `routelb.io/pool-used` claims.
    pub admitted: bool,
}

impl ServiceAddresses {
    /// Attributes the addresses to a pool as IPAM does ([`crate::ipam::attribute`]), from the
    /// pools in use (last valid definitions included): `pool` as read (`routelb.io/pool-used`,
    /// a state file) only breaks ties between pools that hold the addresses and admit the
    /// Service, and grants nothing by itself. Addresses no pool holds keep the pool they had
    /// (it may have been deleted), not admitted.
    pub fn attribute(&mut self, request: &crate::ipam::ServiceRequest, pools: &[Pool]) {
        let addrs: Vec<Addr> = self.addresses.iter().map(|a| Addr::from(*a)).collect();
        match crate::ipam::attribute(pools, request, &addrs) {
            Some(a) => {
                self.pool = a.pool.name.clone();
                self.admitted = a.admitted;
            }
            None => self.admitted = false,
        }
    }
}
