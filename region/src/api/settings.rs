//! `/api/v1/settings`: the lifecycle and power settings operators change at run time.

use actix_web::{web, HttpResponse};
use region_api_types as api;

use super::{AppState, Auth};
use crate::db::now_ms;
use crate::domain::settings;
use crate::error::Result;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(list))
        .route("/settings/{name}", web::put().to(set));
}

/// The changeable settings: the value in effect, the configuration file's, and whether an operator
/// changed it.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings",
    responses((status = 200, body = Vec<api::Setting>), (status = 401, body = api::ErrorBody)))]
pub async fn list(state: web::Data<AppState>, _auth: Auth) -> Result<HttpResponse> {
    let cfg = state.cfg.clone();
    let all = state.pool.run(move |c| settings::list(c, &cfg)).await?;
    Ok(HttpResponse::Ok().json(all))
}

/// Change a setting (admins), effective at the next action on every region; `{"value": null}`
/// goes back to the configuration file's value.
#[utoipa::path(put, path = "/api/v1/settings/{name}", tag = "settings", request_body = api::SettingUpdate,
    params(("name" = String, Path, description = "The setting, e.g. lifecycle.node_timeout_secs")),
    responses((status = 200, body = api::Setting), (status = 400, body = api::ErrorBody),
              (status = 403, body = api::ErrorBody)))]
pub async fn set(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    name: web::Path<String>,
    body: web::Json<api::SettingUpdate>,
) -> Result<HttpResponse> {
    let cfg = state.cfg.clone();
    let (name, value) = (name.into_inner(), body.into_inner().value);
    let s = state
        .pool
        .run(move |c| settings::set(c, &caller, &cfg, &name, value.as_deref(), now_ms()))
        .await?;
    Ok(HttpResponse::Ok().json(s))
}
