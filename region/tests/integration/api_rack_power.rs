//! Power jobs (they carry BMC secrets) go only to an approved rack an admin said drives the BMC's
//! network; a rack's own claim about its interfaces is not enough.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::util::{Backend, TestApp};

/// Enrols a rack with an auto-approved token naming `nets`, claiming an interface on 10.20.0.0/24.
async fn enrol(app: &TestApp, name: &str, nets: Value) -> (String, String) {
    let (s, t) = app
        .admin(
            Method::POST,
            "/api/v1/racks/tokens",
            Some(json!({"auto_approve": true, "power_networks": nets})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/rack/register",
            None,
            Some(json!({"name": name, "enrolment_token": t["token"],
                "interfaces": [{"name": "br0", "mac": "52:54:00:0a:00:01", "addresses": ["10.20.0.2/24"]}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (
        v["rack_id"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    )
}

async fn jobs(app: &TestApp, token: &str) -> Vec<Value> {
    let (s, v) = app
        .call(
            Method::GET,
            "/api/v1/rack/power-jobs?wait=0",
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array().unwrap().clone()
}

both!(
    power_jobs_go_only_to_the_rack_an_admin_named_for_the_bmc_network,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        // A rack on the BMC's network by its own account, with no power network named.
        let (a_id, a) = enrol(&app, "rack-a", json!([])).await;
        let (_, m) = app
            .admin(
                Method::POST,
                "/api/v1/machines",
                Some(json!({"hostname": "bmc1", "power_type": "ipmi",
                    "power_parameters": {"power_address": "10.20.0.50", "power_user": "admin",
                        "power_pass": "s3cret"}})),
            )
            .await;
        let id = m["system_id"].as_str().unwrap().to_string();
        let (s, v) = app
            .admin(
                Method::POST,
                &format!("/api/v1/machines/{id}/power-on"),
                Some(json!({"wait_secs": 0})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert!(
            jobs(&app, &a).await.is_empty(),
            "a claimed interface got the job"
        );
        // The job waits, and the machine's events say why.
        let (_, evs) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}/events"), None)
            .await;
        let text = evs.to_string();
        assert!(
            text.contains("power_waiting")
                && text.contains("10.20.0.50")
                && text.contains("--power-network"),
            "{text}"
        );

        // Only admins name networks, and only real ones.
        let (s, _) = app
            .user(
                Method::PATCH,
                &format!("/api/v1/racks/{a_id}"),
                Some(json!({"power_networks": ["10.20.0.0/24"]})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v) = app
            .admin(
                Method::PATCH,
                &format!("/api/v1/racks/{a_id}"),
                Some(json!({"power_networks": ["10.20.0.300/24"]})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "power_networks");

        // A rack serving every network and one named for the BMC's /24: the /24 one drives it.
        let (_, wide) = enrol(&app, "rack-wide", json!(["0.0.0.0/0"])).await;
        let (s, r) = app
            .admin(
                Method::PATCH,
                &format!("/api/v1/racks/{a_id}"),
                Some(json!({"power_networks": ["10.20.0.7/24"]})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!(r["power_networks"], json!(["10.20.0.0/24"]));
        assert!(jobs(&app, &wide).await.is_empty(), "the wider rack took it");
        let got = jobs(&app, &a).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["system_id"], id.as_str());
        assert_eq!(got[0]["power_parameters"]["power_pass"], "s3cret");

        // A BMC elsewhere goes to the rack serving every network, never to rack-a.
        let (_, m2) = app
            .admin(
                Method::POST,
                "/api/v1/machines",
                Some(json!({"hostname": "bmc2", "power_type": "ipmi",
                    "power_parameters": {"power_address": "10.99.0.5"}})),
            )
            .await;
        let id2 = m2["system_id"].as_str().unwrap().to_string();
        app.admin(
            Method::POST,
            &format!("/api/v1/machines/{id2}/power-off"),
            Some(json!({"wait_secs": 0})),
        )
        .await;
        assert!(jobs(&app, &a).await.is_empty());
        let got = jobs(&app, &wide).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["system_id"], id2.as_str());
        app.stop().await;
    }
);
