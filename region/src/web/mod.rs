//! The operators' web UI, served by the region on its API port: pages rendered on the server by the
//! `kiln-ui` crate, forms that work without JavaScript (POST, then a redirect back), htmx for live
//! regions, and Server-Sent Events ([`stream`]) fed by the change bus ([`crate::changes`]).
//!
//! Handlers are thin, as the API's are: they call the same `domain::*` functions with the caller's
//! access, so the UI can do exactly what the API lets its user do. Every POST checks the session's
//! CSRF token ([`crate::domain::auth::csrf_token`]).
//!
//! Layout: [`session`] (login, logout, the [`Viewer`] extractor), [`machines`] (list, bulk actions,
//! detail and its forms), [`pages`] (images, subnets, racks, users and tokens, SSH keys, settings,
//! events), [`stream`] (SSE).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use kiln_ui::views::{self, FieldErrors, Header, Page};
use kiln_ui::Ui;
use serde::Serialize;

use crate::error::Error;

pub mod dns;
pub mod machines;
pub mod pages;
pub mod pods;
pub mod racks;
pub mod session;
pub mod stream;

pub use session::Viewer;

/// Mounts the pages (outside `/api`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(root))
        .route("/favicon.ico", web::get().to(favicon))
        .route("/ui/static/{name}", web::get().to(asset))
        .route("/ui/stream", web::get().to(stream::stream))
        .configure(session::configure)
        .configure(machines::configure)
        .configure(pages::configure)
        .configure(dns::configure)
        .configure(pods::configure)
        .configure(racks::configure);
}

async fn root() -> HttpResponse {
    see_other("/machines")
}

async fn favicon() -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, "/ui/static/favicon.svg"))
        .finish()
}

/// The compiled templates (compiled once; a template that does not compile is a bug in Kiln, shown
/// as such on every page rather than taking the API down).
fn ui() -> Result<&'static Ui, WebError> {
    static UI: OnceLock<Result<Ui, String>> = OnceLock::new();
    UI.get_or_init(|| Ui::new().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| WebError::Internal(e.clone()))
}

async fn asset(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(a) = kiln_ui::assets::get(&name) else {
        return HttpResponse::NotFound().body("no such file");
    };
    let etag = a.etag();
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
    {
        return HttpResponse::NotModified().finish();
    }
    HttpResponse::Ok()
        .content_type(a.content_type)
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(a.body)
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum WebError {
    /// Not logged in (or the session ended): to the login page, then back to `next`. `htmx`: the
    /// request came from a live region, which must be told to navigate (a 303 it would follow).
    Login {
        next: String,
        htmx: bool,
    },
    /// A POST without the page's CSRF token.
    Csrf,
    /// What the domain refused, in its words.
    Domain(Error),
    Internal(String),
}

impl From<Error> for WebError {
    fn from(e: Error) -> Self {
        match e {
            Error::Unauthorized(_) => WebError::Login {
                next: "/machines".into(),
                htmx: false,
            },
            e => WebError::Domain(e),
        }
    }
}

impl From<kiln_ui::UiError> for WebError {
    fn from(e: kiln_ui::UiError) -> Self {
        WebError::Internal(e.to_string())
    }
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebError::Login { .. } => write!(f, "log in first"),
            WebError::Csrf => write!(f, "missing or wrong CSRF token"),
            WebError::Domain(e) => write!(f, "{e}"),
            WebError::Internal(e) => write!(f, "{e}"),
        }
    }
}

impl actix_web::ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::Login { htmx: true, .. } => StatusCode::OK,
            WebError::Login { .. } => StatusCode::SEE_OTHER,
            WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::Domain(e) => actix_web::ResponseError::status_code(e),
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            WebError::Login { next, htmx } => {
                let to = kiln_ui::format::link("/login", &[("next", next)]);
                if *htmx {
                    // A live region whose session ended: htmx navigates the whole page.
                    HttpResponse::Ok().insert_header(("HX-Redirect", to)).finish()
                } else {
                    HttpResponse::SeeOther()
                        .insert_header((header::LOCATION, to))
                        .finish()
                }
            }
            WebError::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form came from an older page or another site (its CSRF token does not match your session). Reload the page and try again.",
                "/machines",
            ),
            WebError::Domain(e) => {
                if e.status_code().is_server_error() {
                    tracing::error!("web UI request failed: {e}");
                }
                let status = actix_web::ResponseError::status_code(e);
                let title = match status {
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::FORBIDDEN => "Not allowed",
                    _ => "That did not work",
                };
                error_page(status, title, &e.public_message(), "/machines")
            }
            WebError::Internal(e) => {
                tracing::error!("web UI failed: {e}");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Kiln failed",
                    "The page could not be made; the region's log says why.",
                    "/machines",
                )
            }
        }
    }
}

