//! DHCPv4 server decisions (RFC 2131/2132), PXE and iPXE aware.
//!
//! [`handle`] takes a decoded request, where it arrived, the configuration, the lease table and the
//! time, and returns an [`Outcome`]: the reply (if any) and where to send it, the lease changes to
//! persist, and what to report to the region. It never waits on anything: no ping check, no
//! per-client delay (a boot storm is served at the speed of the table lookups).

use std::net::Ipv4Addr;

pub use dhcproto::v4::Message;
use dhcproto::v4::{
    self, DhcpOption, Flags, HType, MessageType, Opcode, OptionCode, UnknownOption,
};
use ipnet::Ipv4Net;

use crate::leases::{
    Lease, LeaseChange, LeaseState, Leases, DECLINE_QUARANTINE_SECS, OFFER_HOLD_SECS,
};
use crate::netconf::{NetConf, SubnetConf};
use crate::{fmt_mac, Mac};

/// Where a request arrived: the rack's own address on that interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingress {
    pub addr: Ipv4Addr,
}

/// Boot settings of the rack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConf {
    /// Port of the rack's HTTP boot endpoint (5248).
    pub http_port: u16,
    /// Where the rack serves DNS (`None`: it does not): where a subnet names no DNS server, this
    /// address is handed out (option 6) when it is on the subnet, else the address the reply
    /// comes from (also when DNS listens on every address, `0.0.0.0`).
    pub dns: Option<Ipv4Addr>,
}

/// Where to send a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// To the relay agent, port 67.
    Relay(Ipv4Addr),
    /// To a configured client, port 68.
    Unicast(Ipv4Addr),
    /// To 255.255.255.255:68 on the ingress interface.
    Broadcast,
    /// To `ip` at hardware address `mac`, port 68 (the client has no address yet and did not ask
    /// for broadcast: the shell adds a neighbour entry, or broadcasts).
    Hardware { ip: Ipv4Addr, mac: Mac },
}

/// Something worth telling the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub mac: Mac,
    pub event_type: &'static str,
    pub description: String,
    pub ip: Option<Ipv4Addr>,
}

/// Why a packet got no answer (counted in metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    NotRequest,
    NoMessageType,
    NotEthernet,
    NotManaged,
    NoAddress,
    OtherServer,
    Unsupported,
    NoReplyNeeded,
}

impl Ignored {
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::NotRequest => "not_request",
            Ignored::NoMessageType => "no_message_type",
            Ignored::NotEthernet => "not_ethernet",
            Ignored::NotManaged => "not_managed",
            Ignored::NoAddress => "pool_exhausted",
            Ignored::OtherServer => "other_server",
            Ignored::Unsupported => "unsupported_type",
            Ignored::NoReplyNeeded => "no_reply_needed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub reply: Result<(Message, Dest), Ignored>,
    pub changes: Vec<LeaseChange>,
    pub observed: Vec<Observed>,
}

impl Outcome {
    fn ignore(why: Ignored) -> Outcome {
        Outcome {
            reply: Err(why),
            changes: Vec::new(),
            observed: Vec::new(),
        }
    }
}

/// What kind of boot client is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// iPXE: hand it the HTTP script URL (never a bootloader again: no chain-load loop). `arch`:
    /// its option 93, passed on in the URL so that an enlisted machine gets the right architecture.
    Ipxe { arch: Option<u16> },
    /// UEFI HTTP boot: hand it an HTTP URL of a bootloader.
    HttpBoot { arch: u16 },
    /// Firmware PXE: hand it a bootloader over TFTP.
    Pxe { arch: u16 },
    /// An ordinary DHCP client (an OS): no boot file.
    Plain,
}

fn class_id(msg: &Message) -> Option<&[u8]> {
    match msg.opts().get(OptionCode::ClassIdentifier) {
        Some(DhcpOption::ClassIdentifier(v)) => Some(v),
        _ => None,
    }
}

