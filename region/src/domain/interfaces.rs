//! A machine's interfaces: static addresses (DHCP reservations), checked inside the transaction.

use region_api_types as api;

use super::access::{event, not_found, require_admin};
use super::{validate, Caller};
use crate::db::machines as dbm;
use crate::db::{self, DbConn};
use crate::error::{Error, Result};

/// Sets (or clears) the static address of one of a machine's interfaces: a DHCP reservation on its
/// subnet. The address must lie in a known subnet, outside its dynamic ranges, and not be its
/// gateway or another interface's.
pub fn set_interface_ip(
    conn: &mut DbConn,
    caller: &Caller,
    system_id: &str,
    mac: &str,
    ip: Option<&str>,
    now: i64,
) -> Result<api::Machine> {
    use crate::db::schema::{interfaces, machines};
    use diesel::prelude::*;
    require_admin(caller, "set static addresses")?;
    let mac = validate::mac("mac", mac)?;
    let row = dbm::get_row(conn, system_id)?.ok_or_else(|| not_found(system_id))?;
    let owned: i64 = interfaces::table
        .filter(interfaces::system_id.eq(system_id))
        .filter(interfaces::mac.eq(&mac))
        .count()
        .get_result(conn)?;
    if owned == 0 {
        return Err(Error::not_found(format!(
            "interface {mac} of machine {system_id}"
        )));
    }
    let (ip, subnet_id) = match ip {
        None => (None, None),
        Some(text) => {
            let addr = validate::ipv4("ip", text)?;
            let subnets = crate::db::subnets::list_api(conn)?;
            let s = crate::db::subnets::containing(&subnets, addr).ok_or_else(|| {
                Error::validation(
                    "ip",
                    format!("{addr} is in no known subnet; create the subnet first."),
                )
            })?;
            let net: ipnet::Ipv4Net = s
                .cidr
                .parse()
                .map_err(|_| Error::Internal("stored CIDR".into()))?;
            validate::ipv4_in("ip", text, &net)?;
            if s.gateway.as_deref() == Some(text.trim()) {
                return Err(Error::validation(
                    "ip",
                    format!("{addr} is the gateway of {}.", s.cidr),
                ));
            }
            if let Some(r) = crate::db::subnets::dynamic_range_of(s, addr) {
                return Err(Error::validation(
                    "ip",
                    format!(
                        "{addr} is inside the dynamic range {}-{} of {}; pick an address outside it.",
                        r.start, r.end, s.cidr
                    ),
                ));
            }
            (Some(addr.to_string()), Some(s.id.clone()))
        }
    };
    let taken = |addr: &str, o: &str| {
        Error::conflict(
            "duplicate_ip",
            Some("ip"),
            format!("{addr} is already the address of machine {o}."),
        )
    };
    conn.transaction::<_, Error, _>(|c| {
        // Checked inside the transaction (and the unique index on interfaces.ip holds even when two
        // regions race): the address is nobody else's.
        if let Some(addr) = &ip {
            let other: Option<String> = interfaces::table
                .filter(interfaces::ip.eq(addr))
                .filter(interfaces::mac.ne(&mac))
                .select(interfaces::system_id)
                .first(c)
                .optional()?;
            if let Some(o) = other {
                return Err(taken(addr, &o));
            }
        }
        // Compare-and-set on the version read above: a machine changed meanwhile is not
        // overwritten with an older version.
        let moved = diesel::update(
            machines::table
                .find(system_id)
                .filter(machines::version.eq(row.version)),
        )
        .set((
            machines::updated_at.eq(now.max(row.updated_at + 1)),
            machines::version.eq(row.version + 1),
        ))
        .execute(c)?;
        if moved == 0 {
            return Err(Error::conflict(
                "conflict",
                None,
                format!("Machine {system_id} changed while its address was being set; try again."),
            ));
        }
        diesel::update(interfaces::table.filter(interfaces::mac.eq(&mac)))
            .set((interfaces::ip.eq(&ip), interfaces::subnet_id.eq(&subnet_id)))
            .execute(c)
            .map_err(|e| match (&e, &ip) {
                (
                    diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    ),
                    Some(a),
                ) => taken(a, "another machine"),
                _ => e.into(),
            })?;
        crate::changes::machine_changed(system_id);
        let what = match &ip {
            Some(a) => format!(
                "Static address {a} reserved for {mac} by {}.",
                caller.username
            ),
            None => format!("Static address of {mac} removed by {}.", caller.username),
        };
        event(
            c,
            now,
            system_id,
            api::EventLevel::Info,
            "static_ip",
            &what,
            Some(&caller.username),
        )?;
        db::users::audit(
            c,
            now,
            &caller.username,
            "machine.set_ip",
            system_id,
            &format!("{mac} {}", ip.as_deref().unwrap_or("-")),
        )?;
        Ok(())
    })?;
    dbm::get(conn, system_id)?.ok_or_else(|| not_found(system_id))
}
