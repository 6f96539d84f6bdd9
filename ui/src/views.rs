//! View models: what each template renders, built from the API's types. Pure: the region's `web`
//! module fetches (with the caller's access) and passes everything in, times included.

use std::collections::BTreeMap;

use region_api_types as api;
use serde::Serialize;

use crate::format;

/// The header every page has.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub username: String,
    pub is_admin: bool,
    /// The session's CSRF token: a hidden field of every form, a header of every htmx request.
    pub csrf: String,
    /// The nav entry to mark current (`machines`, `images`, ...).
    pub active: String,
}

/// A page: its header, title, optional flash message, and its own data.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T: Serialize> {
    pub header: Option<Header>,
    pub title: String,
    /// A sentence saying what the last action did.
    pub notice: Option<String>,
    /// The Server-Sent Events URL this page listens on, if it is live.
    pub stream: Option<String>,
    /// `?v=` of the static files ([`crate::assets::version`]).
    pub asset_version: String,
    pub view: T,
}

/// Errors of a form, by the name of the control that caused them (`form` for the form as a whole).
pub type FieldErrors = BTreeMap<String, String>;

/// A CSS class for a status: `ok`, `busy`, `failed`, `idle`.
pub fn status_class(s: api::MachineStatus) -> &'static str {
    let n = s.as_str();
    if n.starts_with("failed") || n == "broken" {
        "failed"
    } else if matches!(
        n,
        "commissioning"
            | "deploying"
            | "releasing"
            | "disk_erasing"
            | "testing"
            | "entering_rescue_mode"
            | "exiting_rescue_mode"
    ) {
        "busy"
    } else if matches!(n, "ready" | "deployed" | "allocated") {
        "ok"
    } else {
        "idle"
    }
}

fn power_class(p: api::PowerState) -> &'static str {
    match p {
        api::PowerState::On => "on",
        api::PowerState::Off => "off",
        api::PowerState::Error => "failed",
        api::PowerState::Unknown => "idle",
    }
}

// ---------------------------------------------------------------------------------------------
// Login

