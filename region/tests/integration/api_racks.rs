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

both!(
    snapshot_etag_moves_on_with_every_committed_change_whatever_the_clocks,
    |b: Backend| async move {
        use diesel::prelude::*;
        use region::db::schema::{interfaces, machines};
        let app = TestApp::start(b).await;
        let secret = app.rack_secret().await;
        let (_, v) = app
            .call(
                Method::POST,
                "/api/v1/rack/register",
                None,
                Some(json!({"name": "rack1", "secret": secret, "interfaces": []})),
            )
            .await;
        let token = v["token"].as_str().unwrap().to_string();
        let a = app.machine("m-a", "52:54:00:03:00:01").await;
        let b_id = app.machine("m-b", "52:54:00:03:00:02").await;
        let pool = app.region.as_ref().unwrap().state.pool.clone();
        let poll = |etag: String| {
            let app = &app;
            let token = token.clone();
            async move {
                let path = if etag.is_empty() {
                    "/api/v1/rack/snapshot?wait=0".to_string()
                } else {
                    format!("/api/v1/rack/snapshot?etag={etag}&wait=1")
                };
                app.call(Method::GET, &path, Some(&token), None).await
            }
        };
        let (_, s0) = poll(String::new()).await;
        let e0 = s0["etag"].as_str().unwrap().to_string();
        // Two transactions read the clock, the later one commits first: the rack sees its change.
        let later = region::db::now_ms() + 60_000;
        let aa = a.clone();
        write(&pool, move |c| {
            diesel::update(machines::table.find(&aa))
                .set((
                    machines::status.eq("deploying"),
                    machines::updated_at.eq(later),
                ))
                .execute(c)
        })
        .await;
        let (s, s1) = poll(e0).await;
        assert_eq!(s, StatusCode::OK, "{s1}");
        let e1 = s1["etag"].as_str().unwrap().to_string();
        // Then the earlier one commits, stamped before the newest time the rack has seen.
        let bb = b_id.clone();
        write(&pool, move |c| {
            diesel::update(machines::table.find(&bb))
                .set((
                    machines::status.eq("deploying"),
                    machines::updated_at.eq(later - 30_000),
                ))
                .execute(c)
        })
        .await;
        let (s, s2) = poll(e1).await;
        assert_eq!(s, StatusCode::OK, "the rack missed m-b's change: {s2}");
        let mb = s2["machines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["system_id"] == b_id.as_str())
            .unwrap()
            .clone();
        assert_eq!(mb["status"], "deploying", "{mb}");
        let e2 = s2["etag"].as_str().unwrap().to_string();
        // An interface's address changes without its machine being touched: racks serve it (DNS).
        write(&pool, move |c| {
            diesel::update(interfaces::table.filter(interfaces::mac.eq("52:54:00:03:00:02")))
                .set(interfaces::ip.eq(Some("10.20.0.77")))
                .execute(c)
        })
        .await;
        let (s, s3) = poll(e2).await;
        assert_eq!(s, StatusCode::OK, "the rack missed the new address: {s3}");
        assert!(s3.to_string().contains("10.20.0.77"), "{s3}");
        let e3 = s3["etag"].as_str().unwrap().to_string();
        // What racks do not serve (a power state read) does not make them fetch again.
        let aa = a.clone();
        write(&pool, move |c| {
            diesel::update(machines::table.find(&aa))
                .set(machines::power_state.eq("on"))
                .execute(c)
        })
        .await;
        let (s, _) = poll(e3.clone()).await;
        assert_eq!(s, StatusCode::NOT_MODIFIED);
        // A machine deleted and another made between two polls: the etag moves on.
        let aa = a.clone();
        write(&pool, move |c| {
            diesel::update(machines::table.find(&aa))
                .set(machines::status.eq("ready"))
                .execute(c)
        })
        .await;
        let (_, s4) = poll(e3).await;
        let e4 = s4["etag"].as_str().unwrap().to_string();
        let (s, _) = app
            .admin(Method::DELETE, &format!("/api/v1/machines/{a}"), None)
            .await;
        assert!(s.is_success(), "{s}");
        app.machine("m-c", "52:54:00:03:00:03").await;
        let (s, s5) = poll(e4).await;
        assert_eq!(s, StatusCode::OK);
        assert!(s5.to_string().contains("m-c"), "{s5}");
        app.stop().await;
    }
);

/// Runs one write on the region's pool, as another transaction would.
async fn write<F>(pool: &region::db::Pool, f: F)
where
    F: Fn(&mut region::db::DbConn) -> diesel::QueryResult<usize> + Send + 'static,
{
    pool.run(move |c| f(c).map_err(region::Error::from))
        .await
        .unwrap();
}

both!(
    racks_enrol_once_wait_for_approval_and_stay_revoked,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        let ifaces =
            json!([{"name": "br0", "mac": "52:54:00:04:00:01", "addresses": ["10.20.0.2/24"]}]);
        let make = |auto: bool| {
            let app = &app;
            async move {
                let (s, v) = app
                    .admin(
                        Method::POST,
                        "/api/v1/racks/tokens",
                        Some(json!({"ttl_secs": 600, "auto_approve": auto})),
                    )
                    .await;
                assert_eq!(s, StatusCode::CREATED, "{v}");
                v["token"].as_str().unwrap().to_string()
            }
        };
        let enrol = |name: &'static str, token: String| {
            let app = &app;
            let ifaces = ifaces.clone();
            async move {
                app.call(
                    Method::POST,
                    "/api/v1/rack/register",
                    None,
                    Some(json!({"name": name, "enrolment_token": token, "interfaces": ifaces})),
                )
                .await
            }
        };
        // Only admins make tokens, for 60 s to 7 days.
        let (s, _) = app
            .user(Method::POST, "/api/v1/racks/tokens", Some(json!({})))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v) = app
            .admin(
                Method::POST,
                "/api/v1/racks/tokens",
                Some(json!({"ttl_secs": 5})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "ttl_secs");

        // A token enrols one rack, once; the rack waits for approval.
        let t1 = make(false).await;
        assert!(t1.starts_with("kiln-rack-v1."), "{t1}");
        let (s, v) = enrol("rack-a", t1.clone()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let token = v["token"].as_str().unwrap().to_string();
        let id = v["rack_id"].as_str().unwrap().to_string();
        let (s, v) = enrol("rack-b", t1).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("used already"),
            "{v}"
        );
        let (_, r) = app
            .admin(Method::GET, &format!("/api/v1/racks/{id}"), None)
            .await;
        assert_eq!(r["approval"], "pending", "{r}");
        // Pending: it may heartbeat, and nothing else.
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/rack/heartbeat",
                Some(&token),
                Some(json!({"interfaces": ifaces})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        for (m, path) in [
            (Method::GET, "/api/v1/rack/snapshot?wait=0"),
            (Method::GET, "/api/v1/rack/volumes"),
            (Method::GET, "/api/v1/rack/power-jobs?wait=0"),
        ] {
            let (s, v) = app.call(m, path, Some(&token), None).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
            assert!(
                v["message"]
                    .as_str()
                    .unwrap()
                    .contains("kiln racks approve"),
                "{v}"
            );
        }
        let (s, _) = app
            .user(Method::POST, &format!("/api/v1/racks/{id}/approve"), None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, r) = app
            .admin(Method::POST, &format!("/api/v1/racks/{id}/approve"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!(r["approval"], "approved");
        let (s, _) = app
            .call(
                Method::GET,
                "/api/v1/rack/snapshot?wait=0",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);

        // --auto-approve: approved at once. An expired token enrols nothing.
        let (s, v) = enrol("rack-c", make(true).await).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, _) = app
            .call(
                Method::GET,
                "/api/v1/rack/snapshot?wait=0",
                Some(v["token"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let t3 = make(false).await;
        let tid = t3.split('.').nth(1).unwrap().to_string();
        app.region
            .as_ref()
            .unwrap()
            .state
            .pool
            .run(move |c| {
                use diesel::prelude::*;
                use region::db::schema::rack_enrolment_tokens as t;
                diesel::update(t::table.find(&tid))
                    .set(t::expires_at.eq(1_000))
                    .execute(c)?;
                Ok(())
            })
            .await
            .unwrap();
        let (s, v) = enrol("rack-d", t3).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
        assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");
        let (s, v) = enrol("rack-d", "kiln-rack-v1.nosuch.secret".into()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");

        // Revoked for good: the token stops working, the old shared secret is changed, the
        // name cannot come back with the new one, approval is refused; a new token re-enrols.
        let old_secret = app.rack_secret().await;
        let (s, _) = app
            .admin(Method::DELETE, &format!("/api/v1/racks/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = app
            .call(
                Method::GET,
                "/api/v1/rack/snapshot?wait=0",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let legacy = |secret: String| {
            let app = &app;
            async move {
                app.call(
                    Method::POST,
                    "/api/v1/rack/register",
                    None,
                    Some(json!({"name": "rack-a", "secret": secret, "interfaces": []})),
                )
                .await
            }
        };
        let (s, v) = legacy(old_secret.clone()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
        let new_secret = app.rack_secret().await;
        assert_ne!(new_secret, old_secret);
        let (s, v) = legacy(new_secret).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        let (_, r) = app
            .admin(Method::GET, &format!("/api/v1/racks/{id}"), None)
            .await;
        assert_eq!(r["approval"], "revoked", "{r}");
        let (s, _) = app
            .admin(Method::POST, &format!("/api/v1/racks/{id}/approve"), None)
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, v) = enrol("rack-a", make(false).await).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["rack_id"], id.as_str(), "the same rack, enrolled again");
        let (_, r) = app
            .admin(Method::GET, &format!("/api/v1/racks/{id}"), None)
            .await;
        assert_eq!(r["approval"], "pending", "{r}");
        app.stop().await;
    }
);
