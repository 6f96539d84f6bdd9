//! Power control, region side: power parameters validated by the drivers' schemas and sealed at
//! rest; power jobs queued for a rack that reaches the BMC; racks' answers turned into the
//! machine's power state, events and lifecycle follow-ups (Releasing → Ready once off; a failed
//! power-on fails commissioning). `manual` machines get an event asking the operator instead.

use diesel::Connection;
use region_api_types::{
    self as api, BootDevice, EventLevel, MachineStatus, PowerAction, PowerState,
};
use serde_json::{Map, Value};

use super::access::{event, visible_row};
use super::secrets::{self, SecretBox};
use super::Caller;
use crate::db::machines::{self as dbm, StatusChange};
use crate::db::power::{self as dbp, JobRow};
use crate::db::{random_id, DbConn};
use crate::error::{Error, Result};

/// Why a job exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An operator or script asked (`POST .../power-on`).
    User,
    /// Commissioning boots the machine (PXE next, then cycle).
    Commission,
    /// Commissioning finished: power off.
    CommissionDone,
    /// Releasing powers off; Ready once off.
    Release,
    /// An aborted operation powers off.
    Abort,
    /// The periodic state check.
    Poll,
    /// A deployment boots the machine (PXE next, then cycle).
    Deploy,
    /// A release with erase boots the eraser (PXE next, then cycle).
    Erase,
    /// Erasing finished: power off.
    EraseDone,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::User => "user",
            Purpose::Commission => "commission",
            Purpose::CommissionDone => "commission_done",
            Purpose::Release => "release",
            Purpose::Abort => "abort",
            Purpose::Poll => "poll",
            Purpose::Deploy => "deploy",
            Purpose::Erase => "erase",
            Purpose::EraseDone => "erase_done",
        }
    }
}

/// Validates `params` for `power_type` (400 naming `power_parameters.<field>`).
pub fn validate(power_type: &str, params: &Map<String, Value>) -> Result<Map<String, Value>> {
    region_api_types::power_params::validate(power_type, params).map_err(|e| {
        let field = if e.field == "power_type" {
            "power_type".to_string()
        } else {
            format!("power_parameters.{}", e.field)
        };
        Error::validation(field, e.message)
    })
}

/// (public JSON, sealed secrets) to store for a machine.
pub fn seal(
    sb: &SecretBox,
    system_id: &str,
    params: &Map<String, Value>,
) -> Result<(String, String)> {
    let (public, hidden) = secrets::split(params);
    Ok((
        Value::Object(public).to_string(),
        sb.seal(system_id, &hidden)?,
    ))
}

/// Everything a driver needs: public parameters plus the opened secrets.
pub fn full_params(sb: &SecretBox, row: &dbm::MachineRow) -> Result<Map<String, Value>> {
    let mut all = row.power_parameters();
    for (k, v) in sb.open(&row.system_id, &row.power_secrets)? {
        all.insert(k, v);
    }
    Ok(all)
}

/// Names of the machine's secret power parameters that have a value (admins: they edit them). The
/// values themselves never leave the region.
pub fn secrets_set(
    conn: &mut DbConn,
    sb: &SecretBox,
    caller: &Caller,
    system_id: &str,
) -> Result<Vec<String>> {
    super::access::require_admin(caller, "see power settings")?;
    let row = visible_row(conn, caller, system_id)?;
    let mut names: Vec<String> = sb
        .open(&row.system_id, &row.power_secrets)?
        .into_iter()
        .filter(|(_, v)| !matches!(v, Value::Null) && v.as_str() != Some(""))
        .map(|(k, _)| k)
        .collect();
    names.sort();
    Ok(names)
}

