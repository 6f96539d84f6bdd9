//! Trust (#15): token scopes and expiry, login rate limits and audit, pruning, and addresses
//! that stay one interface's.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::util::{Backend, TestApp};

async fn token(app: &TestApp, as_token: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, "/api/v1/tokens", Some(as_token), Some(body))
        .await
}

both!(token_scopes_and_expiry, |b: Backend| async move {
    let app = TestApp::start(b).await;
    let admin = app.admin_token.clone();
    // A read-scoped token looks but changes nothing.
    let (s, v) = token(&app, &admin, json!({"name": "dash", "scope": "read"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["scope"], "read");
    assert!(v["expires_at"].is_null());
    let read = v["secret"].as_str().unwrap().to_string();
    let (s, v) = app
        .call(Method::GET, "/api/v1/whoami", Some(&read), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"username": "admin", "is_admin": true, "scope": "read"})
    );
    // It reads all its admin may (the users too), for dashboards and audits.
    for path in ["/api/v1/machines", "/api/v1/users", "/api/v1/audit"] {
        let (s, v) = app.call(Method::GET, path, Some(&read), None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    for (m, path, body) in [
        (
            Method::POST,
            "/api/v1/machines",
            Some(
                json!({"hostname": "r1", "boot_mac": "52:54:00:7e:00:01", "architecture": "amd64/generic"}),
            ),
        ),
        (
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "more"})),
        ),
        (
            Method::PUT,
            "/api/v1/settings/power.poll_secs",
            Some(json!({"value": "60"})),
        ),
        (Method::DELETE, "/api/v1/users/alice", None),
    ] {
        let (s, v) = app.call(m.clone(), path, Some(&read), body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{m} {path}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("scope is read"),
            "{v}"
        );
    }
    let (_, users) = app.admin(Method::GET, "/api/v1/users", None).await;
    assert_eq!(users.as_array().unwrap().len(), 2, "alice is still there");
    // An admin's operator-scoped token acts as a user: no admin routes, and it cannot mint an
    // admin token (a token never exceeds the credential that makes it).
    let (s, v) = token(&app, &admin, json!({"name": "ops", "scope": "operator"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let ops = v["secret"].as_str().unwrap().to_string();
    let (s, _) = app
        .call(Method::GET, "/api/v1/users", Some(&ops), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = token(&app, &ops, json!({"name": "up", "scope": "admin"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "scope");
    let (s, v) = token(&app, &ops, json!({"name": "same"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["scope"], "operator",
        "the default is what the creator may do"
    );
    // A user's token is never admin.
    let (s, v) = token(
        &app,
        &app.user_token,
        json!({"name": "x", "scope": "admin"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("alice may have a scope of operator at most"),
        "{v}"
    );
    let (s, v) = token(&app, &admin, json!({"name": "x", "scope": "root"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Expiry: in the future, RFC 3339; the token stops working then.
    for bad in ["yesterday", "2020-01-01T00:00:00Z"] {
        let (s, v) = token(&app, &admin, json!({"name": "x", "expires_at": bad})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(v["field"], "expires_at");
    }
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (s, v) = token(&app, &admin, json!({"name": "brief", "expires_at": soon})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(v["expires_at"].is_string());
    let brief = v["secret"].as_str().unwrap().to_string();
    let (s, _) = app
        .call(Method::GET, "/api/v1/whoami", Some(&brief), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (s, _) = app
        .call(Method::GET, "/api/v1/whoami", Some(&brief), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "expired");
    // The list shows each token's scope and expiry.
    let (_, list) = app.admin(Method::GET, "/api/v1/tokens", None).await;
    let scope_of = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["scope"].clone())
    };
    assert_eq!(scope_of("dash"), Some(json!("read")));
    assert_eq!(scope_of("ops"), Some(json!("operator")));
    assert_eq!(scope_of("test"), Some(json!("admin")));
    app.stop().await;
});

async fn login(app: &TestApp, user: &str, password: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
}

both!(
    logins_are_even_limited_and_audited,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        // An unknown user's login does the same work as a wrong password (argon2 on a decoy hash).
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            assert_eq!(login(&app, "alice", "wrong-password").await.status(), 401);
            known.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(login(&app, "nobody", "wrong-password").await.status(), 401);
            unknown.push(t.elapsed());
        }
        known.sort();
        unknown.sort();
        let (k, u) = (known[1].as_secs_f64(), unknown[1].as_secs_f64());
        eprintln!(
            "login: wrong password {:.1} ms, unknown user {:.1} ms",
            k * 1e3,
            u * 1e3
        );
        assert!(
            u > k / 3.0,
            "an unknown user answers much faster: {u} vs {k}"
        );
        // 10 failures from one address, then 429 with Retry-After, even for the right password.
        for _ in 0..4 {
            assert_eq!(login(&app, "alice", "wrong-password").await.status(), 401);
        }
        let r = login(&app, "alice", "alice-password").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=6).contains(&wait), "{wait}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "rate_limited");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .starts_with("Too many failed logins from 127.0.0.1"),
            "{v}"
        );
        // The audit log has every failure, with where it came from; none of it is a password.
        let (_, audit) = app
            .admin(Method::GET, "/api/v1/audit?limit=100", None)
            .await;
        let failed: Vec<&Value> = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "login.failed")
            .collect();
        assert_eq!(failed.len(), 10, "{audit}");
        assert!(failed.iter().any(|e| e["target"] == "nobody"));
        assert!(
            failed.iter().all(|e| e["detail"] == "from 127.0.0.1"),
            "{audit}"
        );
        assert!(!audit.to_string().contains("wrong-password"));
        // The bucket drains: after the wait, the right password works.
        tokio::time::sleep(Duration::from_secs(wait)).await;
        assert_eq!(login(&app, "alice", "alice-password").await.status(), 200);
        app.stop().await;
    }
);

both!(
    pruning_removes_the_expired_and_the_old,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        let id = app.machine("p1", "52:54:00:7e:00:10").await;
        let pool = app.region.as_ref().unwrap().state.pool.clone();
        let day = 86_400_000i64;
        let sid = id.clone();
        let now = region::db::now_ms();
        pool.run(move |c| {
            use diesel::prelude::*;
            use region::db::schema::{api_tokens, audit_log, boot_tokens, events};
            let admin = region::db::users::by_username(c, "admin")?.unwrap();
            // A session that expired, a token that expires tomorrow.
            region::domain::users::create_session(c, &admin, now - 13 * 3600 * 1000)?;
            let spec = region::domain::users::TokenSpec {
                scope: None,
                expires_at: Some(now + day),
            };
            region::domain::users::create_token(
                c,
                &admin,
                "tomorrow",
                &spec,
                region_api_types::TokenScope::Admin,
                now,
            )?;
            diesel::insert_into(boot_tokens::table)
                .values((
                    boot_tokens::token_hash.eq("h-old"),
                    boot_tokens::system_id.eq(&sid),
                    boot_tokens::boot_id.eq("b"),
                    boot_tokens::purpose.eq("commissioning"),
                    boot_tokens::created_at.eq(now - 2 * day),
                    boot_tokens::expires_at.eq(now - day),
                ))
                .execute(c)?;
            diesel::update(events::table.filter(events::system_id.eq(&sid)))
                .set(events::created_at.eq(now - 100 * day))
                .execute(c)?;
            diesel::insert_into(audit_log::table)
                .values((
                    audit_log::created_at.eq(now - 400 * day),
                    audit_log::username.eq("admin"),
                    audit_log::action.eq("old"),
                    audit_log::target.eq("x"),
                    audit_log::detail.eq(""),
                ))
                .execute(c)?;
            let _ = api_tokens::table.count().get_result::<i64>(c)?;
            Ok(())
        })
        .await
        .unwrap();
        let (_, before) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}/events"), None)
            .await;
        assert!(!before.as_array().unwrap().is_empty());
        // Retention is a setting, validated in words.
        let (s, v) = app
            .admin(
                Method::PUT,
                "/api/v1/settings/lifecycle.event_retention_days",
                Some(json!({"value": "soon"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("whole number of days"),
            "{v}"
        );
        let lc = app.region.as_ref().unwrap().state.cfg.lifecycle.clone();
        let p = pool
            .run(move |c| region::domain::prune::prune(c, &lc, now))
            .await
            .unwrap();
        assert_eq!((p.tokens, p.boot_tokens, p.audit), (1, 1, 1), "{p:?}");
        assert!(p.events >= 1, "{p:?}");
        let (_, after) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}/events"), None)
            .await;
        assert!(after.as_array().unwrap().is_empty(), "{after}");
        // What is still valid stays: both test tokens and tomorrow's.
        let (s, _) = app.admin(Method::GET, "/api/v1/whoami", None).await;
        assert_eq!(s, StatusCode::OK);
        let (_, list) = app.admin(Method::GET, "/api/v1/tokens", None).await;
        assert!(list
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "tomorrow"));
        // With retention 0, old events are kept.
        let (s, _) = app
            .admin(
                Method::PUT,
                "/api/v1/settings/lifecycle.event_retention_days",
                Some(json!({"value": "0"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        app.stop().await;
    }
);

both!(an_address_is_one_interfaces, |b: Backend| async move {
    let app = TestApp::start(b).await;
    app.admin(Method::POST, "/api/v1/subnets", Some(json!({"cidr": "10.21.0.0/24", "dynamic_ranges": [{"start": "10.21.0.100", "end": "10.21.0.199"}]}))).await;
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(
            app.machine(&format!("ip{i}"), &format!("52:54:00:7e:01:0{i}"))
                .await,
        );
    }
    // Six admins reserve one address for six machines at once: one wins. (Machines 6 to 8 stay
    // out of the race, for the leases below.)
    let tasks: Vec<_> = ids[..6]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (http, url, token) = (
                app.http.clone(),
                app.url(&format!(
                    "/api/v1/machines/{id}/interfaces/52:54:00:7e:01:0{i}"
                )),
                app.admin_token.clone(),
            );
            tokio::spawn(async move {
                http.put(url)
                    .bearer_auth(token)
                    .json(&json!({"ip": "10.21.0.50"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    codes.sort();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert!(
        codes.iter().all(|c| *c == 200 || *c == 409 || *c == 503),
        "{codes:?}"
    );
    // A dynamic address a rack leased to another MAC moves with the lease; a static one stays.
    let pool = app.region.as_ref().unwrap().state.pool.clone();
    let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
    let (a, b2) = (ids[6].clone(), ids[7].clone());
    let (first, second, kept) = pool
        .run(move |c| {
            let subnets = region::db::subnets::list_api(c)?;
            region::db::racks::record_lease(c, "52:54:00:7e:01:06", ip("10.21.0.120"), &subnets)?;
            region::db::racks::record_lease(c, "52:54:00:7e:01:07", ip("10.21.0.120"), &subnets)?;
            let ip_of =
                |c: &mut region::db::DbConn, id: &str| -> region::error::Result<Option<String>> {
                    Ok(region::db::machines::get(c, id)?.unwrap().interfaces[0]
                        .ip
                        .clone())
                };
            let first = ip_of(c, &a)?;
            let second = ip_of(c, &b2)?;
            // A report of someone's static address for another MAC is not recorded.
            region::db::racks::record_lease(c, "52:54:00:7e:01:08", ip("10.21.0.50"), &subnets)?;
            use diesel::prelude::*;
            use region::db::schema::interfaces;
            let taken: i64 = interfaces::table
                .filter(interfaces::ip.eq("10.21.0.50"))
                .count()
                .get_result(c)?;
            Ok((first, second, taken))
        })
        .await
        .unwrap();
    assert_eq!(
        first, None,
        "the old holder lost the address with its lease"
    );
    assert_eq!(second.as_deref(), Some("10.21.0.120"));
    assert_eq!(kept, 1);
    app.stop().await;
});
