//! A minimal IPv6 router advertiser for managed PXE networks that have no IPv6 router.
//!
//! iPXE configures IPv4 (DHCP) and IPv6 (router discovery) in parallel and reports its interface
//! configured only when both finish; with no router on the segment it waits ~13 s for an answer to
//! its router solicitation (measured in `shared/recipes/lab.md`). This answers every solicitation on
//! a managed interface at once (and announces once when it starts) with an RA that says
//! "router lifetime 0" (do not use me as a default router), no prefixes and no DHCPv6 flags: iPXE
//! finishes IPv6 configuration immediately and nothing else changes for any host.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// The RA: ICMPv6 type 134, router lifetime 0, no flags, with our link-layer address.
/// (The kernel fills the checksum of raw ICMPv6 sockets.)
pub fn advertisement(mac: Option<[u8; 6]>) -> Vec<u8> {
    let mut p = vec![134, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    if let Some(m) = mac {
        p.extend_from_slice(&[1, 1]);
        p.extend_from_slice(&m);
    }
    p
}

/// Is this ICMPv6 message a router solicitation (type 133, code 0)?
pub fn is_solicitation(b: &[u8]) -> bool {
    b.len() >= 8 && b[0] == 133 && b[1] == 0
}

fn open(iface: &str, ifindex: u32) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    s.bind_device(Some(iface.as_bytes()))?;
    s.join_multicast_v6(&ALL_ROUTERS, ifindex)?;
    s.set_multicast_hops_v6(255)?;
    s.set_unicast_hops_v6(255)?;
    s.set_multicast_if_v6(ifindex)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Answers router solicitations on `iface` until cancelled.
pub async fn serve(
    iface: String,
    mac: Option<[u8; 6]>,
    metrics: std::sync::Arc<Metrics>,
    cancel: CancellationToken,
) {
    let ifindex = match nix::net::if_::if_nametoindex(iface.as_str()) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(iface = %iface, "RA: no interface index: {e}");
            return;
        }
    };
    // A raw ICMPv6 socket is a datagram socket like any other to tokio's reactor.
    let sock = match open(&iface, ifindex).and_then(|s| UdpSocket::from_std(s.into())) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(iface = %iface, "RA: cannot open an ICMPv6 socket: {e}");
            return;
        }
    };
    let ra = advertisement(mac);
    let to = SocketAddrV6::new(ALL_NODES, 0, 0, ifindex);
    let send = |sock: &UdpSocket| match sock.try_send_to(&ra, to.into()) {
        Ok(_) => metrics.inc("ra_sent"),
        Err(e) => tracing::debug!(iface = %iface, "RA send: {e}"),
    };
    // Announce at start; the link-local address may still be tentative then, so again 2 s later.
    send(&sock);
    let started = Instant::now();
    let mut announced_again = false;
    let mut last = Instant::now();
    let mut buf = [0u8; 1500];
    loop {
        let got = tokio::select! {
            r = sock.recv_from(&mut buf) => r,
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)), if !announced_again => {
                announced_again = started.elapsed() >= Duration::from_secs(2);
                send(&sock);
                continue;
            }
        };
        match got {
            Ok((n, _)) if is_solicitation(&buf[..n]) => {
                metrics.inc("ra_solicitations");
                // At most one answer per 200 ms, whatever a flood of solicitations says.
                if last.elapsed() >= Duration::from_millis(200) {
                    send(&sock);
                    last = Instant::now();
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(iface = %iface, "RA recv: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets() {
        let ra = advertisement(Some([0x52, 0x54, 0, 0, 0, 1]));
        assert_eq!(ra.len(), 24);
        assert_eq!(ra[0], 134);
        assert_eq!(
            &ra[6..8],
            &[0, 0],
            "router lifetime 0: not a default router"
        );
        assert_eq!(ra[5], 0, "no managed/other flags");
        assert!(is_solicitation(&[133, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!is_solicitation(&[134, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!is_solicitation(&[133]));
    }
}
