//! Boot resources: streamed upload with sha256 verification, download with Range, delete.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::both;
use crate::util::{Backend, TestApp};

fn stored_files(app: &TestApp) -> usize {
    std::fs::read_dir(app.db.data_dir().join("images/by-sha256"))
        .unwrap()
        .count()
}

both!(upload_verify_download_delete, |b: Backend| async move {
    let app = TestApp::start(b).await;
    let (s, v) = app
        .admin(
            Method::POST,
            "/api/v1/boot-resources",
            Some(json!({"os": "debian", "release": "bookworm", "arch": "amd64"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["arch"], "amd64/generic");
    let (s, _) = app
        .admin(
            Method::POST,
            "/api/v1/boot-resources",
            Some(json!({"os": "debian", "release": "bookworm", "arch": "amd64"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let sha = hex::encode(Sha256::digest(&data));
    let put = |name: &str, sha: &str, body: Vec<u8>| {
        app.http
            .put(app.url(&format!(
                "/api/v1/boot-resources/{id}/files/{name}?sha256={sha}"
            )))
            .bearer_auth(&app.admin_token)
            .body(body)
            .send()
    };
    // Wrong checksum: 400, nothing stored.
    let wrong = hex::encode(Sha256::digest(b"something else"));
    let r = put("vmlinuz", &wrong, data.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"], "checksum_mismatch");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("nothing was stored"));
    assert_eq!(stored_files(&app), 0);
    // Declared size larger than the body (a truncated upload): 400, nothing stored.
    let r = app
        .http
        .put(app.url(&format!(
            "/api/v1/boot-resources/{id}/files/vmlinuz?sha256={sha}&size=4000000"
        )))
        .bearer_auth(&app.admin_token)
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(stored_files(&app), 0);
    // Traversal in the file name is refused.
    let r = put("..%2Fetc", &sha, b"x".to_vec()).await.unwrap();
    assert!(
        r.status() == StatusCode::BAD_REQUEST || r.status() == StatusCode::NOT_FOUND,
        "{}",
        r.status()
    );
    // Users may not upload.
    let r = app
        .http
        .put(app.url(&format!(
            "/api/v1/boot-resources/{id}/files/vmlinuz?sha256={sha}"
        )))
        .bearer_auth(&app.user_token)
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // A good upload lands, and reads back whole and by range.
    let r = put("vmlinuz", &sha, data.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert_eq!(stored_files(&app), 1);
    let (_, v) = app
        .admin(Method::GET, &format!("/api/v1/boot-resources/{id}"), None)
        .await;
    assert_eq!(v["files"][0]["sha256"], sha.as_str());
    assert_eq!(v["files"][0]["size"], 3_000_000);
    let url = app.url(&format!("/api/v1/boot-resources/{id}/files/vmlinuz"));
    let got = app
        .http
        .get(&url)
        .bearer_auth(&app.user_token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), data.as_slice());
    let r = app
        .http
        .get(&url)
        .bearer_auth(&app.user_token)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[100..200]);

    // Delete removes the record and the now-unused file.
    let (s, _) = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/boot-resources/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(stored_files(&app), 0);
    let (_, v) = app.admin(Method::GET, "/api/v1/boot-resources", None).await;
    assert_eq!(v, json!([]));
    app.stop().await;
});

both!(stored_files_follow_their_rows, |b: Backend| async move {
    let app = TestApp::start(b).await;
    let by_sha = app.db.data_dir().join("images/by-sha256");
    let (a, bb) = (b"kernel A".to_vec(), b"kernel B".to_vec());
    let sha = |d: &[u8]| hex::encode(Sha256::digest(d));
    // Two resources share a file: deleting one keeps it for the other.
    let r1 = app
        .upload_release_files("ephemeral", "one", &[("vmlinuz", a.clone())])
        .await;
    let r2 = app
        .upload_release_files("ephemeral", "two", &[("vmlinuz", a.clone())])
        .await;
    let (s, _) = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/boot-resources/{r1}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(
        by_sha.join(sha(&a)).exists(),
        "a file another resource uses was removed"
    );
    let r = app
        .http
        .get(app.url(&format!("/api/v1/boot-resources/{r2}/files/vmlinuz")))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A file replaced by name goes once nothing refers to it.
    let resp = app
        .http
        .put(app.url(&format!(
            "/api/v1/boot-resources/{r2}/files/vmlinuz?sha256={}",
            sha(&bb)
        )))
        .bearer_auth(&app.admin_token)
        .body(bb.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        !by_sha.join(sha(&a)).exists(),
        "the replaced file was left behind"
    );
    assert!(by_sha.join(sha(&bb)).exists());
    // A stored file no row refers to (a crash between the upload's rename and its commit) is
    // collected when a region starts; referenced ones stay.
    let stray = sha(b"stray");
    std::fs::write(by_sha.join(&stray), b"stray").unwrap();
    let again = region::Region::start(app.db.config()).await.unwrap();
    assert!(
        !by_sha.join(&stray).exists(),
        "the orphan was not collected at start"
    );
    assert!(by_sha.join(sha(&bb)).exists());
    again.stop().await.unwrap();
    app.stop().await;
});
