//! `/api/v1/users`, `/api/v1/tokens`, `/api/v1/login`, `/api/v1/logout`, `/api/v1/whoami`,
//! `/api/v1/audit`.

use actix_web::cookie::Cookie;
use actix_web::{web, HttpRequest, HttpResponse};
use region_api_types as api;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AppState, Auth, SESSION_COOKIE};
use crate::db::{self, fmt_time, now_ms};
use crate::domain::{auth, users};
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::get().to(list_users))
        .route("/users", web::post().to(create_user))
        .route("/users/{username}", web::delete().to(delete_user))
        .route("/tokens", web::get().to(list_tokens))
        .route("/tokens", web::post().to(create_token))
        .route("/tokens/{id}", web::delete().to(delete_token))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/whoami", web::get().to(whoami))
        .route("/audit", web::get().to(audit));
}

fn admin_only(caller: &crate::domain::Caller, what: &str) -> Result<()> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("Only administrators may {what}.")))
    }
}

/// All users (admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<api::User>), (status = 403, body = api::ErrorBody)))]
pub async fn list_users(state: web::Data<AppState>, Auth(caller): Auth) -> Result<HttpResponse> {
    admin_only(&caller, "list users")?;
    let rows = state.pool.run(db::users::list_users).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(|u| u.to_api()).collect::<Vec<_>>()))
}

/// Add a user (admins).
#[utoipa::path(post, path = "/api/v1/users", request_body = api::UserCreate, tag = "users",
    responses((status = 201, body = api::User), (status = 400, body = api::ErrorBody),
              (status = 403, body = api::ErrorBody), (status = 409, body = api::ErrorBody)))]
pub async fn create_user(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: web::Json<api::UserCreate>,
) -> Result<HttpResponse> {
    let b = body.into_inner();
    let u = state
        .pool
        .run(move |c| {
            users::create_user(
                c,
                Some(&caller),
                &b.username,
                &b.password,
                b.is_admin,
                now_ms(),
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(u))
}

/// Delete a user (admins). Their tokens go; their machines become free. The last admin stays.
#[utoipa::path(delete, path = "/api/v1/users/{username}", tag = "users",
    params(("username" = String, Path, description = "Username")),
    responses((status = 204), (status = 403, body = api::ErrorBody), (status = 404, body = api::ErrorBody), (status = 409, body = api::ErrorBody)))]
pub async fn delete_user(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let name = path.into_inner();
    state
        .pool
        .run(move |c| users::delete_user(c, &caller, &name, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TokensQuery {
    /// Admins: every user's tokens.
    #[serde(default)]
    all: bool,
}

/// The caller's API tokens (admins with `?all=true`: everyone's). Secrets are never shown again.
#[utoipa::path(get, path = "/api/v1/tokens", params(TokensQuery), tag = "users",
    responses((status = 200, body = Vec<api::Token>)))]
pub async fn list_tokens(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    q: web::Query<TokensQuery>,
) -> Result<HttpResponse> {
    let all = q.all;
    if all {
        admin_only(&caller, "list every user's tokens")?;
    }
    let rows = state
        .pool
        .run(move |c| db::users::list_tokens(c, (!all).then_some(caller.user_id.as_str())))
        .await?;
    Ok(HttpResponse::Ok().json(
        rows.iter()
            .map(|(t, name, admin)| t.to_api(name, *admin))
            .collect::<Vec<_>>(),
    ))
}

/// Create an API token for the caller, with a scope (`read`, `operator`, `admin`; default: all the
/// caller may do, never more) and an optional expiry. The secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = api::TokenCreate, tag = "users",
    responses((status = 201, body = api::TokenCreated), (status = 400, body = api::ErrorBody),
              (status = 403, body = api::ErrorBody)))]
pub async fn create_token(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: web::Json<api::TokenCreate>,
) -> Result<HttpResponse> {
    let b = body.into_inner();
    let now = now_ms();
    let spec = users::TokenSpec::from_api(b.scope, b.expires_at.as_deref(), now)?;
    let t = state
        .pool
        .run(move |c| users::create_own_token(c, &caller, &b.name, &spec, now))
        .await?;
    Ok(HttpResponse::Created().json(t))
}

/// Revoke a token (its owner or an admin).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "users",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204), (status = 404, body = api::ErrorBody)))]
pub async fn delete_token(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    state
        .pool
        .run(move |c| users::delete_token(c, &caller, &id, now_ms()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Log in with a password; sets the `kiln_session` cookie (12 h) used by the UI. Failed logins
/// are rate-limited per source address (10, then one every 6 s) and per user (20, then one every
/// 15 s): beyond that, 429 with `Retry-After`. Failures are in the audit log (`login.failed`).
#[utoipa::path(post, path = "/api/v1/login", request_body = api::LoginRequest, tag = "users", security(()),
    responses((status = 200, body = api::WhoAmI), (status = 401, body = api::ErrorBody),
              (status = 429, body = api::ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait")))))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<api::LoginRequest>,
) -> Result<HttpResponse> {
    let b = body.into_inner();
    let peer = req.peer_addr().map(|a| a.ip());
    let (who, secret) = crate::domain::login::password_login(
        &state.pool,
        &state.logins,
        peer,
        &b.username,
        &b.password,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .cookie(super::session_cookie(secret))
        .json(who))
}

/// End the UI session.
#[utoipa::path(post, path = "/api/v1/logout", tag = "users", security(()), responses((status = 204)))]
pub async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        let hash = auth::token_hash(c.value());
        state
            .pool
            .run(move |conn| db::users::delete_token_by_hash(conn, &hash))
            .await?;
    }
    let mut gone = Cookie::new(SESSION_COOKIE, "");
    gone.set_path("/");
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

/// Who the credentials belong to.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "users", responses((status = 200, body = api::WhoAmI), (status = 401, body = api::ErrorBody)))]
pub async fn whoami(Auth(caller): Auth) -> HttpResponse {
    HttpResponse::Ok().json(api::WhoAmI {
        username: caller.username,
        is_admin: caller.is_admin,
        scope: caller.scope,
    })
}

/// An audit-log entry: who did what.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    created_at: String,
    username: String,
    action: String,
    target: String,
    detail: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<i64>,
}

/// The audit log, newest first (admins).
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), tag = "users",
    responses((status = 200, body = Vec<AuditEntry>), (status = 403, body = api::ErrorBody)))]
pub async fn audit(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse> {
    admin_only(&caller, "read the audit log")?;
    let (limit, _) = super::page_bounds(&state.cfg, q.limit, None)?;
    let rows = state
        .pool
        .run(move |c| db::users::audit_entries(c, limit))
        .await?;
    Ok(HttpResponse::Ok().json(
        rows.into_iter()
            .map(|(t, u, a, tg, d)| AuditEntry {
                created_at: fmt_time(t),
                username: u,
                action: a,
                target: tg,
                detail: d,
            })
            .collect::<Vec<_>>(),
    ))
}
