//! Authentication: bearer tokens, UI session cookies, users and tokens endpoints, OpenAPI, health.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::util::{Backend, TestApp};

both!(tokens_and_sessions, |b: Backend| async move {
    let app = TestApp::start(b).await;
    // No credentials, malformed header, unknown token → 401 with a hint.
    let (s, v) = app.call(Method::GET, "/api/v1/machines", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        v["message"].as_str().unwrap().contains("create-token"),
        "{v}"
    );
    let resp = app
        .http
        .get(app.url("/api/v1/machines"))
        .header("Authorization", "Basic eA==")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .call(
            Method::GET,
            "/api/v1/machines",
            Some("kiln_not-a-token"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // whoami, create a token through the API, use it, revoke it.
    let (_, v) = app.user(Method::GET, "/api/v1/whoami", None).await;
    assert_eq!(
        v,
        json!({"username": "alice", "is_admin": false, "scope": "operator"})
    );
    let (s, v) = app
        .user(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "laptop"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    let tid = v["id"].as_str().unwrap().to_string();
    let (s, _) = app
        .call(Method::GET, "/api/v1/whoami", Some(&secret), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = app.user(Method::GET, "/api/v1/tokens", None).await;
    assert!(!v.to_string().contains(&secret), "secrets are never listed");
    assert_eq!(v.as_array().unwrap().len(), 2);
    let (s, _) = app
        .user(Method::DELETE, &format!("/api/v1/tokens/{tid}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .call(Method::GET, "/api/v1/whoami", Some(&secret), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Users: admin-only management; the last admin stays.
    let (s, _) = app.user(Method::GET, "/api/v1/users", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "bob", "password": "short"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "password");
    let (s, _) = app
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "bob", "password": "bob-password"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "bob", "password": "bob-password"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, v) = app.admin(Method::DELETE, "/api/v1/users/admin", None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"], "last_admin");

    // Cookie session for the UI.
    let jar = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = jar
        .post(app.url("/api/v1/login"))
        .json(&json!({"username": "bob", "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = jar
        .post(app.url("/api/v1/login"))
        .json(&json!({"username": "bob", "password": "bob-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let r = jar.get(app.url("/api/v1/whoami")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = jar.post(app.url("/api/v1/logout")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = jar.get(app.url("/api/v1/whoami")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The audit log says who did what; admins only.
    let (s, v) = app.admin(Method::GET, "/api/v1/audit", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "user.create" && e["target"] == "bob"),
        "{v}"
    );
    let (s, _) = app.user(Method::GET, "/api/v1/audit", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    app.stop().await;
});

both!(openapi_docs_and_health, |b: Backend| async move {
    let app = TestApp::start(b).await;
    let doc: serde_json::Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for p in [
        "/api/v1/machines",
        "/api/v1/machines/{system_id}/{action}",
        "/api/v1/subnets",
        "/api/v1/boot-resources/{id}/files/{filename}",
        "/api/v1/racks",
        "/api/v1/events",
        "/api/v1/users",
        "/api/v1/tokens",
    ] {
        assert!(doc["paths"].get(p).is_some(), "OpenAPI lacks {p}");
    }
    let r = app.http.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text().await.unwrap().contains("swagger"),
        "Swagger UI is served from the binary"
    );
    let (s, v) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["database"],
        if b == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    let (s, v) = app.admin(Method::GET, "/api/v1/racks", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, serde_json::json!([]));
    app.stop().await;
});
