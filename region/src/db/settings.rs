//! Operator-changed settings (rows `setting:<name>` of the `settings` table).

use diesel::prelude::*;

use super::schema::settings;
use super::DbConn;
use crate::error::Result;

const PREFIX: &str = "setting:";

/// Every changed setting: (name, value).
pub fn changed(conn: &mut DbConn) -> Result<Vec<(String, String)>> {
    let rows: Vec<(String, String)> = settings::table
        .filter(settings::key.like(format!("{PREFIX}%")))
        .select((settings::key, settings::value))
        .order(settings::key)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(k, v)| (k[PREFIX.len()..].to_string(), v))
        .collect())
}

/// Sets (or replaces) a setting.
pub fn put(conn: &mut DbConn, name: &str, value: &str) -> Result<()> {
    let key = format!("{PREFIX}{name}");
    conn.transaction::<_, crate::error::Error, _>(|c| {
        diesel::delete(settings::table.find(&key)).execute(c)?;
        diesel::insert_into(settings::table)
            .values((settings::key.eq(&key), settings::value.eq(value)))
            .execute(c)?;
        Ok(())
    })
}

/// Back to the configuration file's value.
pub fn reset(conn: &mut DbConn, name: &str) -> Result<()> {
    diesel::delete(settings::table.find(format!("{PREFIX}{name}"))).execute(conn)?;
    Ok(())
}
