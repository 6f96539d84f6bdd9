//! The rack under faults, against real clients in network namespaces: a full disk under the lease
//! journal, and relayed requests from addresses the subnet does not list.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::netns::Netns;
use crate::rack_dhcp::{admin, create_admin, field, try_udhcpc, udhcpc};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// A size-limited tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot mount a tmpfs at {}", at.display());
        SmallDisk(at.to_path_buf())
    }

    /// Fills the disk to the last byte; returns the filler's path.
    fn fill(&self) -> PathBuf {
        let f = self.0.join("filler");
        let _ = Command::new("dd")
            .args(["if=/dev/zero", &format!("of={}", f.display()), "bs=4096"])
            .stderr(std::process::Stdio::null())
            .status();
        // The last partial page too, byte by byte in one go.
        let _ = Command::new("dd")
            .args([
                "if=/dev/zero",
                &format!("of={}", self.0.join("filler2").display()),
                "bs=1",
            ])
            .stderr(std::process::Stdio::null())
            .status();
        f
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A region and a rack (its data dir given) in namespace `s`, serving 10.20.0.0/24 on br0, and
/// client namespaces with one port each on the bridge. Returns the admin token.
pub(crate) struct Site {
    pub lab: Netns,
    pub s: String,
    pub clients: Vec<String>,
    pub token: String,
    pub rack: Option<usize>,
    pub rack_args: Vec<String>,
}

impl Site {
    fn kiln(&self, args: &[&str]) -> String {
        let mut full = vec![KILN];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--url", "http://127.0.0.1:5240", "--token", &self.token]);
        self.lab.ok(&self.s, &full)
    }

    fn start_rack(&mut self, log: &Path) {
        let args: Vec<&str> = self.rack_args.iter().map(String::as_str).collect();
        self.rack = Some(self.lab.spawn(&self.s, &args, log));
        Netns::wait_for("the rack to serve br0", Duration::from_secs(30), || {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains("DHCP: serving br0")
                .then_some(())
        });
    }

    fn kill_rack(&mut self) {
        if let Some(r) = self.rack.take() {
            self.lab.kill(r);
        }
    }
}

fn site(prefix: &str, d: &Path, rack_data: &Path, clients: usize) -> Site {
    let mut names = vec!["s"];
    let client_names = ["a", "b", "c"];
    names.extend_from_slice(&client_names[..clients]);
    let mut lab = Netns::new(prefix, &names);
    let s = lab.ns(0).to_string();
    let cl: Vec<String> = (1..=clients).map(|i| lab.ns(i).to_string()).collect();
    lab.ok(
        &s,
        &[
            "ip",
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ],
    );
    lab.ok(&s, &["ip", "link", "set", "br0", "up"]);
    lab.ok(&s, &["ip", "addr", "add", "10.20.0.2/24", "dev", "br0"]);
    for (i, ns) in cl.iter().enumerate() {
        let (port, iface) = (format!("p{i}"), format!("c{i}"));
        lab.veth(&s, &port, ns, &iface);
        lab.ok(&s, &["ip", "link", "set", &port, "master", "br0"]);
        let mac = format!("52:54:00:f0:00:{:02x}", i + 1);
        lab.ok(ns, &["ip", "link", "set", &iface, "address", &mac]);
    }
    let data = d.join("region");
    create_admin(&data);
    let token = admin(&["admin", "create-token", "admin"], &data);
    let token_file = d.join("rack-token");
    std::fs::write(
        &token_file,
        admin(&["admin", "rack-token", "--auto-approve"], &data),
    )
    .unwrap();
    lab.spawn(
        &s,
        &[
            KILN,
            "region",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:5240",
        ],
        &d.join("region.log"),
    );
    Netns::wait_for("the region", Duration::from_secs(30), || {
        lab.exec(&s, &["curl", "-sf", "http://127.0.0.1:5240/healthz"])
            .status
            .success()
            .then_some(())
    });
    let rack_args = [
        KILN,
        "rack",
        "--region-url",
        "http://127.0.0.1:5240",
        "--token-file",
        token_file.to_str().unwrap(),
        "--data-dir",
        rack_data.to_str().unwrap(),
        "--rack-name",
        "rack-f",
    ]
    .map(str::to_string)
    .to_vec();
    Site {
        lab,
        s,
        clients: cl,
        token,
        rack: None,
        rack_args,
    }
}

fn metric(site: &Site, name: &str) -> u64 {
    let text = site
        .lab
        .exec(&site.s, &["curl", "-s", "http://127.0.0.1:5248/metrics"])
        .stdout;
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            k.contains(&format!("\"{name}\""))
                .then(|| v.parse().ok())
                .flatten()
        })
        .unwrap_or(0)
}

