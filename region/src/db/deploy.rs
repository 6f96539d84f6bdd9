//! SSH keys, deployments and erase requests.

use diesel::prelude::*;

use super::schema::{deployments, erasures, machines, ssh_keys};
use super::{fmt_time, DbConn};
use crate::error::Result;
use region_api_types as api;

/// A row of `ssh_keys`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ssh_keys)]
pub struct SshKeyRow {
    pub id: String,
    pub user_id: String,
    pub key_type: String,
    pub key: String,
    pub comment: String,
    pub fingerprint: String,
    pub created_at: i64,
}

pub fn insert_key(conn: &mut DbConn, row: &SshKeyRow) -> Result<()> {
    diesel::insert_into(ssh_keys::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A user's keys, oldest first.
pub fn keys_of(conn: &mut DbConn, user_id: &str) -> Result<Vec<SshKeyRow>> {
    Ok(ssh_keys::table
        .filter(ssh_keys::user_id.eq(user_id))
        .order((ssh_keys::created_at, ssh_keys::id))
        .select(SshKeyRow::as_select())
        .load(conn)?)
}

pub fn key_with_fingerprint(
    conn: &mut DbConn,
    user_id: &str,
    fingerprint: &str,
) -> Result<Option<SshKeyRow>> {
    Ok(ssh_keys::table
        .filter(ssh_keys::user_id.eq(user_id))
        .filter(ssh_keys::fingerprint.eq(fingerprint))
        .select(SshKeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// Deletes one of the user's keys; false if the user has no such key.
pub fn delete_key(conn: &mut DbConn, user_id: &str, id: &str) -> Result<bool> {
    Ok(diesel::delete(
        ssh_keys::table
            .filter(ssh_keys::user_id.eq(user_id))
            .filter(ssh_keys::id.eq(id)),
    )
    .execute(conn)?
        > 0)
}

/// A row of `deployments`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = deployments)]
pub struct DeploymentRow {
    pub id: String,
    pub system_id: String,
    pub instance_id: String,
    pub os: String,
    pub release: String,
    pub resource_id: String,
    pub target: String,
    pub storage_layout: String,
    pub boot_disk: String,
    pub boot_disk_serial: String,
    /// Sealed (see `SecretBox`), "" when none.
    pub user_data: String,
    /// JSON list of public key lines.
    pub ssh_keys: String,
    pub state: String,
    pub esp_uuid: Option<String>,
    pub root_uuid: Option<String>,
    pub installer_output: String,
    pub created_at: i64,
    pub installed_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The rack's proxy goes into the deployed system's apt settings.
    pub proxy: bool,
}

impl DeploymentRow {
    pub fn to_api(&self) -> api::Deployment {
        api::Deployment {
            id: self.id.clone(),
            instance_id: self.instance_id.clone(),
            os: self.os.clone(),
            release: self.release.clone(),
            target: api::DeployTarget::parse(&self.target).unwrap_or_default(),
            storage_layout: if self.storage_layout == "lvm" {
                api::StorageLayout::Lvm
            } else {
                api::StorageLayout::Flat
            },
            boot_disk: self.boot_disk.clone(),
            state: self.state.clone(),
            created_at: fmt_time(self.created_at),
            installed_at: self.installed_at.map(fmt_time),
            finished_at: self.finished_at.map(fmt_time),
            has_user_data: !self.user_data.is_empty(),
            proxy: self.proxy,
        }
    }
}

pub fn insert_deployment(conn: &mut DbConn, row: &DeploymentRow) -> Result<()> {
    crate::changes::machine_changed(&row.system_id);
    diesel::insert_into(deployments::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The machine's newest deployment.
pub fn latest(conn: &mut DbConn, system_id: &str) -> Result<Option<DeploymentRow>> {
    Ok(deployments::table
        .filter(deployments::system_id.eq(system_id))
        .order((deployments::created_at.desc(), deployments::id.desc()))
        .select(DeploymentRow::as_select())
        .first(conn)
        .optional()?)
}

/// What racks need of a live deployment (not its user-data or installer output).
#[derive(Debug, Clone, Queryable)]
pub struct LiveDeployment {
    pub system_id: String,
    pub target: String,
    pub state: String,
    pub esp_uuid: Option<String>,
}

/// Every machine's newest deployment that is still live (running, installed or deployed).
pub fn live(conn: &mut DbConn) -> Result<Vec<LiveDeployment>> {
    let rows: Vec<LiveDeployment> = deployments::table
        .filter(deployments::state.eq_any(["running", "installed", "deployed"]))
        .order((
            deployments::system_id,
            deployments::created_at.desc(),
            deployments::id.desc(),
        ))
        .select((
            deployments::system_id,
            deployments::target,
            deployments::state,
            deployments::esp_uuid,
        ))
        .load(conn)?;
    let mut out: Vec<LiveDeployment> = Vec::with_capacity(rows.len());
    for r in rows {
        if out
            .last()
            .map(|l| l.system_id != r.system_id)
            .unwrap_or(true)
        {
            out.push(r);
        }
    }
    Ok(out)
}

/// Moves a deployment from one state to another (compare-and-set on the state).
#[allow(clippy::too_many_arguments)]
pub fn set_state(
    conn: &mut DbConn,
    id: &str,
    from: &[&str],
    to: &str,
    esp_uuid: Option<&str>,
    root_uuid: Option<&str>,
    output: Option<&str>,
    now: i64,
) -> Result<bool> {
    let target = deployments::table
        .filter(deployments::id.eq(id))
        .filter(deployments::state.eq_any(from));
    let n = match to {
        "installed" => diesel::update(target)
            .set((
                deployments::state.eq(to),
                deployments::esp_uuid.eq(esp_uuid),
                deployments::root_uuid.eq(root_uuid),
                deployments::installed_at.eq(Some(now)),
            ))
            .execute(conn)?,
        _ => diesel::update(target)
            .set((
                deployments::state.eq(to),
                deployments::finished_at.eq(Some(now)),
            ))
            .execute(conn)?,
    };
    if let (true, Some(out)) = (n > 0, output) {
        diesel::update(deployments::table.find(id))
            .set(deployments::installer_output.eq(out))
            .execute(conn)?;
    }
    Ok(n > 0)
}

/// Ends every live deployment of a machine (release, a new deployment).
pub fn end_all(conn: &mut DbConn, system_id: &str, state: &str, now: i64) -> Result<usize> {
    crate::changes::machine_changed(system_id);
    Ok(diesel::update(
        deployments::table
            .filter(deployments::system_id.eq(system_id))
            .filter(deployments::state.eq_any(["running", "installed", "deployed"])),
    )
    .set((
        deployments::state.eq(state),
        deployments::finished_at.eq(Some(now)),
    ))
    .execute(conn)?)
}

/// Marks the machine changed (racks re-read their snapshot; its version moves on).
pub fn touch_machine(conn: &mut DbConn, system_id: &str, now: i64) -> Result<()> {
    crate::changes::machine_changed(system_id);
    diesel::update(machines::table.find(system_id))
        .set((
            machines::updated_at.eq(now),
            machines::version.eq(machines::version + 1),
        ))
        .execute(conn)?;
    Ok(())
}

/// A row of `erasures`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = erasures)]
pub struct ErasureRow {
    pub system_id: String,
    pub mode: String,
    pub requested_by: String,
    pub output: String,
    pub created_at: i64,
}

pub fn replace_erasure(conn: &mut DbConn, row: &ErasureRow) -> Result<()> {
    crate::changes::machine_changed(&row.system_id);
    diesel::delete(erasures::table.find(&row.system_id)).execute(conn)?;
    diesel::insert_into(erasures::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn erasure(conn: &mut DbConn, system_id: &str) -> Result<Option<ErasureRow>> {
    Ok(erasures::table
        .find(system_id)
        .select(ErasureRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn set_erasure_output(conn: &mut DbConn, system_id: &str, output: &str) -> Result<()> {
    crate::changes::machine_changed(system_id);
    diesel::update(erasures::table.find(system_id))
        .set(erasures::output.eq(output))
        .execute(conn)?;
    Ok(())
}
