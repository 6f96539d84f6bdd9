//! `/api/v1/subnets`.

use actix_web::{web, HttpResponse};
use region_api_types as api;

use super::{AppState, Auth};
use crate::db::{self, now_ms};
use crate::domain::subnets;
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/subnets", web::get().to(list))
        .route("/subnets", web::post().to(create))
        .route("/subnets/{id}", web::get().to(get))
        .route("/subnets/{id}", web::patch().to(patch))
        .route("/subnets/{id}", web::delete().to(delete));
}

/// All subnets.
#[utoipa::path(get, path = "/api/v1/subnets", tag = "subnets",
    responses((status = 200, body = Vec<api::Subnet>), (status = 401, body = api::ErrorBody)))]
pub async fn list(state: web::Data<AppState>, _auth: Auth) -> Result<HttpResponse> {
    let rows = state.pool.run(db::subnets::list).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(|r| r.to_api()).collect::<Vec<_>>()))
}

/// Add a subnet (admins). `managed` (default true) means Kiln's racks serve DHCP on it.
#[utoipa::path(post, path = "/api/v1/subnets", request_body = api::SubnetCreate, tag = "subnets",
    responses((status = 201, body = api::Subnet), (status = 400, body = api::ErrorBody),
              (status = 409, description = "overlaps an existing subnet", body = api::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: web::Json<api::SubnetCreate>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let s = state
        .pool
        .run(move |c| subnets::create(c, &caller, &body, now_ms()))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/subnets/{}", s.id)))
        .json(s))
}

/// One subnet, by id or by CIDR (URL-encode the slash: `10.0.0.0%2F24`).
#[utoipa::path(get, path = "/api/v1/subnets/{id}", tag = "subnets",
    params(("id" = String, Path, description = "Subnet id or CIDR")),
    responses((status = 200, body = api::Subnet), (status = 404, body = api::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    _auth: Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let row = state
        .pool
        .run(move |c| {
            db::subnets::get(c, &id)?.ok_or_else(|| Error::not_found(format!("subnet {id}")))
        })
        .await?;
    Ok(HttpResponse::Ok().json(row.to_api()))
}

/// Change a subnet (admins). Lists given replace the stored ones.
#[utoipa::path(patch, path = "/api/v1/subnets/{id}", request_body = api::SubnetPatch, tag = "subnets",
    params(("id" = String, Path, description = "Subnet id or CIDR")),
    responses((status = 200, body = api::Subnet), (status = 400, body = api::ErrorBody), (status = 404, body = api::ErrorBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: web::Json<api::SubnetPatch>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let body = body.into_inner();
    let s = state
        .pool
        .run(move |c| subnets::patch(c, &caller, &id, &body, now_ms()))
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

/// Delete a subnet (admins). Interfaces linked to it are unlinked.
#[utoipa::path(delete, path = "/api/v1/subnets/{id}", tag = "subnets",
    params(("id" = String, Path, description = "Subnet id or CIDR")),
    responses((status = 204), (status = 404, body = api::ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    state
        .pool
        .run(move |c| subnets::delete(c, &caller, &id, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