/// The lease journal on a disk that fills up: no reply goes out for a change that could not be
/// written, the journal keeps every record around the failure, and after a `kill -9` and a
/// restart every acknowledged lease is still its client's.
#[test]
fn a_full_disk_under_the_lease_journal_loses_no_acknowledged_lease() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let disk = SmallDisk::mount(&d.join("rackdisk"), "512k");
    let rack_data = disk.0.join("rack");
    let mut site = site("kf", d, &rack_data, 3);
    site.kiln(&[
        "subnets",
        "create",
        "10.20.0.0/24",
        "--dynamic-range",
        "10.20.0.100-10.20.0.120",
    ]);
    let log = d.join("rack.log");
    site.start_rack(&log);
    let (a, b, c) = (
        site.clients[0].clone(),
        site.clients[1].clone(),
        site.clients[2].clone(),
    );
    let ip_a = field(&udhcpc(&site.lab, &a, "c0", d, &[]), "ip").to_string();

    // The disk fills. The journal's last page still has room for a few records, so b renews
    // until one cannot be written (cut mid-record, most likely): from then on b gets no reply.
    let filler = disk.fill();
    let mut failed = false;
    for _ in 0..60 {
        if try_udhcpc(&site.lab, &b, "c1", d, &["-t", "2", "-T", "1"]).is_err() {
            failed = true;
            break;
        }
    }
    assert!(
        failed,
        "a full disk never stopped a reply: leases were promised that are not on disk"
    );
    assert!(
        try_udhcpc(&site.lab, &b, "c1", d, &["-t", "2", "-T", "1"]).is_err(),
        "a reply went out while the journal cannot be written"
    );
    assert!(
        metric(&site, "dhcp_journal_error") > 0,
        "the failure is not counted"
    );
    assert!(
        metric(&site, "dhcp_withheld") > 0,
        "no reply was counted as withheld"
    );

    // Space again: b and c get leases, written after the failed records.
    std::fs::remove_file(&filler).unwrap();
    let _ = std::fs::remove_file(disk.0.join("filler2"));
    let ip_b = field(&udhcpc(&site.lab, &b, "c1", d, &[]), "ip").to_string();
    let ip_c = field(&udhcpc(&site.lab, &c, "c2", d, &[]), "ip").to_string();
    site.kill_rack();

    let (leases, bad) = rack::journal::replay(&rack_data.join("leases.jsonl"));
    // The record cut short by the full disk was cut off, not left to swallow the next one.
    assert_eq!(bad, 0, "the journal holds {bad} torn record(s)");
    for (ip, mac) in [
        (&ip_a, "52:54:00:f0:00:01"),
        (&ip_b, "52:54:00:f0:00:02"),
        (&ip_c, "52:54:00:f0:00:03"),
    ] {
        let l = leases.by_ip(ip.parse().unwrap());
        assert_eq!(
            l.map(|l| rack_proto::fmt_mac(&l.mac)).as_deref(),
            Some(mac),
            "the journal lost {mac}'s lease of {ip} ({bad} unreadable lines)"
        );
    }

    // The disk fills again and the rack restarts on it: it must come up and serve from the journal.
    let filler = disk.fill();
    site.start_rack(&d.join("rack2.log"));
    std::fs::remove_file(&filler).unwrap();
    let _ = std::fs::remove_file(disk.0.join("filler2"));
    // Every client gets back the address it was promised.
    for (ns, iface, ip) in [(&a, "c0", &ip_a), (&b, "c1", &ip_b), (&c, "c2", &ip_c)] {
        let line = udhcpc(&site.lab, ns, iface, d, &["-r", ip]);
        assert_eq!(field(&line, "ip"), ip, "{line}");
    }
    site.kill_rack();
    drop(site);
    drop(disk);
}

