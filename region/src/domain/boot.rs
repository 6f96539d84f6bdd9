//! What a PXE-booting machine boots, and its per-boot credential. A rack asks the region what the
//! machine with a MAC boots ([`rack_boot`]: unknown MACs are enlisted); an ephemeral or memory boot
//! gets a one-time **claim code**, which the rack writes on the kernel command line (the console
//! shows it, so it must be worth nothing once used). The machine's initramfs trades it, through
//! the rack that leased its address, for the real per-boot token ([`redeem_claim`]), which
//! authenticates its metadata requests ([`authenticate`]) and replaces the machine's last one.

use super::access::system_event as event;
use diesel::Connection;
use region_api_types::{self as api, MachineAction, MachineStatus};

use super::commissioning::{boots_ephemeral, system_caller};
use super::secrets::SecretBox;
use super::{auth, machines, validate};
use crate::config::Lifecycle;
use crate::db::commissioning::{self as dbc, BootClaimRow, BootTokenRow};
use crate::db::machines as dbm;
use crate::db::{self, random_id, DbConn};
use crate::error::{Error, Result};

/// Prefix of boot tokens (so a leaked one is recognisable).
pub const BOOT_TOKEN_PREFIX: &str = "boot_";
/// Prefix of boot claim codes.
pub const CLAIM_PREFIX: &str = "claim_";
/// How long a claim code may wait for its exchange: the machine downloads its kernel, initramfs
/// and (slowest) root filesystem first.
pub const CLAIM_TTL_MS: i64 = 3_600_000;

/// A rack asks what the machine with `mac` boots. Unknown MACs are enlisted (New, and
/// Commissioning right away if `cfg.enlist_commission`); machines that boot the ephemeral
/// environment get a claim code for a new boot credential (see [`redeem_claim`]).
/// One transaction: a machine is never left enlisted but not commissioning, nor without its claim.
pub fn rack_boot(
    conn: &mut DbConn,
    sb: &SecretBox,
    req: &api::RackBootRequest,
    rack_name: &str,
    cfg: &Lifecycle,
    now: i64,
) -> Result<api::RackBootAnswer> {
    let mac = validate::mac("mac", &req.mac)?;
    let architecture = validate::architecture(
        "architecture",
        req.architecture.as_deref().unwrap_or("amd64/generic"),
    )?;
    conn.transaction::<_, Error, _>(|c| {
        rack_boot_in(c, sb, &mac, &architecture, rack_name, cfg, now)
    })
}

