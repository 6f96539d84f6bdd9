//! The real `kiln` binary: `kill -9` mid-write leaves a database that starts cleanly and is
//! consistent; and the CLI drives the API as a user would.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::both;
use crate::util::{Backend, TestDb};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn db_args(db: &TestDb) -> Vec<String> {
    let mut a = vec![
        "--data-dir".to_string(),
        db.data_dir().to_string_lossy().into_owned(),
    ];
    if let Some(pg) = &db.pg {
        a.push("--database-url".into());
        a.push(pg.url.clone());
    }
    a
}

/// A region process, killed (by PID) when dropped.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_region(db: &TestDb, port: u16) -> Proc {
    let log = std::fs::File::create(db.data_dir().join(format!("region-{port}.log"))).unwrap();
    let child = Command::new(KILN)
        .arg("all-in-one")
        // Never serve DHCP on the host's own network; boot services on loopback, on free ports.
        .args([
            "--no-dhcp",
            "--no-dns",
            "--no-proxy",
            "--tftp-bind",
            "127.0.0.1:0",
            "--http-bind",
            "127.0.0.1:0",
        ])
        .args(db_args(db))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await {
            if r.status().is_success() {
                return p;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "region did not become healthy; see {}",
        db.data_dir().display()
    );
}

pub(crate) fn admin_token(db: &TestDb) -> String {
    let mut c = Command::new(KILN)
        .args([
            "admin",
            "create-user",
            "admin",
            "--admin",
            "--password-stdin",
        ])
        .args(db_args(db))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(b"admin-password\n")
        .unwrap();
    assert!(c.wait().unwrap().success());
    let out = Command::new(KILN)
        .args(["admin", "create-token", "admin"])
        .args(db_args(db))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    // Only the token on stdout.
    assert_eq!(token.lines().count(), 1);
    assert!(token.starts_with("kiln_"));
    token.trim().to_string()
}

