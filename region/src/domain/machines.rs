//! Machine operations: create, patch and actions (deadlines: `deadlines.rs`; static addresses:
//! `interfaces.rs`).
//!
//! Each operation validates its input, decides with [`lifecycle`], and writes in one transaction
//! (machine row, event, audit entry) guarded by compare-and-set on the machine's version, so two
//! regions on one PostgreSQL (or two requests) cannot both apply a change to the same state.

use region_api_types::{self as api, MachineAction, MachineStatus};

use super::access::{event, not_found, require_admin, visible_row};
use super::lifecycle::{self, Actor, DeadlineKind, Decision, MachineFacts, OwnerChange, Refusal};
use super::power::{self, Purpose};
use super::secrets::SecretBox;
use super::{validate, Caller};
use crate::config::Lifecycle;
use crate::db::machines::{self as dbm, InterfaceRow, MachineChanges, MachineRow, StatusChange};
use crate::db::{self, random_id, DbConn};
use crate::error::{Error, Result};
use diesel::Connection;

/// Tries of a compare-and-set before giving up with a conflict.
const CAS_TRIES: usize = 5;

/// A machine as the API shows it, if the caller may see it.
pub fn get(conn: &mut DbConn, caller: &Caller, system_id: &str) -> Result<api::Machine> {
    visible_row(conn, caller, system_id)?;
    dbm::get(conn, system_id)?.ok_or_else(|| not_found(system_id))
}

