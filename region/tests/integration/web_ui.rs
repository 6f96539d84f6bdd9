//! The web UI over real HTTP on both databases: login with its CSRF cookie, every page, forms that
//! need the session's CSRF token, non-admins seeing only what the API lets them, the search box,
//! bulk actions, secrets never echoed, and live updates (the change bus; `LISTEN/NOTIFY` between
//! two regions on PostgreSQL).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use region::db::now_ms;
use reqwest::{Method, StatusCode};

use crate::util::{Backend, TestApp};

/// A browser-like client: cookies kept, redirects not followed (the tests look at them).
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `name="csrf" value="…"` of a page.
pub(crate) fn csrf_of(html: &str) -> String {
    let i = html
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF token")
        + 19;
    html[i..i + html[i..].find('"').unwrap()].to_string()
}

/// Logs `user` in through the login form; returns the session's CSRF token.
pub(crate) async fn login(
    app: &TestApp,
    b: &reqwest::Client,
    user: &str,
    password: &str,
) -> String {
    let page = b.get(app.url("/login")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let token = csrf_of(&page.text().await.unwrap());
    let r = b
        .post(app.url("/login"))
        .form(&[
            ("username", user),
            ("password", password),
            ("csrf", &token),
            ("next", "/machines"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(r.headers()["location"], "/machines");
    let list = b.get(app.url("/machines")).send().await.unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    csrf_of(&list.text().await.unwrap())
}

async fn page(b: &reqwest::Client, url: String) -> (StatusCode, String) {
    let r = b.get(url).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn login_csrf_pages_and_forms(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = browser();
    // Not logged in: to the login page, and back afterwards.
    let r = b.get(app.url("/machines?q=tag%3Aa")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Fmachines%3Fq%3Dtag%253Aa" // the query stays encoded inside `next`
    );
    // A live region (htmx) whose session ended is told to navigate, not handed the login page.
    let r = b
        .get(app.url("/machines"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["hx-redirect"], "/login?next=%2Fmachines");
    // A login form without its cookie's token is refused, whatever the password.
    let r = browser()
        .post(app.url("/login"))
        .form(&[
            ("username", "admin"),
            ("password", "admin-password"),
            ("csrf", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r
        .headers()
        .get("set-cookie")
        .is_none_or(|c| !c.to_str().unwrap().contains("kiln_session=k")));
    // A wrong password says so, on the form.
    let page0 = b
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = b
        .post(app.url("/login"))
        .form(&[
            ("username", "admin"),
            ("password", "nope-nope"),
            ("csrf", &csrf_of(&page0)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Wrong username or password."));
    let csrf = login(&app, &b, "admin", "admin-password").await;

    let a = app.machine("node-a", "52:54:00:aa:00:01").await;
    let c = app.machine("node-b", "52:54:00:aa:00:02").await;
    app.machine("other", "52:54:00:aa:00:03").await;
    for p in [
        "/machines",
        "/images",
        "/subnets",
        "/racks",
        "/users",
        "/keys",
        "/settings",
        "/events",
    ] {
        let (s, html) = page(&b, app.url(p)).await;
        assert_eq!(s, StatusCode::OK, "{p}: {html}");
        assert!(html.contains("<h1"), "{p}");
    }
    // Tokens: login sessions are not listed, a token named like one is.
    let (s, _) = app
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "ui session"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, html) = page(&b, app.url("/users")).await;
    assert_eq!(html.matches("<td>ui session</td>").count(), 1, "{html}");
    let (s, html) = page(&b, app.url(&format!("/machines/{a}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("node-a") && html.contains("Power settings"));

    // The search box: MAAS-style terms, in the URL.
    let (_, html) = page(&b, app.url("/machines?q=hostname%3Anode-*")).await;
    assert!(
        html.contains("node-a") && html.contains("node-b") && !html.contains(">other<"),
        "{html}"
    );
    // Unknown owners match nothing (on PostgreSQL too); `arch:amd64` is every amd64/….
    let (s, html) = page(&b, app.url("/machines?q=owner%3Anobody")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("No machine matches"), "{html}");
    let (s, v) = app
        .admin(
            Method::GET,
            "/api/v1/machines?q=owner:!nobody%20arch:amd64",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 3, "{v}");
    let (s, html) = page(&b, app.url("/machines?q=colour%3Ared")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("is not a search key"), "{html}");

    // Forms need the session's token.
    let r = b
        .post(app.url("/machines/bulk"))
        .form(&[("action", "tag"), ("tag", "rack-b"), ("ids", a.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Bulk tag two machines: a result per machine.
    let r = b
        .post(app.url("/machines/bulk"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", "tag"),
            ("tag", "rack-b"),
            ("ids", a.as_str()),
            ("ids", c.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert_eq!(html.matches("tagged rack-b").count(), 2, "{html}");
    let (_, v) = app
        .admin(Method::GET, "/api/v1/machines?q=tag:rack-b", None)
        .await;
    assert_eq!(v["total"], 2, "{v}");
    // A refused action is reported for its machine, the others still done.
    let r = b
        .post(app.url("/machines/bulk"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", "release"),
            ("ids", a.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    assert!(
        html.contains("refused") && html.contains("0 done, 1 refused"),
        "{html}"
    );

    // Power settings: the secret is stored, never shown.
    let r = b
        .post(app.url(&format!("/machines/{a}/power-settings")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("power_type", "ipmi"),
            ("p.ipmi.power_address", "10.9.9.9"),
            ("p.ipmi.power_user", "root"),
            ("p.ipmi.power_pass", "sup3r-s3cret-pw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let (_, html) = page(&b, app.url(&format!("/machines/{a}"))).await;
    assert!(
        html.contains("10.9.9.9") && html.contains("stored; leave blank to keep"),
        "{html}"
    );
    assert!(!html.contains("sup3r-s3cret-pw"));
    // A bad value comes back beside its field, with what was typed.
    let r = b
        .post(app.url(&format!("/machines/{a}/power-settings")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("power_type", "ipmi"),
            ("p.ipmi.power_port", "six-two-three"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    let err = html
        .find(r#"<span class="error">"#)
        .expect("an error beside a field");
    let input = html.find(r#"id="p-ipmi-power_port""#).unwrap();
    assert!(
        err > input && err - input < 300,
        "the port's error follows the port: {html}"
    );

    // The name form: hostname and DNS domain, as the API's PATCH; an unknown domain is refused
    // beside its control, with what was typed kept.
    let r = b
        .post(app.url(&format!("/machines/{a}/name")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("hostname", "node-a2"),
            ("domain", "lab"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    let err = html
        .find(r#"id="n-domain-err""#)
        .expect("the domain's error");
    let select = html.find(r#"id="n-domain""#).unwrap();
    assert!(err > select && err - select < 600, "{html}");
    assert!(html.contains("There is no DNS domain") && html.contains(r#"value="node-a2""#));
    let (s, _) = app
        .admin(
            Method::POST,
            "/api/v1/dns/domains",
            Some(serde_json::json!({"name": "lab"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, html) = page(&b, app.url(&format!("/machines/{a}"))).await;
    assert!(
        html.contains(r#"<option value="lab">lab</option>"#),
        "{html}"
    );
    let r = b
        .post(app.url(&format!("/machines/{a}/name")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("hostname", "node-a2"),
            ("domain", "lab"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, v) = app
        .admin(Method::GET, &format!("/api/v1/machines/{a}"), None)
        .await;
    assert_eq!(
        (v["hostname"].as_str(), v["domain"].as_str()),
        (Some("node-a2"), Some("lab")),
        "{v}"
    );
    let (_, html) = page(&b, app.url(&format!("/machines/{a}"))).await;
    assert!(html.contains("node-a2.lab"), "{html}");
    // Back to the default domain.
    let r = b
        .post(app.url(&format!("/machines/{a}/name")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("hostname", "node-a"),
            ("domain", "kiln"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, v) = app
        .admin(Method::GET, &format!("/api/v1/machines/{a}"), None)
        .await;
    assert_eq!(
        (v["hostname"].as_str(), v["domain"].is_null()),
        (Some("node-a"), true),
        "{v}"
    );

    // The JSON API with the session cookie: changes need the page's CSRF header.
    let r = b
        .post(app.url(&format!("/api/v1/machines/{a}/mark-broken")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("X-CSRF-Token"));
    let r = b
        .post(app.url(&format!("/api/v1/machines/{a}/mark-broken")))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Log out: the session is gone.
    let r = b
        .post(app.url("/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = b.get(app.url("/machines")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn ui_login_csrf_pages_and_forms_sqlite() {
    login_csrf_pages_and_forms(Backend::Sqlite).await;
}

#[tokio::test]
async fn ui_login_csrf_pages_and_forms_postgres() {
    login_csrf_pages_and_forms(Backend::Postgres).await;
}

/// Gives `id` to `owner` (Allocated), as an allocation would.
pub(crate) async fn own(app: &TestApp, id: &str, owner: &str) {
    let (id, owner) = (id.to_string(), owner.to_string());
    app.region
        .as_ref()
        .unwrap()
        .state
        .pool
        .run(move |c| {
            let u = region::db::users::by_username(c, &owner)?.unwrap();
            let row = region::db::machines::get_row(c, &id)?.unwrap();
            region::db::machines::change_status(
                c,
                &id,
                row.version,
                &region::db::machines::StatusChange {
                    status: region_api_types::MachineStatus::Allocated,
                    previous_status: row.status(),
                    deadline: None,
                    owner_id: Some(Some(u.id)),
                    now: now_ms(),
                },
            )
        })
        .await
        .unwrap();
}

async fn users_see_only_their_own(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mine = app.machine("alices", "52:54:00:bb:00:01").await;
    let theirs = app.machine("admins", "52:54:00:bb:00:02").await;
    own(&app, &mine, "alice").await;
    own(&app, &theirs, "admin").await;
    let b = browser();
    let csrf = login(&app, &b, "alice", "alice-password").await;
    let (_, html) = page(&b, app.url("/machines")).await;
    assert!(
        html.contains("alices") && !html.contains("admins"),
        "{html}"
    );
    assert!(
        !html.contains(r#"value="delete""#),
        "users are not offered delete"
    );
    let (s, _) = page(&b, app.url(&format!("/machines/{theirs}"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = page(&b, app.url(&format!("/ui/stream?machine={theirs}"))).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "no stream of a machine one may not see"
    );
    // Acting on it through the bulk form is refused per machine, as the API would.
    let r = b
        .post(app.url("/machines/bulk"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", "release"),
            ("ids", theirs.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    assert!(
        html.contains("0 done, 1 refused") && html.contains("not found"),
        "{html}"
    );
    let (_, v) = app
        .admin(Method::GET, &format!("/api/v1/machines/{theirs}"), None)
        .await;
    assert_eq!(v["status"], "allocated");
    // Settings of power are admins' only: not on the page.
    let (_, html) = page(&b, app.url(&format!("/machines/{mine}"))).await;
    assert!(!html.contains("Power settings"), "{html}");
    let (s, _) = page(&b, app.url("/events")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn ui_users_see_only_their_own_sqlite() {
    users_see_only_their_own(Backend::Sqlite).await;
}

#[tokio::test]
async fn ui_users_see_only_their_own_postgres() {
    users_see_only_their_own(Backend::Postgres).await;
}

/// Reads the stream until `event: NAME` (or fails after `within`).
async fn expect_event<B: AsRef<[u8]> + std::fmt::Debug>(
    s: &mut (impl futures_util::Stream<Item = reqwest::Result<B>> + Unpin),
    buf: &mut String,
    name: &str,
    within: Duration,
) -> Duration {
    let t0 = Instant::now();
    let needle = format!("event: {name}\n");
    loop {
        if let Some(i) = buf.find(&needle) {
            buf.drain(..i + needle.len());
            return t0.elapsed();
        }
        let left = within
            .checked_sub(t0.elapsed())
            .unwrap_or_else(|| panic!("no '{name}' within {within:?}; got {buf:?}"));
        match tokio::time::timeout(left, s.next()).await {
            Ok(Some(Ok(chunk))) => buf.push_str(&String::from_utf8_lossy(chunk.as_ref())),
            other => panic!("stream ended or timed out waiting for '{name}': {other:?} {buf:?}"),
        }
    }
}

async fn live_updates(backend: Backend) {
    let app = TestApp::start(backend).await;
    let id = app.machine("live", "52:54:00:cc:00:01").await;
    let b = browser();
    login(&app, &b, "admin", "admin-password").await;
    let r = b
        .get(app.url(&format!("/ui/stream?machine={id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut detail = r.bytes_stream();
    let mut list = b
        .get(app.url("/ui/stream"))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let (mut bd, mut bl) = (String::new(), String::new());
    expect_event(&mut detail, &mut bd, "hello", Duration::from_secs(5)).await;
    expect_event(&mut list, &mut bl, "hello", Duration::from_secs(5)).await;

    // Another machine changing: the list hears it, this machine's page does not.
    let other = app.machine("other", "52:54:00:cc:00:02").await;
    expect_event(&mut list, &mut bl, "changed", Duration::from_secs(1)).await;
    app.act(&app.admin_token, &other, "mark-broken").await;
    expect_event(&mut list, &mut bl, "changed", Duration::from_secs(1)).await;
    // This machine changing status: both hear it within a second.
    let (s, _) = app.act(&app.admin_token, &id, "mark-broken").await;
    assert_eq!(s, StatusCode::OK);
    let took = expect_event(&mut detail, &mut bd, "changed", Duration::from_secs(1)).await;
    expect_event(&mut list, &mut bl, "changed", Duration::from_secs(1)).await;
    assert!(
        !bd.contains("event: changed"),
        "the other machine's change was not sent here: {bd:?}"
    );
    eprintln!("live: {id}'s page heard its change after {took:?}");

    // A change between a page's rendering and its stream connecting is not lost: the page's
    // stream URL carries the bus's mark, and the stream says `changed` right after `hello`.
    let stream_of = |html: &str| {
        let at = html
            .find("data-stream=\"")
            .expect("the page names its stream")
            + 13;
        let end = html[at..].find('"').unwrap();
        html[at..at + end].replace("&amp;", "&")
    };
    let (s, html) = page(&b, app.url(&format!("/machines/{id}"))).await;
    assert_eq!(s, StatusCode::OK);
    let url = stream_of(&html);
    assert!(url.contains("since="), "{url}");
    let (_, other_html) = page(&b, app.url(&format!("/machines/{other}"))).await;
    let other_url = stream_of(&other_html);
    app.act(&app.admin_token, &id, "mark-fixed").await;
    let mut late = b.get(app.url(&url)).send().await.unwrap().bytes_stream();
    let mut bla = String::new();
    expect_event(&mut late, &mut bla, "hello", Duration::from_secs(5)).await;
    expect_event(&mut late, &mut bla, "changed", Duration::from_secs(1)).await;
    // The other machine's page, rendered at the same moment, has nothing to catch up on.
    let mut calm = b
        .get(app.url(&other_url))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut bc = String::new();
    expect_event(&mut calm, &mut bc, "hello", Duration::from_secs(5)).await;
    let quiet = tokio::time::timeout(Duration::from_millis(500), calm.next()).await;
    assert!(quiet.is_err(), "no change for the other machine: {quiet:?}");
    drop((late, calm));

    if backend == Backend::Postgres {
        // A second region on the same database: its writes reach the first region's pages.
        let mut cfg = app.db.config();
        cfg.data_dir = app.db.data_dir().join("second");
        std::fs::create_dir_all(&cfg.data_dir).unwrap();
        std::fs::copy(
            app.db.data_dir().join("secret.key"),
            cfg.data_dir.join("secret.key"),
        )
        .ok();
        let second = region::Region::start(cfg).await.unwrap();
        let base2 = format!("http://{}", second.addr);
        // Let the first region's listener settle before writing.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = reqwest::Client::new()
            .post(format!("{base2}/api/v1/machines/{id}/mark-broken"))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let took = expect_event(&mut detail, &mut bd, "changed", Duration::from_secs(1)).await;
        eprintln!("live: a change through the second region arrived after {took:?}");
        second.stop().await.unwrap();
    }
}

#[tokio::test]
async fn ui_live_updates_sqlite() {
    live_updates(Backend::Sqlite).await;
}

#[tokio::test]
async fn ui_live_updates_postgres() {
    live_updates(Backend::Postgres).await;
}

async fn settings_change_at_run_time(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (s, v) = app.admin(Method::GET, "/api/v1/settings", None).await;
    assert_eq!(s, StatusCode::OK);
    let node = v
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "lifecycle.node_timeout_secs")
        .unwrap()
        .clone();
    assert_eq!(node["changed"], false);
    // Refused in words, with the field; users may not change them.
    let (s, v) = app
        .admin(
            Method::PUT,
            "/api/v1/settings/lifecycle.node_timeout_secs",
            Some(serde_json::json!({"value": "5"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "lifecycle.node_timeout_secs");
    let (s, _) = app
        .user(
            Method::PUT,
            "/api/v1/settings/lifecycle.node_timeout_secs",
            Some(serde_json::json!({"value": "600"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = app
        .admin(
            Method::PUT,
            "/api/v1/settings/api.max_page_size",
            Some(serde_json::json!({"value": "5"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Through the UI's form: the next commissioning gets the new deadline.
    let b = browser();
    let csrf = login(&app, &b, "admin", "admin-password").await;
    let r = b
        .post(app.url("/settings"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("lifecycle.node_timeout_secs", "5"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    let input = html.find(r#"id="s-lifecycle.node_timeout_secs""#).unwrap();
    let err = html.find("from 60 to 86400").unwrap();
    assert!(err > input && err - input < 600, "{html}");
    let r = b
        .post(app.url("/settings"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("lifecycle.node_timeout_secs", "600"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let id = app.machine("timed", "52:54:00:ee:00:01").await;
    let before = now_ms();
    let (s, m) = app.act(&app.admin_token, &id, "commission").await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let deadline = kiln_ui::format::parse_time_ms(m["status_deadline"].as_str().unwrap()).unwrap();
    let left = deadline - before;
    assert!(
        (595_000..=605_000).contains(&left),
        "deadline {left} ms away, not 600 s"
    );
    // Reset: the file's 30 minutes again.
    let r = b
        .post(app.url("/settings"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("reset", "lifecycle.node_timeout_secs"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, v) = app.admin(Method::GET, "/api/v1/settings", None).await;
    let node = v
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "lifecycle.node_timeout_secs")
        .unwrap()
        .clone();
    assert_eq!(node["changed"], false);
    assert_eq!(node["value"], node["file_value"]);
}

#[tokio::test]
async fn ui_settings_change_at_run_time_sqlite() {
    settings_change_at_run_time(Backend::Sqlite).await;
}

#[tokio::test]
async fn ui_settings_change_at_run_time_postgres() {
    settings_change_at_run_time(Backend::Postgres).await;
}
