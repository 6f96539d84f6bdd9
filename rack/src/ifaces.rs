//! The host's network interfaces with their MACs and IPv4 addresses.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use nix::ifaddrs::getifaddrs;
use region_api_types::RackInterface;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub mac: Option<String>,
    /// (address, prefix length)
    pub v4: Vec<(Ipv4Addr, u8)>,
}

/// Every interface but loopback.
pub fn list() -> Vec<Iface> {
    let mut by_name: BTreeMap<String, Iface> = BTreeMap::new();
    let Ok(addrs) = getifaddrs() else {
        return Vec::new();
    };
    for a in addrs {
        if a.interface_name == "lo" {
            continue;
        }
        let e = by_name
            .entry(a.interface_name.clone())
            .or_insert_with(|| Iface {
                name: a.interface_name.clone(),
                mac: None,
                v4: Vec::new(),
            });
        let Some(addr) = a.address else { continue };
        if let Some(link) = addr.as_link_addr() {
            if let Some(m) = link.addr() {
                if m != [0; 6] {
                    e.mac = Some(rack_proto::fmt_mac(&m));
                }
            }
        } else if let Some(sin) = addr.as_sockaddr_in() {
            let ip = sin.ip();
            let prefix = a
                .netmask
                .and_then(|m| {
                    m.as_sockaddr_in()
                        .map(|m| u32::from(m.ip()).count_ones() as u8)
                })
                .unwrap_or(32);
            e.v4.push((ip, prefix));
        }
    }
    by_name.into_values().collect()
}

/// As the region wants them reported.
pub fn report() -> Vec<RackInterface> {
    list()
        .into_iter()
        .filter_map(|i| {
            Some(RackInterface {
                mac: i.mac?,
                addresses: i.v4.iter().map(|(a, p)| format!("{a}/{p}")).collect(),
                name: i.name,
            })
        })
        .collect()
}
