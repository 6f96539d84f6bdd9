//! Boot tokens (a machine's per-boot credential), operator commissioning scripts and script results.

use diesel::prelude::*;

use super::schema::{boot_claims, boot_tokens, machines, script_results, scripts};
use super::{fmt_time, DbConn};
use crate::error::Result;
use region_api_types as api;

/// A row of `boot_tokens`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = boot_tokens)]
pub struct BootTokenRow {
    pub token_hash: String,
    pub system_id: String,
    pub boot_id: String,
    pub purpose: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Makes `row` the machine's only boot token: a new boot invalidates the last one's credential.
pub fn replace_boot_token(conn: &mut DbConn, row: &BootTokenRow) -> Result<()> {
    diesel::delete(boot_tokens::table.filter(boot_tokens::system_id.eq(&row.system_id)))
        .execute(conn)?;
    diesel::insert_into(boot_tokens::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Removes boot tokens and claim codes that expired before `now`; how many went.
pub fn prune_boot_tokens(conn: &mut DbConn, now: i64) -> Result<usize> {
    let claims =
        diesel::delete(boot_claims::table.filter(boot_claims::expires_at.lt(now))).execute(conn)?;
    Ok(claims
        + diesel::delete(boot_tokens::table.filter(boot_tokens::expires_at.lt(now)))
            .execute(conn)?)
}

/// Deletes every credential of a machine, claim codes included (release, a new deployment).
pub fn delete_boot_tokens(conn: &mut DbConn, system_id: &str) -> Result<()> {
    diesel::delete(boot_tokens::table.filter(boot_tokens::system_id.eq(system_id)))
        .execute(conn)?;
    diesel::delete(boot_claims::table.filter(boot_claims::system_id.eq(system_id)))
        .execute(conn)?;
    Ok(())
}

/// A row of `boot_claims`: a one-time code the machine exchanges for its boot token.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = boot_claims)]
pub struct BootClaimRow {
    pub claim_hash: String,
    pub system_id: String,
    pub purpose: String,
    pub token_ttl_ms: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Makes `row` the machine's only outstanding claim code (the last boot's script is void).
pub fn replace_boot_claim(conn: &mut DbConn, row: &BootClaimRow) -> Result<()> {
    diesel::delete(boot_claims::table.filter(boot_claims::system_id.eq(&row.system_id)))
        .execute(conn)?;
    diesel::insert_into(boot_claims::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The unexpired claim with this hash.
pub fn boot_claim(conn: &mut DbConn, hash: &str, now: i64) -> Result<Option<BootClaimRow>> {
    Ok(boot_claims::table
        .find(hash)
        .filter(boot_claims::expires_at.gt(now))
        .select(BootClaimRow::as_select())
        .first(conn)
        .optional()?)
}

/// Uses up a claim: whether this call removed it (of two exchanges racing for one code, only
/// the one whose delete removed the row wins).
pub fn consume_boot_claim(conn: &mut DbConn, hash: &str) -> Result<bool> {
    Ok(diesel::delete(boot_claims::table.find(hash)).execute(conn)? == 1)
}

/// The boot token with this hash, if it has not expired.
pub fn boot_token(conn: &mut DbConn, hash: &str, now: i64) -> Result<Option<BootTokenRow>> {
    Ok(boot_tokens::table
        .find(hash)
        .filter(boot_tokens::expires_at.gt(now))
        .select(BootTokenRow::as_select())
        .first(conn)
        .optional()?)
}

/// A row of `scripts`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = scripts)]
pub struct ScriptRow {
    pub name: String,
    pub description: String,
    pub content: String,
    pub timeout_secs: i32,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ScriptRow {
    pub fn to_api(&self) -> api::Script {
        api::Script {
            name: self.name.clone(),
            description: self.description.clone(),
            timeout_secs: self.timeout_secs,
            builtin: false,
            content: self.content.clone(),
            created_at: Some(fmt_time(self.created_at)),
            updated_at: Some(fmt_time(self.updated_at)),
        }
    }
}

/// Operator scripts by name.
pub fn list_scripts(conn: &mut DbConn) -> Result<Vec<ScriptRow>> {
    Ok(scripts::table
        .order(scripts::name)
        .select(ScriptRow::as_select())
        .load(conn)?)
}

pub fn get_script(conn: &mut DbConn, name: &str) -> Result<Option<ScriptRow>> {
    Ok(scripts::table
        .find(name)
        .select(ScriptRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert_script(conn: &mut DbConn, row: &ScriptRow) -> Result<()> {
    diesel::insert_into(scripts::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn update_script(conn: &mut DbConn, row: &ScriptRow) -> Result<bool> {
    Ok(diesel::update(scripts::table.find(&row.name))
        .set((
            scripts::description.eq(&row.description),
            scripts::content.eq(&row.content),
            scripts::timeout_secs.eq(row.timeout_secs),
            scripts::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?
        == 1)
}

pub fn delete_script(conn: &mut DbConn, name: &str) -> Result<bool> {
    Ok(diesel::delete(scripts::table.find(name)).execute(conn)? == 1)
}

/// A row of `script_results`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = script_results)]
pub struct ResultRow {
    pub id: i64,
    pub system_id: String,
    pub boot_id: String,
    pub name: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub output: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

impl ResultRow {
    pub fn to_api(&self, with_output: bool) -> api::ScriptResult {
        api::ScriptResult {
            name: self.name.clone(),
            boot_id: self.boot_id.clone(),
            status: self.status.clone(),
            exit_code: self.exit_code,
            started_at: fmt_time(self.started_at),
            finished_at: self.finished_at.map(fmt_time),
            output: with_output.then(|| self.output.clone()),
        }
    }
}

/// Records that a script started (again, if the runner retried: the row is reset).
pub fn start_result(
    conn: &mut DbConn,
    system_id: &str,
    boot_id: &str,
    name: &str,
    now: i64,
) -> Result<()> {
    crate::changes::machine_changed(system_id);
    diesel::delete(
        script_results::table
            .filter(script_results::system_id.eq(system_id))
            .filter(script_results::boot_id.eq(boot_id))
            .filter(script_results::name.eq(name)),
    )
    .execute(conn)?;
    diesel::insert_into(script_results::table)
        .values((
            script_results::system_id.eq(system_id),
            script_results::boot_id.eq(boot_id),
            script_results::name.eq(name),
            script_results::status.eq("running"),
            script_results::output.eq(""),
            script_results::started_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a script's end; creates the row if its start was never reported.
#[allow(clippy::too_many_arguments)]
pub fn finish_result(
    conn: &mut DbConn,
    system_id: &str,
    boot_id: &str,
    name: &str,
    status: &str,
    exit_code: i32,
    output: &str,
    started_at: i64,
    now: i64,
) -> Result<()> {
    crate::changes::machine_changed(system_id);
    let updated = diesel::update(
        script_results::table
            .filter(script_results::system_id.eq(system_id))
            .filter(script_results::boot_id.eq(boot_id))
            .filter(script_results::name.eq(name)),
    )
    .set((
        script_results::status.eq(status),
        script_results::exit_code.eq(Some(exit_code)),
        script_results::output.eq(output),
        script_results::finished_at.eq(Some(now)),
    ))
    .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(script_results::table)
            .values((
                script_results::system_id.eq(system_id),
                script_results::boot_id.eq(boot_id),
                script_results::name.eq(name),
                script_results::status.eq(status),
                script_results::exit_code.eq(Some(exit_code)),
                script_results::output.eq(output),
                script_results::started_at.eq(started_at),
                script_results::finished_at.eq(Some(now)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Results of one boot, in the order the scripts started.
pub fn results_of_boot(
    conn: &mut DbConn,
    system_id: &str,
    boot_id: &str,
) -> Result<Vec<ResultRow>> {
    Ok(script_results::table
        .filter(script_results::system_id.eq(system_id))
        .filter(script_results::boot_id.eq(boot_id))
        .order(script_results::id)
        .select(ResultRow::as_select())
        .load(conn)?)
}

/// The boot that most recently ran scripts on a machine.
pub fn latest_boot_with_results(conn: &mut DbConn, system_id: &str) -> Result<Option<String>> {
    Ok(script_results::table
        .filter(script_results::system_id.eq(system_id))
        .order(script_results::id.desc())
        .select(script_results::boot_id)
        .first(conn)
        .optional()?)
}

/// Stores the inventory commissioning found, and the summary columns the machine list shows.
pub fn set_hardware(
    conn: &mut DbConn,
    system_id: &str,
    hw: &api::Hardware,
    now: i64,
) -> Result<()> {
    crate::changes::machine_changed(system_id);
    let json =
        serde_json::to_string(hw).map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    let storage: i64 = hw.disks.iter().map(|d| d.size_bytes).sum();
    diesel::update(machines::table.find(system_id))
        .set((
            machines::hardware.eq(Some(json)),
            machines::cpu_count.eq(hw.cpu_count),
            machines::memory_mib.eq(hw.memory_mib),
            machines::storage_bytes.eq(storage),
            machines::updated_at.eq(now),
            machines::version.eq(machines::version + 1),
        ))
        .execute(conn)?;
    Ok(())
}
