//! The region's one error type, and how it becomes an HTTP answer.
//!
//! | where | what to return |
//! |---|---|
//! | `db::*` query functions | `Result<T, Error>` (diesel errors convert with `?`) |
//! | `domain::*` | `Error::Validation` / `Error::InvalidTransition` / `Error::Forbidden` with a sentence a person can act on |
//! | API handlers | `Result<_, Error>`: [`actix_web::ResponseError`] turns it into `{error, message, field}` JSON |
//!
//! Internal causes (database, IO) are logged once, here, when the answer is built; the user sees only a
//! generic sentence for them, never SQL or file paths.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use region_api_types::ErrorBody;

/// Everything that can go wrong in the region.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input that fails validation (400).
    #[error("{message}")]
    Validation {
        field: Option<String>,
        message: String,
    },
    /// The body could not be parsed as the expected JSON (400).
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or bad ones (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller's role does not allow this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The thing does not exist, or the caller may not see it (404).
    #[error("{what} not found")]
    NotFound { what: String },
    /// A lifecycle action not allowed in the machine's status (409).
    #[error("{0}")]
    InvalidTransition(String),
    /// A uniqueness or concurrency conflict (409).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        field: Option<String>,
        message: String,
    },
    /// An upload whose bytes do not match the checksum or size given (400).
    #[error("{0}")]
    Checksum(String),
    /// A body larger than allowed (413).
    #[error("{0}")]
    TooLarge(String),
    /// Too many attempts (429); try again after this many seconds (`Retry-After`).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// A pod's host (or the rack reaching it) failed or refused (502), in its words.
    #[error("{0}")]
    Pod(String),
    /// A power action the BMC (or the rack driving it) did not complete (502); the message is the
    /// BMC's answer in words.
    #[error("{0}")]
    Power(String),
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("database connection error: {0}")]
    Pool(String),
    #[error("migration error: {0}")]
    Migration(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration error: {0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    pub fn conflict(code: &'static str, field: Option<&str>, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    /// The input field the error is about, when there is one (the UI puts the message beside it).
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Validation { field, .. } | Error::Conflict { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation { .. } => "validation_failed",
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound { .. } => "not_found",
            Error::InvalidTransition(_) => "invalid_transition",
            Error::Conflict { code, .. } => code,
            Error::Checksum(_) => "checksum_mismatch",
            Error::TooLarge(_) => "payload_too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::Power(_) => "power_failed",
            Error::Pod(_) => "pod_failed",
            Error::Db(diesel::result::Error::NotFound) => "not_found",
            Error::Db(_) | Error::Pool(_) | Error::Migration(_) => "database_error",
            Error::Io(_) | Error::Config(_) | Error::Internal(_) => "internal_error",
        }
    }

    fn is_internal(&self) -> bool {
        self.status_code().is_server_error() && !matches!(self, Error::Power(_) | Error::Pod(_))
    }

    /// What the user is told.
    pub fn public_message(&self) -> String {
        match self {
            Error::Db(diesel::result::Error::NotFound) => "Not found.".to_string(),
            Error::Db(e) if is_busy(e) => {
                "The database is busy; try again in a moment.".to_string()
            }
            e if e.is_internal() => {
                "Internal error; the region log has the details. Try again, and report it if it persists."
                    .to_string()
            }
            e => e.to_string(),
        }
    }
}

/// Whether a database error is a transient lock/serialization conflict worth retrying.
pub fn is_busy(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error as D};
    match e {
        D::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        D::DatabaseError(_, info) => {
            let m = info.message();
            m.contains("database is locked") || m.contains("database table is locked")
        }
        _ => false,
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::Validation { .. } | Error::BadRequest(_) | Error::Checksum(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound { .. } | Error::Db(diesel::result::Error::NotFound) => {
                StatusCode::NOT_FOUND
            }
            Error::InvalidTransition(_) | Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Power(_) | Error::Pod(_) => StatusCode::BAD_GATEWAY,
            Error::Db(e) if is_busy(e) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Db(_)
            | Error::Pool(_)
            | Error::Migration(_)
            | Error::Io(_)
            | Error::Config(_)
            | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.is_internal() {
            // Logged once, where it is handled: here.
            tracing::error!(error.code = self.code(), cause = %self, "request failed: {self}");
        }
        let field = match self {
            Error::Validation { field, .. } | Error::Conflict { field, .. } => field.clone(),
            _ => None,
        };
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            Error::Unauthorized(_) => {
                resp.insert_header(("WWW-Authenticate", "Bearer realm=\"kiln\""));
            }
            Error::RateLimited {
                retry_after_secs, ..
            } => {
                resp.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            _ => {}
        }
        resp.json(ErrorBody {
            error: self.code().to_string(),
            message: self.public_message(),
            field,
        })
    }
}

impl From<diesel::r2d2::PoolError> for Error {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        Error::Pool(e.to_string())
    }
}

impl From<actix_web::error::BlockingError> for Error {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Error::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body(e: &Error) -> ErrorBody {
        let resp = e.error_response();
        let bytes = resp.into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn status_codes_and_codes() {
        let cases: Vec<(Error, u16, &str)> = vec![
            (
                Error::validation("mac", "bad mac"),
                400,
                "validation_failed",
            ),
            (Error::Unauthorized("x".into()), 401, "unauthorized"),
            (Error::Forbidden("x".into()), 403, "forbidden"),
            (Error::not_found("machine abc"), 404, "not_found"),
            (Error::Db(diesel::result::Error::NotFound), 404, "not_found"),
            (
                Error::InvalidTransition("x".into()),
                409,
                "invalid_transition",
            ),
            (
                Error::conflict("duplicate_mac", Some("boot_mac"), "dup"),
                409,
                "duplicate_mac",
            ),
            (Error::Checksum("x".into()), 400, "checksum_mismatch"),
            (Error::TooLarge("x".into()), 413, "payload_too_large"),
            (
                Error::Internal("secret path /x".into()),
                500,
                "internal_error",
            ),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.status_code().as_u16(), status, "{e:?}");
            assert_eq!(body(&e).error, code);
        }
    }

    #[test]
    fn internal_causes_are_not_shown() {
        let b = body(&Error::Internal("secret path /x".into()));
        assert!(!b.message.contains("secret"), "{}", b.message);
        let b = body(&Error::validation("mac", "bad mac"));
        assert_eq!(b.field.as_deref(), Some("mac"));
        assert_eq!(b.message, "bad mac");
    }
}
