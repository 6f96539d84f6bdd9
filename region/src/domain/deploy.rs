//! Deployment: allocation by constraints, deploy (validated before anything is powered), release
//! with erase, and what the machine's installer, eraser and deployed system report.
//!
//! A deployment is a row of `deployments` created in the same transaction as Ready/Allocated →
//! Deploying and its power job. Its credential is the boot token the rack gets for the installer's
//! boot (purpose `deploying`): the installer writes it into the installed system's cloud-init
//! datasource, so the deployed system reads its own seed (`/metadata/v1/nocloud/<token>/…`) and
//! signals the end with it. Only that signal makes the machine Deployed. Release or a new
//! deployment deletes the token, so the old credential stops working.

use region_api_types::{self as api, MachineAction, MachineStatus};

use super::machines::{self, ActExtra};
use super::secrets::SecretBox;
use super::volumes;
use super::{validate, Caller};
use crate::config::Lifecycle;
use crate::db::commissioning as dbc;
use crate::db::deploy::{self as dbd, DeploymentRow, ErasureRow};
use crate::db::machines::MachineRow;
use crate::db::{self, random_id, DbConn};
use crate::error::{Error, Result};

pub use super::reports::{deployed, erase_done, install_failed, installed, seed};
pub use super::sshkeys::{add_key, delete_key, list_keys};

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
    let row = super::access::visible_row(conn, caller, system_id)?;
    machines::precheck(conn, caller, &row, MachineAction::Deploy)?;
    let target = req.target.unwrap_or_default();
    if req.volume_size_gib.is_some() && target != api::DeployTarget::Iscsi {
        return Err(Error::validation(
            "volume_size_gib",
            "volume_size_gib sizes a root volume on iSCSI: give it with target iscsi only.",
        ));
    }
    if let Some(g) = req.volume_size_gib.filter(|g| !(1..=16384).contains(g)) {
        return Err(Error::validation(
            "volume_size_gib",
            format!("volume_size_gib is {g}; give 1 to 16384 (GiB)."),
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
    let iscsi = match target {
        api::DeployTarget::Iscsi => {
            let ips: Vec<std::net::IpAddr> = crate::db::machines::interfaces_of(conn, system_id)?
                .iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect();
            Some(iscsi_plan(conn, &img, req.volume_size_gib, &ips, now)?)
        }
        _ => None,
    };
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
        volumes::retire(c, system_id, false, now)?;
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
                proxy: req.proxy.unwrap_or(true),
            },
        )?;
        let where_to = match (&iscsi, target) {
            (Some(plan), _) => {
                // The deployed system reads its seed with this credential, which the rack
                // writes into the volume; the machine is powered on once the volume is served.
                let token = super::boot::mint_boot_token(
                    c,
                    system_id,
                    MachineStatus::Deploying,
                    super::boot::DEPLOYMENT_TOKEN_TTL_MS,
                    now,
                )?;
                let v = volumes::create(
                    c,
                    sb,
                    row,
                    &id,
                    &img.resource_id,
                    &plan.rack,
                    plan.requested_bytes,
                    &token,
                    now,
                )?;
                format!(
                    "a root volume on iSCSI (target {}, initiator {}, rack {} at {}; the machine is powered on once the volume is ready)",
                    rack_proto::iscsi::target_iqn(&v.id),
                    v.initiator_iqn,
                    plan.rack_name,
                    plan.rack.1.portal
                )
            }
            (None, api::DeployTarget::Disk) => {
                format!("disk {disk_name}, {} layout", layout.as_str())
            }
            _ => "memory".to_string(),
        };
        super::access::event(
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
            defer_power: iscsi.is_some(),
        },
    )?
    .ok_or_else(|| Error::Internal("deployed machine vanished".into()))
}

/// Where an iSCSI deployment's volume will live, checked before anything is changed.
struct IscsiPlan {
    rack: (String, api::RackIscsi),
    rack_name: String,
    requested_bytes: u64,
}

