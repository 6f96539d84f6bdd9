//! Rack controllers known to the region: registration (shared secret → per-rack token), heartbeats,
//! and the snapshot a rack serves from.

use diesel::prelude::*;

use super::schema::{
    boot_resource_files, boot_resources, interfaces, machines, rack_enrolment_tokens, racks,
    settings,
};
use super::{fmt_time, DbConn};
use crate::error::Result;
use region_api_types as api;

/// A rack silent for this long is shown offline (and given no new volumes).
pub const OFFLINE_AFTER_MS: i64 = 90_000;

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
    pub token_hash: Option<String>,
    /// What it can serve for root on iSCSI (`api::RackIscsi` as JSON).
    pub iscsi: Option<String>,
    /// The sha256s in its image cache (JSON list), as its last heartbeat said.
    pub images: Option<String>,
    /// `pending`, `approved` or `revoked`.
    pub approval: String,
    /// The networks whose BMCs an admin said it drives (JSON list of IPv4 CIDRs).
    pub power_networks: String,
}

impl RackRow {
    /// The sha256s of the image files the rack has (none when it never said).
    pub fn cached_files(&self) -> Vec<String> {
        self.images
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }

    /// The networks whose BMCs it may drive.
    pub fn power_nets(&self) -> Vec<ipnet::Ipv4Net> {
        parse_nets(&self.power_networks)
    }

    /// A rack not heard from for `offline_after_ms` is shown offline whatever it last said.
    pub fn to_api(&self, now: i64, offline_after_ms: i64) -> api::Rack {
        let status = match self.last_seen {
            Some(t) if now - t > offline_after_ms => "offline".to_string(),
            None => "registered".to_string(),
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
            approval: self.approval.clone(),
            power_networks: self.power_nets().iter().map(|n| n.to_string()).collect(),
            iscsi: self
                .iscsi
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok()),
        }
    }
}

