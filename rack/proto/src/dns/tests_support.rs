//! A small lab's zones: the unit tests' and the fuzz target's fixture.

use std::net::Ipv4Addr;

use region_api_types::{
    Interface, MachineStatus, SnapshotDns, SnapshotDnsDomain, SnapshotDnsRecord, SnapshotMachine,
    Subnet,
};

use super::{Inputs, Zones};

fn subnet(cidr: &str, managed: bool) -> Subnet {
    Subnet {
        id: cidr.into(),
        name: cidr.into(),
        cidr: cidr.into(),
        gateway: None,
        dns_servers: vec![],
        domain: None,
        dynamic_ranges: vec![],
        reserved_ranges: vec![],
        static_routes: vec![],
        managed,
        ntp_servers: vec![],
        lease_time_secs: None,
        relay_addresses: vec![],
        created_at: String::new(),
        updated_at: String::new(),
    }
}

fn machine(
    id: &str,
    host: &str,
    mac: &str,
    ip: Option<&str>,
    domain: Option<&str>,
) -> SnapshotMachine {
    SnapshotMachine {
        system_id: id.into(),
        hostname: host.into(),
        status: MachineStatus::Ready,
        architecture: "amd64/generic".into(),
        boot_mac: Some(mac.into()),
        interfaces: vec![Interface {
            name: "eth0".into(),
            mac: mac.into(),
            subnet_id: None,
            ip: ip.map(str::to_string),
        }],
        local_boot: false,
        esp_uuid: None,
        memory_boot: false,
        iscsi_boot: false,
        domain: domain.map(str::to_string),
    }
}

fn rec(name: &str, t: &str, data: &str) -> SnapshotDnsRecord {
    SnapshotDnsRecord {
        name: name.into(),
        rtype: t.into(),
        data: data.into(),
        ttl: 60,
    }
}

pub fn lab() -> Zones {
    let dns = SnapshotDns {
        default_domain: "kiln".into(),
        domains: vec![
            SnapshotDnsDomain {
                name: "kiln".into(),
                ttl: 30,
            },
            SnapshotDnsDomain {
                name: "lab.example".into(),
                ttl: 300,
            },
        ],
        records: vec![
            rec("www.kiln", "CNAME", "node1.kiln"),
            rec("far.kiln", "CNAME", "example.org"),
            rec("loop1.kiln", "CNAME", "loop2.kiln"),
            rec("loop2.kiln", "CNAME", "loop1.kiln"),
            rec("_http._tcp.kiln", "SRV", "10 5 80 node1.kiln"),
            rec("kiln", "MX", "10 node2.kiln"),
            rec("v6.kiln", "AAAA", "fd00::5"),
            rec("txt.kiln", "TXT", "hello world"),
            rec("bad.kiln", "A", "not-an-address"),
        ],
    };
    let machines = vec![
        machine("m1", "node1", "52:54:00:00:00:01", Some("10.0.0.5"), None),
        machine("m2", "node2", "52:54:00:00:00:02", None, None),
        machine(
            "m3",
            "db",
            "52:54:00:00:00:03",
            Some("192.168.7.70"),
            Some("lab.example"),
        ),
        machine(
            "m4",
            "Outside",
            "52:54:00:00:00:04",
            Some("172.16.0.9"),
            None,
        ),
    ];
    let subnets = vec![
        subnet("10.0.0.0/24", true),
        subnet("192.168.7.64/26", true),
        subnet("172.16.0.0/24", false),
    ];
    let leases = vec![([0x52, 0x54, 0, 0, 0, 2], Ipv4Addr::new(10, 0, 0, 100))];
    Zones::build(
        Inputs {
            dns: &dns,
            machines: &machines,
            subnets: &subnets,
            leases: &leases,
            servers: &[Ipv4Addr::new(10, 0, 0, 1)],
        },
        7,
    )
}
