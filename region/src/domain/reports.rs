//! What a deploying machine's installer, an erasing machine's eraser and a deployed system's
//! cloud-init report, each with the machine's own credential: the OS is installed (racks boot the
//! disk from then on), a step failed, the deployment is done (phone-home), the disks are erased;
//! and the deployed system's NoCloud seed.

use diesel::Connection;
use region_api_types::{self as api, MachineStatus};

use super::boot::MachineBoot;
use super::commissioning;
use super::secrets::SecretBox;
use super::validate;
use crate::db::commissioning as dbc;
use crate::db::deploy::{self as dbd, DeploymentRow};
use crate::db::machines::{self as dbm, MachineRow};
use crate::db::DbConn;
use crate::error::{Error, Result};

fn running_deployment(conn: &mut DbConn, mb: &MachineBoot) -> Result<(MachineRow, DeploymentRow)> {
    let row = dbm::get_row(conn, &mb.system_id)?
        .ok_or_else(|| Error::not_found(format!("machine {}", mb.system_id)))?;
    let d = dbd::latest(conn, &mb.system_id)?;
    match (row.status(), d) {
        (MachineStatus::Deploying, Some(d)) => Ok((row, d)),
        (st, _) => Err(Error::conflict(
            "not_deploying",
            None,
            format!(
                "Machine {} is {}, not deploying: reports of this installer are no longer taken.",
                mb.system_id,
                st.label()
            ),
        )),
    }
}

/// Keeps the last `max` bytes of an output (on a character boundary).
fn keep_tail(s: &str, max: usize) -> String {
    let mut cut = s.len().saturating_sub(max);
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    s[cut..].replace('\0', "\u{FFFD}")
}

const MAX_OUTPUT: usize = 1 << 20;

fn uuid_ok(field: &str, u: &Option<String>) -> Result<Option<String>> {
    match u.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.len() <= 64 && v.chars().all(|c| c.is_ascii_hexdigit() || c == '-') => {
            Ok(Some(v.to_string()))
        }
        Some(v) => Err(Error::validation(
            field,
            format!("'{v}' is not a filesystem UUID."),
        )),
    }
}

/// The installer wrote the OS: the machine boots its disk from now on; it stays Deploying until
/// the deployed system's cloud-init signals the end. A repeated report (a retry after the region
/// was away) is taken once.
pub fn installed(
    conn: &mut DbConn,
    mb: &MachineBoot,
    r: &api::InstallReport,
    now: i64,
) -> Result<()> {
    let esp = uuid_ok("esp_uuid", &r.esp_uuid)?;
    let root = uuid_ok("root_uuid", &r.root_uuid)?;
    conn.transaction::<_, Error, _>(|c| {
        let (_, d) = running_deployment(c, mb)?;
        if d.state == "installed" {
            return Ok(());
        }
        let out = keep_tail(&r.output, MAX_OUTPUT);
        if !dbd::set_state(
            c,
            &d.id,
            &["running"],
            "installed",
            esp.as_deref(),
            root.as_deref(),
            Some(&out),
            now,
        )? {
            return Err(Error::conflict(
                "not_deploying",
                None,
                format!("Deployment {} is {}, not running.", d.id, d.state),
            ));
        }
        dbd::touch_machine(c, &mb.system_id, now)?;
        super::access::event(
            c,
            now,
            &mb.system_id,
            api::EventLevel::Info,
            "os_installed",
            &format!(
                "Installer finished after {:.1} s: {}/{} is on disk {}; rebooting into it.",
                (now - d.created_at) as f64 / 1000.0,
                d.os,
                d.release,
                d.boot_disk
            ),
            None,
        )
    })
}

