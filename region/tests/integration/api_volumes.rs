//! Root on iSCSI over HTTP: what a deployment with `target: iscsi` needs before anything is
//! powered (an iSCSI-bootable image, a rack with a working volume store), the rack's volume feed
//! (secrets for that rack only), the reports that power the machine on or fail the deployment,
//! and release removing the volume after the machine is off.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::util::{Backend, TestApp};

async fn ipmi_machine(app: &TestApp, host: &str, mac: &str) -> String {
    let (s, m) = app
        .admin(
            Method::POST,
            "/api/v1/machines",
            Some(
                json!({"hostname": host, "boot_mac": mac, "power_type": "ipmi",
                "power_parameters": {"power_address": "10.0.0.9", "power_user": "admin",
                    "power_pass": "x"}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let id = m["system_id"].as_str().unwrap().to_string();
    app.act(&app.admin_token.clone(), &id, "mark-broken").await;
    let (_, v) = app.act(&app.admin_token.clone(), &id, "mark-fixed").await;
    assert_eq!(v["status"], "ready", "{v}");
    id
}

async fn heartbeat(app: &TestApp, rack: &str, iscsi: Value) {
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/rack/heartbeat",
            Some(rack),
            Some(json!({"interfaces": [], "iscsi": iscsi})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
}

async fn deploy(app: &TestApp, id: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/machines/{id}/deploy"),
        Some(&app.admin_token.clone()),
        Some(body),
    )
    .await
}

/// The rack's power jobs (system id, action, job id), taken.
async fn jobs(app: &TestApp, rack: &str) -> Vec<(String, String, String)> {
    let (s, v) = app
        .call(
            Method::GET,
            "/api/v1/rack/power-jobs?wait=0",
            Some(rack),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["system_id"].as_str().unwrap().to_string(),
                j["action"].as_str().unwrap().to_string(),
                j["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn feed(app: &TestApp, rack: &str) -> Vec<Value> {
    let (s, v) = app
        .call(Method::GET, "/api/v1/rack/volumes", Some(rack), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["volumes"].as_array().unwrap().clone()
}

async fn report(app: &TestApp, rack: &str, vol: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/rack/volumes/{vol}"),
        Some(rack),
        Some(body),
    )
    .await
}

async fn machine(app: &TestApp, id: &str) -> Value {
    app.admin(Method::GET, &format!("/api/v1/machines/{id}"), None)
        .await
        .1
}

both!(
    iscsi_deployments_need_a_rack_and_power_on_once_the_volume_is_served,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        let id = ipmi_machine(&app, "isc1", "52:54:00:f1:00:01").await;
        // An image with no kernel and initramfs of its own cannot boot from iSCSI.
        app.upload_boot_files("os", &[("root.squashfs", b"hsqs root".to_vec())])
            .await;
        let (s, v) = deploy(&app, &id, json!({"target": "iscsi"})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["field"], "os", "{v}");
        assert!(v["message"].as_str().unwrap().contains("initramfs"), "{v}");
        let (s, v) = deploy(&app, &id, json!({"volume_size_gib": 8})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "volume_size_gib", "{v}");
        // The newest image (trixie here) has them.
        let image = app
            .upload_release_files(
                "os",
                "trixie",
                &[
                    ("root.squashfs", b"hsqs root 2".to_vec()),
                    ("vmlinuz", b"kernel".to_vec()),
                    ("initrd", b"initramfs".to_vec()),
                ],
            )
            .await;
        // No rack serves volumes; then one whose tgtd is down: refused in words.
        let (s, v) = deploy(&app, &id, json!({"target": "iscsi", "release": "trixie"})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("--iscsi-store"),
            "{v}"
        );
        let rack = crate::api_commissioning::rack_token(&app).await;
        let st = |error: Value| {
            json!({"portal": "10.20.0.2:3260", "driver": "tgt", "clone_method": "reflink",
                "store_free_bytes": 100u64 << 30, "error": error})
        };
        heartbeat(
            &app,
            &rack,
            st(json!("tgtd is not running on control port 0")),
        )
        .await;
        let (s, v) = deploy(&app, &id, json!({"target": "iscsi", "release": "trixie"})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("tgtd is not running"),
            "{v}"
        );
        let m = machine(&app, &id).await;
        assert_eq!(m["status"], "ready", "{m}");
        assert!(jobs(&app, &rack).await.is_empty());

        // A working rack: Deploying, the volume is asked for, nothing is powered yet.
        heartbeat(&app, &rack, st(Value::Null)).await;
        let (s, m) = deploy(
            &app,
            &id,
            json!({"target": "iscsi", "release": "trixie", "volume_size_gib": 8}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{m}");
        assert_eq!(m["status"], "deploying", "{m}");
        let v = &m["boot_volume"];
        assert_eq!(v["state"], "creating", "{m}");
        assert_eq!(
            v["initiator_iqn"],
            format!("iqn.2026-12.org.kiln.initiator:{id}")
        );
        let vol = v["id"].as_str().unwrap().to_string();
        assert_eq!(v["target_iqn"], format!("iqn.2026-12.org.kiln:vol-{vol}"));
        assert!(
            jobs(&app, &rack).await.is_empty(),
            "powered before the volume"
        );
        // The image a live volume boots from cannot be deleted; a rack's bad report is refused.
        let (s, v) = app
            .admin(
                Method::DELETE,
                &format!("/api/v1/boot-resources/{image}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(v["message"].as_str().unwrap().contains(&id), "{v}");
        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/rack/heartbeat",
                Some(&rack),
                Some(
                    json!({"interfaces": [], "iscsi": {"portal": "10.20.0.2:3260", "driver": "tgt",
                    "clone_method": "magic", "store_free_bytes": 1}}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "iscsi.clone_method", "{v}");

        // The rack's feed has the secrets; the API never shows them.
        let f = feed(&app, &rack).await;
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0]["action"], "serve");
        assert_eq!(f[0]["requested_bytes"], 8u64 << 30);
        assert_eq!(f[0]["kernel"]["filename"], "vmlinuz");
        let secret = f[0]["chap_secret"].as_str().unwrap().to_string();
        assert_eq!(secret.len(), 16);
        let token = f[0]["seed_token"].as_str().unwrap().to_string();
        for text in [
            machine(&app, &id).await.to_string(),
            app.admin(Method::GET, "/api/v1/volumes", None)
                .await
                .1
                .to_string(),
            app.admin(
                Method::GET,
                &format!("/api/v1/machines/{id}/events?limit=100"),
                None,
            )
            .await
            .1
            .to_string(),
        ] {
            assert!(!text.contains(&secret) && !text.contains(&token), "{text}");
        }
        let (_, listed) = app.admin(Method::GET, "/api/v1/volumes", None).await;
        assert_eq!(listed[0]["system_id"], id.as_str(), "{listed}");
        assert_eq!(listed[0]["hostname"], "isc1");
        // A user sees no volume of a machine that is not theirs.
        let (s, mine) = app.user(Method::GET, "/api/v1/volumes", None).await;
        assert_eq!(s, StatusCode::OK, "{mine}");
        assert_eq!(mine, json!([]));
        // The seed credential the rack writes into the volume works.
        let seed = || {
            reqwest::Client::new()
                .get(app.url(&format!("/api/v1/metadata/nocloud/{token}/meta-data")))
                .header("x-kiln-rack-url", "http://10.20.0.2:5248")
                .send()
        };
        let resp = seed().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.text().await.unwrap().contains("local-hostname: isc1"));
        // The rack's boot question mints no credential (the volume holds it).
        let (_, ans) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:f1:00:01"})),
            )
            .await;
        assert_eq!(ans["iscsi"], true, "{ans}");
        assert!(ans["token"].is_null(), "{ans}");
        let (_, snap) = app
            .call(
                Method::GET,
                "/api/v1/rack/snapshot?wait=0",
                Some(&rack),
                None,
            )
            .await;
        let sm = snap["machines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["system_id"] == id.as_str())
            .unwrap()
            .clone();
        assert_eq!(sm["iscsi_boot"], true, "{sm}");

        // Ready: the power-cycle through PXE goes out now.
        let (s, v) = report(
            &app,
            &rack,
            &vol,
            json!({"state": "ready", "portal": "10.20.0.2:3260",
            "clone_method": "reflink", "size_bytes": 8u64 << 30, "used_bytes": 1u64 << 20,
            "message": "serving"}),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let j = jobs(&app, &rack).await;
        assert_eq!(j.len(), 1, "{j:?}");
        assert_eq!((j[0].0.as_str(), j[0].1.as_str()), (id.as_str(), "cycle"));
        let m = machine(&app, &id).await;
        assert_eq!(m["boot_volume"]["state"], "ready");
        assert_eq!(m["boot_volume"]["clone_method"], "reflink");
        assert_eq!(m["boot_volume"]["used_bytes"], 1u64 << 20);
        // A repeated report powers nothing again.
        report(
            &app,
            &rack,
            &vol,
            json!({"state": "ready", "used_bytes": 2u64 << 20}),
        )
        .await;
        let (s, _) = app
            .call(
                Method::POST,
                &format!("/api/v1/rack/power-jobs/{}", j[0].2),
                Some(&rack),
                Some(json!({"ok": true, "power_state": "on", "message": "cycled"})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert!(jobs(&app, &rack).await.is_empty());
        assert_eq!(
            machine(&app, &id).await["boot_volume"]["used_bytes"],
            2u64 << 20
        );

        // cloud-init on the volume phones home: Deployed.
        let (s, v) = app
            .call(
                Method::POST,
                &format!("/api/v1/metadata/nocloud/{token}/phone-home"),
                None,
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        assert_eq!(machine(&app, &id).await["status"], "deployed");

        // Release keeping the file: the rack is told to remove the target only once the
        // machine is off.
        let (s, v) = app
            .admin(
                Method::POST,
                &format!("/api/v1/machines/{id}/release"),
                Some(json!({"keep_volume": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["boot_volume"]["state"], "removing", "{v}");
        let f = feed(&app, &rack).await;
        assert_eq!(
            f[0]["action"], "hold",
            "removed before the power-off: {f:?}"
        );
        let off = jobs(&app, &rack).await;
        assert_eq!(off[0].1, "off", "{off:?}");
        app.call(
            Method::POST,
            &format!("/api/v1/rack/power-jobs/{}", off[0].2),
            Some(&rack),
            Some(json!({"ok": true, "power_state": "off", "message": "off"})),
        )
        .await;
        let f = feed(&app, &rack).await;
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0]["action"].as_str(), f[0]["keep_file"].as_bool()),
            (Some("remove"), Some(true))
        );
        let (s, v) = report(
            &app,
            &rack,
            &vol,
            json!({"state": "removed", "message": "target removed"}),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let m = machine(&app, &id).await;
        assert_eq!(m["status"], "ready", "{m}");
        assert_eq!(m["boot_volume"]["state"], "kept", "{m}");
        assert!(feed(&app, &rack).await.is_empty());
        let (_, evs) = app
            .admin(
                Method::GET,
                &format!("/api/v1/machines/{id}/events?limit=100"),
                None,
            )
            .await;
        let evs = evs.to_string();
        for e in ["volume_ready", "volume_removing", "volume_removed"] {
            assert!(evs.contains(e), "no {e}: {evs}");
        }
        // The old credential is dead.
        let resp = seed().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        // Bad reports are refused in words.
        let (s, v) = report(&app, &rack, &vol, json!({"state": "melted"})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("ready, failed or removed"),
            "{v}"
        );
        let (s, _) = report(&app, &rack, "nosuchvolume", json!({"state": "ready"})).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // A volume the rack cannot make fails the deployment before anything is powered.
        let (s, m) = deploy(&app, &id, json!({"target": "iscsi", "release": "trixie"})).await;
        assert_eq!(s, StatusCode::OK, "{m}");
        let vol2 = m["boot_volume"]["id"].as_str().unwrap().to_string();
        assert_ne!(vol2, vol);
        let (s, v) = report(
            &app,
            &rack,
            &vol2,
            json!({"state": "failed",
            "message": "cannot store the volume: No space left on device"}),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let m = machine(&app, &id).await;
        assert_eq!(m["status"], "failed_deployment", "{m}");
        assert_eq!(m["boot_volume"]["state"], "failed");
        assert!(jobs(&app, &rack).await.is_empty());
        let (_, evs) = app
            .admin(
                Method::GET,
                &format!("/api/v1/machines/{id}/events?limit=100"),
                None,
            )
            .await;
        assert!(evs.to_string().contains("No space left on device"), "{evs}");
        app.stop().await;
    }
);
