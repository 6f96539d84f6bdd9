//! Logging in and out, and the [`Viewer`]: who is looking at a page (from the `kiln_session`
//! cookie, the same session the API's `POST /api/v1/login` makes).

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use kiln_ui::views::{self, Page};

use super::{see_other, ui, Form, WebError, WebResult};
use crate::api::{AppState, CSRF_HEADER, SESSION_COOKIE};
use crate::db::{now_ms, random_id};
use crate::domain::auth::{csrf_token, same_token, token_hash};
use crate::domain::users;
use crate::domain::Caller;

/// The double-submit cookie of the login form (there is no session to derive a token from yet).
const LOGIN_COOKIE: &str = "kiln_login";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login_page))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout));
}

/// The logged-in user looking at a page, and the CSRF token their forms carry.
pub struct Viewer {
    pub caller: Caller,
    pub csrf: String,
    /// The CSRF token the request itself sent in the `X-CSRF-Token` header (htmx, fetch).
    sent_header: Option<String>,
    /// The change bus's mark, taken before the handler reads anything: the page's stream starts
    /// from it, so a change between rendering and the stream connecting is not missed.
    pub since: String,
}

impl Viewer {
    /// Refuses a POST whose form (or header) does not carry this session's CSRF token.
    pub fn check(&self, form: &Form) -> Result<(), WebError> {
        let sent = form
            .get("csrf")
            .map(str::to_string)
            .or_else(|| self.sent_header.clone());
        match sent {
            Some(t) if same_token(&t, &self.csrf) => Ok(()),
            _ => Err(WebError::Csrf),
        }
    }
}

impl FromRequest for Viewer {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Viewer, WebError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
        let next = match req.query_string() {
            "" => req.path().to_string(),
            q => format!("{}?{q}", req.path()),
        };
        let next = if req.method() == actix_web::http::Method::GET {
            next
        } else {
            "/machines".to_string()
        };
        let htmx = req.headers().contains_key("HX-Request");
        let sent_header = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        Box::pin(async move {
            let state = state.ok_or_else(|| WebError::Internal("app state missing".into()))?;
            let since = state.pool.changes().mark();
            let Some(secret) = cookie else {
                return Err(WebError::Login { next, htmx });
            };
            let s = secret.clone();
            let caller = state
                .pool
                .run(move |c| users::authenticate(c, &s, now_ms()))
                .await?;
            match caller {
                Some(caller) => Ok(Viewer {
                    caller,
                    csrf: csrf_token(&secret),
                    sent_header,
                    since,
                }),
                None => Err(WebError::Login { next, htmx }),
            }
        })
    }
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Only a path on this site (no `//host`, no scheme) is a place to go back to.
fn safe_next(next: Option<&str>) -> String {
    match next {
        // Browsers drop tabs and newlines from URLs ("/\t/evil" is "//evil"): none are allowed.
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n.to_string()
        }
        _ => "/machines".to_string(),
    }
}

fn login_form(status: StatusCode, view: views::Login, fresh_cookie: Option<String>) -> WebResult {
    let page = Page {
        header: None,
        title: "Log in".to_string(),
        notice: None,
        stream: None,
        asset_version: kiln_ui::assets::version(),
        view,
    };
    let html = ui()?.render("login.html", &page)?;
    let mut r = HttpResponse::build(status);
    r.content_type("text/html; charset=utf-8")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    if let Some(v) = fresh_cookie {
        r.cookie(
            Cookie::build(LOGIN_COOKIE, v)
                .path("/login")
                .http_only(true)
                .same_site(SameSite::Strict)
                .finish(),
        );
    }
    Ok(r.body(html))
}

async fn login_page(req: HttpRequest, q: web::Query<LoginQuery>) -> WebResult {
    let next = safe_next(q.next.as_deref());
    let token = match req.cookie(LOGIN_COOKIE) {
        Some(c) if c.value().len() == 32 => c.value().to_string(),
        _ => random_id(32),
    };
    login_form(
        StatusCode::OK,
        views::Login {
            username: String::new(),
            next,
            csrf: token.clone(),
            error: None,
        },
        Some(token),
    )
}

async fn login(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> WebResult {
    let form = Form::parse(&body);
    let next = safe_next(form.get("next"));
    let username = form.text("username");
    let expected = req.cookie(LOGIN_COOKIE).map(|c| c.value().to_string());
    let sent = form.text("csrf");
    let retry_with = |status: StatusCode, error: &str| {
        let token = random_id(32);
        login_form(
            status,
            views::Login {
                username: username.clone(),
                next: next.clone(),
                csrf: token.clone(),
                error: Some(error.to_string()),
            },
            Some(token),
        )
    };
    let retry = |error: &str| retry_with(StatusCode::UNAUTHORIZED, error);
    if !expected.is_some_and(|e| !sent.is_empty() && same_token(&e, &sent)) {
        return retry("This login form had expired; log in again.");
    }
    let password = form.get("password").unwrap_or("").to_string();
    let peer = req.peer_addr().map(|a| a.ip());
    match crate::domain::login::password_login(
        &state.pool,
        &state.logins,
        peer,
        &username,
        &password,
    )
    .await
    {
        Ok((_, secret)) => {
            let cookie = crate::api::session_cookie(secret);
            let mut gone = Cookie::new(LOGIN_COOKIE, "");
            gone.set_path("/login");
            gone.make_removal();
            Ok(HttpResponse::SeeOther()
                .insert_header((actix_web::http::header::LOCATION, next))
                .cookie(cookie)
                .cookie(gone)
                .finish())
        }
        Err(crate::error::Error::Unauthorized(m)) => retry(&m),
        Err(crate::error::Error::RateLimited {
            message,
            retry_after_secs,
        }) => retry_with(StatusCode::TOO_MANY_REQUESTS, &message).map(|mut r| {
            if let Ok(v) =
                actix_web::http::header::HeaderValue::from_str(&retry_after_secs.to_string())
            {
                r.headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, v);
            }
            r
        }),
        Err(e) => Err(e.into()),
    }
}

async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    v: Viewer,
    body: web::Bytes,
) -> WebResult {
    v.check(&Form::parse(&body))?;
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        let hash = token_hash(c.value());
        state
            .pool
            .run(move |conn| crate::db::users::delete_token_by_hash(conn, &hash))
            .await?;
    }
    let mut gone = Cookie::new(SESSION_COOKIE, "");
    gone.set_path("/");
    gone.make_removal();
    let mut r = see_other("/login");
    r.add_cookie(&gone)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/machines/abc?x=1")), "/machines/abc?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/machines");
        assert_eq!(safe_next(Some("https://evil.example/")), "/machines");
        assert_eq!(safe_next(Some("/\\evil.example")), "/machines");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/machines");
        assert_eq!(safe_next(Some("/\n/evil.example")), "/machines");
        assert_eq!(safe_next(None), "/machines");
    }
}
