//! Root on iSCSI, the region's side: which rack serves a machine's volume, the volume row made
//! with the deployment, what racks are told (`/rack/volumes`, with the secrets, to that rack
//! only) and what they report (ready → the machine is powered on; failed → Failed deployment;
//! removed). Names (IQNs, CHAP users) come from `rack_proto::iscsi`.
//!
//! A volume's CHAP secret and the deployment's metadata credential are sealed in the row (like
//! power secrets); they leave the region only in the feed of the rack that serves the volume.

use diesel::Connection;
use rack_proto::iscsi;
use region_api_types::{self as api, MachineStatus};

use super::power::{self, Purpose};
use super::secrets::SecretBox;
use crate::db::deploy as dbd;
use crate::db::machines as dbm;
use crate::db::volumes::{self as dbv, VolumeRow};
use crate::db::{self, fmt_time, random_id, DbConn};
use crate::error::{Error, Result};

/// The rack that will serve a new volume of `need_bytes` (an estimate of the clone's size):
/// one that reported a volume store, recently, without an error, with room (a reflink clone
/// costs nearly nothing until written; a copy costs its size). Racks with an address on the
/// machine's network (`machine_ips`) come first: the rack that answers its PXE serves its script.
pub fn pick_rack(
    conn: &mut DbConn,
    need_bytes: u64,
    machine_ips: &[std::net::IpAddr],
    now: i64,
) -> Result<(String, api::RackIscsi)> {
    let mut racks = dbv::iscsi_racks(conn)?;
    let near = |r: &dbv::IscsiRack| {
        serde_json::from_str::<Vec<api::RackInterface>>(&r.interfaces)
            .unwrap_or_default()
            .iter()
            .flat_map(|i| i.addresses.iter())
            .filter_map(|a| a.parse::<ipnet::IpNet>().ok())
            .any(|n| machine_ips.iter().any(|ip| n.contains(ip)))
    };
    racks.sort_by_cached_key(|r| !near(r));
    if racks.is_empty() {
        return Err(Error::conflict(
            "no_iscsi_rack",
            Some("target"),
            "No rack serves root on iSCSI: start a rack with --iscsi-store DIR --iscsi-portal IP[:PORT] on a host where tgtd runs.",
        ));
    }
    let mut why = Vec::new();
    for dbv::IscsiRack {
        id,
        name,
        last_seen: seen,
        iscsi: json,
        ..
    } in racks
    {
        let Ok(st) = serde_json::from_str::<api::RackIscsi>(&json) else {
            why.push(format!("rack {name} reported an unreadable iSCSI state"));
            continue;
        };
        let age = seen.map(|s| now - s).unwrap_or(i64::MAX);
        // A rack shown offline is not given new volumes.
        if age > db::racks::OFFLINE_AFTER_MS {
            why.push(format!(
                "rack {name} has not been heard from for {} s",
                age / 1000
            ));
        } else if let Some(e) = &st.error {
            why.push(format!("rack {name} cannot serve volumes: {e}"));
        } else if st.clone_method == "copy" && st.store_free_bytes < need_bytes {
            why.push(format!(
                "rack {name}'s volume store has {:.1} GiB free, a copied volume needs about {:.1} GiB",
                gib(st.store_free_bytes),
                gib(need_bytes)
            ));
        } else if st.store_free_bytes < need_bytes / 8 {
            why.push(format!(
                "rack {name}'s volume store has {:.1} GiB free",
                gib(st.store_free_bytes)
            ));
        } else {
            return Ok((id, st));
        }
    }
    Err(Error::conflict(
        "no_iscsi_rack",
        Some("target"),
        format!(
            "No rack can serve this machine's root volume now: {}.",
            why.join("; ")
        ),
    ))
}

