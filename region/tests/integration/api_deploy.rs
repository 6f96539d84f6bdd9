//! Deployment over HTTP: SSH keys, allocation by constraints, deploy/release validation (refused
//! before anything is powered), and the installer → deployed system → release protocol driven
//! with the machine's own credential.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api_commissioning::{rack_token, run_scripts};
use crate::both;
use crate::util::{Backend, TestApp};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDSBzytR+ySadoinxdux/UhGL8Oq0zLRd7bY7WpjN5F8 user@host";

async fn ready(app: &TestApp, host: &str, mac: &str, tags: &[&str]) -> String {
    let id = app.machine(host, mac).await;
    if !tags.is_empty() {
        let (s, v) = app
            .admin(
                Method::PATCH,
                &format!("/api/v1/machines/{id}"),
                Some(json!({"tags": tags})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    app.act(&app.admin_token.clone(), &id, "mark-broken").await;
    let (s, v) = app.act(&app.admin_token.clone(), &id, "mark-fixed").await;
    assert_eq!(v["status"], "ready", "{s} {v}");
    id
}

/// How many times the machine entered a deployment (its status_changed events naming Deploy).
async fn deploy_transitions(app: &TestApp, id: &str) -> usize {
    let (_, evs) = app
        .admin(
            Method::GET,
            &format!("/api/v1/machines/{id}/events?limit=500"),
            None,
        )
        .await;
    evs.as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["event_type"] == "status_changed"
                && e["description"].as_str().unwrap().contains("Deploy")
        })
        .count()
}

both!(
    ssh_keys_are_validated_and_per_user,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        let (s, k) = app
            .user(
                Method::POST,
                "/api/v1/users/me/ssh-keys",
                Some(json!({"key": KEY})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{k}");
        assert_eq!(
            k["fingerprint"],
            "SHA256:/3lIHVKo5osFqUKiQiHGVRw5ZKzTeul+vIIVhV+eLK0"
        );
        assert_eq!(k["key_type"], "ssh-ed25519");
        let (s, v) = app
            .user(
                Method::POST,
                "/api/v1/users/me/ssh-keys",
                Some(json!({"key": KEY})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        for (bad, says) in [
            ("ssh-dss AAAAB3NzaC1kc3MAAAA x", "not a key type"),
            ("ssh-ed25519 %%%%", "not valid base64"),
            (
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIDSBzytR+ySadoinxdux/UhGL8Oq0zLRd7bY7WpjN5F8",
                "disagree",
            ),
        ] {
            let (s, v) = app
                .user(
                    Method::POST,
                    "/api/v1/users/me/ssh-keys",
                    Some(json!({"key": bad})),
                )
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
            assert_eq!(v["field"], "key");
            assert!(v["message"].as_str().unwrap().contains(says), "{v}");
        }
        // Each user sees and deletes only their own keys.
        let (_, mine) = app
            .user(Method::GET, "/api/v1/users/me/ssh-keys", None)
            .await;
        assert_eq!(mine.as_array().unwrap().len(), 1);
        let (_, theirs) = app
            .admin(Method::GET, "/api/v1/users/me/ssh-keys", None)
            .await;
        assert_eq!(theirs.as_array().unwrap().len(), 0);
        let kid = k["id"].as_str().unwrap();
        let (s, _) = app
            .admin(
                Method::DELETE,
                &format!("/api/v1/users/me/ssh-keys/{kid}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app
            .user(
                Method::DELETE,
                &format!("/api/v1/users/me/ssh-keys/{kid}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        app.stop().await;
    }
);

both!(allocation_by_constraints, |b: Backend| async move {
    let app = TestApp::start(b).await;
    let gpu = ready(&app, "gpu1", "52:54:00:d0:00:01", &["gpu", "rack-a"]).await;
    let plain = ready(&app, "plain1", "52:54:00:d0:00:02", &["rack-a"]).await;
    ready(&app, "other1", "52:54:00:d0:00:03", &[]).await;
    let (s, m) = app
        .user(
            Method::POST,
            "/api/v1/machines/allocate",
            Some(json!({"tags": ["gpu"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["system_id"], gpu.as_str());
    assert_eq!(m["status"], "allocated");
    assert_eq!(m["owner"], "alice");
    // The GPU machine is taken now: nothing else has the tag, and the refusal names it.
    let (s, v) = app
        .user(
            Method::POST,
            "/api/v1/machines/allocate",
            Some(json!({"tags": ["gpu"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["message"].as_str().unwrap().contains("tag gpu"), "{v}");
    let (s, v) = app
        .user(
            Method::POST,
            "/api/v1/machines/allocate",
            Some(json!({"cpu_count": 64})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        v["message"].as_str().unwrap().contains("cpu_count>=64"),
        "{v}"
    );
    let (s, v) = app
        .user(
            Method::POST,
            "/api/v1/machines/allocate",
            Some(json!({"not_tags": ["rack-a"], "tags": ["rack-a"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        v["message"].as_str().unwrap().contains("none meets all"),
        "{v}"
    );
    let (s, v) = app
        .user(
            Method::POST,
            "/api/v1/machines/allocate",
            Some(json!({"memory_mib": -1})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "memory_mib");
    let (s, v) = app
        .user(
            Method::POST,
            "/api/v1/machines/allocate",
            Some(json!({"flavor": "big"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, m) = app
        .user(
            Method::POST,
            "/api/v1/machines/allocate",
            Some(json!({"system_id": plain})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["system_id"], plain.as_str());
    app.stop().await;
});

both!(
    deploy_input_is_refused_before_anything_is_powered,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        let admin = app.admin_token.clone();
        let id = ready(&app, "dep1", "52:54:00:d1:00:01", &[]).await;
        let deploy = |body: Value| {
            let app = &app;
            let id = id.clone();
            async move {
                app.call(
                    Method::POST,
                    &format!("/api/v1/machines/{id}/deploy"),
                    Some(&app.admin_token.clone()),
                    Some(body),
                )
                .await
            }
        };
        // No image at all.
        let (s, v) = deploy(json!({})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "os");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("kiln images import"),
            "{v}"
        );
        app.upload_boot_files(
            "os",
            &[("root.squashfs", b"hsqs not really a squashfs".to_vec())],
        )
        .await;
        for (body, field, says) in [
            (json!({"os": "windows"}), "os", "no windows image"),
            (json!({"release": "sid"}), "release", "debian has: bookworm"),
            (
                json!({"user_data": "#cloud-config\nruncmd: [\n"}),
                "user_data",
                "not valid YAML",
            ),
            (
                json!({"user_data": "#cloud-config\n- a\n- b\n"}),
                "user_data",
                "not a YAML mapping",
            ),
            (
                json!({"user_data": "hello"}),
                "user_data",
                "must start with #cloud-config",
            ),
            (
                json!({"user_data": format!("#!/bin/sh\n{}", "x".repeat(1 << 20))}),
                "user_data",
                "at most 1 MiB",
            ),
            (
                json!({"volume_size_gib": 4}),
                "volume_size_gib",
                "with target iscsi only",
            ),
        ] {
            let (s, v) = deploy(body.clone()).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
            assert_eq!(v["field"], field, "{body}: {v}");
            assert!(v["message"].as_str().unwrap().contains(says), "{body}: {v}");
        }
        let (s, v) = deploy(json!({"target": "floppy"})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        // A machine never commissioned has no known disk.
        let (s, v) = deploy(json!({})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("commission it first"),
            "{v}"
        );
        // Nothing happened: still Ready, no owner, no deployment, no power job.
        let (_, m) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}"), None)
            .await;
        assert_eq!(m["status"], "ready", "{m}");
        assert!(m["owner"].is_null() && m.get("deployment").is_none(), "{m}");
        assert_eq!(deploy_transitions(&app, &id).await, 0);

        // Commissioned (a 1 GB disk, sda, serial S1): a too large image and a missing disk are refused.
        let rack = rack_token(&app).await;
        let (_, a) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:c0:00:01"})),
            )
            .await;
        let cid = a["system_id"].as_str().unwrap().to_string();
        let token = app.claim(&rack, "52:54:00:c0:00:01", &a).await;
        run_scripts(&app, &token, 0).await;
        let (s, v) = app
            .call(Method::POST, "/api/v1/metadata/done", Some(&token), None)
            .await;
        assert_eq!(v["status"], "ready", "{s} {v}");
        let (s, v) = app
            .call(
                Method::POST,
                &format!("/api/v1/machines/{cid}/deploy"),
                Some(&admin),
                Some(json!({"boot_disk": "nvme9n1"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "boot_disk");
        assert!(
            v["message"].as_str().unwrap().contains("sda (serial S1)"),
            "{v}"
        );
        app.upload_release_files("os", "trixie", &[("big.squashfs", vec![0u8; 64 << 20])])
            .await;
        let (s, v) = app
            .call(
                Method::POST,
                &format!("/api/v1/machines/{cid}/deploy"),
                Some(&admin),
                Some(json!({"release": "trixie"})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["error"], "disk_too_small", "{v}");
        let (_, m) = app
            .admin(Method::GET, &format!("/api/v1/machines/{cid}"), None)
            .await;
        assert_eq!(m["status"], "ready", "{m}");
        app.stop().await;
    }
);

both!(
    deploy_protocol_installed_deployed_release,
    |b: Backend| async move {
        let app = TestApp::start(b).await;
        let admin = app.admin_token.clone();
        let rack = rack_token(&app).await;
        let (s, _) = app
            .user(
                Method::POST,
                "/api/v1/users/me/ssh-keys",
                Some(json!({"key": KEY})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        app.upload_boot_files("os", &[("root.squashfs", b"hsqs a root".to_vec())])
            .await;
        let (_, a) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:c0:00:01"})),
            )
            .await;
        let id = a["system_id"].as_str().unwrap().to_string();
        let token = app.claim(&rack, "52:54:00:c0:00:01", &a).await;
        run_scripts(&app, &token, 0).await;
        app.call(Method::POST, "/api/v1/metadata/done", Some(&token), None)
            .await;

        // The user deploys with user-data; Deploying, owned by them, a deployment recorded.
        let ud = "#cloud-config\nruncmd:\n  - [touch, /root/kiln-marker]\n# secret: hunter2\n";
        let (s, m) = app
            .user(
                Method::POST,
                &format!("/api/v1/machines/{id}/deploy"),
                Some(json!({"user_data": ud})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{m}");
        assert_eq!(m["status"], "deploying");
        assert_eq!(m["owner"], "alice");
        assert_eq!(m["deployment"]["boot_disk"], "sda");
        assert_eq!(m["deployment"]["has_user_data"], true);
        let instance = m["deployment"]["instance_id"].as_str().unwrap().to_string();
        // A second deploy says the truth about why not.
        let (s, v) = app
            .user(Method::POST, &format!("/api/v1/machines/{id}/deploy"), None)
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("being deployed now"),
            "{v}"
        );

        // The installer's boot: a new credential; its plan.
        let (_, a) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:c0:00:01"})),
            )
            .await;
        let dtoken = app.claim(&rack, "52:54:00:c0:00:01", &a).await;
        assert_eq!(a["local_boot"], false);
        let (s, meta) = app
            .call(Method::GET, "/api/v1/metadata/meta", Some(&dtoken), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{meta}");
        assert_eq!(meta["deployment"]["boot_disk_serial"], "S1");
        assert_eq!(meta["deployment"]["image_format"], "squashfs");
        assert!(meta["deployment"]["image_path"]
            .as_str()
            .unwrap()
            .ends_with("/root.squashfs"));
        // cloud-init's phone-home before the OS is installed is refused.
        let (s, _) = app
            .call(
                Method::POST,
                &format!("/api/v1/metadata/nocloud/{dtoken}/phone-home"),
                None,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, v) = app
        .call(Method::POST, "/api/v1/metadata/deploy/installed", Some(&dtoken),
              Some(json!({"esp_uuid": "ABCD-1234", "root_uuid": "0b1f6f9e-1111-4222-8333-444455556666", "output": "all good"})))
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        // Racks now boot it from disk, with the ESP known, and mint no new credential.
        let (_, snap) = app
            .call(Method::GET, "/api/v1/rack/snapshot", Some(&rack), None)
            .await;
        let sm = snap["machines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["system_id"] == id.as_str())
            .unwrap()
            .clone();
        assert_eq!(sm["local_boot"], true, "{sm}");
        assert_eq!(sm["esp_uuid"], "ABCD-1234");
        let (_, a) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:c0:00:01"})),
            )
            .await;
        assert_eq!(a["local_boot"], true, "{a}");
        assert!(a["claim"].is_null() && a["token"].is_null(), "{a}");

        // The seed, through a rack (it says where the machine reaches it).
        let seed = |file: &'static str| {
            let (app, dtoken) = (&app, dtoken.clone());
            async move {
                let r = reqwest::Client::new()
                    .get(app.url(&format!("/api/v1/metadata/nocloud/{dtoken}/{file}")))
                    .header("x-kiln-rack-url", "http://10.20.0.2:5248")
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.text().await.unwrap())
            }
        };
        let (s, md) = seed("meta-data").await;
        assert_eq!(s, StatusCode::OK, "{md}");
        assert!(md.contains(&instance) && md.contains(KEY), "{md}");
        let (_, u) = seed("user-data").await;
        assert_eq!(u, ud);
        let (_, vd) = seed("vendor-data").await;
        assert!(
            vd.contains(&format!(
                "http://10.20.0.2:5248/metadata/v1/nocloud/{dtoken}/phone-home"
            )),
            "{vd}"
        );
        let (s, _) = app
            .call(
                Method::GET,
                "/api/v1/metadata/nocloud/boot_nottherealtoken/meta-data",
                None,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // The installer output is the owner's to read; the user-data is in no event.
        let (s, d) = app
            .user(
                Method::GET,
                &format!("/api/v1/machines/{id}/deployment"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(d["installer_output"], "all good");
        let (_, evs) = app
            .admin(Method::GET, "/api/v1/events?limit=1000", None)
            .await;
        assert!(!evs.to_string().contains("hunter2"));

        // Phone-home: Deployed (twice is fine).
        for _ in 0..2 {
            let (s, v) = app
                .call(
                    Method::POST,
                    &format!("/api/v1/metadata/nocloud/{dtoken}/phone-home"),
                    None,
                    Some(json!({})),
                )
                .await;
            assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        }
        let (_, m) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}"), None)
            .await;
        assert_eq!(m["status"], "deployed", "{m}");
        assert_eq!(m["deployment"]["state"], "deployed");

        // Release with erase flags but no erase: refused. Release: the credential is dead.
        let (s, v) = app
            .user(
                Method::POST,
                &format!("/api/v1/machines/{id}/release"),
                Some(json!({"quick_erase": true})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        let (s, m) = app
            .user(
                Method::POST,
                &format!("/api/v1/machines/{id}/release"),
                Some(json!({"erase": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{m}");
        assert_eq!(m["status"], "disk_erasing", "{m}");
        let (s, _) = seed("meta-data").await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "the released deployment's credential still works"
        );
        // The eraser's boot: its plan, its report → Ready, no owner.
        let (_, a) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:c0:00:01"})),
            )
            .await;
        let etoken = app.claim(&rack, "52:54:00:c0:00:01", &a).await;
        let (_, meta) = app
            .call(Method::GET, "/api/v1/metadata/meta", Some(&etoken), None)
            .await;
        assert_eq!(meta["erase"]["mode"], "quick", "{meta}");
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/metadata/erase/done",
                Some(&etoken),
                Some(json!({"ok": true, "step": "sda: wiped", "output": "log"})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, m) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}"), None)
            .await;
        assert_eq!(m["status"], "ready", "{m}");
        assert!(m["owner"].is_null());

        // Redeploy: a new instance-id.
        let (s, m) = app
            .call(
                Method::POST,
                &format!("/api/v1/machines/{id}/deploy"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{m}");
        assert_ne!(m["deployment"]["instance_id"], instance.as_str());
        // A failed installer step: Failed deployment with its output.
        let (_, a) = app
            .call(
                Method::POST,
                "/api/v1/rack/boot",
                Some(&rack),
                Some(json!({"mac": "52:54:00:c0:00:01"})),
            )
            .await;
        let ftoken = app.claim(&rack, "52:54:00:c0:00:01", &a).await;
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/metadata/deploy/failed",
                Some(&ftoken),
                Some(json!({"step": "image", "output": "curl: (22) 404\nno image"})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, m) = app
            .admin(Method::GET, &format!("/api/v1/machines/{id}"), None)
            .await;
        assert_eq!(m["status"], "failed_deployment", "{m}");
        let (_, d) = app
            .admin(
                Method::GET,
                &format!("/api/v1/machines/{id}/deployment"),
                None,
            )
            .await;
        assert!(
            d["installer_output"].as_str().unwrap().contains("no image"),
            "{d}"
        );
        app.stop().await;
    }
);