#[derive(Debug, Clone, Serialize, Default)]
pub struct Login {
    pub username: String,
    pub next: String,
    pub csrf: String,
    pub error: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Machine list

/// A column of the machine list.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub key: &'static str,
    pub label: &'static str,
    /// Link that sorts by this column (toggling direction when it is the current one).
    pub sort_link: Option<String>,
    /// `ascending`, `descending` or `none` (for `aria-sort`).
    pub sorted: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct MachineRow {
    pub system_id: String,
    pub hostname: String,
    pub link: String,
    pub status: String,
    pub status_class: &'static str,
    pub power: &'static str,
    pub power_class: &'static str,
    pub owner: String,
    pub arch: String,
    pub cores: i32,
    pub memory: String,
    pub storage: String,
    pub tags: Vec<String>,
    pub zone: String,
    pub pool: String,
    pub ip: String,
}

impl MachineRow {
    pub fn from_api(m: &api::Machine) -> MachineRow {
        MachineRow {
            link: format!("/machines/{}", m.system_id),
            system_id: m.system_id.clone(),
            hostname: m.hostname.clone(),
            status: m.status_label.clone(),
            status_class: status_class(m.status),
            power: m.power_state.as_str(),
            power_class: power_class(m.power_state),
            owner: m.owner.clone().unwrap_or_default(),
            arch: m.architecture.clone(),
            cores: m.cpu_count,
            memory: if m.memory_mib > 0 {
                format::mib(m.memory_mib)
            } else {
                String::new()
            },
            storage: if m.storage_bytes > 0 {
                format::bytes(m.storage_bytes)
            } else {
                String::new()
            },
            tags: m.tags.clone(),
            zone: m.zone.clone(),
            pool: m.pool.clone(),
            ip: m
                .interfaces
                .iter()
                .filter_map(|i| i.ip.clone())
                .next()
                .unwrap_or_default(),
        }
    }
}

/// A bulk action the list offers.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

impl Choice {
    pub fn new(value: impl Into<String>, label: impl Into<String>) -> Choice {
        Choice {
            value: value.into(),
            label: label.into(),
        }
    }
}

/// A quick filter link with a count (statuses, as MAAS groups them).
#[derive(Debug, Clone, Serialize)]
pub struct Facet {
    pub label: String,
    pub count: i64,
    pub link: String,
    pub current: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MachineList {
    pub q: String,
    pub sort: String,
    /// What is wrong with the search, next to the search box.
    pub error: Option<String>,
    pub columns: Vec<Column>,
    pub rows: Vec<MachineRow>,
    pub total: i64,
    pub first: i64,
    pub last: i64,
    pub page: i64,
    pub pages: i64,
    pub prev_link: Option<String>,
    pub next_link: Option<String>,
    /// This list's own URL (what a live refresh fetches).
    pub self_link: String,
    pub actions: Vec<Choice>,
    pub facets: Vec<Facet>,
}

/// The columns and their sort keys (`None`: not sortable).
const COLUMNS: [(&str, &str, Option<&str>); 12] = [
    ("hostname", "Hostname", Some("hostname")),
    ("status", "Status", Some("status")),
    ("power", "Power", Some("power")),
    ("owner", "Owner", None),
    ("arch", "Arch", Some("arch")),
    ("cores", "Cores", Some("cores")),
    ("memory", "Memory", Some("memory")),
    ("storage", "Storage", Some("storage")),
    ("tags", "Tags", None),
    ("zone", "Zone", Some("zone")),
    ("pool", "Pool", Some("pool")),
    ("ip", "IP", None),
];

/// Page size of the machine list (MAAS's too).
pub const PAGE_SIZE: i64 = 50;

/// What the list page shows: the search as typed, and what it found.
pub struct ListInputs<'a> {
    pub q: &'a str,
    /// `name` or `-name` ("" for the default order).
    pub sort: &'a str,
    pub error: Option<String>,
    pub machines: &'a [api::Machine],
    pub total: i64,
    /// Counts from 1.
    pub page: i64,
    pub facets: Vec<Facet>,
    pub is_admin: bool,
}

/// The bulk actions offered to admins or to users.
pub fn bulk_actions(is_admin: bool) -> Vec<Choice> {
    let mut actions = vec![
        Choice::new("commission", "Commission"),
        Choice::new("allocate", "Allocate"),
        Choice::new("deploy", "Deploy (defaults)"),
        Choice::new("release", "Release"),
        Choice::new("abort", "Abort"),
        Choice::new("power-on", "Power on"),
        Choice::new("power-off", "Power off"),
        Choice::new("mark-broken", "Mark broken"),
        Choice::new("mark-fixed", "Mark fixed"),
    ];
    if is_admin {
        actions.push(Choice::new("tag", "Add tag…"));
        actions.push(Choice::new("untag", "Remove tag…"));
        actions.push(Choice::new("delete", "Delete"));
    }
    actions
}

/// Builds the list page's view.
pub fn machine_list(i: ListInputs<'_>) -> MachineList {
    let ListInputs {
        q,
        sort,
        error,
        machines,
        total,
        page,
        facets,
        is_admin,
    } = i;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let (cur, desc) = match sort.strip_prefix('-') {
        Some(s) => (s, true),
        None => (sort, false),
    };
    let columns = COLUMNS
        .iter()
        .map(|(key, label, sk)| {
            let sorted = match sk {
                Some(s) if *s == cur && desc => "descending",
                Some(s) if *s == cur => "ascending",
                _ => "none",
            };
            Column {
                key,
                label,
                sort_link: sk.map(|s| {
                    let next = if s == cur && !desc {
                        format!("-{s}")
                    } else {
                        s.to_string()
                    };
                    format::link("/machines", &[("q", q), ("sort", &next)])
                }),
                sorted,
            }
        })
        .collect();
    let page_link = |p: i64| {
        let ps = p.to_string();
        format::link(
            "/machines",
            &[
                ("q", q),
                ("sort", sort),
                ("page", if p > 1 { &ps } else { "" }),
            ],
        )
    };
    let first = if total == 0 {
        0
    } else {
        (page - 1) * PAGE_SIZE + 1
    };
    let actions = bulk_actions(is_admin);
    MachineList {
        q: q.to_string(),
        sort: sort.to_string(),
        error,
        columns,
        rows: machines.iter().map(MachineRow::from_api).collect(),
        total,
        first,
        last: first + machines.len() as i64 - i64::from(total > 0),
        page,
        pages,
        prev_link: (page > 1).then(|| page_link(page - 1)),
        next_link: (page < pages).then(|| page_link(page + 1)),
        self_link: page_link(page),
        actions,
        facets,
    }
}

/// What a bulk action did to one machine.
#[derive(Debug, Clone, Serialize)]
pub struct BulkResult {
    pub system_id: String,
    pub hostname: String,
    pub link: String,
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bulk {
    pub action: String,
    pub results: Vec<BulkResult>,
    pub ok: usize,
    pub failed: usize,
    pub back: String,
}

// ---------------------------------------------------------------------------------------------
// Machine detail

#[derive(Debug, Clone, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

fn kv(k: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: v.into(),
    }
}

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
        power_types: power_form(m, i.schemas, i.secrets_set, &i.errors),
        power_type: m.power_type.clone(),
        errors: i.errors,
        self_link: format!("/machines/{}", m.system_id),
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

// ---------------------------------------------------------------------------------------------
// The other pages

#[derive(Debug, Clone, Serialize)]
pub struct ImageRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub arch: String,
    pub files: Vec<KeyValue>,
    pub size: String,
    pub created: String,
    /// Per rack: `synced`, `n of m files`, or `not yet`.
    pub racks: Vec<KeyValue>,
}

