//! Building the zones from the snapshot.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use ipnet::Ipv4Net;
use region_api_types::{SnapshotDns, SnapshotMachine, Subnet};

use crate::{parse_mac, Mac};

/// What the zones are built from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub dns: &'a SnapshotDns,
    pub machines: &'a [SnapshotMachine],
    pub subnets: &'a [Subnet],
    /// This rack's current leases: MAC → address.
    pub leases: &'a [(Mac, Ipv4Addr)],
    /// This rack's own addresses on managed subnets (the name server's A records).
    pub servers: &'a [Ipv4Addr],
}

/// One zone's apex.
#[derive(Debug, Clone)]
pub(super) struct Apex {
    pub origin: LowerName,
    pub soa: Record,
    pub ns: Vec<Record>,
}

/// The records at one name.
#[derive(Debug, Clone, Default)]
pub(super) struct Node {
    pub zone: usize,
    pub records: Vec<Record>,
}

/// Everything a rack answers with authority.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    pub(super) apexes: Vec<Apex>,
    pub(super) nodes: HashMap<LowerName, Node>,
    /// Names with no records of their own but with names below them (`_tcp.kiln` under
    /// `_http._tcp.kiln`): NOERROR without data, not NXDOMAIN.
    pub(super) empty_non_terminals: HashSet<LowerName>,
    pub(super) managed: Vec<Ipv4Net>,
    pub serial: u32,
}

/// SOA timers (MAAS's zone template: refresh 600, retry 1800, expire a week).
const REFRESH: i32 = 600;
const RETRY: i32 = 1800;
const EXPIRE: i32 = 604_800;

