//! Power jobs: queued by the region, taken by racks, finished with the BMC's answer.

use diesel::prelude::*;

use super::schema::{machines, power_jobs};
use super::{fmt_time, DbConn};
use crate::error::Result;
use region_api_types as api;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = power_jobs)]
pub struct JobRow {
    pub id: String,
    pub system_id: String,
    pub action: String,
    pub boot_device: Option<String>,
    pub purpose: String,
    pub status: String,
    pub rack_id: Option<String>,
    pub taken_by: Option<String>,
    pub power_state: Option<String>,
    pub message: Option<String>,
    pub requested_by: Option<String>,
    pub created_at: i64,
    pub taken_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl JobRow {
    pub fn action(&self) -> api::PowerAction {
        api::PowerAction::parse(&self.action).unwrap_or(api::PowerAction::Query)
    }

    pub fn to_api(&self, rack_name: Option<String>) -> api::PowerJob {
        api::PowerJob {
            id: self.id.clone(),
            system_id: self.system_id.clone(),
            action: self.action(),
            boot_device: self.boot_device.as_deref().and_then(api::BootDevice::parse),
            status: api::PowerJobStatus::parse(&self.status),
            power_state: self.power_state.as_deref().map(api::PowerState::parse),
            message: self.message.clone(),
            rack: rack_name,
            created_at: fmt_time(self.created_at),
            finished_at: self.finished_at.map(fmt_time),
        }
    }
}

pub fn insert(conn: &mut DbConn, j: &JobRow) -> Result<()> {
    diesel::insert_into(power_jobs::table)
        .values(j)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<JobRow>> {
    Ok(power_jobs::table
        .find(id)
        .select(JobRow::as_select())
        .first(conn)
        .optional()?)
}

/// Pending jobs a rack may take, oldest first, at most one per machine: a machine's next job
/// waits until the one before it has finished, so its jobs run in the order they were decided (a
/// commissioning's power-off never overtakes the deployment's power-cycle queued after it).
pub fn pending_for(conn: &mut DbConn, rack_id: &str, limit: i64) -> Result<Vec<JobRow>> {
    let candidates: Vec<JobRow> = power_jobs::table
        .filter(power_jobs::status.eq("pending"))
        .filter(
            power_jobs::rack_id
                .is_null()
                .or(power_jobs::rack_id.eq(rack_id)),
        )
        .order((power_jobs::created_at.asc(), power_jobs::id.asc()))
        .limit(limit.saturating_mul(4).clamp(1, 1024))
        .select(JobRow::as_select())
        .load(conn)?;
    let ids: Vec<&str> = candidates.iter().map(|j| j.system_id.as_str()).collect();
    // Every open job of those machines, whichever rack it names, oldest first.
    let open: Vec<(String, String, String)> = power_jobs::table
        .filter(power_jobs::system_id.eq_any(&ids))
        .filter(power_jobs::status.eq_any(["pending", "running"]))
        .order((power_jobs::created_at.asc(), power_jobs::id.asc()))
        .select((power_jobs::system_id, power_jobs::id, power_jobs::status))
        .load(conn)?;
    let mut first = std::collections::HashMap::new();
    for (sid, id, status) in open {
        first.entry(sid).or_insert((id, status));
    }
    Ok(candidates
        .into_iter()
        .filter(|j| {
            first
                .get(&j.system_id)
                .is_some_and(|(id, status)| *id == j.id && status == "pending")
        })
        .take(usize::try_from(limit).unwrap_or(0))
        .collect())
}

/// Marks a pending job taken by `rack_id`; false if another rack took it first.
pub fn take(conn: &mut DbConn, id: &str, rack_id: &str, now: i64) -> Result<bool> {
    let n = diesel::update(
        power_jobs::table
            .filter(power_jobs::id.eq(id))
            .filter(power_jobs::status.eq("pending")),
    )
    .set((
        power_jobs::status.eq("running"),
        power_jobs::taken_by.eq(rack_id),
        power_jobs::taken_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Gives a pending job no rack was named for to `rack_id`.
pub fn assign(conn: &mut DbConn, id: &str, rack_id: &str) -> Result<()> {
    diesel::update(
        power_jobs::table
            .filter(power_jobs::id.eq(id))
            .filter(power_jobs::status.eq("pending"))
            .filter(power_jobs::rack_id.is_null()),
    )
    .set(power_jobs::rack_id.eq(Some(rack_id)))
    .execute(conn)?;
    Ok(())
}

/// Finishes a job (only from `from_status`); false if it was not in that status.
pub fn finish(
    conn: &mut DbConn,
    id: &str,
    from_status: &str,
    ok: bool,
    state: Option<&str>,
    message: &str,
    now: i64,
) -> Result<bool> {
    let n = diesel::update(
        power_jobs::table
            .filter(power_jobs::id.eq(id))
            .filter(power_jobs::status.eq(from_status)),
    )
    .set((
        power_jobs::status.eq(if ok { "done" } else { "failed" }),
        power_jobs::power_state.eq(state),
        power_jobs::message.eq(message),
        power_jobs::finished_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Jobs not finished since before `before` (pending or running).
pub fn stale(conn: &mut DbConn, before: i64, limit: i64) -> Result<Vec<JobRow>> {
    // Pending ones from when they were queued; running ones from when a rack took them.
    Ok(power_jobs::table
        .filter(
            power_jobs::status
                .eq("pending")
                .and(power_jobs::created_at.lt(before))
                .or(power_jobs::status
                    .eq("running")
                    .and(power_jobs::taken_at.lt(before))),
        )
        .limit(limit)
        .select(JobRow::as_select())
        .load(conn)?)
}

/// Whether the machine has a job waiting or running.
pub fn has_open_job(conn: &mut DbConn, system_id: &str) -> Result<bool> {
    let n: i64 = power_jobs::table
        .filter(power_jobs::system_id.eq(system_id))
        .filter(power_jobs::status.eq_any(["pending", "running"]))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Controllable machines whose power state is older than `before` and that have no open job.
pub fn due_for_poll(conn: &mut DbConn, before: i64, limit: i64) -> Result<Vec<String>> {
    let open = || {
        power_jobs::table
            .filter(power_jobs::status.eq_any(["pending", "running"]))
            .select(power_jobs::system_id)
    };
    // Never-checked machines first (NULLs sort differently on SQLite and PostgreSQL).
    let mut ids: Vec<String> = machines::table
        .filter(machines::power_type.ne("manual"))
        .filter(machines::power_state_at.is_null())
        .filter(machines::system_id.ne_all(open()))
        .limit(limit)
        .select(machines::system_id)
        .load(conn)?;
    let left = limit - i64::try_from(ids.len()).unwrap_or(limit);
    if left > 0 {
        ids.extend(
            machines::table
                .filter(machines::power_type.ne("manual"))
                .filter(machines::power_state_at.lt(before))
                .filter(machines::system_id.ne_all(open()))
                .order(machines::power_state_at.asc())
                .limit(left)
                .select(machines::system_id)
                .load::<String>(conn)?,
        );
    }
    Ok(ids)
}

/// Records a power state read from the BMC.
pub fn set_machine_state(conn: &mut DbConn, system_id: &str, state: &str, now: i64) -> Result<()> {
    crate::changes::machine_changed(system_id);
    diesel::update(machines::table.find(system_id))
        .set((
            machines::power_state.eq(state),
            machines::power_state_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes finished jobs older than `before` (the events keep what happened).
pub fn prune(conn: &mut DbConn, before: i64) -> Result<usize> {
    Ok(diesel::delete(
        power_jobs::table
            .filter(power_jobs::status.eq_any(["done", "failed"]))
            .filter(power_jobs::created_at.lt(before)),
    )
    .execute(conn)?)
}

/// Machines whose secret parameters sit unsealed in `power_parameters` (from before sealing).
pub fn machines_with_params(conn: &mut DbConn) -> Result<Vec<(String, String, String)>> {
    Ok(machines::table
        .filter(
            machines::power_parameters
                .like("%power_pass%")
                .or(machines::power_parameters.like("%power_token%")),
        )
        .select((
            machines::system_id,
            machines::power_parameters,
            machines::power_secrets,
        ))
        .load(conn)?)
}

pub fn set_params(conn: &mut DbConn, system_id: &str, public: &str, sealed: &str) -> Result<()> {
    crate::changes::machine_changed(system_id);
    diesel::update(machines::table.find(system_id))
        .set((
            machines::power_parameters.eq(public),
            machines::power_secrets.eq(sealed),
        ))
        .execute(conn)?;
    Ok(())
}
