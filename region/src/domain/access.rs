//! Who may see which machine, the administrators' gate, and a machine's history: what every
//! domain module needs, below all of them (machines, power, deploy, pods, ... use it; it uses
//! nothing of theirs).

use region_api_types as api;

use super::Caller;
use crate::db::events::NewEvent;
use crate::db::machines::{self as dbm, MachineRow};
use crate::db::{self, DbConn};
use crate::error::{Error, Result};

pub(super) fn not_found(system_id: &str) -> Error {
    Error::not_found(format!("machine {system_id}"))
}

/// Loads a machine the caller may see (admins see all; users see free machines and their own).
pub(super) fn visible_row(
    conn: &mut DbConn,
    caller: &Caller,
    system_id: &str,
) -> Result<MachineRow> {
    let row = dbm::get_row(conn, system_id)?.ok_or_else(|| not_found(system_id))?;
    if caller.is_admin
        || row.owner_id.is_none()
        || row.owner_id.as_deref() == Some(caller.user_id.as_str())
    {
        Ok(row)
    } else {
        Err(not_found(system_id))
    }
}

pub fn require_admin(caller: &Caller, what: &str) -> Result<()> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "Only administrators may {what}; ask one, or use an administrator's token."
        )))
    }
}

/// Records an event of one machine.
pub(super) fn event(
    conn: &mut DbConn,
    now: i64,
    system_id: &str,
    level: api::EventLevel,
    event_type: &str,
    description: &str,
    username: Option<&str>,
) -> Result<()> {
    db::events::insert(
        conn,
        &NewEvent {
            system_id: Some(system_id),
            created_at: now,
            level: level.as_str(),
            event_type,
            description,
            username,
            mac: None,
        },
    )
}

/// An event of one machine that no person caused (the machine, a rack, Kiln itself).
pub(super) fn system_event(
    conn: &mut DbConn,
    now: i64,
    system_id: &str,
    level: api::EventLevel,
    event_type: &str,
    description: &str,
) -> Result<()> {
    event(conn, now, system_id, level, event_type, description, None)
}
