//! Deployment endpoints: SSH keys (`/users/me/ssh-keys`), allocation (`/machines/allocate`), a
//! machine's deployment with its installer output (`/machines/{id}/deployment`), and what the
//! installer, eraser and deployed system call (`/metadata/deploy/*`, `/metadata/erase/done`,
//! `/metadata/nocloud/{token}/*`). Deploy and release bodies are taken by `machines::action`.

use actix_web::{web, HttpRequest, HttpResponse};
use region_api_types as api;

use super::metadata::MachineAuth;
use super::{AppState, Auth};
use crate::db::now_ms;
use crate::domain::{allocate, deploy, machines};
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/me/ssh-keys", web::get().to(list_keys))
        .route("/users/me/ssh-keys", web::post().to(add_key))
        .route("/users/me/ssh-keys/{id}", web::delete().to(delete_key))
        .route("/machines/allocate", web::post().to(allocate))
        .route(
            "/machines/{system_id}/deployment",
            web::get().to(deployment),
        )
        .service(
            web::resource("/metadata/deploy/installed")
                .app_data(web::JsonConfig::default().limit(4 << 20))
                .route(web::post().to(installed)),
        )
        .service(
            web::resource("/metadata/deploy/failed")
                .app_data(web::JsonConfig::default().limit(4 << 20))
                .route(web::post().to(failed)),
        )
        .service(
            web::resource("/metadata/erase/done")
                .app_data(web::JsonConfig::default().limit(4 << 20))
                .route(web::post().to(erase_done)),
        )
        .route(
            "/metadata/nocloud/{token}/phone-home",
            web::post().to(phone_home),
        )
        .route("/metadata/nocloud/{token}/{file}", web::get().to(seed));
}

/// The caller's SSH public keys.
#[utoipa::path(get, path = "/api/v1/users/me/ssh-keys", tag = "users",
    responses((status = 200, body = Vec<api::SshKey>), (status = 401, body = api::ErrorBody)))]
pub async fn list_keys(state: web::Data<AppState>, Auth(caller): Auth) -> Result<HttpResponse> {
    let keys = state
        .pool
        .run(move |c| deploy::list_keys(c, &caller))
        .await?;
    Ok(HttpResponse::Ok().json(keys))
}

/// Adds an SSH public key for the caller; deployed machines of theirs get it.
#[utoipa::path(post, path = "/api/v1/users/me/ssh-keys", tag = "users", request_body = api::SshKeyCreate,
    responses((status = 201, body = api::SshKey), (status = 400, body = api::ErrorBody),
              (status = 409, description = "the key is there already", body = api::ErrorBody)))]
pub async fn add_key(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: web::Json<api::SshKeyCreate>,
) -> Result<HttpResponse> {
    let key = body.into_inner().key;
    let k = state
        .pool
        .run(move |c| deploy::add_key(c, &caller, &key, now_ms()))
        .await?;
    Ok(HttpResponse::Created().json(k))
}

/// Deletes one of the caller's SSH keys.
#[utoipa::path(delete, path = "/api/v1/users/me/ssh-keys/{id}", tag = "users",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 204), (status = 404, body = api::ErrorBody)))]
pub async fn delete_key(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    state
        .pool
        .run(move |c| deploy::delete_key(c, &caller, &id, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Allocates the best-fitting Ready machine to the caller (409 naming the constraint none meets).
#[utoipa::path(post, path = "/api/v1/machines/allocate", tag = "machines", request_body = api::AllocateRequest,
    responses((status = 200, body = api::Machine), (status = 400, body = api::ErrorBody),
              (status = 409, description = "no machine meets the constraints", body = api::ErrorBody)))]
pub async fn allocate(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let req: api::AllocateRequest = super::machines::parse_body(&body)?;
    let cfg = state.cfg.clone();
    let m = state
        .pool
        .run(move |c| {
            let lifecycle = crate::domain::settings::lifecycle(c, &cfg)?;
            allocate::allocate(c, &caller, &req, &lifecycle, now_ms())
        })
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

/// A machine's current deployment, with the installer's output (its owner and admins).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeploymentDetail {
    #[serde(flatten)]
    pub deployment: api::Deployment,
    pub installer_output: String,
}

#[utoipa::path(get, path = "/api/v1/machines/{system_id}/deployment", tag = "machines",
    params(("system_id" = String, Path, description = "The machine's system_id")),
    responses((status = 200, body = DeploymentDetail), (status = 404, body = api::ErrorBody)))]
pub async fn deployment(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let d = state
        .pool
        .run(move |c| {
            machines::get(c, &caller, &id)?;
            crate::db::deploy::latest(c, &id)?
                .ok_or_else(|| Error::not_found(format!("a deployment of machine {id}")))
        })
        .await?;
    Ok(HttpResponse::Ok().json(DeploymentDetail {
        deployment: d.to_api(),
        installer_output: d.installer_output,
    }))
}

