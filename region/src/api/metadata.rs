//! `/api/v1/metadata/...`: what a machine's commissioning runner calls, through its rack (the rack
//! forwards `http://<rack>:5248/metadata/v1/...` here, so machines never need a route to the
//! region). Authenticated by the machine's per-boot token (`kiln.token=` on its kernel command
//! line); every operation acts on the machine of the token, so a machine reaches only its own data.
//!
//! Also `/api/v1/scripts` (operators' commissioning scripts) and
//! `/api/v1/machines/{id}/results` (what the scripts printed).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use region_api_types as api;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AppState, Auth};
use crate::db::now_ms;
use crate::domain::boot::MachineBoot;
use crate::domain::commissioning;
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metadata/meta", web::get().to(meta))
        .route("/metadata/scripts", web::get().to(scripts_for_runner))
        .route("/metadata/events", web::post().to(report))
        .route("/metadata/scripts/{name}/start", web::post().to(start))
        .service(
            web::resource("/metadata/scripts/{name}/result")
                // More than the rack forwards (8 MiB): outputs over MAX_OUTPUT are cut, not refused.
                .app_data(web::PayloadConfig::new(9 << 20))
                .route(web::post().to(result)),
        )
        .route("/metadata/done", web::post().to(done))
        .route("/metadata/bmc", web::post().to(bmc))
        .route("/scripts", web::get().to(list_scripts))
        .route("/scripts", web::post().to(create_script))
        .route("/scripts/{name}", web::get().to(get_script))
        .route("/scripts/{name}", web::put().to(update_script))
        .route("/scripts/{name}", web::delete().to(delete_script))
        .route("/machines/{id}/results", web::get().to(results));
}

/// The machine (and boot) behind a metadata request.
pub struct MachineAuth(pub MachineBoot);

impl FromRequest for MachineAuth {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<MachineAuth>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(c) = super::credential::checked(req) {
            return Box::pin(async move {
                match c {
                    super::credential::Checked::Machine(mb) => Ok(MachineAuth(mb)),
                    other => Err(super::credential::wrong_kind(
                        "machines (boot tokens)",
                        &other,
                    )),
                }
            });
        }
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = super::bearer_token(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| Error::Internal("app state missing".into()))?;
            let token = token.ok_or_else(|| {
                Error::Unauthorized(
                    "Machines authenticate with 'Authorization: Bearer <kiln.token from the kernel command line>'.".into(),
                )
            })?;
            let mb = state
                .pool
                .run(move |c| crate::domain::boot::authenticate(c, &token, now_ms()))
                .await?;
            Ok(MachineAuth(mb))
        })
    }
}

/// Who the calling machine is.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Meta {
    pub system_id: String,
    pub hostname: String,
    pub status: api::MachineStatus,
    pub boot_id: String,
    /// `kiln`: Kiln powers the machine off through its BMC when commissioning is done, so the
    /// environment waits (up to `power_off_wait_secs`); `machine`: it powers itself off.
    pub power_off_by: String,
    pub power_off_wait_secs: u64,
    /// Whether commissioning configures the BMC (a Kiln user) for IPMI power.
    pub bmc_config: bool,
    /// While Deploying: what the installer does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<api::DeployPlan>,
    /// While Disk erasing: how to erase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erase: Option<api::ErasePlan>,
}

/// The calling machine's identity (machine token).
#[utoipa::path(get, path = "/api/v1/metadata/meta", tag = "metadata",
    responses((status = 200, body = Meta), (status = 401, body = api::ErrorBody)))]
pub async fn meta(state: web::Data<AppState>, m: MachineAuth) -> Result<HttpResponse> {
    let mb = m.0;
    let (row, deployment, erase) = state
        .pool
        .run({
            let sid = mb.system_id.clone();
            move |c| {
                let row = crate::db::machines::get_row(c, &sid)?
                    .ok_or_else(|| Error::not_found("machine"))?;
                let d = crate::domain::deploy::plan(c, &row)?;
                let e = crate::domain::deploy::erase_plan(c, &row)?;
                Ok((row, d, e))
            }
        })
        .await?;
    Ok(HttpResponse::Ok().json(Meta {
        deployment,
        erase,
        power_off_by: if commissioning::power_off_by_kiln(&row) {
            "kiln"
        } else {
            "machine"
        }
        .into(),
        power_off_wait_secs: 300,
        bmc_config: !row.skip_bmc_config,
        status: row.status(),
        system_id: row.system_id,
        hostname: row.hostname,
        boot_id: mb.boot_id,
    }))
}