/// Moves secret parameters stored in the clear (before this region sealed them) into the sealed
/// column. Runs at start; idempotent.
pub fn seal_plain_secrets(conn: &mut DbConn, sb: &SecretBox) -> Result<usize> {
    let mut n = 0;
    for (id, params, sealed) in dbp::machines_with_params(conn)? {
        let map: Map<String, Value> = serde_json::from_str(&params).unwrap_or_default();
        let (public, plain) = secrets::split(&map);
        if plain.is_empty() {
            continue;
        }
        let mut all = sb.open(&id, &sealed)?;
        for (k, v) in plain {
            all.insert(k, v);
        }
        dbp::set_params(
            conn,
            &id,
            &Value::Object(public).to_string(),
            &sb.seal(&id, &all)?,
        )?;
        n += 1;
    }
    Ok(n)
}

/// The BMC's IPv4 address, when its parameters name one: IPMI's address, the host of a Redfish
/// address, a libvirt URI or a webhook URL. `None` for a local libvirt URI (`qemu:///system`) or
/// a host name.
pub fn bmc_address(power_type: &str, params: &Map<String, Value>) -> Option<std::net::Ipv4Addr> {
    let get = |k: &str| params.get(k).and_then(Value::as_str);
    let host = match power_type {
        "ipmi" => get("power_address").map(str::to_string),
        "redfish" => get("power_address").and_then(|a| {
            let url = if a.contains("://") {
                a.to_string()
            } else {
                format!("https://{a}")
            };
            super::pod_jobs::uri_host(&url)
        }),
        "virsh" => get("power_address").and_then(super::pod_jobs::uri_host),
        "webhook" => get("power_on_uri").and_then(super::pod_jobs::uri_host),
        _ => None,
    };
    host.and_then(|h| h.parse().ok())
}

/// The rack that drives a BMC: an approved rack an admin said serves the BMC's network (the
/// longest matching power network wins, then the rack heard from last); for a BMC without an
/// address, one that serves every network (`0.0.0.0/0`). `None`: no such rack (the job waits).
/// What a rack says about its own interfaces is not enough.
pub fn rack_for(
    conn: &mut DbConn,
    power_type: &str,
    params: &Map<String, Value>,
) -> Result<Option<String>> {
    Ok(rack_for_in(
        &crate::db::racks::list(conn)?,
        power_type,
        params,
    ))
}

/// [`rack_for`] among `racks` (pure: a loop over many jobs lists the racks once).
pub fn rack_for_in(
    racks: &[crate::db::racks::RackRow],
    power_type: &str,
    params: &Map<String, Value>,
) -> Option<String> {
    match bmc_address(power_type, params) {
        Some(ip) => reaching_in(racks, ip),
        None => best_rack(racks, |nets| {
            nets.iter().any(|n| n.prefix_len() == 0).then_some(0)
        }),
    }
}

/// The approved rack with the longest power network holding `ip` (then the one heard from last).
/// Pending and revoked racks get no jobs: they carry BMC secrets.
pub fn rack_reaching(conn: &mut DbConn, ip: std::net::Ipv4Addr) -> Result<Option<String>> {
    Ok(reaching_in(&crate::db::racks::list(conn)?, ip))
}

fn reaching_in(racks: &[crate::db::racks::RackRow], ip: std::net::Ipv4Addr) -> Option<String> {
    best_rack(racks, |nets| {
        nets.iter()
            .filter(|n| n.contains(&ip))
            .map(|n| n.prefix_len())
            .max()
    })
}

fn best_rack(
    racks: &[crate::db::racks::RackRow],
    fit: impl Fn(&[ipnet::Ipv4Net]) -> Option<u8>,
) -> Option<String> {
    let mut best: Option<((u8, i64), &str)> = None;
    for r in racks.iter().filter(|r| r.approval == "approved") {
        let Some(prefix) = fit(&r.power_nets()) else {
            continue;
        };
        let key = (prefix, r.last_seen.unwrap_or(0));
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, r.id.as_str()));
        }
    }
    best.map(|(_, id)| id.to_string())
}

