//! `kiln pods add|list|show|update|refresh|delete|compose|decompose`: KVM pods (libvirt hosts).

use clap::{Args, Subcommand};
use region_api_types as api;
use reqwest::Method;

use super::client::{seg, Client, ClientArgs};
use super::output;

/// Settings of `add` and `update`.
#[derive(Debug, Clone, Args)]
pub struct PodSettings {
    /// libvirt URI: qemu:///system, qemu+ssh://user@host/system, qemu+tcp://host/system.
    #[arg(long)]
    pub power_address: Option<String>,
    /// Password of the libvirt connection (write-only; "" removes it).
    #[arg(long)]
    pub power_pass: Option<String>,
    /// Cores handed out per host core (default 1).
    #[arg(long)]
    pub cpu_over_commit_ratio: Option<f64>,
    /// Memory handed out per MiB of host memory (default 1).
    #[arg(long)]
    pub memory_over_commit_ratio: Option<f64>,
    /// Storage pool of composed disks (default: the host's first active pool).
    #[arg(long)]
    pub default_storage_pool: Option<String>,
    /// libvirt network or host bridge of composed NICs.
    #[arg(long)]
    pub default_network: Option<String>,
    /// Tags of composed machines (repeat, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tags: Option<Vec<String>>,
    #[arg(long)]
    pub zone: Option<String>,
    #[arg(long)]
    pub pool: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PodsCommand {
    /// Register a libvirt host (admins); it is discovered at once, or nothing is kept.
    Add {
        name: String,
        #[command(flatten)]
        settings: PodSettings,
    },
    /// Every pod with its free cores, memory and storage.
    List,
    /// One pod: capacity, storage pools, networks, VMs, composed machines.
    Show { id: String },
    /// Change a pod (admins); it is discovered again.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: PodSettings,
    },
    /// Discover the host again now.
    Refresh { id: String },
    /// Delete a pod; with composed machines only with --force (they are decomposed).
    Delete {
        id: String,
        #[arg(long)]
        force: bool,
    },
    /// Compose a VM (admins); it commissions by itself (--wait follows it to Ready).
    Compose {
        id: String,
        #[arg(long, default_value_t = 1)]
        cores: u32,
        /// MiB.
        #[arg(long, default_value_t = 2048)]
        memory: i64,
        /// Disk size in GiB, optionally `SIZE:POOL` (repeat for more disks; default one of 8).
        #[arg(long = "disk")]
        disks: Vec<String>,
        /// NIC on a host bridge (repeatable).
        #[arg(long = "bridge")]
        bridges: Vec<String>,
        /// NIC on a libvirt network (repeatable).
        #[arg(long = "network")]
        networks: Vec<String>,
        #[arg(long)]
        hostname: Option<String>,
        /// uefi (default) or bios.
        #[arg(long)]
        firmware: Option<String>,
        #[arg(long)]
        secure_boot: bool,
        /// Follow the machine until commissioning ends.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits (seconds).
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
    },
    /// Destroy a composed machine's VM (domain, NVRAM, volumes) and delete the machine.
    Decompose { id: String, system_id: String },
}

fn table(ps: &[api::Pod]) {
    output::table(
        &[
            "ID",
            "NAME",
            "STATE",
            "ADDRESS",
            "CORES FREE",
            "MEMORY FREE",
            "STORAGE FREE",
            "VMS",
            "MACHINES",
        ],
        ps.iter()
            .map(|p| {
                let storage: i64 = p
                    .storage_pools
                    .iter()
                    .filter(|s| s.active)
                    .map(|s| s.free_bytes)
                    .sum();
                vec![
                    p.id.clone(),
                    p.name.clone(),
                    match &p.message {
                        Some(m) if p.state == api::PodState::Error => format!("error: {m}"),
                        _ => p.state.as_str().into(),
                    },
                    p.power_address.clone(),
                    format!("{}/{}", p.cores.free, p.cores.limit),
                    format!("{}/{} MiB", p.memory_mib.free, p.memory_mib.limit),
                    format!("{:.1} GiB", storage as f64 / f64::from(1u32 << 30)),
                    p.vms.len().to_string(),
                    p.machines.len().to_string(),
                ]
            })
            .collect(),
    );
}

