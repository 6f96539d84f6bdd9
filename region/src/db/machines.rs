//! Machines, their interfaces and tags.

use std::collections::HashMap;

use diesel::prelude::*;

use super::schema::{interfaces, machine_tags, machines, users};
use super::{fmt_time, DbConn, MultiBackend};
use crate::domain::search::{self, Clause, Key, SortKey};
use crate::error::{Error, Result};
use region_api_types as api;

/// A row of `machines`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = machines)]
pub struct MachineRow {
    pub system_id: String,
    pub hostname: String,
    pub status: String,
    pub previous_status: Option<String>,
    pub status_deadline: Option<i64>,
    pub architecture: String,
    pub boot_mac: Option<String>,
    pub power_type: String,
    pub power_parameters: String,
    pub owner_id: Option<String>,
    pub zone: String,
    pub pool: String,
    pub description: String,
    pub cpu_count: i32,
    pub memory_mib: i64,
    pub storage_bytes: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// JSON of [`api::Hardware`], once commissioned.
    pub hardware: Option<String>,
    /// Secret power parameters, sealed by [`crate::domain::secrets::SecretBox`] ("" when none).
    pub power_secrets: String,
    pub power_state: String,
    pub power_state_at: Option<i64>,
    pub skip_bmc_config: bool,
    /// The DNS domain it is named in (`None`: the default domain).
    pub domain_id: Option<String>,
    /// The pod it was composed on.
    pub pod_id: Option<String>,
}

impl MachineRow {
    pub fn status(&self) -> api::MachineStatus {
        // The column is only ever written from `MachineStatus::as_str`; a foreign value reads as Broken
        // so that an operator looks at it rather than the region failing every request.
        api::MachineStatus::parse(&self.status).unwrap_or(api::MachineStatus::Broken)
    }

    pub fn previous_status(&self) -> Option<api::MachineStatus> {
        self.previous_status
            .as_deref()
            .and_then(api::MachineStatus::parse)
    }

    pub fn power_parameters(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.power_parameters).unwrap_or_default()
    }
}

/// A row of `interfaces`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = interfaces)]
pub struct InterfaceRow {
    pub id: String,
    pub system_id: String,
    pub name: String,
    pub mac: String,
    pub subnet_id: Option<String>,
    pub ip: Option<String>,
}

/// Filters of `GET /api/v1/machines`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub statuses: Vec<String>,
    pub hostname: Option<String>,
    pub mac: Option<String>,
    pub tag: Option<String>,
    pub zone: Option<String>,
    pub pool: Option<String>,
    /// Owner's user id; `Some(None)` means "no owner".
    pub owner_id: Option<Option<String>>,
    /// Restrict to machines this user may see (free or owned by them); `None` for admins.
    pub visible_to: Option<String>,
    /// A search ([`search::parse`]); its `owner:` values are user ids here, "" meaning none
    /// ([`crate::domain::search::resolve_owners`]).
    pub search: search::Query,
    pub sort: search::Sort,
}

impl Filter {
    /// No filter at all: every machine matches.
    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty()
            && self.hostname.is_none()
            && self.mac.is_none()
            && self.tag.is_none()
            && self.zone.is_none()
            && self.pool.is_none()
            && self.owner_id.is_none()
            && self.visible_to.is_none()
            && self.search.is_empty()
    }
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

type Boxed<'a> = machines::BoxedQuery<'a, MultiBackend>;
type BoolExpr<'a> = Box<
    dyn BoxableExpression<machines::table, MultiBackend, SqlType = diesel::sql_types::Bool> + 'a,
>;

