//! Client subcommands: `kiln machines ...` and `kiln sshkeys ...` (the others: [`super::users`],
//! [`super::subnets`], [`super::images`], [`super::racks`], [`super::scripts`], ...).

use anyhow::{bail, Context};
use clap::Subcommand;
use region_api_types as api;
use reqwest::Method;

use super::client::{seg, Client, ClientArgs};
use super::output::{self, bytes, opt};

#[derive(Debug, Subcommand)]
pub enum MachinesCommand {
    /// List machines.
    List {
        /// Filter by status (comma separated for several).
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long)]
        mac: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        zone: Option<String>,
        #[arg(long)]
        pool: Option<String>,
        /// Owner's username, or `none`.
        #[arg(long)]
        owner: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: i64,
        #[arg(long, default_value_t = 0)]
        offset: i64,
    },
    /// Show one machine.
    Show { system_id: String },
    /// The machine's current (or last) deployment, with the installer's whole output.
    Deployment { system_id: String },
    /// What the machine's commissioning scripts reported (latest boot unless --boot-id).
    Results {
        system_id: String,
        #[arg(long)]
        boot_id: Option<String>,
        /// Print every script's whole output (default: only failed scripts', last lines).
        #[arg(long)]
        output: bool,
    },
    /// Add a machine.
    Create(MachineFields),
    /// Change a machine's fields.
    Update {
        system_id: String,
        #[command(flatten)]
        fields: MachineFields,
    },
    /// Start commissioning (powers the machine on, booting from the network, unless manual).
    Commission(ActionArgs),
    /// Power a machine on.
    PowerOn(PowerArgs),
    /// Power a machine off.
    PowerOff(PowerArgs),
    /// Power a machine off and on again (just on if it is off).
    PowerCycle(PowerArgs),
    /// Read a machine's power state from its BMC.
    Power {
        system_id: String,
        /// The last state seen instead of asking the BMC now.
        #[arg(long)]
        cached: bool,
    },
    /// The power types and the parameters each takes.
    PowerTypes,
    /// Allocate a Ready machine to yourself: the one named, or the best fit for the constraints.
    Allocate(super::deploy::AllocateArgs),
    /// Deploy an OS (allocates a Ready machine first); --wait prints each step.
    Deploy(super::deploy::DeployArgs),
    /// Release an allocated or deployed machine (--erase erases its disks first).
    Release(super::deploy::ReleaseArgs),
    /// Abort the operation in progress.
    Abort(ActionArgs),
    /// Mark a machine broken.
    MarkBroken(ActionArgs),
    /// Mark a broken machine fixed.
    MarkFixed(ActionArgs),
    /// Boot a machine into rescue mode.
    Rescue(ActionArgs),
    /// Leave rescue mode.
    ExitRescue(ActionArgs),
    /// Delete a machine.
    Delete(ActionArgs),
    /// Reserve a static address for one of a machine's interfaces (or --clear it).
    SetIp {
        system_id: String,
        mac: String,
        ip: Option<String>,
        #[arg(long, conflicts_with = "ip")]
        clear: bool,
    },
    /// A machine's events, oldest first (table and --json alike).
    Events {
        system_id: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Debug, clap::Args)]