pub(super) fn clean_tags(tags: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(tags.len());
    for t in tags {
        let t = validate::name("tags", t)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.len() > 64 {
        return Err(Error::validation("tags", "A machine has at most 64 tags."));
    }
    out.sort();
    Ok(out)
}

fn ensure_mac_free(conn: &mut DbConn, field: &str, mac: &str, except: Option<&str>) -> Result<()> {
    if let Some(other) = dbm::machine_with_mac(conn, mac)? {
        if Some(other.as_str()) != except {
            return Err(Error::conflict(
                "duplicate_mac",
                Some(field),
                format!("MAC address {mac} already belongs to machine {other}; each MAC belongs to one machine."),
            ));
        }
    }
    Ok(())
}

fn ensure_hostname_free(conn: &mut DbConn, hostname: &str, except: Option<&str>) -> Result<()> {
    if let Some(other) = dbm::machine_with_hostname(conn, hostname)? {
        if Some(other.as_str()) != except {
            return Err(Error::conflict(
                "duplicate_hostname",
                Some("hostname"),
                format!("Hostname {hostname} is taken by machine {other}; choose another."),
            ));
        }
    }
    Ok(())
}

/// Creates a machine in New (admins only).
pub fn create(
    conn: &mut DbConn,
    sb: &SecretBox,
    caller: &Caller,
    req: &api::MachineCreate,
    now: i64,
) -> Result<api::Machine> {
    require_admin(caller, "add machines")?;

    // Validate everything before touching the database.
    let architecture = validate::architecture(
        "architecture",
        req.architecture.as_deref().unwrap_or("amd64/generic"),
    )?;
    let power_type =
        validate::power_type("power_type", req.power_type.as_deref().unwrap_or("manual"))?;
    let power_parameters = power::validate(
        &power_type,
        &req.power_parameters.clone().unwrap_or_default(),
    )?;
    let zone = validate::name("zone", req.zone.as_deref().unwrap_or("default"))?;
    let pool = validate::name("pool", req.pool.as_deref().unwrap_or("default"))?;
    let description = validate::text(
        "description",
        req.description.as_deref().unwrap_or(""),
        4096,
    )?;
    let tags = clean_tags(req.tags.as_deref().unwrap_or_default())?;
    let cpu_count = i32::try_from(validate::non_negative(
        "cpu_count",
        i64::from(req.cpu_count.unwrap_or(0)),
    )?)
    .unwrap_or(0);
    let memory_mib = validate::non_negative("memory_mib", req.memory_mib.unwrap_or(0))?;
    let storage_bytes = validate::non_negative("storage_bytes", req.storage_bytes.unwrap_or(0))?;
    let mut boot_mac = match &req.boot_mac {
        Some(m) => Some(validate::mac("boot_mac", m)?),
        None => None,
    };
    let mut ifaces: Vec<(String, String)> = Vec::new();
    for (i, iface) in req
        .interfaces
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let name = validate::name(&format!("interfaces[{i}].name"), &iface.name)?;
        let mac = validate::mac(&format!("interfaces[{i}].mac"), &iface.mac)?;
        if ifaces.iter().any(|(n, _)| *n == name) {
            return Err(Error::validation(
                format!("interfaces[{i}].name"),
                format!("Interface name {name} is given twice."),
            ));
        }
        if ifaces.iter().any(|(_, m)| *m == mac) {
            return Err(Error::validation(
                format!("interfaces[{i}].mac"),
                format!("MAC address {mac} is given twice."),
            ));
        }
        ifaces.push((name, mac));
    }
    match (&boot_mac, ifaces.is_empty()) {
        (Some(m), true) => ifaces.push(("eth0".into(), m.clone())),
        (Some(m), false) => {
            if !ifaces.iter().any(|(_, im)| im == m) {
                return Err(Error::validation(
                    "boot_mac",
                    format!("boot_mac {m} is not the MAC of any of the interfaces given; add it to interfaces or leave boot_mac out."),
                ));
            }
        }
        (None, false) => boot_mac = ifaces.first().map(|(_, m)| m.clone()),
        (None, true) => {}
    }

    let system_id = loop {
        let id = random_id(6);
        if dbm::get_row(conn, &id)?.is_none() {
            break id;
        }
    };
    let hostname = match &req.hostname {
        Some(h) => validate::hostname("hostname", h)?,
        None => format!("node-{system_id}"),
    };

    let domain_id = match &req.domain {
        Some(d) => super::dns::machine_domain(conn, d)?,
        None => None,
    };
    let (public_params, sealed_params) = power::seal(sb, &system_id, &power_parameters)?;
    conn.transaction::<_, Error, _>(|c| {
        ensure_hostname_free(c, &hostname, None)?;
        super::dns::ensure_machine_name_free(c, &hostname, domain_id.as_deref())?;
        // The field the user wrote is the one named: boot_mac first, then the interfaces given.
        if let Some(m) = req.boot_mac.as_ref().and(boot_mac.as_ref()) {
            ensure_mac_free(c, "boot_mac", m, None)?;
        }
        for (i, (_, mac)) in ifaces.iter().enumerate() {
            ensure_mac_free(c, &format!("interfaces[{i}].mac"), mac, None)?;
        }
        let row = MachineRow {
            system_id: system_id.clone(),
            hostname: hostname.clone(),
            status: MachineStatus::New.as_str().into(),
            previous_status: None,
            status_deadline: None,
            architecture: architecture.clone(),
            boot_mac: boot_mac.clone(),
            power_type: power_type.clone(),
            power_parameters: public_params.clone(),
            owner_id: None,
            zone: zone.clone(),
            pool: pool.clone(),
            description: description.clone(),
            cpu_count,
            memory_mib,
            storage_bytes,
            version: 0,
            created_at: now,
            updated_at: now,
            hardware: None,
            power_secrets: sealed_params.clone(),
            power_state: api::PowerState::Unknown.as_str().into(),
            power_state_at: None,
            skip_bmc_config: req.skip_bmc_config.unwrap_or(false),
            domain_id: domain_id.clone(),
            pod_id: None,
        };
        let iface_rows: Vec<InterfaceRow> = ifaces
            .iter()
            .map(|(name, mac)| InterfaceRow {
                id: random_id(12),
                system_id: system_id.clone(),
                name: name.clone(),
                mac: mac.clone(),
                subnet_id: None,
                ip: None,
            })
            .collect();
        dbm::insert(c, &row, &iface_rows, &tags)?;
        event(
            c,
            now,
            &system_id,
            api::EventLevel::Info,
            "created",
            &format!(
                "Machine {hostname} ({system_id}) added by {}.",
                caller.username
            ),
            Some(&caller.username),
        )?;
        db::users::audit(
            c,
            now,
            &caller.username,
            "machine.create",
            &system_id,
            &hostname,
        )?;
        Ok(())
    })
    .map_err(dbm::unique_violation_to_conflict)?;
    dbm::get(conn, &system_id)?.ok_or_else(|| not_found(&system_id))
}