fn fqdn(s: &str) -> Option<Name> {
    let s = s.trim().trim_end_matches('.');
    if s.is_empty() {
        return None;
    }
    let mut n = Name::from_ascii(s).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// `d.c.b.a.in-addr.arpa.` for `a.b.c.d`.
pub fn reverse_name(ip: Ipv4Addr) -> Option<Name> {
    let [a, b, c, d] = ip.octets();
    fqdn(&format!("{d}.{c}.{b}.{a}.in-addr.arpa"))
}

/// The reverse zones of a subnet: at its prefix rounded up to an octet boundary (several zones
/// when the prefix is not on one), or its `/24` when longer than 24 bits.
pub fn reverse_origins(net: Ipv4Net) -> Vec<String> {
    let p = net.prefix_len();
    let z = if p >= 24 {
        24
    } else {
        p.div_ceil(8).max(1) * 8
    };
    let parts: Vec<Ipv4Net> = if p >= z {
        Ipv4Net::new(net.network(), z)
            .map(|n| vec![n.trunc()])
            .unwrap_or_default()
    } else {
        net.trunc()
            .subnets(z)
            .map(|s| s.collect())
            .unwrap_or_default()
    };
    parts
        .into_iter()
        .map(|n| {
            let o = n.network().octets();
            let labels: Vec<String> = o[..usize::from(z / 8)]
                .iter()
                .rev()
                .map(u8::to_string)
                .collect();
            format!("{}.in-addr.arpa", labels.join("."))
        })
        .collect()
}

/// TXT data as character-strings of at most 255 bytes each, split between characters (never
/// inside one, which would make the halves invalid UTF-8).
pub(crate) fn txt_strings(data: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in data.chars() {
        if cur.len() + ch.len_utf8() > 255 {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(ch);
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

/// The record data of an operator's record (already validated by the region; anything that does
/// not parse is left out rather than served wrong).
fn rdata(rtype: &str, data: &str) -> Option<RData> {
    let parts: Vec<&str> = data.split_whitespace().collect();
    Some(match rtype {
        "A" => RData::A(A(Ipv4Addr::from_str(data).ok()?)),
        "AAAA" => RData::AAAA(AAAA(Ipv6Addr::from_str(data).ok()?)),
        "CNAME" => RData::CNAME(CNAME(fqdn(data)?)),
        "TXT" => RData::TXT(TXT::new(txt_strings(data))),
        "SRV" if parts.len() == 4 => RData::SRV(SRV::new(
            parts[0].parse().ok()?,
            parts[1].parse().ok()?,
            parts[2].parse().ok()?,
            fqdn(parts[3])?,
        )),
        "MX" if parts.len() == 2 => RData::MX(MX::new(parts[0].parse().ok()?, fqdn(parts[1])?)),
        _ => return None,
    })
}

impl Zones {
    /// Builds every zone; `serial` goes into each SOA.
    pub fn build(i: Inputs<'_>, serial: u32) -> Zones {
        let mut z = Zones {
            serial,
            managed: i
                .subnets
                .iter()
                .filter(|s| s.managed)
                .filter_map(|s| s.cidr.parse::<Ipv4Net>().ok())
                .collect(),
            ..Default::default()
        };
        let default = i
            .dns
            .default_domain
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let ns_name = fqdn(&format!("ns.{default}"));
        let mut ttl_of: HashMap<LowerName, u32> = HashMap::new();
        // Forward zones, then reverse zones (with the default domain's TTL).
        let default_ttl = i
            .dns
            .domains
            .iter()
            .find(|d| d.name == default)
            .map(|d| d.ttl)
            .unwrap_or(region_api_types::DEFAULT_DNS_TTL);
        let mut origins: Vec<(String, u32)> = i
            .dns
            .domains
            .iter()
            .map(|d| (d.name.to_ascii_lowercase(), d.ttl))
            .collect();
        for net in &z.managed {
            for o in reverse_origins(*net) {
                origins.push((o, default_ttl));
            }
        }
        let mut seen = HashSet::new();
        for (origin, ttl) in origins {
            let Some(name) = fqdn(&origin) else { continue };
            let lower = LowerName::new(&name);
            if !seen.insert(lower.clone()) {
                continue;
            }
            let mname = ns_name.clone().unwrap_or_else(|| name.clone());
            let rname = fqdn(&format!("hostmaster.{default}")).unwrap_or_else(|| name.clone());
            let soa = Record::from_rdata(
                name.clone(),
                ttl,
                RData::SOA(SOA::new(
                    mname.clone(),
                    rname,
                    serial,
                    REFRESH,
                    RETRY,
                    EXPIRE,
                    ttl,
                )),
            );
            let ns = vec![Record::from_rdata(name, ttl, RData::NS(NS(mname)))];
            ttl_of.insert(lower.clone(), ttl);
            z.apexes.push(Apex {
                origin: lower,
                soa,
                ns,
            });
        }
        // The name server's addresses.
        if let Some(ns) = &ns_name {
            for ip in i.servers {
                z.add(ns.clone(), None, RData::A(A(*ip)), &ttl_of);
            }
        }
        // Machines: forward and reverse.
        let mut by_mac: HashMap<Mac, Vec<Ipv4Addr>> = HashMap::new();
        for (mac, ip) in i.leases {
            by_mac.entry(*mac).or_default().push(*ip);
        }
        for m in i.machines {
            let domain = m
                .domain
                .as_deref()
                .unwrap_or(&default)
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let Some(name) = fqdn(&format!("{}.{domain}", m.hostname.to_ascii_lowercase())) else {
                continue;
            };
            let mut addrs: Vec<Ipv4Addr> = Vec::new();
            for iface in &m.interfaces {
                if let Some(ip) = iface.ip.as_deref().and_then(|s| s.parse().ok()) {
                    addrs.push(ip);
                }
                if let Some(l) = parse_mac(&iface.mac).and_then(|mac| by_mac.get(&mac)) {
                    addrs.extend(l.iter().copied());
                }
            }
            addrs.sort();
            addrs.dedup();
            for ip in addrs {
                if !z.add(name.clone(), None, RData::A(A(ip)), &ttl_of) {
                    break;
                }
                if z.managed.iter().any(|n| n.contains(&ip)) {
                    if let Some(rev) = reverse_name(ip) {
                        z.add(rev, None, RData::PTR(PTR(name.clone())), &ttl_of);
                    }
                }
            }
        }
        // Operators' records.
        for r in &i.dns.records {
            if let (Some(name), Some(data)) = (fqdn(&r.name), rdata(&r.rtype, &r.data)) {
                z.add(name, Some(r.ttl), data, &ttl_of);
            }
        }
        z.mark_empty_non_terminals();
        z
    }

    /// The zone holding `name`: the longest apex it is at or under.
    pub(super) fn zone_of(&self, name: &LowerName) -> Option<usize> {
        self.apexes
            .iter()
            .enumerate()
            .filter(|(_, a)| a.origin.zone_of(name))
            .max_by_key(|(_, a)| a.origin.num_labels())
            .map(|(i, _)| i)
    }

    /// Adds a record at `name` if a zone holds it (and the same data is not there already; a CNAME
    /// is not mixed with other data). Returns whether the name is in a zone at all.
    fn add(
        &mut self,
        name: Name,
        ttl: Option<u32>,
        data: RData,
        ttl_of: &HashMap<LowerName, u32>,
    ) -> bool {
        let lower = LowerName::new(&name);
        let Some(zone) = self.zone_of(&lower) else {
            return false;
        };
        let ttl = ttl
            .or_else(|| ttl_of.get(&self.apexes[zone].origin).copied())
            .unwrap_or(region_api_types::DEFAULT_DNS_TTL);
        let node = self.nodes.entry(lower).or_insert_with(|| Node {
            zone,
            records: Vec::new(),
        });
        let is_cname = data.record_type() == RecordType::CNAME;
        if node.records.iter().any(|r| {
            let other_cname = r.record_type() == RecordType::CNAME;
            r.data == data || is_cname != other_cname
        }) {
            return true;
        }
        node.records.push(Record::from_rdata(name, ttl, data));
        true
    }

    fn mark_empty_non_terminals(&mut self) {
        let mut ents = HashSet::new();
        for (name, node) in &self.nodes {
            let origin = &self.apexes[node.zone].origin;
            let mut cur = name.base_name();
            while cur.num_labels() > origin.num_labels() && !self.nodes.contains_key(&cur) {
                if !ents.insert(cur.clone()) {
                    break;
                }
                cur = cur.base_name();
            }
        }
        self.empty_non_terminals = ents;
    }

    /// How many names (with records) the zones hold.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}
