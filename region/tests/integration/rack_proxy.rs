//! The rack's caching HTTP proxy against real clients and servers in network namespaces: curl
//! through it to a Python HTTP server (the origin, on an address only the rack can reach) and to
//! an OpenSSL TLS server (CONNECT); package files served from the cache, indexes revalidated,
//! least recently used objects evicted at the size cap; a client outside the managed subnets, a
//! CONNECT to port 25 and a request for the rack's own loopback refused; counters in /metrics.

use std::time::Duration;

use crate::netns::Netns;
use crate::rack_dhcp::{admin, create_admin};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");
const URL: &str = "http://127.0.0.1:5240";
const PROXY: &str = "http://10.20.0.2:8000";

/// curl through the proxy from `ns`: (HTTP status, headers, body).
fn through(lab: &Netns, ns: &str, url: &str, extra: &[&str]) -> (String, String, Vec<u8>) {
    let mut args = vec![
        "curl",
        "-s",
        "-k",
        "-x",
        PROXY,
        "-D",
        "/dev/stderr",
        "--max-time",
        "20",
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let out = lab.exec(ns, &args);
    let headers = String::from_utf8_lossy(&out.stderr).into_owned();
    let status = headers
        .lines()
        .rev()
        .find(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("none")
        .to_string();
    (status, headers.to_ascii_lowercase(), out.stdout)
}

fn x_cache(headers: &str) -> String {
    headers
        .lines()
        .find_map(|l| l.strip_prefix("x-cache: "))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// How many times the origin was asked for `path` (its access log), and with which statuses.
fn origin_hits(log: &std::path::Path, path: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!("GET {path} ")))
        .filter_map(|l| {
            l.split("\" ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn proxy_caches_revalidates_tunnels_and_refuses_with_real_clients() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut lab = Netns::new("kp", &["s", "a", "o"]);
    let (s, a, o) = (
        lab.ns(0).to_string(),
        lab.ns(1).to_string(),
        lab.ns(2).to_string(),
    );
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
        // The origin's address: on the rack host only; the client has no route to it.
        &["ip", "addr", "add", "10.77.0.1/32", "dev", "lo"],
    ] {
        lab.ok(&s, cmd);
    }
    lab.veth(&s, "pa", &a, "a0");
    lab.ok(&s, &["ip", "link", "set", "pa", "master", "br0"]);
    lab.ok(&a, &["ip", "addr", "add", "10.20.0.50/24", "dev", "a0"]);
    lab.veth(&s, "so", &o, "o0");
    lab.ok(&s, &["ip", "addr", "add", "172.30.0.1/24", "dev", "so"]);
    lab.ok(&o, &["ip", "addr", "add", "172.30.0.2/24", "dev", "o0"]);
    lab.ok(
        &o,
        &["ip", "route", "add", "10.20.0.0/24", "via", "172.30.0.1"],
    );

    // The origin: files of a small apt repository, served by Python (Last-Modified, 304s).
    let www = d.join("www");
    std::fs::create_dir_all(www.join("pool")).unwrap();
    std::fs::create_dir_all(www.join("dists/kiln")).unwrap();
    let deb: Vec<u8> = (0..1_200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(www.join("pool/a.deb"), &deb).unwrap();
    std::fs::write(www.join("pool/b.deb"), &deb[..1_100_000]).unwrap();
    std::fs::write(www.join("dists/kiln/InRelease"), b"Origin: kiln-test\n").unwrap();
    let origin_log = d.join("origin.log");
    lab.spawn(
        &s,
        &[
            "python3",
            "-u",
            "-m",
            "http.server",
            "--bind",
            "10.77.0.1",
            "--directory",
            www.to_str().unwrap(),
            "8081",
        ],
        &origin_log,
    );
    // A TLS server for CONNECT.
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    lab.ok(
        &s,
        &[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=origin",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    lab.spawn(
        &s,
        &[
            "openssl",
            "s_server",
            "-accept",
            "10.77.0.1:443",
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
            "-www",
        ],
        &d.join("tls.log"),
    );

    let data = d.join("data");
    create_admin(&data);
    let token = admin(&["admin", "create-token", "admin"], &data);
    let aio = [
        KILN,
        "all-in-one",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:5240",
        "--no-dhcp",
        "--proxy-cache-mib",
        "2",
    ];
    let kiln = lab.spawn(&s, &aio, &d.join("kiln.log"));
    Netns::wait_for("the region", Duration::from_secs(30), || {
        lab.exec(&s, &["curl", "-sf", &format!("{URL}/healthz")])
            .status
            .success()
            .then_some(())
    });
    lab.ok(
        &s,
        &[
            KILN,
            "subnets",
            "create",
            "10.20.0.0/24",
            "--url",
            URL,
            "--token",
            &token,
        ],
    );
    Netns::wait_for("the origin and the proxy", Duration::from_secs(20), || {
        let (st, _, _) = through(&lab, &a, "http://10.77.0.1:8081/dists/kiln/InRelease", &[]);
        (st == "200").then_some(())
    });
    let inrelease_before = origin_hits(&origin_log, "/dists/kiln/InRelease").len();
    // The client cannot reach the origin itself: what it gets comes through the proxy.
    assert!(!lab
        .exec(
            &a,
            &["curl", "-s", "--max-time", "3", "http://10.77.0.1:8081/"]
        )
        .status
        .success());

    // A package: fetched once, then from the cache, byte for byte.
    let url_a = "http://10.77.0.1:8081/pool/a.deb";
    let (st, h, body) = through(&lab, &a, url_a, &[]);
    assert_eq!((st.as_str(), x_cache(&h).as_str()), ("200", "miss"), "{h}");
    assert_eq!(body, deb);
    let (st, h, body) = through(&lab, &a, url_a, &[]);
    assert_eq!((st.as_str(), x_cache(&h).as_str()), ("200", "hit"), "{h}");
    assert_eq!(body, deb);
    assert_eq!(
        origin_hits(&origin_log, "/pool/a.deb"),
        ["200"],
        "the origin saw one request"
    );

    // An index: kept, and revalidated with the origin each time (a 304 there, the copy here).
    let (st, h, body) = through(&lab, &a, "http://10.77.0.1:8081/dists/kiln/InRelease", &[]);
    assert_eq!(
        (st.as_str(), x_cache(&h).as_str()),
        ("200", "revalidated"),
        "{h}"
    );
    assert_eq!(body, b"Origin: kiln-test\n");
    let seen = origin_hits(&origin_log, "/dists/kiln/InRelease");
    assert_eq!(seen.len(), inrelease_before + 1);
    assert_eq!(seen.last().map(String::as_str), Some("304"), "{seen:?}");

    // The size cap (2 MiB): b.deb pushes out a.deb, the least recently used.
    let (_, h, _) = through(&lab, &a, "http://10.77.0.1:8081/pool/b.deb", &[]);
    assert_eq!(x_cache(&h), "miss");
    let (_, h, body) = through(&lab, &a, url_a, &[]);
    assert_eq!(x_cache(&h), "miss", "evicted: fetched again");
    assert_eq!(body, deb);
    assert_eq!(origin_hits(&origin_log, "/pool/a.deb").len(), 2);

    // CONNECT to 443 is a tunnel (TLS end to end); to 25 it is refused.
    let (st, _, body) = through(&lab, &a, "https://10.77.0.1/", &[]);
    assert_eq!(st, "200");
    assert!(
        String::from_utf8_lossy(&body).contains("s_server"),
        "the TLS server answered"
    );
    let out = lab.exec(
        &a,
        &[
            "curl",
            "-s",
            "-k",
            "-x",
            PROXY,
            "--max-time",
            "10",
            "-w",
            "%{http_connect}",
            "-o",
            "/dev/null",
            "https://10.77.0.1:25/",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    // Not the rack host's own services, not other methods, not clients outside managed subnets.
    let (st, _, body) = through(&lab, &a, "http://127.0.0.1:5240/healthz", &[]);
    assert_eq!(st, "403", "{}", String::from_utf8_lossy(&body));
    // Other spellings of loopback, as URL parsers read them, are refused too (sent raw: curl
    // would normalise them itself).
    for sneaky in [
        "127.1",
        "2130706433",
        "0x7f.1",
        "0",
        "[::1]",
        "[::ffff:127.0.0.1]",
    ] {
        let script = format!(
            "exec 3<>/dev/tcp/10.20.0.2/8000; printf 'GET http://{sneaky}:5240/healthz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3; head -n1 <&3"
        );
        let line = lab.ok(&a, &["bash", "-c", &script]);
        assert!(line.contains(" 403 "), "{sneaky}: {line}");
    }
    let (st, _, _) = through(&lab, &a, url_a, &["-X", "POST"]);
    assert_eq!(st, "405");
    let (st, _, body) = through(&lab, &o, url_a, &[]);
    assert_eq!(st, "403");
    assert!(String::from_utf8_lossy(&body).contains("managed networks"));

    // The counters.
    let m = lab.ok(&s, &["curl", "-sf", "http://127.0.0.1:5248/metrics"]);
    for what in [
        "proxy_hits",
        "proxy_misses",
        "proxy_revalidated",
        "proxy_bytes_hit",
        "proxy_bytes_miss",
        "proxy_connect",
        "proxy_refused_client",
    ] {
        assert!(
            m.contains(&format!("what=\"{what}\"")),
            "{what} not counted:\n{m}"
        );
    }

    // A parent proxy (tinyproxy): the rack, restarted with --proxy-upstream, fetches and tunnels
    // through it; what it cached before is still served from its disk.
    let conf = d.join("tinyproxy.conf");
    let tlog = d.join("tinyproxy.log");
    std::fs::write(
        &conf,
        format!("Port 8888\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nLogLevel Info\nLogFile \"{}\"\nMaxClients 20\n", tlog.display()),
    )
    .unwrap();
    lab.spawn(
        &s,
        &["tinyproxy", "-d", "-c", conf.to_str().unwrap()],
        &d.join("tinyproxy.out"),
    );
    lab.kill(kiln);
    let mut with_parent: Vec<&str> = aio.to_vec();
    with_parent.extend(["--proxy-upstream", "http://127.0.0.1:8888"]);
    lab.spawn(&s, &with_parent, &d.join("kiln-2.log"));
    Netns::wait_for("the rack's proxy again", Duration::from_secs(30), || {
        let (st, h, _) = through(&lab, &a, url_a, &[]);
        (st == "200" && x_cache(&h) == "hit").then_some(())
    });
    let (st, h, body) = through(&lab, &a, "http://10.77.0.1:8081/pool/b.deb", &[]);
    assert_eq!((st.as_str(), x_cache(&h).as_str()), ("200", "miss"), "{h}");
    assert_eq!(body.len(), 1_100_000);
    let (st, _, body) = through(&lab, &a, "https://10.77.0.1/", &[]);
    assert_eq!(st, "200");
    assert!(String::from_utf8_lossy(&body).contains("s_server"));
    let parent = std::fs::read_to_string(&tlog).unwrap_or_default();
    assert!(
        parent.contains("/pool/b.deb"),
        "the parent did not see the fetch:\n{parent}"
    );
    assert!(
        parent.contains("CONNECT"),
        "the parent did not see the tunnel:\n{parent}"
    );
}
