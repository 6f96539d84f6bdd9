//! Enlistment and commissioning: what the region decides when a machine PXE boots (enlist it if
//! unknown, commission it if so configured, mint this boot's credential), and what it does with the
//! commissioning runner's reports (script results → inventory → Ready or Failed commissioning).
//!
//! The machine authenticates with a per-boot token ([`super::boot::authenticate`]); it can only read
//! and write its own data because every operation here takes the machine from the token, never
//! from input.

use super::boot::MachineBoot;
use super::power;
use std::collections::HashMap;

use super::access::system_event as event;
use diesel::Connection;
use region_api_types::{self as api, MachineStatus};

use super::{inventory, validate, Caller};
use crate::db::commissioning::{self as dbc, ScriptRow};
use crate::db::machines::{self as dbm, InterfaceRow, StatusChange};
use crate::db::{self, fmt_time, random_id, DbConn};
use crate::error::{Error, Result};

/// Largest script output kept (the rest is cut, with a note).
pub const MAX_OUTPUT: usize = 4 << 20;
/// Default and largest operator script timeout.
pub const DEFAULT_TIMEOUT: i32 = 600;
pub const MAX_TIMEOUT: i32 = 86_400;

/// Kiln's built-in commissioning scripts, in the order they run: (name, description, content,
/// timeout). Their output is parsed by [`inventory`].
pub const BUILTIN: &[(&str, &str, &str, i32)] = &[
    (
        inventory::CPU,
        "Processors (lscpu)",
        include_str!("../../scripts/commissioning/kiln-cpu"),
        60,
    ),
    (
        inventory::MEMORY,
        "Memory (SMBIOS DIMMs, MemTotal)",
        include_str!("../../scripts/commissioning/kiln-memory"),
        60,
    ),
    (
        inventory::BLOCK_DEVICES,
        "Disks: size, model, serial",
        include_str!("../../scripts/commissioning/kiln-block-devices"),
        120,
    ),
    (
        inventory::INTERFACES,
        "Network interfaces: MAC, link, speed, driver",
        include_str!("../../scripts/commissioning/kiln-interfaces"),
        120,
    ),
    (
        "kiln-lshw",
        "Full hardware tree (lshw)",
        include_str!("../../scripts/commissioning/kiln-lshw"),
        600,
    ),
    (
        inventory::DMIDECODE,
        "Firmware type and SMBIOS tables (dmidecode)",
        include_str!("../../scripts/commissioning/kiln-dmidecode"),
        120,
    ),
    (
        inventory::BMC,
        "BMC presence (/dev/ipmi0) and its LAN settings",
        include_str!("../../scripts/commissioning/kiln-bmc"),
        120,
    ),
    (
        "kiln-bmc-config",
        "BMC auto-configuration: a Kiln user on the BMC, reported for IPMI power",
        include_str!("../../scripts/commissioning/kiln-bmc-config"),
        120,
    ),
];

/// Statuses in which a PXE-booting machine runs the ephemeral environment.
pub fn boots_ephemeral(st: MachineStatus) -> bool {
    use MachineStatus as S;
    matches!(
        st,
        S::New
            | S::Commissioning
            | S::Testing
            | S::Deploying
            | S::DiskErasing
            | S::EnteringRescueMode
            | S::RescueMode
    )
}

/// Whether Kiln powers the machine off at the end of commissioning (through its BMC) rather than
/// the ephemeral environment powering itself off.
pub fn power_off_by_kiln(row: &dbm::MachineRow) -> bool {
    region_api_types::power_params::controllable(&row.power_type)
}

/// The caller region-internal actions are recorded as.
pub fn system_caller() -> Caller {
    Caller {
        user_id: String::new(),
        username: "kiln".into(),
        is_admin: true,
        scope: api::TokenScope::Admin,
    }
}

fn builtin_api() -> impl Iterator<Item = api::Script> {
    BUILTIN.iter().map(|(name, desc, content, t)| api::Script {
        name: name.to_string(),
        description: desc.to_string(),
        timeout_secs: *t,
        builtin: true,
        content: content.to_string(),
        created_at: None,
        updated_at: None,
    })
}

/// Every commissioning script: built-ins first, then the operator's by name.
pub fn list_scripts(conn: &mut DbConn) -> Result<Vec<api::Script>> {
    let mut out: Vec<api::Script> = builtin_api().collect();
    out.extend(dbc::list_scripts(conn)?.iter().map(ScriptRow::to_api));
    Ok(out)
}