fn error_page(status: StatusCode, title: &str, message: &str, back: &str) -> HttpResponse {
    let page = Page {
        header: None,
        title: title.to_string(),
        notice: None,
        stream: None,
        asset_version: kiln_ui::assets::version(),
        view: views::ErrorPage {
            message: message.to_string(),
            back: back.to_string(),
        },
    };
    match ui().and_then(|u| u.render("error.html", &page).map_err(WebError::from)) {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(_) => HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(message.to_string()),
    }
}

pub type WebResult = Result<HttpResponse, WebError>;

/// A 303 to `to` (the answer to every successful form).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

/// `to` with `?notice=…` (or `&notice=…`) saying what was done.
pub fn with_notice(to: &str, notice: &str) -> String {
    let sep = if to.contains('?') { '&' } else { '?' };
    format!("{to}{sep}notice={}", kiln_ui::format::url_encode(notice))
}

/// Renders `template` with the viewer's header; `status` lets a form with errors answer 422.
#[allow(clippy::too_many_arguments)]
pub fn render<T: Serialize>(
    v: &Viewer,
    status: StatusCode,
    template: &str,
    active: &str,
    title: &str,
    notice: Option<String>,
    stream: Option<String>,
    view: T,
) -> WebResult {
    let stream = stream.map(|s| {
        let sep = if s.contains('?') { '&' } else { '?' };
        format!("{s}{sep}since={}", kiln_ui::format::url_encode(&v.since))
    });
    let page = Page {
        header: Some(header_of(v, active)),
        title: title.to_string(),
        notice,
        stream,
        asset_version: kiln_ui::assets::version(),
        view,
    };
    let html = ui()?.render(template, &page)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

fn header_of(v: &Viewer, active: &str) -> Header {
    Header {
        username: v.caller.username.clone(),
        is_admin: v.caller.is_admin,
        csrf: v.csrf.clone(),
        active: active.to_string(),
    }
}

/// A form's fields (urlencoded). Repeated names keep every value.
#[derive(Debug, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(
            url_decode_pairs(body)
                .into_iter()
                .collect::<Vec<(String, String)>>(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    /// The value, trimmed; "" when absent.
    pub fn text(&self, k: &str) -> String {
        self.get(k).unwrap_or("").trim().to_string()
    }

    pub fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn checked(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "on" | "true" | "yes"))
    }

    /// Every field as text, for putting a form back with what the user typed (secrets left out).
    pub fn values(&self, except: &[&str]) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter(|(k, _)| k != "csrf" && !except.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// `application/x-www-form-urlencoded` pairs.
fn url_decode_pairs(body: &[u8]) -> Vec<(String, String)> {
    fn dec(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() => {
                    let h = std::str::from_utf8(&s[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match h {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|b| *b == b'=') {
            Some(i) => (dec(&p[..i]), dec(&p[i + 1..])),
            None => (dec(p), String::new()),
        })
        .collect()
}

/// The message of a domain error, keyed by the control it is about (`form` when it names none, or
/// one this form does not have).
pub fn field_errors(e: &Error, known: &[&str]) -> FieldErrors {
    let mut m = FieldErrors::new();
    // A list's item (`relay_addresses[1]`) goes beside the list's field.
    let key = match e.field().map(|f| (f, f.split('[').next().unwrap_or(f))) {
        Some((_, field)) if known.contains(&field) => field.to_string(),
        Some((f, _)) if f.starts_with("power_parameters.") => f.to_string(),
        _ => "form".to_string(),
    };
    m.insert(key, e.public_message());
    m
}

/// Whether `e` is the user's mistake (shown beside the form) rather than a failure of Kiln.
pub fn is_user_error(e: &Error) -> bool {
    !actix_web::ResponseError::status_code(e).is_server_error()
        || matches!(e, Error::Power(_) | Error::Pod(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_percent_and_repeats() {
        let f = Form::parse(b"q=status%3Aready+tag%3Aa&ids=a&ids=b&bad=%zz&x=%4");
        assert_eq!(f.get("q"), Some("status:ready tag:a"));
        assert_eq!(f.all("ids"), vec!["a", "b"]);
        assert_eq!(f.get("bad"), Some("%zz"));
        assert_eq!(f.get("x"), Some("%4"));
        assert_eq!(f.text("missing"), "");
    }

    #[test]
    fn notices_append_to_links() {
        assert_eq!(with_notice("/machines", "done"), "/machines?notice=done");
        assert_eq!(
            with_notice("/machines?q=a", "a b"),
            "/machines?q=a&notice=a%20b"
        );
    }
}
