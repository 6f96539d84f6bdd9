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
                &["ID", "NAME", "STATUS", "LAST SEEN", "VERSION"],
                rs.iter()
                    .map(|r| {
                        vec![
                            r.id.clone(),
                            r.name.clone(),
                            r.status.clone(),
                            opt(&r.last_seen),
                            opt(&r.version),
                        ]
                    })
                    .collect(),
            );
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
