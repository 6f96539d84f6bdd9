//! Any datagram through the DHCP decoder and handler: never a panic; every reply encodes.
#![no_main]

use std::collections::HashMap;
use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use rack_proto::dhcp::{self, BootConf, Ingress};
use rack_proto::leases::Leases;
use rack_proto::netconf::{NetConf, SubnetConf};

fn conf() -> NetConf {
    NetConf {
        subnets: vec![SubnetConf {
            id: "s".into(),
            net: "10.20.0.0/24".parse().unwrap(),
            gateway: Some(Ipv4Addr::new(10, 20, 0, 1)),
            dns: vec![Ipv4Addr::new(10, 20, 0, 1)],
            domain: Some("lab".into()),
            dynamic: vec![(Ipv4Addr::new(10, 20, 0, 100), Ipv4Addr::new(10, 20, 0, 110))],
            reserved: vec![],
            routes: vec![("10.50.0.0/16".parse().unwrap(), Ipv4Addr::new(10, 20, 0, 254))],
            managed: true,
            ntp: vec![Ipv4Addr::new(10, 20, 0, 1)],
            lease_time: Some(3600),
            relays: vec![],
        }],
        hosts: HashMap::new(),
        fixed_owner: HashMap::new(),
        lease_time: 600,
        default_domain: Some("kiln".into()),
    }
}

/// The handler on `packet`: never a panic, and every reply encodes.
fn run(packet: &[u8]) {
    if let Ok(msg) = dhcp::decode_checked(packet) {
        let mut leases = Leases::new();
        let ingress = Ingress { addr: Ipv4Addr::new(10, 20, 0, 2) };
        let boot = BootConf { http_port: 5248, dns: Some(Ipv4Addr::UNSPECIFIED) };
        let out = dhcp::handle(&msg, &ingress, &conf(), &boot, &mut leases, 1000);
        if let Ok((reply, _)) = out.reply {
            assert!(dhcp::encode(&reply).is_some());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // As it came: the decoder's checks.
    run(data);
    // And behind a valid BOOTP header and magic cookie (client hardware address from the first six
    // bytes, giaddr from the seventh's low bit), so most inputs are options that reach `handle`.
    if data.len() >= 7 {
        let mut p = vec![0u8; 236];
        p[0] = 1;
        p[1] = 1;
        p[2] = 6;
        p[28..34].copy_from_slice(&data[..6]);
        if data[6] & 1 == 1 {
            p[24..28].copy_from_slice(&[10, 20, 0, 1]);
        }
        p.extend_from_slice(&[99, 130, 83, 99]);
        p.extend_from_slice(&data[7..]);
        run(&p);
    }
});
