use std::collections::HashMap;
use std::net::Ipv4Addr;

use dhcproto::v4::{relay, Architecture, DhcpOption, Flags, Message, MessageType, OptionCode};
use proptest::prelude::*;

use super::*;
use crate::netconf::{Host, NetConf, SubnetConf};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 2);
const A: Mac = [0x52, 0x54, 0, 0, 0, 1];
const B: Mac = [0x52, 0x54, 0, 0, 0, 2];
const BOOT: BootConf = BootConf {
    http_port: 5248,
    dns: None,
};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn subnet(cidr: &str, dynamic: (&str, &str), managed: bool) -> SubnetConf {
    SubnetConf {
        id: cidr.into(),
        net: cidr.parse().unwrap(),
        gateway: Some(ip(&cidr.replace(".0/24", ".1"))),
        dns: vec![ip("10.20.0.1")],
        domain: Some("lab.example".into()),
        dynamic: vec![(ip(dynamic.0), ip(dynamic.1))],
        reserved: vec![],
        routes: vec![(
            "10.50.0.0/16".parse().unwrap(),
            ip(&cidr.replace(".0/24", ".254")),
        )],
        managed,
        ntp: vec![],
        lease_time: None,
        relays: vec![],
    }
}

fn conf() -> NetConf {
    NetConf {
        subnets: vec![
            subnet("10.20.0.0/24", ("10.20.0.100", "10.20.0.102"), true),
            subnet("10.30.0.0/24", ("10.30.0.100", "10.30.0.150"), true),
            subnet("10.40.0.0/24", ("10.40.0.100", "10.40.0.150"), false),
        ],
        hosts: HashMap::new(),
        fixed_owner: HashMap::new(),
        lease_time: 600,
        default_domain: Some("kiln".into()),
    }
}

#[test]
fn the_rack_is_the_dns_server_and_kilns_domain_the_search_domain_where_the_subnet_names_none() {
    let mut c = conf();
    c.subnets[0].dns.clear();
    c.subnets[0].domain = None;
    let discover = |c: &NetConf, boot: &BootConf| {
        let o = handle(
            &req(MessageType::Discover, A),
            &ingress(),
            c,
            boot,
            &mut Leases::new(),
            1000,
        );
        reply(&o).clone()
    };
    let with_dns = BootConf {
        dns: Some(Ipv4Addr::UNSPECIFIED),
        ..BOOT
    };
    let r = discover(&c, &with_dns);
    assert_eq!(
        r.opts().get(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![SERVER]))
    );
    // DNS bound to one address of the subnet: that one; to an address elsewhere: the reply's.
    for (bound, handed) in [("10.20.0.3", "10.20.0.3"), ("192.0.2.1", "10.20.0.2")] {
        let b = BootConf {
            dns: Some(ip(bound)),
            ..BOOT
        };
        assert_eq!(
            discover(&c, &b).opts().get(OptionCode::DomainNameServer),
            Some(&DhcpOption::DomainNameServer(vec![ip(handed)]))
        );
    }
    assert_eq!(
        r.opts().get(OptionCode::DomainName),
        Some(&DhcpOption::DomainName("kiln".into()))
    );
    // Without the rack's DNS (--no-dns) no server is handed out; the subnet's own wins when set.
    assert_eq!(
        discover(&c, &BOOT).opts().get(OptionCode::DomainNameServer),
        None
    );
    let r = discover(&conf(), &with_dns);
    assert_eq!(
        r.opts().get(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![ip("10.20.0.1")]))
    );
    assert_eq!(
        r.opts().get(OptionCode::DomainName),
        Some(&DhcpOption::DomainName("lab.example".into()))
    );
}

