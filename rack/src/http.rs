//! The rack's HTTP boot service (port 5248): per-machine iPXE scripts, bootloaders for UEFI HTTP
//! boot, and the cached boot files (kernel, initrd, squashfs) with `Range` support. Files are read
//! in chunks on the worker threads (they are hot in the page cache; going through the blocking pool
//! per 64 KiB chunk cost 3x in throughput, measured). Files come from rack-local state; the script of
//! an unknown MAC or an ephemeral boot asks the region (`/rack/boot`), for the MAC's own lease holder
//! only. `/metadata/v1/…` is forwarded to the region. Each hit becomes an event in the MAC's boot trace.

use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use rack_proto::ipxe::{self, Boot, Urls};
use region_api_types::RackEvent;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::dhcp::LeaseStore;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::region::{EventQueue, RegionClient};
use crate::state::Served;
use crate::tftp::FileSource;

#[derive(Clone)]
pub struct HttpState {
    pub rx: watch::Receiver<Arc<Served>>,
    pub store: Arc<Mutex<LeaseStore>>,
    pub boot_files: Arc<FileSource>,
    pub images: PathBuf,
    pub events: EventQueue,
    pub metrics: Arc<Metrics>,
    pub region: RegionClient,
    /// Root on iSCSI: the boot of each machine whose volume this rack serves.
    pub iscsi: crate::storage::service::IscsiBoots,
    /// Where this rack's HTTP proxy listens (none: `--no-proxy`).
    pub proxy: Option<std::net::SocketAddr>,
}

impl HttpState {
    /// The MAC behind a request: the `mac` parameter, else the lease of the source address.
    fn mac_for(&self, req: &HttpRequest, mac: Option<rack_proto::Mac>) -> Option<String> {
        if let Some(m) = mac {
            return Some(rack_proto::fmt_mac(&m));
        }
        let IpAddr::V4(ip) = req.peer_addr()?.ip() else {
            return None;
        };
        let mac = LeaseStore::lock(&self.store).mac_of(ip)?;
        Some(rack_proto::fmt_mac(&mac))
    }

    /// Whether this request may act for `mac` (see [`rack_proto::may_act_for`]).
    fn may_act_for(&self, req: &HttpRequest, mac: &str) -> bool {
        let (Some(peer), Some(m)) = (req.peer_addr(), rack_proto::parse_mac(mac)) else {
            return false;
        };
        rack_proto::may_act_for(peer.ip(), &m, self.leased_to(peer.ip()).as_ref())
    }

    /// The MAC this rack leased the address to.
    fn leased_to(&self, ip: IpAddr) -> Option<rack_proto::Mac> {
        match ip {
            IpAddr::V4(ip) => LeaseStore::lock(&self.store).mac_of(ip),
            IpAddr::V6(_) => None,
        }
    }

    /// Whether the request comes from the address this rack leased to `mac` (not even a local
    /// process of the rack's host qualifies).
    fn is_lease_holder(&self, req: &HttpRequest, mac: &str) -> bool {
        let (Some(peer), Some(m)) = (req.peer_addr(), rack_proto::parse_mac(mac)) else {
            return false;
        };
        self.leased_to(peer.ip()) == Some(m)
    }

    /// The root-on-iSCSI boot this rack serves for `mac`.
    fn served_iscsi(&self, mac: &str) -> Option<ipxe::IscsiBoot> {
        self.iscsi
            .read()
            .ok()
            .and_then(|m| m.get(&mac.to_ascii_lowercase()).cloned())
    }

    /// Queues an event for the region, which files it under the machine with that MAC (or keeps it
    /// for the machine that MAC is about to be enlisted as).
    fn event(&self, mac: &str, event_type: &str, description: String) {
        self.events.push(RackEvent {
            mac: mac.to_string(),
            event_type: event_type.to_string(),
            description,
            at: chrono::Utc::now().to_rfc3339(),
            ip: None,
        });
    }
}

