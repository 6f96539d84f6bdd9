//! Machines over HTTP: lifecycle, roles, validation, filters, concurrency, deadlines.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::util::{Backend, TestApp};

both!(lifecycle_legal_and_illegal, |b: Backend| async move {
    let app = TestApp::start(b).await;
    let admin = app.admin_token.clone();
    let id = app.machine("node1", "52:54:00:aa:00:01").await;

    // Illegal: deploy a New machine → 409 with a sentence saying why and what is allowed.
    let (s, v) = app.act(&admin, &id, "deploy").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"], "invalid_transition");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("it is New")
            && msg.contains("Ready or Allocated")
            && msg.contains("Commission it first"),
        "{msg}"
    );

    // Legal path (deploy needs an image; in memory it needs no commissioned disk).
    app.upload_boot_files("os", &[("root.squashfs", b"hsqs".to_vec())])
        .await;
    for (action, status) in [
        ("commission", "commissioning"),
        ("abort", "new"),
        ("mark-broken", "broken"),
        ("mark-fixed", "ready"),
        ("allocate", "allocated"),
        ("deploy", "deploying"),
        ("abort", "allocated"),
        ("release", "ready"),
    ] {
        let (s, v) = if action == "deploy" {
            app.call(
                Method::POST,
                &format!("/api/v1/machines/{id}/deploy"),
                Some(&admin),
                Some(json!({"target": "memory"})),
            )
            .await
        } else {
            app.act(&admin, &id, action).await
        };
        assert_eq!(s, StatusCode::OK, "{action}: {v}");
        assert_eq!(v["status"], status, "{action}: {v}");
    }
    // In-progress statuses carry a deadline; others do not.
    let (_, v) = app.act(&admin, &id, "commission").await;
    assert!(v["status_deadline"].is_string(), "{v}");
    let (_, v) = app.act(&admin, &id, "abort").await;
    assert!(v["status_deadline"].is_null(), "{v}");

    // Delete while commissioning → 409; after abort → 204; then 404.
    app.act(&admin, &id, "commission").await;
    let (s, v) = app
        .admin(Method::DELETE, &format!("/api/v1/machines/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("Abort the operation first"));
    app.act(&admin, &id, "abort").await;
    let (s, _) = app
        .admin(Method::DELETE, &format!("/api/v1/machines/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = app
        .admin(Method::GET, &format!("/api/v1/machines/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "not_found");

    // Unknown action → 404 naming the real ones.
    let id = app.machine("node2", "52:54:00:aa:00:02").await;
    let (s, v) = app.act(&admin, &id, "explode").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["message"].as_str().unwrap().contains("mark-broken"));

    // Events record the history with who did it.
    let (s, v) = app
        .admin(Method::GET, "/api/v1/events?limit=500", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let evs = v.as_array().unwrap();
    assert!(evs
        .iter()
        .any(|e| e["event_type"] == "status_changed" && e["username"] == "admin"));
    app.stop().await;
});

both!(roles_and_visibility, |b: Backend| async move {
    let app = TestApp::start(b).await;
    let (admin, user) = (app.admin_token.clone(), app.user_token.clone());
    let id = app.machine("node1", "52:54:00:bb:00:01").await;
    app.act(&admin, &id, "mark-broken").await;
    app.act(&admin, &id, "mark-fixed").await;

    // Users may not commission, create, or delete.
    let (s, v) = app.act(&user, &id, "commission").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("only administrators"));
    let (s, _) = app
        .user(
            Method::POST,
            "/api/v1/machines",
            Some(json!({"hostname": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A user may allocate and deploy a free Ready machine; then it is theirs.
    app.upload_boot_files("os", &[("root.squashfs", b"hsqs".to_vec())])
        .await;
    let (s, v) = app
        .user(
            Method::POST,
            &format!("/api/v1/machines/{id}/deploy"),
            Some(json!({"target": "memory"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["owner"], "alice");
    assert_eq!(v["status"], "deploying");
    let (s, v) = app.act(&user, &id, "abort").await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // A machine the admin owns is invisible to the user.
    let id2 = app.machine("node2", "52:54:00:bb:00:02").await;
    app.act(&admin, &id2, "mark-broken").await;
    app.act(&admin, &id2, "mark-fixed").await;
    let (s, _) = app.act(&admin, &id2, "allocate").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .user(Method::GET, &format!("/api/v1/machines/{id2}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.act(&user, &id2, "release").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = app.user(Method::GET, "/api/v1/machines", None).await;
    let ids: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["system_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);
    let (_, v) = app
        .admin(Method::GET, "/api/v1/machines?owner=admin", None)
        .await;
    assert_eq!(v["total"], 1);
    app.stop().await;
});

both!(validation_errors, |b: Backend| async move {
    let app = TestApp::start(b).await;
    app.machine("taken", "52:54:00:cc:00:01").await;
    let cases = [
        (
            json!({"hostname": "n1", "boot_mac": "52:54:00:zz:00:01"}),
            400,
            "validation_failed",
            Some("boot_mac"),
        ),
        (
            json!({"hostname": "bad_name!"}),
            400,
            "validation_failed",
            Some("hostname"),
        ),
        (
            json!({"hostname": "n2", "boot_mac": "52:54:00:CC:00:01"}),
            409,
            "duplicate_mac",
            Some("boot_mac"),
        ),
        (
            json!({"hostname": "TAKEN"}),
            409,
            "duplicate_hostname",
            Some("hostname"),
        ),
        (
            json!({"hostname": "n3", "architecture": "vax"}),
            400,
            "validation_failed",
            Some("architecture"),
        ),
        (
            json!({"hostname": "n3", "power_type": "telnet"}),
            400,
            "validation_failed",
            Some("power_type"),
        ),
        (
            json!({"hostname": "n3", "cpu_count": -1}),
            400,
            "validation_failed",
            Some("cpu_count"),
        ),
        (
            json!({"hostname": "n3", "interfaces": [{"name": "eth0", "mac": "52:54:00:cc:00:09"}, {"name": "eth0", "mac": "52:54:00:cc:00:0a"}]}),
            400,
            "validation_failed",
            Some("interfaces[1].name"),
        ),
        (
            json!({"hostname": "n3", "boot_mac": "52:54:00:cc:00:0b", "interfaces": [{"name": "eth0", "mac": "52:54:00:cc:00:0c"}]}),
            400,
            "validation_failed",
            Some("boot_mac"),
        ),
        (json!({"hostnme": "typo"}), 400, "bad_request", None),
        (json!({"hostname": 7}), 400, "bad_request", None),
    ];
    for (body, status, code, field) in cases {
        let (s, v) = app
            .admin(Method::POST, "/api/v1/machines", Some(body.clone()))
            .await;
        assert_eq!(s.as_u16(), status, "{body} → {v}");
        assert_eq!(v["error"], code, "{body} → {v}");
        assert_eq!(v["field"].as_str(), field, "{body} → {v}");
        assert!(v["message"].as_str().unwrap().len() > 10, "{v}");
    }
    let (_, v) = app
        .admin(
            Method::POST,
            "/api/v1/machines",
            Some(json!({"hostnme": "typo"})),
        )
        .await;
    assert!(v["message"].as_str().unwrap().contains("hostnme"), "{v}");

    // Oversized body → 413.
    let big = "x".repeat(2 << 20);
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/machines",
            Some(json!({"description": big})),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // Bad filters and paging.
    let (s, v) = app
        .admin(Method::GET, "/api/v1/machines?status=sleeping", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "status");
    let (s, _) = app
        .admin(Method::GET, "/api/v1/machines?limit=0", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app
        .admin(Method::GET, "/api/v1/machines?colour=red", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Nothing half-written: only the first machine exists, with its one interface.
    let (_, v) = app.admin(Method::GET, "/api/v1/machines", None).await;
    assert_eq!(v["total"], 1, "{v}");
    app.stop().await;
});

both!(list_filters_and_paging, |b: Backend| async move {
    let app = TestApp::start(b).await;
    for i in 0..25 {
        let tags = if i % 5 == 0 {
            json!(["gpu"])
        } else {
            json!([])
        };
        let (s, v) = app
            .admin(Method::POST, "/api/v1/machines", Some(json!({
                "hostname": format!("n{i:02}"),
                "interfaces": [{"name": "eth0", "mac": format!("52:54:00:dd:00:{i:02x}")}, {"name": "eth1", "mac": format!("52:54:00:dd:01:{i:02x}")}],
                "tags": tags, "zone": if i < 10 { "rack-a" } else { "rack-b" },
                "cpu_count": 8, "memory_mib": 16384, "storage_bytes": 1_000_000_000_i64,
            })))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["boot_mac"], format!("52:54:00:dd:00:{i:02x}"));
        assert_eq!(v["interfaces"].as_array().unwrap().len(), 2);
    }
    let (_, v) = app
        .admin(Method::GET, "/api/v1/machines?limit=10&offset=20", None)
        .await;
    assert_eq!(v["total"], 25);
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
    let (_, v) = app
        .admin(Method::GET, "/api/v1/machines?tag=gpu", None)
        .await;
    assert_eq!(v["total"], 5);
    let (_, v) = app
        .admin(Method::GET, "/api/v1/machines?zone=rack-a", None)
        .await;
    assert_eq!(v["total"], 10);
    let (_, v) = app
        .admin(Method::GET, "/api/v1/machines?mac=52-54-00-DD-01-07", None)
        .await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["hostname"], "n07");
    let m = &v["items"][0];
    for f in [
        "system_id",
        "hostname",
        "status",
        "architecture",
        "boot_mac",
        "power_type",
        "cpu_count",
        "memory_mib",
        "storage_bytes",
        "interfaces",
        "owner",
        "tags",
    ] {
        assert!(m.get(f).is_some(), "machine JSON lacks {f}: {m}");
    }
    let id = m["system_id"].as_str().unwrap().to_string();
    app.act(&app.admin_token.clone(), &id, "commission").await;
    let (_, v) = app
        .admin(
            Method::GET,
            "/api/v1/machines?status=commissioning,ready",
            None,
        )
        .await;
    assert_eq!(v["total"], 1);
    let (_, v) = app
        .admin(Method::GET, "/api/v1/machines?hostname=n07", None)
        .await;
    assert_eq!(v["items"][0]["status"], "commissioning");

    // Patch: fields change, secrets are write-only, tags replace.
    let (s, v) = app.admin(Method::PATCH, &format!("/api/v1/machines/{id}"), Some(json!({
        "hostname": "gpu07", "tags": ["x", "y", "x"], "power_type": "ipmi",
        "power_parameters": {"power_address": "10.0.0.5", "power_user": "admin", "power_pass": "s3cret"}
    }))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["hostname"], "gpu07");
    assert_eq!(v["tags"], json!(["x", "y"]));
    assert_eq!(v["power_parameters"]["power_address"], "10.0.0.5");
    assert!(v["power_parameters"].get("power_pass").is_none(), "{v}");
    assert!(!v.to_string().contains("s3cret"));
    let (s, v) = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/machines/{id}"),
            Some(json!({"hostname": "n08"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // Metrics count machines by status.
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("kiln_machines{status=\"new\"} 24"), "{text}");
    app.stop().await;
});

both!(concurrent_actions_apply_once, |b: Backend| async move {
    let app = TestApp::start(b).await;
    let admin = app.admin_token.clone();
    let id = app.machine("race", "52:54:00:ee:00:01").await;
    app.act(&admin, &id, "mark-broken").await;
    app.act(&admin, &id, "mark-fixed").await;
    // Twelve allocate requests at once: exactly one wins, the rest get 409.
    let futs: Vec<_> = (0..12).map(|_| app.act(&admin, &id, "allocate")).collect();
    let results = futures_util::future::join_all(futs).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let conflict = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, conflict), (1, 11), "{results:?}");
    let (_, v) = app
        .admin(
            Method::GET,
            &format!("/api/v1/machines/{id}/events?limit=100"),
            None,
        )
        .await;
    let allocs = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["description"].as_str().unwrap().starts_with("Allocated"))
        .count();
    assert_eq!(allocs, 1);
    app.stop().await;
});

both!(deadline_moves_to_failed_status, |b: Backend| async move {
    let app = TestApp::start_with(b, |c| c.lifecycle.node_timeout_secs = 1).await;
    let admin = app.admin_token.clone();
    let id = app.machine("slow", "52:54:00:ff:00:01").await;
    let (s, _) = app.act(&admin, &id, "commission").await;
    assert_eq!(s, StatusCode::OK);
    let mut status = String::new();
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let (_, v) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}"), None)
            .await;
        status = v["status"].as_str().unwrap().to_string();
        if status == "failed_commissioning" {
            break;
        }
    }
    assert_eq!(status, "failed_commissioning");
    let (_, v) = app
        .admin(Method::GET, &format!("/api/v1/machines/{id}/events"), None)
        .await;
    let e = &v[0];
    assert_eq!(e["event_type"], "deadline_expired", "{v}");
    assert_eq!(e["level"], "error");
    // From the failed status the operator can commission again.
    let (s, _) = app.act(&admin, &id, "commission").await;
    assert_eq!(s, StatusCode::OK);
    app.stop().await;
});

both!(static_addresses_are_reservations, |b: Backend| async move {
    let app = TestApp::start(b).await;
    app.admin(Method::POST, "/api/v1/subnets", Some(json!({"cidr": "10.20.0.0/24", "gateway": "10.20.0.1", "dynamic_ranges": [{"start": "10.20.0.100", "end": "10.20.0.199"}]}))).await;
    let a = app.machine("sa", "52:54:00:5a:00:01").await;
    let bm = app.machine("sb", "52:54:00:5a:00:02").await;
    let put = |id: String, mac: &'static str, ip: serde_json::Value| {
        let app = &app;
        async move {
            app.admin(
                Method::PUT,
                &format!("/api/v1/machines/{id}/interfaces/{mac}"),
                Some(json!({"ip": ip})),
            )
            .await
        }
    };
    let (s, v) = put(a.clone(), "52:54:00:5a:00:01", json!("10.20.0.50")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["interfaces"][0]["ip"], "10.20.0.50");
    assert!(v["interfaces"][0]["subnet_id"].is_string());
    for (ip, status) in [
        ("10.20.0.150", 400),
        ("10.20.0.1", 400),
        ("10.99.0.5", 400),
        ("nonsense", 400),
        ("10.20.0.50", 409),
    ] {
        let (s, v) = put(bm.clone(), "52:54:00:5a:00:02", json!(ip)).await;
        assert_eq!(s.as_u16(), status, "{ip}: {v}");
        assert_eq!(v["field"], "ip", "{ip}: {v}");
    }
    let (s, _) = put(bm.clone(), "52:54:00:5a:00:99", json!("10.20.0.51")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a MAC that is not this machine's");
    let (s, _) = app
        .user(
            Method::PUT,
            &format!("/api/v1/machines/{a}/interfaces/52:54:00:5a:00:01"),
            Some(json!({"ip": null})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = put(a.clone(), "52:54:00:5a:00:01", json!(null)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["interfaces"][0]["ip"].is_null());
    let (_, e) = app
        .admin(Method::GET, &format!("/api/v1/machines/{a}/events"), None)
        .await;
    assert_eq!(e[0]["event_type"], "static_ip");
    app.stop().await;
});
