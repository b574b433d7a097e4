//! Telling the segment that an address moved here: gratuitous ARP (IPv4) and unsolicited
//! neighbour advertisements (IPv6), sent when this node acquires a local address, so hosts and
//! routers on the subnet update their caches at once instead of after their entries expire.
//!
//! Raw sockets through libc: a few lines for two fixed packet formats did not justify a
//! packet-crafting crate. Needs CAP_NET_RAW.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETH_P_ARP: u16 = 0x0806;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn socket(domain: libc::c_int, kind: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned from here on.
    let fd = check(unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: fd was just returned by socket(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The ARP payload (RFC 826) announcing `ip` at `mac`: sender and target address both `ip`.
pub fn arp_packet(mac: [u8; 6], ip: Ipv4Addr, reply: bool) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&(if reply { 2u16 } else { 1 }).to_be_bytes());
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&ip.octets());
    if reply {
        p[18..24].copy_from_slice(&mac);
    }
    p[24..28].copy_from_slice(&ip.octets());
    p
}

/// An unsolicited neighbour advertisement (RFC 4861 §7.2.6) for `ip` at `mac`, with the
/// Override flag so receivers replace a cached address. The kernel fills in the checksum.
pub fn na_packet(mac: [u8; 6], ip: Ipv6Addr) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = 136; // neighbour advertisement
    p[4] = 0x20; // Override
    p[8..24].copy_from_slice(&ip.octets());
    p[24] = 2; // target link-layer address option
    p[25] = 1; // length in units of 8 bytes
    p[26..32].copy_from_slice(&mac);
    p
}

fn send_arp(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> io::Result<()> {
    let fd = socket(
        libc::AF_PACKET,
        libc::SOCK_DGRAM,
        i32::from(ETH_P_ARP.to_be()),
    )?;
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_ARP.to_be();
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // Both a request and a reply: some hosts only learn from one of them.
    for reply in [false, true] {
        let p = arp_packet(mac, ip, reply);
        // SAFETY: the buffer and address are valid for the lengths given.
        check(unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                p.as_ptr().cast(),
                p.len(),
                0,
                (&raw const to).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        } as libc::c_int)?;
    }
    Ok(())
}

fn set_int(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: an int option with its size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&raw const v).cast(),
            size_of::<libc::c_int>() as u32,
        )
    })
    .map(drop)
}

fn sockaddr6(ip: Ipv6Addr, scope: u32) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut a: libc::sockaddr_in6 = unsafe { zeroed() };
    a.sin6_family = libc::AF_INET6 as u16;
    a.sin6_addr.s6_addr = ip.octets();
    a.sin6_scope_id = scope;
    a
}

fn send_na(ifindex: u32, mac: [u8; 6], ip: Ipv6Addr) -> io::Result<()> {
    let fd = socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6)?;
    // Neighbour discovery packets must arrive with hop limit 255 or they are dropped.
    set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255)?;
    set_int(
        &fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_IF,
        ifindex as i32,
    )?;
    // Sent from the address itself, as RFC 4861 allows.
    let from = sockaddr6(ip, 0);
    // SAFETY: a valid sockaddr_in6 with its size.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const from).cast(),
            size_of::<libc::sockaddr_in6>() as u32,
        )
    })?;
    let to = sockaddr6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), ifindex);
    let p = na_packet(mac, ip);
    // SAFETY: the buffer and address are valid for the lengths given.
    check(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            p.as_ptr().cast(),
            p.len(),
            0,
            (&raw const to).cast(),
            size_of::<libc::sockaddr_in6>() as u32,
        )
    } as libc::c_int)
    .map(drop)
}

/// Announces that `ip` is now reachable at `mac` on the interface.
pub fn announce(ifindex: u32, mac: [u8; 6], ip: IpAddr) -> io::Result<()> {
    match ip {
        IpAddr::V4(v4) => send_arp(ifindex, mac, v4),
        IpAddr::V6(v6) => send_na(ifindex, mac, v6),
    }
}

/// [`announce_acquired`] for every interface that acquired addresses: (index, MAC, addresses).
pub fn announce_all<'a>(
    acquired: impl IntoIterator<Item = (u32, [u8; 6], &'a [crate::node::IfAddress])>,
) {
    for (index, mac, added) in acquired {
        announce_acquired(index, mac, added);
    }
}

/// Gratuitous ARP / unsolicited NA for local addresses just acquired, now and once more a
/// second later (a first packet can be lost while a switch learns the port).
pub fn announce_acquired(index: u32, mac: [u8; 6], added: &[crate::node::IfAddress]) {
    if added.is_empty() {
        return;
    }
    let ips: Vec<std::net::IpAddr> = added.iter().map(|(ip, _)| *ip).collect();
    let send = move |ips: &[std::net::IpAddr]| {
        for ip in ips {
            if let Err(e) = announce(index, mac, *ip) {
                tracing::warn!(address = %ip, error = %e, "could not announce the address on the segment");
            }
        }
    };
    send(&ips);
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        send(&ips);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_have_the_rfc_layout() {
        let mac = [2, 0, 0, 0, 0, 9];
        let a = arp_packet(mac, Ipv4Addr::new(10, 0, 0, 5), false);
        assert_eq!(&a[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&a[8..14], &mac);
        assert_eq!(&a[14..18], &[10, 0, 0, 5]);
        assert_eq!(&a[18..24], &[0; 6]);
        assert_eq!(&a[24..28], &[10, 0, 0, 5]);
        assert_eq!(arp_packet(mac, Ipv4Addr::new(10, 0, 0, 5), true)[7], 2);

        let n = na_packet(mac, "fd00::5".parse().unwrap());
        assert_eq!(n[0], 136);
        assert_eq!(n[4], 0x20);
        assert_eq!(n[8], 0xfd);
        assert_eq!(n[23], 5);
        assert_eq!(&n[24..26], &[2, 1]);
        assert_eq!(&n[26..], &mac);
    }
}