fn filtered(f: &Filter) -> Boxed<'_> {
    let mut q = machines::table.into_boxed();
    if !f.statuses.is_empty() {
        q = q.filter(machines::status.eq_any(f.statuses.clone()));
    }
    if let Some(h) = &f.hostname {
        q = q.filter(machines::hostname.eq(h.clone()));
    }
    if let Some(m) = &f.mac {
        q = q.filter(
            machines::system_id.eq_any(
                interfaces::table
                    .filter(interfaces::mac.eq(m.clone()))
                    .select(interfaces::system_id),
            ),
        );
    }
    if let Some(t) = &f.tag {
        q = q.filter(
            machines::system_id.eq_any(
                machine_tags::table
                    .filter(machine_tags::tag.eq(t.clone()))
                    .select(machine_tags::system_id),
            ),
        );
    }
    if let Some(z) = &f.zone {
        q = q.filter(machines::zone.eq(z.clone()));
    }
    if let Some(p) = &f.pool {
        q = q.filter(machines::pool.eq(p.clone()));
    }
    match &f.owner_id {
        Some(Some(o)) => q = q.filter(machines::owner_id.eq(o.clone())),
        Some(None) => q = q.filter(machines::owner_id.is_null()),
        None => {}
    }
    if let Some(u) = &f.visible_to {
        q = q.filter(
            machines::owner_id
                .is_null()
                .or(machines::owner_id.eq(u.clone())),
        );
    }
    for c in &f.search.clauses {
        q = clause(q, c);
    }
    for w in &f.search.words {
        let pat = format!("%{}%", search::glob_to_like(w));
        // lower(): LIKE ignores case on SQLite but not on PostgreSQL; words are lowercase.
        q = q.filter(
            machines::hostname
                .like(pat.clone())
                .escape('\\')
                .or(machines::system_id.like(pat.clone()).escape('\\'))
                .or(lower(machines::description).like(pat).escape('\\')),
        );
    }
    q
}

/// Either of `c`'s values, or (negated) none of them.
fn clause<'a>(q: Boxed<'a>, c: &Clause) -> Boxed<'a> {
    let v = c.values.clone();
    macro_rules! column {
        ($col:expr) => {
            if c.negate {
                q.filter($col.ne_all(v))
            } else {
                q.filter($col.eq_any(v))
            }
        };
    }
    macro_rules! related {
        ($sub:expr) => {
            if c.negate {
                q.filter(machines::system_id.ne_all($sub))
            } else {
                q.filter(machines::system_id.eq_any($sub))
            }
        };
    }
    match c.key {
        Key::Status => column!(machines::status),
        Key::Zone => column!(machines::zone),
        Key::Pool => column!(machines::pool),
        Key::Arch => {
            // `amd64` is every `amd64/…`; `amd64/generic` only itself.
            let mut any: Option<BoolExpr<'a>> = None;
            for a in &c.values {
                let e: BoolExpr<'a> = if a.contains('/') {
                    Box::new(machines::architecture.eq(a.clone()))
                } else {
                    let sub = format!("{}/%", search::glob_to_like(a));
                    Box::new(
                        machines::architecture
                            .eq(a.clone())
                            .or(machines::architecture.like(sub).escape('\\')),
                    )
                };
                any = Some(match any {
                    None => e,
                    Some(prev) => Box::new(prev.or(e)),
                });
            }
            match any {
                None => q,
                Some(e) if c.negate => q.filter(diesel::dsl::not(e)),
                Some(e) => q.filter(e),
            }
        }
        Key::Power => column!(machines::power_state),
        Key::Id => column!(machines::system_id),
        Key::Tag => related!(machine_tags::table
            .filter(machine_tags::tag.eq_any(v.clone()))
            .select(machine_tags::system_id)),
        Key::Mac => related!(interfaces::table
            .filter(interfaces::mac.eq_any(v.clone()))
            .select(interfaces::system_id)),
        Key::Ip => related!(interfaces::table
            .filter(interfaces::ip.eq_any(v.clone()))
            .select(interfaces::system_id)),
        Key::Hostname => {
            let mut any: Option<BoolExpr<'a>> = None;
            for p in &c.values {
                let e = machines::hostname
                    .like(search::glob_to_like(p))
                    .escape('\\');
                any = Some(match any {
                    None => Box::new(e),
                    Some(prev) => Box::new(prev.or(e)),
                });
            }
            match any {
                None => q,
                Some(e) if c.negate => q.filter(diesel::dsl::not(e)),
                Some(e) => q.filter(e),
            }
        }
        Key::Owner => {
            let none = v.iter().any(String::is_empty);
            let ids: Vec<String> = v.into_iter().filter(|s| !s.is_empty()).collect();
            if c.negate {
                let q = q.filter(
                    machines::owner_id
                        .is_null()
                        .or(machines::owner_id.ne_all(ids)),
                );
                if none {
                    q.filter(machines::owner_id.is_not_null())
                } else {
                    q
                }
            } else if none {
                q.filter(
                    machines::owner_id
                        .is_null()
                        .or(machines::owner_id.eq_any(ids)),
                )
            } else {
                q.filter(machines::owner_id.eq_any(ids))
            }
        }
    }
}

