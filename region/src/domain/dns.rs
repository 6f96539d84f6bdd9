//! DNS: the domains Kiln is authoritative for and operators' records, validated here (names inside a
//! Kiln domain, data that parses for its type, no CNAME next to other data) before `db::dns` writes
//! them. Racks serve them from their snapshot (`rack_proto::dns`).

use std::net::{Ipv4Addr, Ipv6Addr};

use diesel::Connection;
use region_api_types as api;

use super::access::require_admin;
use super::Caller;
use crate::db::dns::{self as dbd, DomainRow, RecordRow};
use crate::db::{fmt_time, random_id, DbConn};
use crate::error::{Error, Result};

/// Record types operators may add.
pub const TYPES: [&str; 6] = ["A", "AAAA", "CNAME", "TXT", "SRV", "MX"];
/// Longest TTL accepted (a week).
pub const MAX_TTL: u32 = 604_800;

/// A DNS name in canonical form: lower case, no trailing dot, 1–63 character labels of letters,
/// digits, hyphens (and, where `underscores`, the `_` of `_sip._tcp` names), 253 characters at most.
pub fn name(field: &str, input: &str, underscores: bool) -> Result<String> {
    let n = input.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || (underscores && c == '_'))
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if n.is_empty() || n.len() > 253 || !n.split('.').all(label_ok) {
        let extra = if underscores { ", underscores" } else { "" };
        return Err(Error::validation(
            field,
            format!(
                "'{input}' is not a DNS name: use dot-separated labels of 1 to 63 letters, digits{extra} and hyphens (not starting or ending with a hyphen), 253 characters in all."
            ),
        ));
    }
    Ok(n)
}

fn ttl(field: &str, t: Option<u32>, default: u32) -> Result<u32> {
    match t {
        None => Ok(default),
        Some(t) if (1..=MAX_TTL).contains(&t) => Ok(t),
        Some(t) => Err(Error::validation(
            field,
            format!("A TTL of {t} s is out of range: give 1 to {MAX_TTL} seconds."),
        )),
    }
}

/// The Kiln domain `name` is in: the longest domain that is `name` or a suffix of it.
pub fn domain_of<'a>(domains: &'a [DomainRow], name: &str) -> Option<&'a DomainRow> {
    domains
        .iter()
        .filter(|d| name == d.name || name.ends_with(&format!(".{}", d.name)))
        .max_by_key(|d| d.name.len())
}

/// A record's type and data in canonical form (the type upper case, names lower case without the
/// trailing dot, TXT without its quotes).
pub fn record_data(rtype: &str, data: &str) -> Result<(String, String)> {
    let t = rtype.trim().to_ascii_uppercase();
    let d = data.trim();
    let bad = |what: &str| Error::validation("data", format!("'{d}' is not {what}."));
    let data = match t.as_str() {
        "A" => d
            .parse::<Ipv4Addr>()
            .map_err(|_| bad("an IPv4 address (A records hold one, like 10.0.0.5)"))?
            .to_string(),
        "AAAA" => d
            .parse::<Ipv6Addr>()
            .map_err(|_| bad("an IPv6 address (AAAA records hold one, like fd00::5)"))?
            .to_string(),
        "CNAME" => name("data", d, false)?,
        "TXT" => {
            let text = d
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(d);
            if text.is_empty() || text.len() > 1024 || text.chars().any(|c| c.is_control()) {
                return Err(bad(
                    "TXT data: give 1 to 1024 printable characters (quotes around it are optional)",
                ));
            }
            text.to_string()
        }
        "SRV" => {
            let parts: Vec<&str> = d.split_whitespace().collect();
            let nums: Option<Vec<u16>> = parts
                .get(..3)
                .map(|p| p.iter().filter_map(|x| x.parse::<u16>().ok()).collect());
            match (parts.len(), nums) {
                (4, Some(n)) if n.len() == 3 => {
                    let target = name("data", parts[3], false)?;
                    format!("{} {} {} {target}", n[0], n[1], n[2])
                }
                _ => {
                    return Err(bad(
                        "SRV data: give 'priority weight port target', like '10 5 80 web.kiln'",
                    ))
                }
            }
        }
        "MX" => {
            let parts: Vec<&str> = d.split_whitespace().collect();
            match (
                parts.len(),
                parts.first().and_then(|p| p.parse::<u16>().ok()),
            ) {
                (2, Some(pref)) => format!("{pref} {}", name("data", parts[1], false)?),
                _ => {
                    return Err(bad(
                        "MX data: give 'preference exchange', like '10 mail.kiln'",
                    ))
                }
            }
        }
        _ => {
            return Err(Error::validation(
                "type",
                format!(
                    "Kiln does not serve '{rtype}' records: use one of {}.",
                    TYPES.join(", ")
                ),
            ))
        }
    };
    Ok((t, data))
}