pub struct ActionArgs {
    pub system_id: String,
    /// Recorded in the machine's events and the audit log.
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct PowerArgs {
    pub system_id: String,
    /// Set the next boot device first: pxe or disk.
    #[arg(long, value_parser = ["pxe", "disk"])]
    pub boot: Option<String>,
    /// Seconds to wait for the BMC (at most 300); 0 returns at once.
    #[arg(long, default_value_t = 60)]
    pub wait: u32,
}

#[derive(Debug, Default, clap::Args)]
pub struct MachineFields {
    #[arg(long)]
    pub hostname: Option<String>,
    /// e.g. amd64/generic.
    #[arg(long = "arch")]
    pub architecture: Option<String>,
    /// The MAC the machine PXE boots from.
    #[arg(long = "mac")]
    pub boot_mac: Option<String>,
    /// An interface as NAME=MAC (repeatable).
    #[arg(long = "interface", value_name = "NAME=MAC")]
    pub interfaces: Vec<String>,
    /// manual, ipmi, redfish, virsh, webhook.
    #[arg(long)]
    pub power_type: Option<String>,
    /// A power parameter as KEY=VALUE (repeatable), e.g. power_address=10.0.0.5.
    #[arg(long = "power-param", value_name = "KEY=VALUE")]
    pub power_parameters: Vec<String>,
    /// Shorthand for --power-param power_address=…
    #[arg(long)]
    pub power_address: Option<String>,
    #[arg(long)]
    pub zone: Option<String>,
    #[arg(long)]
    pub pool: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// The DNS domain the machine is named in (`kiln dns domains list`; "" for the default).
    #[arg(long)]
    pub domain: Option<String>,
    /// true: commissioning leaves the BMC alone (no Kiln user is created on it).
    #[arg(long)]
    pub skip_bmc_config: Option<bool>,
    #[arg(long)]
    pub cpu_count: Option<i32>,
    #[arg(long)]
    pub memory_mib: Option<i64>,
    #[arg(long)]
    pub storage_bytes: Option<i64>,
}

impl MachineFields {
    fn power_parameters(
        &self,
    ) -> anyhow::Result<Option<serde_json::Map<String, serde_json::Value>>> {
        if self.power_parameters.is_empty() && self.power_address.is_none() {
            return Ok(None);
        }
        let mut m = serde_json::Map::new();
        for kv in &self.power_parameters {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--power-param {kv}: write KEY=VALUE"))?;
            m.insert(k.to_string(), serde_json::Value::String(v.to_string()));
        }
        if let Some(a) = &self.power_address {
            m.insert("power_address".into(), serde_json::Value::String(a.clone()));
        }
        Ok(Some(m))
    }

