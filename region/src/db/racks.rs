//! Rack controllers known to the region. Racks register themselves (the rack issue adds the
//! registration handshake); the region lists, shows and forgets them.

use diesel::prelude::*;

use super::schema::racks;
use super::{fmt_time, DbConn};
use crate::error::Result;
use region_api_types as api;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = racks)]
pub struct RackRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub last_seen: Option<i64>,
    pub version: Option<String>,
    pub interfaces: String,
    pub created_at: i64,
}

impl RackRow {
    /// A rack not heard from for `offline_after_ms` is shown offline whatever it last said.
    pub fn to_api(&self, now: i64, offline_after_ms: i64) -> api::Rack {
        let status = match self.last_seen {
            Some(t) if now - t > offline_after_ms => "offline".to_string(),
            _ => self.status.clone(),
        };
        api::Rack {
            id: self.id.clone(),
            name: self.name.clone(),
            status,
            last_seen: self.last_seen.map(fmt_time),
            version: self.version.clone(),
            interfaces: serde_json::from_str(&self.interfaces).unwrap_or_default(),
            created_at: fmt_time(self.created_at),
        }
    }
}

pub fn list(conn: &mut DbConn) -> Result<Vec<RackRow>> {
    Ok(racks::table
        .order(racks::name)
        .select(RackRow::as_select())
        .load(conn)?)
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<RackRow>> {
    Ok(racks::table
        .find(id)
        .select(RackRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(conn: &mut DbConn, r: &RackRow) -> Result<()> {
    diesel::insert_into(racks::table).values(r).execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool> {
    Ok(diesel::delete(racks::table.find(id)).execute(conn)? == 1)
}
