//! `kiln subnets ...`: subnets, their ranges and routes (through the API).

use anyhow::Context;
use clap::Subcommand;
use region_api_types as api;

use super::client::{seg, ClientArgs};
use super::commands::client;
use super::output::{self, opt};

#[derive(Debug, Subcommand)]
pub enum SubnetsCommand {
    /// List subnets.
    List,
    /// Show one subnet (by id or CIDR).
    Show { id: String },
    /// Add a subnet.
    Create {
        cidr: String,
        #[command(flatten)]
        fields: SubnetFields,
    },
    /// Change a subnet; lists given replace the stored ones.
    Update {
        id: String,
        #[command(flatten)]
        fields: SubnetFields,
    },
    /// Delete a subnet.
    Delete { id: String },
}

#[derive(Debug, clap::Args)]
pub struct SubnetFields {
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub gateway: Option<String>,
    /// A DNS server (repeatable).
    #[arg(long = "dns")]
    pub dns_servers: Vec<String>,
    #[arg(long)]
    pub domain: Option<String>,
    /// A dynamic (DHCP) range START-END (repeatable).
    #[arg(long = "dynamic-range", value_name = "START-END")]
    pub dynamic_ranges: Vec<String>,
    /// A reserved range START-END (repeatable).
    #[arg(long = "reserved-range", value_name = "START-END")]
    pub reserved_ranges: Vec<String>,
    /// A static route DEST/PREFIX=GATEWAY (repeatable; DHCP option 121).
    #[arg(long = "route", value_name = "DEST=GATEWAY")]
    pub static_routes: Vec<String>,
    /// Whether Kiln serves DHCP on it (default true on create).
    #[arg(long)]
    pub managed: Option<bool>,
    /// An NTP server (repeatable; DHCP option 42).
    #[arg(long = "ntp")]
    pub ntp_servers: Vec<String>,
    /// DHCP lease time in seconds (60 to 604800; default 600).
    #[arg(long)]
    pub lease_time: Option<u32>,
    /// A relay agent allowed to relay DHCP for this subnet, by the address it sends from
    /// (repeatable; replaces the list). With none listed, any relay is answered.
    #[arg(long = "relay", value_name = "ADDRESS", conflicts_with = "any_relay")]
    pub relay_addresses: Vec<String>,
    /// Answer relayed requests from any relay agent again (clears the list).
    #[arg(long)]
    pub any_relay: bool,
}

fn relays(f: &SubnetFields) -> Option<Vec<String>> {
    if f.any_relay {
        Some(Vec::new())
    } else {
        (!f.relay_addresses.is_empty()).then(|| f.relay_addresses.clone())
    }
}

fn ranges(v: &[String], flag: &str) -> anyhow::Result<Option<Vec<api::IpRange>>> {
    if v.is_empty() {
        return Ok(None);
    }
    v.iter()
        .map(|r| {
            let (s, e) = r
                .split_once('-')
                .with_context(|| format!("--{flag} {r}: write START-END"))?;
            Ok(api::IpRange {
                start: s.into(),
                end: e.into(),
                comment: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map(Some)
}

fn routes(v: &[String]) -> anyhow::Result<Option<Vec<api::StaticRoute>>> {
    if v.is_empty() {
        return Ok(None);
    }
    v.iter()
        .map(|r| {
            let (d, g) = r
                .split_once('=')
                .with_context(|| format!("--route {r}: write DEST/PREFIX=GATEWAY"))?;
            Ok(api::StaticRoute {
                destination: d.into(),
                gateway: g.into(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map(Some)
}

fn print_subnets(s: &[api::Subnet], json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(&s);
    }
    output::table(
        &[
            "ID", "NAME", "CIDR", "GATEWAY", "DNS", "DYNAMIC", "ROUTES", "MANAGED",
        ],
        s.iter()
            .map(|s| {
                vec![
                    s.id.clone(),
                    s.name.clone(),
                    s.cidr.clone(),
                    opt(&s.gateway),
                    s.dns_servers.join(","),
                    s.dynamic_ranges
                        .iter()
                        .map(|r| format!("{}-{}", r.start, r.end))
                        .collect::<Vec<_>>()
                        .join(","),
                    s.static_routes
                        .iter()
                        .map(|r| format!("{} via {}", r.destination, r.gateway))
                        .collect::<Vec<_>>()
                        .join(","),
                    s.managed.to_string(),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub async fn subnets(a: ClientArgs<SubnetsCommand>) -> anyhow::Result<()> {
    let c = client(&a)?;
    match a.command {
        SubnetsCommand::List => {
            let s: Vec<api::Subnet> = c.get("/api/v1/subnets").await?;
            print_subnets(&s, a.json)
        }
        SubnetsCommand::Show { id } => {
            let s: api::Subnet = c.get(&format!("/api/v1/subnets/{}", seg(&id))).await?;
            print_subnets(&[s], a.json)
        }
        SubnetsCommand::Create { cidr, fields: f } => {
            let relay_addresses = relays(&f);
            let body = api::SubnetCreate {
                cidr,
                name: f.name,
                gateway: f.gateway,
                dns_servers: (!f.dns_servers.is_empty()).then_some(f.dns_servers),
                domain: f.domain,
                dynamic_ranges: ranges(&f.dynamic_ranges, "dynamic-range")?,
                reserved_ranges: ranges(&f.reserved_ranges, "reserved-range")?,
                static_routes: routes(&f.static_routes)?,
                managed: f.managed,
                relay_addresses,
                ntp_servers: (!f.ntp_servers.is_empty()).then_some(f.ntp_servers),
                lease_time_secs: f.lease_time,
            };
            let s: api::Subnet = c.post("/api/v1/subnets", &body).await?;
            print_subnets(&[s], a.json)
        }
        SubnetsCommand::Update { id, fields: f } => {
            let relay_addresses = relays(&f);
            let body = api::SubnetPatch {
                name: f.name,
                gateway: f.gateway,
                dns_servers: (!f.dns_servers.is_empty()).then_some(f.dns_servers),
                domain: f.domain,
                dynamic_ranges: ranges(&f.dynamic_ranges, "dynamic-range")?,
                reserved_ranges: ranges(&f.reserved_ranges, "reserved-range")?,
                static_routes: routes(&f.static_routes)?,
                managed: f.managed,
                relay_addresses,
                ntp_servers: (!f.ntp_servers.is_empty()).then_some(f.ntp_servers),
                lease_time_secs: f.lease_time,
            };
            let s: api::Subnet = c
                .patch(&format!("/api/v1/subnets/{}", seg(&id)), &body)
                .await?;
            print_subnets(&[s], a.json)
        }
        SubnetsCommand::Delete { id } => {
            c.delete(&format!("/api/v1/subnets/{}", seg(&id))).await?;
            eprintln!("deleted subnet {id}");
            Ok(())
        }
    }
}
