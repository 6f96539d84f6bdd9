//! `/api/v1/dns/...`: the domains Kiln is authoritative for and operators' records. Every rack
//! serves them (with the machines' names and the reverse zones of the managed subnets) from its
//! snapshot.

use actix_web::{web, HttpResponse};
use region_api_types as api;

use super::{AppState, Auth};
use crate::db::now_ms;
use crate::domain::dns;
use crate::error::Result;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dns/domains", web::get().to(list_domains))
        .route("/dns/domains", web::post().to(add_domain))
        .route("/dns/domains/{id}", web::get().to(get_domain))
        .route("/dns/domains/{id}", web::patch().to(patch_domain))
        .route("/dns/domains/{id}", web::delete().to(delete_domain))
        .route("/dns/records", web::get().to(list_records))
        .route("/dns/records", web::post().to(add_record))
        .route("/dns/records/{id}", web::delete().to(delete_record));
}

/// Every DNS domain, with how many records and machines it holds.
#[utoipa::path(get, path = "/api/v1/dns/domains", tag = "dns",
    responses((status = 200, body = Vec<api::DnsDomain>), (status = 401, body = api::ErrorBody)))]
pub async fn list_domains(state: web::Data<AppState>, _auth: Auth) -> Result<HttpResponse> {
    let out = state.pool.run(dns::list_domains).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Add a domain (admins). Racks serve its forward zone at once.
#[utoipa::path(post, path = "/api/v1/dns/domains", request_body = api::DnsDomainCreate, tag = "dns",
    responses((status = 201, body = api::DnsDomain), (status = 400, body = api::ErrorBody),
              (status = 403, body = api::ErrorBody), (status = 409, description = "exists", body = api::ErrorBody)))]
pub async fn add_domain(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: web::Json<api::DnsDomainCreate>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let d = state
        .pool
        .run(move |c| dns::add_domain(c, &caller, &body, now_ms()))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/dns/domains/{}", d.id)))
        .json(d))
}

/// One domain, by id or name.
#[utoipa::path(get, path = "/api/v1/dns/domains/{id}", tag = "dns",
    params(("id" = String, Path, description = "Domain id or name")),
    responses((status = 200, body = api::DnsDomain), (status = 404, body = api::ErrorBody)))]
pub async fn get_domain(
    state: web::Data<AppState>,
    _auth: Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let d = state.pool.run(move |c| dns::get_domain(c, &id)).await?;
    Ok(HttpResponse::Ok().json(d))
}

/// Change a domain's TTL, or make it the default (admins).
#[utoipa::path(patch, path = "/api/v1/dns/domains/{id}", request_body = api::DnsDomainPatch, tag = "dns",
    params(("id" = String, Path, description = "Domain id or name")),
    responses((status = 200, body = api::DnsDomain), (status = 400, body = api::ErrorBody), (status = 404, body = api::ErrorBody)))]
pub async fn patch_domain(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: web::Json<api::DnsDomainPatch>,
) -> Result<HttpResponse> {
    let (id, body) = (path.into_inner(), body.into_inner());
    let d = state
        .pool
        .run(move |c| dns::patch_domain(c, &caller, &id, &body, now_ms()))
        .await?;
    Ok(HttpResponse::Ok().json(d))
}

/// Delete a domain that holds no records and no machines and is not the default (admins).
#[utoipa::path(delete, path = "/api/v1/dns/domains/{id}", tag = "dns",
    params(("id" = String, Path, description = "Domain id or name")),
    responses((status = 204), (status = 404, body = api::ErrorBody), (status = 409, description = "in use or the default", body = api::ErrorBody)))]
pub async fn delete_domain(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    state
        .pool
        .run(move |c| dns::delete_domain(c, &caller, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Operators' records (machines' own names are not listed: they follow the machines).
#[utoipa::path(get, path = "/api/v1/dns/records", tag = "dns",
    responses((status = 200, body = Vec<api::DnsRecord>), (status = 401, body = api::ErrorBody)))]
pub async fn list_records(state: web::Data<AppState>, _auth: Auth) -> Result<HttpResponse> {
    let out = state.pool.run(dns::list_records).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Add a record (admins): A, AAAA, CNAME, TXT, SRV or MX, named inside a Kiln domain; a CNAME
/// stands alone at its name.
#[utoipa::path(post, path = "/api/v1/dns/records", request_body = api::DnsRecordCreate, tag = "dns",
    responses((status = 201, body = api::DnsRecord), (status = 400, body = api::ErrorBody),
              (status = 403, body = api::ErrorBody), (status = 409, description = "a CNAME next to other data, or the same record twice", body = api::ErrorBody)))]
pub async fn add_record(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: web::Json<api::DnsRecordCreate>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let r = state
        .pool
        .run(move |c| dns::add_record(c, &caller, &body, now_ms()))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/dns/records/{}", r.id)))
        .json(r))
}

/// Delete a record (admins).
#[utoipa::path(delete, path = "/api/v1/dns/records/{id}", tag = "dns",
    params(("id" = String, Path, description = "Record id")),
    responses((status = 204), (status = 403, body = api::ErrorBody), (status = 404, body = api::ErrorBody)))]
pub async fn delete_record(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    state
        .pool
        .run(move |c| dns::delete_record(c, &caller, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
