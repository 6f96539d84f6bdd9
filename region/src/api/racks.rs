//! `/api/v1/racks`: rack controllers known to the region.

use actix_web::{web, HttpResponse};
use region_api_types as api;

use super::{AppState, Auth};
use crate::db::racks::OFFLINE_AFTER_MS;
use crate::db::{self, now_ms};
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/racks", web::get().to(list))
        .route("/racks/tokens", web::post().to(create_token))
        .route("/racks/{id}", web::get().to(get))
        .route("/racks/{id}", web::delete().to(delete))
        .route("/racks/{id}", web::patch().to(update))
        .route("/racks/{id}/approve", web::post().to(approve));
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

fn admin_only(caller: &crate::domain::Caller, what: &str) -> Result<()> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("Only administrators may {what}.")))
    }
}

/// Revoke a rack controller for good (admins): its token stops working at once, it gets no
/// snapshot, jobs or secrets, and the deprecated shared secret changes so that it cannot
/// register itself again; only a new enrolment token brings it back.
#[utoipa::path(delete, path = "/api/v1/racks/{id}", tag = "racks",
    params(("id" = String, Path, description = "Rack id")),
    responses((status = 204), (status = 403, body = api::ErrorBody), (status = 404, body = api::ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    admin_only(&caller, "revoke racks")?;
    let id = path.into_inner();
    state
        .pool
        .run(move |c| crate::domain::racks::revoke(c, &id, &caller.username, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Approve a pending rack controller (admins): from now on it gets its snapshot, jobs and
/// secrets. A revoked rack cannot be approved (409): it needs a new enrolment token.
#[utoipa::path(post, path = "/api/v1/racks/{id}/approve", tag = "racks",
    params(("id" = String, Path, description = "Rack id")),
    responses((status = 200, body = api::Rack), (status = 403, body = api::ErrorBody), (status = 404, body = api::ErrorBody),
        (status = 409, description = "the rack was revoked", body = api::ErrorBody)))]
pub async fn approve(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    admin_only(&caller, "approve racks")?;
    let id = path.into_inner();
    let row = state
        .pool
        .run(move |c| crate::domain::racks::approve(c, &id, &caller.username, now_ms()))
        .await?;
    Ok(HttpResponse::Ok().json(row.to_api(now_ms(), OFFLINE_AFTER_MS)))
}

/// Make a one-time rack enrolment token (admins), shown once: `kiln rack --token-file` reads it.
/// When the region serves HTTPS from its own CA, the token carries the CA's fingerprint and the
/// rack pins it.
#[utoipa::path(post, path = "/api/v1/racks/tokens", tag = "racks", request_body = api::RackTokenCreate,
    responses((status = 201, body = api::RackTokenCreated), (status = 400, body = api::ErrorBody), (status = 403, body = api::ErrorBody)))]
pub async fn create_token(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: web::Json<api::RackTokenCreate>,
) -> Result<HttpResponse> {
    admin_only(&caller, "make rack enrolment tokens")?;
    let b = body.into_inner();
    let pin = crate::tls::enrolment_pin(&state.cfg)?;
    let out = state
        .pool
        .run(move |c| {
            crate::domain::racks::create_token(
                c,
                &caller.username,
                b.ttl_secs.unwrap_or(3600),
                b.auto_approve,
                &b.power_networks,
                pin.clone(),
                now_ms(),
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(out))
}

/// Say which networks' BMCs a rack drives (admins): power jobs, which carry BMC secrets, go only
/// to an approved rack whose power networks hold the BMC's address. Replaces the list.
#[utoipa::path(patch, path = "/api/v1/racks/{id}", tag = "racks", request_body = api::RackUpdate,
    params(("id" = String, Path, description = "Rack id")),
    responses((status = 200, body = api::Rack), (status = 400, body = api::ErrorBody), (status = 403, body = api::ErrorBody), (status = 404, body = api::ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: web::Json<api::RackUpdate>,
) -> Result<HttpResponse> {
    admin_only(&caller, "change racks")?;
    let id = path.into_inner();
    let nets = body.into_inner().power_networks;
    let row = state
        .pool
        .run(move |c| {
            crate::domain::racks::set_power_networks(c, &id, &nets, &caller.username, now_ms())
        })
        .await?;
    Ok(HttpResponse::Ok().json(row.to_api(now_ms(), OFFLINE_AFTER_MS)))
}
