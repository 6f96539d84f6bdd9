//! The rack's side of the region contract: register (once; credentials kept on disk), heartbeat,
//! long-poll the snapshot, and deliver queued events. The region being away never stops the rack:
//! every loop retries with backoff and the services keep serving the last snapshot.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use region_api_types as api;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::RackConfig;
use crate::error::{Error, Result};
pub use crate::events::EventQueue;
use crate::state::{self, Served};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Credentials {
    rack_id: String,
    token: String,
}

#[derive(Clone)]
pub struct RegionClient {
    /// The regions' URLs, in the order of preference (`--region-url A,B`): one database behind
    /// them all, so any of them will do.
    bases: Arc<Vec<String>>,
    /// The one in use: the next when it cannot be reached (see [`RegionClient::send`]).
    current: Arc<std::sync::atomic::AtomicUsize>,
    http: reqwest::Client,
    creds_path: PathBuf,
    creds: Arc<Mutex<Option<Credentials>>>,
    /// One registration at a time: the loops that find no token wait for the first to finish.
    registering: Arc<tokio::sync::Mutex<()>>,
    name: String,
    secret: String,
    enrolment_token: Option<String>,
    /// What the volume store and target daemon can do (sent with each heartbeat).
    iscsi: Arc<Mutex<Option<api::RackIscsi>>>,
    /// Sends a heartbeat at once (the iSCSI state changed).
    heartbeat_now: Arc<tokio::sync::Notify>,
    /// The image cache, whose files each heartbeat lists.
    images_dir: PathBuf,
}

/// How the machine behind a forwarded request reaches this rack.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The rack's HTTP boot endpoint (`http://10.20.0.2:5248`).
    pub rack_url: &'a str,
    /// The rack's proxy, when it runs one (`http://10.20.0.2:8000/`).
    pub proxy_url: Option<&'a str>,
}