fn req(mt: MessageType, mac: Mac) -> Message {
    let mut m = Message::new_with_id(
        0x1234,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    m.opts_mut().insert(DhcpOption::MessageType(mt));
    m
}

fn ingress() -> Ingress {
    Ingress { addr: SERVER }
}

fn reply(o: &Outcome) -> &Message {
    &o.reply.as_ref().unwrap().0
}

fn dest(o: &Outcome) -> Dest {
    o.reply.as_ref().unwrap().1
}

/// DISCOVER → OFFER → REQUEST → ACK for one client; returns the address.
fn dora(conf: &NetConf, leases: &mut Leases, mac: Mac, now: u64) -> Ipv4Addr {
    let o = handle(
        &req(MessageType::Discover, mac),
        &ingress(),
        conf,
        &BOOT,
        leases,
        now,
    );
    let offered = reply(&o).yiaddr();
    let mut r = req(MessageType::Request, mac);
    r.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    r.opts_mut().insert(DhcpOption::RequestedIpAddress(offered));
    let o = handle(&r, &ingress(), conf, &BOOT, leases, now);
    assert_eq!(reply(&o).opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(reply(&o).yiaddr(), offered);
    offered
}

#[test]
fn discover_offers_a_dynamic_address_with_the_subnet_options() {
    let mut leases = Leases::new();
    let o = handle(
        &req(MessageType::Discover, A),
        &ingress(),
        &conf(),
        &BOOT,
        &mut leases,
        1000,
    );
    let r = reply(&o);
    assert_eq!(r.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(r.opcode(), dhcproto::v4::Opcode::BootReply);
    assert_eq!(r.xid(), 0x1234);
    assert_eq!(r.yiaddr(), ip("10.20.0.100"));
    let opts = r.opts();
    assert_eq!(
        opts.get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        opts.get(OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(ip("255.255.255.0")))
    );
    assert_eq!(
        opts.get(OptionCode::Router),
        Some(&DhcpOption::Router(vec![ip("10.20.0.1")]))
    );
    assert_eq!(
        opts.get(OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(600))
    );
    assert_eq!(
        opts.get(OptionCode::DomainName),
        Some(&DhcpOption::DomainName("lab.example".into()))
    );
    // Option 121 carries the default route first (RFC 3442), then the SAN route.
    assert_eq!(
        opts.get(OptionCode::ClasslessStaticRoute),
        Some(&DhcpOption::ClasslessStaticRoute(vec![
            ("0.0.0.0/0".parse().unwrap(), ip("10.20.0.1")),
            ("10.50.0.0/16".parse().unwrap(), ip("10.20.0.254")),
        ]))
    );
    // A plain client gets no boot file.
    assert!(r.fname().is_none_or(|f| f.iter().all(|b| *b == 0)));
    // No broadcast flag, no address: unicast to the hardware address.
    assert_eq!(
        dest(&o),
        Dest::Hardware {
            ip: ip("10.20.0.100"),
            mac: A
        }
    );
    assert_eq!(o.changes.len(), 1);
}

#[test]
fn two_clients_get_different_addresses_and_keep_them() {
    let c = conf();
    let mut leases = Leases::new();
    let a = dora(&c, &mut leases, A, 1000);
    let b = dora(&c, &mut leases, B, 1000);
    assert_ne!(a, b);
    // A comes back later (still leased): same address.
    assert_eq!(dora(&c, &mut leases, A, 1100), a);
}

#[test]
fn ntp_and_per_subnet_lease_time() {
    let mut c = conf();
    c.subnets[0].ntp = vec![ip("10.20.0.5"), ip("10.20.0.6")];
    c.subnets[0].lease_time = Some(3600);
    let mut leases = Leases::new();
    let o = handle(
        &req(MessageType::Discover, A),
        &ingress(),
        &c,
        &BOOT,
        &mut leases,
        1000,
    );
    let r = reply(&o);
    assert_eq!(
        r.opts().get(OptionCode::NtpServers),
        Some(&DhcpOption::NtpServers(vec![
            ip("10.20.0.5"),
            ip("10.20.0.6")
        ]))
    );
    assert_eq!(
        r.opts().get(OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(3600))
    );
    assert_eq!(
        r.opts().get(OptionCode::Renewal),
        Some(&DhcpOption::Renewal(1800))
    );
    let a = dora(&c, &mut leases, A, 1000);
    assert_eq!(leases.by_ip(a).unwrap().expires, 1000 + 3600);
}

#[test]
fn never_hands_out_the_racks_own_address() {
    // A dynamic range drawn over the rack's own address (10.20.0.2).
    let mut c = conf();
    c.subnets[0].dynamic = vec![(ip("10.20.0.2"), ip("10.20.0.3"))];
    let mut leases = Leases::new();
    assert_eq!(dora(&c, &mut leases, A, 0), ip("10.20.0.3"));
    let o = handle(
        &req(MessageType::Discover, B),
        &ingress(),
        &c,
        &BOOT,
        &mut leases,
        0,
    );
    assert_eq!(o.reply.unwrap_err(), Ignored::NoAddress);
    let mut r = req(MessageType::Request, B);
    r.opts_mut().insert(DhcpOption::RequestedIpAddress(SERVER));
    let o = handle(&r, &ingress(), &c, &BOOT, &mut leases, 0);
    assert_eq!(reply(&o).opts().msg_type(), Some(MessageType::Nak));
}

#[test]
fn broadcast_flag_is_honoured() {
    let mut m = req(MessageType::Discover, A);
    m.set_flags(Flags::default().set_broadcast());
    let o = handle(&m, &ingress(), &conf(), &BOOT, &mut Leases::new(), 0);
    assert_eq!(dest(&o), Dest::Broadcast);
    assert!(reply(&o).flags().broadcast());
}

#[test]
fn request_for_another_server_releases_the_offer() {
    let c = conf();
    let mut leases = Leases::new();
    handle(
        &req(MessageType::Discover, A),
        &ingress(),
        &c,
        &BOOT,
        &mut leases,
        0,
    );
    assert!(leases.by_mac(&A).is_some());
    let mut r = req(MessageType::Request, A);
    r.opts_mut()
        .insert(DhcpOption::ServerIdentifier(ip("10.20.0.99")));
    r.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(ip("10.20.0.100")));
    let o = handle(&r, &ingress(), &c, &BOOT, &mut leases, 0);
    assert_eq!(o.reply.unwrap_err(), Ignored::OtherServer);
    assert!(leases.by_mac(&A).is_none());
}

#[test]
fn renew_init_reboot_and_nak() {
    let c = conf();
    let mut leases = Leases::new();
    let a = dora(&c, &mut leases, A, 0);
    // RENEWING: ciaddr set, unicast reply.
    let mut r = req(MessageType::Request, A);
    r.set_ciaddr(a);
    let o = handle(&r, &ingress(), &c, &BOOT, &mut leases, 300);
    assert_eq!(reply(&o).opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(dest(&o), Dest::Unicast(a));
    assert_eq!(leases.by_ip(a).unwrap().expires, 900);
    // INIT-REBOOT with an address held by A: B gets NAK (broadcast).
    let mut r = req(MessageType::Request, B);
    r.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    let o = handle(&r, &ingress(), &c, &BOOT, &mut leases, 300);
    assert_eq!(reply(&o).opts().msg_type(), Some(MessageType::Nak));
    assert_eq!(dest(&o), Dest::Broadcast);
    // INIT-REBOOT for A's own address: ACK.
    let mut r = req(MessageType::Request, A);
    r.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    let o = handle(&r, &ingress(), &c, &BOOT, &mut leases, 300);
    assert_eq!(reply(&o).opts().msg_type(), Some(MessageType::Ack));
}

#[test]
fn an_address_never_offered_is_naked_in_init_reboot_renewing_and_selecting() {
    let c = conf();
    let mut leases = Leases::new();
    let free = ip("10.20.0.101");
    // INIT-REBOOT for a free address in the pool that this client never had.
    let mut r = req(MessageType::Request, B);
    r.opts_mut().insert(DhcpOption::RequestedIpAddress(free));
    let o = handle(&r, &ingress(), &c, &BOOT, &mut leases, 100);
    assert_eq!(reply(&o).opts().msg_type(), Some(MessageType::Nak));
    assert!(o.changes.is_empty(), "a NAK binds nothing");
    // RENEWING an address it never had.
    let mut r = req(MessageType::Request, B);
    r.set_ciaddr(free);
    let o = handle(&r, &ingress(), &c, &BOOT, &mut leases, 100);
    assert_eq!(reply(&o).opts().msg_type(), Some(MessageType::Nak));
    // SELECTING us with an address we did not offer it.
    let offered = {
        let o = handle(
            &req(MessageType::Discover, B),
            &ingress(),
            &c,
            &BOOT,
            &mut leases,
            100,
        );
        reply(&o).yiaddr()
    };
    let other = ip("10.20.0.102");
    assert_ne!(offered, other);
    let mut r = req(MessageType::Request, B);
    r.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    r.opts_mut().insert(DhcpOption::RequestedIpAddress(other));
    let o = handle(&r, &ingress(), &c, &BOOT, &mut leases, 100);
    assert_eq!(reply(&o).opts().msg_type(), Some(MessageType::Nak));
    assert!(leases.by_ip(other).is_none());
    // The one it was offered is bound.
    let mut r = req(MessageType::Request, B);
    r.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    r.opts_mut().insert(DhcpOption::RequestedIpAddress(offered));
    let o = handle(&r, &ingress(), &c, &BOOT, &mut leases, 100);
    assert_eq!(reply(&o).opts().msg_type(), Some(MessageType::Ack));
}

#[test]
fn release_and_decline() {
    let c = conf();
    let mut leases = Leases::new();
    let a = dora(&c, &mut leases, A, 0);
    let mut r = req(MessageType::Release, A);
    r.set_ciaddr(a);
    r.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    let o = handle(&r, &ingress(), &c, &BOOT, &mut leases, 10);
    assert!(o.reply.is_err());
    assert!(leases.by_ip(a).is_none());
    // Decline: the address is quarantined and the next client gets another one.
    let b = dora(&c, &mut leases, B, 20);
    let mut d = req(MessageType::Decline, B);
    d.opts_mut().insert(DhcpOption::RequestedIpAddress(b));
    d.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    let o = handle(&d, &ingress(), &c, &BOOT, &mut leases, 30);
    assert_eq!(o.observed[0].event_type, "dhcp_decline");
    let b2 = dora(&c, &mut leases, B, 31);
    assert_ne!(b2, b);
}

#[test]
fn pool_exhaustion_is_reported_not_crashed() {
    let c = conf();
    let mut leases = Leases::new();
    for i in 0..3u8 {
        dora(&c, &mut leases, [2, 0, 0, 0, 1, i], 0);
    }
    let o = handle(
        &req(MessageType::Discover, [2, 0, 0, 0, 1, 9]),
        &ingress(),
        &c,
        &BOOT,
        &mut leases,
        0,
    );
    assert_eq!(o.reply.unwrap_err(), Ignored::NoAddress);
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut m = req(MessageType::Inform, A);
    m.set_ciaddr(ip("10.20.0.50"));
    let o = handle(&m, &ingress(), &conf(), &BOOT, &mut Leases::new(), 0);
    let r = reply(&o);
    assert_eq!(r.opts().msg_type(), Some(MessageType::Ack));
    assert!(r.yiaddr().is_unspecified());
    assert!(r.opts().get(OptionCode::AddressLeaseTime).is_none());
    assert_eq!(dest(&o), Dest::Unicast(ip("10.20.0.50")));
}

#[test]
fn pxe_clients_get_the_right_bootloader() {
    let c = conf();
    let cases: [(u16, &str); 3] = [(0, "undionly.kpxe"), (7, "snponly.efi"), (9, "snponly.efi")];
    for (arch, file) in cases {
        let mut m = req(MessageType::Discover, A);
        m.opts_mut().insert(DhcpOption::ClassIdentifier(
            format!("PXEClient:Arch:{arch:05}:UNDI:002001").into_bytes(),
        ));
        m.opts_mut()
            .insert(DhcpOption::ClientSystemArchitecture(Architecture::from(
                arch,
            )));
        let o = handle(&m, &ingress(), &c, &BOOT, &mut Leases::new(), 0);
        let r = reply(&o);
        assert_eq!(r.fname_str().unwrap().unwrap(), file, "arch {arch}");
        assert_eq!(r.siaddr(), SERVER);
        assert_eq!(
            r.opts().get(OptionCode::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
        );
        assert_eq!(o.observed[0].event_type, "unknown_pxe");
        // PXE discovery control 8: boot the file named here (firmware PXE needs option 43).
        match r.opts().get(OptionCode::from(43)) {
            Some(DhcpOption::Unknown(u)) => assert_eq!(u.data(), &[6, 1, 8, 255]),
            other => panic!("no option 43 for a PXE client: {other:?}"),
        }
    }
}

#[test]
fn ipxe_gets_the_script_url_and_no_pxedhcp() {
    let mut c = conf();
    c.hosts.insert(
        A,
        Host {
            system_id: "abc123".into(),
            hostname: "node1".into(),
            status: region_api_types::MachineStatus::New,
            architecture: "amd64/generic".into(),
            fixed: None,
            local_boot: false,
            esp_uuid: None,
            memory_boot: false,
            iscsi_boot: false,
        },
    );
    let mut m = req(MessageType::Discover, A);
    m.opts_mut().insert(DhcpOption::ClassIdentifier(
        b"PXEClient:Arch:00000:UNDI:002001".to_vec(),
    ));
    m.opts_mut().insert(DhcpOption::UserClass(b"iPXE".to_vec()));
    let o = handle(&m, &ingress(), &c, &BOOT, &mut Leases::new(), 0);
    let r = reply(&o);
    assert_eq!(
        r.fname_str().unwrap().unwrap(),
        "http://10.20.0.2:5248/boot/ipxe?mac=52:54:00:00:00:01"
    );
    match r.opts().get(OptionCode::from(175)) {
        Some(DhcpOption::Unknown(u)) => assert_eq!(u.data(), &[176, 1, 1]),
        other => panic!("no option 175: {other:?}"),
    }
    // With option 93 (as iPXE sends it) the URL carries the architecture, for enlistment.
    let mut arm = m.clone();
    arm.opts_mut()
        .insert(DhcpOption::ClientSystemArchitecture(Architecture::from(11)));
    let o2 = handle(&arm, &ingress(), &c, &BOOT, &mut Leases::new(), 0);
    assert_eq!(
        reply(&o2).fname_str().unwrap().unwrap(),
        "http://10.20.0.2:5248/boot/ipxe?mac=52:54:00:00:00:01&arch=arm64/generic"
    );
    assert_eq!(kiln_architecture(0), "amd64/generic");
    assert_eq!(kiln_architecture(7), "amd64/generic");
    assert_eq!(
        r.opts().get(OptionCode::Hostname),
        Some(&DhcpOption::Hostname("node1".into()))
    );
    assert_eq!(o.observed[0].event_type, "pxe_request");
}

#[test]
fn only_known_machines_leases_are_reported() {
    let mut c = conf();
    c.hosts.insert(
        A,
        Host {
            system_id: "abc123".into(),
            hostname: "node1".into(),
            status: region_api_types::MachineStatus::New,
            architecture: "amd64/generic".into(),
            fixed: None,
            local_boot: false,
            esp_uuid: None,
            memory_boot: false,
            iscsi_boot: false,
        },
    );
    let mut leases = Leases::new();
    for (mac, expect) in [(A, true), (B, false)] {
        let o = handle(
            &req(MessageType::Discover, mac),
            &ingress(),
            &c,
            &BOOT,
            &mut leases,
            0,
        );
        let mut r = req(MessageType::Request, mac);
        r.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        r.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(reply(&o).yiaddr()));
        let o = handle(&r, &ingress(), &c, &BOOT, &mut leases, 0);
        assert_eq!(
            o.observed.iter().any(|e| e.event_type == "dhcp_lease"),
            expect
        );
    }
}

#[test]
fn uefi_http_boot_gets_a_url() {
    let mut m = req(MessageType::Discover, A);
    m.opts_mut().insert(DhcpOption::ClassIdentifier(
        b"HTTPClient:Arch:00016:UNDI:003001".to_vec(),
    ));
    m.opts_mut()
        .insert(DhcpOption::ClientSystemArchitecture(Architecture::from(16)));
    let o = handle(&m, &ingress(), &conf(), &BOOT, &mut Leases::new(), 0);
    let r = reply(&o);
    assert_eq!(
        r.fname_str().unwrap().unwrap(),
        "http://10.20.0.2:5248/boot/ipxe.efi"
    );
    assert_eq!(
        r.opts().get(OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()))
    );
}

#[test]
fn relayed_requests_use_the_relay_subnet_and_echo_option_82() {
    let mut m = req(MessageType::Discover, A);
    m.set_giaddr(ip("10.30.0.1"));
    let mut info = relay::RelayAgentInformation::default();
    info.insert(relay::RelayInfo::AgentCircuitId(b"port7".to_vec()));
    m.opts_mut()
        .insert(DhcpOption::RelayAgentInformation(info.clone()));
    let o = handle(&m, &ingress(), &conf(), &BOOT, &mut Leases::new(), 0);
    let r = reply(&o);
    assert_eq!(r.yiaddr(), ip("10.30.0.100"));
    assert_eq!(r.giaddr(), ip("10.30.0.1"));
    assert_eq!(dest(&o), Dest::Relay(ip("10.30.0.1")));
    assert_eq!(
        r.opts().get(OptionCode::RelayAgentInformation),
        Some(&DhcpOption::RelayAgentInformation(info))
    );
}

#[test]
fn unmanaged_and_foreign_requests_are_ignored() {
    let mut m = req(MessageType::Discover, A);
    m.set_giaddr(ip("10.40.0.1"));
    assert_eq!(
        handle(&m, &ingress(), &conf(), &BOOT, &mut Leases::new(), 0)
            .reply
            .unwrap_err(),
        Ignored::NotManaged
    );
    let o = handle(
        &req(MessageType::Discover, A),
        &Ingress {
            addr: ip("192.168.9.1"),
        },
        &conf(),
        &BOOT,
        &mut Leases::new(),
        0,
    );
    assert_eq!(o.reply.unwrap_err(), Ignored::NotManaged);
    let mut reply_msg = req(MessageType::Offer, A);
    reply_msg.set_opcode(dhcproto::v4::Opcode::BootReply);
    assert_eq!(
        handle(
            &reply_msg,
            &ingress(),
            &conf(),
            &BOOT,
            &mut Leases::new(),
            0
        )
        .reply
        .unwrap_err(),
        Ignored::NotRequest
    );
}

#[test]
fn fixed_addresses_belong_to_their_machine() {
    let mut c = conf();
    c.hosts.insert(
        A,
        Host {
            system_id: "abc123".into(),
            hostname: "node1".into(),
            status: region_api_types::MachineStatus::Deployed,
            architecture: "amd64/generic".into(),
            fixed: Some(ip("10.20.0.101")),
            local_boot: false,
            esp_uuid: None,
            memory_boot: false,
            iscsi_boot: false,
        },
    );
    c.fixed_owner.insert(ip("10.20.0.101"), A);
    let mut leases = Leases::new();
    assert_eq!(dora(&c, &mut leases, A, 0), ip("10.20.0.101"));
    // Another client never gets it, even asking for it.
    let mut m = req(MessageType::Discover, B);
    m.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(ip("10.20.0.101")));
    let o = handle(&m, &ingress(), &c, &BOOT, &mut leases, 0);
    assert_ne!(reply(&o).yiaddr(), ip("10.20.0.101"));
}

#[test]
fn replies_encode_and_decode() {
    let o = handle(
        &req(MessageType::Discover, A),
        &ingress(),
        &conf(),
        &BOOT,
        &mut Leases::new(),
        0,
    );
    let bytes = encode(reply(&o)).unwrap();
    let back = decode(&bytes).unwrap();
    assert_eq!(encode(&back).unwrap(), bytes);
    assert_eq!(back.opts(), reply(&o).opts());
}

#[test]
fn rapid_commit_with_payload_is_dropped_not_a_panic() {
    // A DISCOVER whose option 80 (Rapid Commit, length 0 by RFC 4039) carries a byte.
    let mut bytes = encode(&req(MessageType::Discover, A)).unwrap();
    let end = bytes.len() - 1;
    assert_eq!(bytes[end], 255);
    bytes.truncate(end);
    bytes.extend_from_slice(&[80, 1, 0, 255]);
    assert_eq!(decode_checked(&bytes).unwrap_err(), Malformed::BadOptions);
    assert_eq!(
        decode_checked(&bytes[..100]).unwrap_err(),
        Malformed::Truncated
    );
    // Every fixed-length option dhcproto reads blindly, with a wrong length.
    for (code, len) in [
        (94u8, 2u8),
        (152, 3),
        (153, 5),
        (154, 1),
        (155, 0),
        (81, 1),
        (81, 0),
        (51, 3),
        (53, 2),
        (57, 1),
        (91, 2),
        (26, 1),
        (13, 3),
        (116, 0),
        (2, 2),
    ] {
        let mut b = encode(&req(MessageType::Discover, A)).unwrap();
        b.truncate(b.len() - 1);
        b.push(code);
        b.push(len);
        b.extend(std::iter::repeat_n(0u8, usize::from(len)));
        b.push(255);
        assert_eq!(
            decode_checked(&b).unwrap_err(),
            Malformed::BadOptions,
            "option {code} length {len}"
        );
    }
    // An option dhcproto reads blindly (23: one byte) with a longer payload would put its decoder
    // out of step with the packet; here the payload hides a "155, length 5" a desynchronised
    // decoder would trip on.
    let mut b = encode(&req(MessageType::Discover, A)).unwrap();
    b.truncate(b.len() - 1);
    b.extend_from_slice(&[23, 3, 64, 155, 5, 255]);
    assert_eq!(decode_checked(&b).unwrap_err(), Malformed::BadOptions);
    // Consecutive instances of one code are concatenated by the decoder (RFC 3396): two 4-byte
    // option 153s make one 8-byte option 153 (refused); with a pad between they are two (fine).
    let mut b = encode(&req(MessageType::Discover, A)).unwrap();
    b.truncate(b.len() - 1);
    let base = b.clone();
    b.extend_from_slice(&[153, 4, 0, 0, 0, 1, 153, 4, 0, 0, 0, 2, 255]);
    assert_eq!(decode_checked(&b).unwrap_err(), Malformed::BadOptions);
    let mut b = base;
    b.extend_from_slice(&[153, 4, 0, 0, 0, 1, 0, 153, 4, 0, 0, 0, 2, 255]);
    assert!(decode_checked(&b).is_ok());
    let mut overrun = encode(&req(MessageType::Discover, A)).unwrap();
    overrun.truncate(overrun.len() - 1);
    overrun.extend_from_slice(&[12, 200, b'x']);
    assert_eq!(decode_checked(&overrun).unwrap_err(), Malformed::BadOptions);
}

proptest! {
    /// Any bytes: decoding either fails or gives a message the handler answers without panicking.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Some(m) = decode(&bytes) {
            let mut leases = Leases::new();
            let _ = handle(&m, &ingress(), &conf(), &BOOT, &mut leases, 0);
        }
    }

    /// A valid BOOTP header and magic cookie, then a message type and arbitrary option items: the
    /// packet reaches `handle` (not just the decoder), which answers without panicking, and any
    /// reply encodes.
    #[test]
    fn plausible_packets_reach_the_handler(
        mac in any::<[u8; 6]>(),
        mt in 1u8..=8,
        items in proptest::collection::vec((1u8..=254, proptest::collection::vec(any::<u8>(), 0..16)), 0..8),
        giaddr in any::<bool>(),
    ) {
        let mut p = vec![0u8; 236];
        p[0] = 1;
        p[1] = 1;
        p[2] = 6;
        p[28..34].copy_from_slice(&mac);
        if giaddr {
            p[24..28].copy_from_slice(&[10, 30, 0, 1]);
        }
        p.extend_from_slice(&[99, 130, 83, 99, 53, 1, mt]);
        for (code, data) in &items {
            if *code == 53 {
                continue;
            }
            p.push(*code);
            p.push(data.len() as u8);
            p.extend_from_slice(data);
        }
        p.push(255);
        let mut leases = Leases::new();
        match decode_checked(&p) {
            Ok(m) => {
                prop_assert_eq!(m.opts().msg_type().map(u8::from), Some(mt));
                let o = handle(&m, &ingress(), &conf(), &BOOT, &mut leases, 0);
                if let Ok((r, _)) = &o.reply {
                    prop_assert!(encode(r).is_some());
                }
            }
            // Only the option check may refuse it: the header and the framing are valid.
            Err(why) => prop_assert_eq!(why, Malformed::BadOptions),
        }
    }

    /// Every reply the handler builds survives an encode/decode round trip unchanged.
    #[test]
    fn replies_round_trip(mac in any::<[u8; 6]>(), xid in any::<u32>(), arch in prop_oneof![Just(None), Just(Some(0u16)), Just(Some(7u16))], ipxe in any::<bool>()) {
        let mut m = req(MessageType::Discover, mac);
        m.set_xid(xid);
        if let Some(a) = arch {
            m.opts_mut().insert(DhcpOption::ClientSystemArchitecture(Architecture::from(a)));
        }
        if ipxe {
            m.opts_mut().insert(DhcpOption::UserClass(b"iPXE".to_vec()));
        }
        let o = handle(&m, &ingress(), &conf(), &BOOT, &mut Leases::new(), 0);
        let r = reply(&o);
        prop_assert_eq!(r.xid(), xid);
        // Byte-stable: what we send decodes to a message that encodes to the same bytes.
        let bytes = encode(r).unwrap();
        let back = decode(&bytes).unwrap();
        prop_assert_eq!(encode(&back).unwrap(), bytes);
        prop_assert_eq!(back.yiaddr(), r.yiaddr());
        prop_assert_eq!(back.opts().msg_type(), Some(MessageType::Offer));
    }
}

#[test]
fn relayed_requests_only_from_listed_relay_agents() {
    let mut c = conf();
    let giaddr = ip("10.30.0.1");
    // Nothing listed: any relay, as before.
    assert!(relay_allowed(&c, giaddr, ip("192.0.2.7")));
    c.subnets[1].relays = vec![ip("192.0.2.1")];
    assert!(relay_allowed(&c, giaddr, ip("192.0.2.1")));
    assert!(!relay_allowed(&c, giaddr, ip("192.0.2.7")));
    // Another subnet's list does not apply.
    assert!(relay_allowed(&c, ip("10.20.0.1"), ip("192.0.2.7")));
}