fn rack_boot_in(
    conn: &mut DbConn,
    sb: &SecretBox,
    mac: &str,
    architecture: &str,
    rack_name: &str,
    cfg: &Lifecycle,
    now: i64,
) -> Result<api::RackBootAnswer> {
    let system = system_caller();
    let mut enlisted = false;
    let mut system_id = dbm::machine_with_mac(conn, mac)?;
    if system_id.is_none() {
        let create = api::MachineCreate {
            architecture: Some(architecture.to_string()),
            boot_mac: Some(mac.to_string()),
            description: Some(format!(
                "Enlisted after PXE booting from {mac} on rack {rack_name}."
            )),
            ..Default::default()
        };
        match machines::create(conn, sb, &system, &create, now) {
            Ok(m) => {
                enlisted = true;
                let attached = db::events::attach_mac(conn, mac, &m.system_id)?;
                event(
                    conn,
                    now,
                    &m.system_id,
                    api::EventLevel::Info,
                    "enlisted",
                    &format!(
                        "Enlisted as {} after PXE booting from {mac} on rack {rack_name} ({attached} earlier boot events attached).",
                        m.hostname
                    ),
                )?;
                tracing::info!(machine.id = %m.system_id, "enlisted {mac} as {}", m.hostname);
                if cfg.enlist_commission {
                    machines::act(
                        conn,
                        &system,
                        &m.system_id,
                        MachineAction::Commission,
                        Some("automatic after enlistment"),
                        cfg,
                        now,
                    )?;
                }
                system_id = Some(m.system_id);
            }
            // Another rack (or request) enlisted the same MAC a moment ago: use that machine.
            Err(Error::Conflict { .. }) => system_id = dbm::machine_with_mac(conn, mac)?,
            Err(e) => return Err(e),
        }
    }
    let system_id =
        system_id.ok_or_else(|| Error::Internal(format!("machine with MAC {mac} vanished")))?;
    let row = dbm::get_row(conn, &system_id)?
        .ok_or_else(|| Error::Internal(format!("machine {system_id} vanished")))?;
    let status = row.status();
    // A deployment whose installer finished boots its disk: no new credential (the installed
    // system holds the deployment's), whatever the rack's snapshot said.
    let deployment = if matches!(status, MachineStatus::Deploying | MachineStatus::Deployed) {
        crate::db::deploy::latest(conn, &system_id)?
            .filter(|d| matches!(d.state.as_str(), "running" | "installed" | "deployed"))
    } else {
        None
    };
    let local_boot = deployment
        .as_ref()
        .is_some_and(|d| d.state == "installed" && d.target == "disk");
    // Root on iSCSI: the rack serving the volume boots it; its credential was minted with the
    // deployment (and written into the volume), so none is minted here.
    let iscsi = deployment.as_ref().is_some_and(|d| d.target == "iscsi");
    // A memory deployment boots the OS image over the network every time, with a new credential.
    let memory_root = match &deployment {
        Some(d) if d.target == "memory" => memory_root(conn, &d.resource_id)?,
        _ => None,
    };
    let claim = if iscsi {
        None
    } else if (boots_ephemeral(status) && !local_boot) || memory_root.is_some() {
        // A deployment's credential lives as long as the deployment (the deployed system reads
        // its seed with it); release or the next deployment deletes it.
        let ttl_ms = if matches!(status, MachineStatus::Deploying | MachineStatus::Deployed) {
            DEPLOYMENT_TOKEN_TTL_MS
        } else {
            i64::try_from(cfg.node_timeout_secs)
                .unwrap_or(i64::MAX / 4_000)
                .saturating_mul(2_000)
                .max(3_600_000)
        };
        Some(mint_claim(conn, &system_id, status, ttl_ms, now)?)
    } else {
        None
    };
    Ok(api::RackBootAnswer {
        system_id,
        hostname: row.hostname,
        status,
        architecture: row.architecture,
        enlisted,
        token: None,
        claim,
        local_boot,
        esp_uuid: deployment.and_then(|d| d.esp_uuid),
        memory_root,
        iscsi,
    })
}

/// How long a deployment's credential lives: as long as the deployment (release or the next
/// deployment deletes it).
pub const DEPLOYMENT_TOKEN_TTL_MS: i64 = 100 * 365 * 86_400_000;

/// A new boot credential for the machine, replacing its last one.
pub fn mint_boot_token(
    conn: &mut DbConn,
    system_id: &str,
    status: MachineStatus,
    ttl_ms: i64,
    now: i64,
) -> Result<String> {
    let token = auth::new_token().replacen(auth::TOKEN_PREFIX, BOOT_TOKEN_PREFIX, 1);
    dbc::replace_boot_token(
        conn,
        &BootTokenRow {
            token_hash: auth::token_hash(&token),
            system_id: system_id.to_string(),
            boot_id: random_id(8),
            purpose: status.as_str().to_string(),
            created_at: now,
            expires_at: now.saturating_add(ttl_ms),
        },
    )?;
    Ok(token)
}

/// The OS image's root filesystem as racks serve it (memory deployments boot it).
fn memory_root(conn: &mut DbConn, resource_id: &str) -> Result<Option<api::SnapshotFile>> {
    let Some(r) = db::boot::get_row(conn, resource_id)? else {
        return Ok(None);
    };
    Ok(db::boot::files_of(conn, resource_id)?
        .into_iter()
        .find(|f| super::deploy::image_format(&f.filename) == Some("squashfs"))
        .map(|f| api::SnapshotFile {
            resource_id: r.id.clone(),
            os: r.os.clone(),
            release: r.release.clone(),
            arch: r.arch.clone(),
            kind: r.kind.clone(),
            filename: f.filename,
            sha256: f.sha256,
            size: f.size,
        }))
}

/// The machine and boot a metadata request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineBoot {
    pub system_id: String,
    pub boot_id: String,
}

/// Checks a boot token.
pub fn authenticate(conn: &mut DbConn, token: &str, now: i64) -> Result<MachineBoot> {
    let refused = || {
        Error::Unauthorized(
            "Unknown or expired boot token: metadata requests carry the kiln.token= of the machine's current boot.".into(),
        )
    };
    if !token.starts_with(BOOT_TOKEN_PREFIX) {
        return Err(refused());
    }
    let row = dbc::boot_token(conn, &auth::token_hash(token), now)?.ok_or_else(refused)?;
    Ok(MachineBoot {
        system_id: row.system_id,
        boot_id: row.boot_id,
    })
}