impl RegionClient {
    pub fn new(cfg: &RackConfig) -> Result<RegionClient> {
        let creds_path = cfg.data_dir.join("credentials.json");
        let creds = std::fs::read(&creds_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60));
        let pin = cfg
            .enrolment_token
            .as_deref()
            .and_then(|t| api::EnrolmentToken::parse(t).ok())
            .and_then(|t| t.ca_sha256);
        if let (None, Some(hex), true) = (&cfg.region_ca, pin, cfg.region_url.contains("https://"))
        {
            http = http.use_preconfigured_tls(crate::pin::PinnedCa::new(&hex)?.client_config()?);
        }
        if let Some(pem) = &cfg.region_ca {
            let ca = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| {
                Error::Config(format!(
                    "the region CA (--region-ca) is not a PEM certificate: {e}"
                ))
            })?;
            // Only the region's CA: a certificate from any other authority is refused.
            http = http.tls_built_in_root_certs(false).add_root_certificate(ca);
        }
        Ok(RegionClient {
            bases: Arc::new(cfg.region_urls()),
            current: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            http: http.build()?,
            creds_path,
            creds: Arc::new(Mutex::new(creds)),
            registering: Arc::new(tokio::sync::Mutex::new(())),
            name: cfg.name.clone(),
            secret: cfg.secret.clone(),
            enrolment_token: cfg.enrolment_token.clone(),
            iscsi: Arc::new(Mutex::new(None)),
            heartbeat_now: Arc::new(tokio::sync::Notify::new()),
            images_dir: cfg.data_dir.join("images"),
        })
    }

    /// The URL of the region in use.
    pub fn base(&self) -> &str {
        let i = self.current.load(std::sync::atomic::Ordering::Relaxed);
        &self.bases[i % self.bases.len()]
    }

    /// Sends a request to the region in use; when that region cannot be reached (no connection, a
    /// timeout, or 503) the next one in the list is used from then on (the caller's retry goes
    /// there). Racing loops that saw the same region fail move on once, not once each.
    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        use std::sync::atomic::Ordering;
        let used = self.current.load(Ordering::Relaxed);
        let out = rb.send().await;
        let down = match &out {
            Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
            Ok(r) => r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE,
        };
        if down && self.bases.len() > 1 {
            let next = (used + 1) % self.bases.len();
            if self
                .current
                .compare_exchange(used, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                tracing::warn!(
                    "region {} cannot be reached; using {} from now on",
                    self.bases[used % self.bases.len()],
                    self.bases[next]
                );
            }
        }
        Ok(out?)
    }

    fn token(&self) -> Option<String> {
        self.creds
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.token.clone()))
    }

    /// Registers with the shared secret and keeps the credentials.
    pub async fn register(&self) -> Result<String> {
        let body = api::RackRegister {
            name: self.name.clone(),
            secret: self.secret.clone(),
            enrolment_token: self.enrolment_token.clone(),
            interfaces: crate::ifaces::report(),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        };
        let resp = self
            .http
            .post(format!("{}/api/v1/rack/register", self.base()))
            .json(&body);
        let resp = self.send(resp).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(Error::Region(format!(
                "registration refused ({status}): {text}"
            )));
        }
        let r: api::RackRegistered = resp.json().await?;
        let c = Credentials {
            rack_id: r.rack_id.clone(),
            token: r.token,
        };
        if let Some(dir) = self.creds_path.parent() {
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            serde_json::to_writer(&mut tmp, &c)?;
            tmp.persist(&self.creds_path).map_err(|e| e.error)?;
        }
        if let Ok(mut g) = self.creds.lock() {
            *g = Some(c);
        }
        tracing::info!(rack.id = %r.rack_id, "registered with the region as {}", self.name);
        Ok(r.rack_id)
    }

    async fn authed(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let token = match self.token() {
            Some(t) => t,
            None => {
                // One registration at a time: loops that find no token wait for the first one.
                let _one = self.registering.lock().await;
                if self.token().is_none() {
                    self.register().await?;
                }
                self.token()
                    .ok_or_else(|| Error::Region("no token after registering".into()))?
            }
        };
        let resp = self.send(rb.bearer_auth(&token)).await?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            // Our token was replaced or the rack removed: register again (unless another loop
            // already did), and let the caller retry with the new token.
            let _one = self.registering.lock().await;
            if self.token().as_deref() == Some(token.as_str()) {
                self.register().await?;
            }
            return Err(Error::Region("rack token refused; registered again".into()));
        }
        Ok(resp)
    }

    /// The snapshot, waiting up to `wait` seconds for one newer than `etag`. `None`: unchanged.
    pub async fn snapshot(
        &self,
        etag: Option<&str>,
        wait: u64,
    ) -> Result<Option<api::RackSnapshot>> {
        let mut url = format!("{}/api/v1/rack/snapshot?wait={wait}", self.base());
        if let Some(e) = etag {
            url.push_str("&etag=");
            url.push_str(e);
        }
        let resp = self
            .authed(self.http.get(url).timeout(Duration::from_secs(wait + 20)))
            .await?;
        match resp.status() {
            reqwest::StatusCode::NOT_MODIFIED => Ok(None),
            s if s.is_success() => Ok(Some(resp.json().await?)),
            s => Err(Error::Region(format!(
                "snapshot: {s}: {}",
                resp.text().await.unwrap_or_default()
            ))),
        }
    }

    /// Power jobs for this rack, waiting up to `wait` seconds for one; at most `max`.
    pub async fn power_jobs(&self, wait: u64, max: usize) -> Result<Vec<api::RackPowerJob>> {
        let url = format!(
            "{}/api/v1/rack/power-jobs?wait={wait}&max={max}",
            self.base()
        );
        let resp = self
            .authed(self.http.get(url).timeout(Duration::from_secs(wait + 20)))
            .await?;
        if !resp.status().is_success() {
            return Err(Error::Region(format!(
                "power jobs: {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            )));
        }
        Ok(resp.json().await?)
    }

    /// Reports how a power job ended.
    pub async fn power_result(&self, job: &str, r: &api::RackPowerResult) -> Result<()> {
        let resp = self
            .authed(
                self.http
                    .post(format!("{}/api/v1/rack/power-jobs/{job}", self.base()))
                    .json(r),
            )
            .await?;
        match resp.status() {
            // Gone: the job was cancelled or timed out meanwhile; nothing to retry.
            s if s.is_success() || s == reqwest::StatusCode::NOT_FOUND => Ok(()),
            s => Err(Error::Region(format!("power result: {s}"))),
        }
    }

    /// Pod jobs (discover, compose, decompose) for this rack, waiting up to `wait` seconds.
    pub async fn pod_jobs(&self, wait: u64, max: usize) -> Result<Vec<api::RackPodJob>> {
        let url = format!("{}/api/v1/rack/pod-jobs?wait={wait}&max={max}", self.base());
        let resp = self
            .authed(self.http.get(url).timeout(Duration::from_secs(wait + 20)))
            .await?;
        if !resp.status().is_success() {
            return Err(Error::Region(format!(
                "pod jobs: {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            )));
        }
        Ok(resp.json().await?)
    }

    /// Reports how a pod job ended.
    pub async fn pod_result(&self, job: &str, r: &api::RackPodResult) -> Result<()> {
        let resp = self
            .authed(
                self.http
                    .post(format!("{}/api/v1/rack/pod-jobs/{job}", self.base()))
                    .json(r),
            )
            .await?;
        match resp.status() {
            s if s.is_success() || s == reqwest::StatusCode::NOT_FOUND => Ok(()),
            s => Err(Error::Region(format!("pod result: {s}"))),
        }
    }

    /// The iSCSI state the next heartbeat reports; a change is reported at once.
    pub fn set_iscsi(&self, st: api::RackIscsi) {
        let mut g = self.iscsi.lock().unwrap_or_else(|p| p.into_inner());
        // Free space moves all the time: only a change of what the rack can do hurries a beat.
        let changed = g.as_ref().is_none_or(|o| {
            o.error != st.error || o.portal != st.portal || o.clone_method != st.clone_method
        });
        *g = Some(st);
        drop(g);
        if changed {
            self.heartbeat_now.notify_one();
        }
    }

    pub async fn heartbeat(&self) -> Result<()> {
        let body = api::RackHeartbeat {
            interfaces: crate::ifaces::report(),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            iscsi: self.iscsi.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            images: Some(crate::images::cached(&self.images_dir)),
        };
        let resp = self
            .authed(
                self.http
                    .post(format!("{}/api/v1/rack/heartbeat", self.base()))
                    .json(&body),
            )
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Error::Region(format!("heartbeat: {}", resp.status())))
        }
    }

    /// The volumes this rack is to serve or remove.
    pub async fn volumes(&self) -> Result<api::RackVolumes> {
        let resp = self
            .authed(
                self.http
                    .get(format!("{}/api/v1/rack/volumes", self.base())),
            )
            .await?;
        if resp.status().is_success() {
            Ok(resp.json().await?)
        } else {
            Err(Error::Region(format!("volumes: {}", resp.status())))
        }
    }

    /// Reports what was done with a volume.
    pub async fn volume_report(&self, id: &str, r: &api::RackVolumeReport) -> Result<()> {
        let resp = self
            .authed(
                self.http
                    .post(format!("{}/api/v1/rack/volumes/{id}", self.base()))
                    .json(r),
            )
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            // A removal the region no longer knows of is done; anything else is retried.
            reqwest::StatusCode::NOT_FOUND if r.state == "removed" => Ok(()),
            s => Err(Error::Region(format!(
                "volume report: {s}: {}",
                resp.text().await.unwrap_or_default()
            ))),
        }
    }

    /// A boot file by sha256, from byte `offset` on (a `Range` request when resuming).
    pub async fn file(&self, sha256: &str, offset: u64) -> Result<reqwest::Response> {
        let mut rb = self
            .http
            .get(format!("{}/api/v1/rack/files/{sha256}", self.base()))
            .timeout(Duration::from_secs(3600));
        if offset > 0 {
            rb = rb.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        self.authed(rb).await
    }

    /// What a PXE-booting machine boots: the region enlists unknown MACs and mints ephemeral boots'
    /// credentials. Short timeout: a machine is waiting on this answer.
    pub async fn boot(&self, mac: &str, arch: Option<&str>) -> Result<api::RackBootAnswer> {
        let body = api::RackBootRequest {
            mac: mac.to_string(),
            architecture: arch.map(str::to_string),
        };
        let resp = self
            .authed(
                self.http
                    .post(format!("{}/api/v1/rack/boot", self.base()))
                    .timeout(Duration::from_secs(10))
                    .json(&body),
            )
            .await?;
        if resp.status().is_success() {
            Ok(resp.json().await?)
        } else {
            Err(Error::Region(format!(
                "boot of {mac}: {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            )))
        }
    }

    /// Trades a machine's claim code for its boot credential. `Ok(Err((status, words)))`: the
    /// region refused (a used, unknown or foreign code), to be passed on to the machine.
    pub async fn claim(
        &self,
        mac: &str,
        code: &str,
    ) -> Result<std::result::Result<api::RackClaimAnswer, (u16, String)>> {
        let body = api::RackClaimRequest {
            mac: mac.to_string(),
            claim: code.to_string(),
        };
        let resp = self
            .authed(
                self.http
                    .post(format!("{}/api/v1/rack/claim", self.base()))
                    .timeout(Duration::from_secs(10))
                    .json(&body),
            )
            .await?;
        let status = resp.status();
        if status.is_success() {
            Ok(Ok(resp.json().await?))
        } else if status.is_client_error() {
            Ok(Err((
                status.as_u16(),
                resp.text().await.unwrap_or_default(),
            )))
        } else {
            Err(Error::Region(format!("claim for {mac}: {status}")))
        }
    }

    /// Forwards a machine's metadata request to the region's `/api/v1/metadata/{path}` with the
    /// machine's own credential (not the rack's): the region decides what the machine may do.
    pub async fn forward_metadata(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        seen: Seen<'_>,
        body: actix_web::web::Bytes,
    ) -> Result<reqwest::Response> {
        let Seen {
            rack_url,
            proxy_url,
        } = seen;
        let mut rb = self
            .http
            .request(
                method,
                format!("{}/api/v1/metadata/{path_and_query}", self.base()),
            )
            .timeout(Duration::from_secs(120))
            .body(body);
        if let Some(a) = authorization {
            rb = rb.header(reqwest::header::AUTHORIZATION, a);
        }
        if let Some(c) = content_type {
            rb = rb.header(reqwest::header::CONTENT_TYPE, c);
        }
        // Where the machine reaches this rack (the deployed system's cloud-init calls back there).
        rb = rb.header("x-kiln-rack-url", rack_url);
        if let Some(p) = proxy_url {
            rb = rb.header("x-kiln-rack-proxy", p);
        }
        self.send(rb).await
    }

    pub async fn send_events(&self, evs: &[api::RackEvent]) -> Result<()> {
        let resp = self
            .authed(
                self.http
                    .post(format!("{}/api/v1/rack/events", self.base()))
                    .json(evs),
            )
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else if resp.status().is_client_error() {
            // The region will never take these (validation): log and drop rather than retry forever.
            tracing::warn!(
                "region refused {} events: {}",
                evs.len(),
                resp.text().await.unwrap_or_default()
            );
            Ok(())
        } else {
            Err(Error::Region(format!("events: {}", resp.status())))
        }
    }
}

/// Keeps the snapshot fresh and the events flowing until cancelled. Never fails on the region
/// being away: it logs, backs off, and tries again.
pub async fn sync(
    client: RegionClient,
    cfg: RackConfig,
    tx: watch::Sender<Arc<Served>>,
    events: EventQueue,
    cancel: CancellationToken,
) -> Result<()> {
    let snap = {
        let (client, cancel, dir) = (client.clone(), cancel.clone(), cfg.data_dir.clone());
        async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                let etag = tx.borrow().etag().map(str::to_string);
                match client.snapshot(etag.as_deref(), 25).await {
                    Ok(Some(s)) => {
                        backoff = Duration::from_millis(500);
                        let (d, copy) = (dir.clone(), s.clone());
                        // Off the executor: the packet paths share its threads.
                        match tokio::task::spawn_blocking(move || state::save(&d, &copy)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::warn!("could not save the snapshot: {e}"),
                            Err(e) => tracing::warn!("could not save the snapshot: {e}"),
                        }
                        tracing::info!(etag = %s.etag, subnets = s.subnets.len(), machines = s.machines.len(), "new snapshot from the region");
                        tx.send_replace(Arc::new(Served::from_snapshot(s)));
                    }
                    Ok(None) => backoff = Duration::from_millis(500),
                    Err(e) => {
                        tracing::warn!("region unreachable ({e}); serving the last snapshot, retrying in {backoff:?}");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = cancel.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
                if cancel.is_cancelled() {
                    return;
                }
            }
        }
    };
    let heartbeat = {
        let (client, cancel) = (client.clone(), cancel.clone());
        async move {
            loop {
                if let Err(e) = client.heartbeat().await {
                    tracing::debug!("heartbeat failed: {e}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                    _ = client.heartbeat_now.notified() => {}
                    _ = cancel.cancelled() => return,
                }
            }
        }
    };
    let deliver = {
        let cancel = cancel.clone();
        async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                let batch = events.peek(500);
                if batch.is_empty() {
                    tokio::select! {
                        _ = events.notify.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                        _ = cancel.cancelled() => return,
                    }
                    continue;
                }
                match client.send_events(&batch).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(500);
                        events.ack(batch.len());
                    }
                    Err(e) => {
                        tracing::debug!("events not delivered ({e}); {} queued", events.len());
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = cancel.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
    };
    tokio::join!(snap, heartbeat, deliver);
    Ok(())
}