fn show(p: &api::Pod) {
    table(std::slice::from_ref(p));
    println!();
    output::table(
        &["POOL", "TYPE", "CAPACITY", "COMMITTED", "FREE", "DEFAULT"],
        p.storage_pools
            .iter()
            .map(|s| {
                let g = |b: i64| format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30));
                vec![
                    s.name.clone(),
                    s.pool_type.clone(),
                    g(s.capacity_bytes),
                    g(s.committed_bytes),
                    g(s.free_bytes),
                    if s.default { "yes".into() } else { "-".into() },
                ]
            })
            .collect(),
    );
    println!();
    output::table(
        &["VM", "CORES", "MEMORY", "RUNNING", "MACHINE"],
        p.vms
            .iter()
            .map(|v| {
                vec![
                    v.name.clone(),
                    v.cores.to_string(),
                    format!("{} MiB", v.memory_mib),
                    if v.running { "yes".into() } else { "no".into() },
                    v.system_id.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
    );
}

fn settings_update(name: Option<String>, s: &PodSettings) -> api::PodUpdate {
    api::PodUpdate {
        name,
        power_address: s.power_address.clone(),
        power_pass: s.power_pass.clone(),
        cpu_over_commit_ratio: s.cpu_over_commit_ratio,
        memory_over_commit_ratio: s.memory_over_commit_ratio,
        default_storage_pool: s.default_storage_pool.clone(),
        default_network: s.default_network.clone(),
        tags: s.tags.clone(),
        zone: s.zone.clone(),
        pool: s.pool.clone(),
    }
}

pub async fn pods(a: ClientArgs<PodsCommand>) -> anyhow::Result<()> {
    let Some(token) = a.token.clone() else {
        anyhow::bail!("no API token: set KILN_TOKEN (create one with `kiln admin create-token USER`) or pass --token");
    };
    let c = Client::new(&a.url, Some(token))?;
    let one = |p: api::Pod| -> anyhow::Result<()> {
        if a.json {
            return output::json(&p);
        }
        show(&p);
        Ok(())
    };
    match &a.command {
        PodsCommand::Add { name, settings } => {
            let Some(addr) = settings.power_address.clone() else {
                anyhow::bail!("give the host's libvirt URI with --power-address (e.g. qemu+ssh://kiln@10.0.0.5/system)");
            };
            let body = api::PodCreate {
                name: name.clone(),
                pod_type: Some("virsh".into()),
                power_address: addr,
                power_pass: settings.power_pass.clone(),
                cpu_over_commit_ratio: settings.cpu_over_commit_ratio,
                memory_over_commit_ratio: settings.memory_over_commit_ratio,
                default_storage_pool: settings.default_storage_pool.clone(),
                default_network: settings.default_network.clone(),
                tags: settings.tags.clone(),
                zone: settings.zone.clone(),
                pool: settings.pool.clone(),
                wait_secs: None,
            };
            one(c.post("/api/v1/pods", &body).await?)
        }
        PodsCommand::List => {
            let ps: Vec<api::Pod> = c.get("/api/v1/pods").await?;
            if a.json {
                return output::json(&ps);
            }
            table(&ps);
            Ok(())
        }
        PodsCommand::Show { id } => one(c.get(&format!("/api/v1/pods/{}", seg(id))).await?),
        PodsCommand::Update { id, name, settings } => one(c
            .patch(
                &format!("/api/v1/pods/{}", seg(id)),
                &settings_update(name.clone(), settings),
            )
            .await?),
        PodsCommand::Refresh { id } => one(c
            .post(
                &format!("/api/v1/pods/{}/refresh", seg(id)),
                &serde_json::json!({}),
            )
            .await?),
        PodsCommand::Delete { id, force } => {
            let out: api::PodDeleted = c
                .send(
                    c.request(Method::DELETE, &format!("/api/v1/pods/{}", seg(id)))
                        .query(&[("force", *force)]),
                )
                .await?;
            if a.json {
                return output::json(&out);
            }
            println!("deleted pod {id}");
            for s in &out.decomposed {
                println!("decomposed {s}");
            }
            for l in &out.left_on_host {
                println!(
                    "removed {} ({}); its VM is still on the host: {}",
                    l.system_id, l.hostname, l.reason
                );
            }
            Ok(())
        }
        PodsCommand::Compose {
            id,
            cores,
            memory,
            disks,
            bridges,
            networks,
            hostname,
            firmware,
            secure_boot,
            wait,
            timeout,
        } => {
            let mut ds = Vec::new();
            for d in disks {
                let (size, pool) = match d.split_once(':') {
                    Some((s, p)) => (s, Some(p.to_string())),
                    None => (d.as_str(), None),
                };
                let size_gib = size.trim_end_matches(['G', 'g']).parse().map_err(|_| {
                    anyhow::anyhow!("--disk {d}: give a size in GiB, optionally SIZE:POOL")
                })?;
                ds.push(api::ComposeDisk { size_gib, pool });
            }
            let mut ifs: Vec<api::ComposeInterface> = bridges
                .iter()
                .map(|b| api::ComposeInterface {
                    network: None,
                    bridge: Some(b.clone()),
                })
                .collect();
            ifs.extend(networks.iter().map(|n| api::ComposeInterface {
                network: Some(n.clone()),
                bridge: None,
            }));
            let body = api::ComposeRequest {
                cores: Some(*cores),
                memory_mib: Some(*memory),
                disks: (!ds.is_empty()).then_some(ds),
                interfaces: (!ifs.is_empty()).then_some(ifs),
                hostname: hostname.clone(),
                firmware: firmware.clone(),
                secure_boot: Some(*secure_boot),
                wait_secs: None,
            };
            let m: api::Machine = c
                .post(&format!("/api/v1/pods/{}/compose", seg(id)), &body)
                .await?;
            if !a.json {
                println!(
                    "composed {} ({}): {}",
                    m.system_id, m.hostname, m.status_label
                );
            }
            let m = if *wait {
                use api::MachineStatus as S;
                super::deploy::wait(
                    &c,
                    &m.system_id,
                    &[S::New, S::Commissioning, S::Testing],
                    *timeout,
                    a.json,
                )
                .await?
            } else {
                m
            };
            if a.json {
                return output::json(&m);
            }
            if *wait {
                println!("{} is {}", m.system_id, m.status_label);
            }
            Ok(())
        }
        PodsCommand::Decompose { id, system_id } => {
            c.send::<serde_json::Value>(c.request(
                Method::POST,
                &format!("/api/v1/pods/{}/decompose/{}", seg(id), seg(system_id)),
            ))
            .await?;
            if !a.json {
                println!("decomposed {system_id}");
            }
            Ok(())
        }
    }
}