/// Queues a job (call inside the transaction that decided it). Returns its id, or `None` for
/// `manual` machines, which get an event asking the operator instead.
#[allow(clippy::too_many_arguments)]
pub fn enqueue(
    conn: &mut DbConn,
    row: &dbm::MachineRow,
    action: PowerAction,
    boot: Option<BootDevice>,
    purpose: Purpose,
    requested_by: Option<&str>,
    now: i64,
) -> Result<Option<String>> {
    if !region_api_types::power_params::controllable(&row.power_type) {
        if action != PowerAction::Query && purpose != Purpose::Poll {
            let what = match action {
                PowerAction::On => "power on",
                PowerAction::Off => "power off",
                PowerAction::Cycle => "power on (or restart)",
                PowerAction::Query => "check",
            };
            let boot = match boot {
                Some(BootDevice::Pxe) => ", booting from the network (PXE)",
                Some(BootDevice::Disk) => ", booting from its disk",
                None => "",
            };
            event(
                conn,
                now,
                &row.system_id,
                EventLevel::Warning,
                "power_manual",
                &format!(
                    "Power type manual: {what} machine {} by hand{boot}.",
                    row.hostname
                ),
                requested_by,
            )?;
        }
        return Ok(None);
    }
    let rack_id = rack_for(conn, &row.power_type, &row.power_parameters())?;
    if rack_id.is_none() && purpose != Purpose::Poll {
        let bmc = bmc_address(&row.power_type, &row.power_parameters())
            .map(|ip| format!("the BMC at {ip}"))
            .unwrap_or_else(|| "a BMC with no address (every network)".into());
        event(
            conn,
            now,
            &row.system_id,
            EventLevel::Warning,
            "power_waiting",
            &format!(
                "The power job waits: no approved rack drives {bmc}. An admin says which rack does: kiln racks update RACK --power-network CIDR."
            ),
            requested_by,
        )?;
    }
    let id = random_id(12);
    dbp::insert(
        conn,
        &JobRow {
            id: id.clone(),
            system_id: row.system_id.clone(),
            action: action.as_str().into(),
            boot_device: boot.map(|b| b.as_str().to_string()),
            purpose: purpose.as_str().into(),
            status: "pending".into(),
            rack_id,
            taken_by: None,
            power_state: None,
            message: None,
            requested_by: requested_by.map(str::to_string),
            created_at: now,
            taken_at: None,
            finished_at: None,
        },
    )?;
    Ok(Some(id))
}

/// An operator's power request. Admins and the machine's owner may switch power; anyone who can
/// see a machine may query it.
pub fn request(
    conn: &mut DbConn,
    caller: &Caller,
    system_id: &str,
    action: PowerAction,
    boot: Option<BootDevice>,
    now: i64,
) -> Result<Option<String>> {
    let row = visible_row(conn, caller, system_id)?;
    if action != PowerAction::Query
        && !caller.is_admin
        && row.owner_id.as_deref() != Some(caller.user_id.as_str())
    {
        return Err(Error::Forbidden(format!(
            "You may not power machine {system_id}: only administrators and its owner may."
        )));
    }
    let id = conn.transaction::<_, Error, _>(|c| {
        let id = enqueue(
            c,
            &row,
            action,
            boot,
            Purpose::User,
            Some(&caller.username),
            now,
        )?;
        if id.is_some() {
            crate::db::users::audit(
                c,
                now,
                &caller.username,
                &format!("machine.power_{action}"),
                system_id,
                "",
            )?;
        }
        Ok(id)
    })?;
    tracing::info!(machine.id = %system_id, "machine {system_id}: power {action} requested by {}", caller.username);
    Ok(id)
}

/// A job as the API shows it.
pub fn job(conn: &mut DbConn, id: &str) -> Result<Option<api::PowerJob>> {
    let Some(j) = dbp::get(conn, id)? else {
        return Ok(None);
    };
    let rack = match &j.taken_by {
        Some(r) => crate::db::racks::get(conn, r)?.map(|r| r.name),
        None => None,
    };
    Ok(Some(j.to_api(rack)))
}

