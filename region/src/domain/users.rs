//! Users and tokens: creation with validation, and the bearer-token lookup behind every request.

use region_api_types as api;

use super::{auth, validate, Caller};
use crate::db::users::{self as dbu, TokenRow, UserRow};
use crate::db::{random_id, DbConn};
use crate::error::{Error, Result};

/// Creates a user. `by` is who asks (None for the admin CLI, which runs with database access).
pub fn create_user(
    conn: &mut DbConn,
    by: Option<&Caller>,
    username: &str,
    password: &str,
    is_admin: bool,
    now: i64,
) -> Result<api::User> {
    if let Some(c) = by {
        if !c.is_admin {
            return Err(Error::Forbidden(
                "Only administrators may add users.".into(),
            ));
        }
    }
    let username = validate::username("username", username)?;
    let hash = auth::hash_password(password)?;
    if dbu::by_username(conn, &username)?.is_some() {
        return Err(Error::conflict(
            "duplicate_username",
            Some("username"),
            format!("User {username} exists already."),
        ));
    }
    let row = UserRow {
        id: random_id(12),
        username: username.clone(),
        password_hash: hash,
        is_admin,
        created_at: now,
    };
    dbu::insert_user(conn, &row)?;
    let actor = by.map(|c| c.username.as_str()).unwrap_or("kiln-admin-cli");
    dbu::audit(
        conn,
        now,
        actor,
        "user.create",
        &username,
        if is_admin { "admin" } else { "user" },
    )?;
    Ok(row.to_api())
}

/// How long a UI session lasts.
pub const SESSION_MS: i64 = 12 * 3600 * 1000;

/// What a new token is asked to be: its scope (none: all its user may) and when it expires.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    pub scope: Option<api::TokenScope>,
    /// Milliseconds since the epoch.
    pub expires_at: Option<i64>,
}

impl TokenSpec {
    /// From the API's body: `expires_at` is RFC 3339 and must be in the future.
    pub fn from_api(
        scope: Option<api::TokenScope>,
        expires_at: Option<&str>,
        now: i64,
    ) -> Result<TokenSpec> {
        let expires_at = match expires_at.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => {
                let at = chrono::DateTime::parse_from_rfc3339(t).map_err(|_| {
                    Error::validation(
                        "expires_at",
                        format!(
                            "expires_at is a time like 2027-01-31T00:00:00Z (RFC 3339), not '{t}'."
                        ),
                    )
                })?;
                let ms = at.timestamp_millis();
                if ms <= now {
                    return Err(Error::validation(
                        "expires_at",
                        format!("expires_at ({t}) is not in the future."),
                    ));
                }
                Some(ms)
            }
        };
        Ok(TokenSpec { scope, expires_at })
    }
}

/// Creates a token for `user`, asked for by credentials that may do `limit` (a token never
/// exceeds its user, nor the credential that makes it). Returns the API view and the secret (shown
/// once).
pub fn create_token(
    conn: &mut DbConn,
    user: &UserRow,
    name: &str,
    spec: &TokenSpec,
    limit: api::TokenScope,
    now: i64,
) -> Result<api::TokenCreated> {
    let name = validate::text("name", name.trim(), 128)?;
    if name.is_empty() {
        return Err(Error::validation(
            "name",
            "Give the token a name, like 'ci' or 'laptop'.",
        ));
    }
    let most = limit.min(api::TokenScope::of_user(user.is_admin));
    let scope = spec.scope.unwrap_or(most);
    if scope > most {
        return Err(Error::validation(
            "scope",
            format!(
                "A token cannot do more than {}: {} may have a scope of {} at most, not {}.",
                if most < api::TokenScope::of_user(user.is_admin) {
                    "the credentials that create it"
                } else {
                    "its user"
                },
                user.username,
                most.as_str(),
                scope.as_str()
            ),
        ));
    }
    let row = new_token_row(user, name, scope, spec.expires_at, false, now);
    dbu::insert_token(conn, &row.0)?;
    dbu::audit(
        conn,
        now,
        &user.username,
        "token.create",
        &row.0.id,
        &format!(
            "{} (scope {}{})",
            row.0.name,
            scope.as_str(),
            match spec.expires_at {
                Some(e) => format!(", expires {}", crate::db::fmt_time(e)),
                None => String::new(),
            }
        ),
    )?;
    Ok(api::TokenCreated {
        token: row.0.to_api(&user.username, user.is_admin),
        secret: row.1,
    })
}

