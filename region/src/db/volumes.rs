//! Root-on-iSCSI volumes (`volumes`) and what racks say they can serve (`racks.iscsi`).

use diesel::prelude::*;

use super::schema::{racks, volumes};
use super::DbConn;
use crate::error::Result;

/// A row of `volumes`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = volumes)]
pub struct VolumeRow {
    pub id: String,
    pub system_id: String,
    pub deployment_id: String,
    pub rack_id: String,
    pub resource_id: String,
    pub initiator_iqn: String,
    /// Sealed `{chap_secret, seed_token}` (see `SecretBox`).
    pub secrets: String,
    pub requested_bytes: i64,
    pub state: String,
    pub keep_file: bool,
    pub portal: Option<String>,
    pub clone_method: Option<String>,
    pub size_bytes: Option<i64>,
    pub used_bytes: Option<i64>,
    pub message: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// States in which a rack still holds the volume's target (or is making it).
pub const LIVE: [&str; 2] = ["creating", "ready"];

pub fn insert(conn: &mut DbConn, row: &VolumeRow) -> Result<()> {
    crate::changes::machine_changed(&row.system_id);
    diesel::insert_into(volumes::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<VolumeRow>> {
    Ok(volumes::table
        .find(id)
        .select(VolumeRow::as_select())
        .first(conn)
        .optional()?)
}

/// The volume of a deployment.
pub fn of_deployment(conn: &mut DbConn, deployment_id: &str) -> Result<Option<VolumeRow>> {
    Ok(volumes::table
        .filter(volumes::deployment_id.eq(deployment_id))
        .select(VolumeRow::as_select())
        .first(conn)
        .optional()?)
}

/// The machine's newest volume.
pub fn latest_of(conn: &mut DbConn, system_id: &str) -> Result<Option<VolumeRow>> {
    Ok(volumes::table
        .filter(volumes::system_id.eq(system_id))
        .order((volumes::created_at.desc(), volumes::id.desc()))
        .select(VolumeRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every volume, newest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<VolumeRow>> {
    Ok(volumes::table
        .order((volumes::created_at.desc(), volumes::id.desc()))
        .select(VolumeRow::as_select())
        .load(conn)?)
}

/// What a rack must act on: its live volumes and those to remove.
pub fn for_rack(conn: &mut DbConn, rack_id: &str) -> Result<Vec<VolumeRow>> {
    Ok(volumes::table
        .filter(volumes::rack_id.eq(rack_id))
        .filter(volumes::state.eq_any(["creating", "ready", "removing"]))
        .order(volumes::created_at)
        .select(VolumeRow::as_select())
        .load(conn)?)
}

/// The machines whose live (or to be removed) volumes boot from boot resource `resource_id`.
pub fn live_of_resource(conn: &mut DbConn, resource_id: &str) -> Result<Vec<String>> {
    Ok(volumes::table
        .filter(volumes::resource_id.eq(resource_id))
        .filter(volumes::state.eq_any(["creating", "ready", "removing"]))
        .select(volumes::system_id)
        .load(conn)?)
}

/// Moves a volume from one of `from` to `to` (compare-and-set); false if it was in none of them.
pub fn set_state(
    conn: &mut DbConn,
    id: &str,
    from: &[&str],
    to: &str,
    message: &str,
    now: i64,
) -> Result<bool> {
    Ok(diesel::update(
        volumes::table
            .filter(volumes::id.eq(id))
            .filter(volumes::state.eq_any(from)),
    )
    .set((
        volumes::state.eq(to),
        volumes::message.eq(message),
        volumes::updated_at.eq(now),
    ))
    .execute(conn)?
        > 0)
}

/// What the rack measured of a volume.
pub fn set_facts(
    conn: &mut DbConn,
    id: &str,
    portal: Option<&str>,
    clone_method: Option<&str>,
    size_bytes: Option<i64>,
    used_bytes: Option<i64>,
    now: i64,
) -> Result<()> {
    let v = get(conn, id)?;
    let Some(v) = v else { return Ok(()) };
    diesel::update(volumes::table.find(id))
        .set((
            volumes::portal.eq(portal.map(str::to_string).or(v.portal)),
            volumes::clone_method.eq(clone_method.map(str::to_string).or(v.clone_method)),
            volumes::size_bytes.eq(size_bytes.or(v.size_bytes)),
            volumes::used_bytes.eq(used_bytes.or(v.used_bytes)),
            volumes::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Asks the rack to remove the machine's live volumes (keeping the files if `keep_file`);
/// returns their ids.
pub fn retire_of(
    conn: &mut DbConn,
    system_id: &str,
    keep_file: bool,
    now: i64,
) -> Result<Vec<String>> {
    let ids: Vec<String> = volumes::table
        .filter(volumes::system_id.eq(system_id))
        .filter(volumes::state.eq_any(["creating", "ready", "failed"]))
        .select(volumes::id)
        .load(conn)?;
    diesel::update(volumes::table.filter(volumes::id.eq_any(&ids)))
        .set((
            volumes::state.eq("removing"),
            volumes::keep_file.eq(keep_file),
            volumes::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(ids)
}

/// Records what a rack can serve for root on iSCSI (JSON, or None).
pub fn set_rack_iscsi(conn: &mut DbConn, rack_id: &str, iscsi: Option<&str>) -> Result<()> {
    diesel::update(racks::table.find(rack_id))
        .set(racks::iscsi.eq(iscsi))
        .execute(conn)?;
    Ok(())
}

/// A rack that reported a volume store.
pub struct IscsiRack {
    pub id: String,
    pub name: String,
    pub last_seen: Option<i64>,
    /// `api::RackIscsi` as JSON.
    pub iscsi: String,
    /// `[api::RackInterface]` as JSON.
    pub interfaces: String,
}

/// Every rack that reported a volume store, by name.
pub fn iscsi_racks(conn: &mut DbConn) -> Result<Vec<IscsiRack>> {
    type Row = (String, String, Option<i64>, Option<String>, String);
    let rows: Vec<Row> = racks::table
        .filter(racks::iscsi.is_not_null())
        .filter(racks::approval.eq("approved"))
        .order(racks::name)
        .select((
            racks::id,
            racks::name,
            racks::last_seen,
            racks::iscsi,
            racks::interfaces,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, name, last_seen, j, interfaces)| {
            j.map(|iscsi| IscsiRack {
                id,
                name,
                last_seen,
                iscsi,
                interfaces,
            })
        })
        .collect())
}

/// A rack's name.
pub fn rack_name(conn: &mut DbConn, rack_id: &str) -> Result<Option<String>> {
    Ok(racks::table
        .find(rack_id)
        .select(racks::name)
        .first(conn)
        .optional()?)
}
