//! Netlink shell: the load-balancer interface and the addresses routelb puts on interfaces.
//! Addresses routelb adds carry its own address protocol (IFA_PROTO [`ADDRESS_PROTOCOL`]), so
//! after a restart it finds exactly what it added and never touches anyone else's addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::node::IfAddress;
use std::time::Duration;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressProtocol, CacheInfo,
};
use rtnetlink::{Handle, LinkDummy, LinkIfb, LinkUnspec};

/// The IFA_PROTO value marking addresses routelb added (0-3 belong to the kernel).
pub const ADDRESS_PROTOCOL: u8 = 0x72;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("interface {0} does not exist")]
    NoInterface(String),
}

/// How the load-balancer interface came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbInterface {
    Existing,
    Dummy,
    /// The kernel has no dummy driver; an ifb device serves the same purpose.
    Ifb,
}

#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a netlink socket in the current network namespace.
    pub fn connect() -> Result<Netlink, NetlinkError> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// A stream that yields whenever a link or an address of this namespace changes, so node
    /// facts are read again at once rather than on the next resync.
    pub fn changes() -> Result<tokio::sync::mpsc::UnboundedReceiver<()>, NetlinkError> {
        use rtnetlink::constants::{RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR, RTMGRP_LINK};
        use rtnetlink::sys::{AsyncSocket, SocketAddr};
        let (mut connection, _handle, mut messages) = rtnetlink::new_connection()?;
        connection.socket_mut().socket_mut().bind(&SocketAddr::new(
            0,
            RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
        ))?;
        tokio::spawn(connection);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            use futures::StreamExt;
            while messages.next().await.is_some() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }

    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(link) => Ok(link.map(|l| l.header.index)),
            // ENODEV: no such interface.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every interface with its subnets (from the addresses on it), for placing local-pool
    /// addresses. Loopback is left out.
    pub async fn interfaces(&self) -> Result<Vec<crate::node::NodeInterface>, NetlinkError> {
        use rtnetlink::packet_route::link::{LinkAttribute, State};
        let mut names = BTreeMap::new();
        let mut links = self.handle.link().get().execute();
        while let Some(l) = links.try_next().await? {
            if let Some(name) = l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            }) && name != "lo"
            {
                let oper = l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::OperState(s) => Some(*s),
                    _ => None,
                });
                let mac = l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Address(m) if m.len() == 6 => m.as_slice().try_into().ok(),
                    _ => None,
                });
                names.insert(
                    l.header.index,
                    crate::node::NodeInterface {
                        name,
                        index: l.header.index,
                        subnets: vec![],
                        addresses: vec![],
                        // Dummy and ifb devices report "unknown" while working.
                        up: matches!(oper, Some(State::Up | State::Unknown) | None),
                        mac,
                    },
                );
            }
        }
        let mut addrs = self.handle.address().get().execute();
        while let Some(msg) = addrs.try_next().await? {
            if is_ours(&msg) {
                continue;
            }
            if let (Some(iface), Some(ip)) = (names.get_mut(&msg.header.index), address_of(&msg))
                && let Ok(net) = ipnet::IpNet::new(ip, msg.header.prefix_len)
            {
                let net = net.trunc();
                // Link-local subnets are on every interface and hold no service address.
                let link_local = match ip {
                    IpAddr::V4(v4) => v4.is_link_local(),
                    IpAddr::V6(v6) => v6.is_unicast_link_local(),
                };
                if !link_local && net.prefix_len() < net.max_prefix_len() {
                    if !iface.subnets.contains(&net) {
                        iface.subnets.push(net);
                    }
                    iface.addresses.push(ip);
                }
            }
        }
        Ok(names.into_values().collect())
    }

    /// Uses the interface if it exists; otherwise creates a dummy device, or an ifb device where
    /// the kernel has no dummy driver. Brings it up either way.
    pub async fn ensure_lb_interface(
        &self,
        name: &str,
    ) -> Result<(u32, LbInterface), NetlinkError> {
        let kind = if self.link_index(name).await?.is_some() {
            LbInterface::Existing
        } else {
            match self
                .handle
                .link()
                .add(LinkDummy::new(name).build())
                .execute()
                .await
            {
                Ok(()) => LbInterface::Dummy,
                Err(dummy_err) => {
                    tracing::info!(interface = name, error = %dummy_err, "no dummy driver; creating an ifb device instead");
                    self.handle
                        .link()
                        .add(LinkIfb::new(name).build())
                        .execute()
                        .await?;
                    LbInterface::Ifb
                }
            }
        };
        let index = self
            .link_index(name)
            .await?
            .ok_or_else(|| NetlinkError::NoInterface(name.into()))?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await?;
        Ok((index, kind))
    }

    /// Addresses on the interface that routelb added.
    pub async fn owned_addresses(&self, index: u32) -> Result<BTreeSet<IfAddress>, NetlinkError> {
        Ok(self.owned_messages(index).await?.into_keys().collect())
    }

    /// routelb's addresses on the interface with the kernel's messages for them (what a delete
    /// needs), from one dump.
    async fn owned_messages(
        &self,
        index: u32,
    ) -> Result<BTreeMap<IfAddress, AddressMessage>, NetlinkError> {
        let mut out = BTreeMap::new();
        let mut addrs = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(msg) = addrs.try_next().await? {
            if msg.header.index != index || !is_ours(&msg) {
                continue;
            }
            if let Some(ip) = address_of(&msg) {
                out.insert((ip, msg.header.prefix_len), msg);
            }
        }
        Ok(out)
    }

    /// Adds (or refreshes) an address, marked as routelb's. With a lifetime the kernel removes
    /// it by itself unless it is refreshed in time, so a dead agent cannot hold it for ever.
    pub async fn add_address(
        &self,
        index: u32,
        (ip, len): IfAddress,
        lifetime: Option<Duration>,
        source: AsSource,
    ) -> Result<(), NetlinkError> {
        let mut req = self.handle.address().add(index, ip, len).replace();
        let msg = req.message_mut();
        msg.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::Other(
                ADDRESS_PROTOCOL,
            )));
        if ip.is_ipv6() {
            // Duplicate address detection would hold the address back for a second or more.
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        let deprecated = ip.is_ipv6() && source == AsSource::Avoided;
        if lifetime.is_some() || deprecated {
            let valid = lifetime.map_or(INFINITE_LIFETIME, |l| {
                l.as_secs().clamp(1, u64::from(u32::MAX - 1)) as u32
            });
            let mut info = CacheInfo::default();
            info.ifa_preferred = if deprecated { 0 } else { valid };
            info.ifa_valid = valid;
            msg.attributes.push(AddressAttribute::CacheInfo(info));
        }
        req.execute().await?;
        Ok(())
    }

    /// Makes routelb's addresses on the interface exactly `desired`: adds what is missing (with
    /// `lifetime`, if any), renews the lifetimes that are due when `refresh` (the refresh
    /// period) is given ([`crate::address_refresh::due`]), removes what routelb added earlier
    /// and no longer wants. Addresses routelb did not add are never touched.
    pub async fn converge(
        &self,
        index: u32,
        desired: &BTreeSet<IfAddress>,
        lifetime: Option<Duration>,
        refresh: Option<Duration>,
        source: AsSource,
    ) -> Result<Converged, NetlinkError> {
        let current = self.owned_messages(index).await?;
        let renew: BTreeSet<IfAddress> = match (lifetime, refresh) {
            (Some(lifetime), Some(period)) => crate::address_refresh::due(
                current
                    .iter()
                    .filter(|(a, _)| desired.contains(a))
                    .map(|(a, msg)| (*a, valid_left(msg))),
                lifetime,
                period,
            )
            .into_iter()
            .collect(),
            _ => BTreeSet::new(),
        };
        let mut out = Converged::default();
        for a in desired {
            let missing = !current.contains_key(a);
            if missing || renew.contains(a) {
                self.add_address(index, *a, lifetime, source).await?;
                if missing {
                    out.added.push(*a);
                }
            }
        }
        for (a, msg) in current {
            if !desired.contains(&a) {
                self.handle.address().del(msg).execute().await?;
                out.removed += 1;
            }
        }
        Ok(out)
    }
}

