//! `/api/v1/rack/...`: what rack controllers call. Racks enrol with a one-time token (`kiln admin
//! rack-token`; or the deprecated shared secret) and then authenticate with their own bearer
//! token. Every endpoint but the heartbeat wants an approved rack (`domain::racks`).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use region_api_types as api;
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use crate::db::{self, now_ms};
use crate::domain::{auth, validate};
use crate::error::{Error, Result};

/// DHCP lease time handed to racks.
pub const LEASE_TIME_SECS: u32 = 600;
/// Longest a snapshot long-poll waits.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/rack/register", web::post().to(register))
        .route("/rack/heartbeat", web::post().to(heartbeat))
        .route("/rack/snapshot", web::get().to(snapshot))
        .route("/rack/events", web::post().to(events))
        .route("/rack/boot", web::post().to(boot))
        .route("/rack/claim", web::post().to(claim))
        .route("/rack/volumes", web::get().to(volumes))
        .route("/rack/volumes/{id}", web::post().to(volume_report))
        .route("/rack/files/{sha256}", web::get().to(file));
}

/// The deprecated shared rack secret, created on first use.
pub fn rack_secret(conn: &mut db::DbConn) -> Result<String> {
    crate::domain::racks::rack_secret(conn)
}

/// The rack a request comes from: an approved one (every rack endpoint but the heartbeat).
pub struct RackAuth {
    pub rack_id: String,
    pub name: String,
}

/// Any rack with a valid token, approved or still pending (the heartbeat).
pub struct AnyRack {
    pub rack_id: String,
    pub name: String,
    pub approval: String,
}

/// Looks up a rack token (the credential middleware and the extractors).
pub async fn lookup(state: &AppState, token: Option<String>) -> Result<AnyRack> {
    let token = token.ok_or_else(|| {
        Error::Unauthorized(
            "Racks authenticate with 'Authorization: Bearer <rack token>' from /api/v1/rack/register."
                .into(),
        )
    })?;
    let hash = auth::token_hash(&token);
    let rack = state
        .pool
        .run(move |c| db::racks::by_token_hash(c, &hash))
        .await?
        .ok_or_else(|| {
            Error::Unauthorized(
                "Unknown rack token (revoked, or the region's database is new): enrol the rack with a token from `kiln admin rack-token`."
                    .into(),
            )
        })?;
    Ok(AnyRack {
        rack_id: rack.id,
        name: rack.name,
        approval: rack.approval,
    })
}

fn any_rack(req: &HttpRequest) -> Pin<Box<dyn Future<Output = Result<AnyRack>>>> {
    if let Some(c) = super::credential::checked(req) {
        return Box::pin(async move {
            match c {
                super::credential::Checked::Rack {
                    rack_id,
                    name,
                    approval,
                } => Ok(AnyRack {
                    rack_id,
                    name,
                    approval,
                }),
                other => Err(super::credential::wrong_kind("racks", &other)),
            }
        });
    }
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let token = super::bearer_token(req);
    Box::pin(async move {
        let state = state.ok_or_else(|| Error::Internal("app state missing".into()))?;
        lookup(&state, token).await
    })
}

impl FromRequest for AnyRack {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<AnyRack>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        any_rack(req)
    }
}

impl FromRequest for RackAuth {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<RackAuth>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let f = any_rack(req);
        Box::pin(async move {
            let r = f.await?;
            if r.approval != "approved" {
                return Err(Error::Forbidden(format!(
                    "Rack {} ({}) is {}: an admin approves it with `kiln racks approve {}`; until then it gets no snapshot, jobs or secrets.",
                    r.name, r.rack_id, r.approval, r.rack_id
                )));
            }
            Ok(RackAuth {
                rack_id: r.rack_id,
                name: r.name,
            })
        })
    }
}

fn interfaces_json(ifaces: &[api::RackInterface]) -> Result<String> {
    for (i, iface) in ifaces.iter().enumerate() {
        validate::mac(&format!("interfaces[{i}].mac"), &iface.mac)?;
        for a in &iface.addresses {
            a.parse::<ipnet::IpNet>().map_err(|_| {
                Error::validation(
                    format!("interfaces[{i}].addresses"),
                    format!("'{a}' is not an address in CIDR form"),
                )
            })?;
        }
    }
    serde_json::to_string(ifaces).map_err(|e| Error::Internal(e.to_string()))
}

/// Enrol a rack with a one-time enrolment token (or the deprecated shared secret); enrolling
/// again under the same name re-issues that rack's credentials.
#[utoipa::path(post, path = "/api/v1/rack/register", request_body = api::RackRegister, tag = "racks", security(()),
    responses((status = 200, body = api::RackRegistered), (status = 401, description = "wrong, used or expired token or secret", body = api::ErrorBody),
        (status = 403, description = "the rack was revoked", body = api::ErrorBody)))]
