//! Pod jobs: which rack runs them, handing them over (with the host's password), and what their
//! answers do: every answer carries the host as it is now (capacity reconciled); a compose that
//! worked commissions its machine, one that failed removes it; a decompose that worked removes the
//! machine; a failed discovery marks the pod `error` and keeps its machines.

use diesel::Connection;
use region_api_types::{self as api, PodJobKind, PodState, VmSpec};

use super::access::event;
use super::commissioning::system_caller;
use super::secrets::SecretBox;
use crate::config::Lifecycle;
use crate::db::machines as dbm;
use crate::db::pods::{self as dbp, PodRow};
use crate::db::DbConn;
use crate::error::{Error, Result};

/// The host part of a libvirt URI (`qemu+ssh://user@host:22/system` → `host`); `None` for the
/// local hypervisor (`qemu:///system`).
pub fn uri_host(uri: &str) -> Option<String> {
    let rest = uri.split_once("://")?.1;
    let auth = rest.split(['/', '?']).next().unwrap_or("");
    let host = auth.rsplit('@').next().unwrap_or(auth);
    let host = if let Some(h) = host.strip_prefix('[') {
        h.split(']').next().unwrap_or(h)
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// The rack for a pod's jobs: the approved rack that drives the host's network (its power
/// networks); for a host without an address (`qemu:///system`: the rack on the host itself) the
/// rack that reached it last, while it is approved, else one that serves every network.
pub fn rack_for(conn: &mut DbConn, p: &PodRow) -> Result<Option<String>> {
    if let Some(ip) = uri_host(&p.power_address).and_then(|h| h.parse().ok()) {
        return super::power::rack_reaching(conn, ip);
    }
    if let Some(r) = &p.rack_id {
        if crate::db::racks::get(conn, r)?.is_some_and(|r| r.approval == "approved") {
            return Ok(Some(r.clone()));
        }
    }
    super::power::rack_for(conn, "virsh", &serde_json::Map::new())
}

/// Takes up to `max` pending jobs for a rack, one at a time per pod.
pub fn take_jobs(
    conn: &mut DbConn,
    sb: &SecretBox,
    rack_id: &str,
    max: i64,
    now: i64,
) -> Result<Vec<api::RackPodJob>> {
    let mut out = Vec::new();
    for j in dbp::pending_for(conn, rack_id, max)? {
        // A pod's jobs run in order: not while one of its jobs is running.
        if dbp::open_jobs(conn, &j.pod_id)?
            .iter()
            .any(|o| o.status == "running" || (o.created_at, &o.id) < (j.created_at, &j.id))
        {
            continue;
        }
        let Some(p) = dbp::get(conn, &j.pod_id)? else {
            continue;
        };
        if !dbp::take(conn, &j.id, rack_id, now)? {
            continue;
        }
        let pass = match super::pods::password(sb, &p) {
            Ok(pw) => pw,
            Err(e) => {
                let r = api::RackPodResult {
                    ok: false,
                    message: e.to_string(),
                    discovery: None,
                };
                finish(conn, &Lifecycle::default(), rack_id, &j.id, &r, now)?;
                continue;
            }
        };
        out.push(api::RackPodJob {
            id: j.id.clone(),
            pod_id: p.id.clone(),
            kind: PodJobKind::parse(&j.kind).unwrap_or(PodJobKind::Discover),
            power_address: p.power_address.clone(),
            power_pass: pass,
            vm: j.spec.as_deref().and_then(|s| serde_json::from_str(s).ok()),
        });
    }
    Ok(out)
}

/// A rack's answer.
pub fn finish(
    conn: &mut DbConn,
    lifecycle: &Lifecycle,
    rack_id: &str,
    job_id: &str,
    r: &api::RackPodResult,
    now: i64,
) -> Result<()> {
    let Some(j) = dbp::job(conn, job_id)? else {
        return Err(Error::not_found(format!("pod job {job_id}")));
    };
    if j.taken_by.as_deref() != Some(rack_id) {
        return Err(Error::not_found(format!("pod job {job_id} of this rack")));
    }
    let message: String = r.message.chars().take(2000).collect();
    let kind = PodJobKind::parse(&j.kind).unwrap_or(PodJobKind::Discover);
    let vm: Option<VmSpec> = j.spec.as_deref().and_then(|s| serde_json::from_str(s).ok());
    conn.transaction::<_, Error, _>(|c| {
        if !dbp::finish(c, job_id, "running", r.ok, &message, now)? {
            return Ok(());
        }
        if let Some(mut p) = dbp::get(c, &j.pod_id)? {
            let v = p.version;
            if let Some(d) = &r.discovery {
                p.discovered = Some(serde_json::to_string(d).unwrap_or_default());
                p.state = PodState::Ok.as_str().into();
                p.message = None;
                p.refreshed_at = Some(now);
                if !rack_id.is_empty() {
                    p.rack_id = Some(rack_id.to_string());
                }
            } else if !r.ok && kind == PodJobKind::Discover {
                p.state = PodState::Error.as_str().into();
                p.message = Some(message.clone());
                p.refreshed_at = Some(now);
            }
            p.updated_at = now;
            dbp::update_if_version(c, &p, v)?;
        }
        let Some(system_id) = j.system_id.as_deref() else {
            return Ok(());
        };
        let Some(m) = dbm::get_row(c, system_id)? else {
            return Ok(());
        };
        let by = j.requested_by.as_deref();
        match (kind, r.ok) {
            (PodJobKind::Compose, true) => {
                event(c, now, system_id, api::EventLevel::Info, "composed", &format!("{message}."), by)?;
                if let Err(e) = super::machines::act(c, &system_caller(), system_id, api::MachineAction::Commission, None, lifecycle, now) {
                    event(c, now, system_id, api::EventLevel::Error, "commissioning_failed",
                        &format!("The composed VM could not start commissioning: {e}. Commission it by hand."), None)?;
                }
            }
            (PodJobKind::Compose, false) => {
                // Nothing is left on the host (the rack undoes a half-made VM): neither here.
                dbm::delete_if_version(c, system_id, m.version)?;
                event(c, now, system_id, api::EventLevel::Error, "compose_failed",
                    &format!("Composing {} failed: {message}. The machine was removed.", vm.as_ref().map(|v| v.name.as_str()).unwrap_or("the VM")), by)?;
            }
            (PodJobKind::Decompose, true) => {
                dbm::delete_if_version(c, system_id, m.version)?;
                super::volumes::retire(c, system_id, false, now)?;
                event(c, now, system_id, api::EventLevel::Info, "deleted",
                    &format!("Machine {} decomposed: {message}.", m.hostname), by)?;
                crate::db::users::audit(c, now, by.unwrap_or("kiln"), "machine.delete", system_id, &m.hostname)?;
            }
            (PodJobKind::Decompose, false) => {
                event(c, now, system_id, api::EventLevel::Error, "decompose_failed",
                    &format!("Decomposing {} failed: {message}. The machine is kept; try again.", m.hostname), by)?;
            }
            (PodJobKind::Discover, _) => {}
        }
        Ok(())
    })?;
    tracing::info!(pod = %j.pod_id, "pod job {} ({}) {}: {message}", j.id, j.kind, if r.ok { "done" } else { "failed" });
    Ok(())
}

/// Fails jobs no rack finished within `timeout_ms` (in words), prunes old ones.
pub fn expire(
    conn: &mut DbConn,
    lifecycle: &Lifecycle,
    now: i64,
    timeout_ms: i64,
) -> Result<usize> {
    let mut n = 0;
    for j in dbp::stale(conn, now - timeout_ms)? {
        let msg = if j.status == "pending" {
            match &j.rack_id {
                Some(r) => format!("rack {r}, the one that reaches the pod's host, did not take the job; is it running?"),
                None => "no rack took the job; is a rack registered and running?".into(),
            }
        } else {
            format!(
                "rack {} took the job but never answered",
                j.taken_by.as_deref().unwrap_or("?")
            )
        };
        let rack = j.taken_by.clone().unwrap_or_default();
        if j.status == "pending" && !dbp::take(conn, &j.id, &rack, now)? {
            continue;
        }
        let r = api::RackPodResult {
            ok: false,
            message: msg,
            discovery: None,
        };
        finish(conn, lifecycle, &rack, &j.id, &r, now)?;
        n += 1;
    }
    dbp::prune(conn, now - 7 * 24 * 3600 * 1000)?;
    Ok(n)
}

/// Queues discoveries of pods not refreshed for `every_ms`.
pub fn enqueue_refreshes(conn: &mut DbConn, now: i64, every_ms: i64) -> Result<usize> {
    let mut n = 0;
    for id in dbp::due_for_refresh(conn, now - every_ms)? {
        if let Some(p) = dbp::get(conn, &id)? {
            super::pods::queue(conn, &p, PodJobKind::Discover, None, "kiln", now)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::uri_host;

    #[test]
    fn hosts_of_libvirt_uris() {
        assert_eq!(uri_host("qemu:///system"), None);
        assert_eq!(uri_host("qemu:///system?socket=/x/sock"), None);
        assert_eq!(
            uri_host("qemu+ssh://kiln@10.0.0.5/system").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            uri_host("qemu+tcp://10.0.0.6:16509/system").as_deref(),
            Some("10.0.0.6")
        );
        assert_eq!(
            uri_host("qemu+ssh://[fd00::1]:22/system").as_deref(),
            Some("fd00::1")
        );
        assert_eq!(
            uri_host("qemu+ssh://host.example/system?keyfile=/k").as_deref(),
            Some("host.example")
        );
    }
}
