//! The rack's boot services against a real region: image sync (resumable, verified), the
//! per-machine iPXE script, boot files over HTTP with Range and over TFTP, and the boot trace.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::both;
use crate::util::{Backend, TestApp};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    for _ in 0..150 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

both!(boot_services_from_a_synced_cache, |b: Backend| async move {
    let app = TestApp::start(b).await;
    let kernel: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let initrd = vec![3u8; 300_000];
    let squashfs = vec![9u8; 1_000_000];
    let loader = b"not really undionly, but bytes to serve".to_vec();
    app.upload_boot_files(
        "ephemeral",
        &[
            ("vmlinuz", kernel.clone()),
            ("initrd.img", initrd.clone()),
            ("root.squashfs", squashfs.clone()),
        ],
    )
    .await;
    app.upload_boot_files("bootloader", &[("undionly.kpxe", loader.clone())])
        .await;
    let id = app.machine("boot1", "52:54:00:b0:00:01").await;
    app.act(&app.admin_token.clone(), &id, "commission").await;

    let secret = app.rack_secret().await;
    let rack_dir = tempfile::tempdir().unwrap();
    // Leases this rack gave (its journal, replayed at start): 127.0.0.3 is the machine that will
    // be enlisted, 127.0.0.2 is boot1. 127.0.0.1 (the test, the rack's host) holds none.
    let lease = |ip: &str, mac: [u8; 6]| {
        serde_json::to_string(&rack_proto::leases::LeaseChange::Set(
            rack_proto::leases::Lease {
                ip: ip.parse().unwrap(),
                mac,
                state: rack_proto::leases::LeaseState::Bound,
                expires: 4_000_000_000,
            },
        ))
        .unwrap()
    };
    std::fs::write(
        rack_dir.path().join("leases.jsonl"),
        format!(
            "{}\n{}\n",
            lease("127.0.0.3", [0x52, 0x54, 0, 0xb0, 0, 0x99]),
            lease("127.0.0.2", [0x52, 0x54, 0, 0xb0, 0, 0x01])
        ),
    )
    .unwrap();
    let mut cfg = rack::RackConfig::new(&app.base, &secret, rack_dir.path().to_path_buf());
    cfg.name = "rack-boot".into();
    cfg.dhcp_enabled = false;
    let (hp, tp) = (free_port(), free_port());
    cfg.http_bind = format!("127.0.0.1:{hp}").parse().unwrap();
    cfg.tftp_bind = format!("127.0.0.1:{tp}").parse().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let rack_task = tokio::spawn(rack::run(cfg, cancel.clone()));
    let images = rack_dir.path().join("images");
    wait_until("the image cache", || {
        let images = images.clone();
        async move {
            std::fs::read_dir(&images)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter(|e| !e.file_name().to_string_lossy().contains('.'))
                        .count()
                })
                .unwrap_or(0)
                == 4
        }
    })
    .await;

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{hp}");
    // The commissioning machine's script boots the ephemeral environment from this rack.
    let script = http
        .get(format!("{base}/boot/ipxe?mac=52:54:00:b0:00:01"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.starts_with("#!ipxe"), "{script}");
    assert!(
        script.contains("is Commissioning - booting debian/bookworm"),
        "{script}"
    );
    let kernel_url = script
        .lines()
        .find_map(|l| l.strip_prefix("kernel "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    assert!(
        kernel_url.starts_with(&format!("{base}/images/")),
        "{kernel_url}"
    );
    assert!(
        script.contains("kiln.root=") && script.contains("root.squashfs"),
        "{script}"
    );
    let got = http
        .get(&kernel_url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), kernel.as_slice());
    let part = http
        .get(&kernel_url)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &kernel[1000..2000]);
    // A file the snapshot does not name is not served.
    let r = http
        .get(format!("{base}/images/{}/vmlinuz", "0".repeat(64)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // An unknown machine is enlisted by the region (and commissioned): it boots the ephemeral
    // environment with a one-time claim code for this boot's credential, never the credential.
    let script = http
        .get(format!("{base}/boot/ipxe?mac=52:54:00:b0:00:99"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        script.contains("is Commissioning") && script.contains("kiln.claim=claim_"),
        "{script}"
    );
    assert!(
        !script.contains("kiln.token") && !script.contains("boot_"),
        "the credential itself is on the kernel command line: {script}"
    );
    let (_, page) = app
        .admin(Method::GET, "/api/v1/machines?mac=52:54:00:b0:00:99", None)
        .await;
    assert_eq!(page["items"][0]["status"], "commissioning", "{page}");
    let enlisted = page["items"][0]["system_id"].as_str().unwrap().to_string();
    let code = script
        .split_whitespace()
        .find_map(|w| w.strip_prefix("kiln.claim="))
        .unwrap()
        .to_string();
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let claim = |client: reqwest::Client, code: String| {
        let url = format!("{base}/boot/claim");
        async move {
            let r = client.post(url).body(code).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    // Not from an address this rack leased (the rack's own host included): refused.
    let (st, text) = claim(from("127.0.0.1"), code.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("lease"), "{text}");
    // From another machine's lease: refused, and the code stays good for its machine.
    let (st, text) = claim(from("127.0.0.2"), code.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("not for 52:54:00:b0:00:01"), "{text}");
    // The machine itself, once: its credential, which the metadata API takes.
    let (st, token) = claim(from("127.0.0.3"), code.clone()).await;
    assert_eq!(st, StatusCode::OK, "{token}");
    assert!(token.starts_with("boot_"), "{token}");
    let meta = from("127.0.0.3")
        .get(format!("{base}/metadata/v1/meta"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(meta.status(), StatusCode::OK);
    // Twice: refused (a code read off a console is worth nothing once the machine used it).
    let (st, text) = claim(from("127.0.0.3"), code.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("good once"), "{text}");
    let (_, evs) = app
        .admin(
            Method::GET,
            &format!("/api/v1/machines/{enlisted}/events"),
            None,
        )
        .await;
    let types: Vec<&str> = evs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert!(types.contains(&"boot_claimed"), "{evs}");
    assert_eq!(
        types.iter().filter(|t| **t == "boot_claim_refused").count(),
        2,
        "{evs}"
    );
    // The metadata proxy forwards metadata paths only: no climbing out to the rest of the API,
    // even with an admin's token.
    for path in [
        "/metadata/v1/../../../api/v1/machines",
        "/metadata/v1/%2e%2e/%2e%2e/%2e%2e/api/v1/machines",
    ] {
        let out = tokio::process::Command::new("curl")
            .args([
                "-s",
                "--path-as-is",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                &format!("Authorization: Bearer {}", app.admin_token),
                &format!("{base}{path}"),
            ])
            .output()
            .await
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(code == "400" || code == "404", "{path}: {code}");
    }
    // The bootloader over HTTP and over TFTP.
    let got = http
        .get(format!("{base}/boot/undionly.kpxe"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), loader.as_slice());
    let out = rack_dir.path().join("tftp-undionly");
    let r = tokio::process::Command::new("curl")
        .args([
            "-sS",
            &format!("tftp://127.0.0.1:{tp}/undionly.kpxe"),
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), loader);

    // The boot trace reaches the region.
    wait_until("the ipxe_script event", || async {
        let (_, v) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}/events"), None)
            .await;
        v.as_array()
            .is_some_and(|a| a.iter().any(|e| e["event_type"] == "ipxe_script"))
    })
    .await;
    let (_, racks) = app.admin(Method::GET, "/api/v1/racks", None).await;
    assert_eq!(racks[0]["name"], "rack-boot");

    // Resume and verification, directly: a correct prefix is completed; a corrupt one is discarded.
    let client = rack::region::RegionClient::new(&rack::RackConfig::new(
        &app.base,
        &secret,
        rack_dir.path().join("c2"),
    ))
    .unwrap();
    std::fs::create_dir_all(rack_dir.path().join("c2")).unwrap();
    let dir = rack_dir.path().join("c2");
    let (_, snap) = app.admin(Method::GET, "/api/v1/boot-resources", None).await;
    let vml = snap
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |f| (r.clone(), f.clone()))
        })
        .find(|(_, f)| f["filename"] == "vmlinuz")
        .unwrap();
    let sf = region_api_types::SnapshotFile {
        resource_id: vml.0["id"].as_str().unwrap().into(),
        os: "debian".into(),
        release: "bookworm".into(),
        arch: "amd64/generic".into(),
        kind: "ephemeral".into(),
        filename: "vmlinuz".into(),
        sha256: vml.1["sha256"].as_str().unwrap().into(),
        size: 2_000_000,
    };
    std::fs::write(
        dir.join(format!("{}.partial", sf.sha256)),
        &kernel[..777_777],
    )
    .unwrap();
    assert!(rack::images::ensure(&client, &sf, &dir).await.unwrap());
    assert_eq!(std::fs::read(dir.join(&sf.sha256)).unwrap(), kernel);
    std::fs::remove_file(dir.join(&sf.sha256)).unwrap();
    std::fs::write(dir.join(format!("{}.partial", sf.sha256)), vec![0u8; 5000]).unwrap();
    assert!(
        rack::images::ensure(&client, &sf, &dir).await.is_err(),
        "a corrupt partial must not pass verification"
    );
    assert!(!dir.join(&sf.sha256).exists());
    assert!(
        rack::images::ensure(&client, &sf, &dir).await.unwrap(),
        "the next try fetches it whole"
    );
    assert_eq!(std::fs::read(dir.join(&sf.sha256)).unwrap(), kernel);

    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), rack_task).await;
    app.stop().await;
});
