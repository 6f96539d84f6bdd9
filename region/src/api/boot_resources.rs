//! `/api/v1/boot-resources`: boot resources and their files (streaming upload with sha256 check).

use actix_web::{web, HttpRequest, HttpResponse};
use region_api_types as api;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AppState, Auth};
use crate::db::{self, now_ms};
use crate::domain::images;
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/boot-resources", web::get().to(list))
        .route("/boot-resources", web::post().to(create))
        .route("/boot-resources/{id}", web::get().to(get))
        .route("/boot-resources/{id}", web::delete().to(delete))
        .route(
            "/boot-resources/{id}/files/{filename}",
            web::put().to(upload),
        )
        .route(
            "/boot-resources/{id}/files/{filename}",
            web::get().to(download),
        );
}

/// All boot resources with their files.
#[utoipa::path(get, path = "/api/v1/boot-resources", tag = "boot-resources",
    responses((status = 200, body = Vec<api::BootResource>)))]
pub async fn list(state: web::Data<AppState>, _auth: Auth) -> Result<HttpResponse> {
    let all = state.pool.run(db::boot::list).await?;
    Ok(HttpResponse::Ok().json(all))
}

/// Declare a boot resource (admins); then upload its files with `PUT …/files/{filename}`.
#[utoipa::path(post, path = "/api/v1/boot-resources", request_body = api::BootResourceCreate, tag = "boot-resources",
    responses((status = 201, body = api::BootResource), (status = 400, body = api::ErrorBody),
              (status = 409, description = "exists already", body = api::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: web::Json<api::BootResourceCreate>,
) -> Result<HttpResponse> {
    let b = body.into_inner();
    let r = state
        .pool
        .run(move |c| images::create(c, &caller, &b, now_ms()))
        .await?;
    Ok(HttpResponse::Created().json(r))
}

/// One boot resource.
#[utoipa::path(get, path = "/api/v1/boot-resources/{id}", tag = "boot-resources",
    params(("id" = String, Path, description = "Boot resource id")),
    responses((status = 200, body = api::BootResource), (status = 404, body = api::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    _auth: Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let r = state
        .pool
        .run(move |c| {
            db::boot::get(c, &id)?.ok_or_else(|| Error::not_found(format!("boot resource {id}")))
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

/// Delete a boot resource and the stored files no other resource uses (admins).
#[utoipa::path(delete, path = "/api/v1/boot-resources/{id}", tag = "boot-resources",
    params(("id" = String, Path, description = "Boot resource id")),
    responses((status = 204), (status = 404, body = api::ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let orphans = state
        .pool
        .run(move |c| images::delete(c, &caller, &id, now_ms()))
        .await?;
    images::remove_unused(&state.pool, &state.store, orphans).await;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The file's sha256 (hex). Required: the upload is refused unless the bytes match it.
    sha256: String,
    /// The file's size in bytes (optional; `Content-Length` is used when absent).
    size: Option<u64>,
}

/// Upload a file of a boot resource (admins). The body is the raw file, streamed to disk while its
/// sha256 is computed; it is stored only if the sha256 (and size) match, else nothing is kept.
#[utoipa::path(put, path = "/api/v1/boot-resources/{id}/files/{filename}", tag = "boot-resources",
    params(("id" = String, Path, description = "Boot resource id"), ("filename" = String, Path, description = "File name, e.g. vmlinuz"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = api::BootResource), (status = 400, description = "checksum mismatch or truncated", body = api::ErrorBody),
              (status = 404, body = api::ErrorBody), (status = 413, body = api::ErrorBody)))]
pub async fn upload(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: web::Query<UploadQuery>,
    body: web::Payload,
) -> Result<HttpResponse> {
    let (id, filename) = path.into_inner();
    let content_length = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max = state.cfg.api.max_upload_bytes;
    let (filename, sha, size) =
        images::check_upload(&caller, &filename, &q.sha256, q.size, content_length, max)?;
    let rid = id.clone();
    if state
        .pool
        .run(move |c| db::boot::get_row(c, &rid))
        .await?
        .is_none()
    {
        return Err(Error::not_found(format!("boot resource {id}")));
    }
    // Pinned from before the file lands until its row is committed: no deletion removes it between.
    let pin = state.store.pin(&sha);
    let written = state.store.put(body, &sha, size, max).await?;
    let sha_kept = sha.clone();
    let r = state
        .pool
        .run(move |c| images::record_upload(c, &caller, &id, &filename, &sha, written, now_ms()))
        .await;
    drop(pin);
    match r {
        Ok((r, replaced)) => {
            // The file this one replaced, unless another resource has it too.
            images::remove_unused(&state.pool, &state.store, replaced.into_iter().collect()).await;
            Ok(HttpResponse::Ok().json(r))
        }
        Err(e) => {
            // Not recorded: the bytes just stored are nobody's, unless someone else's.
            images::remove_unused(&state.pool, &state.store, vec![sha_kept]).await;
            Err(e)
        }
    }
}

/// Download a file of a boot resource (supports `Range`).
#[utoipa::path(get, path = "/api/v1/boot-resources/{id}/files/{filename}", tag = "boot-resources",
    params(("id" = String, Path, description = "Boot resource id"), ("filename" = String, Path, description = "File name")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = api::ErrorBody)))]
pub async fn download(
    state: web::Data<AppState>,
    _auth: Auth,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (id, filename) = path.into_inner();
    let f = state
        .pool
        .run(move |c| {
            db::boot::file(c, &id, &filename)?
                .ok_or_else(|| Error::not_found(format!("file {filename} of boot resource {id}")))
        })
        .await?;
    let file = actix_files::NamedFile::open_async(state.store.path_of(&f.sha256))
        .await
        .map_err(|e| Error::Internal(format!("stored file {} unreadable: {e}", f.sha256)))?
        .use_etag(true)
        .use_last_modified(true);
    let mut resp = file.into_response(&req);
    resp.headers_mut().insert(
        actix_web::http::header::HeaderName::from_static("x-kiln-sha256"),
        actix_web::http::header::HeaderValue::from_str(&f.sha256)
            .map_err(|e| Error::Internal(e.to_string()))?,
    );
    Ok(resp)
}