/// The reason a new record of type `rtype` cannot sit at a name that already has `existing`
/// records and `machines` machines (a CNAME stands alone, RFC 1034 3.6.2).
pub fn cname_conflict(
    rtype: &str,
    name: &str,
    existing: &[RecordRow],
    machines: &[String],
) -> Option<String> {
    if rtype == "CNAME" {
        if let Some(m) = machines.first() {
            return Some(format!(
                "'{name}' is machine {m}'s name: a CNAME cannot sit next to its addresses."
            ));
        }
        if let Some(r) = existing.first() {
            return Some(format!(
                "'{name}' already has a {} record ({}): a CNAME cannot sit next to other data; delete that first.",
                r.rtype, r.id
            ));
        }
    } else if let Some(c) = existing.iter().find(|r| r.rtype == "CNAME") {
        return Some(format!(
            "'{name}' is a CNAME ({}, to {}): nothing else can sit at that name.",
            c.id, c.data
        ));
    }
    None
}

fn domain_api(conn: &mut DbConn, id: &str) -> Result<api::DnsDomain> {
    dbd::domains_api(conn)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| Error::NotFound {
            what: format!("DNS domain {id}"),
        })
}

pub fn list_domains(conn: &mut DbConn) -> Result<Vec<api::DnsDomain>> {
    dbd::domains_api(conn)
}

pub fn add_domain(
    conn: &mut DbConn,
    caller: &Caller,
    req: &api::DnsDomainCreate,
    now: i64,
) -> Result<api::DnsDomain> {
    require_admin(caller, "add DNS domains")?;
    let n = name("name", &req.name, false)?;
    if n.ends_with("in-addr.arpa") || n.ends_with("ip6.arpa") {
        return Err(Error::validation(
            "name",
            "Reverse zones come from the managed subnets; add the subnet instead.",
        ));
    }
    let ttl = ttl("ttl", req.ttl, api::DEFAULT_DNS_TTL)?;
    let id = format!("dom-{}", random_id(8));
    conn.transaction::<_, Error, _>(|c| {
        if dbd::domain(c, &n)?.is_some() {
            return Err(Error::Conflict {
                code: "exists",
                field: Some("name".into()),
                message: format!("There is a DNS domain '{n}' already."),
            });
        }
        ensure_domain_takes_nothing(c, &n)?;
        dbd::insert_domain(
            c,
            &DomainRow {
                id: id.clone(),
                name: n.clone(),
                ttl: i32::try_from(ttl).unwrap_or(i32::MAX),
                is_default: false,
                created_at: now,
                updated_at: now,
            },
        )?;
        if req.is_default {
            dbd::set_default(c, &id, now)?;
        }
        Ok(())
    })?;
    domain_api(conn, &id)
}

fn find_domain(conn: &mut DbConn, id_or_name: &str) -> Result<DomainRow> {
    let key = id_or_name.trim().trim_end_matches('.').to_ascii_lowercase();
    dbd::domain(conn, &key)?
        .or(dbd::domain(conn, id_or_name)?)
        .ok_or_else(|| Error::NotFound {
            what: format!("DNS domain {id_or_name}"),
        })
}

pub fn get_domain(conn: &mut DbConn, id_or_name: &str) -> Result<api::DnsDomain> {
    let d = find_domain(conn, id_or_name)?;
    domain_api(conn, &d.id)
}

