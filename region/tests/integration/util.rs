//! `TestApp`: a region on a fresh database, with an admin and a normal user and their tokens.

use std::path::PathBuf;

use diesel::{Connection, PgConnection, RunQueryDsl};
use region::config::Config;
use region::db::now_ms;
use region::domain::users;
use region::Region;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A PostgreSQL database made for one test, dropped afterwards.
pub struct PgDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub fn create() -> PgDb {
        let admin_url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
            panic!("TEST_DATABASE_URL is not set: run the tests with tests/run.sh, which starts a PostgreSQL, or set it to postgres://USER@HOST/postgres")
        });
        let name = format!("kiln_test_{}", region::db::random_id(10));
        let mut c = PgConnection::establish(&admin_url).expect("connect to TEST_DATABASE_URL");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url);
        let url = format!("{base}/{name}");
        PgDb {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut c);
        }
    }
}

/// Where a test's data lives.
pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub pg: Option<PgDb>,
}

impl TestDb {
    pub fn new(backend: Backend) -> TestDb {
        TestDb {
            dir: tempfile::tempdir().unwrap(),
            pg: (backend == Backend::Postgres).then(PgDb::create),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn config(&self) -> Config {
        let mut cfg = Config {
            data_dir: self.data_dir(),
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: self.pg.as_ref().map(|p| p.url.clone()),
            ..Default::default()
        };
        cfg.lifecycle.deadline_check_secs = 1;
        cfg
    }
}

pub struct TestApp {
    pub db: TestDb,
    pub region: Option<Region>,
    pub base: String,
    pub admin_token: String,
    pub user_token: String,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::new(backend);
        let mut cfg = db.config();
        tweak(&mut cfg);
        let region = Region::start(cfg).await.unwrap();
        let base = format!("http://{}", region.addr);
        let pool = region.state.pool.clone();
        let (admin_token, user_token) = pool
            .run(|c| {
                let now = now_ms();
                users::create_user(c, None, "admin", "admin-password", true, now)?;
                users::create_user(c, None, "alice", "alice-password", false, now)?;
                let a = region::db::users::by_username(c, "admin")?.unwrap();
                let u = region::db::users::by_username(c, "alice")?.unwrap();
                Ok((
                    users::create_token(
                        c,
                        &a,
                        "test",
                        &Default::default(),
                        region_api_types::TokenScope::Admin,
                        now,
                    )?
                    .secret,
                    users::create_token(
                        c,
                        &u,
                        "test",
                        &Default::default(),
                        region_api_types::TokenScope::Admin,
                        now,
                    )?
                    .secret,
                ))
            })
            .await
            .unwrap();
        TestApp {
            db,
            region: Some(region),
            base,
            admin_token,
            user_token,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with a token (None: anonymous) and a JSON body; returns status and JSON.
    /// What a machine's initramfs does with the claim code of a `/api/v1/rack/boot` answer (its
    /// rack checked the lease): trades it for this boot's credential.
    pub async fn claim(&self, rack: &str, mac: &str, answer: &Value) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/api/v1/rack/claim",
                Some(rack),
                Some(serde_json::json!({"mac": mac, "claim": answer["claim"]})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "claim of {answer}: {v}");
        v["token"].as_str().unwrap().to_string()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, v)
    }

    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(method, path, Some(&self.admin_token.clone()), body)
            .await
    }

    pub async fn user(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(method, path, Some(&self.user_token.clone()), body)
            .await
    }

    /// The region's shared rack secret (what `kiln admin rack-secret` prints).
    pub async fn rack_secret(&self) -> String {
        self.region
            .as_ref()
            .unwrap()
            .state
            .pool
            .run(region::api::rack_api::rack_secret)
            .await
            .unwrap()
    }

    /// Creates a machine as admin and returns its system_id.
    pub async fn machine(&self, hostname: &str, mac: &str) -> String {
        let (s, v) = self
            .admin(
                Method::POST,
                "/api/v1/machines",
                Some(serde_json::json!({"hostname": hostname, "boot_mac": mac})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["system_id"].as_str().unwrap().to_string()
    }

    /// Declares a debian/bookworm amd64 boot resource of `kind` and uploads `files` (name, bytes)
    /// with their sha256; returns the resource id.
    pub async fn upload_boot_files(&self, kind: &str, files: &[(&str, Vec<u8>)]) -> String {
        self.upload_release_files(kind, "bookworm", files).await
    }

    /// [`Self::upload_boot_files`] for another debian release.
    pub async fn upload_release_files(
        &self,
        kind: &str,
        release: &str,
        files: &[(&str, Vec<u8>)],
    ) -> String {
        use sha2::{Digest, Sha256};
        let (s, r) = self
            .admin(
                Method::POST,
                "/api/v1/boot-resources",
                Some(serde_json::json!({"os": "debian", "release": release, "arch": "amd64", "kind": kind})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        let id = r["id"].as_str().unwrap().to_string();
        for (name, data) in files {
            let sha = hex::encode(Sha256::digest(data));
            let resp = self
                .http
                .put(self.url(&format!(
                    "/api/v1/boot-resources/{id}/files/{name}?sha256={sha}"
                )))
                .bearer_auth(&self.admin_token)
                .body(data.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
        }
        id
    }

    pub async fn act(&self, token: &str, id: &str, action: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/api/v1/machines/{id}/{action}"),
            Some(token),
            None,
        )
        .await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.region.take() {
            r.stop().await.unwrap();
        }
    }
}

/// Generates `sqlite` and `postgres` variants of an async test taking a `Backend`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::util::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)($crate::util::Backend::Postgres).await
            }
        }
    };
}
