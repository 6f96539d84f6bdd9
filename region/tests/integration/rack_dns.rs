//! The rack's DNS against real clients: `dig` in network namespaces asks two racks (one with a
//! forwarder, a dnsmasq the test starts as the upstream resolver) for machines' names (a static
//! reservation, a DHCP lease from busybox udhcpc), reverse names, operators' records, a forwarded
//! name; a client outside the managed subnets is refused; the SOA serial rises on a change; with
//! the region stopped (and a rack restarted without it) the names still resolve.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::rack_dhcp::{admin, create_admin, field, udhcpc};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");
const URL: &str = "http://127.0.0.1:5240";

/// `dig` from `ns` at `server`: (status, answer lines).
fn dig(lab: &Netns, ns: &str, server: &str, args: &[&str]) -> (String, Vec<String>) {
    let at = format!("@{server}");
    let mut full = vec![
        "dig",
        "+noall",
        "+comments",
        "+answer",
        "+time=1",
        "+tries=1",
        &at,
    ];
    full.extend_from_slice(args);
    let out = lab.exec(ns, &full);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO ANSWER")
        .to_string();
    let answers = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (status, answers)
}

/// The data of the answers (last field onwards for A/AAAA/CNAME/PTR; everything after the type).
fn data(answers: &[String]) -> Vec<String> {
    answers
        .iter()
        .map(|l| l.split(' ').skip(4).collect::<Vec<_>>().join(" "))
        .collect()
}

fn serial(lab: &Netns, ns: &str, server: &str) -> u32 {
    let (status, a) = dig(lab, ns, server, &["kiln", "SOA"]);
    assert_eq!(status, "NOERROR", "{a:?}");
    a[0].split(' ').nth(6).unwrap().parse().unwrap()
}

