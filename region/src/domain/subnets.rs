//! Subnets: validation of the whole subnet (ranges inside the CIDR, no overlaps, routes well formed).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use region_api_types as api;

use super::{validate, Caller};
use crate::db::subnets::{self as dbs, SubnetRow};
use crate::db::{random_id, DbConn};
use crate::error::{Error, Result};

fn require_admin(caller: &Caller) -> Result<()> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "Only administrators may change subnets.".into(),
        ))
    }
}

fn ranges(
    field: &str,
    input: &[api::IpRange],
    net: &Ipv4Net,
) -> Result<Vec<(Ipv4Addr, Ipv4Addr, api::IpRange)>> {
    let mut out = Vec::new();
    for (i, r) in input.iter().enumerate() {
        let start = validate::ipv4_in(&format!("{field}[{i}].start"), &r.start, net)?;
        let end = validate::ipv4_in(&format!("{field}[{i}].end"), &r.end, net)?;
        if start > end {
            return Err(Error::validation(
                format!("{field}[{i}]"),
                format!("The range starts at {start} but ends before it, at {end}; swap them."),
            ));
        }
        let comment = match &r.comment {
            Some(c) => Some(validate::text(&format!("{field}[{i}].comment"), c, 256)?),
            None => None,
        };
        out.push((
            start,
            end,
            api::IpRange {
                start: start.to_string(),
                end: end.to_string(),
                comment,
            },
        ));
    }
    Ok(out)
}

/// Validates a complete subnet, returning its row (without id/timestamps filled).
#[allow(clippy::too_many_arguments)]
fn build(
    cidr: &str,
    name: Option<&str>,
    gateway: Option<&str>,
    dns_servers: &[String],
    domain: Option<&str>,
    dynamic: &[api::IpRange],
    reserved: &[api::IpRange],
    routes: &[api::StaticRoute],
    managed: bool,
) -> Result<SubnetRow> {
    let net = validate::cidr("cidr", cidr)?;
    let name = validate::name("name", name.unwrap_or(&net.to_string()))?;
    let gateway = match gateway.filter(|g| !g.is_empty()) {
        Some(g) => Some(validate::ipv4_in("gateway", g, &net)?),
        None => None,
    };
    let mut dns = Vec::new();
    for (i, d) in dns_servers.iter().enumerate() {
        dns.push(validate::ipv4(&format!("dns_servers[{i}]"), d)?.to_string());
    }
    let domain = match domain.filter(|d| !d.is_empty()) {
        Some(d) => {
            let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
            for label in d.split('.') {
                validate::hostname("domain", label)?;
            }
            Some(d)
        }
        None => None,
    };
    let dyn_r = ranges("dynamic_ranges", dynamic, &net)?;
    let res_r = ranges("reserved_ranges", reserved, &net)?;
    // No two ranges overlap, whatever their kind.
    let all: Vec<(&str, usize, &(Ipv4Addr, Ipv4Addr, api::IpRange))> = dyn_r
        .iter()
        .enumerate()
        .map(|(i, r)| ("dynamic_ranges", i, r))
        .chain(
            res_r
                .iter()
                .enumerate()
                .map(|(i, r)| ("reserved_ranges", i, r)),
        )
        .collect();
    for (a_idx, (fa, ia, a)) in all.iter().enumerate() {
        for (fb, ib, b) in all.iter().skip(a_idx + 1) {
            if a.0 <= b.1 && b.0 <= a.1 {
                return Err(Error::validation(
                    format!("{fb}[{ib}]"),
                    format!(
                        "{fb}[{ib}] ({}-{}) overlaps {fa}[{ia}] ({}-{}); ranges must not overlap.",
                        b.0, b.1, a.0, a.1
                    ),
                ));
            }
        }
    }
    if let Some(g) = gateway {
        for (f, i, r) in &all {
            if *f == "dynamic_ranges" && r.0 <= g && g <= r.1 {
                return Err(Error::validation(
                    format!("{f}[{i}]"),
                    format!(
                        "The gateway {g} lies inside dynamic range {}-{}; DHCP would hand it out.",
                        r.0, r.1
                    ),
                ));
            }
        }
    }
    let mut rts = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let dest = validate::cidr(&format!("static_routes[{i}].destination"), &r.destination)?;
        let gw = validate::ipv4_in(&format!("static_routes[{i}].gateway"), &r.gateway, &net)?;
        rts.push(api::StaticRoute {
            destination: dest.to_string(),
            gateway: gw.to_string(),
        });
    }
    Ok(SubnetRow {
        id: String::new(),
        name,
        cidr: net.to_string(),
        gateway: gateway.map(|g| g.to_string()),
        dns_servers: json(&dns),
        domain,
        dynamic_ranges: json(&dyn_r.into_iter().map(|r| r.2).collect::<Vec<_>>()),
        reserved_ranges: json(&res_r.into_iter().map(|r| r.2).collect::<Vec<_>>()),
        static_routes: json(&rts),
        managed,
        created_at: 0,
        updated_at: 0,
        ntp_servers: "[]".into(),
        lease_time_secs: None,
        relay_addresses: "[]".into(),
    })
}

