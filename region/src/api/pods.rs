//! KVM pods: `GET/POST /pods`, `GET/PATCH/DELETE /pods/{id}`, `POST /pods/{id}/refresh`,
//! `POST /pods/{id}/compose`, `POST /pods/{id}/decompose/{system_id}`; and the racks' side,
//! `GET /rack/pod-jobs` (long poll) and `POST /rack/pod-jobs/{id}`.
//!
//! Each operation queues a job for the rack that reaches the host and waits for its answer (like
//! power): the host's words come back as 502 when it fails.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use region_api_types as api;
use serde::Deserialize;

use super::rack_api::RackAuth;
use super::{AppState, Auth};
use crate::db::now_ms;
use crate::db::pods::PodJobRow;
use crate::domain::{machines, pod_jobs, pods};
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/pods", web::get().to(list))
        .route("/pods", web::post().to(create))
        .route("/pods/{id}", web::get().to(get))
        .route("/pods/{id}", web::patch().to(update))
        .route("/pods/{id}", web::delete().to(delete))
        .route("/pods/{id}/refresh", web::post().to(refresh))
        .route("/pods/{id}/compose", web::post().to(compose))
        .route(
            "/pods/{id}/decompose/{system_id}",
            web::post().to(decompose),
        )
        .route("/rack/pod-jobs", web::get().to(rack_jobs))
        .route("/rack/pod-jobs/{id}", web::post().to(rack_result));
}

/// Waits up to `secs` for a job to end; `None` when it has not.
pub(crate) async fn wait_job(
    state: &web::Data<AppState>,
    id: &str,
    secs: u32,
) -> Result<Option<PodJobRow>> {
    state.pod_wake.notify_waiters();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(secs.min(300)));
    loop {
        let answered = state.pod_done.notified();
        let job = state
            .pool
            .run({
                let id = id.to_string();
                move |c| pods::job(c, &id)
            })
            .await?
            .ok_or_else(|| Error::not_found(format!("pod job {id}")))?;
        if job.status == "done" || job.status == "failed" {
            return Ok(Some(job));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::select! {
            _ = answered => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

fn failed(what: &str, j: &PodJobRow) -> Error {
    Error::Pod(format!(
        "{what}: {}.",
        j.message.as_deref().unwrap_or("no reason given")
    ))
}

pub(crate) async fn pod(
    state: &web::Data<AppState>,
    caller: crate::domain::Caller,
    id: String,
) -> Result<api::Pod> {
    state.pool.run(move |c| pods::get(c, &caller, &id)).await
}

/// Every pod with its capacity (admins).
#[utoipa::path(get, path = "/api/v1/pods", tag = "pods",
    responses((status = 200, body = Vec<api::Pod>), (status = 403, body = api::ErrorBody)))]
pub async fn list(state: web::Data<AppState>, Auth(caller): Auth) -> Result<HttpResponse> {
    let all = state.pool.run(move |c| pods::list(c, &caller)).await?;
    Ok(HttpResponse::Ok().json(all))
}

/// Register a libvirt host (admins). Kiln discovers it at once through a rack; if the host cannot
/// be reached (or refuses the credentials) nothing is kept and the answer says why (502).
#[utoipa::path(post, path = "/api/v1/pods", tag = "pods", request_body = api::PodCreate,
    responses((status = 201, body = api::Pod), (status = 400, body = api::ErrorBody), (status = 409, body = api::ErrorBody),
              (status = 502, body = api::ErrorBody, description = "The host could not be discovered (in words)")))]
pub async fn create(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: web::Json<api::PodCreate>,
) -> Result<HttpResponse> {
    let p = add(&state, caller, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(p))
}