pub fn get_script(conn: &mut DbConn, name: &str) -> Result<api::Script> {
    if let Some(b) = builtin_api().find(|s| s.name == name) {
        return Ok(b);
    }
    dbc::get_script(conn, name)?
        .map(|r| r.to_api())
        .ok_or_else(|| Error::not_found(format!("commissioning script {name}")))
}

/// What the runner receives.
pub fn runner_scripts(conn: &mut DbConn) -> Result<Vec<api::RunnerScript>> {
    Ok(list_scripts(conn)?
        .into_iter()
        .map(|s| api::RunnerScript {
            name: s.name,
            timeout_secs: s.timeout_secs,
            content: s.content,
        })
        .collect())
}

/// A script name: 1–64 letters, digits, `.`, `-`, `_`; not starting with `.`; `kiln-` is Kiln's.
pub fn script_name(field: &str, input: &str) -> Result<String> {
    let n = input.trim();
    let ok = !n.is_empty()
        && n.len() <= 64
        && !n.starts_with('.')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(Error::validation(
            field,
            format!("'{input}' is not a valid script name: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'."),
        ));
    }
    if n.starts_with("kiln-") {
        return Err(Error::validation(
            field,
            format!("'{n}': names starting with 'kiln-' are reserved for Kiln's built-in scripts; choose another."),
        ));
    }
    Ok(n.to_string())
}

fn script_fields(w: &api::ScriptWrite) -> Result<(String, i32, String)> {
    let description = validate::text("description", w.description.as_deref().unwrap_or(""), 1024)?;
    let timeout = w.timeout_secs.unwrap_or(DEFAULT_TIMEOUT);
    if !(1..=MAX_TIMEOUT).contains(&timeout) {
        return Err(Error::validation(
            "timeout_secs",
            format!("timeout_secs must be between 1 and {MAX_TIMEOUT} seconds; got {timeout}."),
        ));
    }
    if w.content.trim().is_empty() {
        return Err(Error::validation("content", "The script is empty."));
    }
    if w.content.len() > 1 << 20 {
        return Err(Error::validation(
            "content",
            "The script is larger than 1 MiB; ship big tools in an image instead.",
        ));
    }
    Ok((description, timeout, w.content.clone()))
}

/// Adds an operator script (admins).
pub fn create_script(
    conn: &mut DbConn,
    caller: &Caller,
    w: &api::ScriptWrite,
    now: i64,
) -> Result<api::Script> {
    super::access::require_admin(caller, "add commissioning scripts")?;
    let name = script_name(
        "name",
        w.name
            .as_deref()
            .ok_or_else(|| Error::validation("name", "A script needs a name."))?,
    )?;
    let (description, timeout_secs, content) = script_fields(w)?;
    let row = ScriptRow {
        name: name.clone(),
        description,
        content,
        timeout_secs,
        created_at: now,
        updated_at: now,
    };
    conn.transaction::<_, Error, _>(|c| {
        if dbc::get_script(c, &name)?.is_some() {
            return Err(Error::conflict(
                "duplicate_script",
                Some("name"),
                format!("A commissioning script named {name} exists already; update it with PUT /api/v1/scripts/{name}."),
            ));
        }
        dbc::insert_script(c, &row)?;
        db::users::audit(c, now, &caller.username, "script.create", &name, "")
    })?;
    Ok(row.to_api())
}

/// Replaces an operator script's content and settings (admins).
pub fn update_script(
    conn: &mut DbConn,
    caller: &Caller,
    name: &str,
    w: &api::ScriptWrite,
    now: i64,
) -> Result<api::Script> {
    super::access::require_admin(caller, "change commissioning scripts")?;
    let name = script_name("name", name)?;
    if let Some(n) = &w.name {
        if n.trim() != name {
            return Err(Error::validation(
                "name",
                format!("The body names script '{n}' but the path names '{name}'; scripts cannot be renamed."),
            ));
        }
    }
    let (description, timeout_secs, content) = script_fields(w)?;
    conn.transaction::<_, Error, _>(|c| {
        let old = dbc::get_script(c, &name)?
            .ok_or_else(|| Error::not_found(format!("commissioning script {name}")))?;
        let row = ScriptRow {
            name: name.clone(),
            description,
            content,
            timeout_secs,
            created_at: old.created_at,
            updated_at: now,
        };
        dbc::update_script(c, &row)?;
        db::users::audit(c, now, &caller.username, "script.update", &name, "")?;
        Ok(row.to_api())
    })
}