fn ordered(q: Boxed<'_>, s: search::Sort) -> Boxed<'_> {
    macro_rules! by {
        ($col:expr) => {
            if s.desc {
                q.order(($col.desc(), machines::system_id.desc()))
            } else {
                q.order(($col.asc(), machines::system_id.asc()))
            }
        };
    }
    match s.key {
        SortKey::Created => by!(machines::created_at),
        SortKey::Hostname => by!(machines::hostname),
        SortKey::Status => by!(machines::status),
        SortKey::Power => by!(machines::power_state),
        SortKey::Arch => by!(machines::architecture),
        SortKey::Cores => by!(machines::cpu_count),
        SortKey::Memory => by!(machines::memory_mib),
        SortKey::Storage => by!(machines::storage_bytes),
        SortKey::Zone => by!(machines::zone),
        SortKey::Pool => by!(machines::pool),
    }
}

/// One page of machines matching `f`, with the total count.
pub fn list(
    conn: &mut DbConn,
    f: &Filter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<api::Machine>, i64)> {
    let (rows, total, whole_table) = page_rows(conn, f, limit, offset)?;
    let items = hydrate(conn, rows, whole_table)?;
    Ok((items, total))
}

/// One page of rows, how many match in all, and whether the page is every machine there is.
fn page_rows(
    conn: &mut DbConn,
    f: &Filter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<MachineRow>, i64, bool)> {
    let total: i64 = filtered(f).count().get_result(conn)?;
    let rows: Vec<MachineRow> = ordered(filtered(f), f.sort)
        .limit(limit)
        .offset(offset)
        .select(MachineRow::as_select())
        .load(conn)?;
    // Loading related tables whole is cheaper than by id only when the page is every machine there is.
    let whole_table = !rows.is_empty() && f.is_empty() && rows.len() as i64 == total && offset == 0;
    Ok((rows, total, whole_table))
}

/// [`list`], as the JSON of an `api::Page` written straight into one buffer: each machine is
/// built, serialised and dropped in turn, so a list of every machine never holds them all as
/// objects next to their JSON.
pub fn list_json(conn: &mut DbConn, f: &Filter, limit: i64, offset: i64) -> Result<Vec<u8>> {
    let (rows, total, whole_table) = page_rows(conn, f, limit, offset)?;
    // About 650 bytes a machine: one allocation for the whole page, no copy as it grows.
    let mut out = Vec::with_capacity(64 + rows.len() * 720);
    out.extend_from_slice(b"{\"items\":[");
    let mut first = true;
    hydrate_each(conn, rows, whole_table, |m| {
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut out, &m).map_err(|e| Error::Internal(e.to_string()))
    })?;
    out.extend_from_slice(
        format!("],\"total\":{total},\"limit\":{limit},\"offset\":{offset}}}").as_bytes(),
    );
    Ok(out)
}

/// Turns rows into API machines, loading interfaces, tags and owner names in a few queries.
/// `all`: the rows are every machine, so load related tables whole rather than by id.
fn hydrate(conn: &mut DbConn, rows: Vec<MachineRow>, all: bool) -> Result<Vec<api::Machine>> {
    let mut out = Vec::with_capacity(rows.len());
    hydrate_each(conn, rows, all, |m| {
        out.push(m);
        Ok(())
    })?;
    Ok(out)
}

