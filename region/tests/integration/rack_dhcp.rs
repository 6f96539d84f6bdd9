//! The rack's DHCP against real clients (busybox udhcpc, ISC dhclient) in network namespaces:
//! leases, option 121, the region learning leases, release, the region going away, and the rack
//! restarting from its saved snapshot without the region.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::netns::Netns;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

pub(crate) fn admin(args: &[&str], data: &Path) -> String {
    let out = Command::new(KILN)
        .args(args)
        .args(["--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Creates the `admin` user (password on standard input, as an operator would).
pub fn create_admin(data: &Path) {
    use std::io::Write;
    let mut c = Command::new(KILN)
        .args([
            "admin",
            "create-user",
            "admin",
            "--admin",
            "--password-stdin",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(b"admin-password\n")
        .unwrap();
    assert!(c.wait().unwrap().success());
}

/// Starts `kiln all-in-one` inside `ns` on 127.0.0.1:5240 and waits until it is healthy.
pub(crate) fn start_all_in_one(lab: &mut Netns, ns: &str, data: &Path, log: &Path) {
    lab.spawn(
        ns,
        &[
            KILN,
            "all-in-one",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:5240",
        ],
        log,
    );
    Netns::wait_for("the region", Duration::from_secs(30), || {
        lab.exec(ns, &["curl", "-sf", "http://127.0.0.1:5240/healthz"])
            .status
            .success()
            .then_some(())
    });
}

/// Runs busybox udhcpc once in `ns` on `iface`; returns the `bound` line its script wrote.
pub(crate) fn udhcpc(lab: &Netns, ns: &str, iface: &str, dir: &Path, extra: &[&str]) -> String {
    try_udhcpc(lab, ns, iface, dir, extra).unwrap_or_else(|e| panic!("udhcpc got no lease: {e}"))
}

pub(crate) fn try_udhcpc(
    lab: &Netns,
    ns: &str,
    iface: &str,
    dir: &Path,
    extra: &[&str],
) -> Result<String, String> {
    let out = dir.join(format!("udhcpc-{iface}.out"));
    let _ = std::fs::remove_file(&out);
    let script = dir.join("udhcpc.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1 ip=$ip router=$router dns=$dns hostname=$hostname lease=$lease domain=$domain staticroutes=$staticroutes\" >> {}\n", out.display()),
    )
    .unwrap();
    Command::new("chmod")
        .args(["+x", script.to_str().unwrap()])
        .status()
        .unwrap();
    let mut args = vec![
        "busybox",
        "udhcpc",
        "-i",
        iface,
        "-f",
        "-q",
        "-n",
        "-t",
        "6",
        "-T",
        "2",
        "-O",
        "staticroutes",
        "-s",
        script.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = lab.exec(ns, &args);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("bound"))
        .map(str::to_string)
        .ok_or_else(|| format!("{text}\n{}", String::from_utf8_lossy(&o.stderr)))
}

pub(crate) fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
}

#[test]
fn dhcp_with_real_clients_region_outage_and_rack_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("region");
    let rack_data = d.join("rack");
    let mut lab = Netns::new("kd", &["s", "a", "b"]);
    let (s, a, b) = (
        lab.ns(0).to_string(),
        lab.ns(1).to_string(),
        lab.ns(2).to_string(),
    );

    // The provisioning network: a bridge in the server namespace, one client namespace per port.
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
    for (ns, port, iface, mac) in [
        (&a, "pa", "a0", "52:54:00:d0:00:01"),
        (&b, "pb", "b0", "52:54:00:d0:00:02"),
    ] {
        lab.veth(&s, port, ns, iface);
        lab.ok(&s, &["ip", "link", "set", port, "master", "br0"]);
        lab.ok(ns, &["ip", "link", "set", iface, "address", mac]);
    }

    create_admin(&data);
    let token = admin(&["admin", "create-token", "admin"], &data);
    // The rack enrols with a one-time token (approved at once), as operators do.
    let token_file = d.join("rack-token");
    std::fs::write(
        &token_file,
        admin(&["admin", "rack-token", "--auto-approve"], &data),
    )
    .unwrap();

    let url = "http://127.0.0.1:5240";
    let region_args = [
        KILN,
        "region",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:5240",
    ];
    let rack_args = [
        KILN,
        "rack",
        "--region-url",
        url,
        "--token-file",
        token_file.to_str().unwrap(),
        "--data-dir",
        rack_data.to_str().unwrap(),
        "--rack-name",
        "rack-a",
    ];
    let mut region = lab.spawn(&s, &region_args, &d.join("region.log"));
    Netns::wait_for("the region", Duration::from_secs(30), || {
        lab.exec(&s, &["curl", "-sf", &format!("{url}/healthz")])
            .status
            .success()
            .then_some(())
    });
    let kiln = |lab: &Netns, args: &[&str]| -> String {
        let mut full = vec![KILN];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--url", url, "--token", &token]);
        lab.ok(&s, &full)
    };
    kiln(
        &lab,
        &[
            "subnets",
            "create",
            "10.20.0.0/24",
            "--gateway",
            "10.20.0.1",
            "--dns",
            "10.20.0.1",
            "--dynamic-range",
            "10.20.0.100-10.20.0.120",
            "--route",
            "10.50.0.0/16=10.20.0.254",
        ],
    );
    let m: serde_json::Value = serde_json::from_str(&kiln(
        &lab,
        &[
            "machines",
            "create",
            "--hostname",
            "dnode",
            "--mac",
            "52:54:00:d0:00:01",
            "--json",
        ],
    ))
    .unwrap();
    let system_id = m["system_id"].as_str().unwrap().to_string();

    let mut rack = lab.spawn(&s, &rack_args, &d.join("rack.log"));
    Netns::wait_for("the rack to serve br0", Duration::from_secs(30), || {
        std::fs::read_to_string(d.join("rack.log"))
            .unwrap_or_default()
            .contains("DHCP: serving br0")
            .then_some(())
    });
    let racks: serde_json::Value =
        serde_json::from_str(&kiln(&lab, &["racks", "list", "--json"])).unwrap();
    assert_eq!(racks[0]["name"], "rack-a");
    assert_eq!(racks[0]["status"], "online");

    // udhcpc, unicast reply to its hardware address (no broadcast flag).
    let line = udhcpc(&lab, &a, "a0", d, &[]);
    let ip_a = field(&line, "ip").to_string();
    assert!(ip_a.starts_with("10.20.0.1"), "{line}");
    assert_eq!(field(&line, "router"), "10.20.0.1", "{line}");
    assert_eq!(field(&line, "hostname"), "dnode", "{line}");
    assert_eq!(field(&line, "lease"), "600", "{line}");
    // Option 121 arrives as sent: the default route first, then the SAN route.
    assert!(
        line.contains("staticroutes=0.0.0.0/0 10.20.0.1 10.50.0.0/16 10.20.0.254"),
        "{line}"
    );
    // The same client again (broadcast flag this time) keeps its address.
    let line = udhcpc(&lab, &a, "a0", d, &["-B"]);
    assert_eq!(field(&line, "ip"), ip_a, "{line}");

    // The region learns the lease (event + the interface's address).
    Netns::wait_for(
        "the region to record the lease",
        Duration::from_secs(20),
        || {
            let m: serde_json::Value =
                serde_json::from_str(&kiln(&lab, &["machines", "show", &system_id, "--json"]))
                    .ok()?;
            (m["interfaces"][0]["ip"] == ip_a.as_str()).then_some(())
        },
    );
    let evs: serde_json::Value =
        serde_json::from_str(&kiln(&lab, &["machines", "events", &system_id, "--json"])).unwrap();
    assert!(
        evs.as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_type"] == "dhcp_lease"),
        "{evs}"
    );

    // ISC dhclient on the other port: a different address, and option 121 in its lease.
    let lf = d.join("dhclient.leases");
    let pf = d.join("dhclient.pid");
    // A script that sets only the address on the namespace's interface (Debian's dhclient-script
    // would also rewrite /etc/resolv.conf, which is the host's).
    let sf = d.join("dhclient-script.sh");
    std::fs::write(
        &sf,
        "#!/bin/sh\ncase \"$reason\" in\n BOUND|RENEW|REBIND|REBOOT) ip addr replace \"$new_ip_address/24\" dev \"$interface\" ;;\n RELEASE|EXPIRE|STOP) ip addr flush dev \"$interface\" ;;\nesac\nexit 0\n",
    )
    .unwrap();
    Command::new("chmod")
        .args(["+x", sf.to_str().unwrap()])
        .status()
        .unwrap();
    let dh = |extra: &[&str]| {
        let mut args = vec![
            "dhclient",
            "-1",
            "-v",
            "-lf",
            lf.to_str().unwrap(),
            "-pf",
            pf.to_str().unwrap(),
            "-sf",
            sf.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push("b0");
        lab.exec(&b, &args)
    };
    let o = dh(&[]);
    let leases = std::fs::read_to_string(&lf).unwrap_or_default();
    assert!(
        o.status.success(),
        "dhclient: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ip_b = leases
        .lines()
        .rev()
        .find_map(|l| {
            l.trim()
                .strip_prefix("fixed-address ")
                .map(|v| v.trim_end_matches(';').to_string())
        })
        .unwrap_or_else(|| panic!("no lease in {leases}"));
    assert_ne!(ip_b, ip_a);
    assert!(
        leases.contains("rfc3442-classless-static-routes 0,10,20,0,1,16,10,50,10,20,0,254"),
        "{leases}"
    );
    // Release: the rack frees the address (the journal says so).
    let o = dh(&["-r"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Netns::wait_for(
        "the release in the lease journal",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(rack_data.join("leases.jsonl"))
                .unwrap_or_default()
                .contains(&format!("\"op\":\"remove\",\"ip\":\"{ip_b}\""))
                .then_some(())
        },
    );

    // The region goes away: the rack keeps answering from its snapshot.
    lab.kill(region);
    let line = udhcpc(&lab, &a, "a0", d, &[]);
    assert_eq!(field(&line, "ip"), ip_a, "{line}");
    // And a rack restarted while the region is still away serves from the snapshot on its disk;
    // its leases survive the restart (never one address for two clients).
    lab.kill(rack);
    rack = lab.spawn(&s, &rack_args, &d.join("rack2.log"));
    Netns::wait_for(
        "the restarted rack to serve br0",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(d.join("rack2.log"))
                .unwrap_or_default()
                .contains("DHCP: serving br0")
                .then_some(())
        },
    );
    let line_b = udhcpc(&lab, &b, "b0", d, &[]);
    assert_ne!(
        field(&line_b, "ip"),
        ip_a,
        "a restarted rack handed {ip_a} to a second client"
    );
    let line = udhcpc(&lab, &a, "a0", d, &[]);
    assert_eq!(field(&line, "ip"), ip_a, "{line}");
    let log = std::fs::read_to_string(d.join("rack2.log")).unwrap();
    assert!(log.contains("serving the saved snapshot"), "{log}");

    // The region comes back: events queued meanwhile arrive.
    // The queue's file is written off the packet path, a moment after the event.
    Netns::wait_for(
        "events queued on disk while the region was away",
        Duration::from_secs(5),
        || {
            let t = std::fs::read_to_string(rack_data.join("events.jsonl")).ok()?;
            (t.lines().count() > 0).then_some(())
        },
    );
    region = lab.spawn(&s, &region_args, &d.join("region2.log"));
    Netns::wait_for(
        "queued events to reach the region",
        Duration::from_secs(60),
        || {
            let out = lab.exec(
                &s,
                &[
                    KILN, "machines", "events", &system_id, "--json", "--limit", "200", "--url",
                    url, "--token", &token,
                ],
            );
            let evs: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let leases = evs
                .as_array()?
                .iter()
                .filter(|e| e["event_type"] == "dhcp_lease")
                .count();
            (leases >= 4).then_some(())
        },
    );

    // A static reservation made through the CLI reaches the rack and the client gets exactly it.
    kiln(
        &lab,
        &[
            "machines",
            "set-ip",
            &system_id,
            "52:54:00:d0:00:01",
            "10.20.0.50",
        ],
    );
    let mut last = String::new();
    for _ in 0..20 {
        match try_udhcpc(&lab, &a, "a0", d, &[]) {
            Ok(line) if field(&line, "ip") == "10.20.0.50" => {
                last.clear();
                break;
            }
            Ok(line) => last = line,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        last.is_empty(),
        "no reservation for the client: {last}\nrack log:\n{}",
        std::fs::read_to_string(d.join("rack2.log")).unwrap_or_default()
    );
    let _ = (region, rack);
}

/// A client behind ISC dhcrelay (with option 82, which the relay requires back): the rack answers
/// relayed requests on an interface that is not itself in a managed subnet.
#[test]
fn dhcp_through_a_relay_agent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let mut lab = Netns::new("kr", &["s", "r", "c"]);
    let (s, r, c) = (
        lab.ns(0).to_string(),
        lab.ns(1).to_string(),
        lab.ns(2).to_string(),
    );
    lab.veth(&s, "sr0", &r, "rs0");
    lab.veth(&r, "rc0", &c, "c0");
    lab.ok(&s, &["ip", "addr", "add", "10.99.0.2/24", "dev", "sr0"]);
    lab.ok(&r, &["ip", "addr", "add", "10.99.0.1/24", "dev", "rs0"]);
    lab.ok(&r, &["ip", "addr", "add", "10.30.0.1/24", "dev", "rc0"]);
    lab.ok(
        &s,
        &["ip", "route", "add", "10.30.0.0/24", "via", "10.99.0.1"],
    );
    lab.ok(
        &c,
        &["ip", "link", "set", "c0", "address", "52:54:00:e0:00:01"],
    );

    create_admin(&data);
    let token = admin(&["admin", "create-token", "admin"], &data);
    let url = "http://127.0.0.1:5240";
    start_all_in_one(&mut lab, &s, &data, &d.join("aio.log"));
    lab.ok(
        &s,
        &[
            KILN,
            "subnets",
            "create",
            "10.30.0.0/24",
            "--gateway",
            "10.30.0.1",
            "--dynamic-range",
            "10.30.0.50-10.30.0.60",
            "--url",
            url,
            "--token",
            &token,
        ],
    );
    // The rack's own network (10.99.0.0/24) is not a managed subnet: no direct DHCP there.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(d.join("aio.log")).unwrap_or_default();
        if log
            .lines()
            .any(|l| l.contains("new snapshot from the region") && l.contains("subnets=1"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot with the subnet reached the rack:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    lab.spawn(
        &r,
        &[
            "dhcrelay",
            "-4",
            "-d",
            "-a",
            "-id",
            "rc0",
            "-iu",
            "rs0",
            "10.99.0.2",
        ],
        &d.join("relay.log"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let line = udhcpc(&lab, &c, "c0", d, &[]);
    let ip = field(&line, "ip");
    assert!(ip.starts_with("10.30.0.5") || ip == "10.30.0.60", "{line}");
    assert_eq!(field(&line, "router"), "10.30.0.1", "{line}");
    let log = std::fs::read_to_string(d.join("aio.log")).unwrap();
    assert!(
        !log.contains("DHCP: serving sr0"),
        "served directly on an unmanaged interface:\n{log}"
    );
}

/// A provisioning lab for one VM: a namespace with bridge `br0` (10.20.0.2/24) and `tap0`,
/// `kiln all-in-one` inside, a managed subnet, and one machine; returns once the rack serves DHCP.
struct BootLab {
    lab: Netns,
    ns: String,
    dir: tempfile::TempDir,
    token: String,
    system_id: String,
}

const URL: &str = "http://127.0.0.1:5240";

impl BootLab {
    fn new(prefix: &str, hostname: &str, mac: &str) -> BootLab {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut lab = Netns::new(prefix, &["s"]);
        let ns = lab.ns(0).to_string();
        for cmd in [
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
            ][..],
            &["ip", "addr", "add", "10.20.0.2/24", "dev", "br0"],
            &["ip", "link", "set", "br0", "up"],
            &["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"],
            &["ip", "link", "set", "tap0", "master", "br0"],
            &["ip", "link", "set", "tap0", "up"],
        ] {
            lab.ok(&ns, cmd);
        }
        create_admin(&data);
        let token = admin(&["admin", "create-token", "admin"], &data);
        start_all_in_one(&mut lab, &ns, &data, &dir.path().join("aio.log"));
        let mut me = BootLab {
            lab,
            ns,
            dir,
            token,
            system_id: String::new(),
        };
        me.cli(&[
            "subnets",
            "create",
            "10.20.0.0/24",
            "--gateway",
            "10.20.0.1",
            "--dynamic-range",
            "10.20.0.100-10.20.0.150",
        ]);
        let m: serde_json::Value = serde_json::from_str(&me.cli(&[
            "machines",
            "create",
            "--hostname",
            hostname,
            "--mac",
            mac,
            "--json",
        ]))
        .unwrap();
        me.system_id = m["system_id"].as_str().unwrap().to_string();
        let log = me.dir.path().join("aio.log");
        Netns::wait_for("the rack to serve br0", Duration::from_secs(30), || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("DHCP: serving br0")
                .then_some(())
        });
        me
    }

    fn cli(&self, args: &[&str]) -> String {
        let mut full = vec![KILN];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--url", URL, "--token", &self.token]);
        self.lab.ok(&self.ns, &full)
    }

    /// Powers the VM on (QEMU arguments after the common ones); waits for `marker` on its console.
    fn boot_until(
        &mut self,
        name: &str,
        qemu_args: &[&str],
        marker: &str,
        timeout: Duration,
    ) -> Duration {
        let serial = self.dir.path().join(format!("{name}.serial"));
        let mut args = vec![
            "qemu-system-x86_64",
            "-name",
            name,
            "-accel",
            "tcg",
            "-m",
            "512",
            "-smp",
            "1",
            "-nographic",
            "-no-reboot",
        ];
        args.extend_from_slice(qemu_args);
        let ns = self.ns.clone();
        let qemu = self.lab.spawn(&ns, &args, &serial);
        let started = std::time::Instant::now();
        Netns::wait_for(&format!("{marker} on {name}'s console"), timeout, || {
            String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default())
                .contains(marker)
                .then_some(())
        });
        let took = started.elapsed();
        self.lab.kill(qemu);
        took
    }

    fn console(&self, name: &str) -> String {
        String::from_utf8_lossy(
            &std::fs::read(self.dir.path().join(format!("{name}.serial"))).unwrap_or_default(),
        )
        .into_owned()
    }

    /// Waits until the machine's events satisfy `ok`.
    fn wait_events(&self, ok: impl Fn(&[serde_json::Value]) -> bool) {
        Netns::wait_for("the boot trace", Duration::from_secs(30), || {
            let out = self.lab.exec(
                &self.ns,
                &[
                    KILN,
                    "machines",
                    "events",
                    &self.system_id,
                    "--json",
                    "--url",
                    URL,
                    "--token",
                    &self.token,
                ],
            );
            let evs: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            ok(evs.as_array()?).then_some(())
        });
    }
}

fn has_event(evs: &[serde_json::Value], event_type: &str, text: &str) -> bool {
    evs.iter().any(|e| {
        e["event_type"] == event_type && e["description"].as_str().is_some_and(|d| d.contains(text))
    })
}

/// Anyone may ask the rack for a MAC's iPXE script, but only the machine itself (the address the
/// rack leased to that MAC) or the rack's host writes the machine's boot trace: a stranger on the
/// provisioning network asking for it leaves nothing in the machine's history.
#[test]
fn a_strangers_script_request_leaves_no_trace() {
    let b = BootLab::new("kt", "quiet1", "52:54:00:99:00:0a");
    let script = |from: &str| {
        b.lab.ok(
            &b.ns,
            &[
                "curl",
                "-sS",
                "--interface",
                from,
                &format!("http://{from}:5248/boot/ipxe?mac=52:54:00:99:00:0a"),
            ],
        )
    };
    // 10.20.0.2 is on the provisioning bridge but holds no lease.
    let s = script("10.20.0.2");
    assert!(s.starts_with("#!ipxe"), "{s}");
    // Then the rack's own host asks: that request is traced. Events reach the region in order,
    // so once this one is there, the stranger's would be too.
    let s = script("127.0.0.1");
    assert!(s.starts_with("#!ipxe"), "{s}");
    b.wait_events(|e| has_event(e, "ipxe_script", ""));
    std::thread::sleep(Duration::from_secs(2));
    let out = b.cli(&["machines", "events", &b.system_id, "--json"]);
    let evs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n = evs
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "ipxe_script")
        .count();
    assert_eq!(
        n, 1,
        "only the rack host's request is in the trace: {evs:#}"
    );
}

/// A QEMU VM (TCG) with iPXE in its NIC ROM PXE-boots from the rack and runs the script Kiln
/// rendered for it; the serial console and the region's boot trace show it.
#[test]
fn qemu_ipxe_boots_kiln_script() {
    let mut b = BootLab::new("kq", "vm1", "52:54:00:99:00:01");
    let id = b.system_id.clone();
    b.cli(&["machines", "mark-broken", &id]);
    b.cli(&["machines", "mark-fixed", &id]);
    let took = b.boot_until(
        "vm1",
        &[
            "-netdev",
            "tap,id=n0,ifname=tap0,script=no,downscript=no",
            "-device",
            "virtio-net-pci,netdev=n0,mac=52:54:00:99:00:01,bootindex=1",
            "-boot",
            "n",
        ],
        // The whole line: QEMU is killed as soon as the marker is on the console, and iPXE
        // prints slowly under TCG (a shorter marker once cut the line off mid-way).
        "there is nothing for it to boot",
        Duration::from_secs(240),
    );
    let text = b.console("vm1");
    assert!(
        text.contains("is Ready: there is nothing for it to boot"),
        "{text}"
    );
    eprintln!(
        "QEMU power-on to Kiln's iPXE script: {:.1} s",
        took.as_secs_f64()
    );
    // The boot trace in the region: PXE request, lease, script.
    b.wait_events(|e| {
        has_event(e, "pxe_request", "")
            && has_event(e, "dhcp_lease", "")
            && has_event(e, "ipxe_script", "")
    });
}

/// A UEFI VM (OVMF) whose NIC has no iPXE ROM: the firmware's own PXE client asks for an x64 UEFI
/// bootloader, fetches `snponly.efi` from the rack over TFTP, and that iPXE then runs Kiln's script.
#[test]
fn uefi_firmware_pxe_chains_ipxe_over_tftp() {
    let mut b = BootLab::new("ku", "uvm1", "52:54:00:99:00:07");
    let vars = b.dir.path().join("vars.fd");
    std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).unwrap();
    let varsarg = format!("if=pflash,format=raw,unit=1,file={}", vars.display());
    let took = b.boot_until(
        "uvm1",
        &[
            "-machine",
            "q35",
            "-drive",
            "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
            "-drive",
            &varsarg,
            "-netdev",
            "tap,id=n0,ifname=tap0,script=no,downscript=no",
            // romfile= (empty): no iPXE in the NIC, so OVMF's own PXE client boots.
            "-device",
            "virtio-net-pci,netdev=n0,mac=52:54:00:99:00:07,romfile=,bootindex=1",
        ],
        "Kiln: uvm1",
        Duration::from_secs(300),
    );
    eprintln!(
        "UEFI firmware PXE power-on to Kiln's script: {:.1} s",
        took.as_secs_f64()
    );
    b.wait_events(|e| {
        has_event(e, "pxe_request", "UEFI PXE")
            && has_event(e, "tftp_sent", "snponly.efi")
            && has_event(e, "pxe_request", "iPXE")
            && has_event(e, "ipxe_script", "")
    });
}