/// Registers a pod and waits for its first discovery; on failure nothing is kept (shared with the UI).
pub(crate) async fn add(
    state: &web::Data<AppState>,
    caller: crate::domain::Caller,
    req: api::PodCreate,
) -> Result<api::Pod> {
    let wait = req.wait_secs.unwrap_or(60);
    let (id, job) = state
        .pool
        .run({
            let (sb, caller) = (state.secrets.clone(), caller.clone());
            move |c| pods::create(c, &sb, &caller, &req, now_ms())
        })
        .await?;
    let j = wait_job(state, &job, wait).await?;
    if j.is_some_and(|j| j.status == "done") {
        return pod(state, caller, id).await;
    }
    let why = match dbjob(state, &job).await? {
        Some(j) if j.status == "failed" => j.message.unwrap_or_default(),
        _ => format!("no rack reached the host within {wait} s"),
    };
    state.pool.run(move |c| pods::abandon(c, &id)).await?;
    Err(Error::Pod(format!("The pod was not added: {why}.")))
}

async fn dbjob(state: &web::Data<AppState>, id: &str) -> Result<Option<PodJobRow>> {
    let id = id.to_string();
    state.pool.run(move |c| pods::job(c, &id)).await
}

/// One pod: host, capacity (cores, memory, storage pools: total, limit with overcommit, used,
/// free), networks, VMs (Kiln's and others), composed machines.
#[utoipa::path(get, path = "/api/v1/pods/{id}", tag = "pods",
    params(("id" = String, Path, description = "The pod's id or name")),
    responses((status = 200, body = api::Pod), (status = 404, body = api::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(pod(&state, caller, path.into_inner()).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct WaitParams {
    /// Seconds to wait for the host (default 60, at most 300).
    pub wait_secs: Option<u32>,
    /// `DELETE`: remove a pod that has composed machines (decomposing them).
    #[serde(default)]
    pub force: bool,
}

/// Change a pod (admins); it is discovered again. A new address or password reaches its machines.
#[utoipa::path(patch, path = "/api/v1/pods/{id}", tag = "pods", request_body = api::PodUpdate,
    params(("id" = String, Path, description = "The pod's id or name"), WaitParams),
    responses((status = 200, body = api::Pod), (status = 400, body = api::ErrorBody), (status = 404, body = api::ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    q: web::Query<WaitParams>,
    body: web::Json<api::PodUpdate>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let req = body.into_inner();
    let job = state
        .pool
        .run({
            let (sb, caller, id) = (state.secrets.clone(), caller.clone(), id.clone());
            move |c| pods::update(c, &sb, &caller, &id, &req, now_ms())
        })
        .await?;
    wait_job(&state, &job, q.wait_secs.unwrap_or(60)).await?;
    let p = dbjob(&state, &job).await?.map(|j| j.pod_id).unwrap_or(id);
    Ok(HttpResponse::Ok().json(pod(&state, caller, p).await?))
}

/// Discover the host again now (admins). A host that cannot be reached marks the pod `error`
/// (its machines are kept) and answers 502 in words.
#[utoipa::path(post, path = "/api/v1/pods/{id}/refresh", tag = "pods",
    params(("id" = String, Path, description = "The pod's id or name"), WaitParams),
    responses((status = 200, body = api::Pod), (status = 202, body = api::Pod), (status = 404, body = api::ErrorBody), (status = 502, body = api::ErrorBody)))]
pub async fn refresh(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    q: web::Query<WaitParams>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    Ok(
        match refresh_and_wait(
            &state,
            caller.clone(),
            id.clone(),
            q.wait_secs.unwrap_or(60),
        )
        .await?
        {
            true => HttpResponse::Ok().json(pod(&state, caller, id).await?),
            false => HttpResponse::Accepted().json(pod(&state, caller, id).await?),
        },
    )
}

/// Discovers the host again; true once it answered, 502 in its words when it failed.
pub(crate) async fn refresh_and_wait(
    state: &web::Data<AppState>,
    caller: crate::domain::Caller,
    id: String,
    wait: u32,
) -> Result<bool> {
    let job = state
        .pool
        .run(move |c| pods::refresh(c, &caller, &id, now_ms()))
        .await?;
    match wait_job(state, &job, wait).await? {
        Some(j) if j.status == "failed" => {
            Err(failed("The pod's host could not be discovered", &j))
        }
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

/// Compose a VM (admins): 201 with the new machine (power type `virsh`, the pod recorded), which
/// then commissions to Ready by itself. 409 in words when it does not fit (capacity × overcommit),
/// 502 with the host's words when the host could not make it (nothing is left behind).
#[utoipa::path(post, path = "/api/v1/pods/{id}/compose", tag = "pods", request_body = api::ComposeRequest,
    params(("id" = String, Path, description = "The pod's id or name")),
    responses((status = 201, body = api::Machine), (status = 202, body = api::Machine, description = "The host has not answered yet"),
              (status = 400, body = api::ErrorBody), (status = 409, body = api::ErrorBody), (status = 502, body = api::ErrorBody)))]
pub async fn compose(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: web::Json<api::ComposeRequest>,
) -> Result<HttpResponse> {
    let (m, done) = compose_and_wait(&state, caller, path.into_inner(), body.into_inner()).await?;
    let loc = ("Location", format!("/api/v1/machines/{}", m.system_id));
    Ok(if done {
        HttpResponse::Created().insert_header(loc).json(m)
    } else {
        HttpResponse::Accepted().insert_header(loc).json(m)
    })
}

/// Composes and waits for the host: the machine, and whether the host has made it (shared with
/// the UI).
pub(crate) async fn compose_and_wait(
    state: &web::Data<AppState>,
    caller: crate::domain::Caller,
    id: String,
    req: api::ComposeRequest,
) -> Result<(api::Machine, bool)> {
    let wait = req.wait_secs.unwrap_or(120);
    let (system_id, job) = state
        .pool
        .run({
            let (sb, caller) = (state.secrets.clone(), caller.clone());
            move |c| crate::domain::pod_compose::compose(c, &sb, &caller, &id, &req, now_ms())
        })
        .await?;
    let j = wait_job(state, &job, wait).await?;
    // The compose's end queued the commissioning's power job.
    state.power_wake.notify_waiters();
    if let Some(j) = &j {
        if j.status == "failed" {
            return Err(failed("The VM was not composed", j));
        }
    }
    let m = state
        .pool
        .run(move |c| machines::get(c, &caller, &system_id))
        .await?;
    Ok((m, j.is_some()))
}

/// Decompose a composed machine (admins): its VM is destroyed with its NVRAM and volumes, then the
/// machine is deleted (204). `DELETE /api/v1/machines/{system_id}` does the same for composed
/// machines. 502 with the host's words when it fails (the machine is kept).
#[utoipa::path(post, path = "/api/v1/pods/{id}/decompose/{system_id}", tag = "pods",
    params(("id" = String, Path, description = "The pod's id or name"), ("system_id" = String, Path, description = "The machine's system_id"), WaitParams),
    responses((status = 204), (status = 202, description = "The host has not answered yet"), (status = 404, body = api::ErrorBody),
              (status = 409, body = api::ErrorBody), (status = 502, body = api::ErrorBody)))]
