//! Composing a VM on a pod: the request validated against what the host has (firmware, pools,
//! networks), checked against its capacity × overcommit, and the machine and the rack's job
//! written in one transaction guarded by the pod's version.

use diesel::Connection;
use rack_proto::pods as proto;
use region_api_types::{self as api, PodJobKind, VmSpec};
use serde_json::{Map, Value};

use super::access::require_admin;
use super::pods::{capacity, opt_name, password, queue, row};
use super::secrets::SecretBox;
use super::{validate, Caller};
use crate::db::machines as dbm;
use crate::db::pods as dbp;
use crate::db::{random_id, DbConn};
use crate::error::{Error, Result};

/// The machine's architecture for a host's.
fn architecture(host: &str) -> String {
    match host {
        "aarch64" => "arm64/generic",
        "ppc64le" => "ppc64el/generic",
        "s390x" => "s390x/generic",
        _ => "amd64/generic",
    }
    .into()
}

fn new_mac(conn: &mut DbConn, taken: &[String]) -> Result<String> {
    use rand::Rng;
    for _ in 0..100 {
        let b: [u8; 3] = rand::thread_rng().gen();
        let mac = format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2]);
        if !taken.contains(&mac) && dbm::machine_with_mac(conn, &mac)?.is_none() {
            return Ok(mac);
        }
    }
    Err(Error::Internal("no free MAC address found".into()))
}