pub async fn register(
    state: web::Data<AppState>,
    body: web::Json<api::RackRegister>,
) -> Result<HttpResponse> {
    let b = body.into_inner();
    let reg = crate::domain::racks::Registration {
        name: validate::name("name", &b.name)?,
        interfaces_json: interfaces_json(&b.interfaces)?,
        version: match &b.version {
            Some(v) => Some(validate::text("version", v, 64)?),
            None => None,
        },
        secret: b.secret,
        enrolment_token: b.enrolment_token,
    };
    let (out, approval) = state
        .pool
        .run(move |c| crate::domain::racks::register(c, &reg, now_ms()))
        .await?;
    tracing::info!(rack.id = %out.rack_id, "rack {} registered ({approval})", out.rack_id);
    Ok(HttpResponse::Ok().json(out))
}

/// A rack is alive; its interfaces are as given.
#[utoipa::path(post, path = "/api/v1/rack/heartbeat", request_body = api::RackHeartbeat, tag = "racks",
    responses((status = 204), (status = 401, body = api::ErrorBody)))]
pub async fn heartbeat(
    state: web::Data<AppState>,
    rack: AnyRack,
    body: web::Json<api::RackHeartbeat>,
) -> Result<HttpResponse> {
    let ifaces = interfaces_json(&body.interfaces)?;
    let iscsi = match &body.iscsi {
        Some(i) => {
            rack_proto::iscsi::Portal::parse(&i.portal)
                .map_err(|e| Error::validation("iscsi.portal", e))?;
            crate::domain::volumes::clone_method_ok("iscsi.clone_method", &i.clone_method)?;
            validate::name("iscsi.driver", &i.driver)?;
            if let Some(e) = &i.error {
                validate::text("iscsi.error", e, 2000)?;
            }
            Some(serde_json::to_string(i).map_err(|e| Error::Internal(e.to_string()))?)
        }
        None => None,
    };
    let images = match &body.images {
        Some(list) => {
            if list.len() > 100_000 {
                return Err(Error::validation(
                    "images",
                    "At most 100000 cached files are reported.",
                ));
            }
            Some(
                list.iter()
                    .map(|s| validate::sha256("images", s))
                    .collect::<Result<Vec<String>>>()?,
            )
        }
        None => None,
    };
    state
        .pool
        .run(move |c| {
            db::racks::seen(c, &rack.rack_id, Some(&ifaces), now_ms())?;
            if let Some(i) = &images {
                db::racks::set_images(c, &rack.rack_id, i)?;
            }
            db::volumes::set_rack_iscsi(c, &rack.rack_id, iscsi.as_deref())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The root volumes this rack is to serve or remove, with their CHAP secrets and seed
/// credentials (for this rack only).
#[utoipa::path(get, path = "/api/v1/rack/volumes", tag = "racks",
    responses((status = 200, body = api::RackVolumes), (status = 401, body = api::ErrorBody)))]
pub async fn volumes(state: web::Data<AppState>, rack: RackAuth) -> Result<HttpResponse> {
    let sb = state.secrets.clone();
    let out = state
        .pool
        .run(move |c| crate::domain::volumes::feed(c, &sb, &rack.rack_id))
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// What the rack did with a volume: `ready` (the machine is powered on now), `failed` (Failed
/// deployment with the message), `removed`.
#[utoipa::path(post, path = "/api/v1/rack/volumes/{id}", tag = "racks", request_body = api::RackVolumeReport,
    params(("id" = String, Path, description = "Volume id")),
    responses((status = 204), (status = 400, body = api::ErrorBody), (status = 404, body = api::ErrorBody)))]
pub async fn volume_report(
    state: web::Data<AppState>,
    rack: RackAuth,
    path: web::Path<String>,
    body: web::Json<api::RackVolumeReport>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let r = body.into_inner();
    state
        .pool
        .run(move |c| crate::domain::volumes::report(c, &rack.rack_id, &id, &r, now_ms()))
        .await?;
    state.power_wake.notify_waiters();
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    /// The etag of the snapshot the rack has; the answer waits until there is a newer one.
    etag: Option<String>,
    /// Seconds to wait for a change (default 25, at most 30); 0 answers at once.
    wait: Option<u64>,
}

/// Build the snapshot a rack serves from.
pub fn build_snapshot(c: &mut db::DbConn) -> Result<api::RackSnapshot> {
    let etag = db::racks::snapshot_fingerprint(c)?;
    let subnets = db::subnets::list(c)?.iter().map(|s| s.to_api()).collect();
    Ok(api::RackSnapshot {
        etag,
        subnets,
        machines: db::racks::snapshot_machines(c)?,
        files: db::racks::snapshot_files(c)?,
        lease_time_secs: LEASE_TIME_SECS,
        dns: db::dns::snapshot(c)?,
    })
}

