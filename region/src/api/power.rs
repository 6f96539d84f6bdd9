//! Power: `POST /machines/{id}/power-on|power-off|power-cycle`, `GET /machines/{id}/power`,
//! `GET /power-jobs/{id}`, `GET /power-types`; and the racks' side, `GET /rack/power-jobs` (long
//! poll) and `POST /rack/power-jobs/{id}`.
//!
//! A power request queues a job for a rack that reaches the BMC and waits (default 60 s) for its
//! answer: 200 with the new state, 502 with the BMC's answer in words, or 202 with the job when
//! the wait ran out (poll `GET /power-jobs/{id}`). `manual` machines answer 200 at once with state
//! `unknown` and an event asking the operator.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use region_api_types::{self as api, PowerAction};
use serde::Deserialize;

use super::rack_api::RackAuth;
use super::{AppState, Auth};
use crate::db::now_ms;
use crate::domain::{machines, power};
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/machines/{system_id}/power-on", web::post().to(power_on))
        .route("/machines/{system_id}/power-off", web::post().to(power_off))
        .route(
            "/machines/{system_id}/power-cycle",
            web::post().to(power_cycle),
        )
        .route("/machines/{system_id}/power", web::get().to(query))
        .route("/power-jobs/{id}", web::get().to(get_job))
        .route("/power-types", web::get().to(power_types))
        .route("/rack/power-jobs", web::get().to(rack_jobs))
        .route("/rack/power-jobs/{id}", web::post().to(rack_result));
}

const DEFAULT_WAIT: u32 = 60;
const MAX_WAIT: u32 = 300;

fn parse_body(body: &web::Bytes) -> Result<api::PowerRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(api::PowerRequest::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| Error::BadRequest(format!("The JSON body is not valid: {e}.")))
}

fn power_status(m: api::Machine, job: Option<api::PowerJob>) -> api::PowerStatus {
    api::PowerStatus {
        system_id: m.system_id,
        power_type: m.power_type,
        power_state: m.power_state,
        checked_at: m.power_state_checked_at,
        job,
    }
}

/// Queues `action` and waits for the rack's answer.
async fn run(
    state: &web::Data<AppState>,
    caller: crate::domain::Caller,
    system_id: String,
    action: PowerAction,
    boot: Option<api::BootDevice>,
    wait: u32,
) -> Result<HttpResponse> {
    let wait = wait.min(MAX_WAIT);
    let job_id = state
        .pool
        .run({
            let (caller, system_id) = (caller.clone(), system_id.clone());
            move |c| power::request(c, &caller, &system_id, action, boot, now_ms())
        })
        .await?;
    state.power_wake.notify_waiters();
    let status = |job: Option<api::PowerJob>| {
        let state = state.clone();
        let (caller, system_id) = (caller.clone(), system_id.clone());
        async move {
            let m = state
                .pool
                .run(move |c| machines::get(c, &caller, &system_id))
                .await?;
            Ok::<_, Error>(power_status(m, job))
        }
    };
    let Some(job_id) = job_id else {
        // manual: the event asks the operator.
        return Ok(HttpResponse::Ok().json(status(None).await?));
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
    loop {
        // Registered before the check, so an answer arriving meanwhile still wakes us.
        let answered = state.power_done.notified();
        let job = state
            .pool
            .run({
                let id = job_id.clone();
                move |c| power::job(c, &id)
            })
            .await?
            .ok_or_else(|| Error::not_found(format!("power job {job_id}")))?;
        match job.status {
            api::PowerJobStatus::Done => {
                return Ok(HttpResponse::Ok().json(status(Some(job)).await?))
            }
            api::PowerJobStatus::Failed => {
                return Err(Error::Power(format!(
                    "Power {action} of machine {system_id} failed: {}.",
                    job.message.as_deref().unwrap_or("no reason given")
                )))
            }
            _ if tokio::time::Instant::now() >= deadline => {
                return Ok(HttpResponse::Accepted()
                    .insert_header(("Location", format!("/api/v1/power-jobs/{}", job.id)))
                    .json(status(Some(job)).await?))
            }
            // Answers through another region (shared PostgreSQL) are seen by the periodic check.
            _ => {
                tokio::select! {
                    _ = answered => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        }
    }
}

async fn switch(
    state: web::Data<AppState>,
    caller: crate::domain::Caller,
    system_id: String,
    action: PowerAction,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let req = parse_body(&body)?;
    run(
        &state,
        caller,
        system_id,
        action,
        req.boot_device,
        req.wait_secs.unwrap_or(DEFAULT_WAIT),
    )
    .await
}

/// Power a machine on (admins and its owner). Optional body: `boot_device` (`pxe`, `disk`) to set
/// first, `wait_secs` (default 60, at most 300).
#[utoipa::path(post, path = "/api/v1/machines/{system_id}/power-on", tag = "power",
    params(("system_id" = String, Path, description = "The machine's system_id")),
    request_body(content = Option<api::PowerRequest>),
    responses((status = 200, body = api::PowerStatus, description = "Done: the BMC reports the machine on"),
              (status = 202, body = api::PowerStatus, description = "Still running after wait_secs; see the job"),
              (status = 403, body = api::ErrorBody), (status = 404, body = api::ErrorBody),
              (status = 502, body = api::ErrorBody, description = "The BMC refused or did not answer (its answer in words)")))]
pub async fn power_on(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    switch(state, caller, path.into_inner(), PowerAction::On, body).await
}

/// Power a machine off (hard, or soft with `power_off_mode=soft` for IPMI). Same body and answers
/// as power-on.
#[utoipa::path(post, path = "/api/v1/machines/{system_id}/power-off", tag = "power",
    params(("system_id" = String, Path, description = "The machine's system_id")),
    request_body(content = Option<api::PowerRequest>),
    responses((status = 200, body = api::PowerStatus), (status = 202, body = api::PowerStatus),
              (status = 403, body = api::ErrorBody), (status = 404, body = api::ErrorBody), (status = 502, body = api::ErrorBody)))]