/// [`hydrate`], handing each machine to `sink` in order as soon as it is built.
fn hydrate_each(
    conn: &mut DbConn,
    rows: Vec<MachineRow>,
    all: bool,
    mut sink: impl FnMut(api::Machine) -> Result<()>,
) -> Result<()> {
    let ids: Vec<String> = rows.iter().map(|r| r.system_id.clone()).collect();
    let mut ifaces: HashMap<String, Vec<InterfaceRow>> = HashMap::new();
    let mut tags: HashMap<String, Vec<String>> = HashMap::new();
    let mut load_ifaces = |conn: &mut DbConn, chunk: Option<&[String]>| -> Result<()> {
        let mut q = interfaces::table.into_boxed();
        if let Some(c) = chunk {
            q = q.filter(interfaces::system_id.eq_any(c.to_vec()));
        }
        for i in q
            .order((interfaces::system_id, interfaces::name))
            .select(InterfaceRow::as_select())
            .load(conn)?
        {
            ifaces.entry(i.system_id.clone()).or_default().push(i);
        }
        Ok(())
    };
    if all {
        load_ifaces(conn, None)?;
    } else {
        for chunk in ids.chunks(500) {
            load_ifaces(conn, Some(chunk))?;
        }
    }
    let mut load_tags = |conn: &mut DbConn, chunk: Option<&[String]>| -> Result<()> {
        let mut q = machine_tags::table.into_boxed();
        if let Some(c) = chunk {
            q = q.filter(machine_tags::system_id.eq_any(c.to_vec()));
        }
        for (sid, tag) in q
            .order((machine_tags::system_id, machine_tags::tag))
            .select((machine_tags::system_id, machine_tags::tag))
            .load::<(String, String)>(conn)?
        {
            tags.entry(sid).or_default().push(tag);
        }
        Ok(())
    };
    if all {
        load_tags(conn, None)?;
    } else {
        for chunk in ids.chunks(500) {
            load_tags(conn, Some(chunk))?;
        }
    }
    let owners: HashMap<String, String> = {
        let mut owner_ids: Vec<String> = rows.iter().filter_map(|r| r.owner_id.clone()).collect();
        owner_ids.sort();
        owner_ids.dedup();
        let mut m = HashMap::new();
        for chunk in owner_ids.chunks(500) {
            for (id, name) in users::table
                .filter(users::id.eq_any(chunk.to_vec()))
                .select((users::id, users::username))
                .load::<(String, String)>(conn)?
            {
                m.insert(id, name);
            }
        }
        m
    };
    let pods: HashMap<String, String> = if rows.iter().any(|r| r.pod_id.is_some()) {
        super::schema::pods::table
            .select((super::schema::pods::id, super::schema::pods::name))
            .load::<(String, String)>(conn)?
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };
    let domains: HashMap<String, String> = if rows.iter().any(|r| r.domain_id.is_some()) {
        super::dns::domains(conn)?
            .into_iter()
            .map(|d| (d.id, d.name))
            .collect()
    } else {
        HashMap::new()
    };
    for r in rows {
        let owner = r.owner_id.as_ref().and_then(|o| owners.get(o).cloned());
        let i = ifaces.remove(&r.system_id).unwrap_or_default();
        let t = tags.remove(&r.system_id).unwrap_or_default();
        let d = r.domain_id.as_ref().and_then(|d| domains.get(d).cloned());
        let pod = r.pod_id.as_ref().map(|p| api::MachinePod {
            id: p.clone(),
            name: pods.get(p).cloned().unwrap_or_default(),
        });
        let mut m = to_api(r, i, t, owner, d);
        m.pod = pod;
        sink(m)?;
    }
    Ok(())
}

fn to_api(
    r: MachineRow,
    ifaces: Vec<InterfaceRow>,
    tags: Vec<String>,
    owner: Option<String>,
    domain: Option<String>,
) -> api::Machine {
    let status = r.status();
    api::Machine {
        status_label: status.label().to_string(),
        status,
        previous_status: r.previous_status(),
        status_deadline: r.status_deadline.map(fmt_time),
        power_parameters: crate::domain::validate::public_power_parameters(&r.power_parameters()),
        system_id: r.system_id,
        hostname: r.hostname,
        architecture: r.architecture,
        boot_mac: r.boot_mac,
        power_type: r.power_type,
        owner,
        zone: r.zone,
        pool: r.pool,
        tags,
        description: r.description,
        domain,
        cpu_count: r.cpu_count,
        memory_mib: r.memory_mib,
        storage_bytes: r.storage_bytes,
        interfaces: ifaces
            .into_iter()
            .map(|i| api::Interface {
                name: i.name,
                mac: i.mac,
                subnet_id: i.subnet_id,
                ip: i.ip,
            })
            .collect(),
        hardware: r
            .hardware
            .as_deref()
            .and_then(|h| serde_json::from_str(h).ok()),
        power_state: api::PowerState::parse(&r.power_state),
        power_state_checked_at: r.power_state_at.map(fmt_time),
        skip_bmc_config: r.skip_bmc_config,
        deployment: None,
        boot_volume: None,
        pod: None,
        created_at: fmt_time(r.created_at),
        updated_at: fmt_time(r.updated_at),
    }
}

/// The row of one machine.
pub fn get_row(conn: &mut DbConn, system_id: &str) -> Result<Option<MachineRow>> {
    Ok(machines::table
        .find(system_id)
        .select(MachineRow::as_select())
        .first(conn)
        .optional()?)
}