/// Changes the fields given (admins only).
pub fn patch(
    conn: &mut DbConn,
    sb: &SecretBox,
    caller: &Caller,
    system_id: &str,
    p: &api::MachinePatch,
    now: i64,
) -> Result<api::Machine> {
    require_admin(caller, "edit machines")?;
    let mut changes = MachineChanges {
        updated_at: Some(now),
        ..Default::default()
    };
    if let Some(h) = &p.hostname {
        changes.hostname = Some(validate::hostname("hostname", h)?);
    }
    if let Some(a) = &p.architecture {
        changes.architecture = Some(validate::architecture("architecture", a)?);
    }
    if let Some(t) = &p.power_type {
        changes.power_type = Some(validate::power_type("power_type", t)?);
    }
    if let Some(z) = &p.zone {
        changes.zone = Some(validate::name("zone", z)?);
    }
    if let Some(pl) = &p.pool {
        changes.pool = Some(validate::name("pool", pl)?);
    }
    if let Some(d) = &p.description {
        changes.description = Some(validate::text("description", d, 4096)?);
    }
    let boot_mac = match &p.boot_mac {
        Some(m) => Some(validate::mac("boot_mac", m)?),
        None => None,
    };
    let tags = match &p.tags {
        Some(t) => Some(clean_tags(t)?),
        None => None,
    };
    changes.skip_bmc_config = p.skip_bmc_config;

    for _ in 0..CAS_TRIES {
        let row = dbm::get_row(conn, system_id)?.ok_or_else(|| not_found(system_id))?;
        let mut ch = changes.clone();
        if let Some(m) = &boot_mac {
            ensure_mac_free(conn, "boot_mac", m, Some(system_id))?;
            ch.boot_mac = Some(Some(m.clone()));
        }
        if let Some(h) = &ch.hostname {
            ensure_hostname_free(conn, h, Some(system_id))?;
        }
        if let Some(d) = &p.domain {
            ch.domain_id = Some(super::dns::machine_domain(conn, d)?);
        }
        if ch.hostname.is_some() || ch.domain_id.is_some() {
            let host = ch.hostname.clone().unwrap_or_else(|| row.hostname.clone());
            let dom = ch
                .domain_id
                .clone()
                .unwrap_or_else(|| row.domain_id.clone());
            super::dns::ensure_machine_name_free(conn, &host, dom.as_deref())?;
        }
        if p.power_parameters.is_some() || p.power_type.is_some() {
            // Same power type: the parameters given replace those stored one by one (secrets are
            // write-only, so leaving them out keeps them). A new power type starts afresh.
            let ty = ch
                .power_type
                .clone()
                .unwrap_or_else(|| row.power_type.clone());
            let mut merged = if ty == row.power_type {
                // Secrets that no longer open (another key) are what this patch replaces.
                power::full_params(sb, &row).unwrap_or_else(|_| row.power_parameters())
            } else {
                serde_json::Map::new()
            };
            for (k, v) in p.power_parameters.clone().unwrap_or_default() {
                merged.insert(k, v);
            }
            let merged = power::validate(&ty, &merged)?;
            let (public, sealed) = power::seal(sb, system_id, &merged)?;
            ch.power_parameters = Some(public);
            ch.power_secrets = Some(sealed);
        }
        let done = conn
            .transaction::<_, Error, _>(|c| {
                if !dbm::update_if_version(c, system_id, row.version, &ch)? {
                    return Ok(false);
                }
                if let Some(m) = &boot_mac {
                    // The boot MAC is one of the machine's interfaces.
                    use crate::db::schema::interfaces;
                    use diesel::prelude::*;
                    let has: i64 = interfaces::table
                        .filter(interfaces::system_id.eq(system_id))
                        .filter(interfaces::mac.eq(m))
                        .count()
                        .get_result(c)?;
                    if has == 0 {
                        let n: i64 = interfaces::table
                            .filter(interfaces::system_id.eq(system_id))
                            .count()
                            .get_result(c)?;
                        dbm::insert_interface(
                            c,
                            &InterfaceRow {
                                id: random_id(12),
                                system_id: system_id.into(),
                                name: format!("eth{n}"),
                                mac: m.clone(),
                                subnet_id: None,
                                ip: None,
                            },
                        )?;
                    }
                }
                if let Some(t) = &tags {
                    dbm::set_tags(c, system_id, t)?;
                }
                let fields: Vec<&str> = [
                    ("hostname", p.hostname.is_some()),
                    ("architecture", p.architecture.is_some()),
                    ("boot_mac", p.boot_mac.is_some()),
                    ("power_type", p.power_type.is_some()),
                    ("power_parameters", p.power_parameters.is_some()),
                    ("skip_bmc_config", p.skip_bmc_config.is_some()),
                    ("zone", p.zone.is_some()),
                    ("pool", p.pool.is_some()),
                    ("tags", p.tags.is_some()),
                    ("description", p.description.is_some()),
                    ("domain", p.domain.is_some()),
                ]
                .into_iter()
                .filter_map(|(n, set)| set.then_some(n))
                .collect();
                let what = fields.join(", ");
                event(
                    c,
                    now,
                    system_id,
                    api::EventLevel::Info,
                    "updated",
                    &format!("Machine updated by {} ({what}).", caller.username),
                    Some(&caller.username),
                )?;
                db::users::audit(c, now, &caller.username, "machine.update", system_id, &what)?;
                Ok(true)
            })
            .map_err(dbm::unique_violation_to_conflict)?;
        if done {
            return dbm::get(conn, system_id)?.ok_or_else(|| not_found(system_id));
        }
    }
    Err(busy_conflict(system_id))
}

