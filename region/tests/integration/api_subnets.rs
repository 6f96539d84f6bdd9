//! Subnets over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::util::{Backend, TestApp};

both!(subnets_crud_and_validation, |b: Backend| async move {
    let app = TestApp::start(b).await;
    let body = json!({
        "cidr": "10.20.0.0/24", "gateway": "10.20.0.1", "dns_servers": ["10.20.0.1"],
        "dynamic_ranges": [{"start": "10.20.0.100", "end": "10.20.0.199"}],
        "static_routes": [{"destination": "10.50.0.0/16", "gateway": "10.20.0.254"}],
        "ntp_servers": ["10.20.0.1"], "lease_time_secs": 3600,
        "managed": true
    });
    let (s, v) = app.admin(Method::POST, "/api/v1/subnets", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["static_routes"][0]["destination"], "10.50.0.0/16");
    assert_eq!(v["ntp_servers"], json!(["10.20.0.1"]));
    assert_eq!(v["lease_time_secs"], 3600);
    let id = v["id"].as_str().unwrap().to_string();
    // By id and by CIDR.
    let (s, v) = app
        .admin(Method::GET, "/api/v1/subnets/10.20.0.0%2F24", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["id"], id.as_str());
    // Overlap → 409; bad input → 400 naming the field.
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/subnets",
            Some(json!({"cidr": "10.20.0.128/25"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    for (body, field) in [
        (json!({"cidr": "10.30.0.1/24"}), "cidr"),
        (
            json!({"cidr": "10.30.0.0/24", "gateway": "10.31.0.1"}),
            "gateway",
        ),
        (
            json!({"cidr": "10.30.0.0/24", "dynamic_ranges": [{"start": "10.30.0.50", "end": "10.30.0.10"}]}),
            "dynamic_ranges[0]",
        ),
        (
            json!({"cidr": "10.30.0.0/24", "static_routes": [{"destination": "nowhere", "gateway": "10.30.0.1"}]}),
            "static_routes[0].destination",
        ),
        (
            json!({"cidr": "10.30.0.0/24", "lease_time_secs": 5}),
            "lease_time_secs",
        ),
        (
            json!({"cidr": "10.30.0.0/24", "ntp_servers": ["ntp.example"]}),
            "ntp_servers[0]",
        ),
    ] {
        let (s, v) = app
            .admin(Method::POST, "/api/v1/subnets", Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} → {v}");
        assert_eq!(v["field"], field, "{body} → {v}");
    }
    // Users read, only admins write.
    let (s, _) = app.user(Method::GET, "/api/v1/subnets", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .user(
            Method::POST,
            "/api/v1/subnets",
            Some(json!({"cidr": "10.40.0.0/24"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/subnets/{id}"),
            Some(json!({"managed": false, "dynamic_ranges": []})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["managed"], false);
    assert_eq!(v["dynamic_ranges"], json!([]));
    assert_eq!(v["gateway"], "10.20.0.1");
    let (s, _) = app
        .admin(Method::DELETE, &format!("/api/v1/subnets/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = app.admin(Method::GET, "/api/v1/subnets", None).await;
    assert_eq!(v, json!([]));
    app.stop().await;
});
