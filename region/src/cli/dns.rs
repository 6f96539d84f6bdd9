//! `kiln dns records add NAME TYPE DATA [--ttl N] | list | delete ID` and
//! `kiln dns domains add NAME [--ttl N] [--default] | list | set-default NAME | delete NAME`.

use clap::Subcommand;
use region_api_types as api;

use super::client::{seg, Client, ClientArgs};
use super::output;

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Operators' records (A, AAAA, CNAME, TXT, SRV, MX) in Kiln's domains.
    #[command(subcommand)]
    Records(RecordsCommand),
    /// The domains Kiln is authoritative for.
    #[command(subcommand)]
    Domains(DomainsCommand),
}

#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Add a record (admins), e.g. `kiln dns records add www.kiln CNAME node1.kiln`,
    /// `... _http._tcp.kiln SRV "10 5 80 web.kiln"`, `... kiln MX "10 mail.kiln"`.
    Add {
        name: String,
        #[arg(value_name = "TYPE")]
        rtype: String,
        data: String,
        /// Seconds (default: the domain's TTL).
        #[arg(long)]
        ttl: Option<u32>,
    },
    /// Every record operators added.
    List,
    /// Delete a record by its id (admins).
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// Add a domain (admins).
    Add {
        name: String,
        /// Seconds (default 30).
        #[arg(long)]
        ttl: Option<u32>,
        /// Make it the default domain.
        #[arg(long)]
        default: bool,
    },
    /// Every domain, with its records and machines.
    List,
    /// Make a domain the default: machines naming no domain are in it, DHCP hands it out.
    SetDefault { name: String },
    /// Delete an empty domain that is not the default (admins).
    Delete { name: String },
}

pub async fn dns(a: ClientArgs<DnsCommand>) -> anyhow::Result<()> {
    let Some(token) = a.token.clone() else {
        anyhow::bail!("no API token: set KILN_TOKEN (create one with `kiln admin create-token USER`) or pass --token");
    };
    let c = Client::new(&a.url, Some(token))?;
    match &a.command {
        DnsCommand::Records(r) => records(&c, a.json, r).await,
        DnsCommand::Domains(d) => domains(&c, a.json, d).await,
    }
}

fn record_table(rs: &[api::DnsRecord]) {
    output::table(
        &["ID", "NAME", "TYPE", "DATA", "TTL"],
        rs.iter()
            .map(|r| {
                vec![
                    r.id.clone(),
                    r.name.clone(),
                    r.rtype.clone(),
                    r.data.clone(),
                    r.ttl.to_string(),
                ]
            })
            .collect(),
    );
}

async fn records(c: &Client, json: bool, cmd: &RecordsCommand) -> anyhow::Result<()> {
    match cmd {
        RecordsCommand::Add {
            name,
            rtype,
            data,
            ttl,
        } => {
            let body = api::DnsRecordCreate {
                name: name.clone(),
                rtype: rtype.clone(),
                data: data.clone(),
                ttl: *ttl,
            };
            let r: api::DnsRecord = c.post("/api/v1/dns/records", &body).await?;
            if json {
                return output::json(&r);
            }
            record_table(std::slice::from_ref(&r));
            Ok(())
        }
        RecordsCommand::List => {
            let rs: Vec<api::DnsRecord> = c.get("/api/v1/dns/records").await?;
            if json {
                return output::json(&rs);
            }
            record_table(&rs);
            Ok(())
        }
        RecordsCommand::Delete { id } => {
            c.delete(&format!("/api/v1/dns/records/{}", seg(id)))
                .await?;
            if !json {
                println!("deleted record {id}");
            }
            Ok(())
        }
    }
}

fn domain_table(ds: &[api::DnsDomain]) {
    output::table(
        &["ID", "NAME", "TTL", "DEFAULT", "RECORDS", "MACHINES"],
        ds.iter()
            .map(|d| {
                vec![
                    d.id.clone(),
                    d.name.clone(),
                    d.ttl.to_string(),
                    if d.is_default {
                        "yes".into()
                    } else {
                        "-".into()
                    },
                    d.records.to_string(),
                    d.machines.to_string(),
                ]
            })
            .collect(),
    );
}

async fn domains(c: &Client, json: bool, cmd: &DomainsCommand) -> anyhow::Result<()> {
    let one = |d: api::DnsDomain| -> anyhow::Result<()> {
        if json {
            return output::json(&d);
        }
        domain_table(std::slice::from_ref(&d));
        Ok(())
    };
    match cmd {
        DomainsCommand::Add { name, ttl, default } => {
            let body = api::DnsDomainCreate {
                name: name.clone(),
                ttl: *ttl,
                is_default: *default,
            };
            one(c.post("/api/v1/dns/domains", &body).await?)
        }
        DomainsCommand::List => {
            let ds: Vec<api::DnsDomain> = c.get("/api/v1/dns/domains").await?;
            if json {
                return output::json(&ds);
            }
            domain_table(&ds);
            Ok(())
        }
        DomainsCommand::SetDefault { name } => {
            let body = api::DnsDomainPatch {
                ttl: None,
                is_default: Some(true),
            };
            one(c
                .patch(&format!("/api/v1/dns/domains/{}", seg(name)), &body)
                .await?)
        }
        DomainsCommand::Delete { name } => {
            c.delete(&format!("/api/v1/dns/domains/{}", seg(name)))
                .await?;
            if !json {
                println!("deleted domain {name}");
            }
            Ok(())
        }
    }
}