/// `reflink` or `copy`, as racks report them.
pub fn clone_method_ok(field: &str, m: &str) -> Result<()> {
    if matches!(m, "reflink" | "copy") {
        Ok(())
    } else {
        Err(Error::validation(
            field,
            format!("'{m}' is not a clone method: reflink or copy."),
        ))
    }
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

/// Makes the volume of a new iSCSI deployment (in the deployment's transaction). `seed_token`
/// is the deployment's metadata credential (its hash is in `boot_tokens`).
#[allow(clippy::too_many_arguments)]
pub fn create(
    c: &mut DbConn,
    sb: &SecretBox,
    row: &dbm::MachineRow,
    deployment_id: &str,
    resource_id: &str,
    rack: &(String, api::RackIscsi),
    requested_bytes: u64,
    seed_token: &str,
    now: i64,
) -> Result<VolumeRow> {
    let id = random_id(10);
    let mut m = serde_json::Map::new();
    m.insert("chap_secret".into(), random_id(16).into());
    m.insert("seed_token".into(), seed_token.into());
    let v = VolumeRow {
        secrets: sb.seal(&id, &m)?,
        id,
        system_id: row.system_id.clone(),
        deployment_id: deployment_id.to_string(),
        rack_id: rack.0.clone(),
        resource_id: resource_id.to_string(),
        initiator_iqn: iscsi::initiator_iqn(&row.system_id),
        requested_bytes: i64::try_from(requested_bytes).unwrap_or(i64::MAX),
        state: "creating".into(),
        keep_file: false,
        portal: Some(rack.1.portal.clone()),
        clone_method: None,
        size_bytes: None,
        used_bytes: None,
        message: String::new(),
        created_at: now,
        updated_at: now,
    };
    dbv::insert(c, &v)?;
    Ok(v)
}

/// A volume as operators see it.
pub fn to_api(c: &mut DbConn, v: &VolumeRow) -> Result<api::BootVolume> {
    Ok(api::BootVolume {
        id: v.id.clone(),
        target_iqn: iscsi::target_iqn(&v.id),
        initiator_iqn: v.initiator_iqn.clone(),
        portal: v.portal.clone(),
        lun: iscsi::LUN,
        clone_method: v.clone_method.clone(),
        size_bytes: v.size_bytes,
        used_bytes: v.used_bytes,
        state: v.state.clone(),
        rack: dbv::rack_name(c, &v.rack_id)?.unwrap_or_else(|| v.rack_id.clone()),
        message: v.message.clone(),
    })
}

/// The machine's newest volume, for `Machine.boot_volume`.
pub fn of_machine(c: &mut DbConn, system_id: &str) -> Result<Option<api::BootVolume>> {
    match dbv::latest_of(c, system_id)? {
        Some(v) => Ok(Some(to_api(c, &v)?)),
        None => Ok(None),
    }
}

/// `GET /api/v1/volumes`: admins see every volume, users those of the machines they own.
pub fn list(c: &mut DbConn, caller: &super::Caller) -> Result<Vec<api::Volume>> {
    let rows = dbv::list(c)?;
    let mut out = Vec::with_capacity(rows.len());
    for v in rows {
        let machine = dbm::get_row(c, &v.system_id)?;
        let owner = machine.as_ref().and_then(|m| m.owner_id.as_deref());
        if !caller.is_admin && owner != Some(caller.user_id.as_str()) {
            continue;
        }
        let (os, release) = match db::boot::get_row(c, &v.resource_id)? {
            Some(r) => (r.os, r.release),
            None => (String::new(), String::new()),
        };
        out.push(api::Volume {
            volume: to_api(c, &v)?,
            hostname: machine.map(|m| m.hostname),
            system_id: v.system_id.clone(),
            os,
            release,
            created_at: fmt_time(v.created_at),
            updated_at: fmt_time(v.updated_at),
        });
    }
    Ok(out)
}

type ImageFiles = (api::SnapshotFile, api::SnapshotFile, api::SnapshotFile);

/// The OS image's files a volume needs: its root (squashfs), kernel and initramfs.
pub fn image_files(c: &mut DbConn, resource_id: &str) -> Result<Option<ImageFiles>> {
    Ok(image_files_in(&db::racks::snapshot_files(c)?, resource_id))
}

fn image_files_in(files: &[api::SnapshotFile], resource_id: &str) -> Option<ImageFiles> {
    let of = |pred: &dyn Fn(&str) -> bool| {
        files
            .iter()
            .find(|f| f.resource_id == resource_id && pred(&f.filename))
            .cloned()
    };
    let root = of(&|n| n.ends_with(".squashfs") || n == "squashfs");
    let kernel = of(&|n| n.starts_with("vmlinuz") || n.starts_with("linux"));
    let initrd = of(&|n| n.starts_with("initrd"));
    match (root, kernel, initrd) {
        (Some(r), Some(k), Some(i)) => Some((r, k, i)),
        _ => None,
    }
}

/// What rack `rack_id` must do (`GET /api/v1/rack/volumes`). A volume to remove is held (served
/// if it is, never made) until its machine has no power job left, so the machine is off before
/// its root goes.
pub fn feed(c: &mut DbConn, sb: &SecretBox, rack_id: &str) -> Result<api::RackVolumes> {
    let mut out = Vec::new();
    let files = db::racks::snapshot_files(c)?;
    for v in dbv::for_rack(c, rack_id)? {
        let m = dbm::get_row(c, &v.system_id)?;
        // Held while the machine may still run from it: a power job open, or a release whose
        // power-off has not succeeded.
        let releasing = m.as_ref().is_some_and(|m| {
            matches!(
                m.status(),
                MachineStatus::Releasing | MachineStatus::FailedReleasing
            )
        });
        let action = match v.state.as_str() {
            "removing" if releasing || db::power::has_open_job(c, &v.system_id)? => "hold",
            "removing" => "remove",
            _ => "serve",
        };
        // Deleting a boot resource that live volumes use is refused; a volume whose image is
        // gone anyway can still be removed.
        let (image, kernel, initrd) = match image_files_in(&files, &v.resource_id) {
            Some(f) => f,
            None if action == "remove" => Default::default(),
            None => continue,
        };
        let secrets = sb.open(&v.id, &v.secrets)?;
        let get = |k: &str| {
            secrets
                .get(k)
                .and_then(|s| s.as_str())
                .unwrap_or("")
                .to_string()
        };
        out.push(api::RackVolume {
            id: v.id.clone(),
            system_id: v.system_id.clone(),
            hostname: m.as_ref().map(|m| m.hostname.clone()).unwrap_or_default(),
            boot_mac: m.and_then(|m| m.boot_mac),
            action: action.into(),
            keep_file: v.keep_file,
            image,
            kernel,
            initrd,
            requested_bytes: u64::try_from(v.requested_bytes).unwrap_or(0),
            initiator_iqn: v.initiator_iqn.clone(),
            chap_user: iscsi::chap_user(&v.id),
            chap_secret: get("chap_secret"),
            seed_token: get("seed_token"),
        });
    }
    Ok(api::RackVolumes { volumes: out })
}

/// A rack's report on one of its volumes.
pub fn report(
    conn: &mut DbConn,
    rack_id: &str,
    id: &str,
    r: &api::RackVolumeReport,
    now: i64,
) -> Result<()> {
    let message = super::validate::text("message", &r.message, 4000)?;
    if let Some(p) = &r.portal {
        iscsi::Portal::parse(p).map_err(|e| Error::validation("portal", e))?;
    }
    if let Some(m) = &r.clone_method {
        clone_method_ok("clone_method", m)?;
    }
    let i64_of = |b: Option<u64>| b.map(|b| i64::try_from(b).unwrap_or(i64::MAX));
    conn.transaction::<_, Error, _>(|c| {
        let v = dbv::get(c, id)?
            .filter(|v| v.rack_id == rack_id)
            .ok_or_else(|| Error::not_found(format!("volume {id} of this rack")))?;
        dbv::set_facts(
            c,
            id,
            r.portal.as_deref(),
            r.clone_method.as_deref(),
            i64_of(r.size_bytes),
            i64_of(r.used_bytes),
            now,
        )?;
        match r.state.as_str() {
            "ready" => {
                if dbv::set_state(c, id, &["creating"], "ready", &message, now)? {
                    ready(c, &v, r, now)?;
                }
                Ok(())
            }
            "failed" => {
                if dbv::set_state(c, id, &["creating", "ready"], "failed", &message, now)? {
                    failed(c, &v, &message, now)?;
                }
                Ok(())
            }
            "removed" => {
                let to = if v.keep_file { "kept" } else { "removed" };
                if dbv::set_state(c, id, &["removing"], to, &message, now)? {
                    super::access::event(
                        c,
                        now,
                        &v.system_id,
                        api::EventLevel::Info,
                        "volume_removed",
                        &format!(
                            "iSCSI target {} and its CHAP account removed; volume {}. {message}",
                            iscsi::target_iqn(&v.id),
                            if v.keep_file {
                                "file kept on the rack"
                            } else {
                                "deleted"
                            }
                        ),
                        None,
                    )?;
                }
                Ok(())
            }
            other => Err(Error::validation(
                "state",
                format!("'{other}' is not a volume report: give ready, failed or removed."),
            )),
        }
    })
}

/// The volume is served: the deployment's machine is powered on (through PXE) now, not before.
fn ready(c: &mut DbConn, v: &VolumeRow, r: &api::RackVolumeReport, now: i64) -> Result<()> {
    super::access::event(
        c,
        now,
        &v.system_id,
        api::EventLevel::Info,
        "volume_ready",
        &format!(
            "Root volume ready: {} clone, {:.1} GiB, {:.1} MiB of its own; target {} at {}.",
            r.clone_method.as_deref().unwrap_or("?"),
            gib(r.size_bytes.unwrap_or(0)),
            r.used_bytes.unwrap_or(0) as f64 / (1u64 << 20) as f64,
            iscsi::target_iqn(&v.id),
            r.portal.as_deref().or(v.portal.as_deref()).unwrap_or("?")
        ),
        None,
    )?;
    let Some(row) = dbm::get_row(c, &v.system_id)? else {
        return Ok(());
    };
    let live = dbd::latest(c, &v.system_id)?
        .is_some_and(|d| d.id == v.deployment_id && d.state == "running");
    if row.status() == MachineStatus::Deploying && live {
        power::enqueue(
            c,
            &row,
            api::PowerAction::Cycle,
            Some(api::BootDevice::Pxe),
            Purpose::Deploy,
            None,
            now,
        )?;
    }
    Ok(())
}

/// The rack could not make the volume: the deployment fails before the machine is powered on.
fn failed(c: &mut DbConn, v: &VolumeRow, message: &str, now: i64) -> Result<()> {
    let Some(row) = dbm::get_row(c, &v.system_id)? else {
        return Ok(());
    };
    let live = dbd::latest(c, &v.system_id)?
        .is_some_and(|d| d.id == v.deployment_id && matches!(d.state.as_str(), "running"));
    if !live {
        return super::access::event(
            c,
            now,
            &v.system_id,
            api::EventLevel::Error,
            "volume_failed",
            &format!("Root volume {} failed: {message}", v.id),
            None,
        );
    }
    dbd::set_state(
        c,
        &v.deployment_id,
        &["running"],
        "failed",
        None,
        None,
        Some(message),
        now,
    )?;
    if row.status() == MachineStatus::Deploying {
        super::reports::fail_to(
            c,
            &row,
            MachineStatus::FailedDeployment,
            "deployment_failed",
            &format!(
                "Deployment failed at step 'volume': the rack could not make the root volume: {message}"
            ),
            now,
        )?;
    }
    Ok(())
}

/// Asks the rack to remove the machine's volumes (release, abort): events say so.
pub fn retire(c: &mut DbConn, system_id: &str, keep_file: bool, now: i64) -> Result<()> {
    for id in dbv::retire_of(c, system_id, keep_file, now)? {
        super::access::event(
            c,
            now,
            system_id,
            api::EventLevel::Info,
            "volume_removing",
            &format!(
                "Removing iSCSI target {} once the machine is off{}.",
                iscsi::target_iqn(&id),
                if keep_file {
                    "; the volume's file is kept"
                } else {
                    ", then the volume"
                }
            ),
            None,
        )?;
    }
    Ok(())
}