/// The installer wrote the OS (machine token): the machine boots its disk from now on.
#[utoipa::path(post, path = "/api/v1/metadata/deploy/installed", tag = "metadata", request_body = api::InstallReport,
    responses((status = 204), (status = 401, body = api::ErrorBody), (status = 409, body = api::ErrorBody)))]
pub async fn installed(
    state: web::Data<AppState>,
    m: MachineAuth,
    body: web::Json<api::InstallReport>,
) -> Result<HttpResponse> {
    let r = body.into_inner();
    state
        .pool
        .run(move |c| deploy::installed(c, &m.0, &r, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A step of the installer failed (machine token): Failed deployment with the output.
#[utoipa::path(post, path = "/api/v1/metadata/deploy/failed", tag = "metadata", request_body = api::StepReport,
    responses((status = 204), (status = 401, body = api::ErrorBody), (status = 409, body = api::ErrorBody)))]
pub async fn failed(
    state: web::Data<AppState>,
    m: MachineAuth,
    body: web::Json<api::StepReport>,
) -> Result<HttpResponse> {
    let r = body.into_inner();
    state
        .pool
        .run(move |c| deploy::install_failed(c, &m.0, &r, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The eraser finished (machine token): Ready, or Failed disk erasing.
#[utoipa::path(post, path = "/api/v1/metadata/erase/done", tag = "metadata", request_body = api::StepReport,
    responses((status = 204), (status = 401, body = api::ErrorBody), (status = 409, body = api::ErrorBody)))]
pub async fn erase_done(
    state: web::Data<AppState>,
    m: MachineAuth,
    body: web::Json<api::StepReport>,
) -> Result<HttpResponse> {
    let r = body.into_inner();
    state
        .pool
        .run(move |c| deploy::erase_done(c, &m.0, &r, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn seed_auth(
    state: &web::Data<AppState>,
    token: String,
) -> Result<crate::domain::boot::MachineBoot> {
    state
        .pool
        .run(move |c| crate::domain::boot::authenticate(c, &token, now_ms()))
        .await
}

/// The rack's base URL as the machine sees it (the rack's proxy says so).
fn rack_url(req: &HttpRequest) -> Result<String> {
    let v = req
        .headers()
        .get("x-kiln-rack-url")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Error::BadRequest(
                "Seed files are served through a rack (http://<rack>:5248/metadata/v1/nocloud/…)."
                    .into(),
            )
        })?;
    if !(v.starts_with("http://") || v.starts_with("https://"))
        || v.len() > 200
        || v.contains(char::is_whitespace)
    {
        return Err(Error::BadRequest(
            "The rack sent an unusable X-Kiln-Rack-Url.".into(),
        ));
    }
    Ok(v.trim_end_matches('/').to_string())
}

/// The rack's HTTP proxy as the machine reaches it, when the rack runs one (`X-Kiln-Rack-Proxy`).
fn rack_proxy(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get("x-kiln-rack-proxy")?.to_str().ok()?;
    (v.starts_with("http://") && v.len() <= 200 && !v.contains(char::is_whitespace))
        .then(|| v.to_string())
}

/// The deployed system's NoCloud seed: `meta-data`, `user-data`, `vendor-data`, `network-config`
/// (the deployment's credential in the path, as cloud-init's `seedfrom` URL carries it).
#[utoipa::path(get, path = "/api/v1/metadata/nocloud/{token}/{file}", tag = "metadata",
    params(("token" = String, Path, description = "The deployment's credential"),
           ("file" = String, Path, description = "meta-data, user-data, vendor-data or network-config")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = api::ErrorBody)))]
pub async fn seed(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (token, file) = path.into_inner();
    let mb = seed_auth(&state, token.clone()).await?;
    let base = rack_url(&req)?;
    let proxy = rack_proxy(&req);
    let sb = state.secrets.clone();
    let text = state
        .pool
        .run(move |c| deploy::seed(c, &sb, &mb, &file, &base, proxy.as_deref(), &token))
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text))
}

/// cloud-init on the deployed system finished (its phone-home): the machine is Deployed.
#[utoipa::path(post, path = "/api/v1/metadata/nocloud/{token}/phone-home", tag = "metadata",
    params(("token" = String, Path, description = "The deployment's credential")),
    responses((status = 204), (status = 401, body = api::ErrorBody), (status = 409, body = api::ErrorBody)))]
pub async fn phone_home(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let mb = seed_auth(&state, path.into_inner()).await?;
    state
        .pool
        .run(move |c| deploy::deployed(c, &mb, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