/// One machine as the API shows it.
pub fn get(conn: &mut DbConn, system_id: &str) -> Result<Option<api::Machine>> {
    let Some(row) = get_row(conn, system_id)? else {
        return Ok(None);
    };
    let mut m = hydrate(conn, vec![row], false)?.pop();
    if let Some(m) = m.as_mut() {
        m.deployment = super::deploy::latest(conn, system_id)?.map(|d| d.to_api());
        m.boot_volume = crate::domain::volumes::of_machine(conn, system_id)?;
    }
    Ok(m)
}

/// Username of a user id.
pub fn username_of(conn: &mut DbConn, user_id: &str) -> Result<Option<String>> {
    Ok(users::table
        .find(user_id)
        .select(users::username)
        .first(conn)
        .optional()?)
}

/// Which machine, if any, already uses `mac` (as boot MAC or on an interface).
pub fn machine_with_mac(conn: &mut DbConn, mac: &str) -> Result<Option<String>> {
    if let Some(sid) = machines::table
        .filter(machines::boot_mac.eq(mac))
        .select(machines::system_id)
        .first::<String>(conn)
        .optional()?
    {
        return Ok(Some(sid));
    }
    Ok(interfaces::table
        .filter(interfaces::mac.eq(mac))
        .select(interfaces::system_id)
        .first::<String>(conn)
        .optional()?)
}

/// Which machine, if any, has `hostname`.
pub fn machine_with_hostname(conn: &mut DbConn, hostname: &str) -> Result<Option<String>> {
    Ok(machines::table
        .filter(machines::hostname.eq(hostname))
        .select(machines::system_id)
        .first::<String>(conn)
        .optional()?)
}

/// Inserts a machine with its interfaces and tags (call inside a transaction).
pub fn insert(
    conn: &mut DbConn,
    row: &MachineRow,
    ifaces: &[InterfaceRow],
    tags: &[String],
) -> Result<()> {
    crate::changes::machine_changed(&row.system_id);
    diesel::insert_into(machines::table)
        .values(row)
        .execute(conn)?;
    for i in ifaces {
        diesel::insert_into(interfaces::table)
            .values(i)
            .execute(conn)?;
    }
    set_tags(conn, &row.system_id, tags)?;
    Ok(())
}