async fn script(state: web::Data<HttpState>, req: HttpRequest) -> HttpResponse {
    let q = ipxe::ScriptQuery::parse(req.query_string());
    state.metrics.inc("http_ipxe_script");
    let host = req.connection_info().host().to_string();
    let Some(mac) = state.mac_for(&req, q.mac) else {
        return HttpResponse::Ok().content_type("text/plain").body(
            "#!ipxe\necho Kiln: cannot tell which machine this is (no ?mac= and no DHCP lease for this address)\nsleep 30\nchain --replace --autofree http://${next-server}:5248/boot/ipxe?mac=${net0/mac}\n",
        );
    };
    let served = state.rx.borrow().clone();
    let mut host_entry =
        rack_proto::parse_mac(&mac).and_then(|m| served.netconf.hosts.get(&m).cloned());
    let files = served
        .snapshot
        .as_ref()
        .map(|s| s.files.as_slice())
        .unwrap_or_default();
    let iscsi_of = |h: &rack_proto::netconf::Host| {
        ipxe::decide_iscsi(h, &mac, files, state.served_iscsi(&mac))
    };
    let mut boot = match &host_entry {
        Some(h) if h.iscsi_boot => iscsi_of(h),
        _ => ipxe::decide(host_entry.as_ref(), &mac, files),
    };
    let mut claim = None;
    // Unknown machines are enlisted, and ephemeral boots need a credential: both come from the
    // region. Local-disk boots and waits are answered from the snapshot alone.
    let needs_region = host_entry.is_none() || matches!(boot, Boot::Ephemeral(_));
    // The iSCSI script carries the volume's CHAP secret: for the machine itself only (not even
    // for a local process of the rack's host).
    let secret = matches!(boot, Boot::Iscsi(_));
    if (needs_region && !state.may_act_for(&req, &mac))
        || (secret && !state.is_lease_holder(&req, &mac))
    {
        state.metrics.inc("http_ipxe_refused");
        boot = Boot::Wait(format!(
            "this address holds no lease of this rack for {mac}: only the machine itself may enlist or boot it"
        ));
    } else if needs_region {
        match state.region.boot(&mac, q.arch.as_deref()).await {
            Ok(a) => {
                let h = rack_proto::netconf::Host {
                    system_id: a.system_id,
                    hostname: a.hostname,
                    status: a.status,
                    architecture: a.architecture,
                    fixed: host_entry.and_then(|h| h.fixed),
                    local_boot: a.local_boot,
                    esp_uuid: a.esp_uuid,
                    memory_boot: a.memory_root.is_some(),
                    iscsi_boot: a.iscsi,
                };
                boot = if h.iscsi_boot {
                    iscsi_of(&h)
                } else {
                    ipxe::decide(Some(&h), &mac, files)
                };
                if let (Boot::Ephemeral(e), Some(root)) = (&boot, a.memory_root) {
                    boot = Boot::Ephemeral(Box::new(ipxe::in_memory((**e).clone(), root)));
                }
                host_entry = Some(h);
                claim = a.claim;
                if matches!(boot, Boot::Ephemeral(_)) && claim.is_none() {
                    boot = Boot::Wait("the region gave no boot credential; asking again".into());
                }
            }
            Err(e) => {
                tracing::warn!("cannot ask the region what {mac} boots: {e}");
                boot = Boot::Wait(format!(
                    "the region cannot be reached to enlist or authorise this boot ({mac}); asking again"
                ));
            }
        }
    }
    let urls = Urls {
        base: format!("http://{host}"),
        mac: mac.clone(),
    };
    match ipxe::render(&boot, host_entry.as_ref(), &urls, claim.as_deref()) {
        Ok(s) => {
            let what = match &boot {
                Boot::Ephemeral(e) => format!("boot the ephemeral environment ({})", e.name),
                Boot::Iscsi(i) => format!("root on iSCSI ({} at {})", i.target_iqn, i.portal),
                Boot::LocalDisk => "boot from the local disk".to_string(),
                Boot::Wait(m) => format!("wait: {m}"),
            };
            // Only the machine itself (or the rack) writes its boot trace: anyone may ask for a
            // MAC's script, but a stranger's request must not show up in that machine's history.
            if state.may_act_for(&req, &mac) {
                state.event(&mac, "ipxe_script", format!("sent iPXE script: {what}"));
            } else {
                state.metrics.inc("http_ipxe_untraced");
            }
            HttpResponse::Ok().content_type("text/plain").body(s)
        }
        Err(e) => {
            tracing::error!("iPXE template failed: {e}");
            HttpResponse::InternalServerError().body("template error")
        }
    }
}