/// The scripts the runner runs, in order: Kiln's built-ins, then the operator's (machine token).
#[utoipa::path(get, path = "/api/v1/metadata/scripts", tag = "metadata",
    responses((status = 200, body = Vec<api::RunnerScript>), (status = 401, body = api::ErrorBody)))]
pub async fn scripts_for_runner(
    state: web::Data<AppState>,
    _m: MachineAuth,
) -> Result<HttpResponse> {
    let s = state.pool.run(commissioning::runner_scripts).await?;
    Ok(HttpResponse::Ok().json(s))
}

/// An event the machine reports about itself (machine token).
#[utoipa::path(post, path = "/api/v1/metadata/events", tag = "metadata", request_body = api::MachineReport,
    responses((status = 204), (status = 400, body = api::ErrorBody), (status = 401, body = api::ErrorBody)))]
pub async fn report(
    state: web::Data<AppState>,
    m: MachineAuth,
    body: web::Json<api::MachineReport>,
) -> Result<HttpResponse> {
    let r = body.into_inner();
    state
        .pool
        .run(move |c| commissioning::report(c, &m.0, &r, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A script started (machine token).
#[utoipa::path(post, path = "/api/v1/metadata/scripts/{name}/start", tag = "metadata",
    params(("name" = String, Path, description = "script name")),
    responses((status = 204), (status = 401, body = api::ErrorBody), (status = 409, description = "the machine is not commissioning", body = api::ErrorBody)))]
pub async fn start(
    state: web::Data<AppState>,
    m: MachineAuth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let name = path.into_inner();
    state
        .pool
        .run(move |c| commissioning::script_started(c, &m.0, &name, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ResultQuery {
    /// The script's exit status (124: timed out).
    exit_code: i32,
    /// How long it ran.
    duration_ms: Option<i64>,
}

/// A script's output (the body, up to 4 MiB kept) and exit status (machine token).
#[utoipa::path(post, path = "/api/v1/metadata/scripts/{name}/result", tag = "metadata",
    params(("name" = String, Path, description = "script name"), ResultQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 204), (status = 401, body = api::ErrorBody), (status = 409, description = "the machine is not commissioning", body = api::ErrorBody)))]
pub async fn result(
    state: web::Data<AppState>,
    m: MachineAuth,
    path: web::Path<String>,
    q: web::Query<ResultQuery>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let name = path.into_inner();
    let q = q.into_inner();
    state
        .pool
        .run(move |c| {
            commissioning::script_finished(
                c,
                &m.0,
                &name,
                q.exit_code,
                q.duration_ms.unwrap_or(0),
                &body,
                now_ms(),
            )
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The runner is done: the region checks every script reported and passed, reads the inventory,
/// and moves the machine to Ready or Failed commissioning (machine token).
#[utoipa::path(post, path = "/api/v1/metadata/done", tag = "metadata",
    responses((status = 200, body = api::CommissioningOutcome), (status = 401, body = api::ErrorBody), (status = 409, body = api::ErrorBody)))]
pub async fn done(state: web::Data<AppState>, m: MachineAuth) -> Result<HttpResponse> {
    let out = state
        .pool
        .run(move |c| commissioning::finish(c, &m.0, now_ms()))
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Commissioning scripts: Kiln's built-ins, then the operator's.
#[utoipa::path(get, path = "/api/v1/scripts", tag = "scripts",
    responses((status = 200, body = Vec<api::Script>), (status = 401, body = api::ErrorBody)))]
pub async fn list_scripts(state: web::Data<AppState>, _a: Auth) -> Result<HttpResponse> {
    let s = state.pool.run(commissioning::list_scripts).await?;
    Ok(HttpResponse::Ok().json(s))
}

/// Add a commissioning script (admins). It runs after the built-ins, in name order, on every
/// commissioning from then on.
#[utoipa::path(post, path = "/api/v1/scripts", tag = "scripts", request_body = api::ScriptWrite,
    responses((status = 201, body = api::Script), (status = 400, body = api::ErrorBody), (status = 403, body = api::ErrorBody), (status = 409, body = api::ErrorBody)))]
