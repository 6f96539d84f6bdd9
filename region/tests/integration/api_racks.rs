//! The rack contract: register with the shared secret, heartbeat, long-polled snapshot, events, files.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::both;
use crate::util::{Backend, TestApp};

both!(
    rack_register_snapshot_events_files,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        let secret = app.rack_secret().await;
        let ifaces =
            json!([{"name": "br0", "mac": "52:54:00:01:00:01", "addresses": ["10.20.0.2/24"]}]);

        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/rack/register",
                None,
                Some(json!({"name": "rack1", "secret": "wrong", "interfaces": ifaces})),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
        assert!(v["message"].as_str().unwrap().contains("rack-secret"));
        let (s, v) = app.call(Method::POST, "/api/v1/rack/register", None, Some(json!({"name": "rack1", "secret": secret, "interfaces": ifaces, "version": "0.1.0"}))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let token = v["token"].as_str().unwrap().to_string();
        let rack_id = v["rack_id"].as_str().unwrap().to_string();
        // Users' tokens are not rack tokens, and the other way round.
        let (s, _) = app
            .admin(Method::GET, "/api/v1/rack/snapshot?wait=0", None)
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = app
            .call(Method::GET, "/api/v1/machines", Some(&token), None)
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);

        let (_, v) = app.admin(Method::GET, "/api/v1/racks", None).await;
        assert_eq!(v[0]["name"], "rack1");
        assert_eq!(v[0]["status"], "online");
        assert_eq!(v[0]["interfaces"][0]["addresses"][0], "10.20.0.2/24");
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/rack/heartbeat",
                Some(&token),
                Some(json!({"interfaces": ifaces})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);

        app.admin(Method::POST, "/api/v1/subnets", Some(json!({"cidr": "10.20.0.0/24", "dynamic_ranges": [{"start": "10.20.0.100", "end": "10.20.0.150"}]}))).await;
        let id = app.machine("m1", "52:54:00:02:00:01").await;
        let (s, snap) = app
            .call(
                Method::GET,
                "/api/v1/rack/snapshot?wait=0",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{snap}");
        assert_eq!(snap["subnets"][0]["cidr"], "10.20.0.0/24");
        assert_eq!(snap["machines"][0]["system_id"], id.as_str());
        assert_eq!(
            snap["machines"][0]["interfaces"][0]["mac"],
            "52:54:00:02:00:01"
        );
        let etag = snap["etag"].as_str().unwrap().to_string();

        // Long poll: unchanged → 304 after the wait; a change → 200 with a new etag.
        let t = std::time::Instant::now();
        let (s, _) = app
            .call(
                Method::GET,
                &format!("/api/v1/rack/snapshot?etag={etag}&wait=1"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_MODIFIED);
        assert!(t.elapsed() >= std::time::Duration::from_millis(900));
        let poll = {
            let http = app.http.clone();
            let url = app.url(&format!("/api/v1/rack/snapshot?etag={etag}&wait=20"));
            let token = token.clone();
            tokio::spawn(async move {
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json::<serde_json::Value>()
                    .await
                    .unwrap()
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        app.machine("m2", "52:54:00:02:00:02").await;
        let snap2 = poll.await.unwrap();
        assert_ne!(snap2["etag"], etag.as_str());
        assert_eq!(snap2["machines"].as_array().unwrap().len(), 2);

        // Events: a lease for a known MAC records its address; an unknown MAC gets a machine-less event.
        let evs = json!([
            {"mac": "52:54:00:02:00:01", "event_type": "dhcp_lease", "description": "DHCP ACK 10.20.0.100", "at": "2026-11-21T10:00:00Z", "ip": "10.20.0.100"},
            {"mac": "52:54:00:09:09:09", "event_type": "unknown_pxe", "description": "PXE request from an unknown machine", "at": "2026-11-21T10:00:01Z"}
        ]);
        let (s, v) = app
            .call(Method::POST, "/api/v1/rack/events", Some(&token), Some(evs))
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let (_, m) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}"), None)
            .await;
        assert_eq!(m["interfaces"][0]["ip"], "10.20.0.100");
        assert!(m["interfaces"][0]["subnet_id"].is_string());
        let (_, e) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}/events"), None)
            .await;
        assert_eq!(e[0]["event_type"], "dhcp_lease");
        assert!(e[0]["description"].as_str().unwrap().contains("rack rack1"));
        let (_, all) = app
            .admin(Method::GET, "/api/v1/events?limit=100", None)
            .await;
        assert!(all
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_type"] == "unknown_pxe" && e["system_id"].is_null()));
        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/rack/events",
                Some(&token),
                Some(json!([{"mac": "nope", "event_type": "x", "description": "", "at": "now"}])),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

        // Files: only known sha256s, with Range.
        let data = vec![42u8; 100_000];
        let sha = hex::encode(Sha256::digest(&data));
        app.upload_boot_files("ephemeral", &[("vmlinuz", data.clone())])
            .await;
        let resp = app
            .http
            .get(app.url(&format!("/api/v1/rack/files/{sha}")))
            .bearer_auth(&token)
            .header("Range", "bytes=50000-")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(resp.bytes().await.unwrap().len(), 50_000);
        let other = hex::encode(Sha256::digest(b"x"));
        let resp = app
            .http
            .get(app.url(&format!("/api/v1/rack/files/{other}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let (_, snap3) = app
            .call(
                Method::GET,
                "/api/v1/rack/snapshot?wait=0",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(snap3["files"][0]["sha256"], sha.as_str());

        // Registering again under the same name keeps the id and replaces the token.
        let (_, v) = app
            .call(
                Method::POST,
                "/api/v1/rack/register",
                None,
                Some(json!({"name": "rack1", "secret": secret, "interfaces": []})),
            )
            .await;
        assert_eq!(v["rack_id"], rack_id.as_str());
        let (s, _) = app
            .call(
                Method::GET,
                "/api/v1/rack/snapshot?wait=0",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "the old token is gone");
        app.stop().await;
    }
);
