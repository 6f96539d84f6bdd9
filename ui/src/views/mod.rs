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

pub(crate) fn power_class(p: api::PowerState) -> &'static str {
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

#[derive(Debug, Clone, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

pub(crate) fn kv(k: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: v.into(),
    }
}

mod machine;
mod pages;

pub use machine::*;
pub use pages::*;