/// Jobs for a rack: takes up to `max` pending ones and hands them over with opened secrets.
pub fn take_jobs(
    conn: &mut DbConn,
    sb: &SecretBox,
    rack_id: &str,
    max: i64,
    now: i64,
) -> Result<Vec<api::RackPowerJob>> {
    let mut out = Vec::new();
    // Listed once for the jobs no rack was named for (not once per job).
    let mut racks: Option<Vec<crate::db::racks::RackRow>> = None;
    for j in dbp::pending_for(conn, rack_id, max)? {
        let Some(row) = dbm::get_row(conn, &j.system_id)? else {
            continue;
        };
        // A job no rack could drive when it was queued: whoever drives its BMC now (an admin
        // may have named a rack since) gets it, and nobody else.
        if j.rack_id.is_none() {
            let known = match &racks {
                Some(r) => r,
                None => racks.insert(crate::db::racks::list(conn)?),
            };
            match rack_for_in(known, &row.power_type, &row.power_parameters()) {
                Some(r) if r == rack_id => {}
                Some(r) => {
                    dbp::assign(conn, &j.id, &r)?;
                    continue;
                }
                None => continue,
            }
        }
        if !dbp::take(conn, &j.id, rack_id, now)? {
            continue;
        }
        let params = match full_params(sb, &row) {
            Ok(p) => p,
            Err(e) => {
                let res = api::RackPowerResult {
                    ok: false,
                    power_state: PowerState::Error,
                    message: e.to_string(),
                    fatal: true,
                };
                finish(conn, rack_id, &j.id, &res, now)?;
                continue;
            }
        };
        out.push(api::RackPowerJob {
            id: j.id.clone(),
            system_id: j.system_id.clone(),
            action: j.action(),
            boot_device: j.boot_device.as_deref().and_then(BootDevice::parse),
            power_type: row.power_type.clone(),
            power_parameters: params,
        });
    }
    Ok(out)
}

fn verb(a: PowerAction) -> &'static str {
    match a {
        PowerAction::On => "Power on",
        PowerAction::Off => "Power off",
        PowerAction::Cycle => "Power cycle",
        PowerAction::Query => "Power query",
    }
}

/// A rack's answer to a job: records it and applies what follows from it.
pub fn finish(
    conn: &mut DbConn,
    rack_id: &str,
    job_id: &str,
    r: &api::RackPowerResult,
    now: i64,
) -> Result<()> {
    let Some(j) = dbp::get(conn, job_id)? else {
        return Err(Error::not_found(format!("power job {job_id}")));
    };
    if j.taken_by.as_deref() != Some(rack_id) {
        return Err(Error::not_found(format!("power job {job_id} of this rack")));
    }
    let message: String = r.message.chars().take(1000).collect();
    let state = if r.ok {
        r.power_state
    } else {
        PowerState::Error
    };
    conn.transaction::<_, Error, _>(|c| {
        if !dbp::finish(
            c,
            job_id,
            "running",
            r.ok,
            Some(state.as_str()),
            &message,
            now,
        )? {
            return Ok(());
        }
        let Some(row) = dbm::get_row(c, &j.system_id)? else {
            return Ok(());
        };
        let before = PowerState::parse(&row.power_state);
        dbp::set_machine_state(c, &j.system_id, state.as_str(), now)?;
        let action = j.action();
        let purpose = j.purpose.as_str();
        if r.ok {
            if purpose == "poll" {
                if before != state && before != PowerState::Unknown {
                    event(
                        c,
                        now,
                        &j.system_id,
                        EventLevel::Info,
                        "power_state_changed",
                        &format!("Power state changed: {before} → {state}."),
                        None,
                    )?;
                }
            } else {
                event(
                    c,
                    now,
                    &j.system_id,
                    EventLevel::Info,
                    &format!("power_{action}"),
                    &format!("{}: {message}.", verb(action)),
                    j.requested_by.as_deref(),
                )?;
            }
        } else if purpose != "poll" || before != PowerState::Error {
            let hint = if r.fatal {
                " Fix the power settings; Kiln will not retry."
            } else {
                ""
            };
            event(
                c,
                now,
                &j.system_id,
                EventLevel::Error,
                "power_failed",
                &format!("{} failed: {message}.{hint}", verb(action)),
                j.requested_by.as_deref(),
            )?;
        }
        follow_up(
            c,
            &row,
            purpose,
            r.ok && (action != PowerAction::Off || state == PowerState::Off),
            &message,
            now,
        )?;
        Ok(())
    })?;
    tracing::info!(machine.id = %j.system_id, "machine {}: power {} {}: {message}", j.system_id, j.action, if r.ok { "done" } else { "failed" });
    Ok(())
}

