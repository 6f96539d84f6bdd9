//! Power over the API: parameters checked against the drivers' schemas, secrets sealed and never
//! returned, manual machines, BMC auto-configuration reports, and power jobs run by a real rack
//! against a real BMC (`ipmi_sim`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::util::{Backend, TestApp};

both!(
    power_parameters_follow_the_schema_and_secrets_are_sealed,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        let create = |body: Value| {
            let app = &app;
            async move {
                app.admin(Method::POST, "/api/v1/machines", Some(body))
                    .await
            }
        };
        let (s, v) = create(json!({"hostname": "p1", "power_type": "ipmi", "power_parameters": {"power_user": "admin"}})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "power_parameters.power_address", "{v}");
        let (s, v) = create(json!({"hostname": "p1", "power_type": "ipmi",
        "power_parameters": {"power_address": "10.0.0.5", "power_port": "six"}}))
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["field"], "power_parameters.power_port", "{v}");
        let (s, v) = create(json!({"hostname": "p1", "power_type": "redfish",
        "power_parameters": {"power_address": "bmc", "power_id": "x"}}))
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("not a parameter of power type redfish"),
            "{v}"
        );
        let (s, v) = create(json!({"hostname": "p1", "power_type": "telnet"})).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("power_type")),
            "{v}"
        );

        let (s, m) = create(
            json!({"hostname": "p1", "power_type": "ipmi", "power_parameters":
        {"power_address": "10.0.0.5", "power_user": "admin", "power_pass": "TopSecret1"}}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
        let id = m["system_id"].as_str().unwrap().to_string();
        assert!(!m.to_string().contains("TopSecret1"));
        assert_eq!(
            m["power_parameters"],
            json!({"power_address": "10.0.0.5", "power_user": "admin"})
        );
        assert_eq!(m["power_state"], "unknown");
        // At rest: not in the clear anywhere in the row.
        let row = app_row(&app, &id).await;
        assert!(
            !row.0.contains("TopSecret1") && !row.1.contains("TopSecret1"),
            "{row:?}"
        );
        assert!(row.1.starts_with("kiln1:"), "{row:?}");

        // Same type: parameters merge, the secret stays; a new type starts afresh and is checked.
        let (s, m) = app
            .admin(
                Method::PATCH,
                &format!("/api/v1/machines/{id}"),
                Some(json!({"power_parameters": {"power_port": 9623}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{m}");
        assert_eq!(m["power_parameters"]["power_port"], 9623);
        assert_eq!(m["power_parameters"]["power_address"], "10.0.0.5");
        assert!(
            app_row(&app, &id).await.1.starts_with("kiln1:"),
            "secret kept"
        );
        let (s, v) = app
            .admin(
                Method::PATCH,
                &format!("/api/v1/machines/{id}"),
                Some(json!({"power_type": "virsh"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "power_parameters.power_address");

        let (s, types) = app.user(Method::GET, "/api/v1/power-types", None).await;
        assert_eq!(s, StatusCode::OK);
        let ipmi = types
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "ipmi")
            .unwrap();
        let pass = ipmi["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "power_pass")
            .unwrap();
        assert_eq!(pass["secret"], true);

        // Manual power: an event asks the operator; nothing is queued.
        let (s, m) = create(json!({"hostname": "man1"})).await;
        assert_eq!(s, StatusCode::CREATED);
        let mid = m["system_id"].as_str().unwrap().to_string();
        let (s, st) = app
            .admin(
                Method::POST,
                &format!("/api/v1/machines/{mid}/power-on"),
                Some(json!({"boot_device": "pxe"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{st}");
        assert_eq!(st["power_state"], "unknown");
        assert!(st["job"].is_null());
        let (_, evs) = app
            .admin(Method::GET, &format!("/api/v1/machines/{mid}/events"), None)
            .await;
        assert!(
            evs.to_string().contains(
                "Power type manual: power on machine man1 by hand, booting from the network"
            ),
            "{evs}"
        );
        // Users may look but not switch machines they do not own.
        let (s, _) = app
            .user(
                Method::POST,
                &format!("/api/v1/machines/{mid}/power-off"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        // Commissioning's BMC report: the machine becomes ipmi with the new credentials, sealed; with
        // no LAN address reported, the known one is kept.
        let rack = crate::api_commissioning::rack_token(&app).await;
        let (_, a) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:d0:00:01"})),
            )
            .await;
        let (bid, tok) = (
            a["system_id"].as_str().unwrap().to_string(),
            app.claim(&rack, "52:54:00:d0:00:01", &a).await,
        );
        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/metadata/bmc",
                Some(&tok),
                Some(
                    json!({"address": "10.9.0.7", "user": "kiln", "password": "Abcdef0123456789"}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let (_, m) = app
            .admin(Method::GET, &format!("/api/v1/machines/{bid}"), None)
            .await;
        assert_eq!(m["power_type"], "ipmi");
        assert_eq!(
            m["power_parameters"],
            json!({"power_address": "10.9.0.7", "power_user": "kiln"})
        );
        assert!(!app_row(&app, &bid).await.1.contains("Abcdef"));
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/metadata/bmc",
                Some(&tok),
                Some(json!({"address": "0.0.0.0", "user": "kiln", "password": "Other0123456789"})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, m) = app
            .admin(Method::GET, &format!("/api/v1/machines/{bid}"), None)
            .await;
        assert_eq!(
            m["power_parameters"]["power_address"], "10.9.0.7",
            "kept: {m}"
        );
        // Skipped per machine.
        app.admin(
            Method::PATCH,
            &format!("/api/v1/machines/{bid}"),
            Some(json!({"skip_bmc_config": true})),
        )
        .await;
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/metadata/bmc",
                Some(&tok),
                Some(json!({"address": "10.9.0.8", "user": "kiln", "password": "x"})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (_, me) = app
            .call(Method::GET, "/api/v1/metadata/meta", Some(&tok), None)
            .await;
        assert_eq!(
            (me["bmc_config"].as_bool(), me["power_off_by"].as_str()),
            (Some(false), Some("kiln"))
        );
        app.stop().await;
    }
);

async fn app_row(app: &TestApp, id: &str) -> (String, String) {
    let id = id.to_string();
    app.region
        .as_ref()
        .unwrap()
        .state
        .pool
        .run(move |c| {
            let r = region::db::machines::get_row(c, &id)?.unwrap();
            Ok((r.power_parameters, r.power_secrets))
        })
        .await
        .unwrap()
}

fn peers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers")
}

fn free_udp_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        if p < 65000 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A rack (DHCP off, HTTP and TFTP on free loopback ports) registered with `app`.
async fn start_rack(
    app: &TestApp,
    name: &str,
    power_concurrency: Option<usize>,
) -> (
    tempfile::TempDir,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<rack::Result<()>>,
) {
    let secret = app.rack_secret().await;
    let rack_dir = tempfile::tempdir().unwrap();
    let mut cfg = rack::RackConfig::new(&app.base, &secret, rack_dir.path().to_path_buf());
    cfg.name = name.into();
    cfg.dhcp_enabled = false;
    if let Some(n) = power_concurrency {
        cfg.power_concurrency = n;
    }
    cfg.http_bind = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    cfg.tftp_bind = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(rack::run(cfg, cancel.clone()));
    (rack_dir, cancel, task)
}

struct Bmc(tempfile::TempDir);

impl Drop for Bmc {
    fn drop(&mut self) {
        let _ = Command::new(peers().join("ipmi/stop.sh"))
            .arg(self.0.path())
            .output();
    }
}

both!(
    power_jobs_run_on_a_rack_against_ipmi_sim,
    |b: Backend| async move {
        let port = free_udp_port();
        let bmc = Bmc(tempfile::tempdir().unwrap());
        let out = Command::new(peers().join("ipmi/start.sh"))
            .arg(bmc.0.path())
            .arg(port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ipmi_sim: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let chassis_log = bmc.0.path().join("chassis.log");

        let app = TestApp::start(b).await;
        let (_rack_dir, cancel, rack_task) = start_rack(&app, "rack-power", None).await;

        let (s, m) = app.admin(Method::POST, "/api/v1/machines", Some(json!({"hostname": "bmc1",
        "boot_mac": "52:54:00:e0:00:01", "power_type": "ipmi", "power_parameters": {
        "power_address": "127.0.0.1", "power_port": port, "power_user": "admin", "power_pass": "secret"}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
        let id = m["system_id"].as_str().unwrap().to_string();

        let (s, st) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}/power"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{st}");
        assert_eq!(st["power_state"], "off");
        assert_eq!(st["job"]["rack"], "rack-power");
        let (s, st) = app
            .admin(
                Method::POST,
                &format!("/api/v1/machines/{id}/power-on"),
                Some(json!({"boot_device": "pxe"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{st}");
        assert_eq!(st["power_state"], "on");
        assert_eq!(st["job"]["status"], "done");
        let log = std::fs::read_to_string(&chassis_log).unwrap();
        assert!(
            log.contains("set boot pxe") && log.contains("set power 1"),
            "{log}"
        );
        let (s, st) = app
            .admin(
                Method::POST,
                &format!("/api/v1/machines/{id}/power-off"),
                None,
            )
            .await;
        assert_eq!(
            (s, st["power_state"].as_str()),
            (StatusCode::OK, Some("off")),
            "{st}"
        );
        let (_, m) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}"), None)
            .await;
        assert_eq!(m["power_state"], "off");
        assert!(m["power_state_checked_at"].is_string());

        // Commissioning sets PXE and powers on through the BMC; abort powers off.
        std::fs::write(&chassis_log, "").unwrap();
        let (s, v) = app.act(&app.admin_token.clone(), &id, "commission").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        wait_for(|| {
            std::fs::read_to_string(&chassis_log)
                .unwrap()
                .contains("set power 1")
        })
        .await;
        let log = std::fs::read_to_string(&chassis_log).unwrap();
        assert!(
            log.find("set boot pxe").unwrap() < log.find("set power 1").unwrap(),
            "{log}"
        );
        let (s, v) = app.act(&app.admin_token.clone(), &id, "abort").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        wait_for(|| {
            std::fs::read_to_string(&chassis_log)
                .unwrap()
                .contains("set power 0")
        })
        .await;

        // A wrong password: 502 with the BMC's answer in words, an error event.
        let (s, _) = app
            .admin(
                Method::PATCH,
                &format!("/api/v1/machines/{id}"),
                Some(json!({"power_parameters": {"power_pass": "wrong"}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, e) = app
            .admin(
                Method::POST,
                &format!("/api/v1/machines/{id}/power-on"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_GATEWAY, "{e}");
        assert_eq!(e["error"], "power_failed");
        assert!(
            e["message"].as_str().unwrap().contains(&format!(
                "wrong password for user admin at 127.0.0.1:{port}"
            )),
            "{e}"
        );
        let (_, evs) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}/events"), None)
            .await;
        assert!(
            evs.to_string().contains("Power on failed: wrong password"),
            "{evs}"
        );
        assert!(!evs.to_string().contains("secret"), "no password in events");

        // A driver missing its tool (libvirt's transport command): fatal, one try.
        let (s, v) = app.admin(Method::PATCH, &format!("/api/v1/machines/{id}"), Some(json!({"power_type": "virsh",
        "power_parameters": {"power_address": "qemu+ext:///system?command=/nonexistent/kiln-tool", "power_id": "vm1"}}))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let t0 = std::time::Instant::now();
        let (s, e) = app
            .admin(
                Method::POST,
                &format!("/api/v1/machines/{id}/power-on"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_GATEWAY, "{e}");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no retries: {:?}",
            t0.elapsed()
        );
        let (_, evs) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}/events"), None)
            .await;
        assert!(evs.to_string().contains("Kiln will not retry"), "{evs}");

        cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), rack_task).await;
        app.stop().await;
    }
);

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..150 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out");
}

/// Webhook BMCs for many machines: `/m/{n}/on|off|status`, each call taking 100 ms; counts calls in
/// flight (overall and per machine).
#[derive(Default)]
struct Farm {
    on: std::collections::HashMap<String, bool>,
    in_flight: usize,
    max_in_flight: usize,
    per_machine: std::collections::HashMap<String, usize>,
    max_per_machine: usize,
}

async fn webhook_farm() -> (String, std::sync::Arc<std::sync::Mutex<Farm>>) {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let farm = std::sync::Arc::new(std::sync::Mutex::new(Farm::default()));
    let f2 = farm.clone();
    let srv = HttpServer::new(move || {
        let f = f2.clone();
        App::new().default_service(web::to(move |req: HttpRequest| {
            let f = f.clone();
            async move {
                let parts: Vec<String> = req.path().split('/').map(String::from).collect();
                let (m, op) = (
                    parts.get(2).cloned().unwrap_or_default(),
                    parts.get(3).cloned().unwrap_or_default(),
                );
                {
                    let mut s = f.lock().unwrap();
                    s.in_flight += 1;
                    s.max_in_flight = s.max_in_flight.max(s.in_flight);
                    let n = {
                        let e = s.per_machine.entry(m.clone()).or_default();
                        *e += 1;
                        *e
                    };
                    s.max_per_machine = s.max_per_machine.max(n);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                let mut s = f.lock().unwrap();
                s.in_flight -= 1;
                *s.per_machine.get_mut(&m).unwrap() -= 1;
                match op.as_str() {
                    "on" => {
                        s.on.insert(m, true);
                        HttpResponse::Ok().finish()
                    }
                    "off" => {
                        s.on.insert(m, false);
                        HttpResponse::Ok().finish()
                    }
                    _ => {
                        let v = if s.on.get(&m).copied().unwrap_or(false) {
                            "running"
                        } else {
                            "stopped"
                        };
                        HttpResponse::Ok().body(format!("{{\"status\": \"{v}\"}}"))
                    }
                }
            }
        }))
    })
    .workers(4)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = srv.addrs()[0];
    tokio::spawn(srv.run());
    (format!("http://{addr}"), farm)
}

/// 100 machines powered on at once all complete, within the rack's concurrency limit; jobs for one
/// BMC never overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_machines_powered_at_once_all_complete() {
    let (base, farm) = webhook_farm().await;
    let app = TestApp::start(Backend::Sqlite).await;
    let (_rack_dir, cancel, rack_task) = start_rack(&app, "rack-farm", Some(16)).await;

    let mut ids = Vec::new();
    for n in 0..100 {
        let (s, m) = app.admin(Method::POST, "/api/v1/machines", Some(json!({"hostname": format!("farm{n}"),
            "power_type": "webhook", "power_parameters": {
                "power_on_uri": format!("{base}/m/{n}/on"), "power_off_uri": format!("{base}/m/{n}/off"),
                "power_query_uri": format!("{base}/m/{n}/status")}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
        ids.push(m["system_id"].as_str().unwrap().to_string());
    }
    let t0 = std::time::Instant::now();
    let calls: Vec<_> = ids
        .iter()
        .map(|id| {
            let path = format!("/api/v1/machines/{id}/power-on");
            let app = &app;
            async move {
                app.admin(Method::POST, &path, Some(json!({"wait_secs": 120})))
                    .await
            }
        })
        .collect();
    let results = futures_util::future::join_all(calls).await;
    for (s, v) in &results {
        assert_eq!(*s, StatusCode::OK, "{v}");
        assert_eq!(v["power_state"], "on", "{v}");
    }
    let took = t0.elapsed();
    // The same machine asked five times at once: its calls never overlap.
    let id0 = ids[0].clone();
    let again: Vec<_> = (0..5)
        .map(|_| {
            let path = format!("/api/v1/machines/{id0}/power-cycle");
            let app = &app;
            async move {
                app.admin(Method::POST, &path, Some(json!({"wait_secs": 120})))
                    .await
            }
        })
        .collect();
    for (s, v) in futures_util::future::join_all(again).await {
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (on, max_in_flight, max_per_machine) = {
        let f = farm.lock().unwrap();
        (
            f.on.values().filter(|v| **v).count(),
            f.max_in_flight,
            f.max_per_machine,
        )
    };
    assert_eq!(on, 100);
    assert!(
        max_in_flight <= 16,
        "concurrency limit: {max_in_flight} calls in flight"
    );
    assert_eq!(max_per_machine, 1, "one job at a time per BMC");
    eprintln!("100 power-ons in {took:?} (max {max_in_flight} calls in flight)");
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), rack_task).await;
    app.stop().await;
}

both!(
    a_machines_jobs_go_to_racks_one_at_a_time_in_order,
    |b: Backend| async move {
        // Commissioning's power-off queued just before a deployment's power-cycle: if a rack ran
        // both at once the off could land last and kill the deployment.
        let app = TestApp::start(b).await;
        let (s, m) = app
            .admin(
                Method::POST,
                "/api/v1/machines",
                Some(json!({"hostname": "ord1", "power_type": "ipmi",
                    "power_parameters": {"power_address": "10.0.0.9", "power_user": "admin",
                        "power_pass": "x"}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
        let id = m["system_id"].as_str().unwrap().to_string();
        let (_, other) = app
            .admin(
                Method::POST,
                "/api/v1/machines",
                Some(json!({"hostname": "ord2", "power_type": "ipmi",
                    "power_parameters": {"power_address": "10.0.0.10"}})),
            )
            .await;
        let other = other["system_id"].as_str().unwrap().to_string();
        for (mid, action) in [
            (&id, "power-off"),
            (&id, "power-cycle"),
            (&other, "power-on"),
        ] {
            let (s, v) = app
                .admin(
                    Method::POST,
                    &format!("/api/v1/machines/{mid}/{action}"),
                    Some(json!({"wait_secs": 0})),
                )
                .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        }
        let rack = crate::api_commissioning::rack_token(&app).await;
        let take = || async {
            let (s, v) = app
                .call(
                    Method::GET,
                    "/api/v1/rack/power-jobs?wait=0",
                    Some(&rack),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v.as_array()
                .unwrap()
                .iter()
                .map(|j| {
                    (
                        j["system_id"].as_str().unwrap().to_string(),
                        j["action"].as_str().unwrap().to_string(),
                        j["id"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        };
        // The other machine's job goes out alongside; ord1's cycle waits behind its off.
        let first = take().await;
        let mut got: Vec<(&str, &str)> = first
            .iter()
            .map(|(m, a, _)| (m.as_str(), a.as_str()))
            .collect();
        got.sort();
        let mut want = vec![(id.as_str(), "off"), (other.as_str(), "on")];
        want.sort();
        assert_eq!(got, want);
        assert!(
            take().await.is_empty(),
            "ord1's cycle went out while its off ran"
        );
        let off = first.iter().find(|(m, _, _)| *m == id).unwrap().2.clone();
        let (s, v) = app
            .call(
                Method::POST,
                &format!("/api/v1/rack/power-jobs/{off}"),
                Some(&rack),
                Some(json!({"ok": true, "power_state": "off", "message": "power on → off"})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let next = take().await;
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!(
            (next[0].0.as_str(), next[0].1.as_str()),
            (id.as_str(), "cycle")
        );
        app.stop().await;
    }
);
