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

/// Logs in with a password: a session token (12 h) for the `kiln_session` cookie, and who it is.
/// Wrong usernames and wrong passwords get the same answer.
pub fn password_login(
    conn: &mut DbConn,
    username: &str,
    password: &str,
    now: i64,
) -> Result<(api::WhoAmI, String)> {
    let bad = || Error::Unauthorized("Wrong username or password.".into());
    let u = dbu::by_username(conn, username)?.ok_or_else(bad)?;
    if !auth::verify_password(password, &u.password_hash) {
        return Err(bad());
    }
    let t = create_token(conn, &u, "ui session", Some(now + SESSION_MS), now)?;
    dbu::audit(conn, now, &u.username, "login", &u.username, "")?;
    Ok((
        api::WhoAmI {
            username: u.username,
            is_admin: u.is_admin,
        },
        t.secret,
    ))
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

/// A new API token for the caller themself (the secret is in the answer, shown once).
pub fn create_own_token(
    conn: &mut DbConn,
    caller: &Caller,
    name: &str,
    now: i64,
) -> Result<api::TokenCreated> {
    let u = dbu::by_id(conn, &caller.user_id)?
        .ok_or_else(|| Error::Unauthorized("Your user no longer exists.".into()))?;
    create_token(conn, &u, name, None, now)
}

/// Revokes a token: the caller's own, or anyone's for admins.
pub fn delete_token(conn: &mut DbConn, caller: &Caller, id: &str, now: i64) -> Result<()> {
    let t = dbu::token_by_id(conn, id)?
        .filter(|t| caller.is_admin || t.user_id == caller.user_id)
        .ok_or_else(|| Error::not_found(format!("token {id}")))?;
    dbu::delete_token(conn, &t.id)?;
    dbu::audit(conn, now, &caller.username, "token.delete", &t.id, &t.name)
}