    fn interfaces(&self) -> anyhow::Result<Option<Vec<api::InterfaceCreate>>> {
        if self.interfaces.is_empty() {
            return Ok(None);
        }
        self.interfaces
            .iter()
            .map(|s| {
                let (name, mac) = s.split_once('=').with_context(|| {
                    format!("--interface {s}: write NAME=MAC, e.g. eth0=52:54:00:12:34:56")
                })?;
                Ok(api::InterfaceCreate {
                    name: name.into(),
                    mac: mac.into(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map(Some)
    }

    fn to_create(&self) -> anyhow::Result<api::MachineCreate> {
        Ok(api::MachineCreate {
            domain: self.domain.clone(),
            hostname: self.hostname.clone(),
            architecture: self.architecture.clone(),
            boot_mac: self.boot_mac.clone(),
            power_type: self.power_type.clone(),
            power_parameters: self.power_parameters()?,
            zone: self.zone.clone(),
            pool: self.pool.clone(),
            tags: (!self.tags.is_empty()).then(|| self.tags.clone()),
            description: self.description.clone(),
            interfaces: self.interfaces()?,
            cpu_count: self.cpu_count,
            memory_mib: self.memory_mib,
            storage_bytes: self.storage_bytes,
            skip_bmc_config: self.skip_bmc_config,
        })
    }

    fn to_patch(&self) -> anyhow::Result<api::MachinePatch> {
        if !self.interfaces.is_empty()
            || self.cpu_count.is_some()
            || self.memory_mib.is_some()
            || self.storage_bytes.is_some()
        {
            bail!("interfaces and hardware facts are set at creation or by commissioning, not by update");
        }
        Ok(api::MachinePatch {
            hostname: self.hostname.clone(),
            architecture: self.architecture.clone(),
            boot_mac: self.boot_mac.clone(),
            power_type: self.power_type.clone(),
            power_parameters: self.power_parameters()?,
            zone: self.zone.clone(),
            pool: self.pool.clone(),
            tags: (!self.tags.is_empty()).then(|| self.tags.clone()),
            description: self.description.clone(),
            skip_bmc_config: self.skip_bmc_config,
            domain: self.domain.clone(),
        })
    }
}

pub(crate) fn client<C: Subcommand>(a: &ClientArgs<C>) -> anyhow::Result<Client> {
    if a.token.is_none() {
        bail!("no API token: set KILN_TOKEN (create one with `kiln admin create-token USER`) or pass --token");
    }
    Client::new(&a.url, a.token.clone())
}

async fn power(
    c: &super::client::Client,
    json: bool,
    verb: &str,
    p: PowerArgs,
) -> anyhow::Result<()> {
    let path = format!("/api/v1/machines/{}/{verb}", seg(&p.system_id));
    let body = api::PowerRequest {
        boot_device: p.boot.as_deref().and_then(api::BootDevice::parse),
        wait_secs: Some(p.wait),
    };
    let st: Option<api::PowerStatus> = c.post(&path, &body).await?;
    match st {
        Some(st) => show_power(&st, json),
        None => Ok(()),
    }
}

fn show_power(st: &api::PowerStatus, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(st);
    }
    let mut rows = vec![
        ("system_id", st.system_id.clone()),
        ("power type", st.power_type.clone()),
        ("power state", st.power_state.to_string()),
        ("checked", opt(&st.checked_at)),
    ];
    if let Some(j) = &st.job {
        rows.push(("job", format!("{} ({})", j.id, j.status.as_str())));
        rows.push(("answer", opt(&j.message)));
    } else if st.power_type == "manual" {
        rows.push(("answer", "manual power: see the machine's events".into()));
    }
    output::fields(rows);
    Ok(())
}

fn show_machine(m: &api::Machine) {
    let ifaces: Vec<String> = m
        .interfaces
        .iter()
        .map(|i| {
            format!(
                "{} {}{}",
                i.name,
                i.mac,
                i.ip.as_ref().map(|ip| format!(" {ip}")).unwrap_or_default()
            )
        })
        .collect();
    let power: Vec<String> = m
        .power_parameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    output::fields(vec![
        ("system_id", m.system_id.clone()),
        ("hostname", m.hostname.clone()),
        ("status", m.status_label.clone()),
        ("deadline", opt(&m.status_deadline)),
        ("architecture", m.architecture.clone()),
        ("boot mac", opt(&m.boot_mac)),
        ("power", format!("{} {}", m.power_type, power.join(" "))),
        (
            "power state",
            match &m.power_state_checked_at {
                Some(t) => format!("{} (checked {t})", m.power_state),
                None => m.power_state.to_string(),
            },
        ),
        ("owner", opt(&m.owner)),
        ("zone / pool", format!("{} / {}", m.zone, m.pool)),
        ("tags", m.tags.join(", ")),
        (
            "domain",
            m.domain.clone().unwrap_or_else(|| "(the default)".into()),
        ),
        ("cpus", m.cpu_count.to_string()),
        ("memory", format!("{} MiB", m.memory_mib)),
        ("storage", bytes(m.storage_bytes)),
        ("interfaces", ifaces.join("; ")),
        ("description", m.description.clone()),
        ("created", m.created_at.clone()),
        ("updated", m.updated_at.clone()),
    ]);
    if let Some(v) = &m.boot_volume {
        println!();
        super::volumes::show_boot_volume(v);
    }
    if let Some(h) = &m.hardware {
        println!();
        output::fields(vec![
            ("cpu", format!("{} x {}", h.cpu_count, h.cpu_model)),
            ("memory", format!("{} MiB", h.memory_mib)),
            ("firmware", h.firmware.clone()),
            (
                "system",
                format!(
                    "{} {} (serial {})",
                    h.system_vendor, h.system_product, h.system_serial
                ),
            ),
            (
                "bmc",
                if h.bmc_present {
                    "present"
                } else {
                    "none found"
                }
                .to_string(),
            ),
            ("commissioned", h.commissioned_at.clone()),
        ]);
        output::table(
            &["DISK", "SIZE", "MODEL", "SERIAL", "TRANSPORT"],
            h.disks
                .iter()
                .map(|d| {
                    vec![
                        d.name.clone(),
                        bytes(d.size_bytes),
                        d.model.clone(),
                        d.serial.clone(),
                        d.transport.clone(),
                    ]
                })
                .collect(),
        );
        output::table(
            &["NIC", "MAC", "LINK", "SPEED", "DRIVER"],
            h.nics
                .iter()
                .map(|n| {
                    vec![
                        n.name.clone(),
                        n.mac.clone(),
                        if n.link { "up" } else { "down" }.to_string(),
                        n.speed_mbps
                            .map(|s| format!("{s} Mb/s"))
                            .unwrap_or_else(|| "-".into()),
                        n.driver.clone(),
                    ]
                })
                .collect(),
        );
    }
}

/// Script results as a table; the output of failed ones (last lines) below it.
fn show_results(rs: &[api::ScriptResult], all_output: bool) {
    if rs.is_empty() {
        println!("no commissioning results yet");
        return;
    }
    output::table(
        &["SCRIPT", "STATUS", "EXIT", "STARTED", "FINISHED"],
        rs.iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.status.clone(),
                    opt(&r.exit_code),
                    r.started_at.clone(),
                    opt(&r.finished_at),
                ]
            })
            .collect(),
    );
    for r in rs {
        if all_output || (r.status != "passed" && r.status != "running") {
            let out = r.output.as_deref().unwrap_or("");
            let lines: Vec<&str> = out.lines().collect();
            let keep = if all_output { lines.len() } else { 30 };
            println!(
                "\n--- {} ({}, exit {}) ---",
                r.name,
                r.status,
                opt(&r.exit_code)
            );
            for l in &lines[lines.len().saturating_sub(keep)..] {
                println!("{l}");
            }
        }
    }
}

pub async fn sshkeys(a: ClientArgs<super::deploy::SshkeysCommand>) -> anyhow::Result<()> {
    let c = client(&a)?;
    super::deploy::sshkeys(&c, a).await
}

pub async fn machines(a: ClientArgs<MachinesCommand>) -> anyhow::Result<()> {
    let c = client(&a)?;
    let json = a.json;
    let act = |action: api::MachineAction, args: ActionArgs| {
        let c = c.clone();
        async move {
            let path = format!(
                "/api/v1/machines/{}/{}",
                seg(&args.system_id),
                action.as_str()
            );
            let body = api::ActionRequest {
                comment: args.comment,
            };
            let m: Option<api::Machine> = c.post(&path, &body).await?;
            anyhow::Ok(m)
        }
    };
    let print = |m: &api::Machine| -> anyhow::Result<()> {
        if json {
            output::json(m)
        } else {
            show_machine(m);
            Ok(())
        }
    };
    use api::MachineAction as A;
    let (action, args) = match a.command {
        MachinesCommand::List {
            status,
            hostname,
            mac,
            tag,
            zone,
            pool,
            owner,
            limit,
            offset,
        } => {
            let mut q: Vec<(&str, String)> =
                vec![("limit", limit.to_string()), ("offset", offset.to_string())];
            for (k, v) in [
                ("status", status),
                ("hostname", hostname),
                ("mac", mac),
                ("tag", tag),
                ("zone", zone),
                ("pool", pool),
                ("owner", owner),
            ] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let page: api::Page<api::Machine> = c
                .send(c.request(Method::GET, "/api/v1/machines").query(&q))
                .await?;
            if json {
                return output::json(&page);
            }
            output::table(
                &[
                    "SYSTEM_ID",
                    "HOSTNAME",
                    "STATUS",
                    "ARCH",
                    "BOOT MAC",
                    "POWER",
                    "OWNER",
                    "CPUS",
                    "MEMORY",
                    "TAGS",
                ],
                page.items
                    .iter()
                    .map(|m| {
                        vec![
                            m.system_id.clone(),
                            m.hostname.clone(),
                            m.status_label.clone(),
                            m.architecture.clone(),
                            opt(&m.boot_mac),
                            m.power_type.clone(),
                            opt(&m.owner),
                            m.cpu_count.to_string(),
                            format!("{} MiB", m.memory_mib),
                            m.tags.join(","),
                        ]
                    })
                    .collect(),
            );
            eprintln!("{} of {} machine(s)", page.items.len(), page.total);
            return Ok(());
        }
        MachinesCommand::Show { system_id } => {
            let m: api::Machine = c
                .get(&format!("/api/v1/machines/{}", seg(&system_id)))
                .await?;
            print(&m)?;
            if !json {
                if m.deployment.is_some() {
                    println!();
                    super::deploy::show_deployment(&c, &system_id, false, 30).await?;
                }
                let rs: Vec<api::ScriptResult> = c
                    .get(&format!("/api/v1/machines/{}/results", seg(&system_id)))
                    .await?;
                println!();
                show_results(&rs, false);
            }
            return Ok(());
        }
        MachinesCommand::Deployment { system_id } => {
            return super::deploy::show_deployment(&c, &system_id, json, usize::MAX).await;
        }
        MachinesCommand::Results {
            system_id,
            boot_id,
            output,
        } => {
            let mut q = vec![("output", "true".to_string())];
            if let Some(b) = boot_id {
                q.push(("boot_id", b));
            }
            let rs: Vec<api::ScriptResult> = c
                .send(
                    c.request(
                        Method::GET,
                        &format!("/api/v1/machines/{}/results", seg(&system_id)),
                    )
                    .query(&q),
                )
                .await?;
            if json {
                return output::json(&rs);
            }
            show_results(&rs, output);
            return Ok(());
        }
        MachinesCommand::Create(f) => {
            let m: api::Machine = c.post("/api/v1/machines", &f.to_create()?).await?;
            if !json {
                eprintln!("created machine {} ({})", m.system_id, m.hostname);
            }
            return print(&m);
        }
        MachinesCommand::Update { system_id, fields } => {
            let m: api::Machine = c
                .patch(
                    &format!("/api/v1/machines/{}", seg(&system_id)),
                    &fields.to_patch()?,
                )
                .await?;
            return print(&m);
        }
        MachinesCommand::SetIp {
            system_id,
            mac,
            ip,
            clear,
        } => {
            if ip.is_none() && !clear {
                bail!("give the address, or --clear to remove the reservation");
            }
            let m: api::Machine = c
                .send(
                    c.request(
                        Method::PUT,
                        &format!(
                            "/api/v1/machines/{}/interfaces/{}",
                            seg(&system_id),
                            seg(&mac)
                        ),
                    )
                    .json(&api::InterfaceUpdate { ip }),
                )
                .await?;
            return print(&m);
        }
        MachinesCommand::Events { system_id, limit } => {
            let evs: Vec<api::Event> = c
                .send(
                    c.request(
                        Method::GET,
                        &format!("/api/v1/machines/{}/events", seg(&system_id)),
                    )
                    .query(&[("limit", limit)]),
                )
                .await?;
            return print_events(&evs, json);
        }
        MachinesCommand::PowerOn(p) => return power(&c, json, "power-on", p).await,
        MachinesCommand::PowerOff(p) => return power(&c, json, "power-off", p).await,
        MachinesCommand::PowerCycle(p) => return power(&c, json, "power-cycle", p).await,
        MachinesCommand::Power { system_id, cached } => {
            let path = format!("/api/v1/machines/{}/power?cached={cached}", seg(&system_id));
            let st: api::PowerStatus = c.get(&path).await?;
            return show_power(&st, json);
        }
        MachinesCommand::PowerTypes => {
            let types: Vec<api::PowerTypeSchema> = c.get("/api/v1/power-types").await?;
            if json {
                return output::json(&types);
            }
            for t in types {
                println!("{}: {}", t.name, t.description);
                for f in t.fields {
                    let mut notes = Vec::new();
                    if f.required {
                        notes.push("required".to_string());
                    }
                    if f.secret {
                        notes.push("secret".to_string());
                    }
                    if let Some(d) = f.default.filter(|d| !d.is_empty()) {
                        notes.push(format!("default {d}"));
                    }
                    if !f.choices.is_empty() {
                        notes.push(format!("one of {}", f.choices.join("|")));
                    }
                    println!("  {:<18} {} ({})", f.name, f.label, notes.join(", "));
                }
            }
            return Ok(());
        }
        MachinesCommand::Commission(x) => (A::Commission, x),
        MachinesCommand::Allocate(x) => return super::deploy::allocate(&c, json, x).await,
        MachinesCommand::Deploy(x) => return super::deploy::deploy(&c, json, x).await,
        MachinesCommand::Release(x) => return super::deploy::release(&c, json, x).await,
        MachinesCommand::Abort(x) => (A::Abort, x),
        MachinesCommand::MarkBroken(x) => (A::MarkBroken, x),
        MachinesCommand::MarkFixed(x) => (A::MarkFixed, x),
        MachinesCommand::Rescue(x) => (A::Rescue, x),
        MachinesCommand::ExitRescue(x) => (A::ExitRescue, x),
        MachinesCommand::Delete(x) => (A::Delete, x),
    };
    let id = args.system_id.clone();
    match act(action, args).await? {
        Some(m) => {
            if json {
                output::json(&m)
            } else {
                println!("{} {}: {}", m.system_id, m.hostname, m.status_label);
                Ok(())
            }
        }
        None => {
            if !json {
                println!("{id} deleted");
            }
            Ok(())
        }
    }
}

pub(crate) fn print_events(evs: &[api::Event], json: bool) -> anyhow::Result<()> {
    // People read a boot trace top to bottom: oldest first, by the time it happened; --json
    // keeps the same order as the table.
    let mut evs: Vec<&api::Event> = evs.iter().collect();
    evs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    if json {
        return output::json(&evs);
    }
    output::table(
        &["TIME", "MACHINE", "LEVEL", "TYPE", "USER", "DESCRIPTION"],
        evs.iter()
            .map(|e| {
                vec![
                    e.created_at.clone(),
                    opt(&e.system_id),
                    e.level.as_str().to_string(),
                    e.event_type.clone(),
                    opt(&e.username),
                    e.description.clone(),
                ]
            })
            .collect(),
    );
    Ok(())
}
