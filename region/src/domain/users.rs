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

/// Creates a token for `user`. Returns the API view and the secret (shown once).
pub fn create_token(
    conn: &mut DbConn,
    user: &UserRow,
    name: &str,
    session_expires_at: Option<i64>,
    now: i64,
) -> Result<api::TokenCreated> {
    let name = validate::text("name", name.trim(), 128)?;
    if name.is_empty() {
        return Err(Error::validation(
            "name",
            "Give the token a name, like 'ci' or 'laptop'.",
        ));
    }
    let secret = auth::new_token();
    let row = TokenRow {
        id: random_id(12),
        user_id: user.id.clone(),
        name,
        token_hash: auth::token_hash(&secret),
        prefix: auth::token_display_prefix(&secret),
        is_session: session_expires_at.is_some(),
        expires_at: session_expires_at,
        created_at: now,
        last_used_at: None,
    };
    dbu::insert_token(conn, &row)?;
    if session_expires_at.is_none() {
        dbu::audit(
            conn,
            now,
            &user.username,
            "token.create",
            &row.id,
            &row.name,
        )?;
    }
    Ok(api::TokenCreated {
        token: row.to_api(&user.username),
        secret,
    })
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
    Ok(Some(Caller {
        user_id: u.id,
        username: u.username,
        is_admin: u.is_admin,
    }))
}