pub fn image_row(r: &api::BootResource, racks: &[(String, Vec<String>)]) -> ImageRow {
    let total: i64 = r.files.iter().map(|f| f.size).sum();
    ImageRow {
        id: r.id.clone(),
        name: format!("{}/{}", r.os, r.release),
        kind: r.kind.clone(),
        arch: r.arch.clone(),
        files: r
            .files
            .iter()
            .map(|f| kv(&f.filename, format::bytes(f.size)))
            .collect(),
        size: format::bytes(total),
        created: format::short_time(&r.created_at),
        racks: racks
            .iter()
            .map(|(name, have)| {
                let n = r.files.iter().filter(|f| have.contains(&f.sha256)).count();
                let state = if r.files.is_empty() {
                    "no files".to_string()
                } else if n == r.files.len() {
                    "synced".to_string()
                } else if n == 0 {
                    "not yet".to_string()
                } else {
                    format!("{n} of {} files", r.files.len())
                };
                kv(name, state)
            })
            .collect(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SubnetRow {
    pub id: String,
    pub name: String,
    pub cidr: String,
    pub gateway: String,
    pub dns: String,
    pub domain: String,
    pub managed: bool,
    pub dynamic: Vec<String>,
    pub reserved: Vec<String>,
    pub routes: Vec<String>,
}

pub fn subnet_row(s: &api::Subnet) -> SubnetRow {
    let range = |r: &api::IpRange| match &r.comment {
        Some(c) if !c.is_empty() => format!("{} – {} ({c})", r.start, r.end),
        _ => format!("{} – {}", r.start, r.end),
    };
    SubnetRow {
        id: s.id.clone(),
        name: s.name.clone(),
        cidr: s.cidr.clone(),
        gateway: s.gateway.clone().unwrap_or_default(),
        dns: s.dns_servers.join(", "),
        domain: s.domain.clone().unwrap_or_default(),
        managed: s.managed,
        dynamic: s.dynamic_ranges.iter().map(range).collect(),
        reserved: s.reserved_ranges.iter().map(range).collect(),
        routes: s
            .static_routes
            .iter()
            .map(|r| format!("{} via {}", r.destination, r.gateway))
            .collect(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RackRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub status_class: &'static str,
    pub last_seen: String,
    pub version: String,
    pub interfaces: Vec<String>,
    /// Services and their health, in words.
    pub services: Vec<KeyValue>,
}

pub fn rack_row(r: &api::Rack) -> RackRow {
    let interfaces = r
        .interfaces
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    let name = i.get("name").and_then(|v| v.as_str()).unwrap_or("?");
                    let addrs: Vec<String> = i
                        .get("addresses")
                        .or_else(|| i.get("cidrs"))
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    if addrs.is_empty() {
                        name.to_string()
                    } else {
                        format!("{name} {}", addrs.join(", "))
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let online = r.status == "online";
    let mut services = vec![
        kv(
            "DHCP / TFTP / HTTP boot",
            if online { "serving" } else { "no contact" },
        ),
        kv("Power", if online { "driving jobs" } else { "no contact" }),
    ];
    match &r.iscsi {
        Some(i) => services.push(kv(
            "iSCSI volumes",
            match &i.error {
                Some(e) => format!("failing: {e}"),
                None => format!(
                    "ready ({}, {} free)",
                    i.portal,
                    format::bytes(i64::try_from(i.store_free_bytes).unwrap_or(i64::MAX))
                ),
            },
        )),
        None => services.push(kv("iSCSI volumes", "no volume store")),
    }
    RackRow {
        id: r.id.clone(),
        name: r.name.clone(),
        status_class: if online { "ok" } else { "failed" },
        status: r.status.clone(),
        last_seen: r
            .last_seen
            .as_deref()
            .map(format::short_time)
            .unwrap_or_else(|| "never".into()),
        version: r.version.clone().unwrap_or_default(),
        interfaces,
        services,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub at: String,
    pub level: String,
    pub event_type: String,
    pub description: String,
    pub username: String,
    pub machine: String,
    pub machine_link: String,
}

pub fn event_row(e: &api::Event, hostname: Option<&str>) -> EventRow {
    EventRow {
        id: e.id,
        at: format::short_time(&e.created_at),
        level: e.level.as_str().to_string(),
        event_type: e.event_type.clone(),
        description: e.description.clone(),
        username: e.username.clone().unwrap_or_default(),
        machine: hostname
            .map(str::to_string)
            .or_else(|| e.system_id.clone())
            .unwrap_or_default(),
        machine_link: e
            .system_id
            .as_ref()
            .map(|s| format!("/machines/{s}"))
            .unwrap_or_default(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Images {
    pub images: Vec<ImageRow>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Subnets {
    pub subnets: Vec<SubnetRow>,
    pub values: BTreeMap<String, String>,
    pub errors: FieldErrors,
}

#[derive(Debug, Clone, Serialize)]
pub struct Racks {
    pub racks: Vec<RackRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    pub username: String,
    pub is_admin: bool,
    pub created: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub username: String,
    pub prefix: String,
    pub created: String,
    pub last_used: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Users {
    pub users: Vec<UserRow>,
    pub tokens: Vec<TokenRow>,
    /// A token just created: shown once.
    pub new_token: Option<String>,
    pub values: BTreeMap<String, String>,
    pub errors: FieldErrors,
}

pub fn user_row(u: &api::User) -> UserRow {
    UserRow {
        username: u.username.clone(),
        is_admin: u.is_admin,
        created: format::short_time(&u.created_at),
    }
}

pub fn token_row(t: &api::Token) -> TokenRow {
    TokenRow {
        id: t.id.clone(),
        name: t.name.clone(),
        username: t.username.clone(),
        prefix: t.prefix.clone(),
        created: format::short_time(&t.created_at),
        last_used: t
            .last_used_at
            .as_deref()
            .map(format::short_time)
            .unwrap_or_else(|| "never".into()),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyRow {
    pub id: String,
    pub key_type: String,
    pub comment: String,
    pub fingerprint: String,
    pub created: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Keys {
    pub keys: Vec<KeyRow>,
    pub values: BTreeMap<String, String>,
    pub errors: FieldErrors,
}

pub fn key_row(k: &api::SshKey) -> KeyRow {
    KeyRow {
        id: k.id.clone(),
        key_type: k.key_type.clone(),
        comment: k.comment.clone(),
        fingerprint: k.fingerprint.clone(),
        created: format::short_time(&k.created_at),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub help: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingGroup {
    pub id: String,
    pub title: String,
    pub settings: Vec<Setting>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub config_path: String,
    pub groups: Vec<SettingGroup>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Events {
    pub levels: Vec<Choice>,
    pub level: String,
    pub events: Vec<EventRow>,
    pub older_link: Option<String>,
    pub self_link: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorPage {
    pub message: String,
    pub back: String,
}
