//! Enlistment and the metadata API at the HTTP level, on both databases: a rack's boot request
//! enlists an unknown MAC and mints a per-boot token; the token reaches only its own machine and
//! dies with the next boot; operator scripts are validated; results land in the API; a failing
//! script fails commissioning.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::util::{Backend, TestApp};

pub async fn rack_token(app: &TestApp) -> String {
    let secret = app.rack_secret().await;
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/rack/register",
            None,
            Some(json!({"name": "rack1", "secret": secret, "interfaces": []})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["token"].as_str().unwrap().to_string()
}

async fn post_raw(app: &TestApp, path: &str, token: &str, body: &str) -> StatusCode {
    reqwest::Client::new()
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
}

const LSCPU: &str =
    r#"{"lscpu":[{"field":"CPU(s):","data":"4"},{"field":"Model name:","data":"Test CPU"}]}"#;

/// Reports every built-in with plausible output (and `extra` for operator scripts).
pub async fn run_scripts(app: &TestApp, token: &str, extra_exit: i32) {
    let (s, scripts) = app
        .call(Method::GET, "/api/v1/metadata/scripts", Some(token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{scripts}");
    for sc in scripts.as_array().unwrap() {
        let name = sc["name"].as_str().unwrap();
        let (out, code) = match name {
            "kiln-cpu" => (LSCPU.to_string(), 0),
            "kiln-memory" => ("MemTotal: 4000000 kB\n".to_string(), 0),
            "kiln-block-devices" => (r#"[{"name":"sda","size_bytes":1000000000,"model":"DISK","serial":"S1","rotational":false,"transport":"sata"}]"#.to_string(), 0),
            "kiln-interfaces" => (r#"[{"name":"eth0","mac":"52:54:00:c0:00:01","link":true,"speed_mbps":1000,"driver":"e1000"},{"name":"eth1","mac":"52:54:00:c0:00:02","link":false,"speed_mbps":null,"driver":"e1000"}]"#.to_string(), 0),
            "kiln-dmidecode" => ("firmware: uefi\nSystem Information\n\tManufacturer: ACME\n".to_string(), 0),
            "kiln-bmc" => ("bmc: absent\n".to_string(), 0),
            "kiln-bmc-config" => ("no BMC (/dev/ipmi0 absent): nothing to configure\n".to_string(), 0),
            "kiln-lshw" => ("{}".to_string(), 0),
            _ => ("operator output\nsomething broke\n".to_string(), extra_exit),
        };
        let (s, v) = app
            .call(
                Method::POST,
                &format!("/api/v1/metadata/scripts/{name}/start"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let s = post_raw(
            app,
            &format!("/api/v1/metadata/scripts/{name}/result?exit_code={code}&duration_ms=5"),
            token,
            &out,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
}

both!(
    enlist_token_scope_results_and_failure,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        let rack = rack_token(&app).await;

        // An unknown MAC that PXE boots: enlisted, commissioning (default on), with a token.
        let (s, a) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52-54-00-C0-00-01"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{a}");
        assert_eq!(a["enlisted"], true);
        assert_eq!(a["status"], "commissioning");
        let id = a["system_id"].as_str().unwrap().to_string();
        let token = app.claim(&rack, "52-54-00-C0-00-01", &a).await;
        assert!(token.starts_with("boot_"));
        // Asking again: the same machine, not enlisted again; a new token replaces the old one.
        let (_, a2) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:c0:00:01"})),
            )
            .await;
        assert_eq!(a2["system_id"], id.as_str());
        assert_eq!(a2["enlisted"], false);
        let (s, _) = app
            .call(Method::GET, "/api/v1/metadata/meta", Some(&token), None)
            .await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "the previous boot's token is dead"
        );
        // The new boot voided the last one's claim code too; the new code is good once.
        for (answer, used) in [(&a, "the last boot's"), (&a2, "")] {
            if used.is_empty() {
                app.claim(&rack, "52:54:00:c0:00:01", answer).await;
            }
            let (s, v) = app
                .call(
                    Method::POST,
                    "/api/v1/rack/claim",
                    Some(&rack),
                    Some(json!({"mac": "52:54:00:c0:00:01", "claim": answer["claim"]})),
                )
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{used} code: {v}");
        }
        assert!(
            a2["token"].is_null(),
            "the credential itself in the answer: {a2}"
        );
        let (_, a2) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:c0:00:01"})),
            )
            .await;
        let token = app.claim(&rack, "52:54:00:c0:00:01", &a2).await;
        let (s, me) = app
            .call(Method::GET, "/api/v1/metadata/meta", Some(&token), None)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(me["system_id"], id.as_str());

        // Boot tokens are not API tokens and the other way round; racks only with rack tokens.
        let (s, _) = app
            .call(Method::GET, "/api/v1/machines", Some(&token), None)
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = app
            .admin(Method::GET, "/api/v1/metadata/scripts", None)
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&token),
                Some(json!({"mac": "52:54:00:c0:00:09"})),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "nope"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["field"], "mac");

        // Operator scripts: validated, reserved names refused, users may read but not write.
        let (s, v) = app
            .admin(
                Method::POST,
                "/api/v1/scripts",
                Some(json!({"name": "kiln-evil", "content": "#!/bin/sh\n"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "name");
        let (s, v) = app
            .admin(Method::POST, "/api/v1/scripts", Some(json!({"name": "50-check", "content": "#!/bin/sh\nexit 1\n", "timeout_secs": 0})))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "timeout_secs");
        let (s, _) = app
            .user(
                Method::POST,
                "/api/v1/scripts",
                Some(json!({"name": "50-check", "content": "#!/bin/sh\n"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v) = app
            .admin(Method::POST, "/api/v1/scripts", Some(json!({"name": "50-check", "content": "#!/bin/sh\nexit 1\n", "timeout_secs": 30})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = app.user(Method::GET, "/api/v1/scripts", None).await;
        assert_eq!(s, StatusCode::OK);
        let names: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.first(), Some(&"kiln-cpu"));
        assert_eq!(
            names.last(),
            Some(&"50-check"),
            "operator scripts run after the built-ins"
        );
        let (s, _) = app
            .admin(Method::DELETE, "/api/v1/scripts/kiln-cpu", None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);

        // The runner reports; the operator script fails → Failed commissioning, output kept.
        run_scripts(&app, &token, 2).await;
        let (s, out) = app
            .call(Method::POST, "/api/v1/metadata/done", Some(&token), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{out}");
        assert_eq!(out["status"], "failed_commissioning");
        assert!(
            out["message"]
                .as_str()
                .unwrap()
                .contains("50-check exited 2"),
            "{out}"
        );
        let (_, m) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}"), None)
            .await;
        assert_eq!(m["status"], "failed_commissioning");
        let (_, rs) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}/results"), None)
            .await;
        let failed: Vec<&Value> = rs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "failed")
            .collect();
        assert_eq!(failed.len(), 1, "{rs}");
        assert!(failed[0]["output"]
            .as_str()
            .unwrap()
            .contains("something broke"));
        // A finished machine's boot takes no more results.
        let s = post_raw(
            &app,
            "/api/v1/metadata/scripts/kiln-cpu/result?exit_code=0",
            &token,
            LSCPU,
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);

        // Fixed script, commission again → Ready with the inventory and the second NIC recorded.
        let (s, _) = app
            .admin(
                Method::PUT,
                "/api/v1/scripts/50-check",
                Some(json!({"content": "#!/bin/sh\necho ok\n"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = app.act(&app.admin_token.clone(), &id, "commission").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (_, a3) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:c0:00:01"})),
            )
            .await;
        let token = app.claim(&rack, "52:54:00:c0:00:01", &a3).await;
        run_scripts(&app, &token, 0).await;
        let (s, out) = app
            .call(Method::POST, "/api/v1/metadata/done", Some(&token), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{out}");
        assert_eq!(out["status"], "ready");
        let (_, m) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}"), None)
            .await;
        assert_eq!(m["status"], "ready");
        assert_eq!(m["cpu_count"], 4);
        assert_eq!(m["memory_mib"], 3906);
        assert_eq!(m["storage_bytes"], 1_000_000_000_i64);
        assert_eq!(m["hardware"]["firmware"], "uefi");
        assert_eq!(m["hardware"]["system_vendor"], "ACME");
        let macs: Vec<&str> = m["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["mac"].as_str().unwrap())
            .collect();
        assert_eq!(macs, vec!["52:54:00:c0:00:01", "52:54:00:c0:00:02"]);

        // A Ready machine boots nothing ephemeral: no token.
        let (_, a4) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:c0:00:01"})),
            )
            .await;
        assert_eq!(a4["status"], "ready");
        assert!(a4["claim"].is_null() && a4["token"].is_null());

        // Machine reports: validated, filed under the token's machine.
        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/metadata/events",
                Some(&token),
                Some(json!({"event_type": "x y", "description": "d"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        app.stop().await;
    }
);

both!(
    enlistment_without_commissioning_stays_new,
    |b: Backend| async move {
        let app = TestApp::start_with(b, |c| c.lifecycle.enlist_commission = false).await;
        let rack = rack_token(&app).await;
        let (s, a) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:c0:01:01", "architecture": "arm64/generic"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{a}");
        assert_eq!(a["status"], "new");
        assert_eq!(
            a["architecture"], "arm64/generic",
            "the architecture DHCP saw"
        );
        // New machines boot the ephemeral environment too (the inventory is recorded, status kept).
        let token = app.claim(&rack, "52:54:00:c0:01:01", &a).await;
        run_scripts(&app, &token, 0).await;
        let (_, out) = app
            .call(Method::POST, "/api/v1/metadata/done", Some(&token), None)
            .await;
        assert_eq!(out["status"], "new", "{out}");
        let (_, m) = app
            .admin(
                Method::GET,
                &format!("/api/v1/machines/{}", a["system_id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(m["cpu_count"], 4);
        app.stop().await;
    }
);
