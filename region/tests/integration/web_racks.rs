//! The Racks page's enrolment, approval and revocation, over real HTTP with the session's CSRF
//! token, as an admin and as a user who may not.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::util::{Backend, TestApp};
use crate::web_ui::{browser, login};

both!(ui_racks_enrol_approve_and_revoke, |b: Backend| async move {
    let app = TestApp::start(b).await;
    let admin = browser();
    let csrf = login(&app, &admin, "admin", "admin-password").await;
    let form = |path: &'static str, fields: Vec<(&'static str, String)>| {
        let admin = admin.clone();
        let url = app.url(path);
        async move {
            let r = admin.post(url).form(&fields).send().await.unwrap();
            let s = r.status();
            (s, r.text().await.unwrap())
        }
    };

    // A token made on the page is shown once, and enrols a rack that waits for approval.
    let (s, html) = form(
        "/racks/tokens",
        vec![("csrf", csrf.clone()), ("ttl_hours", "2".into())],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{html}");
    let token = html
        .split(r#"<code id="new-token">"#)
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_string();
    assert!(token.starts_with("kiln-rack-v1."), "{token}");
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/rack/register",
            None,
            Some(json!({"name": "rack-ui", "enrolment_token": token, "interfaces": []})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["rack_id"].as_str().unwrap().to_string();
    let page = admin
        .get(app.url("/racks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("pending approval"), "{page}");
    assert!(page.contains(&format!("/racks/{id}/approve")), "{page}");
    assert!(
        !page.contains("kiln-rack-v1."),
        "a token is shown only once"
    );

    // A bad validity is refused next to its field; no CSRF token, no action.
    let (s, html) = form(
        "/racks/tokens",
        vec![("csrf", csrf.clone()), ("ttl_hours", "500".into())],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        html.contains(r#"id="ttl-error""#) && html.contains("1 to 168 hours"),
        "{html}"
    );
    let (s, _) = form("/racks/tokens", vec![("ttl_hours", "1".into())]).await;
    assert!(s.is_client_error(), "{s}");

    // A user may look but not act.
    let alice = browser();
    let acsrf = login(&app, &alice, "alice", "alice-password").await;
    let r = alice
        .post(app.url(&format!("/racks/{id}/approve")))
        .form(&[("csrf", acsrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let apage = alice
        .get(app.url("/racks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !apage.contains("Make an enrolment token") && !apage.contains("/approve"),
        "{apage}"
    );

    // Its power networks, from the page: saved, or refused next to its field.
    let (s, _) = form_to(
        &admin,
        app.url(&format!("/racks/{id}/power-networks")),
        &[
            ("csrf", &csrf),
            ("power_networks", "10.20.0.0/24, 10.21.0.9/24"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, r) = app
        .admin(Method::GET, &format!("/api/v1/racks/{id}"), None)
        .await;
    assert_eq!(r["power_networks"], json!(["10.20.0.0/24", "10.21.0.0/24"]));
    let (s, html) = form_to(
        &admin,
        app.url(&format!("/racks/{id}/power-networks")),
        &[("csrf", &csrf), ("power_networks", "nope")],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        html.contains(&format!(r#"id="pn-error-{id}""#)) && html.contains("not an IPv4 network"),
        "{html}"
    );

    // Approve, then revoke, from the page.
    let r = admin
        .post(app.url(&format!("/racks/{id}/approve")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, r) = app
        .admin(Method::GET, &format!("/api/v1/racks/{id}"), None)
        .await;
    assert_eq!(r["approval"], "approved");
    let r = admin
        .post(app.url(&format!("/racks/{id}/delete")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, r) = app
        .admin(Method::GET, &format!("/api/v1/racks/{id}"), None)
        .await;
    assert_eq!(r["approval"], "revoked");
    let page = admin
        .get(app.url("/racks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("revoked") && !page.contains(&format!("/racks/{id}/delete")),
        "{page}"
    );
    app.stop().await;
});

async fn form_to(
    b: &reqwest::Client,
    url: String,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let r = b.post(url).form(fields).send().await.unwrap();
    let s = r.status();
    (s, r.text().await.unwrap())
}
