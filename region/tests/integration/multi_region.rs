//! Several regions on one PostgreSQL, as the README offers: two real `kiln region` processes share
//! one database (and one data directory: the secret key and the image store), region B's clock an
//! hour behind A's (libfaketime), each with a real `kiln rack` that prefers it and lists the other
//! (`--region-url A,B`). Work goes through both regions and both racks; A is killed with -9 in the
//! middle of it. Nothing acknowledged is lost or doubled, A's rack moves to B and keeps serving
//! and following changes, whatever the clocks say.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::crash::{admin_token, db_args, free_port, Proc};
use crate::util::{Backend, TestDb};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

async fn healthy(url: &str, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("{url}/healthz")).await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what} did not become healthy:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A `kiln region` on `port`; `skew`: libfaketime's offset for its clock (`-1h`).
async fn region(db: &TestDb, port: u16, skew: Option<&str>) -> Proc {
    let log_path = db.data_dir().join(format!("region-{port}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(KILN);
    if let Some(s) = skew {
        // libfaketime preloaded into the region itself (not the `faketime` wrapper, whose child
        // would outlive a kill of the wrapper), wall clock only: timers and timeouts run on the
        // monotonic clock, untouched.
        let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
        assert!(
            Path::new(lib).exists(),
            "{lib} is missing: install the faketime package (tests/deps.sh does)"
        );
        cmd.env("LD_PRELOAD", lib)
            .env("FAKETIME", s)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    let child = cmd
        .arg("region")
        .args(db_args(db))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let p = Proc(child);
    healthy(&format!("http://127.0.0.1:{port}"), "a region", &log_path).await;
    p
}

/// A `kiln rack` (DHCP, DNS and the proxy off; boot services on loopback) enrolled with a fresh
/// approved token, talking to `regions` in that order.
async fn rack(db: &TestDb, name: &str, regions: &str, http_port: u16) -> Proc {
    let out = Command::new(KILN)
        .args(["admin", "rack-token", "--auto-approve"])
        .args(db_args(db))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = db.data_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, &out.stdout).unwrap();
    let log = std::fs::File::create(dir.join("rack.log")).unwrap();
    let child = Command::new(KILN)
        .args(["rack", "--region-url", regions, "--token-file"])
        .arg(&token)
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "--rack-name",
            name,
            "--no-dhcp",
            "--no-ra",
            "--no-dns",
            "--no-proxy",
        ])
        .args(["--tftp-bind", "127.0.0.1:0"])
        .args(["--http-bind", &format!("127.0.0.1:{http_port}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc(child)
}

async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Creates machines `{prefix}-{i}` through `base` until one fails; the acknowledged hostnames.
async fn writer(
    http: reqwest::Client,
    base: String,
    token: String,
    prefix: String,
    n: u32,
) -> Vec<String> {
    let mut acked = Vec::new();
    for i in 0..n {
        let hostname = format!("{prefix}-{i}");
        let mac_seed = prefix
            .bytes()
            .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
        let body = serde_json::json!({
            "hostname": hostname,
            "interfaces": [{"name": "eth0", "mac": format!(
                "52:54:03:{:02x}:{:02x}:{:02x}", mac_seed & 0xff, i >> 8, i & 0xff)}],
            "tags": ["multi"],
        });
        match http
            .post(format!("{base}/api/v1/machines"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => acked.push(hostname),
            Ok(r) => panic!(
                "{base} refused {hostname}: {}",
                r.text().await.unwrap_or_default()
            ),
            Err(_) => break,
        }
    }
    acked
}

/// Unknown MACs PXE booting through the rack at `rack_url` (the rack asks its region, which
/// enlists them); the MACs whose script shows them enlisted and commissioning.
async fn enlister(http: reqwest::Client, rack_url: String, first: u8, n: u8) -> Vec<String> {
    let mut acked = Vec::new();
    for i in 0..n {
        let mac = format!("52:54:04:00:{first:02x}:{i:02x}");
        if let Ok(r) = http
            .get(format!("{rack_url}/boot/ipxe?mac={mac}"))
            .send()
            .await
        {
            if r.text()
                .await
                .unwrap_or_default()
                .contains("is Commissioning")
            {
                acked.push(mac);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    acked
}

async fn get(http: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
    http.get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn two_regions_on_one_postgresql_survive_a_kill_9() {
    let db = TestDb::new(Backend::Postgres);
    let token = admin_token(&db);
    let (pa, pb) = (free_port(), free_port());
    let (a, b) = (
        format!("http://127.0.0.1:{pa}"),
        format!("http://127.0.0.1:{pb}"),
    );
    let mut region_a = region(&db, pa, None).await;
    let _region_b = region(&db, pb, Some("-1h")).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    // An ephemeral image uploaded through A; rack 2 (on B) caches it from B: one image store.
    let r: Value = http
        .post(format!("{a}/api/v1/boot-resources"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"os": "debian", "release": "bookworm", "arch": "amd64", "kind": "ephemeral"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resource = r["id"].as_str().unwrap();
    for (name, byte) in [("vmlinuz", 1u8), ("initrd.img", 2), ("root.squashfs", 3)] {
        use sha2::{Digest, Sha256};
        let data = vec![byte; 100_000];
        let sha = hex::encode(Sha256::digest(&data));
        let resp = http
            .put(format!(
                "{a}/api/v1/boot-resources/{resource}/files/{name}?sha256={sha}"
            ))
            .bearer_auth(&token)
            .body(data)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{name}: {}", resp.status());
    }
    let (h1, h2) = (free_port(), free_port());
    let _rack1 = rack(&db, "rack-1", &format!("{a},{b}"), h1).await;
    let _rack2 = rack(&db, "rack-2", &format!("{b},{a}"), h2).await;
    let (r1, r2) = (
        format!("http://127.0.0.1:{h1}"),
        format!("http://127.0.0.1:{h2}"),
    );
    let cache2 = db.data_dir().join("rack-2").join("images");
    until(
        "rack 2 to cache, through B, the image uploaded through A",
        60,
        || {
            let cache2 = cache2.clone();
            async move {
                let n = std::fs::read_dir(&cache2)
                    .ok()?
                    .filter_map(|e| e.ok())
                    .filter(|e| !e.file_name().to_string_lossy().contains('.'))
                    .count();
                (n == 3).then_some(())
            }
        },
    )
    .await;
    until("both racks approved and serving", 60, || {
        let http = http.clone();
        let (a, b, token, r1, r2) = (a.clone(), b.clone(), token.clone(), r1.clone(), r2.clone());
        async move {
            let racks = get(&http, &b, &token, "/api/v1/racks").await;
            let names: HashSet<&str> = racks
                .as_array()?
                .iter()
                .filter(|r| r["approval"] == "approved" && !r["last_seen"].is_null())
                .filter_map(|r| r["name"].as_str())
                .collect();
            let seen_by_a = get(&http, &a, &token, "/api/v1/racks").await;
            let ready = names.len() == 2
                && seen_by_a.as_array()?.len() == 2
                && http.get(format!("{r1}/metrics")).send().await.is_ok()
                && http.get(format!("{r2}/metrics")).send().await.is_ok();
            ready.then_some(())
        }
    })
    .await;

    // Work through both regions, directly and through both racks; A dies in the middle of it.
    let mut writers = Vec::new();
    for (base, prefix) in [(&a, "a0"), (&a, "a1"), (&b, "b0"), (&b, "b1")] {
        writers.push(tokio::spawn(writer(
            http.clone(),
            base.clone(),
            token.clone(),
            prefix.to_string(),
            250,
        )));
    }
    let enlist1 = tokio::spawn(enlister(http.clone(), r1.clone(), 1, 40));
    let enlist2 = tokio::spawn(enlister(http.clone(), r2.clone(), 2, 40));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    region_a.0.kill().unwrap();
    region_a.0.wait().unwrap();
    let killed = Instant::now();
    let mut acked: Vec<String> = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    let enlisted: Vec<String> = [enlist1.await.unwrap(), enlist2.await.unwrap()].concat();
    assert!(
        acked.iter().any(|h| h.starts_with('a')) && acked.iter().any(|h| h.starts_with('b')),
        "both regions took writes: {acked:?}"
    );
    assert!(
        acked.iter().filter(|h| h.starts_with('b')).count() == 500,
        "region B refused writes while A died"
    );
    assert!(
        enlisted.iter().any(|m| m.contains(":01:")) && enlisted.iter().any(|m| m.contains(":02:")),
        "both racks enlisted machines: {enlisted:?}"
    );

    // Nothing acknowledged is lost, nothing is there twice, nothing is half-written.
    let page = get(&http, &b, &token, "/api/v1/machines?limit=10000").await;
    let items = page["items"].as_array().unwrap();
    let mut by_host: HashMap<&str, usize> = HashMap::new();
    let mut by_mac: HashMap<String, usize> = HashMap::new();
    for m in items {
        *by_host.entry(m["hostname"].as_str().unwrap()).or_default() += 1;
        for i in m["interfaces"].as_array().unwrap() {
            *by_mac
                .entry(i["mac"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        if m["tags"] == serde_json::json!(["multi"]) {
            assert_eq!(
                m["interfaces"].as_array().unwrap().len(),
                1,
                "half-written: {m}"
            );
        }
    }
    for h in &acked {
        assert_eq!(
            by_host.get(h.as_str()),
            Some(&1),
            "acknowledged {h}: lost or doubled"
        );
    }
    for mac in &enlisted {
        assert_eq!(by_mac.get(mac), Some(&1), "enlisted {mac}: lost or doubled");
    }
    assert!(
        by_host.values().all(|n| *n == 1),
        "a hostname twice: {by_host:?}"
    );
    assert!(
        by_mac.values().all(|n| *n == 1),
        "a MAC on two machines: {by_mac:?}"
    );
    let mut created: HashMap<String, usize> = HashMap::new();
    let mut before = String::new();
    loop {
        let page = get(
            &http,
            &b,
            &token,
            &format!("/api/v1/events?limit=10000{before}"),
        )
        .await;
        let page = page.as_array().unwrap();
        for e in page {
            if e["event_type"] == "created" {
                if let Some(sid) = e["system_id"].as_str() {
                    *created.entry(sid.to_string()).or_default() += 1;
                }
            }
        }
        match page.last() {
            Some(e) if page.len() == 10_000 => before = format!("&before={}", e["id"]),
            _ => break,
        }
    }
    for m in items {
        let sid = m["system_id"].as_str().unwrap();
        assert_eq!(
            created.get(sid),
            Some(&1),
            "machine {} has not exactly one creation event",
            m["hostname"]
        );
    }

    // Rack 1 lost its region: it moves to B, which enlists through it, and it follows what
    // changes through B (whose clock is an hour behind everything A stamped).
    let (s, v) = {
        let r = http
            .post(format!("{b}/api/v1/machines"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "hostname": "after-the-kill",
                "interfaces": [{"name": "eth0", "mac": "52:54:05:00:00:01"}],
            }))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert!(s.is_success(), "{v}");
    // B's clock really is an hour behind (its stamps say so).
    let made: Value = serde_json::from_str(&v).unwrap();
    let stamped = chrono::DateTime::parse_from_rfc3339(made["created_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let behind = chrono::Utc::now() - stamped;
    assert!(
        behind > chrono::Duration::minutes(50),
        "region B's clock is not skewed: {made}"
    );
    // A machine A wrote, renamed through B: its new stamp is an hour older than A's newest, and
    // the number of machines does not change, yet the rack must see it.
    let first = items
        .iter()
        .find(|m| m["hostname"] == acked[0].as_str())
        .unwrap();
    let r = http
        .patch(format!(
            "{b}/api/v1/machines/{}",
            first["system_id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({"hostname": "renamed-through-b"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let snapshot = db.data_dir().join("rack-1").join("snapshot.json");
    until("rack 1 to serve B's changes", 60, || {
        let snapshot = snapshot.clone();
        async move {
            std::fs::read_to_string(&snapshot)
                .ok()
                .filter(|s| s.contains("after-the-kill") && s.contains("renamed-through-b"))
                .map(|_| ())
        }
    })
    .await;
    let moved_after = killed.elapsed();
    let script = until("rack 1 to enlist through B", 60, || {
        let http = http.clone();
        let r1 = r1.clone();
        async move {
            let s = http
                .get(format!("{r1}/boot/ipxe?mac=52:54:05:00:00:02"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            s.contains("is Commissioning").then_some(s)
        }
    })
    .await;
    assert!(script.contains("kiln.claim=claim_"), "{script}");
    let found = get(&http, &b, &token, "/api/v1/machines?mac=52:54:05:00:00:02").await;
    assert_eq!(found["total"], 1, "{found}");
    let log = std::fs::read_to_string(db.data_dir().join("rack-1").join("rack.log")).unwrap();
    assert!(
        log.contains(&format!("using {b} from now on")),
        "rack 1 never said it moved to B:\n{log}"
    );
    eprintln!(
        "acknowledged {} machines and {} enlistments; rack 1 served B's change {:.1} s after the kill",
        acked.len(),
        enlisted.len(),
        moved_after.as_secs_f64()
    );
}