/// `POST /boot/claim` (body: the `kiln.claim=` code): the machine's initramfs trades its boot's
/// claim code for its credential (the answer's body). Only from the address this rack leased to
/// the machine (not even a local process of the rack's host); the region checks the code is that
/// MAC's and good once.
async fn claim(state: web::Data<HttpState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    state.metrics.inc("http_claim");
    let leased = req.peer_addr().and_then(|p| state.leased_to(p.ip()));
    let Some(mac) = leased.map(|m| rack_proto::fmt_mac(&m)) else {
        state.metrics.inc("http_claim_refused");
        return HttpResponse::Forbidden().content_type("text/plain").body(
            "only the machine holding this rack's DHCP lease for its address may claim its boot credential\n",
        );
    };
    let code = String::from_utf8_lossy(&body).trim().to_string();
    match state.region.claim(&mac, &code).await {
        Ok(Ok(a)) => HttpResponse::Ok()
            .content_type("text/plain")
            .insert_header(("cache-control", "no-store"))
            .body(a.token),
        Ok(Err((status, text))) => {
            state.metrics.inc("http_claim_refused");
            let status = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::FORBIDDEN);
            HttpResponse::build(status)
                .content_type("text/plain")
                .body(text)
        }
        Err(e) => {
            tracing::warn!("cannot exchange {mac}'s claim code with the region: {e}");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("the region cannot be reached to exchange this claim code; retry\n")
        }
    }
}

#[derive(Deserialize)]
struct FailQuery {
    mac: Option<String>,
    error: Option<String>,
}

/// iPXE's `sanhook` failed (the iSCSI script reports it before retrying): an error event for the
/// machine, with iPXE's error code (a wrong CHAP secret is "Operation not permitted").
async fn iscsi_failed(
    state: web::Data<HttpState>,
    req: HttpRequest,
    q: web::Query<FailQuery>,
) -> HttpResponse {
    state.metrics.inc("http_iscsi_failed");
    let Some(mac) = state.mac_for(&req, q.mac.as_deref().and_then(rack_proto::parse_mac)) else {
        return HttpResponse::BadRequest().body("which machine?");
    };
    if !state.may_act_for(&req, &mac) {
        return HttpResponse::Forbidden().body("only the machine itself reports its boot");
    }
    let code: String = q
        .error
        .as_deref()
        .unwrap_or("")
        .trim_start_matches("0x")
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(8)
        .collect();
    let what = match state.served_iscsi(&mac) {
        Some(b) => format!("{} at {}", b.target_iqn, b.portal),
        None => "its iSCSI target".to_string(),
    };
    // iPXE's "Operation not permitted" errors start 410d (sanhook gave 410d613c and 410d618f).
    let hint = if code.len() == 8 && code[..4].eq_ignore_ascii_case("410d") {
        " (Operation not permitted: the target refused the login - a wrong CHAP secret or an initiator the target does not admit)"
    } else {
        ""
    };
    state.event(
        &mac,
        "iscsi_login_failed",
        format!("iPXE could not attach {what}: error 0x{code}{hint}; see https://ipxe.org/{code}"),
    );
    HttpResponse::Ok()
        .content_type("text/plain")
        .body("noted\n")
}

async fn bootloader(
    state: web::Data<HttpState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    let name = path.into_inner();
    let rel = rack_proto::tftp::clean_path(&name)
        .map_err(|_| actix_web::error::ErrorNotFound("no such file"))?;
    let p = state
        .boot_files
        .resolve(&rel)
        .ok_or_else(|| actix_web::error::ErrorNotFound("no such file"))?;
    state.metrics.inc("http_bootloader");
    if let Some(mac) = state.mac_for(&req, None) {
        state.event(&mac, "http_sent", format!("sent {rel} over HTTP"));
    }
    Ok(actix_files::NamedFile::open_async(p)
        .await?
        .into_response(&req))
}

/// `grub-local.efi` with the machine's ESP UUID written in (UEFI local-disk boots).
async fn grub_local(
    state: web::Data<HttpState>,
    req: HttpRequest,
) -> Result<HttpResponse, actix_web::Error> {
    let q = ipxe::ScriptQuery::parse(req.query_string());
    let p = state.boot_files.resolve("grub-local.efi").ok_or_else(|| {
        actix_web::error::ErrorNotFound(
            "no grub-local.efi: import the bootloader bundle (kiln images import)",
        )
    })?;
    let bin = tokio::fs::read(&p)
        .await
        .map_err(actix_web::error::ErrorInternalServerError)?;
    let mac = state.mac_for(&req, q.mac);
    // Only this host's UUID is needed: look it up under the borrow, copy nothing else.
    let esp = mac.as_deref().and_then(|m| {
        let served = state.rx.borrow();
        rack_proto::parse_mac(m).and_then(|m| {
            served
                .netconf
                .hosts
                .get(&m)
                .and_then(|h| h.esp_uuid.clone())
        })
    });
    state.metrics.inc("http_bootloader");
    if let Some(mac) = mac.as_ref().filter(|m| state.may_act_for(&req, m)) {
        state.event(
            mac,
            "http_sent",
            format!(
                "sent grub-local.efi over HTTP (chainloads the ESP {})",
                esp.as_deref()
                    .unwrap_or("found by its \\EFI\\BOOT\\BOOTX64.EFI")
            ),
        );
    }
    Ok(HttpResponse::Ok()
        .content_type("application/efi")
        .body(ipxe::grub_local_for(&bin, esp.as_deref())))
}