pub fn delete_script(conn: &mut DbConn, caller: &Caller, name: &str, now: i64) -> Result<()> {
    super::access::require_admin(caller, "delete commissioning scripts")?;
    if BUILTIN.iter().any(|b| b.0 == name) {
        return Err(Error::validation(
            "name",
            format!("{name} is one of Kiln's built-in scripts and cannot be deleted."),
        ));
    }
    conn.transaction::<_, Error, _>(|c| {
        if !dbc::delete_script(c, name)? {
            return Err(Error::not_found(format!("commissioning script {name}")));
        }
        db::users::audit(c, now, &caller.username, "script.delete", name, "")
    })
}

/// Statuses in which a machine's commissioning reports are taken.
fn ensure_commissioning(conn: &mut DbConn, mb: &MachineBoot) -> Result<dbm::MachineRow> {
    let row = dbm::get_row(conn, &mb.system_id)?
        .ok_or_else(|| Error::not_found(format!("machine {}", mb.system_id)))?;
    match row.status() {
        MachineStatus::Commissioning | MachineStatus::New => Ok(row),
        other => Err(Error::conflict(
            "not_commissioning",
            None,
            format!(
                "Machine {} is {}, not commissioning: results of this boot are no longer taken.",
                mb.system_id,
                other.label()
            ),
        )),
    }
}

/// An event the machine reports about itself.
pub fn report(conn: &mut DbConn, mb: &MachineBoot, r: &api::MachineReport, now: i64) -> Result<()> {
    let et = validate::name("event_type", &r.event_type)?;
    let desc = validate::text("description", &r.description, 4096)?;
    let level = match r.level.as_deref() {
        None => api::EventLevel::Info,
        Some(l) => api::EventLevel::parse(l).ok_or_else(|| {
            Error::validation(
                "level",
                format!("'{l}' is not a level: use info, warning or error."),
            )
        })?,
    };
    event(
        conn,
        now,
        &mb.system_id,
        level,
        &et,
        &format!("{desc} (machine)"),
    )
}

pub fn script_started(conn: &mut DbConn, mb: &MachineBoot, name: &str, now: i64) -> Result<()> {
    let name = validate::name("name", name)?;
    conn.transaction::<_, Error, _>(|c| {
        ensure_commissioning(c, mb)?;
        dbc::start_result(c, &mb.system_id, &mb.boot_id, &name, now)?;
        event(
            c,
            now,
            &mb.system_id,
            api::EventLevel::Info,
            "script_started",
            &format!("Script {name} started."),
        )
    })
}

/// `passed`, `failed` or `timedout` (coreutils `timeout` exits 124, or 137 after its kill).
pub fn result_status(exit_code: i32) -> &'static str {
    match exit_code {
        0 => "passed",
        124 | 137 => "timedout",
        _ => "failed",
    }
}

/// Stores a script's output and exit code.
pub fn script_finished(
    conn: &mut DbConn,
    mb: &MachineBoot,
    name: &str,
    exit_code: i32,
    duration_ms: i64,
    output: &[u8],
    now: i64,
) -> Result<()> {
    let name = validate::name("name", name)?;
    let mut text = String::from_utf8_lossy(&output[..output.len().min(MAX_OUTPUT)]).into_owned();
    if output.len() > MAX_OUTPUT {
        text.push_str(&format!(
            "\n[kiln: output cut at {MAX_OUTPUT} of {} bytes]\n",
            output.len()
        ));
    }
    // PostgreSQL TEXT takes no NUL bytes.
    let text = text.replace('\0', "\u{FFFD}");
    let status = result_status(exit_code);
    conn.transaction::<_, Error, _>(|c| {
        ensure_commissioning(c, mb)?;
        dbc::finish_result(
            c,
            &mb.system_id,
            &mb.boot_id,
            &name,
            status,
            exit_code,
            &text,
            now - duration_ms.max(0),
            now,
        )?;
        let (level, what) = match status {
            "passed" => (api::EventLevel::Info, "passed".to_string()),
            "timedout" => (api::EventLevel::Error, "timed out".to_string()),
            _ => (
                api::EventLevel::Error,
                format!("failed with exit code {exit_code}"),
            ),
        };
        event(
            c,
            now,
            &mb.system_id,
            level,
            "script_finished",
            &format!(
                "Script {name} {what} after {:.1} s.",
                duration_ms as f64 / 1000.0
            ),
        )
    })
}

