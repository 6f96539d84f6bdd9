//! KVM pods, region side: registering libvirt hosts (the password sealed), what they have
//! (`rack_proto::pods::capacity` over the last discovery and the composes still open), composing
//! a VM (a machine with power type `virsh` and the pod recorded, made on the host by a rack, then
//! commissioned), and decomposing one. The jobs racks run are in [`super::pod_jobs`].

use diesel::Connection;
use rack_proto::pods::{self as proto, Reserved};
use region_api_types::{self as api, PodJobKind, PodState, VmSpec};
use serde_json::{Map, Value};

use super::access::require_admin;
use super::machines::clean_tags;
use super::secrets::SecretBox;
use super::{validate, Caller};
use crate::db::machines as dbm;
use crate::db::pods::{self as dbp, PodJobRow, PodRow};
use crate::db::{fmt_time, random_id, DbConn};
use crate::error::{Error, Result};

fn not_found(id: &str) -> Error {
    Error::not_found(format!("pod {id}"))
}

/// A pod by id or name.
pub fn row(conn: &mut DbConn, id_or_name: &str) -> Result<PodRow> {
    match dbp::get(conn, id_or_name)? {
        Some(p) => Ok(p),
        None => dbp::by_name(conn, id_or_name)?.ok_or_else(|| not_found(id_or_name)),
    }
}

fn ratio(field: &str, v: Option<f64>, default: f64) -> Result<f64> {
    let r = v.unwrap_or(default);
    if !(r.is_finite() && r > 0.0 && r <= 10.0) {
        return Err(Error::validation(
            field,
            format!("{r} is not a ratio Kiln takes: give a number above 0 and at most 10 (1 = no overcommit)."),
        ));
    }
    Ok(r)
}

/// A libvirt URI of the QEMU driver.
fn uri(field: &str, s: &str) -> Result<String> {
    let s = s.trim();
    let scheme = s.split("://").next().unwrap_or("");
    if !s.contains("://") || !(scheme == "qemu" || scheme.starts_with("qemu+")) {
        return Err(Error::validation(
            field,
            format!("'{s}' is not a libvirt QEMU URI: use qemu:///system, qemu+ssh://user@host/system or qemu+tcp://host/system."),
        ));
    }
    if s.len() > 1024 || s.chars().any(char::is_control) {
        return Err(Error::validation(
            field,
            "The URI is too long or has control characters.",
        ));
    }
    Ok(s.to_string())
}

pub(super) fn opt_name(field: &str, v: &Option<String>) -> Result<Option<String>> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) => Ok(Some(validate::text(field, n, 255)?)),
    }
}

fn seal_pass(sb: &SecretBox, pod_id: &str, pass: &str) -> Result<String> {
    if pass.is_empty() {
        return Ok(String::new());
    }
    let mut m = Map::new();
    m.insert("power_pass".into(), Value::String(pass.to_string()));
    sb.seal(&format!("pod:{pod_id}"), &m)
}

