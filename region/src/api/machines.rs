//! `/api/v1/machines`: list, create, get, patch, delete, lifecycle actions, events.

use actix_web::{web, HttpResponse};
use region_api_types::{self as api, MachineAction};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{page_bounds, AppState, Auth};
use crate::db::{self, now_ms};
use crate::domain::actions::{self, Action};
use crate::domain::{machines, search, validate};
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/machines", web::get().to(list))
        .route("/machines", web::post().to(create))
        .route("/machines/{system_id}", web::get().to(get))
        .route("/machines/{system_id}", web::patch().to(patch))
        .route("/machines/{system_id}", web::delete().to(delete))
        .route("/machines/{system_id}/events", web::get().to(events))
        .route(
            "/machines/{system_id}/interfaces/{mac}",
            web::put().to(set_interface),
        )
        .service(
            web::resource("/machines/{system_id}/{action}")
                // Only POSTs: other methods go on to the routes registered later (…/results).
                .guard(actix_web::guard::Post())
                // A deploy body carries up to 1 MiB of user-data, JSON-escaped.
                .app_data(web::PayloadConfig::new(3 << 20))
                .route(web::post().to(action)),
        );
}

/// A page of machines.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MachinePage {
    items: Vec<api::Machine>,
    total: i64,
    limit: i64,
    offset: i64,
}

/// Filters and paging of the machine list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// One status or several, comma separated (`ready,allocated`).
    status: Option<String>,
    hostname: Option<String>,
    /// A MAC of any of the machine's interfaces.
    mac: Option<String>,
    tag: Option<String>,
    zone: Option<String>,
    pool: Option<String>,
    /// Owner's username; `none` for free machines.
    owner: Option<String>,
    /// A search in the web UI's grammar: `status:ready tag:rack-a hostname:node* owner:!(alice,bob) word`
    /// (terms AND, values in parentheses OR, `!` excludes, a bare word matches hostname, id or
    /// description).
    q: Option<String>,
    /// Sort column: created (default), hostname, status, power, arch, cores, memory, storage, zone,
    /// pool; `-` in front for descending.
    sort: Option<String>,
    /// Page size (default 100, at most 10000).
    limit: Option<i64>,
    offset: Option<i64>,
}

