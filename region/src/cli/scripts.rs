//! `kiln scripts ...`: commissioning scripts (through the API).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use region_api_types as api;
use reqwest::Method;

use super::client::{seg, ClientArgs};
use super::commands::client;
use super::output;

#[derive(Debug, Subcommand)]
pub enum ScriptsCommand {
    /// List commissioning scripts (Kiln's built-ins first, then yours, in the order they run).
    List,
    /// Show one script, with its content.
    Show { name: String },
    /// Add a commissioning script; it runs after the built-ins on every commissioning.
    Add {
        name: String,
        #[command(flatten)]
        fields: ScriptFields,
    },
    /// Replace a script's content (and timeout/description).
    Update {
        name: String,
        #[command(flatten)]
        fields: ScriptFields,
    },
    /// Delete one of your scripts.
    Delete { name: String },
}

/// What `kiln scripts add` and `update` send.
#[derive(Debug, Clone, clap::Args)]
pub struct ScriptFields {
    /// The script file (a `#!` line picks the interpreter).
    #[arg(long)]
    file: PathBuf,
    /// Seconds before the runner kills it (default 600).
    #[arg(long)]
    timeout: Option<i32>,
    #[arg(long)]
    description: Option<String>,
}

impl ScriptFields {
    fn to_write(&self, name: Option<String>) -> anyhow::Result<api::ScriptWrite> {
        Ok(api::ScriptWrite {
            name,
            description: self.description.clone(),
            timeout_secs: self.timeout,
            content: std::fs::read_to_string(&self.file)
                .with_context(|| format!("cannot read {}", self.file.display()))?,
        })
    }
}

pub async fn scripts(a: ClientArgs<ScriptsCommand>) -> anyhow::Result<()> {
    let c = client(&a)?;
    let show = |s: &api::Script| -> anyhow::Result<()> {
        if a.json {
            return output::json(s);
        }
        output::fields(vec![
            ("name", s.name.clone()),
            ("description", s.description.clone()),
            ("timeout", format!("{} s", s.timeout_secs)),
            ("builtin", s.builtin.to_string()),
        ]);
        println!("\n{}", s.content);
        Ok(())
    };
    match &a.command {
        ScriptsCommand::List => {
            let ss: Vec<api::Script> = c.get("/api/v1/scripts").await?;
            if a.json {
                return output::json(&ss);
            }
            output::table(
                &["NAME", "BUILTIN", "TIMEOUT", "DESCRIPTION"],
                ss.iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.builtin.to_string(),
                            format!("{} s", s.timeout_secs),
                            s.description.clone(),
                        ]
                    })
                    .collect(),
            );
            Ok(())
        }
        ScriptsCommand::Show { name } => {
            let s: api::Script = c.get(&format!("/api/v1/scripts/{}", seg(name))).await?;
            show(&s)
        }
        ScriptsCommand::Add { name, fields } => {
            let body = fields.to_write(Some(name.clone()))?;
            let s: api::Script = c.post("/api/v1/scripts", &body).await?;
            if !a.json {
                eprintln!("added commissioning script {}", s.name);
            }
            show(&s)
        }
        ScriptsCommand::Update { name, fields } => {
            let body = fields.to_write(None)?;
            let s: api::Script = c
                .send(
                    c.request(Method::PUT, &format!("/api/v1/scripts/{}", seg(name)))
                        .json(&body),
                )
                .await?;
            show(&s)
        }
        ScriptsCommand::Delete { name } => {
            c.delete(&format!("/api/v1/scripts/{}", seg(name))).await?;
            eprintln!("deleted commissioning script {name}");
            Ok(())
        }
    }
}