/// Lifecycle consequences of a finished job.
fn follow_up(
    conn: &mut DbConn,
    row: &dbm::MachineRow,
    purpose: &str,
    ok: bool,
    message: &str,
    now: i64,
) -> Result<()> {
    let status = row.status();
    let (to, owner, text) = match (purpose, ok, status) {
        ("release", true, MachineStatus::Releasing) => (
            MachineStatus::Ready,
            Some(None),
            "Released: powered off.".to_string(),
        ),
        ("release", false, MachineStatus::Releasing) => (
            MachineStatus::FailedReleasing,
            None,
            format!("Releasing failed: the machine could not be powered off ({message})."),
        ),
        ("commission", false, MachineStatus::Commissioning) => (
            MachineStatus::FailedCommissioning,
            None,
            format!("Commissioning failed: the machine could not be powered on ({message})."),
        ),
        ("deploy", false, MachineStatus::Deploying) => (
            MachineStatus::FailedDeployment,
            None,
            format!("Deployment failed: the machine could not be powered on ({message})."),
        ),
        ("erase", false, MachineStatus::DiskErasing) => (
            MachineStatus::FailedDiskErasing,
            None,
            format!("Disk erasing failed: the machine could not be powered on ({message})."),
        ),
        _ => return Ok(()),
    };
    if dbm::change_status(
        conn,
        &row.system_id,
        row.version,
        &StatusChange {
            status: to,
            previous_status: status,
            deadline: None,
            owner_id: owner,
            now,
        },
    )? {
        let level = if ok {
            EventLevel::Info
        } else {
            EventLevel::Error
        };
        event(
            conn,
            now,
            &row.system_id,
            level,
            "status_changed",
            &format!("{text} {} → {}.", status.label(), to.label()),
            None,
        )?;
    }
    Ok(())
}

/// Fails jobs no rack finished within `timeout_ms`, and prunes old finished ones.
pub fn expire(conn: &mut DbConn, now: i64, timeout_ms: i64) -> Result<usize> {
    let mut n = 0;
    for j in dbp::stale(conn, now - timeout_ms, 500)? {
        let msg = if j.status == "pending" {
            match &j.rack_id {
                Some(r) => format!(
                    "rack {r}, the one on the BMC's network, did not take the job; is it running?"
                ),
                None => "no rack took the job: is an approved rack running whose power networks hold the BMC's address (kiln racks list)?".to_string(),
            }
        } else {
            format!(
                "rack {} took the job but never answered",
                j.taken_by.as_deref().unwrap_or("?")
            )
        };
        let res = api::RackPowerResult {
            ok: false,
            power_state: PowerState::Error,
            message: msg,
            fatal: false,
        };
        let rack = j.taken_by.clone().unwrap_or_default();
        // Move pending ones to running first so `finish` (which expects running) applies.
        if j.status == "pending" && !dbp::take(conn, &j.id, &rack, now)? {
            continue;
        }
        finish(conn, &rack, &j.id, &res, now)?;
        n += 1;
    }
    dbp::prune(conn, now - 7 * 24 * 3600 * 1000)?;
    Ok(n)
}

