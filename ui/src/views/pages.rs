//! The views of the other pages: images, subnets, racks, users and tokens, SSH keys, settings,
//! events, errors.

use std::collections::BTreeMap;

use region_api_types as api;
use serde::Serialize;

use super::{kv, Choice, FieldErrors, KeyValue};
use crate::format;

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
    /// Relay agents allowed, comma separated (empty: any).
    pub relays: String,
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
        relays: s.relay_addresses.join(", "),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RackRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub status_class: &'static str,
    /// `pending`, `approved` or `revoked`.
    pub approval: String,
    /// The networks whose BMCs it drives.
    pub power_networks: String,
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
    // A pending or revoked rack is heard from but serves nothing.
    let heard = r.status == "online";
    let online = heard && r.approval == "approved";
    let mut services = vec![
        kv(
            "DHCP / TFTP / HTTP boot",
            if online {
                "serving"
            } else if heard {
                "waiting for approval"
            } else {
                "no contact"
            },
        ),
        kv(
            "Power",
            if r.power_networks.is_empty() {
                "no BMC network named".to_string()
            } else if online {
                format!("driving the BMCs of {}", r.power_networks.join(", "))
            } else if heard {
                "none until approved".to_string()
            } else {
                "no contact".to_string()
            },
        ),
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
        approval: r.approval.clone(),
        power_networks: r.power_networks.join(", "),
        status_class: if heard { "ok" } else { "failed" },
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

/// The DNS page: Kiln's domains and operators' records, with the two forms.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Dns {
    pub domains: Vec<api::DnsDomain>,
    pub records: Vec<api::DnsRecord>,
    /// The record types the form offers.
    pub types: Vec<&'static str>,
    /// Which form the values and errors are for: `domain` or `record`.
    pub form: String,
    pub values: BTreeMap<String, String>,
    pub errors: FieldErrors,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Racks {
    pub racks: Vec<RackRow>,
    /// An enrolment token just made: shown once.
    pub new_token: Option<String>,
    pub values: BTreeMap<String, String>,
    pub errors: FieldErrors,
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
    pub scope: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
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
        scope: t.scope.as_str().to_string(),
        created: format::short_time(&t.created_at),
        last_used: t
            .last_used_at
            .as_deref()
            .map(format::short_time)
            .unwrap_or_else(|| "never".into()),
        expires: t
            .expires_at
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

#[derive(Debug, Clone, Serialize, Default)]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub help: String,
    /// Changeable here (else set in the configuration file).
    pub editable: bool,
    /// A true/false setting (a select rather than a number).
    pub is_bool: bool,
    /// The configuration file's value, and whether an operator changed it.
    pub file_value: String,
    pub changed: bool,
    pub error: Option<String>,
}

impl Setting {
    /// A setting of the configuration file only.
    pub fn fixed(name: &str, value: impl ToString, help: &str) -> Setting {
        Setting {
            name: name.to_string(),
            value: value.to_string(),
            help: help.to_string(),
            ..Default::default()
        }
    }

    /// A setting operators change here.
    pub fn from_api(s: &api::Setting, typed: Option<&str>, error: Option<String>) -> Setting {
        Setting {
            name: s.name.clone(),
            value: typed.map(str::to_string).unwrap_or_else(|| s.value.clone()),
            help: s.help.clone(),
            editable: true,
            is_bool: s.value == "true" || s.value == "false",
            file_value: s.file_value.clone(),
            changed: s.changed,
            error,
        }
    }
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
    /// A refusal about no one field.
    pub error: Option<String>,
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

/// A pod as the pages show it: the API's pod and its storage in words.
#[derive(Debug, Clone, Serialize)]
pub struct PodView {
    pub pod: api::Pod,
    /// Free / total of the active pools, e.g. `12.5 GiB` / `250 GiB`.
    pub storage_free: String,
    pub storage_total: String,
    pub storage_committed_bytes: i64,
    pub storage_capacity_bytes: i64,
    pub pools: Vec<PoolRow>,
    pub vms: Vec<VmRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolRow {
    pub name: String,
    pub pool_type: String,
    pub path: String,
    pub active: bool,
    pub default: bool,
    pub capacity: String,
    pub committed: String,
    pub free: String,
    pub capacity_bytes: i64,
    pub committed_bytes: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VmRow {
    pub name: String,
    pub cores: i64,
    pub memory_mib: i64,
    pub disk: String,
    pub running: bool,
    pub system_id: Option<String>,
}

pub fn pod_view(p: &api::Pod) -> PodView {
    let active: Vec<&api::PodStoragePool> = p.storage_pools.iter().filter(|s| s.active).collect();
    PodView {
        storage_free: format::bytes(active.iter().map(|s| s.free_bytes).sum()),
        storage_total: format::bytes(active.iter().map(|s| s.capacity_bytes).sum()),
        storage_committed_bytes: active.iter().map(|s| s.committed_bytes).sum(),
        storage_capacity_bytes: active.iter().map(|s| s.capacity_bytes).sum(),
        pools: p
            .storage_pools
            .iter()
            .map(|s| PoolRow {
                name: s.name.clone(),
                pool_type: s.pool_type.clone(),
                path: s.path.clone().unwrap_or_default(),
                active: s.active,
                default: s.default,
                capacity: format::bytes(s.capacity_bytes),
                committed: format::bytes(s.committed_bytes),
                free: format::bytes(s.free_bytes),
                capacity_bytes: s.capacity_bytes,
                committed_bytes: s.committed_bytes.min(s.capacity_bytes),
            })
            .collect(),
        vms: p
            .vms
            .iter()
            .map(|v| VmRow {
                name: v.name.clone(),
                cores: v.cores,
                memory_mib: v.memory_mib,
                disk: format::bytes(v.disk_bytes),
                running: v.running,
                system_id: v.system_id.clone(),
            })
            .collect(),
        pod: p.clone(),
    }
}

/// The KVM pods page: every pod with its capacity, and the form that adds one.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Pods {
    pub pods: Vec<PodView>,
    pub values: BTreeMap<String, String>,
    pub errors: FieldErrors,
}

/// One pod: capacity bars, storage pools, networks, VMs, its machines, and the compose form.
#[derive(Debug, Clone, Serialize)]
pub struct PodPage {
    pub p: PodView,
    pub values: BTreeMap<String, String>,
    pub errors: FieldErrors,
}