/// The rack's snapshot. With `etag`, a long poll: answers 304 if nothing changed within `wait` seconds.
#[utoipa::path(get, path = "/api/v1/rack/snapshot", params(SnapshotQuery), tag = "racks",
    responses((status = 200, body = api::RackSnapshot), (status = 304, description = "unchanged"), (status = 401, body = api::ErrorBody)))]
pub async fn snapshot(
    state: web::Data<AppState>,
    rack: RackAuth,
    q: web::Query<SnapshotQuery>,
) -> Result<HttpResponse> {
    let wait = Duration::from_secs(q.wait.unwrap_or(25)).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let id = rack.rack_id.clone();
    state
        .pool
        .run(move |c| db::racks::seen(c, &id, None, now_ms()))
        .await?;
    if let Some(have) = q.etag.clone() {
        loop {
            let current = state.pool.run(db::racks::snapshot_fingerprint).await?;
            if current != have {
                break;
            }
            if Instant::now() >= deadline {
                return Ok(HttpResponse::NotModified().finish());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let snap = state.pool.run(build_snapshot).await?;
    Ok(HttpResponse::Ok().json(snap))
}

/// What a rack saw: DHCP leases, PXE requests, files sent. Each becomes an event on the machine with
/// that MAC (or a machine-less event for unknown MACs); leases also record the machine's address.
#[utoipa::path(post, path = "/api/v1/rack/events", request_body = Vec<api::RackEvent>, tag = "racks",
    responses((status = 204), (status = 400, body = api::ErrorBody), (status = 401, body = api::ErrorBody)))]
pub async fn events(
    state: web::Data<AppState>,
    rack: RackAuth,
    body: web::Json<Vec<api::RackEvent>>,
) -> Result<HttpResponse> {
    let evs = body.into_inner();
    state
        .pool
        .run(move |c| {
            crate::domain::racks::record_events(c, &rack.rack_id, &rack.name, &evs, now_ms())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A machine is PXE booting through this rack: what should it boot? Unknown MACs are enlisted (and
/// commissioned, unless `lifecycle.enlist_commission` is off); a machine that boots the ephemeral
/// environment gets this boot's credential, which replaces its previous one.
#[utoipa::path(post, path = "/api/v1/rack/boot", request_body = api::RackBootRequest, tag = "racks",
    responses((status = 200, body = api::RackBootAnswer), (status = 400, body = api::ErrorBody), (status = 401, body = api::ErrorBody)))]
pub async fn boot(
    state: web::Data<AppState>,
    rack: RackAuth,
    body: web::Json<api::RackBootRequest>,
) -> Result<HttpResponse> {
    let req = body.into_inner();
    let cfg = state.cfg.clone();
    let sb = state.secrets.clone();
    let answer = state
        .pool
        .run(move |c| {
            let lifecycle = crate::domain::settings::lifecycle(c, &cfg)?;
            crate::domain::boot::rack_boot(c, &sb, &req, &rack.name, &lifecycle, now_ms())
        })
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// A machine's initramfs trades this boot's claim code (`kiln.claim=` on its kernel command line)
/// for its credential, through the rack that leased its address to `mac`. Good once, and only
/// for the machine with that MAC; refusals are events on the machines concerned.
#[utoipa::path(post, path = "/api/v1/rack/claim", request_body = api::RackClaimRequest, tag = "racks",
    responses((status = 200, body = api::RackClaimAnswer), (status = 400, body = api::ErrorBody),
        (status = 401, body = api::ErrorBody), (status = 403, body = api::ErrorBody)))]
pub async fn claim(
    state: web::Data<AppState>,
    rack: RackAuth,
    body: web::Json<api::RackClaimRequest>,
) -> Result<HttpResponse> {
    let req = body.into_inner();
    let answer = state
        .pool
        .run(move |c| crate::domain::boot::redeem_claim(c, &req, &rack.name, now_ms()))
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// A boot file by sha256, for the rack's cache (supports `Range`, so interrupted syncs resume).
#[utoipa::path(get, path = "/api/v1/rack/files/{sha256}", tag = "racks",
    params(("sha256" = String, Path, description = "sha256 of the file")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = api::ErrorBody)))]
pub async fn file(
    state: web::Data<AppState>,
    _rack: RackAuth,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let sha = validate::sha256("sha256", &path.into_inner())?;
    let s2 = sha.clone();
    if !state
        .pool
        .run(move |c| db::boot::sha_in_use(c, &s2))
        .await?
    {
        return Err(Error::not_found(format!("boot file {sha}")));
    }
    let f = actix_files::NamedFile::open_async(state.store.path_of(&sha))
        .await
        .map_err(|_| Error::not_found(format!("boot file {sha}")))?
        .use_etag(true);
    Ok(f.into_response(&req))
}