pub async fn create_script(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: web::Json<api::ScriptWrite>,
) -> Result<HttpResponse> {
    let w = body.into_inner();
    let s = state
        .pool
        .run(move |c| commissioning::create_script(c, &caller, &w, now_ms()))
        .await?;
    Ok(HttpResponse::Created().json(s))
}

/// One commissioning script.
#[utoipa::path(get, path = "/api/v1/scripts/{name}", tag = "scripts",
    params(("name" = String, Path, description = "script name")),
    responses((status = 200, body = api::Script), (status = 404, body = api::ErrorBody)))]
pub async fn get_script(
    state: web::Data<AppState>,
    _a: Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let name = path.into_inner();
    let s = state
        .pool
        .run(move |c| commissioning::get_script(c, &name))
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

/// Replace an operator script (admins; built-ins are read-only).
#[utoipa::path(put, path = "/api/v1/scripts/{name}", tag = "scripts", request_body = api::ScriptWrite,
    params(("name" = String, Path, description = "script name")),
    responses((status = 200, body = api::Script), (status = 400, body = api::ErrorBody), (status = 404, body = api::ErrorBody)))]
pub async fn update_script(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: web::Json<api::ScriptWrite>,
) -> Result<HttpResponse> {
    let name = path.into_inner();
    let w = body.into_inner();
    let s = state
        .pool
        .run(move |c| commissioning::update_script(c, &caller, &name, &w, now_ms()))
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

/// Delete an operator script (admins).
#[utoipa::path(delete, path = "/api/v1/scripts/{name}", tag = "scripts",
    params(("name" = String, Path, description = "script name")),
    responses((status = 204), (status = 400, body = api::ErrorBody), (status = 404, body = api::ErrorBody)))]
pub async fn delete_script(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let name = path.into_inner();
    state
        .pool
        .run(move |c| commissioning::delete_script(c, &caller, &name, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    /// A boot id (default: the latest boot that ran scripts).
    boot_id: Option<String>,
    /// Include each script's output (default true).
    output: Option<bool>,
}

/// What a machine's commissioning scripts reported: status, exit code, output.
#[utoipa::path(get, path = "/api/v1/machines/{id}/results", tag = "machines",
    params(("id" = String, Path, description = "system_id"), ResultsQuery),
    responses((status = 200, body = Vec<api::ScriptResult>), (status = 404, body = api::ErrorBody)))]
pub async fn results(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    q: web::Query<ResultsQuery>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let q = q.into_inner();
    let r = state
        .pool
        .run(move |c| {
            commissioning::results(
                c,
                &caller,
                &id,
                q.boot_id.as_deref(),
                q.output.unwrap_or(true),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

/// BMC credentials commissioning created (machine token): the machine's power type becomes
/// `ipmi` with them. The password is sealed at once and never logged.
#[utoipa::path(post, path = "/api/v1/metadata/bmc", tag = "metadata", request_body = api::BmcReport,
    responses((status = 204), (status = 400, body = api::ErrorBody), (status = 401, body = api::ErrorBody),
              (status = 409, body = api::ErrorBody, description = "The machine skips BMC configuration")))]
pub async fn bmc(
    state: web::Data<AppState>,
    m: MachineAuth,
    body: web::Json<api::BmcReport>,
) -> Result<HttpResponse> {
    let mb = m.0;
    let sb = state.secrets.clone();
    let rep = body.into_inner();
    state
        .pool
        .run(move |c| crate::domain::power::bmc_configured(c, &sb, &mb.system_id, &rep, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
