//! The OpenAPI document against real tools from PyPI (`tests/api/setup.sh` makes their venv):
//! `openapi-spec-validator` finds it valid, and schemathesis, generating requests from it as an
//! admin, finds no server error.

use std::path::PathBuf;
use std::process::Command;

use reqwest::{Method, StatusCode};

use crate::util::{Backend, TestApp};

fn venv() -> PathBuf {
    let v = std::env::var("KILN_API_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/var/cache/kiln/api-venv"));
    assert!(
        v.join("bin/st").exists(),
        "{} has no schemathesis: run tests/api/setup.sh (tests/run.sh does)",
        v.display()
    );
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_and_fuzzing_finds_no_server_error() {
    let venv = venv();
    let app = TestApp::start(Backend::Sqlite).await;
    let (s, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let file = app.db.data_dir().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = Command::new(venv.join("bin/openapi-spec-validator"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the OpenAPI document is not valid:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Stateful testing is left out: it follows links schemathesis infers itself (the document
    // declares none), some of which name parameters the target operations do not have.
    let url = app.url("/api/v1/openapi.json");
    let auth = format!("Authorization: Bearer {}", app.admin_token);
    let dir = app.db.data_dir();
    let st = tokio::task::spawn_blocking(move || {
        Command::new(venv.join("bin/st"))
            .args(["run", &url, "-H", &auth])
            .args(["--checks", "not_a_server_error"])
            // Its caller's own token would be among those it deletes (it learns ids from
            // responses), and every operation after that would see only 401.
            .args(["--exclude-path", "/api/v1/tokens/{id}"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--max-time", "90", "--workers", "1", "--no-color"])
            // Its example database and reports go in the test's own directory.
            .current_dir(dir)
            .output()
            .unwrap()
    });
    let out = st.await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    assert!(text.contains("passed"), "{text}");
    // Every user operation was reached as the admin: only those of machines (boot tokens) and
    // racks (rack tokens) saw nothing but 401/403, and the login (generated passwords are wrong).
    let mut refused: Vec<&str> = Vec::new();
    let mut in_list = false;
    for l in text.lines() {
        if l.starts_with("401 Unauthorized") || l.starts_with("403 Forbidden") {
            in_list = true;
        } else if l.trim().is_empty() {
            in_list = false;
        } else if let Some(op) = l.trim().strip_prefix("- ").filter(|_| in_list) {
            refused.push(op);
        }
    }
    for op in &refused {
        let path = op.split_whitespace().nth(1).unwrap_or("");
        assert!(
            path.starts_with("/api/v1/metadata/")
                || path.starts_with("/api/v1/rack/")
                || path == "/api/v1/login",
            "an admin's token reached no further than 401/403 on {op}:\n{text}"
        );
    }
    app.stop().await;
}