/// Queues state queries for controllable machines not checked for `every_ms`.
pub fn enqueue_polls(conn: &mut DbConn, now: i64, every_ms: i64) -> Result<usize> {
    let ids = dbp::due_for_poll(conn, now - every_ms, 500)?;
    let mut n = 0;
    for id in ids {
        if let Some(row) = dbm::get_row(conn, &id)? {
            if enqueue(
                conn,
                &row,
                PowerAction::Query,
                None,
                Purpose::Poll,
                None,
                now,
            )?
            .is_some()
            {
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Commissioning found a BMC and made a Kiln user on it: the machine becomes `ipmi` with those
/// credentials (keeping a known address when the BMC reports none).
pub fn bmc_configured(
    conn: &mut DbConn,
    sb: &SecretBox,
    system_id: &str,
    rep: &api::BmcReport,
    now: i64,
) -> Result<()> {
    let user = crate::domain::validate::text("user", &rep.user, 16)?;
    if user.is_empty() || rep.password.is_empty() || rep.password.len() > 20 {
        return Err(Error::validation(
            "password",
            "a BMC user and a password of 1-20 characters are needed",
        ));
    }
    let Some(row) = dbm::get_row(conn, system_id)? else {
        return Err(Error::not_found(format!("machine {system_id}")));
    };
    // Only while commissioning: a boot token of another kind of boot may not rewrite credentials.
    if row.status() != MachineStatus::Commissioning {
        return Err(Error::InvalidTransition(format!(
            "machine {system_id} is {}; BMC credentials are taken only while commissioning",
            row.status().label()
        )));
    }
    if row.skip_bmc_config {
        return Err(Error::Conflict {
            code: "bmc_config_skipped",
            field: None,
            message: format!("machine {system_id} is set to skip BMC configuration"),
        });
    }
    let reported = rep.address.trim();
    let reported_ok = reported
        .parse::<std::net::Ipv4Addr>()
        .is_ok_and(|a| !a.is_unspecified());
    // Secrets that no longer open (another key) are replaced, not a reason to refuse.
    let mut params = if row.power_type == "ipmi" {
        full_params(sb, &row).unwrap_or_else(|_| row.power_parameters())
    } else {
        Map::new()
    };
    if reported_ok {
        params.insert("power_address".into(), Value::String(reported.to_string()));
    }
    if params
        .get("power_address")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        event(conn, now, system_id, EventLevel::Warning, "bmc_config",
            &format!("The BMC has a Kiln user ({user}) but reports no LAN address; set power_address to use it."), None)?;
        return Ok(());
    }
    params.insert("power_user".into(), Value::String(user.clone()));
    params.insert("power_pass".into(), Value::String(rep.password.clone()));
    let params = validate("ipmi", &params)?;
    let (public, sealed) = seal(sb, system_id, &params)?;
    let addr = params
        .get("power_address")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    conn.transaction::<_, Error, _>(|c| {
        use crate::db::schema::machines;
        use diesel::prelude::*;
        diesel::update(machines::table.find(system_id))
            .set((
                machines::power_type.eq("ipmi"),
                machines::power_parameters.eq(&public),
                machines::power_secrets.eq(&sealed),
                machines::updated_at.eq(now),
                machines::version.eq(machines::version + 1),
            ))
            .execute(c)?;
        event(
            c,
            now,
            system_id,
            EventLevel::Info,
            "bmc_config",
            &format!("BMC configured: user {user} at {addr}; power type is now ipmi."),
            None,
        )?;
        Ok(())
    })?;
    tracing::info!(machine.id = %system_id, "machine {system_id}: BMC configured (user {user} at {addr})");
    Ok(())
}