/// Records which image files a rack has.
pub fn set_images(conn: &mut DbConn, id: &str, shas: &[String]) -> Result<()> {
    let json = serde_json::to_string(shas).unwrap_or_else(|_| "[]".into());
    diesel::update(racks::table.find(id))
        .set(racks::images.eq(Some(json)))
        .execute(conn)?;
    Ok(())
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

pub fn by_name(conn: &mut DbConn, name: &str) -> Result<Option<RackRow>> {
    Ok(racks::table
        .filter(racks::name.eq(name))
        .select(RackRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn by_token_hash(conn: &mut DbConn, hash: &str) -> Result<Option<RackRow>> {
    Ok(racks::table
        .filter(racks::token_hash.eq(hash))
        .select(RackRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(conn: &mut DbConn, r: &RackRow) -> Result<()> {
    diesel::insert_into(racks::table).values(r).execute(conn)?;
    Ok(())
}

/// New credentials and interfaces for a rack registering again (and its approval).
pub fn reregister(
    conn: &mut DbConn,
    id: &str,
    token_hash: &str,
    interfaces_json: &str,
    version: Option<&str>,
    approval: &str,
    now: i64,
) -> Result<()> {
    diesel::update(racks::table.find(id))
        .set((
            racks::approval.eq(approval),
            racks::token_hash.eq(Some(token_hash)),
            racks::interfaces.eq(interfaces_json),
            racks::version.eq(version),
            racks::status.eq("online"),
            racks::last_seen.eq(Some(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records that a rack was heard from (and, when given, its interfaces).
pub fn seen(conn: &mut DbConn, id: &str, interfaces_json: Option<&str>, now: i64) -> Result<()> {
    let target = racks::table.find(id);
    match interfaces_json {
        Some(i) => diesel::update(target)
            .set((
                racks::last_seen.eq(Some(now)),
                racks::status.eq("online"),
                racks::interfaces.eq(i),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((racks::last_seen.eq(Some(now)), racks::status.eq("online")))
            .execute(conn)?,
    };
    Ok(())
}

pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool> {
    Ok(diesel::delete(racks::table.find(id)).execute(conn)? == 1)
}

/// A region-wide setting.
pub fn setting(conn: &mut DbConn, key: &str) -> Result<Option<String>> {
    Ok(settings::table
        .find(key)
        .select(settings::value)
        .first(conn)
        .optional()?)
}

/// The setting, created with `make()` if absent. Safe when several regions race: the loser of the
/// insert reads the winner's value.
/// Removes a setting (the next `setting_or_insert` makes a new value).
pub fn delete_setting(conn: &mut DbConn, key: &str) -> Result<()> {
    diesel::delete(settings::table.find(key)).execute(conn)?;
    Ok(())
}

pub fn setting_or_insert(
    conn: &mut DbConn,
    key: &str,
    make: impl Fn() -> String,
) -> Result<String> {
    if let Some(v) = setting(conn, key)? {
        return Ok(v);
    }
    let v = make();
    match diesel::insert_into(settings::table)
        .values((settings::key.eq(key), settings::value.eq(&v)))
        .execute(conn)
    {
        Ok(_) => Ok(v),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(setting(conn, key)?.unwrap_or(v)),
        Err(e) => Err(e.into()),
    }
}

/// The tables a rack snapshot is built from. Their rows carry `rev`, the next number of one counter
/// at every insert and every update of a column racks serve (database triggers: migration
/// 2026-12-04-000012_change_revisions).
const SNAPSHOT_TABLES: [&str; 8] = [
    "machines",
    "interfaces",
    "subnets",
    "deployments",
    "boot_resources",
    "boot_resource_files",
    "dns_domains",
    "dns_records",
];

#[derive(diesel::QueryableByName)]
struct Tally {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    k: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    s: i64,
}

/// A cheap fingerprint of everything in a rack snapshot: each table's row count and sum of `rev`.
/// It moves on with every committed insert, delete or served-column update, whatever the order the
/// transactions committed in and whatever their clocks said (a maximum of timestamps does not: a
/// change stamped earlier but committed later hides under it).
pub fn snapshot_fingerprint(conn: &mut DbConn) -> Result<String> {
    let sql = SNAPSHOT_TABLES
        .iter()
        .enumerate()
        .map(|(k, t)| {
            format!(
                "SELECT CAST({k} AS BIGINT) AS k, CAST(count(*) AS BIGINT) AS n, \
                 CAST(COALESCE(sum(rev), 0) AS BIGINT) AS s FROM {t}"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut rows: Vec<Tally> = diesel::sql_query(sql).load(conn)?;
    rows.sort_by_key(|r| r.k);
    Ok(rows
        .iter()
        .map(|r| format!("{}.{}", r.n, r.s))
        .collect::<Vec<_>>()
        .join("-"))
}

/// Machines as racks need them.
pub fn snapshot_machines(conn: &mut DbConn) -> Result<Vec<api::SnapshotMachine>> {
    type Row = (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = machines::table
        .order(machines::system_id)
        .select((
            machines::system_id,
            machines::hostname,
            machines::status,
            machines::architecture,
            machines::boot_mac,
            machines::domain_id,
        ))
        .load(conn)?;
    let domains: std::collections::HashMap<String, String> = super::dns::domains(conn)?
        .into_iter()
        .map(|d| (d.id, d.name))
        .collect();
    let ifaces: Vec<super::machines::InterfaceRow> = interfaces::table
        .order((interfaces::system_id, interfaces::name))
        .select(super::machines::InterfaceRow::as_select())
        .load(conn)?;
    let mut by_machine: std::collections::HashMap<String, Vec<api::Interface>> = Default::default();
    for i in ifaces {
        by_machine
            .entry(i.system_id)
            .or_default()
            .push(api::Interface {
                name: i.name,
                mac: i.mac,
                subnet_id: i.subnet_id,
                ip: i.ip,
            });
    }
    let live = super::deploy::live(conn)?;
    let in_memory: std::collections::HashSet<String> = live
        .iter()
        .filter(|d| d.target == "memory")
        .map(|d| d.system_id.clone())
        .collect();
    let on_iscsi: std::collections::HashSet<String> = live
        .iter()
        .filter(|d| d.target == "iscsi")
        .map(|d| d.system_id.clone())
        .collect();
    let installed: std::collections::HashMap<String, Option<String>> = live
        .into_iter()
        .filter(|d| d.target == "disk" && matches!(d.state.as_str(), "installed" | "deployed"))
        .map(|d| (d.system_id, d.esp_uuid))
        .collect();
    Ok(rows
        .into_iter()
        .map(
            |(system_id, hostname, status, architecture, boot_mac, domain_id)| {
                api::SnapshotMachine {
                    domain: domain_id.and_then(|d| domains.get(&d).cloned()),
                    local_boot: installed.contains_key(&system_id),
                    memory_boot: in_memory.contains(&system_id),
                    iscsi_boot: on_iscsi.contains(&system_id),
                    esp_uuid: installed.get(&system_id).cloned().flatten(),
                    interfaces: by_machine.remove(&system_id).unwrap_or_default(),
                    status: api::MachineStatus::parse(&status)
                        .unwrap_or(api::MachineStatus::Broken),
                    system_id,
                    hostname,
                    architecture,
                    boot_mac,
                }
            },
        )
        .collect())
}

/// Boot files as racks need them.
pub fn snapshot_files(conn: &mut DbConn) -> Result<Vec<api::SnapshotFile>> {
    use super::boot::{FileRow, ResourceRow};
    let rows: Vec<(FileRow, ResourceRow)> = boot_resource_files::table
        .inner_join(boot_resources::table)
        .order((
            boot_resources::os,
            boot_resources::release,
            boot_resource_files::filename,
        ))
        .select((FileRow::as_select(), ResourceRow::as_select()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(f, r)| api::SnapshotFile {
            resource_id: r.id,
            os: r.os,
            release: r.release,
            arch: r.arch,
            kind: r.kind,
            filename: f.filename,
            sha256: f.sha256,
            size: f.size,
        })
        .collect())
}

/// Records an address a rack leased to a known MAC on that machine's interface. A static
/// reservation (an address outside its subnet's dynamic ranges, set through the API) is never
/// replaced by a lease report: the report may predate the rack learning of the reservation.
/// `subnets` is every subnet (the caller loads them once for a batch of reports).
pub fn record_lease(
    conn: &mut DbConn,
    mac: &str,
    ip: std::net::Ipv4Addr,
    subnets: &[api::Subnet],
) -> Result<Option<String>> {
    use super::subnets::{containing, dynamic_range_of};
    let cur: Option<(String, Option<String>)> = interfaces::table
        .filter(interfaces::mac.eq(mac))
        .select((interfaces::system_id, interfaces::ip))
        .first(conn)
        .optional()?;
    let Some((sid, current)) = cur else {
        return Ok(None);
    };
    let reserved = current
        .as_deref()
        .and_then(|c| c.parse::<std::net::Ipv4Addr>().ok())
        .filter(|c| *c != ip)
        .and_then(|c| containing(subnets, c).map(|s| dynamic_range_of(s, c).is_none()))
        .unwrap_or(false);
    if reserved {
        return Ok(Some(sid));
    }
    let here = containing(subnets, ip);
    // An address is one interface's (a unique index says so). A dynamic address the rack now
    // leased to this MAC is no longer another machine's: its old lease ended. A static one is
    // never taken from its owner by a lease report.
    let ip_text = ip.to_string();
    let holder: Option<String> = interfaces::table
        .filter(interfaces::ip.eq(&ip_text))
        .filter(interfaces::mac.ne(mac))
        .select(interfaces::system_id)
        .first(conn)
        .optional()?;
    if let Some(other) = holder {
        if here.is_some_and(|s| dynamic_range_of(s, ip).is_some()) {
            crate::changes::machine_changed(&other);
            diesel::update(
                interfaces::table
                    .filter(interfaces::ip.eq(&ip_text))
                    .filter(interfaces::mac.ne(mac)),
            )
            .set((
                interfaces::ip.eq(None::<String>),
                interfaces::subnet_id.eq(None::<String>),
            ))
            .execute(conn)?;
            diesel::update(machines::table.find(&other))
                .set(machines::updated_at.eq(super::now_ms()))
                .execute(conn)?;
        } else {
            tracing::warn!(
                machine.id = %sid,
                "a rack reported {ip} leased to {mac}, but it is machine {other}'s static address: not recorded"
            );
            return Ok(Some(sid));
        }
    }
    let subnet_id = here.map(|s| s.id.clone());
    crate::changes::machine_changed(&sid);
    if current.as_deref() != Some(ip.to_string().as_str()) {
        // A new address is in every rack's DNS: the snapshot's fingerprint must change.
        diesel::update(machines::table.find(&sid))
            .set(machines::updated_at.eq(super::now_ms()))
            .execute(conn)?;
    }
    diesel::update(interfaces::table.filter(interfaces::mac.eq(mac)))
        .set((
            interfaces::ip.eq(Some(ip.to_string())),
            interfaces::subnet_id.eq(subnet_id),
        ))
        .execute(conn)?;
    Ok(Some(sid))
}

/// A stored list of CIDRs (what does not parse is skipped: the API validated it).
pub fn parse_nets(json: &str) -> Vec<ipnet::Ipv4Net> {
    serde_json::from_str::<Vec<String>>(json)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// A list of CIDRs as stored.
pub fn nets_json(nets: &[ipnet::Ipv4Net]) -> String {
    serde_json::to_string(&nets.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

/// Sets the networks whose BMCs a rack drives.
pub fn set_power_networks(conn: &mut DbConn, id: &str, nets: &[ipnet::Ipv4Net]) -> Result<bool> {
    Ok(diesel::update(racks::table.find(id))
        .set(racks::power_networks.eq(nets_json(nets)))
        .execute(conn)?
        == 1)
}

/// Sets a rack's approval; revoking also drops its token. False when there is no such rack.
pub fn set_approval(conn: &mut DbConn, id: &str, approval: &str) -> Result<bool> {
    let target = racks::table.find(id);
    let n = if approval == "revoked" {
        diesel::update(target)
            .set((
                racks::approval.eq(approval),
                racks::token_hash.eq(None::<String>),
            ))
            .execute(conn)?
    } else {
        diesel::update(target)
            .set(racks::approval.eq(approval))
            .execute(conn)?
    };
    Ok(n == 1)
}

/// A row of `rack_enrolment_tokens`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = rack_enrolment_tokens)]
pub struct EnrolmentRow {
    pub id: String,
    pub secret_hash: String,
    pub auto_approve: bool,
    /// JSON list of CIDRs the enrolled rack's power networks become.
    pub power_networks: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub rack_id: Option<String>,
}

pub fn insert_enrolment(conn: &mut DbConn, r: &EnrolmentRow) -> Result<()> {
    diesel::insert_into(rack_enrolment_tokens::table)
        .values(r)
        .execute(conn)?;
    Ok(())
}

pub fn enrolment(conn: &mut DbConn, id: &str) -> Result<Option<EnrolmentRow>> {
    Ok(rack_enrolment_tokens::table
        .find(id)
        .select(EnrolmentRow::as_select())
        .first(conn)
        .optional()?)
}

/// Marks an enrolment token used by `rack_id`, if nobody used it yet: false when someone did
/// (two racks racing for one token: one wins).
pub fn use_enrolment(conn: &mut DbConn, id: &str, rack_id: &str, now: i64) -> Result<bool> {
    let n = diesel::update(
        rack_enrolment_tokens::table
            .find(id)
            .filter(rack_enrolment_tokens::used_at.is_null()),
    )
    .set((
        rack_enrolment_tokens::used_at.eq(Some(now)),
        rack_enrolment_tokens::rack_id.eq(Some(rack_id)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Removes enrolment tokens that expired before `before`.
pub fn prune_enrolments(conn: &mut DbConn, before: i64) -> Result<usize> {
    Ok(diesel::delete(
        rack_enrolment_tokens::table.filter(rack_enrolment_tokens::expires_at.lt(before)),
    )
    .execute(conn)?)
}