/// A new claim code for the machine's next credential (of `purpose`, living `token_ttl_ms` from
/// its exchange). A new boot voids the last one: its claim code and its credential.
pub fn mint_claim(
    conn: &mut DbConn,
    system_id: &str,
    purpose: MachineStatus,
    token_ttl_ms: i64,
    now: i64,
) -> Result<String> {
    let claim = auth::new_token().replacen(auth::TOKEN_PREFIX, CLAIM_PREFIX, 1);
    dbc::delete_boot_tokens(conn, system_id)?;
    dbc::replace_boot_claim(
        conn,
        &BootClaimRow {
            claim_hash: auth::token_hash(&claim),
            system_id: system_id.to_string(),
            purpose: purpose.as_str().to_string(),
            token_ttl_ms,
            created_at: now,
            expires_at: now.saturating_add(CLAIM_TTL_MS),
        },
    )?;
    Ok(claim)
}

/// Why an exchange was refused.
enum Refusal {
    /// Unknown, used or expired.
    Void,
    /// The code is another machine's (its owner is told).
    NotYours { owner: String },
}

/// A machine's initramfs trades its claim code for this boot's credential, through the rack that
/// leased its address to `mac` (the rack checked that). Good once; only for the machine with
/// that MAC. The token replaces the machine's last one. Refusals are events on the machines
/// concerned (a replayed code is someone who read a console).
pub fn redeem_claim(
    conn: &mut DbConn,
    req: &api::RackClaimRequest,
    rack_name: &str,
    now: i64,
) -> Result<api::RackClaimAnswer> {
    let mac = validate::mac("mac", &req.mac)?;
    let claim = req.claim.trim();
    if !claim.starts_with(CLAIM_PREFIX)
        || claim.len() > 100
        || !claim
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::validation(
            "claim",
            "Not a claim code: pass the kiln.claim= value of the machine's kernel command line (claim_...).",
        ));
    }
    let hash = auth::token_hash(claim);
    let outcome = conn.transaction::<_, Error, _>(|c| {
        let machine = dbm::machine_with_mac(c, &mac)?;
        let row = dbc::boot_claim(c, &hash, now)?;
        let row = match row {
            Some(r) if machine.as_deref() == Some(r.system_id.as_str()) => r,
            Some(r) => {
                event(
                    c,
                    now,
                    &r.system_id,
                    api::EventLevel::Warning,
                    "boot_claim_refused",
                    &format!(
                        "This machine's boot claim code was presented by {mac}, which is not one of its interfaces, through rack {rack_name}: refused (the code stays good for this machine)."
                    ),
                )?;
                return Ok(Err(Refusal::NotYours { owner: r.system_id }));
            }
            None => {
                if let Some(sid) = &machine {
                    event(
                        c,
                        now,
                        sid,
                        api::EventLevel::Warning,
                        "boot_claim_refused",
                        &format!(
                            "{mac} presented a boot claim code that is unknown, used or expired, through rack {rack_name}: refused (a code is good once, for an hour)."
                        ),
                    )?;
                }
                return Ok(Err(Refusal::Void));
            }
        };
        if !dbc::consume_boot_claim(c, &hash)? {
            return Ok(Err(Refusal::Void));
        }
        let purpose = MachineStatus::parse(&row.purpose).unwrap_or(MachineStatus::Commissioning);
        let token = mint_boot_token(c, &row.system_id, purpose, row.token_ttl_ms, now)?;
        event(
            c,
            now,
            &row.system_id,
            api::EventLevel::Info,
            "boot_claimed",
            &format!("{mac} claimed this boot's credential through rack {rack_name}."),
        )?;
        Ok(Ok(api::RackClaimAnswer {
            system_id: row.system_id,
            token,
        }))
    })?;
    outcome.map_err(|r| match r {
        Refusal::Void => Error::Forbidden(
            "This claim code is unknown, used or expired: a boot's code is good once. Reboot the machine for a new one.".into(),
        ),
        Refusal::NotYours { owner } => Error::Forbidden(format!(
            "This claim code is not for {mac}: it belongs to another machine ({owner})."
        )),
    })
}