/// Replaces a machine's tags.
pub fn set_tags(conn: &mut DbConn, system_id: &str, tags: &[String]) -> Result<()> {
    crate::changes::machine_changed(system_id);
    diesel::delete(machine_tags::table.filter(machine_tags::system_id.eq(system_id)))
        .execute(conn)?;
    for t in tags {
        diesel::insert_into(machine_tags::table)
            .values((
                machine_tags::system_id.eq(system_id),
                machine_tags::tag.eq(t),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Fields a patch may change.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = machines)]
pub struct MachineChanges {
    pub hostname: Option<String>,
    pub architecture: Option<String>,
    pub boot_mac: Option<Option<String>>,
    pub power_type: Option<String>,
    pub power_parameters: Option<String>,
    pub power_secrets: Option<String>,
    pub skip_bmc_config: Option<bool>,
    pub zone: Option<String>,
    pub pool: Option<String>,
    pub description: Option<String>,
    pub domain_id: Option<Option<String>>,
    pub updated_at: Option<i64>,
}

/// Applies `changes` if the machine is still at `version`; returns whether it was.
pub fn update_if_version(
    conn: &mut DbConn,
    system_id: &str,
    version: i64,
    changes: &MachineChanges,
) -> Result<bool> {
    crate::changes::machine_changed(system_id);
    let n = diesel::update(
        machines::table
            .filter(machines::system_id.eq(system_id))
            .filter(machines::version.eq(version)),
    )
    .set((changes, machines::version.eq(version + 1)))
    .execute(conn)?;
    Ok(n == 1)
}

/// A status change, applied only if the machine is still at `version` (compare-and-set).
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub status: api::MachineStatus,
    pub previous_status: api::MachineStatus,
    pub deadline: Option<i64>,
    /// `None`: keep; `Some(None)`: clear; `Some(Some(id))`: set.
    pub owner_id: Option<Option<String>>,
    pub now: i64,
}

pub fn change_status(
    conn: &mut DbConn,
    system_id: &str,
    version: i64,
    ch: &StatusChange,
) -> Result<bool> {
    crate::changes::machine_changed(system_id);
    let target = machines::table
        .filter(machines::system_id.eq(system_id))
        .filter(machines::version.eq(version));
    let base = (
        machines::status.eq(ch.status.as_str()),
        machines::previous_status.eq(Some(ch.previous_status.as_str())),
        machines::status_deadline.eq(ch.deadline),
        machines::version.eq(version + 1),
        machines::updated_at.eq(ch.now),
    );
    let n = match &ch.owner_id {
        None => diesel::update(target).set(base).execute(conn)?,
        Some(owner) => diesel::update(target)
            .set((base, machines::owner_id.eq(owner.clone())))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// Deletes a machine (interfaces and tags go with it) if still at `version`.
pub fn delete_if_version(conn: &mut DbConn, system_id: &str, version: i64) -> Result<bool> {
    crate::changes::machine_changed(system_id);
    // Explicit deletes, so the outcome does not depend on the connection's foreign-key setting.
    let exists = machines::table
        .filter(machines::system_id.eq(system_id))
        .filter(machines::version.eq(version))
        .count()
        .get_result::<i64>(conn)?;
    if exists == 0 {
        return Ok(false);
    }
    diesel::delete(interfaces::table.filter(interfaces::system_id.eq(system_id))).execute(conn)?;
    diesel::delete(machine_tags::table.filter(machine_tags::system_id.eq(system_id)))
        .execute(conn)?;
    let n = diesel::delete(
        machines::table
            .filter(machines::system_id.eq(system_id))
            .filter(machines::version.eq(version)),
    )
    .execute(conn)?;
    Ok(n == 1)
}

/// Machines whose in-progress deadline is before `now`: `(system_id, status, version)`.
pub fn expired(conn: &mut DbConn, now: i64, limit: i64) -> Result<Vec<(String, String, i64)>> {
    Ok(machines::table
        .filter(machines::status_deadline.is_not_null())
        .filter(machines::status_deadline.lt(now))
        .select((machines::system_id, machines::status, machines::version))
        .limit(limit)
        .load(conn)?)
}

/// Count of machines per status, for `/metrics`.
pub fn count_by_status(conn: &mut DbConn) -> Result<Vec<(String, i64)>> {
    use diesel::dsl::count_star;
    Ok(machines::table
        .group_by(machines::status)
        .select((machines::status, count_star()))
        .load(conn)?)
}

/// Machines per status among those `visible_to` may see (everyone's for `None`).
pub fn count_by_status_visible(
    conn: &mut DbConn,
    visible_to: Option<&str>,
) -> Result<Vec<(String, i64)>> {
    use diesel::dsl::count_star;
    match visible_to {
        None => count_by_status(conn),
        Some(u) => Ok(machines::table
            .filter(
                machines::owner_id
                    .is_null()
                    .or(machines::owner_id.eq(u.to_string())),
            )
            .group_by(machines::status)
            .select((machines::status, count_star()))
            .load(conn)?),
    }
}

/// Maps a unique-constraint failure on insert to a conflict an operator understands.
pub fn unique_violation_to_conflict(e: Error) -> Error {
    use diesel::result::{DatabaseErrorKind, Error as D};
    match e {
        Error::Db(D::DatabaseError(DatabaseErrorKind::UniqueViolation, info)) => {
            let text = format!(
                "{} {}",
                info.message(),
                info.constraint_name().unwrap_or_default()
            );
            if text.contains("mac") {
                Error::conflict(
                    "duplicate_mac",
                    Some("boot_mac"),
                    "That MAC address already belongs to another machine.",
                )
            } else if text.contains("hostname") {
                Error::conflict(
                    "duplicate_hostname",
                    Some("hostname"),
                    "That hostname is taken by another machine.",
                )
            } else {
                Error::conflict(
                    "conflict",
                    None,
                    "That conflicts with an existing record; reload and try again.",
                )
            }
        }
        other => other,
    }
}

/// A machine's interfaces.
pub fn interfaces_of(conn: &mut DbConn, system_id: &str) -> Result<Vec<InterfaceRow>> {
    Ok(interfaces::table
        .filter(interfaces::system_id.eq(system_id))
        .order(interfaces::name)
        .select(InterfaceRow::as_select())
        .load(conn)?)
}

pub fn rename_interface(conn: &mut DbConn, id: &str, name: &str) -> Result<()> {
    diesel::update(interfaces::table.find(id))
        .set(interfaces::name.eq(name))
        .execute(conn)?;
    Ok(())
}

pub fn insert_interface(conn: &mut DbConn, i: &InterfaceRow) -> Result<()> {
    crate::changes::machine_changed(&i.system_id);
    diesel::insert_into(interfaces::table)
        .values(i)
        .execute(conn)?;
    Ok(())
}
