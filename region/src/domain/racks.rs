//! Rack enrolment and approval: one-time enrolment tokens (`kiln admin rack-token`), the
//! deprecated shared secret, approval by an admin, and revocation for good.
//!
//! A rack enrolled with a token is `pending` until an admin approves it, unless the token was
//! made with `--auto-approve`. A pending rack may only heartbeat (admins see it, its interfaces
//! and version); it gets no snapshot, no jobs, no files and no secrets. Revoking drops its token
//! and rotates the shared secret, so it cannot come back by itself: only a new token does.

use region_api_types::{self as api, EnrolmentToken};

use super::{auth, validate};
use crate::db::{self, fmt_time, random_id, DbConn};
use crate::error::{Error, Result};
use diesel::Connection;

/// The settings key of the deprecated shared rack secret.
pub const RACK_SECRET_KEY: &str = "rack_secret";

/// Longest life of an enrolment token.
pub const MAX_TOKEN_TTL_SECS: u64 = 7 * 24 * 3600;

/// The shared rack secret (created on first use). Deprecated: enrolment tokens replace it.
pub fn rack_secret(conn: &mut DbConn) -> Result<String> {
    db::racks::setting_or_insert(conn, RACK_SECRET_KEY, || {
        auth::new_token().replacen(
            auth::TOKEN_PREFIX,
            crate::api::credential::RACK_TOKEN_PREFIX,
            1,
        )
    })
}

/// Equal-time comparison, so a secret cannot be guessed byte by byte from response times.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Every BMC's network (what racks from before power networks, and all-in-one's own, drive).
pub const ALL_NETWORKS: &str = "0.0.0.0/0";

