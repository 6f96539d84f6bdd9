//! Deployment: allocation by constraints, deploy (validated before anything is powered), release
//! with erase, and what the machine's installer, eraser and deployed system report.
//!
//! A deployment is a row of `deployments` created in the same transaction as Ready/Allocated →
//! Deploying and its power job. Its credential is the boot token the rack gets for the installer's
//! boot (purpose `deploying`): the installer writes it into the installed system's cloud-init
//! datasource, so the deployed system reads its own seed (`/metadata/v1/nocloud/<token>/…`) and
//! signals the end with it. Only that signal makes the machine Deployed. Release or a new
//! deployment deletes the token, so the old credential stops working.

use diesel::Connection;
use region_api_types::{self as api, MachineAction, MachineStatus};

use super::commissioning::{self, MachineBoot};
use super::machines::{self, ActExtra};
use super::secrets::SecretBox;
use super::{validate, Caller};
use crate::config::Lifecycle;
use crate::db::commissioning as dbc;
use crate::db::deploy::{self as dbd, DeploymentRow, ErasureRow};
use crate::db::machines::{self as dbm, MachineRow};
use crate::db::{self, random_id, DbConn};
use crate::error::{Error, Result};

pub use super::sshkeys::{add_key, delete_key, keys_of, list_keys};

/// Largest user-data accepted.
pub const MAX_USER_DATA: usize = 1 << 20;

/// Checks user-data the way cloud-init will read it: `#cloud-config` must be a YAML mapping; a
/// script (`#!`), an include list, a boothook, a jinja template or MIME multipart is passed on.
pub fn validate_user_data(text: &str) -> Result<()> {
    let field = "user_data";
    if text.len() > MAX_USER_DATA {
        return Err(Error::validation(
            field,
            format!(
                "user_data is {} bytes; at most 1 MiB (1048576 bytes) is accepted.",
                text.len()
            ),
        ));
    }
    if text.contains('\0') {
        return Err(Error::validation(field, "user_data contains a NUL byte."));
    }
    let first = text.lines().next().unwrap_or("").trim_end();
    if first.starts_with("#cloud-config") {
        match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(serde_yaml::Value::Mapping(_)) | Ok(serde_yaml::Value::Null) => Ok(()),
            Ok(_) => Err(Error::validation(
                field,
                "user_data starts with #cloud-config but is not a YAML mapping (key: value lines).",
            )),
            // The parser's message names the line and column; it quotes no more than a token.
            Err(e) => Err(Error::validation(
                field,
                format!("user_data starts with #cloud-config but is not valid YAML: {e}."),
            )),
        }
    } else if [
        "#!",
        "#include",
        "#cloud-boothook",
        "## template: jinja",
        "Content-Type:",
    ]
    .iter()
    .any(|p| first.starts_with(p))
    {
        Ok(())
    } else {
        Err(Error::validation(
            field,
            "user_data must start with #cloud-config (YAML), #! (a script), #include, #cloud-boothook or be MIME multipart, as cloud-init reads it.",
        ))
    }
}

/// The image a deployment writes: the newest (or the given) release of `os` for the architecture.
#[derive(Debug, Clone)]
pub struct Image {
    pub resource_id: String,
    pub os: String,
    pub release: String,
    pub format: &'static str,
    pub filename: String,
    pub sha256: String,
    pub size: i64,
}

/// The format of an OS image file, from its name.
pub fn image_format(filename: &str) -> Option<&'static str> {
    let f = filename.to_ascii_lowercase();
    if f.ends_with(".squashfs") || f == "squashfs" {
        Some("squashfs")
    } else if f.ends_with(".raw.zst") || f.ends_with(".img.zst") {
        Some("raw.zst")
    } else if f.ends_with(".raw") || f.ends_with(".img") {
        Some("raw")
    } else {
        None
    }
}

