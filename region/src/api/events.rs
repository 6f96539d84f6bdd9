//! `/api/v1/events`: the event log across machines.

use actix_web::{web, HttpResponse};
use region_api_types as api;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{page_bounds, AppState, Auth};
use crate::db;
use crate::domain::machines;
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(list));
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only this machine's events.
    system_id: Option<String>,
    /// Only this level (`debug`, `info`, `warning`, `error`, `audit`).
    level: Option<String>,
    /// Only events older than this id (paging back).
    before: Option<i64>,
    /// At most this many (default 100).
    limit: Option<i64>,
}

/// Events, newest first. Non-admins see events of machines they may see only.
#[utoipa::path(get, path = "/api/v1/events", params(EventsQuery), tag = "events",
    responses((status = 200, body = Vec<api::Event>), (status = 400, body = api::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse> {
    let q = q.into_inner();
    let (limit, _) = page_bounds(&state.cfg, q.limit, None)?;
    if let Some(l) = &q.level {
        if api::EventLevel::parse(l).is_none() {
            return Err(Error::validation(
                "level",
                format!("'{l}' is not an event level; use debug, info, warning, error or audit."),
            ));
        }
    }
    if !caller.is_admin && q.system_id.is_none() {
        return Err(Error::Forbidden(
            "Only administrators may read all events; ask for one machine's with ?system_id=."
                .into(),
        ));
    }
    let evs = state
        .pool
        .run(move |c| {
            if let Some(id) = &q.system_id {
                machines::get(c, &caller, id)?;
            }
            db::events::list(
                c,
                q.system_id.as_deref(),
                q.level.as_deref(),
                q.before,
                limit,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(evs))
}
