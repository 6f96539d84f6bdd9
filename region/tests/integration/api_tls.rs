//! HTTPS on the API port, checked with real clients: curl and openssl, the `kiln` CLI, and a
//! rack's region client.

use std::path::Path;
use std::process::Command;

use region::{Config, Region};

use crate::util::{Backend, TestDb};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// curl's exit code and body for `url`, trusting `ca` (or the system roots).
fn curl(url: &str, ca: Option<&Path>) -> (i32, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"]);
    if let Some(ca) = ca {
        c.arg("--cacert").arg(ca);
    }
    let out = c.arg(url).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn openssl_fingerprint(pem: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let hexed = text.trim().rsplit('=').next().unwrap().replace(':', "");
    format!("sha256:{}", hexed.to_lowercase())
}

fn tls_config(db: &TestDb, mode: &str) -> Config {
    let mut cfg = db.config();
    cfg.tls.mode = mode.into();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_region_serves_https_from_its_own_ca_that_clients_verify() {
    let db = TestDb::new(Backend::Sqlite);
    let region = Region::start(tls_config(&db, "on")).await.unwrap();
    assert!(
        region.url.starts_with("https://127.0.0.1:"),
        "{}",
        region.url
    );
    let ca = region::tls::ca_file(&db.data_dir());
    let doc = format!("{}/api/v1/openapi.json", region.url);

    // curl verifies the chain against the region's CA and the name 127.0.0.1.
    let (code, out) = curl(&doc, Some(&ca));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with("\n200") && out.contains("\"openapi\""),
        "{out}"
    );
    // Without the CA it refuses (60: the peer's certificate cannot be authenticated).
    let (code, out) = curl(&doc, None);
    assert_eq!(code, 60, "{out}");
    // Plain HTTP to the HTTPS port gets nothing from the API.
    let (_, out) = curl(&doc.replace("https://", "http://"), None);
    assert!(!out.contains("\"openapi\""), "{out}");
    // The fingerprint racks will pin is the one openssl computes.
    let pem = std::fs::read_to_string(&ca).unwrap();
    let fp = region::tls::fingerprint(&pem).unwrap();
    assert_eq!(fp, openssl_fingerprint(&ca));

    // The CLI on the region host trusts the CA in the data directory; elsewhere, KILN_CA.
    let token = region
        .state
        .pool
        .run(|c| {
            let now = region::db::now_ms();
            region::domain::users::create_user(c, None, "admin", "admin-password", true, now)?;
            let a = region::db::users::by_username(c, "admin")?.unwrap();
            Ok(region::domain::users::create_token(
                c,
                &a,
                "t",
                &Default::default(),
                region_api_types::TokenScope::Admin,
                now,
            )?
            .secret)
        })
        .await
        .unwrap();
    let cli = |envs: &[(&str, &str)]| {
        let mut c = Command::new(KILN);
        c.args(["machines", "list", "--json"])
            .env_remove("KILN_CA")
            .env("KILN_URL", &region.url)
            .env("KILN_TOKEN", &token);
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let dd = db.data_dir().display().to_string();
    let out = cli(&[("KILN_DATA_DIR", &dd)]);
    assert!(out.status.success(), "{out:?}");
    let out = cli(&[
        ("KILN_DATA_DIR", "/nonexistent"),
        ("KILN_CA", ca.to_str().unwrap()),
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = cli(&[("KILN_DATA_DIR", "/nonexistent")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not trust") && err.contains("KILN_CA"),
        "{err}"
    );

    // A rack given the region's CA registers; given another CA, it is refused and says why.
    let secret = region
        .state
        .pool
        .run(region::api::rack_api::rack_secret)
        .await
        .unwrap();
    let rack_dir = tempfile::tempdir().unwrap();
    let mut rc = rack::RackConfig::new(&region.url, &secret, rack_dir.path().to_path_buf());
    rc.name = "rack-tls".into();
    rc.region_ca = Some(pem.clone());
    let client = rack::region::RegionClient::new(&rc).unwrap();
    client.register().await.unwrap();
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _) = region::tls::ensure_ca(other.path()).unwrap();
    rc.region_ca = Some(other_ca);
    let e = rack::region::RegionClient::new(&rc)
        .unwrap()
        .register()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );
    // And the public roots alone do not make a region's own CA trusted.
    rc.region_ca = None;
    assert!(rack::region::RegionClient::new(&rc)
        .unwrap()
        .register()
        .await
        .is_err());

    // An enrolment token carries the CA's fingerprint: a rack given only the token pins it.
    let cfg = region.state.cfg.clone();
    let pin = region::tls::enrolment_pin(&cfg).unwrap();
    assert_eq!(
        pin.as_deref().map(|p| format!("sha256:{p}")),
        Some(fp.clone())
    );
    let mk = |pin: Option<String>| {
        let pool = region.state.pool.clone();
        async move {
            pool.run(move |c| {
                region::domain::racks::create_token(
                    c,
                    "test",
                    600,
                    true,
                    &[],
                    pin.clone(),
                    region::db::now_ms(),
                )
            })
            .await
            .unwrap()
            .token
        }
    };
    let mut rc = rack::RackConfig::new(&region.url, "", rack_dir.path().join("pinned"));
    std::fs::create_dir_all(&rc.data_dir).unwrap();
    rc.name = "rack-pinned".into();
    rc.enrolment_token = Some(mk(pin.clone()).await);
    rack::region::RegionClient::new(&rc)
        .unwrap()
        .register()
        .await
        .unwrap();
    // A token naming another CA: the region's certificate is refused before anything is sent.
    let other_fp = region::tls::fingerprint(
        &std::fs::read_to_string(region::tls::ca_file(other.path())).unwrap(),
    )
    .unwrap();
    rc.name = "rack-mispinned".into();
    rc.enrolment_token = Some(mk(Some(other_fp.trim_start_matches("sha256:").to_string())).await);
    let e = rack::region::RegionClient::new(&rc)
        .unwrap()
        .register()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not hold the CA"), "{e}");
    region.stop().await.unwrap();

    // A restart keeps the CA: what racks and clients trust stays right.
    let region = Region::start(tls_config(&db, "on")).await.unwrap();
    assert_eq!(std::fs::read_to_string(&ca).unwrap(), pem);
    let (code, out) = curl(&format!("{}/api/v1/openapi.json", region.url), Some(&ca));
    assert_eq!(code, 0, "{out}");
    region.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_own_certificate_is_served_and_loopback_stays_plain_unless_asked() {
    let db = TestDb::new(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-days",
            "2",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let mut cfg = db.config();
    cfg.tls.cert_file = Some(cert.clone());
    cfg.tls.key_file = Some(key.clone());
    let region = Region::start(cfg).await.unwrap();
    let doc = format!("{}/api/v1/openapi.json", region.url);
    assert!(doc.starts_with("https://"), "{doc}");
    let (code, out) = curl(&doc, Some(&cert));
    assert_eq!(code, 0, "{out}");
    assert!(
        !db.data_dir().join("tls").exists(),
        "no CA is made when the operator brings a certificate"
    );
    region.stop().await.unwrap();

    // A key that is not the certificate's: the region does not start, and says why.
    let other = dir.path().join("other.pem");
    Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&other)
        .output()
        .unwrap();
    let mut cfg = db.config();
    cfg.tls.cert_file = Some(cert);
    cfg.tls.key_file = Some(other);
    let e = Region::start(cfg).await.err().unwrap().to_string();
    assert!(e.contains("do not go together"), "{e}");

    // auto on loopback: plain HTTP (tests, the all-in-one demo behind its forward).
    let region = Region::start(db.config()).await.unwrap();
    assert!(region.url.starts_with("http://"), "{}", region.url);
    let (code, out) = curl(&format!("{}/api/v1/openapi.json", region.url), None);
    assert_eq!(code, 0, "{out}");
    region.stop().await.unwrap();
}