/// At most the last `max` bytes of `s` (on a character boundary), so one event stays small.
fn tail_bytes(s: &str, max: usize) -> &str {
    let mut cut = s.len().saturating_sub(max);
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    &s[cut..]
}

/// The last `n` lines of an output.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Records the NICs commissioning found as the machine's interfaces (names from the kernel). A MAC
/// that belongs to another machine is left there, with a warning event.
fn record_nics(conn: &mut DbConn, system_id: &str, nics: &[api::Nic], now: i64) -> Result<()> {
    let mine = dbm::interfaces_of(conn, system_id)?;
    // Two passes, so that names can swap between interfaces without a uniqueness clash.
    for i in &mine {
        dbm::rename_interface(conn, &i.id, &format!("tmp-{}", i.id))?;
    }
    let mut used = Vec::new();
    for nic in nics {
        if let Some(i) = mine.iter().find(|i| i.mac == nic.mac) {
            dbm::rename_interface(conn, &i.id, &nic.name)?;
            used.push(i.id.clone());
            continue;
        }
        if let Some(other) = dbm::machine_with_mac(conn, &nic.mac)? {
            event(
                conn,
                now,
                system_id,
                api::EventLevel::Warning,
                "duplicate_mac",
                &format!("Commissioning found {} ({}), which belongs to machine {other}; not added here.", nic.name, nic.mac),
            )?;
            continue;
        }
        dbm::insert_interface(
            conn,
            &InterfaceRow {
                id: random_id(12),
                system_id: system_id.to_string(),
                name: nic.name.clone(),
                mac: nic.mac.clone(),
                subnet_id: None,
                ip: None,
            },
        )?;
    }
    // Interfaces commissioning did not see keep a readable name.
    for (k, i) in mine.iter().filter(|i| !used.contains(&i.id)).enumerate() {
        let name = if nics.iter().any(|n| n.name == i.name) {
            format!("unseen{k}")
        } else {
            i.name.clone()
        };
        dbm::rename_interface(conn, &i.id, &name)?;
    }
    Ok(())
}