fn busy_conflict(system_id: &str) -> Error {
    Error::conflict(
        "concurrent_update",
        None,
        format!(
            "Machine {system_id} kept changing while this request ran; reload it and try again."
        ),
    )
}

/// Work an action does inside its transaction, after the status change.
pub type OnCommit<'a> = &'a dyn Fn(&mut DbConn, &dbm::MachineRow, MachineStatus) -> Result<()>;

/// What an action does beyond the lifecycle table (deploy and release with erase).
#[derive(Default, Clone, Copy)]
pub struct ActExtra<'a> {
    /// Runs in the status change's transaction with the row before and the new status; an error
    /// undoes the change (nothing is powered).
    pub on_commit: Option<OnCommit<'a>>,
    /// Release with erase: Disk erasing instead of Releasing/Ready.
    pub erase: bool,
    /// The action's power job is queued later, not with the status change (an iSCSI deployment
    /// powers on once its volume is served).
    pub defer_power: bool,
}

/// Whether `action` is allowed for the caller on the machine now (the same refusal as [`act`]),
/// so an action with more input can say "commission it first" before judging the rest.
pub fn precheck(
    conn: &mut DbConn,
    caller: &Caller,
    row: &MachineRow,
    action: MachineAction,
) -> Result<()> {
    let owner_name = match &row.owner_id {
        Some(id) => dbm::username_of(conn, id)?,
        None => None,
    };
    let facts = MachineFacts {
        status: row.status(),
        previous_status: row.previous_status(),
        owner: owner_name.as_deref(),
        power_controllable: row.power_type != "manual",
    };
    let actor = Actor {
        username: &caller.username,
        is_admin: caller.is_admin,
    };
    lifecycle::decide(&facts, &actor, action)
        .map(|_| ())
        .map_err(|r| match r {
            r @ Refusal::InvalidState { .. } => Error::InvalidTransition(r.message(&row.system_id)),
            r @ Refusal::Forbidden { .. } => Error::Forbidden(r.message(&row.system_id)),
        })
}

