//! Client commands of deployment: `kiln machines allocate|deploy|release` (with their flags) and
//! `kiln sshkeys add|list|delete`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use region_api_types as api;
use reqwest::Method;

use super::client::{seg, Client, ClientArgs};
use super::output;

#[derive(Debug, clap::Args)]
pub struct AllocateArgs {
    /// This machine (else the best-fitting Ready one).
    pub system_id: Option<String>,
    /// At least this many CPUs.
    #[arg(long)]
    pub cores: Option<i32>,
    /// At least this much memory (MiB).
    #[arg(long)]
    pub memory: Option<i64>,
    /// At least this much storage (GiB).
    #[arg(long)]
    pub storage: Option<i64>,
    /// A tag the machine must have (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// A tag the machine must not have (repeatable).
    #[arg(long = "not-tag")]
    pub not_tags: Vec<String>,
    #[arg(long)]
    pub zone: Option<String>,
    #[arg(long)]
    pub pool: Option<String>,
    #[arg(long = "arch")]
    pub architecture: Option<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    pub system_id: String,
    /// The OS (default debian).
    #[arg(long)]
    pub os: Option<String>,
    /// The release (default: the newest image of the OS).
    #[arg(long)]
    pub release: Option<String>,
    /// cloud-init user-data (#cloud-config YAML or a script).
    #[arg(long)]
    pub user_data: Option<PathBuf>,
    #[arg(long, value_parser = ["disk", "memory", "iscsi"])]
    pub target: Option<String>,
    #[arg(long, value_parser = ["flat", "lvm"])]
    pub layout: Option<String>,
    /// The disk to install to (name or serial; default the first disk).
    #[arg(long)]
    pub boot_disk: Option<String>,
    /// With --target iscsi: the root volume's size in GiB (default: the image's golden volume).
    #[arg(long, value_name = "GIB", value_parser = clap::value_parser!(u32).range(1..=16384))]
    pub volume_size: Option<u32>,
    /// Leave the rack's HTTP proxy out of the deployed system's apt settings.
    #[arg(long)]
    pub no_proxy: bool,
    /// Wait until Deployed (or failed), printing each step.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (seconds).
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    pub system_id: String,
    /// Erase the disks first (Disk erasing, then Ready).
    #[arg(long)]
    pub erase: bool,
    /// With --erase: wipe signatures and the first and last 2 MiB (the default).
    #[arg(long, requires = "erase", conflicts_with = "secure")]
    pub quick: bool,
    /// With --erase: the drive's secure erase, else zeros over every byte.
    #[arg(long, requires = "erase")]
    pub secure: bool,
    /// Root on iSCSI: keep the volume's file on the rack (its target is removed all the same).
    #[arg(long)]
    pub keep_volume: bool,
    /// Wait until the machine is Ready (or failed), printing each step.
    #[arg(long)]
    pub wait: bool,
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    #[arg(long)]
    pub comment: Option<String>,
}

pub async fn allocate(c: &Client, json: bool, a: AllocateArgs) -> anyhow::Result<()> {
    let body = api::AllocateRequest {
        cpu_count: a.cores,
        memory_mib: a.memory,
        storage_gib: a.storage,
        tags: a.tags,
        not_tags: a.not_tags,
        zone: a.zone,
        pool: a.pool,
        architecture: a.architecture,
        system_id: a.system_id,
        hostname: a.hostname,
        comment: a.comment,
    };
    let m: api::Machine = c.post("/api/v1/machines/allocate", &body).await?;
    done(json, &m)
}

fn done(json: bool, m: &api::Machine) -> anyhow::Result<()> {
    if json {
        output::json(m)
    } else {
        println!("{} {}: {}", m.system_id, m.hostname, m.status_label);
        Ok(())
    }
}

pub async fn deploy(c: &Client, json: bool, a: DeployArgs) -> anyhow::Result<()> {
    let user_data = match &a.user_data {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading user-data {}", p.display()))?,
        ),
        None => None,
    };
    let body = api::DeployRequest {
        os: a.os,
        release: a.release,
        user_data,
        target: a.target.as_deref().and_then(api::DeployTarget::parse),
        storage_layout: a.layout.as_deref().map(|l| {
            if l == "lvm" {
                api::StorageLayout::Lvm
            } else {
                api::StorageLayout::Flat
            }
        }),
        boot_disk: a.boot_disk,
        volume_size_gib: a.volume_size,
        proxy: a.no_proxy.then_some(false),
        comment: a.comment,
    };
    let path = format!("/api/v1/machines/{}/deploy", seg(&a.system_id));
    let m: api::Machine = c.post(&path, &body).await?;
    if !a.wait {
        return done(json, &m);
    }
    let m = wait(
        c,
        &a.system_id,
        &[api::MachineStatus::Deploying],
        a.timeout,
        json,
    )
    .await?;
    done(json, &m)?;
    if m.status != api::MachineStatus::Deployed {
        anyhow::bail!("deployment of {} ended {}", m.system_id, m.status_label);
    }
    Ok(())
}