/// A step of the installer failed: Failed deployment, with its output.
pub fn install_failed(
    conn: &mut DbConn,
    mb: &MachineBoot,
    r: &api::StepReport,
    now: i64,
) -> Result<()> {
    let step = validate::text("step", &r.step, 200)?;
    conn.transaction::<_, Error, _>(|c| {
        let (row, d) = running_deployment(c, mb)?;
        let out = keep_tail(&r.output, MAX_OUTPUT);
        dbd::set_state(
            c,
            &d.id,
            &["running", "installed"],
            "failed",
            None,
            None,
            Some(&out),
            now,
        )?;
        let tail: Vec<&str> = out.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        fail_to(
            c,
            &row,
            MachineStatus::FailedDeployment,
            "deployment_failed",
            &format!(
                "Deployment failed at step '{step}'.\n--- installer output (last lines) ---\n{}",
                keep_tail(&tail.join("\n"), 4000)
            ),
            now,
        )
    })
}

pub(super) fn fail_to(
    c: &mut DbConn,
    row: &MachineRow,
    to: MachineStatus,
    event_type: &str,
    text: &str,
    now: i64,
) -> Result<()> {
    let from = row.status();
    if !dbm::change_status(
        c,
        &row.system_id,
        row.version,
        &dbm::StatusChange {
            status: to,
            previous_status: from,
            deadline: None,
            owner_id: None,
            now,
        },
    )? {
        return Err(Error::conflict(
            "concurrent_update",
            None,
            format!(
                "Machine {} changed meanwhile; the report is retried.",
                row.system_id
            ),
        ));
    }
    super::access::event(
        c,
        now,
        &row.system_id,
        api::EventLevel::Error,
        event_type,
        text,
        None,
    )?;
    super::access::event(
        c,
        now,
        &row.system_id,
        api::EventLevel::Error,
        "status_changed",
        &format!("{} → {}.", from.label(), to.label()),
        None,
    )
}

/// The deployed system's cloud-init finished (its phone-home): Deployed. Repeats are no-ops.
pub fn deployed(conn: &mut DbConn, mb: &MachineBoot, now: i64) -> Result<()> {
    conn.transaction::<_, Error, _>(|c| {
        let row = dbm::get_row(c, &mb.system_id)?
            .ok_or_else(|| Error::not_found(format!("machine {}", mb.system_id)))?;
        let d = dbd::latest(c, &mb.system_id)?
            .ok_or_else(|| Error::not_found("deployment"))?;
        if row.status() == MachineStatus::Deployed && d.state == "deployed" {
            return Ok(());
        }
        let ready = matches!(
            (d.target.as_str(), d.state.as_str()),
            ("disk", "installed") | ("memory", "running") | ("iscsi", "running")
        );
        if row.status() != MachineStatus::Deploying || !ready {
            return Err(Error::conflict(
                "not_deploying",
                None,
                format!(
                    "Machine {} is {} and its deployment {}: the end of a deployment is taken only from the system it installed.",
                    mb.system_id,
                    row.status().label(),
                    d.state
                ),
            ));
        }
        dbd::set_state(c, &d.id, &["installed", "running"], "deployed", None, None, None, now)?;
        if !dbm::change_status(
            c,
            &row.system_id,
            row.version,
            &dbm::StatusChange {
                status: MachineStatus::Deployed,
                previous_status: MachineStatus::Deploying,
                deadline: None,
                owner_id: None,
                now,
            },
        )? {
            return Err(Error::conflict(
                "concurrent_update",
                None,
                "The machine changed meanwhile; try again.",
            ));
        }
        super::access::event(
            c,
            now,
            &row.system_id,
            api::EventLevel::Info,
            "deployed",
            &format!(
                "cloud-init on the deployed system finished {:.1} s after the deployment started (instance {}).",
                (now - d.created_at) as f64 / 1000.0,
                d.instance_id
            ),
            None,
        )?;
        super::access::event(
            c,
            now,
            &row.system_id,
            api::EventLevel::Info,
            "status_changed",
            "Deploying → Deployed (cloud-init finished on the deployed system).",
            None,
        )
    })
}