/// Seconds of valid lifetime an address has left, as the kernel reports it (`u32::MAX`:
/// forever).
fn valid_left(msg: &AddressMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::CacheInfo(c) => Some(c.ifa_valid),
            _ => None,
        })
        .unwrap_or(INFINITE_LIFETIME)
}

/// One interface's part of [`Netlink::converge_node`].
pub struct InterfaceOutcome {
    pub interface: String,
    pub index: u32,
    /// The interface's MAC address; none for the load-balancer interface, whose addresses
    /// are routed, not answered for on a segment.
    pub mac: Option<[u8; 6]>,
    pub desired: BTreeSet<IfAddress>,
    pub result: Result<Converged, NetlinkError>,
}

impl InterfaceOutcome {
    /// Addresses newly put on a real interface, with its index and MAC: what to announce to
    /// the segment (gratuitous ARP / unsolicited NA, [`crate::garp`]).
    pub fn acquired(&self) -> Option<(u32, [u8; 6], &[IfAddress])> {
        let added = &self.result.as_ref().ok()?.added;
        (!added.is_empty()).then_some((self.index, self.mac?, added.as_slice()))
    }
}

/// The kernel's "forever" for an address lifetime.
const INFINITE_LIFETIME: u32 = u32::MAX;

/// Whether the kernel may choose an address as the source of the node's own connections.
/// Service addresses on a node's real interface are avoided: an IPv6 Service address in the
/// node's subnet matches a neighbour's address in more leading bits than the node's own, so
/// source selection (RFC 6724 rule 8) picked it, and the node's BGP session to the router
/// came from a Service address (seen on the real cluster: the router's IPv6 next hop for the
/// node was the local pool's address, which then moves to another node). A deprecated
/// address (preferred lifetime 0; rule 3 avoids it) still receives and answers as before.
/// IPv4 needs nothing: an address added in the subnet of the node's own is a secondary
/// address, which the kernel never picks as a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsSource {
    Allowed,
    Avoided,
}

