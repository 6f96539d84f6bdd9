//! Pods and pod jobs.

use diesel::prelude::*;

use super::schema::{machines, pod_jobs, pods};
use super::DbConn;
use crate::error::Result;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = pods)]
#[diesel(treat_none_as_null = true)]
pub struct PodRow {
    pub id: String,
    pub name: String,
    pub pod_type: String,
    pub power_address: String,
    pub power_secrets: String,
    pub cpu_over_commit_ratio: f64,
    pub memory_over_commit_ratio: f64,
    pub default_storage_pool: Option<String>,
    pub default_network: Option<String>,
    /// JSON list.
    pub tags: String,
    pub zone: String,
    pub pool: String,
    pub state: String,
    pub message: Option<String>,
    /// JSON `PodDiscovery` of the last discovery.
    pub discovered: Option<String>,
    pub rack_id: Option<String>,
    pub refreshed_at: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl PodRow {
    pub fn tags(&self) -> Vec<String> {
        serde_json::from_str(&self.tags).unwrap_or_default()
    }
    pub fn discovery(&self) -> Option<region_api_types::PodDiscovery> {
        self.discovered
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pod_jobs)]
pub struct PodJobRow {
    pub id: String,
    pub pod_id: String,
    pub kind: String,
    pub system_id: Option<String>,
    /// JSON `VmSpec` (compose, decompose).
    pub spec: Option<String>,
    pub status: String,
    pub rack_id: Option<String>,
    pub taken_by: Option<String>,
    pub message: Option<String>,
    pub requested_by: Option<String>,
    pub created_at: i64,
    pub taken_at: Option<i64>,
    pub finished_at: Option<i64>,
}

pub fn insert(conn: &mut DbConn, p: &PodRow) -> Result<()> {
    diesel::insert_into(pods::table).values(p).execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<PodRow>> {
    Ok(pods::table
        .find(id)
        .select(PodRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn by_name(conn: &mut DbConn, name: &str) -> Result<Option<PodRow>> {
    Ok(pods::table
        .filter(pods::name.eq(name))
        .select(PodRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConn) -> Result<Vec<PodRow>> {
    Ok(pods::table
        .order(pods::name.asc())
        .select(PodRow::as_select())
        .load(conn)?)
}

/// Writes the row if its version is still `version` (and bumps it); false if another writer won.
pub fn update_if_version(conn: &mut DbConn, p: &PodRow, version: i64) -> Result<bool> {
    let mut next = p.clone();
    next.version = version + 1;
    let n = diesel::update(
        pods::table
            .filter(pods::id.eq(&p.id))
            .filter(pods::version.eq(version)),
    )
    .set(&next)
    .execute(conn)?;
    Ok(n == 1)
}

pub fn delete(conn: &mut DbConn, id: &str) -> Result<()> {
    diesel::delete(pods::table.find(id)).execute(conn)?;
    diesel::delete(
        pod_jobs::table
            .filter(pod_jobs::pod_id.eq(id))
            .filter(pod_jobs::status.eq("pending")),
    )
    .execute(conn)?;
    Ok(())
}

/// (system_id, hostname, status) of the pod's machines.
pub fn machines_of(conn: &mut DbConn, pod_id: &str) -> Result<Vec<(String, String, String)>> {
    Ok(machines::table
        .filter(machines::pod_id.eq(pod_id))
        .order(machines::hostname.asc())
        .select((machines::system_id, machines::hostname, machines::status))
        .load(conn)?)
}

pub fn insert_job(conn: &mut DbConn, j: &PodJobRow) -> Result<()> {
    diesel::insert_into(pod_jobs::table)
        .values(j)
        .execute(conn)?;
    Ok(())
}

pub fn job(conn: &mut DbConn, id: &str) -> Result<Option<PodJobRow>> {
    Ok(pod_jobs::table
        .find(id)
        .select(PodJobRow::as_select())
        .first(conn)
        .optional()?)
}

/// Open (pending or running) jobs of one pod.
pub fn open_jobs(conn: &mut DbConn, pod_id: &str) -> Result<Vec<PodJobRow>> {
    Ok(pod_jobs::table
        .filter(pod_jobs::pod_id.eq(pod_id))
        .filter(pod_jobs::status.eq_any(["pending", "running"]))
        .order(pod_jobs::created_at.asc())
        .select(PodJobRow::as_select())
        .load(conn)?)
}

/// Pending jobs a rack may take, oldest first.
pub fn pending_for(conn: &mut DbConn, rack_id: &str, limit: i64) -> Result<Vec<PodJobRow>> {
    Ok(pod_jobs::table
        .filter(pod_jobs::status.eq("pending"))
        .filter(
            pod_jobs::rack_id
                .is_null()
                .or(pod_jobs::rack_id.eq(rack_id)),
        )
        .order((pod_jobs::created_at.asc(), pod_jobs::id.asc()))
        .limit(limit)
        .select(PodJobRow::as_select())
        .load(conn)?)
}

pub fn take(conn: &mut DbConn, id: &str, rack_id: &str, now: i64) -> Result<bool> {
    let n = diesel::update(
        pod_jobs::table
            .filter(pod_jobs::id.eq(id))
            .filter(pod_jobs::status.eq("pending")),
    )
    .set((
        pod_jobs::status.eq("running"),
        pod_jobs::taken_by.eq(rack_id),
        pod_jobs::taken_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Finishes a job that is `from`; false if it was not.
pub fn finish(
    conn: &mut DbConn,
    id: &str,
    from: &str,
    ok: bool,
    message: &str,
    now: i64,
) -> Result<bool> {
    let n = diesel::update(
        pod_jobs::table
            .filter(pod_jobs::id.eq(id))
            .filter(pod_jobs::status.eq(from)),
    )
    .set((
        pod_jobs::status.eq(if ok { "done" } else { "failed" }),
        pod_jobs::message.eq(message),
        pod_jobs::finished_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Jobs not finished since before `before`.
pub fn stale(conn: &mut DbConn, before: i64) -> Result<Vec<PodJobRow>> {
    Ok(pod_jobs::table
        .filter(
            pod_jobs::status
                .eq("pending")
                .and(pod_jobs::created_at.lt(before))
                .or(pod_jobs::status
                    .eq("running")
                    .and(pod_jobs::taken_at.lt(before))),
        )
        .limit(200)
        .select(PodJobRow::as_select())
        .load(conn)?)
}

/// Pods whose last discovery is older than `before`, with no job open.
pub fn due_for_refresh(conn: &mut DbConn, before: i64) -> Result<Vec<String>> {
    let open = pod_jobs::table
        .filter(pod_jobs::status.eq_any(["pending", "running"]))
        .select(pod_jobs::pod_id);
    Ok(pods::table
        .filter(
            pods::refreshed_at
                .is_null()
                .or(pods::refreshed_at.lt(before)),
        )
        .filter(pods::id.ne_all(open))
        .select(pods::id)
        .load(conn)?)
}

/// Deletes finished jobs older than `before`.
pub fn prune(conn: &mut DbConn, before: i64) -> Result<usize> {
    Ok(diesel::delete(
        pod_jobs::table
            .filter(pod_jobs::status.eq_any(["done", "failed"]))
            .filter(pod_jobs::created_at.lt(before)),
    )
    .execute(conn)?)
}

/// Points a pod's machines at its (new) address and sealed secrets.
pub fn set_machines_power(
    conn: &mut DbConn,
    pod_id: &str,
    rows: &[(String, String, String)],
) -> Result<()> {
    for (system_id, public, sealed) in rows {
        crate::changes::machine_changed(system_id);
        diesel::update(
            machines::table
                .filter(machines::system_id.eq(system_id))
                .filter(machines::pod_id.eq(pod_id)),
        )
        .set((
            machines::power_parameters.eq(public),
            machines::power_secrets.eq(sealed),
            machines::version.eq(machines::version + 1),
        ))
        .execute(conn)?;
    }
    Ok(())
}

/// The latest job about one machine.
pub fn last_job_of(conn: &mut DbConn, system_id: &str) -> Result<Option<PodJobRow>> {
    Ok(pod_jobs::table
        .filter(pod_jobs::system_id.eq(system_id))
        .order(pod_jobs::created_at.desc())
        .select(PodJobRow::as_select())
        .first(conn)
        .optional()?)
}