pub async fn decompose(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<(String, String)>,
    q: web::Query<WaitParams>,
) -> Result<HttpResponse> {
    let (pod_id, system_id) = path.into_inner();
    decompose_and_wait(
        &state,
        caller,
        Some(pod_id),
        system_id,
        q.wait_secs.unwrap_or(120),
    )
    .await
}

/// Shared with `DELETE /machines/{id}` of a composed machine.
pub(crate) async fn decompose_and_wait(
    state: &web::Data<AppState>,
    caller: crate::domain::Caller,
    pod_id: Option<String>,
    system_id: String,
    wait: u32,
) -> Result<HttpResponse> {
    let job = state
        .pool
        .run(move |c| pods::decompose(c, &caller, pod_id.as_deref(), &system_id, now_ms()))
        .await?;
    match wait_job(state, &job, wait).await? {
        Some(j) if j.status == "failed" => Err(failed("The VM was not decomposed", &j)),
        Some(_) => Ok(HttpResponse::NoContent().finish()),
        None => Ok(HttpResponse::Accepted().finish()),
    }
}

/// Delete a pod (admins). Refused (409) while it has composed machines, unless `force=true`:
/// then each is decomposed (waiting up to `wait_secs`) and any whose host did not answer is
/// removed from Kiln with its VM left on the host (listed in the answer).
#[utoipa::path(delete, path = "/api/v1/pods/{id}", tag = "pods",
    params(("id" = String, Path, description = "The pod's id or name"), WaitParams),
    responses((status = 200, body = api::PodDeleted), (status = 404, body = api::ErrorBody), (status = 409, body = api::ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    q: web::Query<WaitParams>,
) -> Result<HttpResponse> {
    let out = delete_and_wait(
        &state,
        caller,
        path.into_inner(),
        q.force,
        q.wait_secs.unwrap_or(120),
    )
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Deletes a pod, decomposing its machines first when `force` (shared with the UI).
pub(crate) async fn delete_and_wait(
    state: &web::Data<AppState>,
    caller: crate::domain::Caller,
    id: String,
    force: bool,
    wait: u32,
) -> Result<api::PodDeleted> {
    let (pod_id, jobs) = state
        .pool
        .run({
            let caller = caller.clone();
            move |c| pods::delete(c, &caller, &id, force, now_ms())
        })
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait.min(300)));
    let mut decomposed = Vec::new();
    for job in jobs {
        let left = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .as_secs();
        if let Some(j) = wait_job(state, &job, u32::try_from(left).unwrap_or(0)).await? {
            if j.status == "done" {
                decomposed.extend(j.system_id);
            }
        }
    }
    state
        .pool
        .run(move |c| pods::finish_delete(c, &caller, &pod_id, decomposed.clone(), now_ms()))
        .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RackJobsParams {
    /// Seconds to wait for a job (at most 60).
    #[serde(default)]
    pub wait: u64,
    /// Most jobs to take (default 16, at most 64).
    pub max: Option<i64>,
}

/// Pod jobs for the calling rack (rack token), waiting up to `wait` seconds for one. They carry
/// the host's password; only racks get them.
#[utoipa::path(get, path = "/api/v1/rack/pod-jobs", tag = "racks", params(RackJobsParams),
    responses((status = 200, body = Vec<api::RackPodJob>), (status = 401, body = api::ErrorBody)))]