/// Waits until `server` answers `name` with exactly `want`; returns how long that took.
fn until_answer(
    lab: &Netns,
    ns: &str,
    server: &str,
    name: &str,
    t: &str,
    want: &[&str],
    within: Duration,
) -> Duration {
    let t0 = Instant::now();
    loop {
        let (status, a) = dig(lab, ns, server, &[name, t]);
        if data(&a) == want {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "{server} did not answer {name} {t} with {want:?} within {within:?}: last {status} {a:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kiln(lab: &Netns, ns: &str, token: &str, args: &[&str]) -> std::process::Output {
    let mut full = vec![KILN];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--url", URL, "--token", token]);
    lab.exec(ns, &full)
}

fn kiln_ok(lab: &Netns, ns: &str, token: &str, args: &[&str]) -> String {
    let o = kiln(lab, ns, token, args);
    assert!(
        o.status.success(),
        "kiln {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn rack_args<'a>(
    name: &'a str,
    ip: &str,
    secret: &'a Path,
    data: &'a Path,
    extra: &[&'a str],
) -> Vec<String> {
    let mut a: Vec<String> = [
        KILN,
        "rack",
        "--region-url",
        URL,
        "--secret-file",
        secret.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--rack-name",
        name,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (flag, port) in [
        ("--tftp-bind", 69),
        ("--http-bind", 5248),
        ("--dns-bind", 53),
        ("--proxy-bind", 8000),
    ] {
        a.push(flag.into());
        a.push(format!("{ip}:{port}"));
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn dns_on_two_racks_with_real_clients_and_the_region_away() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let region_data = d.join("region");
    let mut lab = Netns::new("kn", &["s", "a", "o"]);
    let (s, a, o) = (
        lab.ns(0).to_string(),
        lab.ns(1).to_string(),
        lab.ns(2).to_string(),
    );
    // The provisioning network (two rack addresses on one bridge) and a client port on it; an
    // outside client on an unmanaged network that routes to the rack.
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
        &["ip", "link", "set", "br0", "up"],
        &["ip", "addr", "add", "10.20.0.2/24", "dev", "br0"],
        &["ip", "addr", "add", "10.20.0.3/24", "dev", "br0"],
    ] {
        lab.ok(&s, cmd);
    }
    lab.veth(&s, "pa", &a, "a0");
    lab.ok(&s, &["ip", "link", "set", "pa", "master", "br0"]);
    lab.ok(
        &a,
        &["ip", "link", "set", "a0", "address", "52:54:00:e0:00:01"],
    );
    lab.veth(&s, "so", &o, "o0");
    lab.ok(&s, &["ip", "addr", "add", "172.30.0.1/24", "dev", "so"]);
    lab.ok(&o, &["ip", "addr", "add", "172.30.0.2/24", "dev", "o0"]);
    lab.ok(
        &o,
        &["ip", "route", "add", "10.20.0.0/24", "via", "172.30.0.1"],
    );

    // The upstream resolver: dnsmasq, knowing one name, on the rack host's loopback.
    lab.spawn(
        &s,
        &[
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--port",
            "5353",
            "--listen-address",
            "127.0.0.1",
            "--bind-interfaces",
            "--address=/upstream.test/192.0.2.77",
            "--pid-file=",
            "--user=root",
        ],
        &d.join("dnsmasq.log"),
    );

    create_admin(&region_data);
    let token = admin(&["admin", "create-token", "admin"], &region_data);
    let secret = d.join("rack-secret");
    std::fs::write(&secret, admin(&["admin", "rack-secret"], &region_data)).unwrap();
    let region_args = [
        KILN,
        "region",
        "--data-dir",
        region_data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:5240",
    ];
    let region = lab.spawn(&s, &region_args, &d.join("region.log"));
    Netns::wait_for("the region", Duration::from_secs(30), || {
        lab.exec(&s, &["curl", "-sf", &format!("{URL}/healthz")])
            .status
            .success()
            .then_some(())
    });
    // No DNS server named on the subnet: the rack hands out itself.
    kiln_ok(
        &lab,
        &s,
        &token,
        &[
            "subnets",
            "create",
            "10.20.0.0/24",
            "--gateway",
            "10.20.0.1",
            "--dynamic-range",
            "10.20.0.100-10.20.0.120",
        ],
    );
    kiln_ok(
        &lab,
        &s,
        &token,
        &[
            "machines",
            "create",
            "--hostname",
            "node1",
            "--mac",
            "52:54:00:e0:00:01",
        ],
    );
    let node2: serde_json::Value = serde_json::from_str(&kiln_ok(
        &lab,
        &s,
        &token,
        &[
            "machines",
            "create",
            "--hostname",
            "node2",
            "--mac",
            "52:54:00:e0:00:02",
            "--json",
        ],
    ))
    .unwrap();
    let node2_id = node2["system_id"].as_str().unwrap().to_string();
    kiln_ok(
        &lab,
        &s,
        &token,
        &[
            "machines",
            "set-ip",
            &node2_id,
            "52:54:00:e0:00:02",
            "10.20.0.50",
        ],
    );

    let (data_a, data_b) = (d.join("rack-a"), d.join("rack-b"));
    let args_a = rack_args(
        "rack-a",
        "10.20.0.2",
        &secret,
        &data_a,
        &["--dns-forwarder", "127.0.0.1:5353"],
    );
    let args_b = rack_args(
        "rack-b",
        "10.20.0.3",
        &secret,
        &data_b,
        &["--no-dhcp", "--no-ra"],
    );
    lab.spawn(&s, &strs(&args_a), &d.join("rack-a.log"));
    let mut rack_b = lab.spawn(&s, &strs(&args_b), &d.join("rack-b.log"));
    Netns::wait_for(
        "rack-a to serve DHCP on br0",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(d.join("rack-a.log"))
                .unwrap_or_default()
                .contains("DHCP: serving br0")
                .then_some(())
        },
    );
    let (ra, rb) = ("10.20.0.2", "10.20.0.3");

    // A DHCP lease (the client's first address): the rack handed out itself as DNS server and
    // Kiln's domain; the name resolves on this rack and on the other within 2 s.
    let line = udhcpc(&lab, &a, "a0", d, &[]);
    let leased_at = Instant::now();
    let ip = field(&line, "ip").to_string();
    // The test's udhcpc script only reports; the client takes the address as its own.
    lab.ok(&a, &["ip", "addr", "add", &format!("{ip}/24"), "dev", "a0"]);
    assert_eq!(field(&line, "dns"), ra, "{line}");
    assert_eq!(field(&line, "domain"), "kiln", "{line}");
    let here = until_answer(
        &lab,
        &a,
        ra,
        "node1.kiln",
        "A",
        &[&ip],
        Duration::from_secs(10),
    );
    until_answer(
        &lab,
        &a,
        rb,
        "node1.kiln",
        "A",
        &[&ip],
        Duration::from_secs(10),
    );
    let there = leased_at.elapsed();
    eprintln!(
        "dns: a lease resolved on its rack after {here:?}, on the other rack after {there:?}"
    );
    assert!(
        here <= Duration::from_secs(2) && there <= Duration::from_secs(2),
        "{here:?} {there:?}"
    );
    // A static reservation resolves on both racks, forward and reverse, over UDP and TCP.
    for r in [ra, rb] {
        until_answer(
            &lab,
            &a,
            r,
            "node2.kiln",
            "A",
            &["10.20.0.50"],
            Duration::from_secs(20),
        );
        until_answer(
            &lab,
            &a,
            r,
            "50.0.20.10.in-addr.arpa",
            "PTR",
            &["node2.kiln."],
            Duration::from_secs(5),
        );
    }
    let (_, ans) = dig(&lab, &a, rb, &["+tcp", "node2.kiln", "A"]);
    assert_eq!(data(&ans), ["10.20.0.50"], "over TCP");
    let (_, ans) = dig(&lab, &a, ra, &["-x", "10.20.0.50"]);
    assert_eq!(data(&ans), ["node2.kiln."]);

    let rev = {
        let o: Vec<&str> = ip.split('.').rev().collect();
        format!("{}.in-addr.arpa", o.join("."))
    };
    until_answer(
        &lab,
        &a,
        rb,
        &rev,
        "PTR",
        &["node1.kiln."],
        Duration::from_secs(5),
    );

    // Operators' records, through the CLI; the SOA serial rises with them.
    let before = serial(&lab, &a, rb);
    kiln_ok(
        &lab,
        &s,
        &token,
        &["dns", "records", "add", "www.kiln", "CNAME", "node1.kiln"],
    );
    kiln_ok(
        &lab,
        &s,
        &token,
        &[
            "dns",
            "records",
            "add",
            "_http._tcp.kiln",
            "SRV",
            "10 5 80 node1.kiln",
        ],
    );
    kiln_ok(
        &lab,
        &s,
        &token,
        &[
            "dns", "records", "add", "v6.kiln", "AAAA", "fd00::5", "--ttl", "120",
        ],
    );
    until_answer(
        &lab,
        &a,
        rb,
        "www.kiln",
        "A",
        &["node1.kiln.", &ip],
        Duration::from_secs(5),
    );
    until_answer(
        &lab,
        &a,
        rb,
        "_http._tcp.kiln",
        "SRV",
        &["10 5 80 node1.kiln."],
        Duration::from_secs(5),
    );
    until_answer(
        &lab,
        &a,
        ra,
        "v6.kiln",
        "AAAA",
        &["fd00::5"],
        Duration::from_secs(5),
    );
    let after = serial(&lab, &a, rb);
    assert!(after > before, "SOA serial {before} → {after}");
    let listed = kiln_ok(&lab, &s, &token, &["dns", "records", "list"]);
    assert!(
        listed.contains("www.kiln") && listed.contains("SRV"),
        "{listed}"
    );
    // Refused in words: a CNAME where a machine is named.
    let o_ = kiln(
        &lab,
        &s,
        &token,
        &["dns", "records", "add", "node1.kiln", "CNAME", "www.kiln"],
    );
    assert!(!o_.status.success());
    assert!(
        String::from_utf8_lossy(&o_.stderr).contains("machine"),
        "{}",
        String::from_utf8_lossy(&o_.stderr)
    );

    // A domain of its own for node2.
    kiln_ok(
        &lab,
        &s,
        &token,
        &["dns", "domains", "add", "lab.example", "--ttl", "300"],
    );
    kiln_ok(
        &lab,
        &s,
        &token,
        &["machines", "update", &node2_id, "--domain", "lab.example"],
    );
    until_answer(
        &lab,
        &a,
        rb,
        "node2.lab.example",
        "A",
        &["10.20.0.50"],
        Duration::from_secs(5),
    );
    until_answer(
        &lab,
        &a,
        rb,
        "50.0.20.10.in-addr.arpa",
        "PTR",
        &["node2.lab.example."],
        Duration::from_secs(5),
    );
    let domains = kiln_ok(&lab, &s, &token, &["dns", "domains", "list"]);
    assert!(domains.contains("lab.example"), "{domains}");

    // NXDOMAIN with the SOA; names elsewhere forwarded by the rack that has a forwarder, refused by
    // the one that has none.
    let (status, _) = dig(&lab, &a, ra, &["nobody.kiln", "A"]);
    assert_eq!(status, "NXDOMAIN");
    let (status, ans) = dig(&lab, &a, ra, &["upstream.test", "A"]);
    assert_eq!(
        (status.as_str(), data(&ans)),
        ("NOERROR", vec!["192.0.2.77".to_string()])
    );
    let (status, _) = dig(&lab, &a, rb, &["upstream.test", "A"]);
    assert_eq!(status, "REFUSED");
    // Not an open resolver: a client outside the managed subnets gets nothing but REFUSED.
    let (status, ans) = dig(&lab, &o, ra, &["node1.kiln", "A"]);
    assert_eq!(status, "REFUSED", "{ans:?}");
    let (status, _) = dig(&lab, &o, ra, &["upstream.test", "A"]);
    assert_eq!(status, "REFUSED");

    // The region stopped: both racks still answer, and a rack restarted without it too.
    lab.kill(region);
    lab.kill(rack_b);
    rack_b = lab.spawn(&s, &strs(&args_b), &d.join("rack-b-2.log"));
    for r in [ra, rb] {
        until_answer(
            &lab,
            &a,
            r,
            "node1.kiln",
            "A",
            &[&ip],
            Duration::from_secs(10),
        );
        until_answer(
            &lab,
            &a,
            r,
            "www.kiln",
            "A",
            &["node1.kiln.", &ip],
            Duration::from_secs(5),
        );
    }
    let _ = rack_b;
    // What the rack counted.
    let m = lab.ok(&s, &["curl", "-sf", "http://10.20.0.2:5248/metrics"]);
    for what in [
        "dns_queries",
        "dns_answered",
        "dns_nxdomain",
        "dns_forwarded",
        "dns_refused_client",
    ] {
        assert!(
            m.contains(&format!("what=\"{what}\"")),
            "{what} not counted:\n{m}"
        );
    }
}
