//! What a rack controller decides, without IO: the DHCPv4 server's answers and leases ([`dhcp`],
//! [`leases`]), built from the region's snapshot ([`netconf`]).
//!
//! **Architecture invariant:** this crate does no IO and reads no clock. Callers pass decoded
//! packets, the current configuration, the lease table and `now`; they get back a value saying what
//! to send, what changed, and what to report. The tokio shells in the `rack` crate own the sockets.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod dhcp;
pub mod ipxe;
pub mod leases;
pub mod netconf;
pub mod tftp;

/// A MAC address.
pub type Mac = [u8; 6];

/// `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Parses `aa:bb:cc:dd:ee:ff` (as the region stores MACs).
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}
