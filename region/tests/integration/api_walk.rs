//! Every operation in the OpenAPI document, with every kind of credential: anonymous callers are
//! refused except on the documented public operations, and each credential reaches only its own
//! routes (rack tokens the rack contract, boot tokens the metadata API, user tokens the rest;
//! read-scoped tokens never write, but read everything their user may).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api_commissioning::rack_token;
use crate::util::{Backend, TestApp};

/// Operations anyone may call.
const PUBLIC: [(&str, &str); 5] = [
    ("POST", "/api/v1/login"),
    ("POST", "/api/v1/logout"),
    ("POST", "/api/v1/rack/register"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
];

/// Who a route is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Public,
    Rack,
    Machine,
    User,
}

fn kind(method: &str, path: &str) -> Kind {
    if PUBLIC.contains(&(method, path)) {
        Kind::Public
    } else if path.starts_with("/api/v1/rack/") {
        Kind::Rack
    } else if path.starts_with("/api/v1/metadata/") {
        Kind::Machine
    } else {
        Kind::User
    }
}

/// A path with its parameters filled in (with values that need not exist: refusal comes first).
fn fill(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find('}').map_or(rest.len(), |j| i + j + 1);
        out.push_str(match &rest[i..j] {
            "{mac}" => "52:54:00:00:00:99",
            "{sha256}" => "0000000000000000000000000000000000000000000000000000000000000000",
            "{action}" => "commission",
            "{file}" => "user-data",
            "{token}" => "boot_not-a-token",
            _ => "x1",
        });
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

async fn send(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> StatusCode {
    let m = Method::from_bytes(method.as_bytes()).unwrap();
    let body = (m != Method::GET && m != Method::DELETE).then(|| json!({}));
    app.call(m, path, token, body).await.0
}

fn refused(s: StatusCode) -> bool {
    s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_refuses_the_wrong_caller() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (s, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let rack = rack_token(&app).await;
    let (s, boot) = app
        .call(
            Method::POST,
            "/api/v1/rack/boot",
            Some(&rack),
            Some(json!({"mac": "52:54:00:00:00:98"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{boot}");
    let boot = app.claim(&rack, "52:54:00:00:00:98", &boot).await;
    let admin = app.admin_token.clone();
    let (s, read) = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({"name": "walk", "scope": "read"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{read}");
    let read = read["secret"].as_str().unwrap().to_string();

    let mut wrong = Vec::new();
    let mut ops = 0;
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            ops += 1;
            let k = kind(&method, path);
            let url = fill(path);
            let mut expect = |who: &str, s: StatusCode, ok: bool| {
                if !ok {
                    wrong.push(format!("{method} {path} as {who}: {s}"));
                }
            };
            if k == Kind::Public {
                continue;
            }
            let s = send(&app, &method, &url, None).await;
            expect("anonymous", s, s == StatusCode::UNAUTHORIZED);
            let s = send(&app, &method, &url, Some("kiln_forged-token")).await;
            expect("a forged token", s, s == StatusCode::UNAUTHORIZED);
            if k != Kind::Rack {
                let s = send(&app, &method, &url, Some(&rack)).await;
                expect("a rack", s, refused(s));
            }
            if k != Kind::Machine {
                let s = send(&app, &method, &url, Some(&boot)).await;
                expect("a machine's boot token", s, refused(s));
            }
            if k != Kind::User {
                let s = send(&app, &method, &url, Some(&admin)).await;
                expect("an admin's token", s, refused(s));
            } else if method == "GET" {
                let s = send(&app, &method, &url, Some(&read)).await;
                expect("a read-scoped admin token (reading)", s, !refused(s));
            } else {
                let s = send(&app, &method, &url, Some(&read)).await;
                expect("a read-scoped token", s, s == StatusCode::FORBIDDEN);
            }
        }
    }
    assert!(ops > 80, "only {ops} operations in the document");
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    app.stop().await;
}
