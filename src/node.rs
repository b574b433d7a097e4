//! What routelb knows of the node it runs on: its interfaces and the addresses on them. Plain
//! types, shared by the planner, the netlink shell and GARP.

use std::net::IpAddr;

use ipnet::IpNet;

/// An address with its prefix length, as it sits on an interface.
pub type IfAddress = (IpAddr, u8);

/// An interface of this node and the subnets on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInterface {
    pub name: String,
    pub index: u32,
    pub subnets: Vec<IpNet>,
    /// This node's own addresses in those subnets (not routelb's): what its neighbours reach
    /// it at (BFD peers of fast failover).
    pub addresses: Vec<IpAddr>,
    /// Operationally up (or of unknown state, as dummies report): a node does not offer the
    /// subnets of a down interface for local addresses.
    pub up: bool,
    pub mac: Option<[u8; 6]>,
}