/// The eraser is done: Ready (Kiln powers it off) or Failed disk erasing with the output.
pub fn erase_done(
    conn: &mut DbConn,
    mb: &MachineBoot,
    r: &api::StepReport,
    now: i64,
) -> Result<()> {
    conn.transaction::<_, Error, _>(|c| {
        let row = dbm::get_row(c, &mb.system_id)?
            .ok_or_else(|| Error::not_found(format!("machine {}", mb.system_id)))?;
        if row.status() != MachineStatus::DiskErasing {
            return Err(Error::conflict(
                "not_erasing",
                None,
                format!(
                    "Machine {} is {}, not erasing its disks.",
                    mb.system_id,
                    row.status().label()
                ),
            ));
        }
        let out = keep_tail(&r.output, MAX_OUTPUT);
        dbd::set_erasure_output(c, &mb.system_id, &out)?;
        if !r.ok {
            return fail_to(
                c,
                &row,
                MachineStatus::FailedDiskErasing,
                "erase_failed",
                &format!("Disk erasing failed: {}\n{}", r.step, keep_tail(&out, 4000)),
                now,
            );
        }
        if !dbm::change_status(
            c,
            &row.system_id,
            row.version,
            &dbm::StatusChange {
                status: MachineStatus::Ready,
                previous_status: MachineStatus::DiskErasing,
                deadline: None,
                owner_id: Some(None),
                now,
            },
        )? {
            return Err(Error::conflict(
                "concurrent_update",
                None,
                "The machine changed meanwhile; try again.",
            ));
        }
        dbc::delete_boot_tokens(c, &mb.system_id)?;
        super::access::event(
            c,
            now,
            &row.system_id,
            api::EventLevel::Info,
            "erased",
            &format!("Disks erased: {}", r.step),
            None,
        )?;
        super::access::event(
            c,
            now,
            &row.system_id,
            api::EventLevel::Info,
            "status_changed",
            "Disk erasing → Ready (disks erased).",
            None,
        )?;
        if commissioning::power_off_by_kiln(&row) {
            if let Some(cur) = dbm::get_row(c, &mb.system_id)? {
                super::power::enqueue(
                    c,
                    &cur,
                    api::PowerAction::Off,
                    None,
                    super::power::Purpose::EraseDone,
                    None,
                    now,
                )?;
            }
        }
        Ok(())
    })
}

/// The deployed system's NoCloud seed files.
pub fn seed(
    conn: &mut DbConn,
    sb: &SecretBox,
    mb: &MachineBoot,
    file: &str,
    rack_url: &str,
    rack_proxy: Option<&str>,
    token: &str,
) -> Result<String> {
    let row = dbm::get_row(conn, &mb.system_id)?
        .ok_or_else(|| Error::not_found(format!("machine {}", mb.system_id)))?;
    let d = dbd::latest(conn, &mb.system_id)?
        .filter(|d| matches!(d.state.as_str(), "running" | "installed" | "deployed"))
        .ok_or_else(|| Error::not_found("a live deployment of this machine"))?;
    match file {
        "meta-data" => {
            let keys: Vec<String> = serde_json::from_str(&d.ssh_keys).unwrap_or_default();
            let ifaces = dbm::interfaces_of(conn, &mb.system_id)?;
            Ok(super::cloudinit::meta_data(
                &d.instance_id,
                &row.hostname,
                &keys,
                row.boot_mac.as_deref(),
                &ifaces,
            ))
        }
        "user-data" => {
            if d.user_data.is_empty() {
                return Ok("#cloud-config\n{}\n".into());
            }
            let m = sb.open(&d.id, &d.user_data)?;
            Ok(m.get("user_data")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string())
        }
        "vendor-data" => Ok(super::cloudinit::vendor_data(
            rack_url,
            token,
            rack_proxy.filter(|_| d.proxy),
        )),
        "network-config" => Ok(super::cloudinit::network_config(row.boot_mac.as_deref())),
        other => Err(Error::not_found(format!("seed file {other}"))),
    }
}