/// The runner is done: decide from this boot's results. All scripts passed and the inventory
/// reads → Ready (a New machine, enlisted without commissioning, stays New); otherwise Failed
/// commissioning, with the failing scripts' output in the event.
pub fn finish(conn: &mut DbConn, mb: &MachineBoot, now: i64) -> Result<api::CommissioningOutcome> {
    conn.transaction::<_, Error, _>(|c| {
        let expected: Vec<String> = runner_scripts(c)?.into_iter().map(|s| s.name).collect();
        let row = ensure_commissioning(c, mb)?;
        let from = row.status();
        let results = dbc::results_of_boot(c, &mb.system_id, &mb.boot_id)?;
        let mut problems = Vec::new();
        let mut detail = String::new();
        for name in &expected {
            match results.iter().find(|r| &r.name == name) {
                None => problems.push(format!("{name} did not report")),
                Some(r) if r.status == "running" => problems.push(format!("{name} did not finish")),
                Some(r) if r.status != "passed" => {
                    let what = if r.status == "timedout" {
                        "timed out".to_string()
                    } else {
                        format!("exited {}", r.exit_code.unwrap_or(-1))
                    };
                    problems.push(format!("{name} {what}"));
                    detail.push_str(&format!(
                        "\n--- {name} (last lines) ---\n{}",
                        tail_bytes(&tail(&r.output, 20), 4096)
                    ));
                }
                Some(_) => {}
            }
        }
        let hw = if problems.is_empty() {
            let outputs: HashMap<String, String> = results
                .iter()
                .map(|r| (r.name.clone(), r.output.clone()))
                .collect();
            match inventory::parse(&outputs, &fmt_time(now)) {
                Ok(hw) => Some(hw),
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            }
        } else {
            None
        };
        let (to, message, level, et) = match &hw {
            Some(hw) => {
                dbc::set_hardware(c, &mb.system_id, hw, now)?;
                record_nics(c, &mb.system_id, &hw.nics, now)?;
                let disks: Vec<String> = hw
                    .disks
                    .iter()
                    .map(|d| {
                        format!(
                            "{} {:.1} GiB",
                            d.name,
                            d.size_bytes as f64 / (1u64 << 30) as f64
                        )
                    })
                    .collect();
                let summary = format!(
                    "{} CPUs, {} MiB, disks [{}], NICs [{}], {} firmware{}",
                    hw.cpu_count,
                    hw.memory_mib,
                    disks.join(", "),
                    hw.nics
                        .iter()
                        .map(|n| format!("{} {}", n.name, n.mac))
                        .collect::<Vec<_>>()
                        .join(", "),
                    hw.firmware,
                    if hw.bmc_present { ", BMC present" } else { "" }
                );
                if from == MachineStatus::Commissioning {
                    (
                        MachineStatus::Ready,
                        format!("Commissioning passed: {summary}."),
                        api::EventLevel::Info,
                        "commissioning_passed",
                    )
                } else {
                    (
                        from,
                        format!("Enlistment inventory recorded: {summary}."),
                        api::EventLevel::Info,
                        "enlistment_inventory",
                    )
                }
            }
            None => {
                let to = if from == MachineStatus::Commissioning {
                    MachineStatus::FailedCommissioning
                } else {
                    from
                };
                (
                    to,
                    format!("Commissioning failed: {}.", problems.join("; ")),
                    api::EventLevel::Error,
                    "commissioning_failed",
                )
            }
        };
        if to != from {
            // Re-read the version: set_hardware bumped it.
            let cur = dbm::get_row(c, &mb.system_id)?
                .ok_or_else(|| Error::Internal("machine vanished".into()))?;
            if cur.status() != from
                || !dbm::change_status(
                    c,
                    &mb.system_id,
                    cur.version,
                    &StatusChange {
                        status: to,
                        previous_status: from,
                        deadline: None,
                        owner_id: None,
                        now,
                    },
                )?
            {
                return Err(Error::conflict(
                    "concurrent_update",
                    None,
                    format!(
                        "Machine {} changed while its results were recorded; try again.",
                        mb.system_id
                    ),
                ));
            }
        }
        let text = if detail.is_empty() {
            message.clone()
        } else {
            format!("{message}{detail}")
        };
        event(c, now, &mb.system_id, level, et, &text)?;
        // Kiln powers the machine off through its BMC (MAAS's loop); the environment waits for it.
        if power_off_by_kiln(&row) {
            if let Some(cur) = dbm::get_row(c, &mb.system_id)? {
                power::enqueue(
                    c,
                    &cur,
                    api::PowerAction::Off,
                    None,
                    power::Purpose::CommissionDone,
                    None,
                    now,
                )?;
            }
        }
        if to != from {
            event(
                c,
                now,
                &mb.system_id,
                level,
                "status_changed",
                &format!("{} → {} (commissioning results).", from.label(), to.label()),
            )?;
        }
        tracing::info!(machine.id = %mb.system_id, "{message}");
        Ok(api::CommissioningOutcome {
            status: to,
            message,
        })
    })
}

/// A machine's script results: one boot's (default the latest), in run order.
pub fn results(
    conn: &mut DbConn,
    caller: &Caller,
    system_id: &str,
    boot_id: Option<&str>,
    with_output: bool,
) -> Result<Vec<api::ScriptResult>> {
    super::access::visible_row(conn, caller, system_id)?;
    let boot = match boot_id {
        Some(b) => Some(b.to_string()),
        None => dbc::latest_boot_with_results(conn, system_id)?,
    };
    let Some(boot) = boot else {
        return Ok(Vec::new());
    };
    Ok(dbc::results_of_boot(conn, system_id, &boot)?
        .iter()
        .map(|r| r.to_api(with_output))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names() {
        assert_eq!(script_name("n", " 50-burn-in ").unwrap(), "50-burn-in");
        assert!(script_name("n", "kiln-cpu").is_err());
        assert!(script_name("n", "../etc").is_err());
        assert!(script_name("n", ".hidden").is_err());
        assert!(script_name("n", "").is_err());
        assert!(script_name("n", "a b").is_err());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(result_status(0), "passed");
        assert_eq!(result_status(124), "timedout");
        assert_eq!(result_status(3), "failed");
    }

    #[test]
    fn builtins_are_runnable_scripts_with_valid_names() {
        for (name, _, content, t) in BUILTIN {
            assert!(name.starts_with("kiln-"));
            assert!(content.starts_with("#!/bin/bash\n"), "{name}");
            assert!(*t > 0);
        }
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("", 5), "");
        assert_eq!(tail_bytes("héllo", 4), "llo");
        assert_eq!(tail_bytes("ab", 10), "ab");
    }
}