/// Checks a list of power networks: IPv4 CIDRs (host bits dropped), at most 64.
pub fn validate_networks(field: &str, nets: &[String]) -> Result<Vec<ipnet::Ipv4Net>> {
    if nets.len() > 64 {
        return Err(Error::validation(field, "At most 64 power networks."));
    }
    let mut out: Vec<ipnet::Ipv4Net> = Vec::with_capacity(nets.len());
    for n in nets {
        let net: ipnet::Ipv4Net = n.trim().parse().map_err(|_| {
            Error::validation(
                field,
                format!("'{n}' is not an IPv4 network in CIDR form (10.20.0.0/24; 0.0.0.0/0 for every BMC)"),
            )
        })?;
        let net = net.trunc();
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(out)
}

/// An admin says which networks' BMCs a rack drives (replacing the list).
pub fn set_power_networks(
    conn: &mut DbConn,
    id: &str,
    nets: &[String],
    by: &str,
    now: i64,
) -> Result<db::racks::RackRow> {
    let nets = validate_networks("power_networks", nets)?;
    if !db::racks::set_power_networks(conn, id, &nets)? {
        return Err(Error::not_found(format!("rack {id}")));
    }
    db::users::audit(
        conn,
        now,
        by,
        "rack.power_networks",
        id,
        &db::racks::nets_json(&nets),
    )?;
    db::racks::get(conn, id)?.ok_or_else(|| Error::not_found(format!("rack {id}")))
}

/// A new enrolment token: its row is stored (the secret hashed), the token returned once.
/// `ca_sha256` (the region CA's fingerprint, hex) goes into the token for the rack to pin; the
/// rack it enrols gets `power_networks`.
#[allow(clippy::too_many_arguments)]
pub fn create_token(
    conn: &mut DbConn,
    created_by: &str,
    ttl_secs: u64,
    auto_approve: bool,
    power_networks: &[String],
    ca_sha256: Option<String>,
    now: i64,
) -> Result<api::RackTokenCreated> {
    let nets = validate_networks("power_networks", power_networks)?;
    if !(60..=MAX_TOKEN_TTL_SECS).contains(&ttl_secs) {
        return Err(Error::validation(
            "ttl_secs",
            format!("an enrolment token lives from 60 s to {MAX_TOKEN_TTL_SECS} s (7 days)"),
        ));
    }
    let secret = auth::new_token()
        .trim_start_matches(auth::TOKEN_PREFIX)
        .to_string();
    let t = EnrolmentToken {
        id: random_id(8),
        secret,
        ca_sha256,
    };
    let expires_at = now + (ttl_secs as i64) * 1000;
    db::racks::insert_enrolment(
        conn,
        &db::racks::EnrolmentRow {
            id: t.id.clone(),
            secret_hash: auth::token_hash(&t.secret),
            auto_approve,
            power_networks: db::racks::nets_json(&nets),
            created_by: created_by.to_string(),
            created_at: now,
            expires_at,
            used_at: None,
            rack_id: None,
        },
    )?;
    let detail = format!(
        "expires {}, auto-approve {auto_approve}",
        fmt_time(expires_at)
    );
    db::users::audit(conn, now, created_by, "rack.token", &t.id, &detail)?;
    Ok(api::RackTokenCreated {
        id: t.id.clone(),
        token: t.to_string(),
        expires_at: fmt_time(expires_at),
        auto_approve,
    })
}

/// What a registering rack sent, validated.
pub struct Registration {
    pub name: String,
    pub interfaces_json: String,
    pub version: Option<String>,
    pub secret: String,
    pub enrolment_token: Option<String>,
}

/// How a registration was let in.
enum Admission {
    /// An enrolment token (its id); the rack's approval and power networks as the token says.
    Token {
        id: String,
        approval: &'static str,
        power_networks: String,
    },
    /// The deprecated shared secret.
    Secret,
}

fn admit(conn: &mut DbConn, r: &Registration, now: i64) -> Result<Admission> {
    let Some(text) = &r.enrolment_token else {
        if !same(&rack_secret(conn)?, &r.secret) {
            return Err(Error::Unauthorized(
                "Wrong rack secret: enrol the rack with a token from `kiln admin rack-token` (the shared `kiln admin rack-secret` is deprecated, and revoking a rack changes it)."
                    .into(),
            ));
        }
        return Ok(Admission::Secret);
    };
    let t = EnrolmentToken::parse(text).map_err(Error::Unauthorized)?;
    let unknown = || {
        Error::Unauthorized(
            "Unknown enrolment token: make one with `kiln admin rack-token` on the region.".into(),
        )
    };
    let row = db::racks::enrolment(conn, &t.id)?.ok_or_else(unknown)?;
    if !same(&row.secret_hash, &auth::token_hash(&t.secret)) {
        return Err(unknown());
    }
    if row.used_at.is_some() {
        return Err(Error::Unauthorized(format!(
            "Enrolment token {} was used already (tokens enrol one rack, once): make a new one with `kiln admin rack-token`.",
            row.id
        )));
    }
    if row.expires_at <= now {
        return Err(Error::Unauthorized(format!(
            "Enrolment token {} expired at {}: make a new one with `kiln admin rack-token`.",
            row.id,
            fmt_time(row.expires_at)
        )));
    }
    Ok(Admission::Token {
        id: row.id,
        approval: if row.auto_approve {
            "approved"
        } else {
            "pending"
        },
        power_networks: row.power_networks,
    })
}

/// Registers a rack (or enrols again one of the same name): checks the token or secret, makes
/// or updates its row with a new rack token, and uses up the enrolment token, in one
/// transaction. Returns the credentials and the rack's approval.
pub fn register(
    conn: &mut DbConn,
    r: &Registration,
    now: i64,
) -> Result<(api::RackRegistered, String)> {
    use diesel::Connection;
    conn.transaction::<_, Error, _>(|c| {
        let admission = admit(c, r, now)?;
        let token = auth::new_token().replacen(
            auth::TOKEN_PREFIX,
            crate::api::credential::RACK_TOKEN_PREFIX,
            1,
        );
        let hash = auth::token_hash(&token);
        let existing = db::racks::by_name(c, &r.name)?;
        // A token's networks replace the rack's (when it names any); the shared secret keeps a
        // known rack's, and gives a new one every network, as before power networks existed.
        let nets: Option<String> = match (&admission, &existing) {
            (Admission::Token { power_networks, .. }, Some(_)) if power_networks == "[]" => None,
            (Admission::Token { power_networks, .. }, _) => Some(power_networks.clone()),
            (Admission::Secret, Some(_)) => None,
            (Admission::Secret, None) => Some(format!("[\"{ALL_NETWORKS}\"]")),
        };
        let approval = match (&admission, &existing) {
            (Admission::Token { approval, .. }, _) => approval.to_string(),
            (Admission::Secret, Some(e)) if e.approval == "revoked" => {
                return Err(Error::Forbidden(format!(
                    "Rack {} was revoked: it can come back only with a new enrolment token from `kiln admin rack-token`.",
                    r.name
                )))
            }
            (Admission::Secret, Some(e)) => e.approval.clone(),
            // As before enrolment tokens existed (one release): approved, with a warning.
            (Admission::Secret, None) => "approved".to_string(),
        };
        let id = match existing {
            Some(e) => {
                db::racks::reregister(
                    c,
                    &e.id,
                    &hash,
                    &r.interfaces_json,
                    r.version.as_deref(),
                    &approval,
                    now,
                )?;
                e.id
            }
            None => {
                let id = random_id(8);
                db::racks::insert(
                    c,
                    &db::racks::RackRow {
                        id: id.clone(),
                        name: r.name.clone(),
                        status: "online".into(),
                        last_seen: Some(now),
                        version: r.version.clone(),
                        interfaces: r.interfaces_json.clone(),
                        created_at: now,
                        token_hash: Some(hash.clone()),
                        iscsi: None,
                        images: None,
                        approval: approval.clone(),
                        power_networks: "[]".into(),
                    },
                )?;
                id
            }
        };
        if let Some(n) = &nets {
            db::racks::set_power_networks(c, &id, &db::racks::parse_nets(n))?;
        }
        let how = match &admission {
            Admission::Token { id: tid, .. } => {
                if !db::racks::use_enrolment(c, tid, &id, now)? {
                    return Err(Error::Unauthorized(format!(
                        "Enrolment token {tid} was used already (tokens enrol one rack, once): make a new one with `kiln admin rack-token`."
                    )));
                }
                format!("enrolment token {tid}, {approval}")
            }
            Admission::Secret => {
                tracing::warn!(rack.id = %id, "rack {} registered with the deprecated shared rack secret: enrol racks with `kiln admin rack-token` instead", r.name);
                format!("deprecated shared secret, {approval}")
            }
        };
        db::users::audit(c, now, &format!("rack:{}", r.name), "rack.register", &id, &how)?;
        Ok((api::RackRegistered { rack_id: id, token }, approval))
    })
}

/// An admin approves a pending rack. Approving an approved rack changes nothing; a revoked one
/// is refused (it needs a new enrolment token).
pub fn approve(conn: &mut DbConn, id: &str, by: &str, now: i64) -> Result<db::racks::RackRow> {
    let r = db::racks::get(conn, id)?.ok_or_else(|| Error::not_found(format!("rack {id}")))?;
    match r.approval.as_str() {
        "approved" => Ok(r),
        "revoked" => Err(Error::conflict(
            "revoked",
            None,
            format!(
                "Rack {} was revoked for good: enrol it again with a new token from `kiln admin rack-token`.",
                r.name
            ),
        )),
        _ => {
            db::racks::set_approval(conn, id, "approved")?;
            db::users::audit(conn, now, by, "rack.approve", id, &r.name)?;
            db::racks::get(conn, id)?.ok_or_else(|| Error::not_found(format!("rack {id}")))
        }
    }
}

/// An admin revokes a rack for good: its token is dropped (every rack request then gets 401),
/// it gets no jobs, snapshot or secrets, and the shared secret changes so that it cannot
/// register itself again.
pub fn revoke(conn: &mut DbConn, id: &str, by: &str, now: i64) -> Result<()> {
    let r = db::racks::get(conn, id)?.ok_or_else(|| Error::not_found(format!("rack {id}")))?;
    db::racks::set_approval(conn, id, "revoked")?;
    db::racks::delete_setting(conn, RACK_SECRET_KEY)?;
    db::users::audit(conn, now, by, "rack.revoke", id, &r.name)?;
    Ok(())
}

/// Most events a rack may send at once.
pub const MAX_EVENTS: usize = 5000;

/// What a rack saw (DHCP leases, PXE requests, files sent), all validated first, then written in
/// one transaction: each becomes an event on the machine with that MAC (or a machine-less event
/// for an unknown MAC, attached when it enlists); a lease also records the machine's address.
pub fn record_events(
    conn: &mut DbConn,
    rack_id: &str,
    rack_name: &str,
    evs: &[api::RackEvent],
    now: i64,
) -> Result<()> {
    if evs.len() > MAX_EVENTS {
        return Err(Error::TooLarge(format!(
            "Send at most {MAX_EVENTS} events at once."
        )));
    }
    let mut clean = Vec::with_capacity(evs.len());
    for (i, e) in evs.iter().enumerate() {
        let mac = validate::mac(&format!("[{i}].mac"), &e.mac)?;
        let et = validate::name(&format!("[{i}].event_type"), &e.event_type)?;
        let desc = validate::text(&format!("[{i}].description"), &e.description, 1024)?;
        let at = chrono::DateTime::parse_from_rfc3339(&e.at)
            .map(|t| t.timestamp_millis())
            .map_err(|_| Error::validation(format!("[{i}].at"), "'at' must be an RFC 3339 time"))?;
        let ip = match &e.ip {
            Some(ip) => Some(validate::ipv4(&format!("[{i}].ip"), ip)?),
            None => None,
        };
        clean.push((mac, et, desc, at, ip));
    }
    conn.transaction::<_, Error, _>(|c| {
        db::racks::seen(c, rack_id, None, now)?;
        // Once per batch, not once per lease report.
        let subnets = db::subnets::list_api(c)?;
        for (mac, et, desc, at, ip) in &clean {
            let system_id = match ip {
                Some(ip) => db::racks::record_lease(c, mac, *ip, &subnets)?,
                None => db::machines::machine_with_mac(c, mac)?,
            };
            let description = match &system_id {
                Some(_) => format!("{desc} (rack {rack_name})"),
                None => format!("{desc} (MAC {mac}, rack {rack_name})"),
            };
            db::events::insert(
                c,
                &db::events::NewEvent {
                    system_id: system_id.as_deref(),
                    created_at: *at,
                    level: rack_event_level(et).as_str(),
                    event_type: et,
                    description: &description,
                    username: None,
                    mac: if system_id.is_none() {
                        Some(mac.as_str())
                    } else {
                        None
                    },
                },
            )?;
        }
        Ok(())
    })
}

/// What a rack saw is information, except a failure it reports (`iscsi_login_failed`, ...).
pub fn rack_event_level(event_type: &str) -> api::EventLevel {
    if event_type.ends_with("_failed") {
        api::EventLevel::Error
    } else {
        api::EventLevel::Info
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn equal_time_compare() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
