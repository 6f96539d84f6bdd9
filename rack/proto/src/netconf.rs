//! The network configuration DHCP answers from, derived from the region's [`RackSnapshot`].

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use region_api_types::{MachineStatus, RackSnapshot};

use crate::{parse_mac, Mac};

/// One subnet, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetConf {
    pub id: String,
    pub net: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub dynamic: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub reserved: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub routes: Vec<(Ipv4Net, Ipv4Addr)>,
    pub managed: bool,
    pub ntp: Vec<Ipv4Addr>,
    /// Lease time on this subnet (None: the rack's default).
    pub lease_time: Option<u32>,
    /// Relay agents allowed to relay for this subnet, by source address (empty: any).
    pub relays: Vec<Ipv4Addr>,
}

impl SubnetConf {
    pub fn in_dynamic(&self, ip: Ipv4Addr) -> bool {
        self.dynamic.iter().any(|(s, e)| *s <= ip && ip <= *e)
    }

    pub fn in_reserved(&self, ip: Ipv4Addr) -> bool {
        self.reserved.iter().any(|(s, e)| *s <= ip && ip <= *e)
    }
}

/// A machine the region knows, by MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub system_id: String,
    pub hostname: String,
    pub status: MachineStatus,
    pub architecture: String,
    /// A fixed address for this MAC, if the region assigned one.
    pub fixed: Option<Ipv4Addr>,
    /// Its deployment's installer finished: boot the disk.
    pub local_boot: bool,
    /// The ESP the installer made (for grub-local.efi on UEFI).
    pub esp_uuid: Option<String>,
    /// Deployed (or deploying) in memory: every boot loads the OS image with a new credential.
    pub memory_boot: bool,
    /// Deployed (or deploying) with root on iSCSI: the rack serving its volume boots it.
    pub iscsi_boot: bool,
}

/// Everything DHCP (and the boot services) answer from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetConf {
    pub subnets: Vec<SubnetConf>,
    pub hosts: HashMap<Mac, Host>,
    /// Fixed addresses → the MAC they belong to.
    pub fixed_owner: HashMap<Ipv4Addr, Mac>,
    pub lease_time: u32,
    /// Kiln's default DNS domain: the search domain on subnets that name none.
    pub default_domain: Option<String>,
}

fn ip(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

impl NetConf {
    /// Parses a snapshot. Entries that do not parse are skipped (the region validated them; a rack
    /// must keep serving whatever else it was given).
    pub fn from_snapshot(s: &RackSnapshot) -> NetConf {
        let subnets: Vec<SubnetConf> = s
            .subnets
            .iter()
            .filter_map(|sn| {
                Some(SubnetConf {
                    id: sn.id.clone(),
                    net: sn.cidr.parse().ok()?,
                    gateway: sn.gateway.as_deref().and_then(ip),
                    dns: sn.dns_servers.iter().filter_map(|d| ip(d)).collect(),
                    domain: sn.domain.clone(),
                    dynamic: sn
                        .dynamic_ranges
                        .iter()
                        .filter_map(|r| Some((ip(&r.start)?, ip(&r.end)?)))
                        .collect(),
                    reserved: sn
                        .reserved_ranges
                        .iter()
                        .filter_map(|r| Some((ip(&r.start)?, ip(&r.end)?)))
                        .collect(),
                    routes: sn
                        .static_routes
                        .iter()
                        .filter_map(|r| Some((r.destination.parse().ok()?, ip(&r.gateway)?)))
                        .collect(),
                    managed: sn.managed,
                    ntp: sn.ntp_servers.iter().filter_map(|d| ip(d)).collect(),
                    relays: sn.relay_addresses.iter().filter_map(|d| ip(d)).collect(),
                    lease_time: sn.lease_time_secs,
                })
            })
            .collect();
        let mut hosts = HashMap::new();
        let mut fixed_owner = HashMap::new();
        for m in &s.machines {
            for i in &m.interfaces {
                let Some(mac) = parse_mac(&i.mac) else {
                    continue;
                };
                let fixed = i.ip.as_deref().and_then(ip);
                if let Some(f) = fixed {
                    fixed_owner.insert(f, mac);
                }
                hosts.insert(
                    mac,
                    Host {
                        system_id: m.system_id.clone(),
                        hostname: m.hostname.clone(),
                        status: m.status,
                        architecture: m.architecture.clone(),
                        fixed,
                        local_boot: m.local_boot,
                        esp_uuid: m.esp_uuid.clone(),
                        memory_boot: m.memory_boot,
                        iscsi_boot: m.iscsi_boot,
                    },
                );
            }
            if let Some(mac) = m.boot_mac.as_deref().and_then(parse_mac) {
                hosts.entry(mac).or_insert_with(|| Host {
                    system_id: m.system_id.clone(),
                    hostname: m.hostname.clone(),
                    status: m.status,
                    architecture: m.architecture.clone(),
                    fixed: None,
                    local_boot: m.local_boot,
                    esp_uuid: m.esp_uuid.clone(),
                    memory_boot: m.memory_boot,
                    iscsi_boot: m.iscsi_boot,
                });
            }
        }
        NetConf {
            subnets,
            hosts,
            fixed_owner,
            lease_time: s.lease_time_secs.max(60),
            default_domain: Some(s.dns.default_domain.clone()).filter(|d| !d.is_empty()),
        }
    }

    /// The managed subnet containing `addr`.
    pub fn managed_subnet_for(&self, addr: Ipv4Addr) -> Option<&SubnetConf> {
        self.subnets
            .iter()
            .find(|s| s.managed && s.net.contains(&addr))
    }
}