pub fn patch_domain(
    conn: &mut DbConn,
    caller: &Caller,
    id_or_name: &str,
    p: &api::DnsDomainPatch,
    now: i64,
) -> Result<api::DnsDomain> {
    require_admin(caller, "change DNS domains")?;
    let d = find_domain(conn, id_or_name)?;
    if p.is_default == Some(false) {
        return Err(Error::validation(
            "is_default",
            "There is always one default domain: make another domain the default instead.",
        ));
    }
    let t = match p.ttl {
        Some(_) => Some(ttl("ttl", p.ttl, api::DEFAULT_DNS_TTL)?),
        None => None,
    };
    conn.transaction::<_, Error, _>(|c| {
        if let Some(t) = t {
            dbd::set_ttl(c, &d.id, t, now)?;
        }
        if p.is_default == Some(true) && !d.is_default {
            ensure_default_move_is_clear(c, &d)?;
            dbd::set_default(c, &d.id, now)?;
        }
        Ok(())
    })?;
    domain_api(conn, &d.id)
}

pub fn delete_domain(conn: &mut DbConn, caller: &Caller, id_or_name: &str) -> Result<()> {
    require_admin(caller, "delete DNS domains")?;
    let d = find_domain(conn, id_or_name)?;
    let info = domain_api(conn, &d.id)?;
    if d.is_default {
        return Err(Error::Conflict {
            code: "default_domain",
            field: None,
            message: format!(
                "'{}' is the default domain: make another domain the default first.",
                d.name
            ),
        });
    }
    if info.records > 0 || info.machines > 0 {
        return Err(Error::Conflict {
            code: "in_use",
            field: None,
            message: format!(
                "'{}' still holds {} record(s) and {} machine(s): delete the records and move the machines first.",
                d.name, info.records, info.machines
            ),
        });
    }
    dbd::delete_domain(conn, &d.id)?;
    Ok(())
}

fn record_api(r: RecordRow, domains: &[DomainRow]) -> api::DnsRecord {
    let domain = domains
        .iter()
        .find(|d| d.id == r.domain_id)
        .map(|d| d.name.clone())
        .unwrap_or_default();
    api::DnsRecord {
        ttl: u32::try_from(r.ttl).unwrap_or(api::DEFAULT_DNS_TTL),
        created_at: fmt_time(r.created_at),
        id: r.id,
        name: r.name,
        rtype: r.rtype,
        data: r.data,
        domain,
    }
}

pub fn list_records(conn: &mut DbConn) -> Result<Vec<api::DnsRecord>> {
    let domains = dbd::domains(conn)?;
    Ok(dbd::records(conn)?
        .into_iter()
        .map(|r| record_api(r, &domains))
        .collect())
}

pub fn add_record(
    conn: &mut DbConn,
    caller: &Caller,
    req: &api::DnsRecordCreate,
    now: i64,
) -> Result<api::DnsRecord> {
    require_admin(caller, "add DNS records")?;
    let n = name("name", &req.name, true)?;
    let (rtype, data) = record_data(&req.rtype, &req.data)?;
    conn.transaction::<_, Error, _>(|c| {
        let domains = dbd::domains(c)?;
        let Some(dom) = domain_of(&domains, &n).cloned() else {
            let names: Vec<&str> = domains.iter().map(|d| d.name.as_str()).collect();
            return Err(Error::validation(
                "name",
                format!(
                    "'{n}' is not inside a Kiln domain ({}): name it under one, or add its domain first.",
                    names.join(", ")
                ),
            ));
        };
        if rtype == "CNAME" && n == dom.name {
            return Err(Error::validation(
                "name",
                format!("'{n}' is the domain itself: its SOA and NS records cannot sit next to a CNAME."),
            ));
        }
        let ttl = ttl("ttl", req.ttl, dom.ttl())?;
        let existing = dbd::records_named(c, &n)?;
        let machines = match n.strip_suffix(&format!(".{}", dom.name)) {
            Some(host) if !host.contains('.') => {
                dbd::machines_named(c, host, &dom.id, dom.is_default)?
            }
            _ => Vec::new(),
        };
        if let Some(why) = cname_conflict(&rtype, &n, &existing, &machines) {
            return Err(Error::Conflict {
                code: "cname_conflict",
                field: Some("name".into()),
                message: why,
            });
        }
        if existing.iter().any(|r| r.rtype == rtype && r.data == data) {
            return Err(Error::Conflict {
                code: "exists",
                field: Some("data".into()),
                message: format!("'{n}' has this {rtype} record already."),
            });
        }
        let row = RecordRow {
            id: format!("rec-{}", random_id(8)),
            domain_id: dom.id.clone(),
            name: n.clone(),
            rtype: rtype.clone(),
            data: data.clone(),
            ttl: i32::try_from(ttl).unwrap_or(i32::MAX),
            created_at: now,
        };
        dbd::insert_record(c, &row)?;
        Ok(record_api(row, &domains))
    })
}