/// Validates the DHCP settings beyond addressing: NTP servers, the lease time, relay agents.
fn dhcp_settings(
    row: &mut SubnetRow,
    ntp: &[String],
    lease_time: Option<u32>,
    relays: &[String],
) -> Result<()> {
    let mut servers = Vec::new();
    for (i, n) in ntp.iter().enumerate() {
        servers.push(validate::ipv4(&format!("ntp_servers[{i}]"), n)?.to_string());
    }
    row.ntp_servers = json(&servers);
    if relays.len() > 64 {
        return Err(Error::validation(
            "relay_addresses",
            format!(
                "{} relay agents is too many: list at most 64.",
                relays.len()
            ),
        ));
    }
    let mut agents = Vec::new();
    for (i, r) in relays.iter().enumerate() {
        let a = validate::ipv4(&format!("relay_addresses[{i}]"), r)?;
        if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
            return Err(Error::validation(
                format!("relay_addresses[{i}]"),
                format!(
                    "{a} cannot be a relay agent's address: give the address the relay sends from."
                ),
            ));
        }
        agents.push(a.to_string());
    }
    row.relay_addresses = json(&agents);
    row.lease_time_secs = match lease_time {
        Some(t) if !(60..=604_800).contains(&t) => {
            return Err(Error::validation(
                "lease_time_secs",
                format!(
                "A lease time of {t} s is out of range: use 60 s (1 minute) to 604800 s (7 days)."
            ),
            ))
        }
        Some(t) => Some(i32::try_from(t).unwrap_or(600)),
        None => None,
    };
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn check_unique(conn: &mut DbConn, row: &SubnetRow, except: Option<&str>) -> Result<()> {
    let net: Ipv4Net = row
        .cidr
        .parse()
        .map_err(|_| Error::Internal("stored CIDR".into()))?;
    for other in dbs::list(conn)? {
        if Some(other.id.as_str()) == except {
            continue;
        }
        if other.name == row.name {
            return Err(Error::conflict(
                "duplicate_subnet",
                Some("name"),
                format!(
                    "A subnet named {} exists already ({}).",
                    row.name, other.cidr
                ),
            ));
        }
        if let Ok(o) = other.cidr.parse::<Ipv4Net>() {
            if o.contains(&net.network()) || net.contains(&o.network()) {
                return Err(Error::conflict(
                    "duplicate_subnet",
                    Some("cidr"),
                    format!(
                        "{} overlaps the existing subnet {} ({}).",
                        net, o, other.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

pub fn create(
    conn: &mut DbConn,
    caller: &Caller,
    req: &api::SubnetCreate,
    now: i64,
) -> Result<api::Subnet> {
    require_admin(caller)?;
    let mut row = build(
        &req.cidr,
        req.name.as_deref(),
        req.gateway.as_deref(),
        req.dns_servers.as_deref().unwrap_or_default(),
        req.domain.as_deref(),
        req.dynamic_ranges.as_deref().unwrap_or_default(),
        req.reserved_ranges.as_deref().unwrap_or_default(),
        req.static_routes.as_deref().unwrap_or_default(),
        req.managed.unwrap_or(true),
    )?;
    dhcp_settings(
        &mut row,
        req.ntp_servers.as_deref().unwrap_or_default(),
        req.lease_time_secs,
        req.relay_addresses.as_deref().unwrap_or_default(),
    )?;
    check_unique(conn, &row, None)?;
    row.id = random_id(8);
    row.created_at = now;
    row.updated_at = now;
    dbs::insert(conn, &row)?;
    crate::db::users::audit(
        conn,
        now,
        &caller.username,
        "subnet.create",
        &row.id,
        &row.cidr,
    )?;
    Ok(row.to_api())
}

pub fn patch(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    p: &api::SubnetPatch,
    now: i64,
) -> Result<api::Subnet> {
    require_admin(caller)?;
    let cur = dbs::get(conn, id)?.ok_or_else(|| Error::not_found(format!("subnet {id}")))?;
    let cur_api = cur.to_api();
    let mut row = build(
        &cur.cidr,
        Some(p.name.as_deref().unwrap_or(&cur.name)),
        p.gateway.as_deref().or(cur.gateway.as_deref()),
        p.dns_servers.as_deref().unwrap_or(&cur_api.dns_servers),
        p.domain.as_deref().or(cur.domain.as_deref()),
        p.dynamic_ranges
            .as_deref()
            .unwrap_or(&cur_api.dynamic_ranges),
        p.reserved_ranges
            .as_deref()
            .unwrap_or(&cur_api.reserved_ranges),
        p.static_routes.as_deref().unwrap_or(&cur_api.static_routes),
        p.managed.unwrap_or(cur.managed),
    )?;
    dhcp_settings(
        &mut row,
        p.ntp_servers.as_deref().unwrap_or(&cur_api.ntp_servers),
        p.lease_time_secs.or(cur_api.lease_time_secs),
        p.relay_addresses
            .as_deref()
            .unwrap_or(&cur_api.relay_addresses),
    )?;
    check_unique(conn, &row, Some(&cur.id))?;
    row.id = cur.id.clone();
    row.created_at = cur.created_at;
    row.updated_at = now;
    dbs::update(conn, &row)?;
    crate::db::users::audit(
        conn,
        now,
        &caller.username,
        "subnet.update",
        &row.id,
        &row.cidr,
    )?;
    Ok(row.to_api())
}

pub fn delete(conn: &mut DbConn, caller: &Caller, id: &str, now: i64) -> Result<()> {
    require_admin(caller)?;
    let cur = dbs::get(conn, id)?.ok_or_else(|| Error::not_found(format!("subnet {id}")))?;
    dbs::delete(conn, &cur.id)?;
    crate::db::users::audit(
        conn,
        now,
        &caller.username,
        "subnet.delete",
        &cur.id,
        &cur.cidr,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str, e: &str) -> api::IpRange {
        api::IpRange {
            start: s.into(),
            end: e.into(),
            comment: None,
        }
    }

    #[test]
    fn valid_subnet() {
        let row = build(
            "10.9.0.0/24",
            None,
            Some("10.9.0.1"),
            &["10.9.0.1".into()],
            Some("lab.example."),
            &[r("10.9.0.100", "10.9.0.199")],
            &[r("10.9.0.2", "10.9.0.9")],
            &[api::StaticRoute {
                destination: "10.50.0.0/16".into(),
                gateway: "10.9.0.254".into(),
            }],
            true,
        )
        .unwrap();
        assert_eq!(row.name, "10.9.0.0/24");
        assert_eq!(row.domain.as_deref(), Some("lab.example"));
        assert!(row.static_routes.contains("10.50.0.0/16"));
    }

    #[test]
    fn bad_subnets_name_the_field() {
        let cases: Vec<(Result<SubnetRow>, &str)> = vec![
            (
                build(
                    "10.9.0.0/24",
                    None,
                    Some("10.8.0.1"),
                    &[],
                    None,
                    &[],
                    &[],
                    &[],
                    true,
                ),
                "gateway",
            ),
            (
                build(
                    "10.9.0.0/24",
                    None,
                    None,
                    &[],
                    None,
                    &[r("10.9.0.50", "10.9.0.40")],
                    &[],
                    &[],
                    true,
                ),
                "dynamic_ranges[0]",
            ),
            (
                build(
                    "10.9.0.0/24",
                    None,
                    None,
                    &[],
                    None,
                    &[r("10.9.0.10", "10.9.0.50")],
                    &[r("10.9.0.50", "10.9.0.60")],
                    &[],
                    true,
                ),
                "reserved_ranges[0]",
            ),
            (
                build(
                    "10.9.0.0/24",
                    None,
                    Some("10.9.0.20"),
                    &[],
                    None,
                    &[r("10.9.0.10", "10.9.0.50")],
                    &[],
                    &[],
                    true,
                ),
                "dynamic_ranges[0]",
            ),
            (
                build(
                    "10.9.0.0/24",
                    None,
                    None,
                    &[],
                    None,
                    &[r("10.9.1.10", "10.9.1.50")],
                    &[],
                    &[],
                    true,
                ),
                "dynamic_ranges[0].start",
            ),
            (
                build(
                    "10.9.0.0/24",
                    None,
                    None,
                    &["dns".into()],
                    None,
                    &[],
                    &[],
                    &[],
                    true,
                ),
                "dns_servers[0]",
            ),
            (
                build(
                    "10.9.0.0/24",
                    None,
                    None,
                    &[],
                    None,
                    &[],
                    &[],
                    &[api::StaticRoute {
                        destination: "10.50.0.1/16".into(),
                        gateway: "10.9.0.1".into(),
                    }],
                    true,
                ),
                "static_routes[0].destination",
            ),
        ];
        for (res, field) in cases {
            match res {
                Err(Error::Validation { field: Some(f), .. }) => assert_eq!(f, field),
                other => panic!("expected a validation error on {field}, got {other:?}"),
            }
        }
    }
}