/// A token row and its secret.
fn new_token_row(
    user: &UserRow,
    name: String,
    scope: api::TokenScope,
    expires_at: Option<i64>,
    is_session: bool,
    now: i64,
) -> (TokenRow, String) {
    let secret = auth::new_token();
    (
        TokenRow {
            id: random_id(12),
            user_id: user.id.clone(),
            name,
            token_hash: auth::token_hash(&secret),
            prefix: auth::token_display_prefix(&secret),
            is_session,
            expires_at,
            created_at: now,
            last_used_at: None,
            scope: scope.as_str().to_string(),
        },
        secret,
    )
}

/// A UI session for `user` (12 h, all the user may do): its secret, for the `kiln_session` cookie.
pub fn create_session(conn: &mut DbConn, user: &UserRow, now: i64) -> Result<String> {
    let scope = api::TokenScope::of_user(user.is_admin);
    let (row, secret) = new_token_row(
        user,
        "ui session".into(),
        scope,
        Some(now + SESSION_MS),
        true,
        now,
    );
    dbu::insert_token(conn, &row)?;
    Ok(secret)
}

/// The caller a bearer token (or session cookie) stands for.
pub fn authenticate(conn: &mut DbConn, token: &str, now: i64) -> Result<Option<Caller>> {
    if token.len() > 256 {
        return Ok(None);
    }
    let hash = auth::token_hash(token);
    let Some((t, u)) = dbu::user_by_token_hash(conn, &hash, now)? else {
        return Ok(None);
    };
    dbu::touch_token(conn, &t.id, now)?;
    let scope = t.scope_for(u.is_admin);
    Ok(Some(Caller {
        user_id: u.id,
        username: u.username,
        // An admin's read-scoped token sees what the admin sees (it never writes: see `scope`).
        is_admin: u.is_admin && scope != api::TokenScope::Operator,
        scope,
    }))
}

/// Deletes a user (admins). Their tokens go; their machines become free. The last admin stays.
pub fn delete_user(conn: &mut DbConn, caller: &Caller, name: &str, now: i64) -> Result<()> {
    if !caller.is_admin {
        return Err(Error::Forbidden(
            "Only administrators may delete users.".into(),
        ));
    }
    let u =
        dbu::by_username(conn, name)?.ok_or_else(|| Error::not_found(format!("user {name}")))?;
    if u.is_admin && dbu::count_admins(conn)? <= 1 {
        return Err(Error::conflict(
            "last_admin",
            Some("username"),
            format!("{name} is the last administrator; make another admin first."),
        ));
    }
    dbu::delete_user(conn, &u.id)?;
    dbu::audit(conn, now, &caller.username, "user.delete", name, "")
}

/// A new API token for the caller themself (the secret is in the answer, shown once), at most
/// what the caller's own credentials may do.
pub fn create_own_token(
    conn: &mut DbConn,
    caller: &Caller,
    name: &str,
    spec: &TokenSpec,
    now: i64,
) -> Result<api::TokenCreated> {
    let u = dbu::by_id(conn, &caller.user_id)?
        .ok_or_else(|| Error::Unauthorized("Your user no longer exists.".into()))?;
    create_token(conn, &u, name, spec, caller.scope, now)
}

/// Revokes a token: the caller's own, or anyone's for admins.
pub fn delete_token(conn: &mut DbConn, caller: &Caller, id: &str, now: i64) -> Result<()> {
    let t = dbu::token_by_id(conn, id)?
        .filter(|t| caller.is_admin || t.user_id == caller.user_id)
        .ok_or_else(|| Error::not_found(format!("token {id}")))?;
    dbu::delete_token(conn, &t.id)?;
    dbu::audit(conn, now, &caller.username, "token.delete", &t.id, &t.name)
}