pub fn delete_record(conn: &mut DbConn, caller: &Caller, id: &str) -> Result<()> {
    require_admin(caller, "delete DNS records")?;
    if !dbd::delete_record(conn, id)? {
        return Err(Error::NotFound {
            what: format!("DNS record {id}"),
        });
    }
    Ok(())
}

/// A machine's domain as a patch names it: `""` is the default (stored as `None`).
pub fn machine_domain(conn: &mut DbConn, given: &str) -> Result<Option<String>> {
    if given.trim().is_empty() {
        return Ok(None);
    }
    let key = name("domain", given, false)?;
    match dbd::domain(conn, &key)? {
        Some(d) if d.is_default => Ok(None),
        Some(d) => Ok(Some(d.id)),
        None => Err(Error::validation(
            "domain",
            format!("There is no DNS domain '{key}': add it first (kiln dns domains add {key})."),
        )),
    }
}

/// Refuses a new domain `n` that would take over names other domains serve: a record at or
/// under it (served from its parent's zone until now), or a machine named `n` itself.
fn ensure_domain_takes_nothing(conn: &mut DbConn, n: &str) -> Result<()> {
    let domains = dbd::domains(conn)?;
    let under = format!(".{n}");
    if let Some(r) = dbd::records(conn)?
        .into_iter()
        .find(|r| r.name == n || r.name.ends_with(&under))
    {
        let of = domains
            .iter()
            .find(|d| d.id == r.domain_id)
            .map_or("another domain", |d| d.name.as_str());
        return Err(Error::Conflict {
            code: "names_taken",
            field: Some("name".into()),
            message: format!(
                "The {} record '{}' ({}) is served from the domain {of}, and a domain '{n}' would hide it: delete the record first, then add it again once the domain exists.",
                r.rtype, r.name, r.id
            ),
        });
    }
    if let Some((host, parent)) = n.split_once('.') {
        if let Some(p) = domains.iter().find(|d| d.name == parent) {
            if let Some(m) = dbd::machines_named(conn, host, &p.id, p.is_default)?.first() {
                return Err(Error::Conflict {
                    code: "names_taken",
                    field: Some("name".into()),
                    message: format!(
                        "'{n}' is machine {m}'s name: rename the machine or move it to another domain first."
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Refuses to make `d` the default domain when that would name a machine of the default domain
/// where a CNAME of `d` sits.
fn ensure_default_move_is_clear(conn: &mut DbConn, d: &DomainRow) -> Result<()> {
    let suffix = format!(".{}", d.name);
    let cnames: Vec<RecordRow> = dbd::records(conn)?
        .into_iter()
        .filter(|r| r.domain_id == d.id && r.rtype == "CNAME")
        .collect();
    let hosts: Vec<String> = cnames
        .iter()
        .filter_map(|r| r.name.strip_suffix(&suffix))
        .filter(|h| !h.contains('.'))
        .map(str::to_string)
        .collect();
    if let Some((id, host)) = dbd::default_domain_machines_named(conn, &hosts)?.first() {
        let fqdn = format!("{host}{suffix}");
        let c = cnames.iter().find(|r| r.name == fqdn);
        return Err(Error::Conflict {
            code: "cname_conflict",
            field: Some("is_default".into()),
            message: format!(
                "Making '{}' the default domain would name machine {id} '{fqdn}', where a CNAME ({}) sits: delete the CNAME or give the machine a domain of its own first.",
                d.name,
                c.map_or("", |c| c.id.as_str())
            ),
        });
    }
    Ok(())
}

/// Refuses to name a machine `hostname` in `domain_id` where a CNAME sits.
pub fn ensure_machine_name_free(
    conn: &mut DbConn,
    hostname: &str,
    domain_id: Option<&str>,
) -> Result<()> {
    let domains = dbd::domains(conn)?;
    let dom = match domain_id {
        Some(id) => domains.iter().find(|d| d.id == id),
        None => domains.iter().find(|d| d.is_default),
    };
    let Some(dom) = dom else { return Ok(()) };
    let fqdn = format!("{hostname}.{}", dom.name);
    if let Some(c) = dbd::records_named(conn, &fqdn)?
        .iter()
        .find(|r| r.rtype == "CNAME")
    {
        return Err(Error::Conflict {
            code: "cname_conflict",
            field: Some("hostname".into()),
            message: format!(
                "'{fqdn}' is a CNAME ({}, to {}): delete it before naming a machine so.",
                c.id, c.data
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(name: &str) -> DomainRow {
        DomainRow {
            id: format!("d-{name}"),
            name: name.into(),
            ttl: 30,
            is_default: name == "kiln",
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn names_are_canonical_and_checked() {
        assert_eq!(name("n", " WWW.Kiln. ", false).unwrap(), "www.kiln");
        assert_eq!(name("n", "_sip._tcp.kiln", true).unwrap(), "_sip._tcp.kiln");
        assert!(name("n", "_sip._tcp.kiln", false).is_err());
        for bad in [
            "",
            ".",
            "a..b",
            "-a.kiln",
            "a-.kiln",
            "a b.kiln",
            &"x".repeat(64),
        ] {
            assert!(name("n", bad, true).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_longest_kiln_domain_holds_a_name() {
        let ds = vec![dom("kiln"), dom("lab.kiln"), dom("example.com")];
        assert_eq!(domain_of(&ds, "a.lab.kiln").unwrap().name, "lab.kiln");
        assert_eq!(domain_of(&ds, "a.kiln").unwrap().name, "kiln");
        assert_eq!(domain_of(&ds, "kiln").unwrap().name, "kiln");
        assert!(domain_of(&ds, "a.notkiln").is_none());
        assert!(domain_of(&ds, "xkiln").is_none());
    }

    #[test]
    fn record_data_parses_for_its_type() {
        let ok = |t: &str, d: &str| record_data(t, d).unwrap();
        assert_eq!(ok("a", "10.0.0.5"), ("A".into(), "10.0.0.5".into()));
        assert_eq!(ok("AAAA", "FD00::0005"), ("AAAA".into(), "fd00::5".into()));
        assert_eq!(
            ok("cname", "Node1.Kiln."),
            ("CNAME".into(), "node1.kiln".into())
        );
        assert_eq!(
            ok("TXT", "\"v=spf1 -all\""),
            ("TXT".into(), "v=spf1 -all".into())
        );
        assert_eq!(
            ok("SRV", "10  5 80 web.kiln."),
            ("SRV".into(), "10 5 80 web.kiln".into())
        );
        assert_eq!(
            ok("MX", "10 mail.kiln"),
            ("MX".into(), "10 mail.kiln".into())
        );
        for (t, d) in [
            ("A", "10.0.0.256"),
            ("A", "fd00::1"),
            ("AAAA", "10.0.0.1"),
            ("CNAME", "not a name"),
            ("TXT", ""),
            ("SRV", "10 5 web.kiln"),
            ("SRV", "10 5 70000 web.kiln"),
            ("MX", "mail.kiln"),
            ("NS", "ns.kiln"),
        ] {
            let e = record_data(t, d).unwrap_err().to_string();
            assert!(!e.is_empty(), "{t} {d}");
        }
    }

    #[test]
    fn a_cname_stands_alone() {
        let rec = |t: &str| RecordRow {
            id: "rec-1".into(),
            domain_id: "d-kiln".into(),
            name: "www.kiln".into(),
            rtype: t.into(),
            data: "x".into(),
            ttl: 30,
            created_at: 0,
        };
        assert!(cname_conflict("CNAME", "www.kiln", &[], &[]).is_none());
        assert!(cname_conflict("A", "www.kiln", &[rec("A")], &[]).is_none());
        assert!(cname_conflict("CNAME", "www.kiln", &[rec("TXT")], &[]).is_some());
        assert!(cname_conflict("TXT", "www.kiln", &[rec("CNAME")], &[]).is_some());
        assert!(cname_conflict("CNAME", "www.kiln", &[], &["abc123".into()]).is_some());
        assert!(cname_conflict("A", "www.kiln", &[], &["abc123".into()]).is_none());
    }
}
