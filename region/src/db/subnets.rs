//! Subnets. Ranges, DNS servers and static routes are JSON text columns: they are always read and
//! written with their subnet, and validated as a whole by `domain::subnets`.

use diesel::prelude::*;

use super::schema::{interfaces, subnets};
use super::{fmt_time, DbConn};
use crate::error::Result;
use region_api_types as api;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = subnets)]
pub struct SubnetRow {
    pub id: String,
    pub name: String,
    pub cidr: String,
    pub gateway: Option<String>,
    pub dns_servers: String,
    pub domain: Option<String>,
    pub dynamic_ranges: String,
    pub reserved_ranges: String,
    pub static_routes: String,
    pub managed: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub ntp_servers: String,
    pub lease_time_secs: Option<i32>,
    pub relay_addresses: String,
}

impl SubnetRow {
    pub fn to_api(&self) -> api::Subnet {
        api::Subnet {
            id: self.id.clone(),
            name: self.name.clone(),
            cidr: self.cidr.clone(),
            gateway: self.gateway.clone(),
            dns_servers: serde_json::from_str(&self.dns_servers).unwrap_or_default(),
            domain: self.domain.clone(),
            dynamic_ranges: serde_json::from_str(&self.dynamic_ranges).unwrap_or_default(),
            reserved_ranges: serde_json::from_str(&self.reserved_ranges).unwrap_or_default(),
            static_routes: serde_json::from_str(&self.static_routes).unwrap_or_default(),
            managed: self.managed,
            ntp_servers: serde_json::from_str(&self.ntp_servers).unwrap_or_default(),
            lease_time_secs: self.lease_time_secs.and_then(|v| u32::try_from(v).ok()),
            relay_addresses: serde_json::from_str(&self.relay_addresses).unwrap_or_default(),
            created_at: fmt_time(self.created_at),
            updated_at: fmt_time(self.updated_at),
        }
    }
}

pub fn list(conn: &mut DbConn) -> Result<Vec<SubnetRow>> {
    Ok(subnets::table
        .order(subnets::cidr)
        .select(SubnetRow::as_select())
        .load(conn)?)
}

/// A subnet by id, or by CIDR (MAAS accepts either).
pub fn get(conn: &mut DbConn, id_or_cidr: &str) -> Result<Option<SubnetRow>> {
    Ok(subnets::table
        .filter(subnets::id.eq(id_or_cidr).or(subnets::cidr.eq(id_or_cidr)))
        .select(SubnetRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(conn: &mut DbConn, s: &SubnetRow) -> Result<()> {
    diesel::insert_into(subnets::table)
        .values(s)
        .execute(conn)?;
    Ok(())
}

pub fn update(conn: &mut DbConn, s: &SubnetRow) -> Result<()> {
    diesel::update(subnets::table.find(&s.id))
        .set(s)
        .execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool> {
    diesel::update(interfaces::table.filter(interfaces::subnet_id.eq(id)))
        .set(interfaces::subnet_id.eq(None::<String>))
        .execute(conn)?;
    Ok(diesel::delete(subnets::table.find(id)).execute(conn)? == 1)
}

/// The subnet that contains `addr`.
pub fn containing(subnets: &[api::Subnet], addr: std::net::Ipv4Addr) -> Option<&api::Subnet> {
    subnets.iter().find(|s| {
        s.cidr
            .parse::<ipnet::Ipv4Net>()
            .is_ok_and(|n| n.contains(&addr))
    })
}

/// The dynamic range of `subnet` that contains `addr`.
pub fn dynamic_range_of(subnet: &api::Subnet, addr: std::net::Ipv4Addr) -> Option<&api::IpRange> {
    subnet.dynamic_ranges.iter().find(|r| {
        r.start
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a <= addr)
            && r.end.parse::<std::net::Ipv4Addr>().is_ok_and(|b| addr <= b)
    })
}

/// Every subnet in API form.
pub fn list_api(conn: &mut DbConn) -> Result<Vec<api::Subnet>> {
    Ok(list(conn)?.iter().map(SubnetRow::to_api).collect())
}