pub async fn rack_jobs(
    state: web::Data<AppState>,
    rack: RackAuth,
    q: web::Query<RackJobsParams>,
) -> Result<HttpResponse> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait.min(60));
    let max = q.max.unwrap_or(16).clamp(1, 64);
    loop {
        let woken = state.pod_wake.notified();
        let jobs = state
            .pool
            .run({
                let (sb, rack_id) = (state.secrets.clone(), rack.rack_id.clone());
                move |c| pod_jobs::take_jobs(c, &sb, &rack_id, max, now_ms())
            })
            .await?;
        if !jobs.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(HttpResponse::Ok().json(jobs));
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// A rack's answer to a pod job (rack token).
#[utoipa::path(post, path = "/api/v1/rack/pod-jobs/{id}", tag = "racks", request_body = api::RackPodResult,
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 204), (status = 401, body = api::ErrorBody), (status = 404, body = api::ErrorBody)))]
pub async fn rack_result(
    state: web::Data<AppState>,
    rack: RackAuth,
    path: web::Path<String>,
    body: web::Json<api::RackPodResult>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let r = body.into_inner();
    let cfg = state.cfg.clone();
    state
        .pool
        .run(move |c| pod_jobs::finish(c, &cfg.lifecycle, &rack.rack_id, &id, &r, now_ms()))
        .await?;
    state.pod_done.notify_waiters();
    // The pod's next job may go out now; a compose queued a power job.
    state.pod_wake.notify_waiters();
    state.power_wake.notify_waiters();
    Ok(HttpResponse::NoContent().finish())
}