/// A subnet that lists its relay agent: a relayed request from another address (here a second,
/// real ISC dhcrelay claiming the same network) is dropped and counted; the listed relay's client
/// gets its lease. `--any-relay` clears the list.
#[test]
fn a_relay_the_subnet_does_not_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let mut lab = Netns::new("kz", &["s", "r", "z", "c", "k"]);
    let n: Vec<String> = (0..5).map(|i| lab.ns(i).to_string()).collect();
    let (s, r, z, c, k) = (&n[0], &n[1], &n[2], &n[3], &n[4]);
    lab.veth(s, "sr0", r, "rs0");
    lab.veth(s, "sz0", z, "zs0");
    lab.veth(r, "rc0", c, "c0");
    lab.veth(z, "zk0", k, "k0");
    for (ns, addr, dev) in [
        (s, "10.99.0.2/24", "sr0"),
        (r, "10.99.0.1/24", "rs0"),
        (r, "10.30.0.1/24", "rc0"),
        (s, "10.98.0.2/24", "sz0"),
        (z, "10.98.0.1/24", "zs0"),
        (z, "10.30.0.1/24", "zk0"),
    ] {
        lab.ok(ns, &["ip", "addr", "add", addr, "dev", dev]);
    }
    lab.ok(
        s,
        &["ip", "route", "add", "10.30.0.0/24", "via", "10.99.0.1"],
    );
    lab.ok(
        c,
        &["ip", "link", "set", "c0", "address", "52:54:00:e1:00:01"],
    );
    lab.ok(
        k,
        &["ip", "link", "set", "k0", "address", "52:54:00:e1:00:02"],
    );

    create_admin(&data);
    let token = admin(&["admin", "create-token", "admin"], &data);
    let url = "http://127.0.0.1:5240";
    crate::rack_dhcp::start_all_in_one(&mut lab, s, &data, &d.join("aio.log"));
    let kiln = |lab: &Netns, args: &[&str]| -> String {
        let mut full = vec![KILN];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--url", url, "--token", &token]);
        lab.ok(s, &full)
    };
    // An address that cannot be a relay's is refused in words.
    let mut bad = vec![
        KILN,
        "subnets",
        "create",
        "10.31.0.0/24",
        "--relay",
        "255.255.255.255",
    ];
    bad.extend_from_slice(&["--url", url, "--token", &token]);
    let out = lab.exec(s, &bad);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be a relay agent"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sub: serde_json::Value = serde_json::from_str(&kiln(
        &lab,
        &[
            "subnets",
            "create",
            "10.30.0.0/24",
            "--gateway",
            "10.30.0.1",
            "--dynamic-range",
            "10.30.0.50-10.30.0.60",
            "--relay",
            "10.99.0.1",
            "--json",
        ],
    ))
    .unwrap();
    let sub = if sub.is_array() { sub[0].clone() } else { sub };
    assert_eq!(sub["relay_addresses"], serde_json::json!(["10.99.0.1"]));
    Netns::wait_for(
        "the subnet to reach the rack",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(d.join("aio.log"))
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains("new snapshot from the region") && l.contains("subnets=1"))
                .then_some(())
        },
    );
    for (ns, down, up, to, log) in [
        (r, "rc0", "rs0", "10.99.0.2", "relay.log"),
        (z, "zk0", "zs0", "10.98.0.2", "rogue.log"),
    ] {
        lab.spawn(
            ns,
            &["dhcrelay", "-4", "-d", "-a", "-id", down, "-iu", up, to],
            &d.join(log),
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let refused = try_udhcpc(&lab, k, "k0", d, &["-t", "3", "-T", "1"]);
    assert!(
        refused.is_err(),
        "a relay not listed got a lease: {refused:?}"
    );
    let metrics = lab.ok(s, &["curl", "-s", "http://127.0.0.1:5248/metrics"]);
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("\"dhcp_ignored_relay_not_listed\"") && !l.ends_with(" 0")),
        "{metrics}"
    );
    let line = udhcpc(&lab, c, "c0", d, &[]);
    assert!(field(&line, "ip").starts_with("10.30.0."), "{line}");
    // The rogue's client holds nothing in the rack's table, not even an offer.
    let (leases, _) = rack::journal::replay(&data.join("rack").join("leases.jsonl"));
    let macs: Vec<String> = leases.all().map(|l| rack_proto::fmt_mac(&l.mac)).collect();
    assert!(macs.contains(&"52:54:00:e1:00:01".to_string()), "{macs:?}");
    assert!(!macs.contains(&"52:54:00:e1:00:02".to_string()), "{macs:?}");
    let id = sub["id"].as_str().unwrap();
    let cleared: serde_json::Value = serde_json::from_str(&kiln(
        &lab,
        &["subnets", "update", id, "--any-relay", "--json"],
    ))
    .unwrap();
    let cleared = if cleared.is_array() {
        cleared[0].clone()
    } else {
        cleared
    };
    assert_eq!(cleared["relay_addresses"], serde_json::json!([]));
}