/// Composes a VM (admins): checks it fits, makes the machine (New, power type `virsh`, the pod
/// recorded) and queues the rack's job. Returns (system_id, job id); the job's end commissions the
/// machine or removes it.
pub fn compose(
    conn: &mut DbConn,
    sb: &SecretBox,
    caller: &Caller,
    id: &str,
    req: &api::ComposeRequest,
    now: i64,
) -> Result<(String, String)> {
    require_admin(caller, "compose machines")?;
    let p = row(conn, id)?;
    let Some(d) = p.discovery() else {
        return Err(Error::conflict(
            "pod_not_discovered",
            None,
            format!(
                "Pod {} has not been discovered yet ({}); refresh it first.",
                p.name,
                p.message.as_deref().unwrap_or("no answer")
            ),
        ));
    };
    let cores = req.cores.unwrap_or(1);
    if !(1..=1024).contains(&cores) {
        return Err(Error::validation("cores", "Give 1 to 1024 cores."));
    }
    let memory_mib = req.memory_mib.unwrap_or(2048);
    if !(128..=16 << 20).contains(&memory_mib) {
        return Err(Error::validation(
            "memory_mib",
            "Give at least 128 MiB of memory (and at most 16 TiB).",
        ));
    }
    let firmware = req.firmware.as_deref().unwrap_or("uefi");
    if firmware != "uefi" && firmware != "bios" {
        return Err(Error::validation(
            "firmware",
            format!("'{firmware}' is not a firmware Kiln composes: use uefi or bios."),
        ));
    }
    let secure_boot = req.secure_boot.unwrap_or(false);
    if secure_boot && firmware != "uefi" {
        return Err(Error::validation(
            "secure_boot",
            "Secure Boot needs firmware uefi.",
        ));
    }
    if firmware == "uefi" && !d.uefi {
        return Err(Error::conflict("no_uefi", Some("firmware"), format!("Pod {}'s host has no OVMF (UEFI firmware for VMs); install ovmf there, refresh the pod, or compose with firmware bios.", p.name)));
    }
    if secure_boot && !d.secure_boot {
        return Err(Error::conflict("no_secure_boot", Some("secure_boot"), format!("Pod {}'s host has no OVMF build with Secure Boot; compose without it or install one.", p.name)));
    }
    let default_pool = proto::default_pool_name(&d, p.default_storage_pool.as_deref());
    let disks_req = req.disks.clone().unwrap_or_else(|| {
        vec![api::ComposeDisk {
            size_gib: 8,
            pool: None,
        }]
    });
    if disks_req.is_empty() || disks_req.len() > 16 {
        return Err(Error::validation("disks", "Give 1 to 16 disks."));
    }
    let mut disks = Vec::new();
    for (i, dr) in disks_req.iter().enumerate() {
        if !(1..=65536).contains(&dr.size_gib) {
            return Err(Error::validation(
                format!("disks[{i}].size_gib"),
                "Give 1 to 65536 GiB.",
            ));
        }
        let pool = match opt_name(&format!("disks[{i}].pool"), &dr.pool)?.or(default_pool.clone()) {
            Some(pl) => pl,
            None => return Err(Error::validation(format!("disks[{i}].pool"), format!("Pod {}'s host has no active storage pool; define one there (virsh pool-define-as) and refresh the pod.", p.name))),
        };
        disks.push((pool, i64::from(dr.size_gib) << 30));
    }
    let hostname = match &req.hostname {
        Some(h) => validate::hostname("hostname", h)?,
        None => format!("{}-{}", p.name, random_id(5)),
    };
    let ifaces_req = req
        .interfaces
        .clone()
        .unwrap_or_else(|| vec![api::ComposeInterface::default()]);
    if ifaces_req.is_empty() || ifaces_req.len() > 8 {
        return Err(Error::validation("interfaces", "Give 1 to 8 interfaces."));
    }
    let mut nics = Vec::new();
    let mut macs: Vec<String> = Vec::new();
    for (i, ir) in ifaces_req.iter().enumerate() {
        let field = format!("interfaces[{i}]");
        let (network, bridge) = match (opt_name(&field, &ir.network)?, opt_name(&field, &ir.bridge)?) {
            (Some(_), Some(_)) => return Err(Error::validation(field, "Give a network or a bridge, not both.")),
            (Some(n), None) => (Some(n), None),
            (None, Some(b)) => (None, Some(b)),
            (None, None) => match &p.default_network {
                Some(n) if d.networks.iter().any(|x| &x.name == n) => (Some(n.clone()), None),
                Some(b) => (None, Some(b.clone())),
                None if d.networks.iter().any(|x| x.name == "default") => (Some("default".into()), None),
                None => return Err(Error::validation(field, format!("Name a bridge or network for it: pod {} has no default_network and its host no libvirt network 'default'.", p.name))),
            },
        };
        if let Some(n) = &network {
            if !d.networks.iter().any(|x| &x.name == n) {
                let have: Vec<&str> = d.networks.iter().map(|x| x.name.as_str()).collect();
                return Err(Error::validation(
                    format!("{field}.network"),
                    format!(
                        "Pod {}'s host has no libvirt network '{n}' (it has: {}).",
                        p.name,
                        if have.is_empty() {
                            "none".into()
                        } else {
                            have.join(", ")
                        }
                    ),
                ));
            }
        }
        let mac = new_mac(conn, &macs)?;
        macs.push(mac.clone());
        nics.push(api::VmNic {
            mac,
            network,
            bridge,
        });
    }
    let pass = password(sb, &p)?;
    for _ in 0..5 {
        let p = row(conn, &p.id)?;
        let cap = capacity(conn, &p, &p.discovery().unwrap_or_default())?;
        proto::check_fit(
            &cap,
            p.cpu_over_commit_ratio,
            p.memory_over_commit_ratio,
            i64::from(cores),
            memory_mib,
            &disks,
        )
        .map_err(|why| {
            Error::conflict(
                "over_capacity",
                None,
                format!("Pod {} cannot hold this VM: {why}.", p.name),
            )
        })?;
        if d.vms.iter().any(|v| v.name == hostname) {
            return Err(Error::conflict(
                "duplicate_hostname",
                Some("hostname"),
                format!(
                    "Pod {}'s host already has a VM named {hostname}; choose another hostname.",
                    p.name
                ),
            ));
        }
        let mut params = Map::new();
        params.insert(
            "power_address".into(),
            Value::String(p.power_address.clone()),
        );
        params.insert("power_id".into(), Value::String(hostname.clone()));
        if !pass.is_empty() {
            params.insert("power_pass".into(), Value::String(pass.clone()));
        }
        let mreq = api::MachineCreate {
            hostname: Some(hostname.clone()),
            architecture: Some(architecture(&d.architecture)),
            power_type: Some("virsh".into()),
            power_parameters: Some(params),
            skip_bmc_config: Some(true),
            zone: Some(p.zone.clone()),
            pool: Some(p.pool.clone()),
            tags: Some(p.tags()),
            description: Some(format!("Composed on pod {}.", p.name)),
            interfaces: Some(
                nics.iter()
                    .enumerate()
                    .map(|(i, n)| api::InterfaceCreate {
                        name: format!("eth{i}"),
                        mac: n.mac.clone(),
                    })
                    .collect(),
            ),
            cpu_count: Some(i32::try_from(cores).unwrap_or(1)),
            memory_mib: Some(memory_mib),
            storage_bytes: Some(disks.iter().map(|(_, b)| b).sum()),
            ..Default::default()
        };
        let res = conn.transaction::<_, Error, _>(|c| {
            // The pod's version guards the capacity check: a concurrent compose makes us retry.
            if !dbp::update_if_version(c, &p, p.version)? {
                return Ok(None);
            }
            let m = super::machines::create(c, sb, caller, &mreq, now)?;
            set_pod(c, &m.system_id, &p.id)?;
            let vm = VmSpec {
                system_id: m.system_id.clone(),
                name: hostname.clone(),
                cores,
                memory_mib,
                virt_type: d.virt_type.clone(),
                arch: d.architecture.clone(),
                firmware: firmware.into(),
                secure_boot,
                disks: disks
                    .iter()
                    .enumerate()
                    .map(|(i, (pool, b))| api::VmDisk {
                        pool: pool.clone(),
                        name: format!("{hostname}-disk{i}"),
                        size_bytes: *b,
                        serial: format!("{}-d{i}", m.system_id),
                    })
                    .collect(),
                nics: nics.clone(),
            };
            let job = queue(c, &p, PodJobKind::Compose, Some(&vm), &caller.username, now)?;
            crate::db::users::audit(
                c,
                now,
                &caller.username,
                "pod.compose",
                &m.system_id,
                &p.name,
            )?;
            Ok(Some((m.system_id, job)))
        })?;
        if let Some(r) = res {
            tracing::info!(machine.id = %r.0, pod = %p.id, "machine {} composed on pod {} by {}", r.0, p.name, caller.username);
            return Ok(r);
        }
    }
    Err(Error::conflict(
        "busy",
        None,
        format!("Pod {id} is busy with other composes; try again."),
    ))
}

fn set_pod(conn: &mut DbConn, system_id: &str, pod_id: &str) -> Result<()> {
    use crate::db::schema::machines;
    use diesel::prelude::*;
    diesel::update(machines::table.find(system_id))
        .set(machines::pod_id.eq(pod_id))
        .execute(conn)?;
    Ok(())
}
