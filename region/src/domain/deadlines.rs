//! Expiry of in-progress deadlines (commissioning, deploying, ... that never finished).

use diesel::Connection;
use region_api_types::{self as api, MachineStatus};

use super::access::event;
use super::lifecycle;
use crate::db::machines::{self as dbm, StatusChange};
use crate::db::DbConn;
use crate::error::{Error, Result};

/// Moves machines whose in-progress deadline has passed to the matching failed status, with an
/// error event. Safe to run from several regions at once (compare-and-set). Returns how many moved.
pub fn expire_deadlines(conn: &mut DbConn, now: i64) -> Result<usize> {
    let mut moved = 0;
    for (system_id, status, version) in dbm::expired(conn, now, 500)? {
        let Some(from) = MachineStatus::parse(&status) else {
            continue;
        };
        let Some(to) = lifecycle::on_deadline(from) else {
            // Not in progress any more but a deadline is left over: clear it.
            conn.transaction::<_, Error, _>(|c| {
                dbm::change_status(
                    c,
                    &system_id,
                    version,
                    &StatusChange {
                        status: from,
                        previous_status: from,
                        deadline: None,
                        owner_id: None,
                        now,
                    },
                )
            })?;
            continue;
        };
        let ok = conn.transaction::<_, Error, _>(|c| {
            if !dbm::change_status(
                c,
                &system_id,
                version,
                &StatusChange {
                    status: to,
                    previous_status: from,
                    deadline: None,
                    owner_id: None,
                    now,
                },
            )? {
                return Ok(false);
            }
            event(
                c,
                now,
                &system_id,
                api::EventLevel::Error,
                "deadline_expired",
                &format!(
                    "{} did not complete in time; the machine is now {}.",
                    from.label(),
                    to.label()
                ),
                None,
            )?;
            Ok(true)
        })?;
        if ok {
            tracing::warn!(machine.id = %system_id, "machine {system_id}: {from} deadline passed, now {to}");
            moved += 1;
        }
    }
    Ok(moved)
}