both!(
    kill_9_mid_write_leaves_consistent_database,
    |b: Backend| async move {
        let db = TestDb::new(b);
        let token = admin_token(&db);
        let port = free_port();
        let mut region = start_region(&db, port).await;
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        // Writers hammer the region; it is killed while they run.
        let mut tasks = Vec::new();
        for w in 0..6u32 {
            let http = http.clone();
            let base = base.clone();
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
            let mut ok = 0u32;
            for i in 0..400u32 {
                let body = serde_json::json!({
                    "hostname": format!("w{w}-{i}"),
                    "interfaces": [{"name": "eth0", "mac": format!("52:54:01:{w:02x}:{:02x}:{:02x}", i >> 8, i & 0xff)}],
                    "tags": ["crash"],
                });
                match http.post(format!("{base}/api/v1/machines")).bearer_auth(&token).json(&body).send().await {
                    Ok(r) if r.status().is_success() => ok += 1,
                    _ => break,
                }
                if i % 5 == 0 {
                    let _ = http.post(format!("{base}/api/v1/machines/nonexist/commission")).bearer_auth(&token).send().await;
                }
            }
            ok
        }));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        // SIGKILL by PID.
        region.0.kill().unwrap();
        region.0.wait().unwrap();
        let mut acked = 0;
        for t in tasks {
            acked += t.await.unwrap();
        }
        assert!(acked > 0, "no write completed before the kill");

        // Starts again cleanly, and every acknowledged machine is there, whole.
        let port2 = free_port();
        let _region2 = start_region(&db, port2).await;
        let base2 = format!("http://127.0.0.1:{port2}");
        let page: Value = http
            .get(format!("{base2}/api/v1/machines?limit=10000"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let total = page["total"].as_u64().unwrap();
        assert!(
            total >= u64::from(acked),
            "acknowledged {acked}, found {total}"
        );
        for m in page["items"].as_array().unwrap() {
            assert_eq!(
                m["interfaces"].as_array().unwrap().len(),
                1,
                "half-written machine: {m}"
            );
            assert_eq!(
                m["tags"],
                serde_json::json!(["crash"]),
                "half-written machine: {m}"
            );
        }
        let evs: Value = http
            .get(format!("{base2}/api/v1/events?limit=10000"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let created = evs
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event_type"] == "created")
            .count() as u64;
        assert_eq!(
            created, total,
            "each machine has exactly its creation event"
        );
        if b == Backend::Sqlite {
            use diesel::{Connection, RunQueryDsl};
            #[derive(diesel::QueryableByName)]
            struct Check {
                #[diesel(sql_type = diesel::sql_types::Text)]
                integrity_check: String,
            }
            let mut c = diesel::SqliteConnection::establish(
                db.data_dir().join("kiln.db").to_str().unwrap(),
            )
            .unwrap();
            let r: Vec<Check> = diesel::sql_query("PRAGMA integrity_check")
                .load(&mut c)
                .unwrap();
            assert_eq!(r[0].integrity_check, "ok");
        }
    }
);

fn kiln(env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let out = Command::new(KILN)
        .envs(env.iter().copied())
        .env_remove("KILN_TOKEN_FILE")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

both!(cli_drives_the_api, |b: Backend| async move {
    let db = TestDb::new(b);
    let token = admin_token(&db);
    let port = free_port();
    let _region = start_region(&db, port).await;
    let url = format!("http://127.0.0.1:{port}");
    let env = [("KILN_URL", url.as_str()), ("KILN_TOKEN", token.as_str())];

    let (ok, out, err) = kiln(
        &env,
        &[
            "machines",
            "create",
            "--hostname",
            "cli1",
            "--mac",
            "52:54:00:12:34:56",
            "--tag",
            "lab",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let m: Value = serde_json::from_str(&out).unwrap();
    let id = m["system_id"].as_str().unwrap().to_string();
    assert_eq!(m["status"], "new");

    let (ok, out, _) = kiln(&env, &["machines", "list"]);
    assert!(ok);
    assert!(
        out.contains("cli1") && out.contains("52:54:00:12:34:56"),
        "table: {out}"
    );

    // An illegal action: non-zero exit, the API's sentence on stderr, no backtrace.
    let (ok, _, err) = kiln(&env, &["machines", "deploy", &id]);
    assert!(!ok);
    assert!(
        err.contains("409") && err.contains("Commission it first"),
        "{err}"
    );
    assert!(!err.contains("backtrace"), "{err}");

    for (action, label) in [
        ("commission", "Commissioning"),
        ("abort", "New"),
        ("mark-broken", "Broken"),
        ("mark-fixed", "Ready"),
        ("allocate", "Allocated"),
    ] {
        let (ok, out, err) = kiln(
            &env,
            &["machines", action, &id, "--comment", "from the cli test"],
        );
        assert!(ok, "{action}: {err}");
        assert!(out.contains(label), "{action}: {out}");
    }
    let (ok, out, _) = kiln(&env, &["machines", "events", &id, "--json"]);
    assert!(ok);
    let evs: Value = serde_json::from_str(&out).unwrap();
    // Oldest first, as the table prints them: the newest (the allocation) is last.
    let evs = evs.as_array().unwrap();
    assert!(evs[evs.len() - 1]["description"]
        .as_str()
        .unwrap()
        .contains("from the cli test"));
    assert!(evs[0]["created_at"].as_str() <= evs[evs.len() - 1]["created_at"].as_str());

    let (ok, _, err) = kiln(
        &env,
        &[
            "subnets",
            "create",
            "10.77.0.0/24",
            "--gateway",
            "10.77.0.1",
            "--dynamic-range",
            "10.77.0.100-10.77.0.150",
            "--route",
            "10.99.0.0/16=10.77.0.254",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, _) = kiln(&env, &["subnets", "list", "--json"]);
    assert!(ok);
    let subnets: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(subnets[0]["static_routes"][0]["gateway"], "10.77.0.254");

    // Upload a boot resource file through the CLI; the region verifies its sha256.
    let f = db.data_dir().join("vmlinuz");
    std::fs::write(&f, vec![7u8; 1_500_000]).unwrap();
    let (ok, _, err) = kiln(
        &env,
        &[
            "images",
            "upload",
            "--os",
            "debian",
            "--release",
            "bookworm",
            f.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(err.contains("verified"), "{err}");
    let (ok, out, _) = kiln(&env, &["images", "list", "--json"]);
    assert!(ok);
    let imgs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(imgs[0]["files"][0]["size"], 1_500_000);

    // A bundle with one damaged file is refused before anything is sent, in words: not even its
    // good files, nor its resources, reach the region.
    let bundle = db.data_dir().join("bundle");
    std::fs::create_dir_all(bundle.join("os")).unwrap();
    let good = b"a kernel, say".to_vec();
    std::fs::write(bundle.join("os/vmlinuz"), &good).unwrap();
    std::fs::write(
        bundle.join("os/root.squashfs"),
        b"not what the manifest says",
    )
    .unwrap();
    use sha2::Digest;
    let good_sha = hex::encode(sha2::Sha256::digest(&good));
    std::fs::write(
        bundle.join("manifest.json"),
        serde_json::json!({"format": 1, "resources": [
            {"os": "debian", "release": "fine", "arch": "amd64/generic", "kind": "os", "files": [
                {"name": "vmlinuz", "path": "os/vmlinuz", "sha256": good_sha, "size": good.len()}]},
            {"os": "debian", "release": "damaged", "arch": "amd64/generic", "kind": "os", "files": [
                {"name": "root.squashfs", "path": "os/root.squashfs", "sha256": "0".repeat(64),
                 "size": 26}]}]})
        .to_string(),
    )
    .unwrap();
    let (ok, _, err) = kiln(&env, &["images", "import", bundle.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("the bundle is damaged, nothing was uploaded")
            && err.contains("root.squashfs"),
        "{err}"
    );
    let (_, out, _) = kiln(&env, &["images", "list", "--json"]);
    let imgs: Value = serde_json::from_str(&out).unwrap();
    assert!(
        imgs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["release"] != "fine" && r["release"] != "damaged"),
        "something of a damaged bundle was uploaded: {imgs}"
    );

    // No token: a clear message.
    let (ok, _, err) = kiln(&[("KILN_URL", url.as_str())], &["machines", "list"]);
    assert!(!ok);
    assert!(err.contains("KILN_TOKEN"), "{err}");
});

#[test]
fn print_config_hides_the_database_password() {
    let (ok, out, err) = kiln(
        &[],
        &[
            "region",
            "--print-config",
            "--data-dir",
            "/tmp/kiln-x",
            "--database-url",
            "postgres://kiln:hunter2@db/kiln",
            "--listen",
            "127.0.0.1:5999",
        ],
    );
    assert!(ok, "{err}");
    assert!(!out.contains("hunter2"), "{out}");
    assert!(
        out.contains("postgres://kiln:***@db/kiln")
            && out.contains("127.0.0.1:5999")
            && out.contains("node_timeout_secs = 1800"),
        "{out}"
    );
    let (ok, _, err) = kiln(
        &[],
        &["region", "--print-config", "--database-url", "mysql://x"],
    );
    assert!(!ok);
    assert!(err.contains("scheme"), "{err}");
}

/// A region started with `KILN_LOG=spec`, its log in `log`; killed when dropped.
async fn region_logging_to(db: &TestDb, port: u16, spec: &str, log: &std::path::Path) -> Proc {
    let child = Command::new(KILN)
        .arg("region")
        .args(db_args(db))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KILN_LOG", spec)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("region did not become healthy; see {}", log.display());
}

/// Sends one request with a header no HTTP parser takes; returns the status line.
fn send_malformed(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /api/v1/machines HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn a_malformed_header_is_the_clients_fault_not_an_error() {
    let db = TestDb::new(Backend::Sqlite);
    for (spec, shown) in [("info", false), ("info,actix_http=debug", true)] {
        let port = free_port();
        let log = db.data_dir().join(format!("region-{port}.log"));
        let region = region_logging_to(&db, port, spec, &log).await;
        for _ in 0..3 {
            assert_eq!(send_malformed(port), "HTTP/1.1 400 Bad Request");
        }
        drop(region);
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("parse error")).collect();
        assert!(!text.contains("ERROR"), "KILN_LOG={spec}: {text}");
        if shown {
            assert_eq!(lines.len(), 3, "{text}");
            assert!(lines.iter().all(|l| l.contains("DEBUG")), "{text}");
        } else {
            assert!(lines.is_empty(), "{text}");
        }
    }
}