/// Runs a lifecycle action. Returns the machine afterwards (`None` after delete).
pub fn act(
    conn: &mut DbConn,
    caller: &Caller,
    system_id: &str,
    action: MachineAction,
    comment: Option<&str>,
    timeouts: &Lifecycle,
    now: i64,
) -> Result<Option<api::Machine>> {
    act_with(
        conn,
        caller,
        system_id,
        action,
        comment,
        timeouts,
        now,
        ActExtra::default(),
    )
}

/// [`act`] with the extras of deploy and release.
#[allow(clippy::too_many_arguments)]
pub fn act_with(
    conn: &mut DbConn,
    caller: &Caller,
    system_id: &str,
    action: MachineAction,
    comment: Option<&str>,
    timeouts: &Lifecycle,
    now: i64,
    extra: ActExtra<'_>,
) -> Result<Option<api::Machine>> {
    let comment = match comment {
        Some(c) => Some(validate::text("comment", c, 1024)?),
        None => None,
    };
    for _ in 0..CAS_TRIES {
        let row = visible_row(conn, caller, system_id)?;
        let owner_name = match &row.owner_id {
            Some(id) => dbm::username_of(conn, id)?,
            None => None,
        };
        let status = row.status();
        let facts = MachineFacts {
            status,
            previous_status: row.previous_status(),
            owner: owner_name.as_deref(),
            power_controllable: row.power_type != "manual",
        };
        let actor = Actor {
            username: &caller.username,
            is_admin: caller.is_admin,
        };
        let decision = lifecycle::decide(&facts, &actor, action).map_err(|r| match r {
            r @ Refusal::InvalidState { .. } => Error::InvalidTransition(r.message(system_id)),
            r @ Refusal::Forbidden { .. } => Error::Forbidden(r.message(system_id)),
        })?;
        let suffix = comment
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| format!(" Comment: {c}"))
            .unwrap_or_default();

        let done = match &decision {
            // A composed machine goes once its VM is gone (the pod job's end deletes it).
            Decision::Delete if row.pod_id.is_some() => {
                super::pods::queue_decompose(conn, &row, &caller.username, now)?;
                return Ok(None);
            }
            Decision::Delete => conn.transaction::<_, Error, _>(|c| {
                if !dbm::delete_if_version(c, system_id, row.version)? {
                    return Ok(false);
                }
                // Its root volume on iSCSI, if any, goes with it.
                super::volumes::retire(c, system_id, false, now)?;
                event(
                    c,
                    now,
                    system_id,
                    api::EventLevel::Info,
                    "deleted",
                    &format!(
                        "Machine {} deleted by {}.{suffix}",
                        row.hostname, caller.username
                    ),
                    Some(&caller.username),
                )?;
                db::users::audit(
                    c,
                    now,
                    &caller.username,
                    "machine.delete",
                    system_id,
                    &row.hostname,
                )?;
                Ok(true)
            })?,
            Decision::Transition { to, owner, via } => {
                let (mut to, mut owner, via) = (*to, owner.clone(), *via);
                if extra.erase && action == MachineAction::Release {
                    // The owner keeps the machine until its disks are erased.
                    to = MachineStatus::DiskErasing;
                    owner = OwnerChange::Keep;
                }
                let deadline = lifecycle::deadline_kind(to).map(|k| {
                    let secs = match k {
                        DeadlineKind::Node => timeouts.node_timeout_secs,
                        DeadlineKind::Short => timeouts.release_timeout_secs,
                    };
                    now + i64::try_from(secs).unwrap_or(i64::MAX / 2_000) * 1000
                });
                let owner_id = match owner {
                    OwnerChange::Keep => None,
                    OwnerChange::Clear => Some(None),
                    OwnerChange::Set(_) => Some(Some(caller.user_id.clone())),
                };
                let path = match via {
                    Some(v) => format!("{} → {} → {}", status.label(), v.label(), to.label()),
                    None => format!("{} → {}", status.label(), to.label()),
                };
                let ch = StatusChange {
                    status: to,
                    previous_status: via.unwrap_or(status),
                    deadline,
                    owner_id,
                    now,
                };
                conn.transaction::<_, Error, _>(|c| {
                    if !dbm::change_status(c, system_id, row.version, &ch)? {
                        return Ok(false);
                    }
                    event(
                        c,
                        now,
                        system_id,
                        api::EventLevel::Info,
                        "status_changed",
                        &format!(
                            "{} by {}: {path}.{suffix}",
                            action_label(action),
                            caller.username
                        ),
                        Some(&caller.username),
                    )?;
                    db::users::audit(
                        c,
                        now,
                        &caller.username,
                        &format!("machine.{action}"),
                        system_id,
                        &format!("{status} -> {to}"),
                    )?;
                    if let Some(f) = extra.on_commit {
                        f(c, &row, to)?;
                    }
                    // An aborted deployment or erase is over: its credential stops working.
                    if action == MachineAction::Abort
                        && matches!(
                            status,
                            MachineStatus::Deploying | MachineStatus::DiskErasing
                        )
                    {
                        db::deploy::end_all(c, system_id, "failed", now)?;
                        db::commissioning::delete_boot_tokens(c, system_id)?;
                        super::volumes::retire(c, system_id, false, now)?;
                    }
                    // Power follows in the same transaction: a crash leaves both or neither.
                    if let Some((a, boot, purpose)) =
                        power_for(action, status, to).filter(|_| !extra.defer_power)
                    {
                        power::enqueue(c, &row, a, boot, purpose, Some(&caller.username), now)?;
                    }
                    Ok(true)
                })?
            }
        };
        if done {
            tracing::info!(machine.id = %system_id, action = %action, user = %caller.username, "machine {system_id}: {action} by {}", caller.username);
            return match decision {
                Decision::Delete => Ok(None),
                Decision::Transition { .. } => dbm::get(conn, system_id),
            };
        }
    }
    Err(busy_conflict(system_id))
}

