//! Credentials are checked before a request is read.
//!
//! actix runs a handler's extractors side by side, so a request whose token needs a database
//! lookup could have its body or query rejected (400, with the validator's words) before the token
//! was: an unauthenticated caller would learn what the API accepts, and a wrong credential would
//! get a "bad request" instead of a refusal. [`authenticate_first`] resolves the credential first,
//! once, by its kind (`kiln_` user tokens and session cookies, `rack_` rack tokens, `boot_` boot
//! tokens): an invalid one is refused (401/403) before any handler runs; a valid one is kept in
//! the request, where the [`super::Auth`], [`super::rack_api::RackAuth`] and
//! [`super::metadata::MachineAuth`] extractors take it at once, and refuse a credential of the
//! wrong kind in words.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use crate::domain::boot::{MachineBoot, BOOT_TOKEN_PREFIX};
use crate::domain::Caller;
use crate::error::Error;

/// The prefix of rack tokens.
pub const RACK_TOKEN_PREFIX: &str = "rack_";

/// A credential the region has checked.
#[derive(Debug, Clone)]
pub enum Checked {
    User(Caller),
    Rack {
        rack_id: String,
        name: String,
        approval: String,
    },
    Machine(MachineBoot),
}

impl Checked {
    /// What this credential is, for a refusal's words.
    pub fn what(&self) -> &'static str {
        match self {
            Checked::User(_) => "a user's token (or session)",
            Checked::Rack { .. } => "a rack token",
            Checked::Machine(_) => "a machine's boot token",
        }
    }
}

/// The credential the middleware checked, if the request carried one.
pub fn checked(req: &HttpRequest) -> Option<Checked> {
    req.extensions().get::<Checked>().cloned()
}

/// Operations that take no credential (or check their own: a login replaces a stale cookie).
pub fn is_public(method: &actix_web::http::Method, path: &str) -> bool {
    use actix_web::http::Method;
    (*method == Method::POST
        && matches!(
            path,
            "/api/v1/login" | "/api/v1/logout" | "/api/v1/rack/register"
        ))
        || (*method == Method::GET && path == "/api/v1/openapi.json")
}

/// The refusal of a checked credential on a route for another kind.
pub fn wrong_kind(route_is_for: &str, c: &Checked) -> Error {
    Error::Unauthorized(format!(
        "This route is for {route_is_for}; {} is not one.",
        c.what()
    ))
}

/// Which extractor checks a credential: by the token's prefix (a cookie is a user's session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Rack,
    Machine,
}

/// The kind of a bearer token (pure); `None`: no token.
pub fn kind_of(bearer: Option<&str>, has_session_cookie: bool) -> Option<Kind> {
    match bearer {
        Some(t) if t.starts_with(RACK_TOKEN_PREFIX) => Some(Kind::Rack),
        Some(t) if t.starts_with(BOOT_TOKEN_PREFIX) => Some(Kind::Machine),
        Some(_) => Some(Kind::User),
        None if has_session_cookie => Some(Kind::User),
        None => None,
    }
}

async fn check(req: &HttpRequest, kind: Kind) -> Result<Checked, Error> {
    let mut none = actix_web::dev::Payload::None;
    Ok(match kind {
        Kind::User => Checked::User(super::Auth::from_request(req, &mut none).await?.0),
        Kind::Rack => {
            let r = super::rack_api::AnyRack::from_request(req, &mut none).await?;
            Checked::Rack {
                rack_id: r.rack_id,
                name: r.name,
                approval: r.approval,
            }
        }
        Kind::Machine => Checked::Machine(
            super::metadata::MachineAuth::from_request(req, &mut none)
                .await?
                .0,
        ),
    })
}

/// The middleware (see the module).
pub async fn authenticate_first(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    if !is_public(req.method(), req.path()) {
        let bearer = super::bearer_token(req.request());
        let cookie = req.cookie(super::SESSION_COOKIE).is_some();
        if let Some(kind) = kind_of(bearer.as_deref(), cookie) {
            match check(req.request(), kind).await {
                Ok(c) => {
                    req.extensions_mut().insert(c);
                }
                Err(e) => {
                    let resp = actix_web::ResponseError::error_response(&e);
                    return Ok(req.into_response(resp).map_into_right_body());
                }
            }
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_checked_by_its_kind() {
        assert_eq!(kind_of(Some("rack_abc"), false), Some(Kind::Rack));
        assert_eq!(kind_of(Some("boot_abc"), true), Some(Kind::Machine));
        assert_eq!(kind_of(Some("kiln_abc"), false), Some(Kind::User));
        assert_eq!(kind_of(Some("mistyped"), false), Some(Kind::User));
        assert_eq!(kind_of(None, true), Some(Kind::User));
        assert_eq!(kind_of(None, false), None);
    }

    #[test]
    fn only_login_logout_and_rack_registration_are_public() {
        use actix_web::http::Method;
        assert!(is_public(&Method::POST, "/api/v1/login"));
        assert!(is_public(&Method::POST, "/api/v1/rack/register"));
        assert!(!is_public(&Method::GET, "/api/v1/login"));
        assert!(!is_public(&Method::POST, "/api/v1/rack/boot"));
        assert!(!is_public(&Method::POST, "/api/v1/tokens"));
    }
}