fn iscsi_plan(
    conn: &mut DbConn,
    img: &Image,
    size_gib: Option<u32>,
    machine_ips: &[std::net::IpAddr],
    now: i64,
) -> Result<IscsiPlan> {
    if img.format != "squashfs" || volumes::image_files(conn, &img.resource_id)?.is_none() {
        return Err(Error::conflict(
            "image_not_iscsi_bootable",
            Some("os"),
            format!(
                "Image {}/{} cannot boot with root on iSCSI: that needs a root filesystem (squashfs) with the image's own kernel (vmlinuz) and initramfs (initrd) beside it, as kiln images build makes them.",
                img.os, img.release
            ),
        ));
    }
    let requested_bytes = u64::from(size_gib.unwrap_or(0)) << 30;
    let need = requested_bytes.max(u64::try_from(needed_bytes(img)).unwrap_or(0));
    let rack = volumes::pick_rack(conn, need, machine_ips, now)?;
    let rack_name = db::volumes::rack_name(conn, &rack.0)?.unwrap_or_else(|| rack.0.clone());
    Ok(IscsiPlan {
        rack,
        rack_name,
        requested_bytes,
    })
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
    let keep_volume = req.keep_volume;
    let hook = |c: &mut DbConn, _row: &MachineRow, to: MachineStatus| -> Result<()> {
        dbd::end_all(c, system_id, "released", now)?;
        dbc::delete_boot_tokens(c, system_id)?;
        // Root on iSCSI: the rack removes the target once the machine is off (and the volume,
        // unless it is kept). The eraser never sees the volume: it is not attached without iPXE.
        volumes::retire(c, system_id, keep_volume, now)?;
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
            super::access::event(
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
            defer_power: false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_is_checked_as_cloud_init_reads_it() {
        assert!(validate_user_data("#cloud-config\nruncmd:\n  - [touch, /x]\n").is_ok());
        assert!(validate_user_data("#cloud-config\n").is_ok());
        assert!(validate_user_data("#!/bin/sh\necho hi\n").is_ok());
        assert!(validate_user_data("Content-Type: multipart/mixed; boundary=x\n").is_ok());
        for bad in [
            "#cloud-config\nruncmd: [\n",
            "#cloud-config\n- a\n",
            "hello",
            "",
            "#!/bin/sh\0",
        ] {
            assert!(validate_user_data(bad).is_err(), "{bad:?}");
        }
        assert!(validate_user_data(&format!("#!/bin/sh\n{}", "x".repeat(MAX_USER_DATA))).is_err());
    }

    #[test]
    fn image_formats_by_name() {
        assert_eq!(image_format("root.squashfs"), Some("squashfs"));
        assert_eq!(image_format("disk.img.zst"), Some("raw.zst"));
        assert_eq!(image_format("disk.RAW"), Some("raw"));
        assert_eq!(image_format("vmlinuz"), None);
    }

    fn hw() -> api::Hardware {
        let d = |n: &str, s: &str, size: i64| api::Disk {
            name: n.into(),
            serial: s.into(),
            size_bytes: size,
            ..Default::default()
        };
        api::Hardware {
            disks: vec![d("vda", "S-A", 8 << 30), d("vdb", "S-B", 2 << 30)],
            ..Default::default()
        }
    }

    #[test]
    fn boot_disk_by_name_serial_or_first() {
        let h = hw();
        assert_eq!(pick_disk(&h, None).unwrap().name, "vda");
        assert_eq!(pick_disk(&h, Some("vdb")).unwrap().name, "vdb");
        assert_eq!(pick_disk(&h, Some("S-B")).unwrap().name, "vdb");
        assert!(pick_disk(&h, Some("sdz")).is_err());
        assert!(pick_disk(&api::Hardware::default(), None).is_err());
    }

    #[test]
    fn space_needed() {
        let img = |format, size| Image {
            resource_id: String::new(),
            os: "debian".into(),
            release: "bookworm".into(),
            format,
            filename: String::new(),
            sha256: String::new(),
            size,
        };
        assert_eq!(needed_bytes(&img("raw", 100)), 100);
        assert_eq!(
            needed_bytes(&img("squashfs", 1 << 30)),
            (3 << 30) + (768 << 20)
        );
    }
}
