//! `/api/v1/racks`: rack controllers known to the region.

use actix_web::{web, HttpResponse};
use region_api_types as api;

use super::{AppState, Auth};
use crate::db::racks::OFFLINE_AFTER_MS;
use crate::db::{self, now_ms};
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/racks", web::get().to(list))
        .route("/racks/{id}", web::get().to(get))
        .route("/racks/{id}", web::delete().to(delete));
}

/// All rack controllers, with their status (`offline` when not heard from for 90 s).
#[utoipa::path(get, path = "/api/v1/racks", tag = "racks",
    responses((status = 200, body = Vec<api::Rack>), (status = 401, body = api::ErrorBody)))]
pub async fn list(state: web::Data<AppState>, _auth: Auth) -> Result<HttpResponse> {
    let rows = state.pool.run(db::racks::list).await?;
    let now = now_ms();
    Ok(HttpResponse::Ok().json(
        rows.iter()
            .map(|r| r.to_api(now, OFFLINE_AFTER_MS))
            .collect::<Vec<_>>(),
    ))
}

/// One rack controller.
#[utoipa::path(get, path = "/api/v1/racks/{id}", tag = "racks",
    params(("id" = String, Path, description = "Rack id")),
    responses((status = 200, body = api::Rack), (status = 404, body = api::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    _auth: Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let row = state
        .pool
        .run(move |c| db::racks::get(c, &id)?.ok_or_else(|| Error::not_found(format!("rack {id}"))))
        .await?;
    Ok(HttpResponse::Ok().json(row.to_api(now_ms(), OFFLINE_AFTER_MS)))
}

/// Forget a rack controller (admins). A running rack registers again.
#[utoipa::path(delete, path = "/api/v1/racks/{id}", tag = "racks",
    params(("id" = String, Path, description = "Rack id")),
    responses((status = 204), (status = 403, body = api::ErrorBody), (status = 404, body = api::ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    if !caller.is_admin {
        return Err(Error::Forbidden(
            "Only administrators may remove racks.".into(),
        ));
    }
    let id = path.into_inner();
    state
        .pool
        .run(move |c| {
            if !db::racks::delete(c, &id)? {
                return Err(Error::not_found(format!("rack {id}")));
            }
            db::users::audit(c, now_ms(), &caller.username, "rack.delete", &id, "")
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