/// The power job a lifecycle action starts (MAAS: commissioning boots from the network, releasing
/// and aborting power off).
fn power_for(
    action: MachineAction,
    from: MachineStatus,
    to: MachineStatus,
) -> Option<(api::PowerAction, Option<api::BootDevice>, Purpose)> {
    use api::PowerAction as P;
    match (action, from, to) {
        (MachineAction::Commission, _, _) => {
            Some((P::Cycle, Some(api::BootDevice::Pxe), Purpose::Commission))
        }
        (MachineAction::Release, _, MachineStatus::Releasing) => {
            Some((P::Off, None, Purpose::Release))
        }
        (MachineAction::Release, _, MachineStatus::DiskErasing) => {
            Some((P::Cycle, Some(api::BootDevice::Pxe), Purpose::Erase))
        }
        (MachineAction::Deploy, _, MachineStatus::Deploying) => {
            Some((P::Cycle, Some(api::BootDevice::Pxe), Purpose::Deploy))
        }
        (
            MachineAction::Abort,
            MachineStatus::Commissioning
            | MachineStatus::Testing
            | MachineStatus::Deploying
            | MachineStatus::DiskErasing,
            _,
        ) => Some((P::Off, None, Purpose::Abort)),
        _ => None,
    }
}

fn action_label(a: MachineAction) -> &'static str {
    match a {
        MachineAction::Commission => "Commissioning started",
        MachineAction::Abort => "Operation aborted",
        MachineAction::Allocate => "Allocated",
        MachineAction::Deploy => "Deployment started",
        MachineAction::Release => "Released",
        MachineAction::MarkBroken => "Marked broken",
        MachineAction::MarkFixed => "Marked fixed",
        MachineAction::Rescue => "Rescue mode requested",
        MachineAction::ExitRescue => "Exit from rescue mode requested",
        MachineAction::Delete => "Deleted",
    }
}