async fn image(
    state: web::Data<HttpState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, actix_web::Error> {
    let (sha, filename) = path.into_inner();
    let served = state.rx.borrow().clone();
    let file = served
        .snapshot
        .as_ref()
        .and_then(|s| {
            s.files
                .iter()
                .find(|f| f.sha256 == sha && f.filename == filename)
                .cloned()
        })
        .ok_or_else(|| actix_web::error::ErrorNotFound("no such boot file"))?;
    let p = crate::images::path_of(&state.images, &file.sha256);
    let f = actix_files::NamedFile::open_async(&p).await.map_err(|_| {
        actix_web::error::ErrorServiceUnavailable(
            "this boot file is still being fetched from the region; retry shortly",
        )
    })?;
    state.metrics.inc("http_image");
    let whole = req.headers().get("range").is_none();
    if whole {
        if let Some(mac) = state.mac_for(&req, None) {
            state.event(
                &mac,
                "http_sent",
                format!("sent {} ({} bytes) over HTTP", file.filename, file.size),
            );
        }
    }
    Ok(f.use_etag(true)
        .read_mode_threshold(u64::MAX)
        .into_response(&req))
}

/// Forwards `/metadata/v1/{path}` to the region's metadata API with the machine's own
/// `Authorization`, so machines talk only to their rack.
async fn metadata(
    state: web::Data<HttpState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    state.metrics.inc("http_metadata");
    let mut target = path.into_inner();
    if !rack_proto::metadata_path_ok(&target) {
        state.metrics.inc("http_metadata_refused");
        return HttpResponse::BadRequest()
            .content_type("text/plain")
            .body("not a metadata path");
    }
    if let Some(q) = req.uri().query() {
        target.push('?');
        target.push_str(q);
    }
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let auth = header(actix_web::http::header::AUTHORIZATION);
    let ctype = header(actix_web::http::header::CONTENT_TYPE);
    let method = match reqwest::Method::from_bytes(req.method().as_str().as_bytes()) {
        Ok(m) => m,
        Err(_) => return HttpResponse::MethodNotAllowed().finish(),
    };
    let host = req.connection_info().host().to_string();
    let rack_url = format!("http://{host}");
    // The proxy as the machine reaches it: the address it reached this rack on (unless the proxy
    // listens on one address only), the proxy's port.
    let proxy_url = state.proxy.map(|p| {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if !h.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => host.as_str(),
        };
        if p.ip().is_unspecified() {
            format!("http://{name}:{}/", p.port())
        } else {
            format!("http://{p}/")
        }
    });
    match state
        .region
        .forward_metadata(
            method,
            &target,
            auth.as_deref(),
            ctype.as_deref(),
            crate::region::Seen {
                rack_url: &rack_url,
                proxy_url: proxy_url.as_deref(),
            },
            body,
        )
        .await
    {
        Ok(resp) => {
            let status = actix_web::http::StatusCode::from_u16(resp.status().as_u16())
                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
            let ct = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_string();
            match resp.bytes().await {
                Ok(b) => HttpResponse::build(status).content_type(ct).body(b),
                Err(e) => HttpResponse::BadGateway().body(format!("region answer cut short: {e}")),
            }
        }
        Err(e) => {
            tracing::warn!("metadata request for the region failed: {e}");
            HttpResponse::BadGateway()
                .content_type("text/plain")
                .body(format!("the rack cannot reach the region: {e}"))
        }
    }
}

async fn metrics(state: web::Data<HttpState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// Serves HTTP on `listener` until cancelled.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    cancel: CancellationToken,
) -> Result<()> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/boot/ipxe", web::get().to(script))
            .route("/boot/grub-local.efi", web::get().to(grub_local))
            .route("/boot/iscsi-failed", web::get().to(iscsi_failed))
            .route("/boot/claim", web::post().to(claim))
            .route("/boot/{file:.*}", web::get().to(bootloader))
            .route("/images/{sha}/{filename}", web::get().to(image))
            .route("/metrics", web::get().to(metrics))
            .service(
                web::resource("/metadata/v1/{path:.*}")
                    .app_data(web::PayloadConfig::new(8 << 20))
                    .to(metadata),
            )
    })
    .disable_signals()
    .workers(2)
    .listen(listener)
    .map_err(|e| Error::Config(format!("HTTP boot service: {e}")))?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    cancel.cancelled().await;
    handle.stop(true).await;
    let _ = task.await;
    Ok(())
}
