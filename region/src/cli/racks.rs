//! `kiln racks ...` and `kiln events ...` (through the API).

use clap::Subcommand;
use region_api_types as api;
use reqwest::Method;

use super::client::ClientArgs;
use super::commands::{client, print_events};
use super::output::{self, opt};

#[derive(Debug, Subcommand)]
pub enum RacksCommand {
    /// List rack controllers.
    List,
    /// Approve a pending rack: it then gets its snapshot, jobs and secrets.
    Approve { id: String },
    /// Revoke a rack for good (its token stops working; only a new enrolment token brings it back).
    Delete { id: String },
    /// Make a one-time enrolment token (as `kiln admin rack-token`, through the API).
    Token {
        /// How long it may be used: 90m, 1h, 2d (at most 7d).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// The rack is approved at once.
        #[arg(long)]
        auto_approve: bool,
        /// A network whose BMCs the rack drives (IPv4 CIDR, repeatable; 0.0.0.0/0: all).
        #[arg(long = "power-network")]
        power_networks: Vec<String>,
    },
    /// Say which networks' BMCs a rack drives (replaces the list; power jobs go only there).
    Update {
        id: String,
        /// An IPv4 network (CIDR, repeatable; 0.0.0.0/0: every BMC).
        #[arg(long = "power-network", required_unless_present = "no_power_networks")]
        power_networks: Vec<String>,
        /// The rack drives no BMC.
        #[arg(long, conflicts_with = "power_networks")]
        no_power_networks: bool,
    },
}

/// `90m`, `1h`, `2d`, `3600s` as seconds.
pub fn ttl_secs(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let bad =
        || anyhow::anyhow!("--ttl takes a time like 90m, 1h or 2d (60 s to 7 d), not '{text}'");
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: u64 = t[..split].parse().map_err(|_| bad())?;
    let unit = match &t[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit)
        .filter(|s| (60..=crate::domain::racks::MAX_TOKEN_TTL_SECS).contains(s))
        .ok_or_else(bad)
}

pub async fn racks(a: ClientArgs<RacksCommand>) -> anyhow::Result<()> {
    let c = client(&a)?;
    match a.command {
        RacksCommand::List => {
            let rs: Vec<api::Rack> = c.get("/api/v1/racks").await?;
            if a.json {
                return output::json(&rs);
            }
            output::table(
                &[
                    "ID",
                    "NAME",
                    "STATUS",
                    "APPROVAL",
                    "POWER NETWORKS",
                    "LAST SEEN",
                    "VERSION",
                ],
                rs.iter()
                    .map(|r| {
                        vec![
                            r.id.clone(),
                            r.name.clone(),
                            r.status.clone(),
                            r.approval.clone(),
                            r.power_networks.join(" "),
                            opt(&r.last_seen),
                            opt(&r.version),
                        ]
                    })
                    .collect(),
            );
            Ok(())
        }
        RacksCommand::Approve { id } => {
            let r: api::Rack = c
                .post(
                    &format!("/api/v1/racks/{}/approve", super::client::seg(&id)),
                    &serde_json::json!({}),
                )
                .await?;
            if a.json {
                return output::json(&r);
            }
            println!("rack {} ({}) approved", r.name, r.id);
            Ok(())
        }
        RacksCommand::Delete { id } => {
            c.delete(&format!("/api/v1/racks/{}", super::client::seg(&id)))
                .await?;
            println!("rack {id} revoked");
            Ok(())
        }
        RacksCommand::Update {
            id,
            power_networks,
            no_power_networks: _,
        } => {
            let r: api::Rack = c
                .patch(
                    &format!("/api/v1/racks/{}", super::client::seg(&id)),
                    &api::RackUpdate { power_networks },
                )
                .await?;
            if a.json {
                return output::json(&r);
            }
            println!(
                "rack {} drives the BMCs of: {}",
                r.name,
                if r.power_networks.is_empty() {
                    "no network".to_string()
                } else {
                    r.power_networks.join(", ")
                }
            );
            Ok(())
        }
        RacksCommand::Token {
            ttl,
            auto_approve,
            power_networks,
        } => {
            let body = api::RackTokenCreate {
                ttl_secs: Some(ttl_secs(&ttl)?),
                auto_approve,
                power_networks,
            };
            let t: api::RackTokenCreated = c.post("/api/v1/racks/tokens", &body).await?;
            if a.json {
                return output::json(&t);
            }
            eprintln!("one rack may enrol with this token until {}", t.expires_at);
            println!("{}", t.token);
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List events, newest first.
    List {
        #[arg(long)]
        system_id: Option<String>,
        #[arg(long)]
        level: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

pub async fn events(a: ClientArgs<EventsCommand>) -> anyhow::Result<()> {
    let c = client(&a)?;
    match a.command {
        EventsCommand::List {
            system_id,
            level,
            limit,
        } => {
            let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            if let Some(s) = system_id {
                q.push(("system_id", s));
            }
            if let Some(l) = level {
                q.push(("level", l));
            }
            let evs: Vec<api::Event> = c
                .send(c.request(Method::GET, "/api/v1/events").query(&q))
                .await?;
            print_events(&evs, a.json)
        }
    }
}