pub async fn release(c: &Client, json: bool, a: ReleaseArgs) -> anyhow::Result<()> {
    let body = api::ReleaseRequest {
        erase: a.erase,
        quick_erase: a.quick,
        secure_erase: a.secure,
        keep_volume: a.keep_volume,
        comment: a.comment,
    };
    let path = format!("/api/v1/machines/{}/release", seg(&a.system_id));
    let m: api::Machine = c.post(&path, &body).await?;
    if !a.wait {
        return done(json, &m);
    }
    let m = wait(
        c,
        &a.system_id,
        &[
            api::MachineStatus::Releasing,
            api::MachineStatus::DiskErasing,
        ],
        a.timeout,
        json,
    )
    .await?;
    done(json, &m)?;
    if m.status != api::MachineStatus::Ready {
        anyhow::bail!("release of {} ended {}", m.system_id, m.status_label);
    }
    Ok(())
}

/// Polls the machine while it is in one of `while_in`, printing each new event as a progress
/// line (to stderr with --json), and returns it when it leaves them.
pub(super) async fn wait(
    c: &Client,
    system_id: &str,
    while_in: &[api::MachineStatus],
    timeout: u64,
    json: bool,
) -> anyhow::Result<api::Machine> {
    let start = Instant::now();
    let mut seen = events(c, system_id)
        .await?
        .iter()
        .map(|e| e.id)
        .max()
        .unwrap_or(0);
    loop {
        let path = format!("/api/v1/machines/{}", seg(system_id));
        let m: api::Machine = c.get(&path).await?;
        let mut new: Vec<api::Event> = events(c, system_id)
            .await?
            .into_iter()
            .filter(|e| e.id > seen)
            .collect();
        new.sort_by_key(|e| e.id);
        for e in &new {
            let line = format!(
                "[{:>5.0}s] {} {}: {}",
                start.elapsed().as_secs_f64(),
                e.level.as_str(),
                e.event_type,
                e.description.lines().next().unwrap_or("")
            );
            if json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            seen = seen.max(e.id);
        }
        if !while_in.contains(&m.status) {
            return Ok(m);
        }
        if start.elapsed() > Duration::from_secs(timeout) {
            anyhow::bail!("{system_id} is still {} after {timeout} s", m.status_label);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn events(c: &Client, system_id: &str) -> anyhow::Result<Vec<api::Event>> {
    c.send(
        c.request(
            Method::GET,
            &format!("/api/v1/machines/{}/events", seg(system_id)),
        )
        .query(&[("limit", 200)]),
    )
    .await
}

#[derive(Debug, Subcommand)]
pub enum SshkeysCommand {
    /// Add an SSH public key (deployed machines of yours get it).
    Add {
        /// A .pub file (one key line).
        #[arg(long)]
        file: PathBuf,
    },
    /// Your SSH keys.
    List,
    /// Delete one of your keys.
    Delete { id: String },
}

pub async fn sshkeys(c: &Client, a: ClientArgs<SshkeysCommand>) -> anyhow::Result<()> {
    match a.command {
        SshkeysCommand::Add { file } => {
            let key = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let k: api::SshKey = c
                .post("/api/v1/users/me/ssh-keys", &api::SshKeyCreate { key })
                .await?;
            if a.json {
                return output::json(&k);
            }
            println!("{} {} {}", k.id, k.fingerprint, k.comment);
        }
        SshkeysCommand::List => {
            let ks: Vec<api::SshKey> = c.get("/api/v1/users/me/ssh-keys").await?;
            if a.json {
                return output::json(&ks);
            }
            output::table(
                &["ID", "TYPE", "FINGERPRINT", "COMMENT", "ADDED"],
                ks.into_iter()
                    .map(|k| vec![k.id, k.key_type, k.fingerprint, k.comment, k.created_at])
                    .collect(),
            );
        }
        SshkeysCommand::Delete { id } => {
            c.delete(&format!("/api/v1/users/me/ssh-keys/{}", seg(&id)))
                .await?;
            if !a.json {
                println!("{id} deleted");
            }
        }
    }
    Ok(())
}

/// Prints a machine's deployment: its fields and the last `lines` lines of the installer's output
/// (the JSON of `GET /machines/{id}/deployment` with `json`).
pub async fn show_deployment(
    c: &Client,
    system_id: &str,
    json: bool,
    lines: usize,
) -> anyhow::Result<()> {
    let d: serde_json::Value = c
        .get(&format!("/api/v1/machines/{}/deployment", seg(system_id)))
        .await?;
    if json {
        return output::json(&d);
    }
    let f = |k: &str| d[k].as_str().unwrap_or("-").to_string();
    output::fields(vec![
        ("deployment", f("id")),
        ("image", format!("{}/{}", f("os"), f("release"))),
        (
            "target",
            format!(
                "{} ({} layout, disk {})",
                f("target"),
                f("storage_layout"),
                f("boot_disk")
            ),
        ),
        ("state", f("state")),
        ("instance-id", f("instance_id")),
        (
            "started / installed",
            format!("{} / {}", f("created_at"), f("installed_at")),
        ),
    ]);
    let out = d["installer_output"].as_str().unwrap_or("");
    if !out.is_empty() {
        let all: Vec<&str> = out.lines().collect();
        println!(
            "--- installer output (last {} of {} lines) ---",
            lines.min(all.len()),
            all.len()
        );
        for l in &all[all.len().saturating_sub(lines)..] {
            println!("{l}");
        }
    }
    Ok(())
}
