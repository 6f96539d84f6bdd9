//! What a rack controller decides, without IO: the DHCPv4 server's answers and leases ([`dhcp`],
//! [`leases`]), built from the region's snapshot ([`netconf`]).
//!
//! **Architecture invariant:** this crate does no IO and reads no clock. Callers pass decoded
//! packets, the current configuration, the lease table and `now`; they get back a value saying what
//! to send, what changed, and what to report. The tokio shells in the `rack` crate own the sockets.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod dhcp;
pub mod dns;
pub mod ipxe;
pub mod iscsi;
pub mod leases;
pub mod netconf;
pub mod pods;
pub mod power;
pub mod proxy;
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

/// Whether a path under the rack's `/metadata/v1/` may be forwarded to the region's metadata API:
/// plain segments of letters, digits, `-`, `_` and `.`, none of them `.` or `..`, so that a
/// forwarded request can never climb out to other region endpoints.
pub fn metadata_path_ok(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 256
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

#[cfg(test)]
mod metadata_path_tests {
    use super::metadata_path_ok;

    #[test]
    fn only_plain_metadata_paths_are_forwarded() {
        assert!(metadata_path_ok("scripts"));
        assert!(metadata_path_ok("scripts/50-check.sh/result"));
        for bad in [
            "",
            "../machines",
            "scripts/../../machines",
            "a//b",
            "./x",
            "%2e%2e/x",
            "a b",
            "x/",
        ] {
            assert!(!metadata_path_ok(bad), "{bad}");
        }
    }
}

/// Whether an HTTP request from `peer` may act for the machine with `mac` (enlist it, get its boot
/// credential): the rack itself (loopback), or the address the rack leased to that very MAC
/// (`leased_to`: the MAC holding `peer`'s lease). Anyone else asking with `?mac=` would otherwise
/// get another machine's token.
pub fn may_act_for(peer: std::net::IpAddr, mac: &Mac, leased_to: Option<&Mac>) -> bool {
    peer.is_loopback() || leased_to == Some(mac)
}

#[cfg(test)]
mod may_act_tests {
    use super::may_act_for;

    #[test]
    fn only_the_lease_holder_or_the_rack_itself() {
        let a = [0x52, 0x54, 0, 0, 0, 1];
        let b = [0x52, 0x54, 0, 0, 0, 2];
        let ip = "10.20.0.100".parse().unwrap();
        assert!(may_act_for(ip, &a, Some(&a)));
        assert!(!may_act_for(ip, &a, Some(&b)), "another machine's address");
        assert!(
            !may_act_for(ip, &a, None),
            "an address the rack never leased"
        );
        assert!(may_act_for("127.0.0.1".parse().unwrap(), &a, None));
    }
}