fn find_image(conn: &mut DbConn, os: &str, release: Option<&str>, arch: &str) -> Result<Image> {
    let all = db::boot::list(conn)?;
    let mut of_os: Vec<&api::BootResource> = all
        .iter()
        .filter(|r| r.kind == "os" && r.os == os && r.arch == arch)
        .collect();
    if of_os.is_empty() {
        let known: Vec<String> = all
            .iter()
            .filter(|r| r.kind == "os")
            .map(|r| format!("{}/{} ({})", r.os, r.release, r.arch))
            .collect();
        return Err(Error::validation(
            "os",
            format!(
                "There is no {os} image for {arch}. Images that can be deployed: {}. Import one with: kiln images import DIR (after kiln images build).",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        ));
    }
    // Newest first.
    of_os.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    let r = match release {
        Some(rel) => *of_os.iter().find(|r| r.release == rel).ok_or_else(|| {
            Error::validation(
                "release",
                format!(
                    "There is no {os} {rel} image for {arch}; {os} has: {}.",
                    of_os
                        .iter()
                        .map(|r| r.release.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?,
        None => of_os[0],
    };
    let (file, format) = r
        .files
        .iter()
        .find_map(|f| image_format(&f.filename).map(|fmt| (f, fmt)))
        .ok_or_else(|| {
            Error::validation(
                "release",
                format!(
                    "Image {}/{} has no file Kiln can write (a *.squashfs root, or a *.raw / *.raw.zst disk image).",
                    r.os, r.release
                ),
            )
        })?;
    Ok(Image {
        resource_id: r.id.clone(),
        os: r.os.clone(),
        release: r.release.clone(),
        format,
        filename: file.filename.clone(),
        sha256: file.sha256.clone(),
        size: file.size,
    })
}

/// The disk space an image needs: a raw image its own size; a squashfs root about three times its
/// compressed size (zstd on a Debian root compresses about 3:1), plus the ESP and boot partitions.
pub fn needed_bytes(img: &Image) -> i64 {
    match img.format {
        "raw" => img.size,
        "raw.zst" => img.size.saturating_mul(3),
        _ => img.size.saturating_mul(3).saturating_add(768 << 20),
    }
}

/// MAAS's rule for the boot disk: the one asked for (by name or serial), else the first disk
/// commissioning found.
pub fn pick_disk<'a>(hw: &'a api::Hardware, want: Option<&str>) -> Result<&'a api::Disk> {
    match want {
        Some(w) => hw
            .disks
            .iter()
            .find(|d| d.name == w || (!d.serial.is_empty() && d.serial == w))
            .ok_or_else(|| {
                Error::validation(
                    "boot_disk",
                    format!(
                        "This machine has no disk named or with serial '{w}'; its disks: {}.",
                        hw.disks
                            .iter()
                            .map(|d| format!("{} (serial {})", d.name, d.serial))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            }),
        None => hw.disks.first().ok_or_else(|| {
            Error::conflict(
                "no_disk",
                Some("target"),
                "Commissioning found no disk on this machine: deploy it with target memory, or add a disk and commission it again.",
            )
        }),
    }
}

/// `POST /machines/{id}/deploy`: checks everything before the machine is touched, then (one
/// transaction) Deploying, the deployment row and the power-on through PXE.
#[allow(clippy::too_many_arguments)]
pub fn deploy(
    conn: &mut DbConn,
    sb: &SecretBox,
    caller: &Caller,
    system_id: &str,
    req: &api::DeployRequest,
    cfg: &Lifecycle,
    now: i64,
) -> Result<api::Machine> {
    let row = machines::visible_row(conn, caller, system_id)?;
    machines::precheck(conn, caller, &row, MachineAction::Deploy)?;
    let target = req.target.unwrap_or_default();
    if target == api::DeployTarget::Iscsi {
        return Err(Error::validation(
            "target",
            "Root on iSCSI is not available yet in this Kiln; deploy with target disk or memory.",
        ));
    }
    let layout = req.storage_layout.unwrap_or_default();
    if let Some(u) = &req.user_data {
        validate_user_data(u)?;
    }
    let os = validate::name("os", req.os.as_deref().unwrap_or("debian"))?;
    let release = match req.release.as_deref() {
        Some(r) => Some(validate::name("release", r)?),
        None => None,
    };
    let img = find_image(conn, &os, release.as_deref(), &row.architecture)?;
    let comment = req.comment.clone();
    let user_data = req.user_data.clone().unwrap_or_default();
    let boot_disk_req = req.boot_disk.clone();
    let hook = |c: &mut DbConn, row: &MachineRow, _to: MachineStatus| -> Result<()> {
        let hw: Option<api::Hardware> = row
            .hardware
            .as_deref()
            .and_then(|h| serde_json::from_str(h).ok());
        let (disk_name, disk_serial) = match target {
            api::DeployTarget::Disk => {
                let hw = hw.as_ref().ok_or_else(|| {
                    Error::conflict(
                        "not_commissioned",
                        None,
                        "Kiln does not know this machine's disks: commission it first.",
                    )
                })?;
                let d = pick_disk(hw, boot_disk_req.as_deref())?;
                let need = needed_bytes(&img);
                if d.size_bytes < need {
                    return Err(Error::conflict(
                        "disk_too_small",
                        Some("boot_disk"),
                        format!(
                            "Disk {} holds {:.1} GiB; image {}/{} needs about {:.1} GiB. Choose a larger boot_disk.",
                            d.name,
                            d.size_bytes as f64 / (1u64 << 30) as f64,
                            img.os,
                            img.release,
                            need as f64 / (1u64 << 30) as f64
                        ),
                    ));
                }
                (d.name.clone(), d.serial.clone())
            }
            _ => (String::new(), String::new()),
        };
        let owner = row
            .owner_id
            .clone()
            .unwrap_or_else(|| caller.user_id.clone());
        let keys: Vec<String> = dbd::keys_of(c, &owner)?
            .into_iter()
            .map(|k| k.key)
            .collect();
        let id = random_id(12);
        let sealed = if user_data.is_empty() {
            String::new()
        } else {
            let mut m = serde_json::Map::new();
            m.insert(
                "user_data".into(),
                serde_json::Value::String(user_data.clone()),
            );
            sb.seal(&id, &m)?
        };
        dbd::end_all(c, system_id, "released", now)?;
        dbc::delete_boot_tokens(c, system_id)?;
        dbd::insert_deployment(
            c,
            &DeploymentRow {
                id: id.clone(),
                system_id: system_id.to_string(),
                instance_id: format!("i-{}", random_id(16)),
                os: img.os.clone(),
                release: img.release.clone(),
                resource_id: img.resource_id.clone(),
                target: target.as_str().into(),
                storage_layout: layout.as_str().into(),
                boot_disk: disk_name.clone(),
                boot_disk_serial: disk_serial,
                user_data: sealed,
                ssh_keys: serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into()),
                state: "running".into(),
                esp_uuid: None,
                root_uuid: None,
                installer_output: String::new(),
                created_at: now,
                installed_at: None,
                finished_at: None,
            },
        )?;
        let where_to = match target {
            api::DeployTarget::Disk => format!("disk {disk_name}, {} layout", layout.as_str()),
            _ => "memory".to_string(),
        };
        machines::event(
            c,
            now,
            system_id,
            api::EventLevel::Info,
            "deployment_started",
            &format!(
                "Deploying {}/{} to {where_to}{}; {} SSH key(s) of the owner.",
                img.os,
                img.release,
                if user_data.is_empty() {
                    ""
                } else {
                    " with user-data"
                },
                keys.len()
            ),
            Some(&caller.username),
        )
    };
    machines::act_with(
        conn,
        caller,
        system_id,
        MachineAction::Deploy,
        comment.as_deref(),
        cfg,
        now,
        ActExtra {
            on_commit: Some(&hook),
            erase: false,
        },
    )?
    .ok_or_else(|| Error::Internal("deployed machine vanished".into()))
}

/// `POST /machines/{id}/release`: ends the deployment (its credential stops working), then
/// Releasing → Ready, or Disk erasing with `erase`.
pub fn release(
    conn: &mut DbConn,
    caller: &Caller,
    system_id: &str,
    req: &api::ReleaseRequest,
    cfg: &Lifecycle,
    now: i64,
) -> Result<api::Machine> {
    if (req.quick_erase || req.secure_erase) && !req.erase {
        return Err(Error::validation(
            if req.secure_erase {
                "secure_erase"
            } else {
                "quick_erase"
            },
            "quick_erase and secure_erase choose how to erase: set erase to true as well.",
        ));
    }
    if req.quick_erase && req.secure_erase {
        return Err(Error::validation(
            "secure_erase",
            "Choose one of quick_erase and secure_erase.",
        ));
    }
    let mode = if req.secure_erase { "secure" } else { "quick" };
    let erase = req.erase;
    let hook = |c: &mut DbConn, _row: &MachineRow, to: MachineStatus| -> Result<()> {
        dbd::end_all(c, system_id, "released", now)?;
        dbc::delete_boot_tokens(c, system_id)?;
        if to == MachineStatus::DiskErasing {
            dbd::replace_erasure(
                c,
                &ErasureRow {
                    system_id: system_id.to_string(),
                    mode: mode.into(),
                    requested_by: caller.username.clone(),
                    output: String::new(),
                    created_at: now,
                },
            )?;
            machines::event(
                c,
                now,
                system_id,
                api::EventLevel::Info,
                "erase_started",
                &format!("Erasing every disk ({mode} erase) before the machine is Ready again."),
                Some(&caller.username),
            )?;
        }
        Ok(())
    };
    machines::act_with(
        conn,
        caller,
        system_id,
        MachineAction::Release,
        req.comment.as_deref(),
        cfg,
        now,
        ActExtra {
            on_commit: Some(&hook),
            erase,
        },
    )?
    .ok_or_else(|| Error::Internal("released machine vanished".into()))
}

/// The installer's instructions (`/metadata/v1/meta` of a Deploying machine), if it has a live
/// deployment.
pub fn plan(conn: &mut DbConn, row: &MachineRow) -> Result<Option<api::DeployPlan>> {
    if row.status() != MachineStatus::Deploying {
        return Ok(None);
    }
    let Some(d) = dbd::latest(conn, &row.system_id)? else {
        return Ok(None);
    };
    if d.state != "running" {
        return Ok(None);
    }
    let Some(f) = db::boot::files_of(conn, &d.resource_id)?
        .into_iter()
        .find(|f| image_format(&f.filename).is_some())
    else {
        return Ok(None);
    };
    let hw: Option<api::Hardware> = row
        .hardware
        .as_deref()
        .and_then(|h| serde_json::from_str(h).ok());
    let api_d = d.to_api();
    Ok(Some(api::DeployPlan {
        deployment_id: d.id,
        instance_id: d.instance_id,
        target: api_d.target,
        storage_layout: api_d.storage_layout,
        firmware: hw.map(|h| h.firmware).unwrap_or_else(|| "bios".into()),
        boot_disk: d.boot_disk,
        boot_disk_serial: d.boot_disk_serial,
        image_format: image_format(&f.filename).unwrap_or("squashfs").into(),
        image_path: format!("/images/{}/{}", f.sha256, f.filename),
        image_sha256: f.sha256,
        image_size: f.size,
    }))
}

/// The eraser's instructions (`/metadata/v1/meta` of a machine in Disk erasing).
pub fn erase_plan(conn: &mut DbConn, row: &MachineRow) -> Result<Option<api::ErasePlan>> {
    if row.status() != MachineStatus::DiskErasing {
        return Ok(None);
    }
    Ok(dbd::erasure(conn, &row.system_id)?.map(|e| api::ErasePlan { mode: e.mode }))
}

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
        machines::event(
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

fn fail_to(
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
    machines::event(
        c,
        now,
        &row.system_id,
        api::EventLevel::Error,
        event_type,
        text,
        None,
    )?;
    machines::event(
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
        let ready = match (d.target.as_str(), d.state.as_str()) {
            ("disk", "installed") => true,
            ("memory", "running") => true,
            _ => false,
        };
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
        machines::event(
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
        machines::event(
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
        machines::event(
            c,
            now,
            &row.system_id,
            api::EventLevel::Info,
            "erased",
            &format!("Disks erased: {}", r.step),
            None,
        )?;
        machines::event(
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
        "vendor-data" => Ok(super::cloudinit::vendor_data(rack_url, token)),
        "network-config" => Ok(super::cloudinit::network_config(row.boot_mac.as_deref())),
        other => Err(Error::not_found(format!("seed file {other}"))),
    }
}

/// Deletes a machine's machine credentials (release, erase done): its old deployment's seed and
/// reports stop working.
pub fn revoke(conn: &mut DbConn, system_id: &str) -> Result<()> {
    dbc::delete_boot_tokens(conn, system_id)
}
