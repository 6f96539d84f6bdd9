//! `/api/v1/volumes`: root-on-iSCSI volumes and their machines (what the racks serve).

use actix_web::{web, HttpResponse};
use region_api_types as api;

use super::{AppState, Auth};
use crate::domain::volumes;
use crate::error::Result;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/volumes", web::get().to(list));
}

/// Every root volume (admins), or those of the caller's machines, newest first. Secrets (CHAP)
/// are never shown.
#[utoipa::path(get, path = "/api/v1/volumes", tag = "machines",
    responses((status = 200, body = Vec<api::Volume>), (status = 401, body = api::ErrorBody)))]
pub async fn list(state: web::Data<AppState>, Auth(caller): Auth) -> Result<HttpResponse> {
    let out = state.pool.run(move |c| volumes::list(c, &caller)).await?;
    Ok(HttpResponse::Ok().json(out))
}
