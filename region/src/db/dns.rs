//! DNS domains and operators' records. Validation is `domain::dns`'s; these only read and write.

use diesel::prelude::*;

use super::schema::{dns_domains, dns_records, machines};
use super::{fmt_time, DbConn};
use crate::error::Result;
use region_api_types as api;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = dns_domains)]
pub struct DomainRow {
    pub id: String,
    pub name: String,
    pub ttl: i32,
    pub is_default: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl DomainRow {
    pub fn ttl(&self) -> u32 {
        u32::try_from(self.ttl).unwrap_or(api::DEFAULT_DNS_TTL)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = dns_records)]
pub struct RecordRow {
    pub id: String,
    pub domain_id: String,
    pub name: String,
    pub rtype: String,
    pub data: String,
    pub ttl: i32,
    pub created_at: i64,
}

pub fn domains(conn: &mut DbConn) -> Result<Vec<DomainRow>> {
    Ok(dns_domains::table
        .order(dns_domains::name)
        .select(DomainRow::as_select())
        .load(conn)?)
}

/// The domains with how many records and machines each has.
pub fn domains_api(conn: &mut DbConn) -> Result<Vec<api::DnsDomain>> {
    use diesel::dsl::count_star;
    let records: std::collections::HashMap<String, i64> = dns_records::table
        .group_by(dns_records::domain_id)
        .select((dns_records::domain_id, count_star()))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    let named: std::collections::HashMap<Option<String>, i64> = machines::table
        .group_by(machines::domain_id)
        .select((machines::domain_id, count_star()))
        .load::<(Option<String>, i64)>(conn)?
        .into_iter()
        .collect();
    Ok(domains(conn)?
        .into_iter()
        .map(|d| {
            let mut m = named.get(&Some(d.id.clone())).copied().unwrap_or(0);
            if d.is_default {
                m += named.get(&None).copied().unwrap_or(0);
            }
            api::DnsDomain {
                ttl: d.ttl(),
                records: records.get(&d.id).copied().unwrap_or(0),
                machines: m,
                created_at: fmt_time(d.created_at),
                id: d.id,
                name: d.name,
                is_default: d.is_default,
            }
        })
        .collect())
}

pub fn domain(conn: &mut DbConn, id_or_name: &str) -> Result<Option<DomainRow>> {
    Ok(dns_domains::table
        .filter(
            dns_domains::id
                .eq(id_or_name)
                .or(dns_domains::name.eq(id_or_name)),
        )
        .select(DomainRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert_domain(conn: &mut DbConn, d: &DomainRow) -> Result<()> {
    diesel::insert_into(dns_domains::table)
        .values(d)
        .execute(conn)?;
    Ok(())
}

/// Makes `id` the one default domain.
pub fn set_default(conn: &mut DbConn, id: &str, now: i64) -> Result<()> {
    diesel::update(dns_domains::table.filter(dns_domains::is_default.eq(true)))
        .set((
            dns_domains::is_default.eq(false),
            dns_domains::updated_at.eq(now),
        ))
        .execute(conn)?;
    diesel::update(dns_domains::table.find(id))
        .set((
            dns_domains::is_default.eq(true),
            dns_domains::updated_at.eq(now),
        ))
        .execute(conn)?;
    // Machines in the default domain are renamed with it: every page shows them again.
    crate::changes::everything_changed();
    Ok(())
}

pub fn set_ttl(conn: &mut DbConn, id: &str, ttl: u32, now: i64) -> Result<()> {
    diesel::update(dns_domains::table.find(id))
        .set((
            dns_domains::ttl.eq(i32::try_from(ttl).unwrap_or(i32::MAX)),
            dns_domains::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn delete_domain(conn: &mut DbConn, id: &str) -> Result<bool> {
    Ok(diesel::delete(dns_domains::table.find(id)).execute(conn)? == 1)
}

pub fn records(conn: &mut DbConn) -> Result<Vec<RecordRow>> {
    Ok(dns_records::table
        .order((dns_records::name, dns_records::rtype, dns_records::id))
        .select(RecordRow::as_select())
        .load(conn)?)
}

pub fn records_named(conn: &mut DbConn, name: &str) -> Result<Vec<RecordRow>> {
    Ok(dns_records::table
        .filter(dns_records::name.eq(name))
        .select(RecordRow::as_select())
        .load(conn)?)
}

pub fn record(conn: &mut DbConn, id: &str) -> Result<Option<RecordRow>> {
    Ok(dns_records::table
        .find(id)
        .select(RecordRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert_record(conn: &mut DbConn, r: &RecordRow) -> Result<()> {
    diesel::insert_into(dns_records::table)
        .values(r)
        .execute(conn)?;
    Ok(())
}

pub fn delete_record(conn: &mut DbConn, id: &str) -> Result<bool> {
    Ok(diesel::delete(dns_records::table.find(id)).execute(conn)? == 1)
}

/// Machines named `hostname` in domain `domain_id` (`None` in the default domain too).
pub fn machines_named(
    conn: &mut DbConn,
    hostname: &str,
    domain_id: &str,
    is_default: bool,
) -> Result<Vec<String>> {
    let q = machines::table
        .filter(machines::hostname.eq(hostname))
        .select((machines::system_id, machines::domain_id));
    Ok(q.load::<(String, Option<String>)>(conn)?
        .into_iter()
        .filter(|(_, d)| match d {
            Some(d) => d == domain_id,
            None => is_default,
        })
        .map(|(id, _)| id)
        .collect())
}

/// Machines in the default domain (naming none) whose hostname is one of `hostnames`:
/// `(system_id, hostname)`.
pub fn default_domain_machines_named(
    conn: &mut DbConn,
    hostnames: &[String],
) -> Result<Vec<(String, String)>> {
    if hostnames.is_empty() {
        return Ok(Vec::new());
    }
    Ok(machines::table
        .filter(machines::domain_id.is_null())
        .filter(machines::hostname.eq_any(hostnames))
        .select((machines::system_id, machines::hostname))
        .order(machines::hostname)
        .load(conn)?)
}

/// The default domain's name.
pub fn snapshot_default(conn: &mut DbConn) -> Result<String> {
    Ok(dns_domains::table
        .filter(dns_domains::is_default.eq(true))
        .select(dns_domains::name)
        .first::<String>(conn)
        .optional()?
        .unwrap_or_else(|| "kiln".into()))
}

/// What racks serve: the domains and the records.
pub fn snapshot(conn: &mut DbConn) -> Result<api::SnapshotDns> {
    let domains = domains(conn)?;
    let default_domain = domains
        .iter()
        .find(|d| d.is_default)
        .map(|d| d.name.clone())
        .unwrap_or_else(|| "kiln".into());
    Ok(api::SnapshotDns {
        default_domain,
        domains: domains
            .iter()
            .map(|d| api::SnapshotDnsDomain {
                name: d.name.clone(),
                ttl: d.ttl(),
            })
            .collect(),
        records: records(conn)?
            .into_iter()
            .map(|r| api::SnapshotDnsRecord {
                ttl: u32::try_from(r.ttl).unwrap_or(api::DEFAULT_DNS_TTL),
                name: r.name,
                rtype: r.rtype,
                data: r.data,
            })
            .collect(),
    })
}
