//! Users and API tokens. Passwords are argon2 hashes; tokens are stored as sha256 of the secret
//! (tokens are 256-bit random, so a fast hash is enough and lets a request look its token up by hash).

use diesel::prelude::*;

use super::schema::{api_tokens, audit_log, users};
use super::{fmt_time, DbConn};
use crate::error::Result;
use region_api_types as api;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
}

impl UserRow {
    pub fn to_api(&self) -> api::User {
        api::User {
            id: self.id.clone(),
            username: self.username.clone(),
            is_admin: self.is_admin,
            created_at: fmt_time(self.created_at),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct TokenRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    pub prefix: String,
    pub is_session: bool,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// `read`, `operator` or `admin`: see [`TokenRow::scope_for`].
    pub scope: String,
}

impl TokenRow {
    /// What the token may do for a user who is (or is not) an administrator: its scope, never
    /// more than the user's. A scope this region does not know reads as `read`.
    pub fn scope_for(&self, user_is_admin: bool) -> api::TokenScope {
        api::TokenScope::parse(&self.scope)
            .unwrap_or(api::TokenScope::Read)
            .min(api::TokenScope::of_user(user_is_admin))
    }

    pub fn to_api(&self, username: &str, user_is_admin: bool) -> api::Token {
        api::Token {
            id: self.id.clone(),
            name: self.name.clone(),
            username: username.to_string(),
            prefix: self.prefix.clone(),
            scope: self.scope_for(user_is_admin),
            created_at: fmt_time(self.created_at),
            last_used_at: self.last_used_at.map(fmt_time),
            expires_at: self.expires_at.map(fmt_time),
        }
    }
}

pub fn insert_user(conn: &mut DbConn, u: &UserRow) -> Result<()> {
    diesel::insert_into(users::table).values(u).execute(conn)?;
    Ok(())
}

pub fn by_username(conn: &mut DbConn, name: &str) -> Result<Option<UserRow>> {
    Ok(users::table
        .filter(users::username.eq(name))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn by_id(conn: &mut DbConn, id: &str) -> Result<Option<UserRow>> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn list_users(conn: &mut DbConn) -> Result<Vec<UserRow>> {
    Ok(users::table
        .order(users::username)
        .select(UserRow::as_select())
        .load(conn)?)
}

pub fn delete_user(conn: &mut DbConn, id: &str) -> Result<bool> {
    crate::changes::everything_changed();
    diesel::delete(api_tokens::table.filter(api_tokens::user_id.eq(id))).execute(conn)?;
    diesel::update(super::schema::machines::table)
        .filter(super::schema::machines::owner_id.eq(id))
        .set(super::schema::machines::owner_id.eq(None::<String>))
        .execute(conn)?;
    Ok(diesel::delete(users::table.find(id)).execute(conn)? == 1)
}

pub fn count_admins(conn: &mut DbConn) -> Result<i64> {
    Ok(users::table
        .filter(users::is_admin.eq(true))
        .count()
        .get_result(conn)?)
}

pub fn insert_token(conn: &mut DbConn, t: &TokenRow) -> Result<()> {
    diesel::insert_into(api_tokens::table)
        .values(t)
        .execute(conn)?;
    Ok(())
}

/// The user a token hash belongs to, if the token exists and has not expired.
pub fn user_by_token_hash(
    conn: &mut DbConn,
    hash: &str,
    now: i64,
) -> Result<Option<(TokenRow, UserRow)>> {
    let found: Option<(TokenRow, UserRow)> = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(hash))
        .select((TokenRow::as_select(), UserRow::as_select()))
        .first(conn)
        .optional()?;
    Ok(found.filter(|(t, _)| t.expires_at.is_none_or(|e| e > now)))
}

/// Records use of a token, at most once a minute per token (keeps reads read-only under load).
pub fn touch_token(conn: &mut DbConn, id: &str, now: i64) -> Result<()> {
    diesel::update(
        api_tokens::table.filter(api_tokens::id.eq(id)).filter(
            api_tokens::last_used_at
                .is_null()
                .or(api_tokens::last_used_at.lt(now - 60_000)),
        ),
    )
    .set(api_tokens::last_used_at.eq(Some(now)))
    .execute(conn)?;
    Ok(())
}

/// API tokens (not UI sessions), with their owners' names and whether they are administrators;
/// all users' when `user_id` is None.
pub fn list_tokens(
    conn: &mut DbConn,
    user_id: Option<&str>,
) -> Result<Vec<(TokenRow, String, bool)>> {
    let mut q = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::is_session.eq(false))
        .into_boxed();
    if let Some(u) = user_id {
        q = q.filter(api_tokens::user_id.eq(u.to_string()));
    }
    Ok(q.order(api_tokens::created_at)
        .select((TokenRow::as_select(), users::username, users::is_admin))
        .load(conn)?)
}

pub fn token_by_id(conn: &mut DbConn, id: &str) -> Result<Option<TokenRow>> {
    Ok(api_tokens::table
        .find(id)
        .select(TokenRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn delete_token(conn: &mut DbConn, id: &str) -> Result<bool> {
    Ok(diesel::delete(api_tokens::table.find(id)).execute(conn)? == 1)
}

/// Removes tokens and UI sessions that expired before `now`; how many went.
pub fn prune_expired_tokens(conn: &mut DbConn, now: i64) -> Result<usize> {
    Ok(diesel::delete(api_tokens::table.filter(api_tokens::expires_at.lt(now))).execute(conn)?)
}

/// Removes audit entries older than `before`; how many went.
pub fn prune_audit(conn: &mut DbConn, before: i64) -> Result<usize> {
    Ok(diesel::delete(audit_log::table.filter(audit_log::created_at.lt(before))).execute(conn)?)
}

pub fn delete_token_by_hash(conn: &mut DbConn, hash: &str) -> Result<()> {
    diesel::delete(api_tokens::table.filter(api_tokens::token_hash.eq(hash))).execute(conn)?;
    Ok(())
}

/// Appends to the audit log: who did what to which thing.
pub fn audit(
    conn: &mut DbConn,
    now: i64,
    username: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::created_at.eq(now),
            audit_log::username.eq(username),
            audit_log::action.eq(action),
            audit_log::target.eq(target),
            audit_log::detail.eq(detail),
        ))
        .execute(conn)?;
    Ok(())
}

/// An audit entry: (time, username, action, target, detail).
pub type AuditRow = (i64, String, String, String, String);

/// The newest audit entries.
pub fn audit_entries(conn: &mut DbConn, limit: i64) -> Result<Vec<AuditRow>> {
    Ok(audit_log::table
        .order(audit_log::id.desc())
        .limit(limit)
        .select((
            audit_log::created_at,
            audit_log::username,
            audit_log::action,
            audit_log::target,
            audit_log::detail,
        ))
        .load(conn)?)
}