impl Netlink {
    /// Converges routelb's addresses on the whole node to `planned` (interface → addresses):
    /// the load-balancer interface (created if needed) and every other interface, which may
    /// still hold addresses routelb should take off. Failures are per interface; the others
    /// are converged regardless. What was acquired on real interfaces is for the caller to
    /// announce ([`InterfaceOutcome::acquired`]).
    pub async fn converge_node(
        &self,
        planned: &BTreeMap<String, BTreeSet<IfAddress>>,
        facts: &[crate::node::NodeInterface],
        lb_interface: &str,
        lifetime: Option<Duration>,
        refresh: Option<Duration>,
    ) -> Vec<InterfaceOutcome> {
        let mut targets: Vec<(String, u32, Option<[u8; 6]>)> = facts
            .iter()
            .filter(|i| i.name != lb_interface)
            .map(|i| (i.name.clone(), i.index, i.mac))
            .collect();
        let mut out = Vec::with_capacity(targets.len() + 1);
        match self.ensure_lb_interface(lb_interface).await {
            Ok((index, _)) => targets.push((lb_interface.to_string(), index, None)),
            Err(e) => {
                tracing::warn!(interface = lb_interface, error = %e, "no load-balancer interface");
                out.push(InterfaceOutcome {
                    interface: lb_interface.to_string(),
                    index: 0,
                    mac: None,
                    desired: planned.get(lb_interface).cloned().unwrap_or_default(),
                    result: Err(e),
                });
            }
        }
        for (interface, index, mac) in targets {
            let desired = planned.get(&interface).cloned().unwrap_or_default();
            let source = if interface == lb_interface {
                AsSource::Allowed
            } else {
                AsSource::Avoided
            };
            let result = self
                .converge(index, &desired, lifetime, refresh, source)
                .await;
            match &result {
                Ok(c) if c.counts() != (0, 0) => {
                    // The first few by name; a pool's worth in one line helps nobody.
                    let shown: Vec<String> = c
                        .added
                        .iter()
                        .take(8)
                        .map(|(ip, len)| format!("{ip}/{len}"))
                        .collect();
                    tracing::info!(interface = %interface, added = c.added.len(), first = ?shown, removed = c.removed, "addresses converged")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(interface = %interface, error = %e, "could not converge addresses")
                }
            }
            out.push(InterfaceOutcome {
                interface,
                index,
                mac,
                desired,
                result,
            });
        }
        out
    }
}

/// What [`Netlink::converge`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Converged {
    pub added: Vec<IfAddress>,
    pub removed: usize,
}

impl Converged {
    /// (added, removed)
    pub fn counts(&self) -> (usize, usize) {
        (self.added.len(), self.removed)
    }
}

fn is_ours(msg: &AddressMessage) -> bool {
    msg.attributes
        .iter()
        .any(|a| matches!(a, AddressAttribute::Protocol(AddressProtocol::Other(p)) if *p == ADDRESS_PROTOCOL))
}

fn address_of(msg: &AddressMessage) -> Option<IpAddr> {
    // IPv4 carries the interface address in IFA_LOCAL; IPv6 only in IFA_ADDRESS.
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    local.or_else(|| {
        msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })
}