/// Classifies a request by options 60, 77, 93 and 175.
pub fn classify(msg: &Message) -> Client {
    let is_ipxe = match msg.opts().get(OptionCode::UserClass) {
        Some(DhcpOption::UserClass(uc)) => uc.windows(4).any(|w| w == b"iPXE"),
        _ => false,
    } || msg.opts().get(OptionCode::from(175)).is_some();
    let arch = match msg.opts().get(OptionCode::ClientSystemArchitecture) {
        Some(DhcpOption::ClientSystemArchitecture(a)) => Some(u16::from(*a)),
        _ => None,
    };
    let class = class_id(msg).unwrap_or_default();
    if is_ipxe {
        Client::Ipxe { arch }
    } else if class.starts_with(b"HTTPClient") {
        Client::HttpBoot {
            arch: arch.unwrap_or(16),
        }
    } else if class.starts_with(b"PXEClient") || arch.is_some() {
        Client::Pxe {
            arch: arch.unwrap_or(0),
        }
    } else {
        Client::Plain
    }
}

/// The bootloader for a firmware PXE client (RFC 4578 architecture types).
pub fn pxe_bootfile(arch: u16) -> &'static str {
    match arch {
        0 => "undionly.kpxe",
        6 => "ipxe-i386.efi",
        7 | 9 => "snponly.efi",
        10 | 11 => "ipxe-arm64.efi",
        _ => "undionly.kpxe",
    }
}

/// Kiln's architecture name for an RFC 4578 client architecture type (option 93).
pub fn kiln_architecture(arch: u16) -> &'static str {
    match arch {
        6 => "i386/generic",
        10 | 18 => "armhf/generic",
        11 | 19 => "arm64/generic",
        _ => "amd64/generic",
    }
}

/// The bootloader URL for a UEFI HTTP boot client.
pub fn http_bootfile(arch: u16) -> &'static str {
    match arch {
        19 => "ipxe-arm64.efi",
        _ => "ipxe.efi",
    }
}

/// Picks the subnet a request belongs to: the relay's (giaddr) or the ingress interface's.
fn subnet_for<'a>(conf: &'a NetConf, msg: &Message, ingress: &Ingress) -> Option<&'a SubnetConf> {
    let giaddr = msg.giaddr();
    if !giaddr.is_unspecified() {
        conf.managed_subnet_for(giaddr)
    } else {
        conf.managed_subnet_for(ingress.addr)
    }
}

/// Whether a relayed datagram (giaddr set) that came from `source` may be answered: the subnet its
/// giaddr selects lists no relay agents, or lists `source`. Anyone on a network can set giaddr;
/// listing the relays keeps a host that is not one from drawing leases from other subnets' pools.
pub fn relay_allowed(conf: &NetConf, giaddr: Ipv4Addr, source: Ipv4Addr) -> bool {
    conf.managed_subnet_for(giaddr)
        .is_none_or(|s| s.relays.is_empty() || s.relays.contains(&source))
}

/// Whether `mac` may hold `ip` in `subnet` now.
fn allowed(
    conf: &NetConf,
    subnet: &SubnetConf,
    leases: &Leases,
    ip: Ipv4Addr,
    mac: &Mac,
    now: u64,
    own: Ipv4Addr,
) -> bool {
    if !subnet.net.contains(&ip) || ip == subnet.net.network() || ip == subnet.net.broadcast() {
        return false;
    }
    // Never the gateway, nor the rack's own address (should a range be drawn over it).
    if subnet.gateway == Some(ip) || ip == own {
        return false;
    }
    let fixed_for_me = conf
        .hosts
        .get(mac)
        .and_then(|h| h.fixed)
        .filter(|f| subnet.net.contains(f));
    if let Some(f) = fixed_for_me {
        return ip == f && !leases.taken_by_other(ip, mac, now);
    }
    if conf.fixed_owner.get(&ip).is_some_and(|owner| owner != mac) {
        return false;
    }
    subnet.in_dynamic(ip) && !subnet.in_reserved(ip) && !leases.taken_by_other(ip, mac, now)
}

