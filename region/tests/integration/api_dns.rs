//! DNS domains and records over HTTP, validated, and what racks get in their snapshot.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::util::{Backend, TestApp};

async fn rack_token(app: &TestApp) -> String {
    let secret = app.rack_secret().await;
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/rack/register",
            None,
            Some(json!({"name": "rack-dns", "secret": secret, "interfaces": []})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["token"].as_str().unwrap().to_string()
}

async fn snapshot(app: &TestApp, token: &str) -> Value {
    let (s, v) = app
        .call(
            Method::GET,
            "/api/v1/rack/snapshot?wait=0",
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

both!(
    dns_domains_records_validation_and_the_snapshot,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        let rack = rack_token(&app).await;

        // The default domain is there from the start.
        let (s, v) = app.user(Method::GET, "/api/v1/dns/domains", None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v[0]["name"], "kiln");
        assert_eq!(v[0]["ttl"], 30);
        assert_eq!(v[0]["is_default"], true);

        let node1 = app.machine("node1", "52:54:00:dd:00:01").await;
        let before = snapshot(&app, &rack).await;
        let etag = before["etag"].as_str().unwrap().to_string();

        // Records: the contract's body; names and data canonical.
        let (s, v) = app
            .admin(
                Method::POST,
                "/api/v1/dns/records",
                Some(
                    json!({"name": "WWW.kiln.", "type": "cname", "data": "node1.kiln", "ttl": 30}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["name"], "www.kiln");
        assert_eq!(v["type"], "CNAME");
        assert_eq!(v["domain"], "kiln");
        let www = v["id"].as_str().unwrap().to_string();
        for body in [
            json!({"name": "_http._tcp.kiln", "type": "SRV", "data": "10 5 80 node1.kiln"}),
            json!({"name": "kiln", "type": "MX", "data": "10 node1.kiln"}),
            json!({"name": "v6.kiln", "type": "AAAA", "data": "fd00::5"}),
            json!({"name": "txt.kiln", "type": "TXT", "data": "\"hello\""}),
            json!({"name": "extra.kiln", "type": "A", "data": "10.20.0.9", "ttl": 120}),
        ] {
            let (s, v) = app
                .admin(Method::POST, "/api/v1/dns/records", Some(body))
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
        let (_, v) = app.user(Method::GET, "/api/v1/dns/records", None).await;
        assert_eq!(v.as_array().unwrap().len(), 6, "{v}");
        let txt = v
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "TXT")
            .unwrap();
        assert_eq!(txt["data"], "hello");
        assert_eq!(txt["ttl"], 30, "the domain's TTL by default");

        // Refused, in words, with nothing stored.
        for (body, status, field, words) in [
            (
                json!({"name": "node1.kiln", "type": "CNAME", "data": "x.kiln"}),
                StatusCode::CONFLICT,
                "name",
                "machine",
            ),
            (
                json!({"name": "www.kiln", "type": "TXT", "data": "x"}),
                StatusCode::CONFLICT,
                "name",
                "CNAME",
            ),
            (
                json!({"name": "txt.kiln", "type": "CNAME", "data": "x.kiln"}),
                StatusCode::CONFLICT,
                "name",
                "other data",
            ),
            (
                json!({"name": "kiln", "type": "CNAME", "data": "x.kiln"}),
                StatusCode::BAD_REQUEST,
                "name",
                "domain itself",
            ),
            (
                json!({"name": "www.example.org", "type": "A", "data": "10.0.0.1"}),
                StatusCode::BAD_REQUEST,
                "name",
                "not inside a Kiln domain",
            ),
            (
                json!({"name": "a.kiln", "type": "A", "data": "10.0.0.300"}),
                StatusCode::BAD_REQUEST,
                "data",
                "IPv4",
            ),
            (
                json!({"name": "a.kiln", "type": "NS", "data": "ns.kiln"}),
                StatusCode::BAD_REQUEST,
                "type",
                "A, AAAA, CNAME",
            ),
            (
                json!({"name": "a b.kiln", "type": "A", "data": "10.0.0.1"}),
                StatusCode::BAD_REQUEST,
                "name",
                "DNS name",
            ),
            (
                json!({"name": "a.kiln", "type": "A", "data": "10.0.0.1", "ttl": 0}),
                StatusCode::BAD_REQUEST,
                "ttl",
                "TTL",
            ),
            (
                json!({"name": "extra.kiln", "type": "A", "data": "10.20.0.9"}),
                StatusCode::CONFLICT,
                "data",
                "already",
            ),
        ] {
            let (s, v) = app
                .admin(Method::POST, "/api/v1/dns/records", Some(body.clone()))
                .await;
            assert_eq!(s, status, "{body}: {v}");
            assert_eq!(v["field"], field, "{body}: {v}");
            assert!(
                v["message"].as_str().unwrap().contains(words),
                "{body}: {v}"
            );
        }
        let (_, v) = app.user(Method::GET, "/api/v1/dns/records", None).await;
        assert_eq!(
            v.as_array().unwrap().len(),
            6,
            "nothing stored by a refusal"
        );
        // Users see records but may not change them.
        let (s, _) = app
            .user(
                Method::POST,
                "/api/v1/dns/records",
                Some(json!({"name": "u.kiln", "type": "A", "data": "10.0.0.1"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // A machine cannot be named where a CNAME sits.
        let (s, v) = app
            .admin(
                Method::POST,
                "/api/v1/machines",
                Some(json!({"hostname": "www", "boot_mac": "52:54:00:dd:00:09"})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");

        // The snapshot carries it all, under a new etag.
        let snap = snapshot(&app, &rack).await;
        assert_ne!(snap["etag"], etag.as_str());
        assert_eq!(snap["dns"]["default_domain"], "kiln");
        assert_eq!(snap["dns"]["records"].as_array().unwrap().len(), 6);

        // Domains: add one, name a machine in it, refuse to delete it while it is used.
        let (s, v) = app
            .admin(
                Method::POST,
                "/api/v1/dns/domains",
                Some(json!({"name": "Lab.Example", "ttl": 300})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["name"], "lab.example");
        let (s, _) = app
            .admin(
                Method::POST,
                "/api/v1/dns/domains",
                Some(json!({"name": "lab.example"})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, v) = app
            .admin(
                Method::PATCH,
                &format!("/api/v1/machines/{node1}"),
                Some(json!({"domain": "lab.example"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["domain"], "lab.example");
        let (s, v) = app
            .admin(
                Method::PATCH,
                &format!("/api/v1/machines/{node1}"),
                Some(json!({"domain": "nowhere.example"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "domain");
        let snap = snapshot(&app, &rack).await;
        let m = snap["machines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["system_id"] == node1.as_str())
            .unwrap();
        assert_eq!(m["domain"], "lab.example");
        let (s, v) = app
            .admin(Method::DELETE, "/api/v1/dns/domains/lab.example", None)
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(v["message"].as_str().unwrap().contains("1 machine"), "{v}");
        let (s, v) = app
            .admin(Method::DELETE, "/api/v1/dns/domains/kiln", None)
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(v["message"].as_str().unwrap().contains("default"), "{v}");
        // Back to the default domain; then make lab.example the default.
        let (s, v) = app
            .admin(
                Method::PATCH,
                &format!("/api/v1/machines/{node1}"),
                Some(json!({"domain": ""})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["domain"], Value::Null);
        let (s, v) = app
            .admin(
                Method::PATCH,
                "/api/v1/dns/domains/lab.example",
                Some(json!({"is_default": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["is_default"], true);
        let (_, v) = app.user(Method::GET, "/api/v1/dns/domains", None).await;
        let defaults: Vec<&Value> = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["is_default"] == true)
            .collect();
        assert_eq!(defaults.len(), 1, "{v}");
        assert_eq!(
            snapshot(&app, &rack).await["dns"]["default_domain"],
            "lab.example"
        );

        // Records go away by id; an unknown id is a 404.
        let (s, _) = app
            .admin(Method::DELETE, &format!("/api/v1/dns/records/{www}"), None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = app
            .admin(Method::DELETE, &format!("/api/v1/dns/records/{www}"), None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Every DNS path is in the OpenAPI document.
        let (_, doc) = app
            .call(Method::GET, "/api/v1/openapi.json", None, None)
            .await;
        for p in [
            "/api/v1/dns/domains",
            "/api/v1/dns/domains/{id}",
            "/api/v1/dns/records",
            "/api/v1/dns/records/{id}",
        ] {
            assert!(doc["paths"].get(p).is_some(), "{p} missing from OpenAPI");
        }
    }
);

both!(
    dns_domains_never_hide_names_others_serve,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        app.machine("node1", "52:54:00:dd:01:01").await;
        let node2 = app.machine("node2", "52:54:00:dd:01:02").await;
        let post = |path: &'static str, body: Value| {
            let app = &app;
            async move { app.admin(Method::POST, path, Some(body)).await }
        };

        // A record under a name that would become a domain: the domain is refused, nothing added.
        let (s, v) = post(
            "/api/v1/dns/records",
            json!({"name": "db.lab.kiln", "type": "A", "data": "10.20.0.7"}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = post("/api/v1/dns/domains", json!({"name": "lab.kiln"})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("db.lab.kiln"),
            "{v}"
        );
        // A machine's own name cannot become a domain either.
        let (s, v) = post("/api/v1/dns/domains", json!({"name": "node1.kiln"})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(v["message"].as_str().unwrap().contains("machine"), "{v}");
        let (_, v) = app.user(Method::GET, "/api/v1/dns/domains", None).await;
        assert_eq!(v.as_array().unwrap().len(), 1, "{v}");

        // A CNAME in another domain where a default-domain machine would land if that domain
        // became the default: refused, the default unchanged.
        let (s, v) = post("/api/v1/dns/domains", json!({"name": "site"})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let site = v["id"].as_str().unwrap().to_string();
        let (s, v) = post(
            "/api/v1/dns/records",
            json!({"name": "node2.site", "type": "CNAME", "data": "node1.kiln"}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let cname = v["id"].as_str().unwrap().to_string();
        let (s, v) = app
            .admin(
                Method::PATCH,
                &format!("/api/v1/dns/domains/{site}"),
                Some(json!({"is_default": true})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(&node2) && msg.contains(&cname), "{v}");
        let (_, v) = app
            .user(Method::GET, "/api/v1/dns/domains/kiln", None)
            .await;
        assert_eq!(v["is_default"], true, "{v}");
        // With the CNAME gone it goes through.
        let (s, _) = app
            .admin(
                Method::DELETE,
                &format!("/api/v1/dns/records/{cname}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, v) = app
            .admin(
                Method::PATCH,
                &format!("/api/v1/dns/domains/{site}"),
                Some(json!({"is_default": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
);
