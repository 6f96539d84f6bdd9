//! Events: what happened, usually to one machine. The machine's event list is its history (and,
//! once racks report boots, its boot trace).

use diesel::prelude::*;

use super::schema::events;
use super::{fmt_time, DbConn};
use crate::error::Result;
use region_api_types as api;

/// A new event.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = events)]
pub struct NewEvent<'a> {
    pub system_id: Option<&'a str>,
    pub created_at: i64,
    pub level: &'a str,
    pub event_type: &'a str,
    pub description: &'a str,
    pub username: Option<&'a str>,
    /// For events about a MAC no machine has (yet): attached when a machine with it is enlisted.
    pub mac: Option<&'a str>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
struct EventRow {
    id: i64,
    system_id: Option<String>,
    created_at: i64,
    level: String,
    event_type: String,
    description: String,
    username: Option<String>,
}

pub fn insert(conn: &mut DbConn, e: &NewEvent<'_>) -> Result<()> {
    if let Some(id) = e.system_id {
        crate::changes::machine_changed(id);
    }
    diesel::insert_into(events::table).values(e).execute(conn)?;
    Ok(())
}

/// Gives the machine-less events of `mac` to the machine just enlisted with it.
pub fn attach_mac(conn: &mut DbConn, mac: &str, system_id: &str) -> Result<usize> {
    crate::changes::machine_changed(system_id);
    Ok(diesel::update(
        events::table
            .filter(events::system_id.is_null())
            .filter(events::mac.eq(mac)),
    )
    .set(events::system_id.eq(system_id))
    .execute(conn)?)
}

/// Events, newest first, optionally of one machine, optionally before an id (for paging back).
pub fn list(
    conn: &mut DbConn,
    system_id: Option<&str>,
    level: Option<&str>,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<api::Event>> {
    let mut q = events::table.into_boxed();
    if let Some(s) = system_id {
        q = q.filter(events::system_id.eq(s.to_string()));
    }
    if let Some(l) = level {
        q = q.filter(events::level.eq(l.to_string()));
    }
    if let Some(b) = before_id {
        q = q.filter(events::id.lt(b));
    }
    let rows: Vec<EventRow> = q
        .order(events::id.desc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| api::Event {
            id: r.id,
            system_id: r.system_id,
            created_at: fmt_time(r.created_at),
            level: api::EventLevel::parse(&r.level).unwrap_or(api::EventLevel::Info),
            event_type: r.event_type,
            description: r.description,
            username: r.username,
        })
        .collect())
}

/// Removes events older than `before`; how many went.
pub fn prune(conn: &mut DbConn, before: i64) -> Result<usize> {
    Ok(diesel::delete(events::table.filter(events::created_at.lt(before))).execute(conn)?)
}
