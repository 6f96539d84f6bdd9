//! `POST /machines/allocate`: the best-fitting Ready machine for a set of constraints (pure
//! choice, then the lifecycle's Allocate with compare-and-set; a lost race tries the next one).

use region_api_types::{self as api, MachineAction, MachineStatus};

use super::{machines, validate, Caller};
use crate::config::Lifecycle;
use crate::db::machines::{self as dbm, Filter};
use crate::db::DbConn;
use crate::error::{Error, Result};

/// One constraint: its name in a refusal, and the test.
type Check<'a> = (String, Box<dyn Fn(&api::Machine) -> bool + 'a>);

/// The constraints, checked one by one so that a refusal can name the one no machine meets.
fn checks(req: &api::AllocateRequest) -> Vec<Check<'_>> {
    let mut v: Vec<Check<'_>> = Vec::new();
    if let Some(id) = &req.system_id {
        v.push((
            format!("system_id={id}"),
            Box::new(move |m| &m.system_id == id),
        ));
    }
    if let Some(h) = &req.hostname {
        v.push((format!("hostname={h}"), Box::new(move |m| &m.hostname == h)));
    }
    if let Some(a) = &req.architecture {
        v.push((
            format!("architecture={a}"),
            Box::new(move |m| &m.architecture == a),
        ));
    }
    if let Some(n) = req.cpu_count {
        v.push((
            format!("cpu_count>={n}"),
            Box::new(move |m| m.cpu_count >= n),
        ));
    }
    if let Some(n) = req.memory_mib {
        v.push((
            format!("memory_mib>={n}"),
            Box::new(move |m| m.memory_mib >= n),
        ));
    }
    if let Some(n) = req.storage_gib {
        v.push((
            format!("storage_gib>={n}"),
            Box::new(move |m| m.storage_bytes >= n.saturating_mul(1 << 30)),
        ));
    }
    for t in &req.tags {
        v.push((format!("tag {t}"), Box::new(move |m| m.tags.contains(t))));
    }
    for t in &req.not_tags {
        v.push((
            format!("not tag {t}"),
            Box::new(move |m| !m.tags.contains(t)),
        ));
    }
    if let Some(z) = &req.zone {
        v.push((format!("zone={z}"), Box::new(move |m| &m.zone == z)));
    }
    if let Some(p) = &req.pool {
        v.push((format!("pool={p}"), Box::new(move |m| &m.pool == p)));
    }
    v
}

/// The machines that meet every constraint, best fit first (fewest CPUs, then least memory, then
/// least storage, so bigger machines stay free for bigger requests), or the refusal: the first
/// constraint no Ready machine meets, else the combination.
pub fn choose<'a>(
    ready: &'a [api::Machine],
    req: &api::AllocateRequest,
) -> std::result::Result<Vec<&'a api::Machine>, String> {
    if ready.is_empty() {
        return Err("There is no Ready machine to allocate: commission machines first.".into());
    }
    let cs = checks(req);
    let mut fit: Vec<&api::Machine> = ready
        .iter()
        .filter(|m| cs.iter().all(|(_, f)| f(m)))
        .collect();
    if fit.is_empty() {
        if let Some((name, _)) = cs.iter().find(|(_, f)| !ready.iter().any(f)) {
            return Err(format!(
                "No Ready machine meets {name} ({} Ready machine(s) looked at).",
                ready.len()
            ));
        }
        let names: Vec<&str> = cs.iter().map(|(n, _)| n.as_str()).collect();
        return Err(format!(
            "Each constraint is met by some Ready machine, but none meets all of: {}.",
            names.join(", ")
        ));
    }
    fit.sort_by_key(|m| {
        (
            m.cpu_count,
            m.memory_mib,
            m.storage_bytes,
            m.system_id.clone(),
        )
    });
    Ok(fit)
}

fn check_input(req: &api::AllocateRequest) -> Result<()> {
    for (field, v) in [
        ("cpu_count", req.cpu_count.map(i64::from)),
        ("memory_mib", req.memory_mib),
        ("storage_gib", req.storage_gib),
    ] {
        if let Some(n) = v {
            if n < 0 {
                return Err(Error::validation(
                    field,
                    format!("{field} must be 0 or more; got {n}."),
                ));
            }
        }
    }
    for t in req.tags.iter().chain(&req.not_tags) {
        validate::name("tags", t)?;
    }
    Ok(())
}

pub fn allocate(
    conn: &mut DbConn,
    caller: &Caller,
    req: &api::AllocateRequest,
    cfg: &Lifecycle,
    now: i64,
) -> Result<api::Machine> {
    check_input(req)?;
    let f = Filter {
        statuses: vec![MachineStatus::Ready.as_str().to_string()],
        ..Default::default()
    };
    let (ready, _) = dbm::list(conn, &f, 100_000, 0)?;
    let ready: Vec<api::Machine> = ready.into_iter().filter(|m| m.owner.is_none()).collect();
    let fit = choose(&ready, req).map_err(|msg| Error::conflict("no_machine_fits", None, msg))?;
    for m in fit {
        match machines::act(
            conn,
            caller,
            &m.system_id,
            MachineAction::Allocate,
            req.comment.as_deref(),
            cfg,
            now,
        ) {
            Ok(Some(m)) => return Ok(m),
            Ok(None) => continue,
            // Someone else took it meanwhile: the next best one.
            Err(Error::InvalidTransition(_)) | Err(Error::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::conflict(
        "no_machine_fits",
        None,
        "Every machine that fits was allocated by someone else meanwhile; try again.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, cpus: i32, mem: i64, tags: &[&str]) -> api::Machine {
        serde_json::from_value(serde_json::json!({
            "system_id": id, "hostname": id, "status": "ready", "status_label": "Ready",
            "previous_status": null, "status_deadline": null, "architecture": "amd64/generic",
            "boot_mac": null, "power_type": "manual", "power_parameters": {}, "owner": null,
            "zone": "default", "pool": "default", "tags": tags, "description": "",
            "cpu_count": cpus, "memory_mib": mem, "storage_bytes": 10i64 << 30,
            "interfaces": [], "hardware": null, "created_at": "", "updated_at": ""
        }))
        .unwrap()
    }

    #[test]
    fn best_fit_and_named_refusals() {
        let ms = vec![
            m("big", 16, 65536, &["gpu"]),
            m("small", 2, 2048, &[]),
            m("mid", 4, 8192, &["gpu"]),
        ];
        let req = api::AllocateRequest {
            cpu_count: Some(3),
            ..Default::default()
        };
        assert_eq!(choose(&ms, &req).unwrap()[0].system_id, "mid");
        let req = api::AllocateRequest {
            tags: vec!["gpu".into()],
            cpu_count: Some(8),
            ..Default::default()
        };
        assert_eq!(choose(&ms, &req).unwrap()[0].system_id, "big");
        let req = api::AllocateRequest {
            cpu_count: Some(32),
            ..Default::default()
        };
        assert!(choose(&ms, &req).unwrap_err().contains("cpu_count>=32"));
        let req = api::AllocateRequest {
            not_tags: vec!["gpu".into()],
            memory_mib: Some(4096),
            ..Default::default()
        };
        assert!(choose(&ms, &req).unwrap_err().contains("none meets all of"));
        assert!(choose(&[], &api::AllocateRequest::default()).is_err());
    }
}