/// List machines the caller may see (admins: all; users: free ones and their own).
#[utoipa::path(get, path = "/api/v1/machines", params(ListQuery), tag = "machines",
    responses((status = 200, body = MachinePage), (status = 400, body = api::ErrorBody), (status = 401, body = api::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    let q = q.into_inner();
    let (limit, offset) = page_bounds(&state.cfg, q.limit, q.offset)?;
    let mut statuses = Vec::new();
    if let Some(s) = &q.status {
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let st = api::MachineStatus::parse(part).ok_or_else(|| {
                Error::validation(
                    "status",
                    format!(
                        "'{part}' is not a machine status; use one of {}.",
                        api::MachineStatus::ALL.map(|s| s.as_str()).join(", ")
                    ),
                )
            })?;
            statuses.push(st.as_str().to_string());
        }
    }
    let mac = match &q.mac {
        Some(m) => Some(validate::mac("mac", m)?),
        None => None,
    };
    let owner_name = q.owner.clone();
    let search =
        search::parse(q.q.as_deref().unwrap_or("")).map_err(|m| Error::validation("q", m))?;
    let sort = match q.sort.as_deref() {
        Some(s) => search::Sort::parse(s).map_err(|m| Error::validation("sort", m))?,
        None => search::Sort::default(),
    };
    let filter_base = db::machines::Filter {
        statuses,
        hostname: q.hostname.as_deref().map(|h| h.trim().to_ascii_lowercase()),
        mac,
        tag: q.tag.clone(),
        zone: q.zone.clone(),
        pool: q.pool.clone(),
        owner_id: None,
        visible_to: (!caller.is_admin).then(|| caller.user_id.clone()),
        search: Default::default(),
        sort,
    };
    // The page's JSON is written on the database thread, one machine at a time.
    let body = state
        .pool
        .run(move |c| {
            let mut f = filter_base.clone();
            f.search = search::resolve_owners(c, search.clone())?;
            match owner_name.as_deref() {
                None => {}
                Some("none") => f.owner_id = Some(None),
                Some(name) => match db::users::by_username(c, name)? {
                    Some(u) => f.owner_id = Some(Some(u.id)),
                    None => {
                        let empty = api::Page::<api::Machine> {
                            items: Vec::new(),
                            total: 0,
                            limit,
                            offset,
                        };
                        return serde_json::to_vec(&empty)
                            .map_err(|e| Error::Internal(e.to_string()));
                    }
                },
            }
            db::machines::list_json(c, &f, limit, offset)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// Add a machine (admins). It starts in `new`.
#[utoipa::path(post, path = "/api/v1/machines", request_body = api::MachineCreate, tag = "machines",
    responses((status = 201, body = api::Machine), (status = 400, body = api::ErrorBody),
              (status = 403, body = api::ErrorBody), (status = 409, description = "duplicate hostname or MAC", body = api::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: web::Json<api::MachineCreate>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let m = state
        .pool
        .run({
            let sb = state.secrets.clone();
            move |c| machines::create(c, &sb, &caller, &body, now_ms())
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/machines/{}", m.system_id)))
        .json(m))
}

/// One machine.
#[utoipa::path(get, path = "/api/v1/machines/{system_id}", tag = "machines",
    params(("system_id" = String, Path, description = "The machine's system_id")),
    responses((status = 200, body = api::Machine), (status = 404, body = api::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let m = state
        .pool
        .run(move |c| machines::get(c, &caller, &id))
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

/// Change a machine's fields (admins). Only the fields given change.
#[utoipa::path(patch, path = "/api/v1/machines/{system_id}", request_body = api::MachinePatch, tag = "machines",
    params(("system_id" = String, Path, description = "The machine's system_id")),
    responses((status = 200, body = api::Machine), (status = 400, body = api::ErrorBody),
              (status = 404, body = api::ErrorBody), (status = 409, body = api::ErrorBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: web::Json<api::MachinePatch>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let body = body.into_inner();
    let m = state
        .pool
        .run({
            let sb = state.secrets.clone();
            move |c| machines::patch(c, &sb, &caller, &id, &body, now_ms())
        })
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

/// Whether the machine was composed on a pod.
async fn composed(state: &web::Data<AppState>, id: &str) -> Result<bool> {
    let id = id.to_string();
    state
        .pool
        .run(move |c| Ok(crate::db::machines::get_row(c, &id)?.is_some_and(|m| m.pod_id.is_some())))
        .await
}

/// Delete a machine (admins; not while an operation is in progress). A machine composed on a
/// pod is decomposed first (its VM, NVRAM and volumes destroyed; 502 in words if the host fails).
#[utoipa::path(delete, path = "/api/v1/machines/{system_id}", tag = "machines",
    params(("system_id" = String, Path, description = "The machine's system_id")),
    responses((status = 204), (status = 404, body = api::ErrorBody), (status = 409, body = api::ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    // A composed machine goes with its VM: the host destroys it first.
    if composed(&state, &id).await? {
        return super::pods::decompose_and_wait(&state, caller, None, id, 120).await;
    }
    let (cfg, sb) = (state.cfg.clone(), state.secrets.clone());
    let delete = Action::Other(MachineAction::Delete, None);
    state
        .pool
        .run(move |c| actions::perform(c, &sb, &cfg, &caller, &id, &delete, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Run a lifecycle action: `commission`, `abort`, `allocate`, `deploy`, `release`, `mark-broken`,
/// `mark-fixed`, `rescue`, `exit-rescue`, `delete`. An action the machine's status does not allow
/// answers 409 with a sentence saying why and from which statuses it is allowed.
#[utoipa::path(post, path = "/api/v1/machines/{system_id}/{action}", tag = "machines",
    params(("system_id" = String, Path, description = "The machine's system_id"),
           ("action" = MachineAction, Path, description = "The action")),
    request_body(content = Option<api::DeployRequest>, description = "Optional: a comment (every action); for deploy a DeployRequest (os, release, user_data, target, storage_layout, boot_disk); for release a ReleaseRequest (erase, quick_erase, secure_erase)"),
    responses((status = 200, body = api::Machine), (status = 204, description = "deleted"),
              (status = 403, body = api::ErrorBody), (status = 404, body = api::ErrorBody),
              (status = 409, description = "not allowed in this status", body = api::ErrorBody)))]
pub async fn action(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let (id, action_name) = path.into_inner();
    let action = MachineAction::parse(&action_name).ok_or_else(|| {
        Error::not_found(format!(
            "action '{action_name}' (actions are {})",
            MachineAction::ALL.map(|a| a.as_str()).join(", ")
        ))
    })?;
    if action == MachineAction::Delete && composed(&state, &id).await? {
        return super::pods::decompose_and_wait(&state, caller, None, id, 120).await;
    }
    let act = match action {
        MachineAction::Deploy => Action::Deploy(parse_body(&body)?),
        MachineAction::Release => Action::Release(parse_body(&body)?),
        a => Action::Other(a, parse_body::<api::ActionRequest>(&body)?.comment),
    };
    let (cfg, sb) = (state.cfg.clone(), state.secrets.clone());
    let m = state
        .pool
        .run(move |c| actions::perform(c, &sb, &cfg, &caller, &id, &act, now_ms()))
        .await?;
    if matches!(action, MachineAction::Deploy | MachineAction::Release) {
        state.power_wake.notify_waiters();
    }
    Ok(match m {
        Some(m) => HttpResponse::Ok().json(m),
        None => HttpResponse::NoContent().finish(),
    })
}

/// An optional JSON body: empty means the defaults.
pub fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| Error::BadRequest(format!("The JSON body is not valid: {e}.")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events older than this id (paging back).
    before: Option<i64>,
    /// At most this many (default 100, at most 10000).
    limit: Option<i64>,
}

/// A machine's events, newest first.
#[utoipa::path(get, path = "/api/v1/machines/{system_id}/events", tag = "machines",
    params(("system_id" = String, Path, description = "The machine's system_id"), EventsQuery),
    responses((status = 200, body = Vec<api::Event>), (status = 404, body = api::ErrorBody)))]
pub async fn events(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let (limit, _) = page_bounds(&state.cfg, q.limit, None)?;
    let before = q.before;
    let evs = state
        .pool
        .run(move |c| {
            machines::get(c, &caller, &id)?;
            db::events::list(c, Some(&id), None, before, limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(evs))
}

/// Reserve a static address for one of the machine's interfaces (DHCP hands it to that MAC), or
/// remove it with `{"ip": null}` (admins).
#[utoipa::path(put, path = "/api/v1/machines/{system_id}/interfaces/{mac}", tag = "machines",
    params(("system_id" = String, Path, description = "The machine's system_id"), ("mac" = String, Path, description = "The interface's MAC")),
    request_body = api::InterfaceUpdate,
    responses((status = 200, body = api::Machine), (status = 400, body = api::ErrorBody),
              (status = 404, body = api::ErrorBody), (status = 409, description = "address taken", body = api::ErrorBody)))]
pub async fn set_interface(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<(String, String)>,
    body: web::Json<api::InterfaceUpdate>,
) -> Result<HttpResponse> {
    let (id, mac) = path.into_inner();
    let ip = body.into_inner().ip;
    let m = state
        .pool
        .run(move |c| {
            crate::domain::interfaces::set_interface_ip(
                c,
                &caller,
                &id,
                &mac,
                ip.as_deref(),
                now_ms(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(m))
}
