//! The view of a machine's page.

use std::collections::BTreeMap;

use region_api_types as api;
use serde::Serialize;

use super::{kv, power_class, status_class, Choice, FieldErrors, KeyValue};
use crate::format;

// ---------------------------------------------------------------------------------------------
// Machine detail

#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub at: String,
    pub level: String,
    pub event_type: String,
    pub description: String,
    pub username: String,
    /// Time since the entry before it.
    pub after: String,
}

/// Events (newest first, as the API gives them) as a timeline oldest first, with the time each
/// step took.
pub fn timeline(events: &[api::Event]) -> Vec<TimelineEntry> {
    let mut out = Vec::with_capacity(events.len());
    let mut prev: Option<i64> = None;
    for e in events.iter().rev() {
        let t = format::parse_time_ms(&e.created_at);
        let after = match (prev, t) {
            (Some(p), Some(t)) => format!("+{}", format::duration_ms(t - p)),
            _ => String::new(),
        };
        if t.is_some() {
            prev = t;
        }
        out.push(TimelineEntry {
            at: format::short_time(&e.created_at),
            level: e.level.as_str().to_string(),
            event_type: e.event_type.clone(),
            description: e.description.clone(),
            username: e.username.clone().unwrap_or_default(),
            after,
        });
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct ScriptView {
    pub name: String,
    pub status: String,
    pub exit_code: String,
    pub took: String,
    pub output: String,
}

pub fn scripts(results: &[api::ScriptResult]) -> Vec<ScriptView> {
    results
        .iter()
        .map(|r| ScriptView {
            name: r.name.clone(),
            status: r.status.clone(),
            exit_code: r.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            took: match (
                format::parse_time_ms(&r.started_at),
                r.finished_at.as_deref().and_then(format::parse_time_ms),
            ) {
                (Some(a), Some(b)) => format::duration_ms(b - a),
                _ => String::new(),
            },
            output: r.output.clone().unwrap_or_default(),
        })
        .collect()
}

/// A power parameter as the settings form shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PowerFieldView {
    pub name: String,
    pub label: String,
    /// `text`, `password`, `select`, `number`.
    pub input: &'static str,
    pub required: bool,
    pub secret: bool,
    /// The current value (never a secret's).
    pub value: String,
    /// For secrets: whether one is stored.
    pub is_set: bool,
    pub choices: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PowerTypeView {
    pub name: String,
    pub description: String,
    pub current: bool,
    pub fields: Vec<PowerFieldView>,
}

/// The power settings form: one fieldset per driver; only the chosen one is submitted.
pub fn power_form(
    m: &api::Machine,
    schemas: &[api::PowerTypeSchema],
    secrets_set: &[String],
    errors: &FieldErrors,
) -> Vec<PowerTypeView> {
    schemas
        .iter()
        .map(|s| {
            let current = s.name == m.power_type;
            PowerTypeView {
                name: s.name.clone(),
                description: s.description.clone(),
                current,
                fields: s
                    .fields
                    .iter()
                    .map(|f| {
                        let value = if current && !f.secret {
                            match m.power_parameters.get(&f.name) {
                                Some(serde_json::Value::String(v)) => v.clone(),
                                Some(serde_json::Value::Null) | None => String::new(),
                                Some(v) => v.to_string(),
                            }
                        } else {
                            String::new()
                        };
                        let bool_field = f.kind == api::PowerFieldKind::Bool;
                        PowerFieldView {
                            input: if f.secret {
                                "password"
                            } else if !f.choices.is_empty() || bool_field {
                                "select"
                            } else {
                                "text"
                            },
                            name: f.name.clone(),
                            label: f.label.clone(),
                            required: f.required,
                            secret: f.secret,
                            value,
                            is_set: current && secrets_set.contains(&f.name),
                            choices: if bool_field && f.choices.is_empty() {
                                vec!["true".into(), "false".into()]
                            } else {
                                f.choices.clone()
                            },
                            error: errors.get(&format!("power_parameters.{}", f.name)).cloned(),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionButton {
    pub action: String,
    pub label: String,
    pub danger: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployForm {
    pub images: Vec<Choice>,
    pub disks: Vec<Choice>,
    pub targets: Vec<Choice>,
    pub layouts: Vec<Choice>,
    /// What the user typed, kept when the form comes back with an error.
    pub values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MachineDetail {
    pub system_id: String,
    pub hostname: String,
    pub status: String,
    pub status_class: &'static str,
    /// Why it failed, when its status is a failure (the newest error event).
    pub failure: Option<String>,
    pub power: &'static str,
    pub power_class: &'static str,
    pub summary: Vec<KeyValue>,
    pub hardware: Vec<KeyValue>,
    pub disks: Vec<api::Disk>,
    pub disk_sizes: Vec<String>,
    pub nics: Vec<api::Nic>,
    pub interfaces: Vec<api::Interface>,
    pub scripts: Vec<ScriptView>,
    pub timeline: Vec<TimelineEntry>,
    /// The deployment's installer steps as they arrive (`deploy_step` events, oldest first).
    pub install_log: Vec<TimelineEntry>,
    pub deployment: Vec<KeyValue>,
    pub boot_volume: Vec<KeyValue>,
    pub actions: Vec<ActionButton>,
    pub can_power: bool,
    pub deploy_form: Option<DeployForm>,
    pub release_form: bool,
    pub can_edit: bool,
    pub name_form: Option<NameForm>,
    pub power_types: Vec<PowerTypeView>,
    pub power_type: String,
    pub errors: FieldErrors,
    pub self_link: String,
}

/// Inputs of [`machine_detail`] beside the machine itself.
pub struct DetailInputs<'a> {
    pub events: &'a [api::Event],
    pub scripts: &'a [api::ScriptResult],
    pub schemas: &'a [api::PowerTypeSchema],
    /// Names of the secret power parameters that have a value.
    pub secrets_set: &'a [String],
    /// The actions the status allows and the caller may take.
    pub actions: &'a [api::MachineAction],
    pub can_power: bool,
    pub can_edit: bool,
    /// Deployable images as `os/release` choices.
    pub images: &'a [Choice],
    pub errors: FieldErrors,
    pub deploy_values: BTreeMap<String, String>,
    /// Kiln's default DNS domain (a machine that names none is in it).
    pub default_domain: &'a str,
    /// Every DNS domain's name, for the name form's choice.
    pub domains: &'a [String],
}

/// The admin's form for a machine's hostname and DNS domain.
#[derive(Debug, Clone, Serialize)]
pub struct NameForm {
    pub hostname: String,
    /// The domain's name (the default domain's when the machine names none).
    pub domain: String,
    pub domains: Vec<Choice>,
}

pub fn machine_detail(m: &api::Machine, i: DetailInputs<'_>) -> MachineDetail {
    let failed = status_class(m.status) == "failed";
    let failure = failed
        .then(|| {
            i.events
                .iter()
                .find(|e| e.level == api::EventLevel::Error)
                .map(|e| e.description.clone())
        })
        .flatten();
    let mut summary = vec![
        kv("System id", m.system_id.clone()),
        kv(
            "DNS name",
            format!(
                "{}.{}",
                m.hostname,
                m.domain.as_deref().unwrap_or(i.default_domain)
            ),
        ),
        kv("Owner", m.owner.clone().unwrap_or_else(|| "—".into())),
        kv("Architecture", m.architecture.clone()),
        kv("Zone / pool", format!("{} / {}", m.zone, m.pool)),
        kv("Power driver", m.power_type.clone()),
        kv("Boot MAC", m.boot_mac.clone().unwrap_or_default()),
    ];
    if let Some(d) = &m.deployment {
        summary.push(kv("OS", format!("{}/{}", d.os, d.release)));
    }
    if let Some(dl) = &m.status_deadline {
        summary.push(kv("Deadline", format::short_time(dl)));
    }
    if !m.tags.is_empty() {
        summary.push(kv("Tags", m.tags.join(", ")));
    }
    if !m.description.is_empty() {
        summary.push(kv("Description", m.description.clone()));
    }
    let (hardware, disks, nics) = match &m.hardware {
        Some(h) => (
            vec![
                kv("CPU", format!("{} × {}", h.cpu_count, h.cpu_model)),
                kv("Memory", format::mib(h.memory_mib)),
                kv("Firmware", h.firmware.clone()),
                kv(
                    "System",
                    format!(
                        "{} {} ({})",
                        h.system_vendor, h.system_product, h.system_serial
                    ),
                ),
                kv(
                    "BMC",
                    if h.bmc_present {
                        "present"
                    } else {
                        "none found"
                    },
                ),
                kv("Commissioned", format::short_time(&h.commissioned_at)),
            ],
            h.disks.clone(),
            h.nics.clone(),
        ),
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    let deployment = m
        .deployment
        .as_ref()
        .map(|d| {
            let mut v = vec![
                kv("Image", format!("{}/{}", d.os, d.release)),
                kv("Target", d.target.as_str()),
                kv("Layout", d.storage_layout.as_str()),
                kv("State", d.state.clone()),
                kv("Started", format::short_time(&d.created_at)),
            ];
            if !d.boot_disk.is_empty() {
                v.push(kv("Boot disk", d.boot_disk.clone()));
            }
            if let Some(t) = &d.installed_at {
                v.push(kv("Installed", format::short_time(t)));
            }
            if let Some(t) = &d.finished_at {
                v.push(kv("Finished", format::short_time(t)));
            }
            v.push(kv(
                "User-data",
                if d.has_user_data { "given" } else { "none" },
            ));
            v
        })
        .unwrap_or_default();
    let boot_volume = m
        .boot_volume
        .as_ref()
        .map(|b| {
            vec![
                kv("Target IQN", b.target_iqn.clone()),
                kv("Initiator IQN", b.initiator_iqn.clone()),
                kv("Portal", b.portal.clone().unwrap_or_default()),
                kv("State", b.state.clone()),
                kv("Clone", b.clone_method.clone().unwrap_or_default()),
                kv(
                    "Size / used",
                    format!(
                        "{} / {}",
                        b.size_bytes.map(format::bytes).unwrap_or_default(),
                        b.used_bytes.map(format::bytes).unwrap_or_default()
                    ),
                ),
                kv("Rack", b.rack.clone()),
            ]
        })
        .unwrap_or_default();
    let all = timeline(i.events);
    let install_log = all
        .iter()
        .filter(|e| e.event_type == "deploy_step" || e.event_type == "os_installed")
        .cloned()
        .collect();
    let deploy_form = i
        .actions
        .contains(&api::MachineAction::Deploy)
        .then(|| DeployForm {
            images: i.images.to_vec(),
            disks: disks
                .iter()
                .map(|d| {
                    Choice::new(
                        d.name.clone(),
                        format!("{} ({}, {})", d.name, format::bytes(d.size_bytes), d.model),
                    )
                })
                .collect(),
            targets: vec![
                Choice::new("disk", "Disk"),
                Choice::new("memory", "Memory (diskless, ephemeral)"),
                Choice::new("iscsi", "Root on iSCSI (diskless)"),
            ],
            layouts: vec![Choice::new("flat", "Flat"), Choice::new("lvm", "LVM")],
            values: i.deploy_values.clone(),
        });
    let actions = i
        .actions
        .iter()
        .filter(|a| !matches!(a, api::MachineAction::Deploy | api::MachineAction::Release))
        .map(|a| ActionButton {
            action: a.as_str().to_string(),
            label: action_label(*a).to_string(),
            danger: matches!(
                a,
                api::MachineAction::Delete
                    | api::MachineAction::MarkBroken
                    | api::MachineAction::Abort
            ),
        })
        .collect();
    MachineDetail {
        system_id: m.system_id.clone(),
        hostname: m.hostname.clone(),
        status: m.status_label.clone(),
        status_class: status_class(m.status),
        failure,
        power: m.power_state.as_str(),
        power_class: power_class(m.power_state),
        summary,
        hardware,
        disk_sizes: disks.iter().map(|d| format::bytes(d.size_bytes)).collect(),
        disks,
        nics,
        interfaces: m.interfaces.clone(),
        scripts: scripts(i.scripts),
        timeline: all.into_iter().rev().collect(),
        install_log,
        deployment,
        boot_volume,
        actions,
        can_power: i.can_power,
        deploy_form,
        release_form: i.actions.contains(&api::MachineAction::Release),
        can_edit: i.can_edit,
        name_form: i.can_edit.then(|| name_form(m, &i)),
        power_types: power_form(m, i.schemas, i.secrets_set, &i.errors),
        power_type: m.power_type.clone(),
        errors: i.errors,
        self_link: format!("/machines/{}", m.system_id),
    }
}

fn name_form(m: &api::Machine, i: &DetailInputs<'_>) -> NameForm {
    let current = m.domain.as_deref().unwrap_or(i.default_domain);
    let mut domains: Vec<Choice> = i
        .domains
        .iter()
        .map(|d| {
            let label = if d == i.default_domain {
                format!("{d} (default)")
            } else {
                d.clone()
            };
            Choice::new(d.clone(), label)
        })
        .collect();
    if !i.domains.iter().any(|d| d == current) {
        domains.push(Choice::new(current, current));
    }
    let value = |k: &str, dflt: &str| {
        i.deploy_values
            .get(k)
            .cloned()
            .unwrap_or_else(|| dflt.to_string())
    };
    NameForm {
        hostname: value("hostname", &m.hostname),
        domain: value("domain", current),
        domains,
    }
}

pub fn action_label(a: api::MachineAction) -> &'static str {
    match a {
        api::MachineAction::Commission => "Commission",
        api::MachineAction::Abort => "Abort",
        api::MachineAction::Allocate => "Allocate",
        api::MachineAction::Deploy => "Deploy",
        api::MachineAction::Release => "Release",
        api::MachineAction::MarkBroken => "Mark broken",
        api::MachineAction::MarkFixed => "Mark fixed",
        api::MachineAction::Rescue => "Rescue mode",
        api::MachineAction::ExitRescue => "Exit rescue mode",
        api::MachineAction::Delete => "Delete",
    }
}