/// The address to offer `mac`: its fixed one, its current one, the one it asks for, or a free one.
fn choose(
    conf: &NetConf,
    subnet: &SubnetConf,
    leases: &mut Leases,
    mac: &Mac,
    requested: Option<Ipv4Addr>,
    now: u64,
    own: Ipv4Addr,
) -> Option<Ipv4Addr> {
    if let Some(f) = conf
        .hosts
        .get(mac)
        .and_then(|h| h.fixed)
        .filter(|f| subnet.net.contains(f))
    {
        return allowed(conf, subnet, leases, f, mac, now, own).then_some(f);
    }
    if let Some(l) = leases.by_mac(mac) {
        if allowed(conf, subnet, leases, l.ip, mac, now, own) {
            return Some(l.ip);
        }
    }
    if let Some(r) = requested {
        if allowed(conf, subnet, leases, r, mac, now, own) {
            return Some(r);
        }
    }
    for &(start, end) in &subnet.dynamic {
        let found = leases.find_free(start, end, mac, now, |ip| {
            !subnet.in_reserved(ip)
                && subnet.gateway != Some(ip)
                && ip != own
                && !conf.fixed_owner.contains_key(&ip)
                && ip != subnet.net.network()
                && ip != subnet.net.broadcast()
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

fn opt_ip(msg: &Message, code: OptionCode) -> Option<Ipv4Addr> {
    match msg.opts().get(code) {
        Some(DhcpOption::RequestedIpAddress(ip)) | Some(DhcpOption::ServerIdentifier(ip)) => {
            Some(*ip)
        }
        _ => None,
    }
}

fn mac_of(msg: &Message) -> Option<Mac> {
    if msg.htype() != HType::Eth || msg.hlen() != 6 {
        return None;
    }
    msg.chaddr().get(..6)?.try_into().ok()
}

/// The bare reply to `req`, with the header fields copied as RFC 2131 table 3 says.
fn reply_base(req: &Message, mt: MessageType, server: Ipv4Addr) -> Message {
    let mut r = Message::default();
    r.set_opcode(Opcode::BootReply)
        .set_htype(req.htype())
        .set_xid(req.xid())
        .set_flags(req.flags())
        .set_giaddr(req.giaddr())
        .set_chaddr(&req.chaddr()[..usize::from(req.hlen().min(16))]);
    r.opts_mut().insert(DhcpOption::MessageType(mt));
    r.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    if let Some(o) = req.opts().get(OptionCode::RelayAgentInformation) {
        r.opts_mut().insert(o.clone());
    }
    r
}

/// Network options for a client on `subnet`.
fn add_network_opts(
    r: &mut Message,
    subnet: &SubnetConf,
    conf: &NetConf,
    mac: &Mac,
    server: Ipv4Addr,
    boot: &BootConf,
) {
    let o = r.opts_mut();
    o.insert(DhcpOption::SubnetMask(subnet.net.netmask()));
    o.insert(DhcpOption::BroadcastAddr(subnet.net.broadcast()));
    if let Some(g) = subnet.gateway {
        o.insert(DhcpOption::Router(vec![g]));
    }
    if !subnet.dns.is_empty() {
        o.insert(DhcpOption::DomainNameServer(subnet.dns.clone()));
    } else if let Some(ip) = boot.dns {
        let ip = if !ip.is_unspecified() && subnet.net.contains(&ip) {
            ip
        } else {
            server
        };
        o.insert(DhcpOption::DomainNameServer(vec![ip]));
    }
    // The search domain: the subnet's, or else Kiln's default domain (machines are named there).
    if let Some(d) = subnet.domain.as_ref().or(conf.default_domain.as_ref()) {
        o.insert(DhcpOption::DomainName(d.clone()));
    }
    if !subnet.ntp.is_empty() {
        o.insert(DhcpOption::NtpServers(subnet.ntp.clone()));
    }
    if !subnet.routes.is_empty() {
        // RFC 3442: a client that gets option 121 ignores option 3, so the default route goes in too.
        let mut routes: Vec<(Ipv4Net, Ipv4Addr)> = Vec::new();
        if let Some(g) = subnet.gateway {
            routes.push((Ipv4Net::default(), g));
        }
        routes.extend(subnet.routes.iter().copied());
        o.insert(DhcpOption::ClasslessStaticRoute(routes));
    }
    if let Some(h) = conf.hosts.get(mac) {
        o.insert(DhcpOption::Hostname(h.hostname.clone()));
    }
}

/// Boot options for a PXE/iPXE/HTTP-boot client.
fn add_boot_opts(r: &mut Message, client: &Client, server: Ipv4Addr, boot: &BootConf, mac: &Mac) {
    match client {
        Client::Plain => {}
        Client::Ipxe { arch } => {
            let mut url = format!(
                "http://{server}:{}/boot/ipxe?mac={}",
                boot.http_port,
                fmt_mac(mac)
            );
            if let Some(a) = arch {
                url.push_str("&arch=");
                url.push_str(kiln_architecture(*a));
            }
            r.set_fname_str(&url);
            r.opts_mut()
                .insert(DhcpOption::BootfileName(url.into_bytes()));
            // iPXE encapsulated options: 176 no-pxedhcp = 1 (skip the ProxyDHCP wait).
            r.opts_mut().insert(DhcpOption::Unknown(UnknownOption::new(
                OptionCode::from(175),
                vec![176, 1, 1],
            )));
        }
        Client::HttpBoot { arch } => {
            let url = format!(
                "http://{server}:{}/boot/{}",
                boot.http_port,
                http_bootfile(*arch)
            );
            r.set_fname_str(&url);
            r.opts_mut()
                .insert(DhcpOption::BootfileName(url.into_bytes()));
            r.opts_mut()
                .insert(DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()));
        }
        Client::Pxe { arch } => {
            r.set_siaddr(server);
            r.set_fname_str(pxe_bootfile(*arch));
            r.opts_mut()
                .insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
            // PXE vendor options (option 43): discovery control 8 = "boot the file named in this
            // reply" (no boot-server discovery, no menu). Firmware PXE clients (OVMF among them)
            // do not take a PXEClient offer as a boot offer without it.
            r.opts_mut().insert(DhcpOption::Unknown(UnknownOption::new(
                OptionCode::from(43),
                vec![6, 1, 8, 255],
            )));
        }
    }
}

/// RFC 2131 §4.1: where a reply goes.
pub fn destination(req: &Message, reply_type: MessageType, yiaddr: Ipv4Addr, mac: Mac) -> Dest {
    let giaddr = req.giaddr();
    if !giaddr.is_unspecified() {
        return Dest::Relay(giaddr);
    }
    if reply_type == MessageType::Nak {
        return Dest::Broadcast;
    }
    let ciaddr = req.ciaddr();
    if !ciaddr.is_unspecified() {
        return Dest::Unicast(ciaddr);
    }
    if req.flags().broadcast() || yiaddr.is_unspecified() {
        return Dest::Broadcast;
    }
    Dest::Hardware { ip: yiaddr, mac }
}

fn lease_opts(r: &mut Message, lease_time: u32) {
    r.opts_mut()
        .insert(DhcpOption::AddressLeaseTime(lease_time));
    r.opts_mut().insert(DhcpOption::Renewal(lease_time / 2));
    r.opts_mut()
        .insert(DhcpOption::Rebinding(lease_time / 8 * 7));
}

fn observed_boot(conf: &NetConf, client: &Client, mac: Mac) -> Option<Observed> {
    let known = conf.hosts.contains_key(&mac);
    let what = match client {
        Client::Plain => return None,
        Client::Ipxe { .. } => "iPXE",
        Client::HttpBoot { .. } => "UEFI HTTP boot",
        Client::Pxe { arch: 0 } => "BIOS PXE",
        Client::Pxe { .. } => "UEFI PXE",
    };
    Some(Observed {
        mac,
        event_type: if known { "pxe_request" } else { "unknown_pxe" },
        description: format!("{what} DHCP request"),
        ip: None,
    })
}

/// Answers one request.
pub fn handle(
    msg: &Message,
    ingress: &Ingress,
    conf: &NetConf,
    boot: &BootConf,
    leases: &mut Leases,
    now: u64,
) -> Outcome {
    if msg.opcode() != Opcode::BootRequest {
        return Outcome::ignore(Ignored::NotRequest);
    }
    let Some(mt) = msg.opts().msg_type() else {
        return Outcome::ignore(Ignored::NoMessageType);
    };
    let Some(mac) = mac_of(msg) else {
        return Outcome::ignore(Ignored::NotEthernet);
    };
    let Some(subnet) = subnet_for(conf, msg, ingress) else {
        return Outcome::ignore(Ignored::NotManaged);
    };
    // The server identifier must be reachable by the client: our address on the ingress interface.
    let server = ingress.addr;
    let client = classify(msg);
    let requested = opt_ip(msg, OptionCode::RequestedIpAddress);
    let server_id = opt_ip(msg, OptionCode::ServerIdentifier);
    let mut out = Outcome::ignore(Ignored::NoReplyNeeded);

    match mt {
        MessageType::Discover => {
            let Some(ip) = choose(conf, subnet, leases, &mac, requested, now, server) else {
                return Outcome::ignore(Ignored::NoAddress);
            };
            // Hold the address for this client while it decides; keep a bound lease as it is.
            let hold = match leases.by_ip(ip) {
                Some(l) if l.mac == mac && l.state == LeaseState::Bound && l.expires > now => None,
                _ => Some(Lease {
                    ip,
                    mac,
                    state: LeaseState::Offered,
                    expires: now + OFFER_HOLD_SECS,
                }),
            };
            if let Some(l) = hold {
                let ch = LeaseChange::Set(l);
                leases.apply(&ch);
                out.changes.push(ch);
            }
            let mut r = reply_base(msg, MessageType::Offer, server);
            r.set_yiaddr(ip);
            lease_opts(&mut r, subnet.lease_time.unwrap_or(conf.lease_time));
            add_network_opts(&mut r, subnet, conf, &mac, server, boot);
            add_boot_opts(&mut r, &client, server, boot, &mac);
            out.observed.extend(observed_boot(conf, &client, mac));
            out.reply = Ok((r.clone(), destination(msg, MessageType::Offer, ip, mac)));
        }
        MessageType::Request => {
            let target = if let Some(sid) = server_id {
                // SELECTING: the client chose a server.
                if sid != server {
                    // Not us: let our offer go.
                    if let Some(l) = leases.by_mac(&mac) {
                        if l.state == LeaseState::Offered {
                            let ch = LeaseChange::Remove { ip: l.ip };
                            leases.apply(&ch);
                            out.changes.push(ch);
                        }
                    }
                    out.reply = Err(Ignored::OtherServer);
                    return out;
                }
                requested.or(Some(msg.ciaddr()).filter(|c| !c.is_unspecified()))
            } else if !msg.ciaddr().is_unspecified() {
                // RENEWING / REBINDING.
                Some(msg.ciaddr())
            } else {
                // INIT-REBOOT.
                requested
            };
            // Only an address this client was offered or holds here (or its fixed one): a client
            // that skips DISCOVER and asks for any free address, in INIT-REBOOT or by renewing
            // one it never had, is NAKed (RFC 2131 §4.3.2) and starts over.
            let fixed = conf.hosts.get(&mac).and_then(|h| h.fixed);
            let ok = target.filter(|ip| {
                (leases.by_mac(&mac).is_some_and(|l| l.ip == *ip) || fixed == Some(*ip))
                    && allowed(conf, subnet, leases, *ip, &mac, now, server)
            });
            match ok {
                Some(ip) => {
                    let ch = LeaseChange::Set(Lease {
                        ip,
                        mac,
                        state: LeaseState::Bound,
                        expires: now + u64::from(subnet.lease_time.unwrap_or(conf.lease_time)),
                    });
                    leases.apply(&ch);
                    out.changes.push(ch);
                    let mut r = reply_base(msg, MessageType::Ack, server);
                    r.set_yiaddr(ip);
                    r.set_ciaddr(msg.ciaddr());
                    lease_opts(&mut r, subnet.lease_time.unwrap_or(conf.lease_time));
                    add_network_opts(&mut r, subnet, conf, &mac, server, boot);
                    add_boot_opts(&mut r, &client, server, boot, &mac);
                    // Leases of machines the region knows are part of their boot trace; other
                    // clients' leases stay on the rack (no region load from a lease storm).
                    if conf.hosts.contains_key(&mac) {
                        out.observed.push(Observed {
                            mac,
                            event_type: "dhcp_lease",
                            description: format!(
                                "DHCP lease {ip} ({} s)",
                                subnet.lease_time.unwrap_or(conf.lease_time)
                            ),
                            ip: Some(ip),
                        });
                    }
                    out.reply = Ok((r, destination(msg, MessageType::Ack, ip, mac)));
                }
                None => {
                    // INIT-REBOOT for an address we know nothing of on another network: stay silent
                    // (RFC 2131 §4.3.2); otherwise NAK so the client starts over at once.
                    if target.is_none() {
                        out.reply = Err(Ignored::NoAddress);
                        return out;
                    }
                    let mut r = reply_base(msg, MessageType::Nak, server);
                    r.opts_mut().insert(DhcpOption::Message(
                        "address not available; start over".into(),
                    ));
                    if !msg.giaddr().is_unspecified() {
                        r.set_flags(Flags::default().set_broadcast());
                    }
                    out.reply = Ok((
                        r,
                        destination(msg, MessageType::Nak, Ipv4Addr::UNSPECIFIED, mac),
                    ));
                }
            }
        }
        MessageType::Release => {
            if server_id.is_none_or(|s| s == server) {
                if let Some(l) = leases.by_ip(msg.ciaddr()) {
                    if l.mac == mac {
                        let ch = LeaseChange::Remove { ip: l.ip };
                        leases.apply(&ch);
                        out.changes.push(ch);
                    }
                }
            }
        }
        MessageType::Decline => {
            if let Some(ip) = requested {
                if leases.by_ip(ip).is_some_and(|l| l.mac == mac) {
                    for ch in [
                        LeaseChange::Remove { ip },
                        LeaseChange::Quarantine {
                            ip,
                            until: now + DECLINE_QUARANTINE_SECS,
                        },
                    ] {
                        leases.apply(&ch);
                        out.changes.push(ch);
                    }
                    out.observed.push(Observed {
                        mac,
                        event_type: "dhcp_decline",
                        description: format!("client declined {ip}: it is in use on the network; quarantined for {DECLINE_QUARANTINE_SECS} s"),
                        ip: Some(ip),
                    });
                }
            }
        }
        MessageType::Inform => {
            let mut r = reply_base(msg, MessageType::Ack, server);
            r.set_ciaddr(msg.ciaddr());
            add_network_opts(&mut r, subnet, conf, &mac, server, boot);
            add_boot_opts(&mut r, &client, server, boot, &mac);
            let dest = if msg.giaddr().is_unspecified() {
                if msg.ciaddr().is_unspecified() {
                    Dest::Broadcast
                } else {
                    Dest::Unicast(msg.ciaddr())
                }
            } else {
                Dest::Relay(msg.giaddr())
            };
            out.reply = Ok((r, dest));
        }
        _ => return Outcome::ignore(Ignored::Unsupported),
    }
    out
}

/// Why a datagram was dropped before it reached [`handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than the fixed BOOTP header plus magic cookie.
    Truncated,
    /// The option area does not parse as type-length-value items.
    BadOptions,
    /// The decoder refused it.
    Undecodable,
}

/// Offset of the options, after the 236-byte BOOTP header and the 4-byte magic cookie.
const OPTIONS_AT: usize = 240;

/// The length an option instance must have where dhcproto 0.15 reads a fixed number of bytes
/// whatever the length byte says (and then parses the rest of the packet out of step) or
/// `debug_assert`s on it. Derived from dhcproto's `decode_inner`. Option 93 is taken as a single
/// architecture (RFC 4578 allows a list; dhcproto reads one).
fn fixed_len(code: u8) -> Option<std::ops::RangeInclusive<usize>> {
    Some(match code {
        80 => 0..=0,
        19 | 20 | 23 | 27 | 29 | 30 | 31 | 34 | 36 | 37 | 39 | 46 | 52 | 53 | 116 | 156 | 157 => {
            1..=1
        }
        13 | 22 | 26 | 57 | 93 => 2..=2,
        94 => 3..=3,
        2 | 24 | 35 | 38 | 51 | 58 | 59 | 91 | 106 | 152..=155 => 4..=4,
        81 => 3..=255,
        _ => return None,
    })
}

/// Walks the option area as dhcproto will: every option fits in the packet, and every option that
/// dhcproto reads at a fixed size has that size, where consecutive instances of one code (no pad
/// between) count as one option with their lengths summed, as dhcproto concatenates them (RFC 3396).
/// Without this, dhcproto 0.15 panics on some packets (debug builds: found by our property test and
/// by cargo fuzz) and misreads others (release builds).
fn check_options(bytes: &[u8]) -> Result<(), Malformed> {
    let area = &bytes[OPTIONS_AT..];
    // The run being accumulated: (code, summed length).
    let mut run: Option<(u8, usize)> = None;
    let close = |run: Option<(u8, usize)>| match run {
        Some((code, len)) if fixed_len(code).is_some_and(|ok| !ok.contains(&len)) => {
            Err(Malformed::BadOptions)
        }
        _ => Ok(()),
    };
    let mut i = 0;
    while i < area.len() {
        match area[i] {
            0 => {
                close(run.take())?;
                i += 1;
            }
            255 => return close(run),
            code => {
                let len = usize::from(*area.get(i + 1).ok_or(Malformed::BadOptions)?);
                if i + 2 + len > area.len() {
                    return Err(Malformed::BadOptions);
                }
                run = match run {
                    Some((c, l)) if c == code => Some((c, l + len)),
                    other => {
                        close(other)?;
                        Some((code, len))
                    }
                };
                i += 2 + len;
            }
        }
    }
    close(run)
}

/// Decodes a datagram. Never panics: malformed input is an error to count and drop.
pub fn decode_checked(bytes: &[u8]) -> Result<Message, Malformed> {
    use dhcproto::Decodable;
    if bytes.len() < OPTIONS_AT {
        return Err(Malformed::Truncated);
    }
    check_options(bytes)?;
    // Belt and braces: a panic inside the third-party decoder drops the packet, not the server.
    std::panic::catch_unwind(|| Message::decode(&mut dhcproto::Decoder::new(bytes)))
        .map_err(|_| Malformed::Undecodable)?
        .map_err(|_| Malformed::Undecodable)
}

/// [`decode_checked`] without the reason.
pub fn decode(bytes: &[u8]) -> Option<Message> {
    decode_checked(bytes).ok()
}

/// Encodes a reply.
pub fn encode(msg: &Message) -> Option<Vec<u8>> {
    use dhcproto::Encodable;
    msg.to_vec().ok()
}

pub use v4::MessageType as Type;

#[cfg(test)]
mod tests;
