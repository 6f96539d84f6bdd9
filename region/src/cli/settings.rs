//! `kiln settings list | set NAME VALUE | reset NAME`.

use clap::Subcommand;
use region_api_types as api;

use super::client::{seg, Client, ClientArgs};
use super::output;

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// The settings operators may change, their values in effect and the configuration file's.
    List,
    /// Change one (admins); every region uses it from its next action on.
    Set { name: String, value: String },
    /// Put the configuration file's value back.
    Reset { name: String },
}

pub async fn settings(a: ClientArgs<SettingsCommand>) -> anyhow::Result<()> {
    let Some(token) = a.token.clone() else {
        anyhow::bail!("no API token: set KILN_TOKEN (create one with `kiln admin create-token USER`) or pass --token");
    };
    let c = Client::new(&a.url, Some(token))?;
    let one = |s: api::Setting| -> anyhow::Result<()> {
        if a.json {
            return output::json(&s);
        }
        println!(
            "{} = {}{}",
            s.name,
            s.value,
            if s.changed {
                format!(" (file: {})", s.file_value)
            } else {
                " (the file's)".into()
            }
        );
        Ok(())
    };
    match &a.command {
        SettingsCommand::List => {
            let all: Vec<api::Setting> = c.get("/api/v1/settings").await?;
            if a.json {
                return output::json(&all);
            }
            output::table(
                &["SETTING", "VALUE", "FILE", "CHANGED", "MEANING"],
                all.iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.value.clone(),
                            s.file_value.clone(),
                            if s.changed { "yes".into() } else { "-".into() },
                            s.help.clone(),
                        ]
                    })
                    .collect(),
            );
            Ok(())
        }
        SettingsCommand::Set { name, value } => {
            let body = api::SettingUpdate {
                value: Some(value.clone()),
            };
            one(c
                .put(&format!("/api/v1/settings/{}", seg(name)), &body)
                .await?)
        }
        SettingsCommand::Reset { name } => {
            let body = api::SettingUpdate { value: None };
            one(c
                .put(&format!("/api/v1/settings/{}", seg(name)), &body)
                .await?)
        }
    }
}