/// The host's password, opened.
pub fn password(sb: &SecretBox, p: &PodRow) -> Result<String> {
    if p.power_secrets.is_empty() {
        return Ok(String::new());
    }
    Ok(sb
        .open(&format!("pod:{}", p.id), &p.power_secrets)?
        .get("power_pass")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

/// The composes not finished yet: promised, not yet on the host.
fn reserved(conn: &mut DbConn, pod_id: &str) -> Result<Vec<Reserved>> {
    Ok(dbp::open_jobs(conn, pod_id)?
        .into_iter()
        .filter(|j| j.kind == PodJobKind::Compose.as_str())
        .filter_map(|j| serde_json::from_str::<VmSpec>(j.spec.as_deref()?).ok())
        .map(|s| Reserved {
            name: s.name,
            cores: i64::from(s.cores),
            memory_mib: s.memory_mib,
            disks: s
                .disks
                .into_iter()
                .map(|d| (d.pool, d.size_bytes))
                .collect(),
        })
        .collect())
}

pub(super) fn capacity(
    conn: &mut DbConn,
    p: &PodRow,
    d: &region_api_types::PodDiscovery,
) -> Result<proto::Capacity> {
    Ok(proto::capacity(
        d,
        p.cpu_over_commit_ratio,
        p.memory_over_commit_ratio,
        p.default_storage_pool.as_deref(),
        &reserved(conn, &p.id)?,
    ))
}

/// A pod as the API shows it.
pub fn to_api(conn: &mut DbConn, p: &PodRow) -> Result<api::Pod> {
    // Parsed once: the view's host fields and the capacity both come from it.
    let discovered = p.discovered.is_some();
    let dd = p.discovery().unwrap_or_default();
    let c = capacity(conn, p, &dd)?;
    let machines: Vec<api::PodMachine> = dbp::machines_of(conn, &p.id)?
        .into_iter()
        .map(|(system_id, hostname, status)| {
            let s = api::MachineStatus::parse(&status).unwrap_or(api::MachineStatus::New);
            api::PodMachine {
                system_id,
                hostname,
                status: s.as_str().into(),
                status_label: s.label().into(),
            }
        })
        .collect();
    let rack = match &p.rack_id {
        Some(r) => crate::db::racks::get(conn, r)?.map(|r| r.name),
        None => None,
    };
    Ok(api::Pod {
        id: p.id.clone(),
        name: p.name.clone(),
        pod_type: p.pod_type.clone(),
        power_address: p.power_address.clone(),
        // Stored empty when there is no password.
        power_pass_set: !p.power_secrets.is_empty(),
        cpu_over_commit_ratio: p.cpu_over_commit_ratio,
        memory_over_commit_ratio: p.memory_over_commit_ratio,
        default_storage_pool: p.default_storage_pool.clone(),
        default_network: p.default_network.clone(),
        tags: p.tags(),
        zone: p.zone.clone(),
        pool: p.pool.clone(),
        state: PodState::parse(&p.state),
        message: p.message.clone(),
        architecture: discovered.then(|| dd.architecture.clone()),
        hypervisor: discovered.then(|| dd.hypervisor.clone()),
        virt_type: discovered.then(|| dd.virt_type.clone()),
        uefi: dd.uefi,
        secure_boot: dd.secure_boot,
        cores: c.cores,
        memory_mib: c.memory_mib,
        storage_pools: c.pools,
        networks: dd.networks.clone(),
        vms: dd
            .vms
            .iter()
            .map(|v| api::PodVm {
                name: v.name.clone(),
                uuid: v.uuid.clone(),
                cores: v.cores,
                memory_mib: v.memory_mib,
                disk_bytes: v.disks.iter().map(|d| d.size_bytes).sum(),
                running: v.running,
                system_id: v
                    .system_id
                    .clone()
                    .filter(|s| machines.iter().any(|m| &m.system_id == s)),
            })
            .collect(),
        machines,
        rack,
        refreshed_at: p.refreshed_at.map(fmt_time),
        created_at: fmt_time(p.created_at),
        updated_at: fmt_time(p.updated_at),
    })
}

pub fn list(conn: &mut DbConn, caller: &Caller) -> Result<Vec<api::Pod>> {
    require_admin(caller, "see pods")?;
    let rows = dbp::list(conn)?;
    rows.iter().map(|p| to_api(conn, p)).collect()
}

pub fn get(conn: &mut DbConn, caller: &Caller, id: &str) -> Result<api::Pod> {
    require_admin(caller, "see pods")?;
    let p = row(conn, id)?;
    to_api(conn, &p)
}

/// The job, by id.
pub fn job(conn: &mut DbConn, id: &str) -> Result<Option<PodJobRow>> {
    dbp::job(conn, id)
}

/// Queues a job for the rack that should reach the pod's host.
pub(super) fn queue(
    conn: &mut DbConn,
    p: &PodRow,
    kind: PodJobKind,
    vm: Option<&VmSpec>,
    requested_by: &str,
    now: i64,
) -> Result<String> {
    let id = random_id(12);
    let rack_id = super::pod_jobs::rack_for(conn, p)?;
    dbp::insert_job(
        conn,
        &PodJobRow {
            id: id.clone(),
            pod_id: p.id.clone(),
            kind: kind.as_str().into(),
            system_id: vm.map(|v| v.system_id.clone()),
            spec: vm.map(|v| serde_json::to_string(v).unwrap_or_default()),
            status: "pending".into(),
            rack_id,
            taken_by: None,
            message: None,
            requested_by: Some(requested_by.to_string()),
            created_at: now,
            taken_at: None,
            finished_at: None,
        },
    )?;
    Ok(id)
}

/// Registers a host (admins). Returns the pod's id and its first discovery job: the caller waits
/// for it and calls [`abandon`] if it fails.
pub fn create(
    conn: &mut DbConn,
    sb: &SecretBox,
    caller: &Caller,
    req: &api::PodCreate,
    now: i64,
) -> Result<(String, String)> {
    require_admin(caller, "add pods")?;
    let name = validate::name("name", &req.name)?;
    let pod_type = req.pod_type.as_deref().unwrap_or("virsh");
    if pod_type != "virsh" {
        return Err(Error::validation(
            "type",
            format!("Pod type '{pod_type}' is not one Kiln has: use virsh (libvirt)."),
        ));
    }
    let power_address = uri("power_address", &req.power_address)?;
    let cpu = ratio("cpu_over_commit_ratio", req.cpu_over_commit_ratio, 1.0)?;
    let mem = ratio(
        "memory_over_commit_ratio",
        req.memory_over_commit_ratio,
        1.0,
    )?;
    let default_storage_pool = opt_name("default_storage_pool", &req.default_storage_pool)?;
    let default_network = opt_name("default_network", &req.default_network)?;
    let tags = clean_tags(req.tags.as_deref().unwrap_or_default())?;
    let zone = validate::name("zone", req.zone.as_deref().unwrap_or("default"))?;
    let pool = validate::name("pool", req.pool.as_deref().unwrap_or("default"))?;
    if dbp::by_name(conn, &name)?.is_some() {
        return Err(Error::conflict(
            "duplicate_pod",
            Some("name"),
            format!("A pod named {name} exists already; choose another name."),
        ));
    }
    let id = random_id(8);
    let row = PodRow {
        id: id.clone(),
        name: name.clone(),
        pod_type: pod_type.into(),
        power_address,
        power_secrets: seal_pass(sb, &id, req.power_pass.as_deref().unwrap_or(""))?,
        cpu_over_commit_ratio: cpu,
        memory_over_commit_ratio: mem,
        default_storage_pool,
        default_network,
        tags: serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()),
        zone,
        pool,
        state: PodState::Error.as_str().into(),
        message: Some("not discovered yet".into()),
        discovered: None,
        rack_id: None,
        refreshed_at: None,
        version: 0,
        created_at: now,
        updated_at: now,
    };
    let job = conn.transaction::<_, Error, _>(|c| {
        dbp::insert(c, &row)?;
        let job = queue(c, &row, PodJobKind::Discover, None, &caller.username, now)?;
        crate::db::users::audit(c, now, &caller.username, "pod.create", &id, &name)?;
        Ok(job)
    })?;
    tracing::info!(pod = %id, "pod {name} ({}) added by {}", row.power_address, caller.username);
    Ok((id, job))
}

/// Removes a pod whose first discovery failed (nothing was composed on it).
pub fn abandon(conn: &mut DbConn, id: &str) -> Result<()> {
    if dbp::machines_of(conn, id)?.is_empty() {
        dbp::delete(conn, id)?;
    }
    Ok(())
}

/// Changes the fields given (admins); a changed address or password reaches the pod's machines
/// too. Queues a refresh; returns its job.
pub fn update(
    conn: &mut DbConn,
    sb: &SecretBox,
    caller: &Caller,
    id: &str,
    req: &api::PodUpdate,
    now: i64,
) -> Result<String> {
    require_admin(caller, "change pods")?;
    for _ in 0..5 {
        let old = row(conn, id)?;
        let mut p = old.clone();
        if let Some(n) = &req.name {
            p.name = validate::name("name", n)?;
            if let Some(other) = dbp::by_name(conn, &p.name)?.filter(|o| o.id != p.id) {
                return Err(Error::conflict(
                    "duplicate_pod",
                    Some("name"),
                    format!("Pod {} is named {} already.", other.id, p.name),
                ));
            }
        }
        if let Some(a) = &req.power_address {
            p.power_address = uri("power_address", a)?;
        }
        if let Some(pw) = &req.power_pass {
            p.power_secrets = seal_pass(sb, &p.id, pw)?;
        }
        if req.cpu_over_commit_ratio.is_some() {
            p.cpu_over_commit_ratio =
                ratio("cpu_over_commit_ratio", req.cpu_over_commit_ratio, 1.0)?;
        }
        if req.memory_over_commit_ratio.is_some() {
            p.memory_over_commit_ratio = ratio(
                "memory_over_commit_ratio",
                req.memory_over_commit_ratio,
                1.0,
            )?;
        }
        if req.default_storage_pool.is_some() {
            p.default_storage_pool = opt_name("default_storage_pool", &req.default_storage_pool)?;
        }
        if req.default_network.is_some() {
            p.default_network = opt_name("default_network", &req.default_network)?;
        }
        if let Some(t) = &req.tags {
            p.tags = serde_json::to_string(&clean_tags(t)?).unwrap_or_else(|_| "[]".into());
        }
        if let Some(z) = &req.zone {
            p.zone = validate::name("zone", z)?;
        }
        if let Some(pl) = &req.pool {
            p.pool = validate::name("pool", pl)?;
        }
        p.updated_at = now;
        let access_changed =
            p.power_address != old.power_address || p.power_secrets != old.power_secrets;
        let machines_power = if access_changed {
            let pass = password(sb, &p)?;
            let mut rows = Vec::new();
            for (system_id, _, _) in dbp::machines_of(conn, &p.id)? {
                let Some(m) = dbm::get_row(conn, &system_id)? else {
                    continue;
                };
                let mut params = m.power_parameters();
                params.insert(
                    "power_address".into(),
                    Value::String(p.power_address.clone()),
                );
                params.insert("power_pass".into(), Value::String(pass.clone()));
                let (public, sealed) = super::power::seal(sb, &system_id, &params)?;
                rows.push((system_id, public, sealed));
            }
            rows
        } else {
            Vec::new()
        };
        let done = conn.transaction::<_, Error, _>(|c| {
            if !dbp::update_if_version(c, &p, old.version)? {
                return Ok(None);
            }
            dbp::set_machines_power(c, &p.id, &machines_power)?;
            crate::db::users::audit(c, now, &caller.username, "pod.update", &p.id, &p.name)?;
            Ok(Some(queue(
                c,
                &p,
                PodJobKind::Discover,
                None,
                &caller.username,
                now,
            )?))
        })?;
        if let Some(job) = done {
            return Ok(job);
        }
    }
    Err(Error::conflict(
        "busy",
        None,
        format!("Pod {id} is being changed by someone else; try again."),
    ))
}

/// Queues a discovery (admins), or returns the one already waiting.
pub fn refresh(conn: &mut DbConn, caller: &Caller, id: &str, now: i64) -> Result<String> {
    require_admin(caller, "refresh pods")?;
    let p = row(conn, id)?;
    if let Some(j) = dbp::open_jobs(conn, &p.id)?
        .into_iter()
        .find(|j| j.kind == "discover" && j.status == "pending")
    {
        return Ok(j.id);
    }
    queue(conn, &p, PodJobKind::Discover, None, &caller.username, now)
}

/// Queues the destruction of a composed machine's VM (its row goes once the host confirms), or
/// returns the one already queued.
pub fn queue_decompose(
    conn: &mut DbConn,
    m: &dbm::MachineRow,
    requested_by: &str,
    now: i64,
) -> Result<String> {
    let Some(pod_id) = &m.pod_id else {
        return Err(Error::conflict(
            "not_composed",
            None,
            format!("Machine {} was not composed on a pod.", m.system_id),
        ));
    };
    let p = dbp::get(conn, pod_id)?.ok_or_else(|| not_found(pod_id))?;
    if let Some(j) = dbp::open_jobs(conn, &p.id)?
        .into_iter()
        .find(|j| j.kind == "decompose" && j.system_id.as_deref() == Some(m.system_id.as_str()))
    {
        return Ok(j.id);
    }
    let name = m
        .power_parameters()
        .get("power_id")
        .and_then(Value::as_str)
        .unwrap_or(&m.hostname)
        .to_string();
    let vm = VmSpec {
        system_id: m.system_id.clone(),
        name,
        cores: 0,
        memory_mib: 0,
        virt_type: String::new(),
        arch: String::new(),
        firmware: String::new(),
        secure_boot: false,
        disks: vec![],
        nics: vec![],
    };
    queue(
        conn,
        &p,
        PodJobKind::Decompose,
        Some(&vm),
        requested_by,
        now,
    )
}

/// `POST /pods/{id}/decompose/{system_id}` and deleting a composed machine (admins; refused in the
/// statuses that refuse delete).
pub fn decompose(
    conn: &mut DbConn,
    caller: &Caller,
    pod: Option<&str>,
    system_id: &str,
    now: i64,
) -> Result<String> {
    require_admin(caller, "decompose machines")?;
    let m = dbm::get_row(conn, system_id)?
        .ok_or_else(|| Error::not_found(format!("machine {system_id}")))?;
    if let Some(pid) = pod {
        let p = row(conn, pid)?;
        if m.pod_id.as_deref() != Some(p.id.as_str()) {
            return Err(Error::not_found(format!(
                "machine {system_id} on pod {}",
                p.name
            )));
        }
    }
    super::machines::precheck(conn, caller, &m, api::MachineAction::Delete)?;
    let job = queue_decompose(conn, &m, &caller.username, now)?;
    crate::db::users::audit(conn, now, &caller.username, "pod.decompose", system_id, "")?;
    Ok(job)
}

/// Deleting a pod (admins): refused while it has composed machines unless `force`, which queues
/// the decomposition of each (the caller waits, then calls [`finish_delete`]).
pub fn delete(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    force: bool,
    now: i64,
) -> Result<(String, Vec<String>)> {
    require_admin(caller, "delete pods")?;
    let p = row(conn, id)?;
    let ms = dbp::machines_of(conn, &p.id)?;
    if !ms.is_empty() && !force {
        let names: Vec<&str> = ms.iter().map(|m| m.1.as_str()).collect();
        return Err(Error::conflict("pod_has_machines", None, format!(
            "Pod {} has {} composed machine(s) ({}); decompose them first, or delete with force to decompose them and remove the pod.",
            p.name, ms.len(), names.join(", "))));
    }
    let mut jobs = Vec::new();
    for (system_id, _, _) in &ms {
        if let Some(m) = dbm::get_row(conn, system_id)? {
            jobs.push(queue_decompose(conn, &m, &caller.username, now)?);
        }
    }
    Ok((p.id, jobs))
}

/// Removes the pod and whatever machines of it are left (their VMs stay on the host).
pub fn finish_delete(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    decomposed: Vec<String>,
    now: i64,
) -> Result<api::PodDeleted> {
    let p = row(conn, id)?;
    let mut out = api::PodDeleted {
        decomposed,
        left_on_host: vec![],
    };
    conn.transaction::<_, Error, _>(|c| {
        for (system_id, hostname, _) in dbp::machines_of(c, &p.id)? {
            let reason = dbp::open_jobs(c, &p.id)?
                .into_iter()
                .chain(crate::db::pods::last_job_of(c, &system_id)?)
                .find(|j| j.system_id.as_deref() == Some(system_id.as_str()))
                .and_then(|j| j.message)
                .unwrap_or_else(|| "the host did not answer in time".into());
            if let Some(m) = dbm::get_row(c, &system_id)? {
                dbm::delete_if_version(c, &system_id, m.version)?;
                super::volumes::retire(c, &system_id, false, now)?;
            }
            super::access::event(c, now, &system_id, api::EventLevel::Warning, "deleted",
                &format!("Machine {hostname} removed with pod {}; its VM is still on the host: {reason}.", p.name), Some(&caller.username))?;
            out.left_on_host.push(api::PodVmLeft { system_id, hostname, reason });
        }
        dbp::delete(c, &p.id)?;
        crate::db::users::audit(c, now, &caller.username, "pod.delete", &p.id, &p.name)?;
        Ok(())
    })?;
    Ok(out)
}