pub async fn power_off(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    switch(state, caller, path.into_inner(), PowerAction::Off, body).await
}

/// Power cycle: off then on; a machine that is off is just powered on. Same body and answers.
#[utoipa::path(post, path = "/api/v1/machines/{system_id}/power-cycle", tag = "power",
    params(("system_id" = String, Path, description = "The machine's system_id")),
    request_body(content = Option<api::PowerRequest>),
    responses((status = 200, body = api::PowerStatus), (status = 202, body = api::PowerStatus),
              (status = 403, body = api::ErrorBody), (status = 404, body = api::ErrorBody), (status = 502, body = api::ErrorBody)))]
pub async fn power_cycle(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    switch(state, caller, path.into_inner(), PowerAction::Cycle, body).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct QueryParams {
    /// `true`: answer from the last state seen instead of asking the BMC now.
    #[serde(default)]
    pub cached: bool,
    /// Seconds to wait for the BMC (default 60, at most 300).
    pub wait_secs: Option<u32>,
}

/// A machine's power state, read from its BMC now (or the last one seen with `cached=true`).
#[utoipa::path(get, path = "/api/v1/machines/{system_id}/power", tag = "power",
    params(("system_id" = String, Path, description = "The machine's system_id"), QueryParams),
    responses((status = 200, body = api::PowerStatus), (status = 202, body = api::PowerStatus),
              (status = 404, body = api::ErrorBody), (status = 502, body = api::ErrorBody)))]
pub async fn query(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    q: web::Query<QueryParams>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    if q.cached {
        let m = state
            .pool
            .run(move |c| machines::get(c, &caller, &id))
            .await?;
        return Ok(HttpResponse::Ok().json(power_status(m, None)));
    }
    run(
        &state,
        caller,
        id,
        PowerAction::Query,
        None,
        q.wait_secs.unwrap_or(DEFAULT_WAIT),
    )
    .await
}

/// One power job (as returned with 202 by the power endpoints).
#[utoipa::path(get, path = "/api/v1/power-jobs/{id}", tag = "power",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, body = api::PowerJob), (status = 404, body = api::ErrorBody)))]
pub async fn get_job(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let job = state
        .pool
        .run(move |c| {
            let j =
                power::job(c, &id)?.ok_or_else(|| Error::not_found(format!("power job {id}")))?;
            // Only those who may see the machine see its jobs.
            machines::get(c, &caller, &j.system_id)?;
            Ok(j)
        })
        .await?;
    Ok(HttpResponse::Ok().json(job))
}

/// The power drivers and the settings each takes (names, kinds, defaults, which are secret).
#[utoipa::path(get, path = "/api/v1/power-types", tag = "power",
    responses((status = 200, body = Vec<api::PowerTypeSchema>)))]
pub async fn power_types(_auth: Auth) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(region_api_types::power_params::registry()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RackJobsParams {
    /// Seconds to wait for a job (at most 60).
    #[serde(default)]
    pub wait: u64,
    /// Most jobs to take (default 32, at most 256).
    pub max: Option<i64>,
}

/// Power jobs for the calling rack (rack token), waiting up to `wait` seconds for one. They carry
/// the BMC's secrets; only racks get them.
#[utoipa::path(get, path = "/api/v1/rack/power-jobs", tag = "racks", params(RackJobsParams),
    responses((status = 200, body = Vec<api::RackPowerJob>), (status = 401, body = api::ErrorBody)))]
pub async fn rack_jobs(
    state: web::Data<AppState>,
    rack: RackAuth,
    q: web::Query<RackJobsParams>,
) -> Result<HttpResponse> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait.min(60));
    let max = q.max.unwrap_or(32).clamp(1, 256);
    loop {
        // Registered before the check, so a job queued meanwhile still wakes us.
        let woken = state.power_wake.notified();
        let jobs = state
            .pool
            .run({
                let (sb, rack_id) = (state.secrets.clone(), rack.rack_id.clone());
                move |c| power::take_jobs(c, &sb, &rack_id, max, now_ms())
            })
            .await?;
        if !jobs.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(HttpResponse::Ok().json(jobs));
        }
        // Jobs queued by another region (shared PostgreSQL) are seen by the periodic check.
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// A rack's answer to a power job (rack token).
#[utoipa::path(post, path = "/api/v1/rack/power-jobs/{id}", tag = "racks", request_body = api::RackPowerResult,
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 204), (status = 401, body = api::ErrorBody), (status = 404, body = api::ErrorBody)))]
pub async fn rack_result(
    state: web::Data<AppState>,
    rack: RackAuth,
    path: web::Path<String>,
    body: web::Json<api::RackPowerResult>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let r = body.into_inner();
    state
        .pool
        .run(move |c| power::finish(c, &rack.rack_id, &id, &r, now_ms()))
        .await?;
    state.power_done.notify_waiters();
    // The machine's next job (held back while this one ran) may go out now.
    state.power_wake.notify_waiters();
    Ok(HttpResponse::NoContent().finish())
}
