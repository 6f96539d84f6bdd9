//! The JSON types of Kiln's REST API (`/api/v1`).
#![cfg_attr(test, allow(clippy::unwrap_used))]
//!
//! This crate is the API boundary: the region serves these types, the `kiln` CLI reads them, and racks
//! and the UI will too. It depends on serde and utoipa only (no actix, no diesel), so every consumer can
//! use it without pulling in the server.
//!
//! Field names are part of the interface contract that automation relies on: add fields, never rename
//! or remove one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod deploy;
mod dns;
mod pods;
mod power;
pub mod power_params;
mod racks;
mod users;
mod volumes;
pub use deploy::*;
pub use dns::*;
pub use pods::*;
pub use power::*;
pub use racks::*;
pub use users::*;
pub use volumes::*;

/// Lifecycle status of a machine (MAAS's node statuses, in snake_case).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MachineStatus {
    New,
    Commissioning,
    FailedCommissioning,
    Missing,
    Ready,
    Reserved,
    Deployed,
    Retired,
    Broken,
    Deploying,
    Allocated,
    FailedDeployment,
    Releasing,
    FailedReleasing,
    DiskErasing,
    FailedDiskErasing,
    RescueMode,
    EnteringRescueMode,
    FailedEnteringRescueMode,
    ExitingRescueMode,
    FailedExitingRescueMode,
    Testing,
    FailedTesting,
}

impl MachineStatus {
    /// Every status, in MAAS's numeric order.
    pub const ALL: [MachineStatus; 23] = [
        Self::New,
        Self::Commissioning,
        Self::FailedCommissioning,
        Self::Missing,
        Self::Ready,
        Self::Reserved,
        Self::Deployed,
        Self::Retired,
        Self::Broken,
        Self::Deploying,
        Self::Allocated,
        Self::FailedDeployment,
        Self::Releasing,
        Self::FailedReleasing,
        Self::DiskErasing,
        Self::FailedDiskErasing,
        Self::RescueMode,
        Self::EnteringRescueMode,
        Self::FailedEnteringRescueMode,
        Self::ExitingRescueMode,
        Self::FailedExitingRescueMode,
        Self::Testing,
        Self::FailedTesting,
    ];

    /// The snake_case name used in JSON, the database and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Commissioning => "commissioning",
            Self::FailedCommissioning => "failed_commissioning",
            Self::Missing => "missing",
            Self::Ready => "ready",
            Self::Reserved => "reserved",
            Self::Deployed => "deployed",
            Self::Retired => "retired",
            Self::Broken => "broken",
            Self::Deploying => "deploying",
            Self::Allocated => "allocated",
            Self::FailedDeployment => "failed_deployment",
            Self::Releasing => "releasing",
            Self::FailedReleasing => "failed_releasing",
            Self::DiskErasing => "disk_erasing",
            Self::FailedDiskErasing => "failed_disk_erasing",
            Self::RescueMode => "rescue_mode",
            Self::EnteringRescueMode => "entering_rescue_mode",
            Self::FailedEnteringRescueMode => "failed_entering_rescue_mode",
            Self::ExitingRescueMode => "exiting_rescue_mode",
            Self::FailedExitingRescueMode => "failed_exiting_rescue_mode",
            Self::Testing => "testing",
            Self::FailedTesting => "failed_testing",
        }
    }

    /// The label an operator reads ("Failed commissioning").
    pub fn label(self) -> &'static str {
        match self {
            Self::New => "New",
            Self::Commissioning => "Commissioning",
            Self::FailedCommissioning => "Failed commissioning",
            Self::Missing => "Missing",
            Self::Ready => "Ready",
            Self::Reserved => "Reserved",
            Self::Deployed => "Deployed",
            Self::Retired => "Retired",
            Self::Broken => "Broken",
            Self::Deploying => "Deploying",
            Self::Allocated => "Allocated",
            Self::FailedDeployment => "Failed deployment",
            Self::Releasing => "Releasing",
            Self::FailedReleasing => "Failed releasing",
            Self::DiskErasing => "Disk erasing",
            Self::FailedDiskErasing => "Failed disk erasing",
            Self::RescueMode => "Rescue mode",
            Self::EnteringRescueMode => "Entering rescue mode",
            Self::FailedEnteringRescueMode => "Failed to enter rescue mode",
            Self::ExitingRescueMode => "Exiting rescue mode",
            Self::FailedExitingRescueMode => "Failed to exit rescue mode",
            Self::Testing => "Testing",
            Self::FailedTesting => "Failed testing",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for MachineStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user-facing machine action, `POST /api/v1/machines/{system_id}/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MachineAction {
    Commission,
    Abort,
    Allocate,
    Deploy,
    Release,
    MarkBroken,
    MarkFixed,
    Rescue,
    ExitRescue,
    Delete,
}

impl MachineAction {
    pub const ALL: [MachineAction; 10] = [
        Self::Commission,
        Self::Abort,
        Self::Allocate,
        Self::Deploy,
        Self::Release,
        Self::MarkBroken,
        Self::MarkFixed,
        Self::Rescue,
        Self::ExitRescue,
        Self::Delete,
    ];

    /// The name used in the URL and on the command line (`mark-broken`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Commission => "commission",
            Self::Abort => "abort",
            Self::Allocate => "allocate",
            Self::Deploy => "deploy",
            Self::Release => "release",
            Self::MarkBroken => "mark-broken",
            Self::MarkFixed => "mark-fixed",
            Self::Rescue => "rescue",
            Self::ExitRescue => "exit-rescue",
            Self::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for MachineAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A network interface of a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Interface {
    /// Interface name as the machine sees it (`eth0`, `enp1s0`).
    pub name: String,
    /// MAC address, lower case, colon separated.
    pub mac: String,
    /// Id of the subnet the interface is linked to, if known.
    pub subnet_id: Option<String>,
    /// IPv4 address, if one is assigned.
    pub ip: Option<String>,
}

/// A machine, as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Machine {
    /// Short unique id (6 characters, like MAAS).
    pub system_id: String,
    pub hostname: String,
    pub status: MachineStatus,
    /// Human label of `status`.
    pub status_label: String,
    /// Status before the current one (used by abort and mark-fixed).
    pub previous_status: Option<MachineStatus>,
    /// Time (RFC 3339, UTC) at which the current in-progress status fails if not completed.
    pub status_deadline: Option<String>,
    /// `amd64/generic`, `arm64/generic`, ...
    pub architecture: String,
    /// MAC address the machine PXE boots from.
    pub boot_mac: Option<String>,
    pub power_type: String,
    /// Non-secret power parameters. Secret ones (passwords, tokens) are write-only and never returned.
    pub power_parameters: serde_json::Map<String, serde_json::Value>,
    /// Last power state Kiln saw (`unknown` until first queried; always `unknown` for `manual`).
    #[serde(default)]
    pub power_state: PowerState,
    /// When `power_state` was last read from the BMC (RFC 3339, UTC).
    #[serde(default)]
    pub power_state_checked_at: Option<String>,
    /// When true, commissioning leaves the machine's BMC alone (no Kiln user is created on it).
    #[serde(default)]
    pub skip_bmc_config: bool,
    /// Username of the owner, if allocated.
    pub owner: Option<String>,
    pub zone: String,
    pub pool: String,
    pub tags: Vec<String>,
    pub description: String,
    /// The DNS domain the machine is named in (`None`: the default domain).
    #[serde(default)]
    pub domain: Option<String>,
    pub cpu_count: i32,
    pub memory_mib: i64,
    pub storage_bytes: i64,
    pub interfaces: Vec<Interface>,
    /// What commissioning found (absent until a machine has been commissioned).
    pub hardware: Option<Hardware>,
    /// The machine's current (or last) deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
    /// The root volume of its current (or last) iSCSI deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_volume: Option<BootVolume>,
    /// The pod this machine was composed on (absent for bare metal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<MachinePod>,
    pub created_at: String,
    pub updated_at: String,
}

/// A machine's hardware as its last commissioning found it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Hardware {
    pub cpu_count: i32,
    pub cpu_model: String,
    pub memory_mib: i64,
    /// `bios` or `uefi`: how the commissioning environment was booted.
    pub firmware: String,
    pub system_vendor: String,
    pub system_product: String,
    pub system_serial: String,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    /// Whether the machine has a BMC its operating system can reach (`/dev/ipmi0`).
    pub bmc_present: bool,
    /// When it was found (RFC 3339).
    pub commissioned_at: String,
}

/// A block device found by commissioning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Disk {
    /// Kernel name (`vda`, `sda`, `nvme0n1`).
    pub name: String,
    pub size_bytes: i64,
    pub model: String,
    pub serial: String,
    pub rotational: bool,
    /// Transport when known (`sata`, `nvme`, `virtio`, ...).
    pub transport: String,
}

/// A network interface found by commissioning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Nic {
    pub name: String,
    pub mac: String,
    /// Negotiated link speed in Mbit/s, when the driver reports one.
    pub speed_mbps: Option<i64>,
    /// Whether the link was up.
    pub link: bool,
    pub driver: String,
}

/// One commissioning script's run on one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScriptResult {
    pub name: String,
    /// Which boot of the machine ran it.
    pub boot_id: String,
    /// `running`, `passed`, `failed`, `timedout`.
    pub status: String,
    pub exit_code: Option<i32>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// stdout and stderr, as the machine sent them (omitted from list views).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A commissioning script: Kiln's built-ins (read-only, `builtin: true`) and the operator's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Script {
    /// Letters, digits, `.`, `-`, `_`; scripts run in name order, built-ins first.
    pub name: String,
    pub description: String,
    pub timeout_secs: i32,
    pub builtin: bool,
    /// The script (a `#!` line picks the interpreter; default bash).
    pub content: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// Body of `POST /api/v1/scripts` and `PUT /api/v1/scripts/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptWrite {
    /// Required on create; must match the path on update when given. Names starting with
    /// `kiln-` are Kiln's own.
    #[serde(default)]
    #[schema(
        pattern = r"^(?!kiln-)[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$",
        example = "burn-in"
    )]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 1024, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f]*$")]
    pub description: Option<String>,
    /// Seconds before the runner kills it (default 600, at most 86400).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub timeout_secs: Option<i32>,
    /// The script (at most 1 MiB, not only white space).
    #[schema(
        min_length = 1,
        max_length = 1048576,
        pattern = r"\S",
        example = "#!/bin/sh\necho ok\n"
    )]
    pub content: String,
}

/// A script as the commissioning runner receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunnerScript {
    pub name: String,
    pub timeout_secs: i32,
    pub content: String,
}

/// An event a machine reports about itself (`POST /metadata/v1/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineReport {
    pub event_type: String,
    pub description: String,
    /// `info` (default), `warning`, `error`.
    #[serde(default)]
    pub level: Option<String>,
}

/// What the region decided when a machine finished commissioning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CommissioningOutcome {
    pub status: MachineStatus,
    pub message: String,
}

/// An interface given when creating a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InterfaceCreate {
    pub name: String,
    pub mac: String,
}

/// Body of `POST /api/v1/machines`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineCreate {
    /// Hostname (RFC 1123 label). Generated when absent.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Defaults to `amd64/generic`.
    #[serde(default)]
    pub architecture: Option<String>,
    /// MAC the machine PXE boots from. Becomes interface `eth0` when `interfaces` is empty.
    #[serde(default)]
    pub boot_mac: Option<String>,
    /// Defaults to `manual`.
    #[serde(default)]
    pub power_type: Option<String>,
    #[serde(default)]
    pub power_parameters: Option<serde_json::Map<String, serde_json::Value>>,
    /// Leave the BMC alone during commissioning (no Kiln user is created on it).
    #[serde(default)]
    pub skip_bmc_config: Option<bool>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// The DNS domain to name the machine in (one of `/api/v1/dns/domains`; default: the default).
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub interfaces: Option<Vec<InterfaceCreate>>,
    #[serde(default)]
    pub cpu_count: Option<i32>,
    #[serde(default)]
    pub memory_mib: Option<i64>,
    #[serde(default)]
    pub storage_bytes: Option<i64>,
}

/// Body of `PATCH /api/v1/machines/{system_id}`: only the fields given change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachinePatch {
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub boot_mac: Option<String>,
    #[serde(default)]
    pub power_type: Option<String>,
    #[serde(default)]
    pub power_parameters: Option<serde_json::Map<String, serde_json::Value>>,
    /// Leave the BMC alone during commissioning (no Kiln user is created on it).
    #[serde(default)]
    pub skip_bmc_config: Option<bool>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// The DNS domain to name the machine in (one of `/api/v1/dns/domains`); `""` for the default.
    #[serde(default)]
    pub domain: Option<String>,
}

/// Body of `PUT /api/v1/machines/{system_id}/interfaces/{mac}`: a static address for the interface
/// (a DHCP reservation on its subnet), or `null` to remove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InterfaceUpdate {
    pub ip: Option<String>,
}

/// Optional body of `POST /api/v1/machines/{system_id}/{action}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// Free text recorded in the machine's event and the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// How many items match the filters in all.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// Severity of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventLevel {
    Debug,
    Info,
    Warning,
    Error,
    Audit,
}

impl EventLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Audit => "audit",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Debug,
            Self::Info,
            Self::Warning,
            Self::Error,
            Self::Audit,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// Something that happened, usually to one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: i64,
    pub system_id: Option<String>,
    pub created_at: String,
    pub level: EventLevel,
    /// Stable machine-readable type (`status_changed`, `action`, `deadline_expired`, ...).
    pub event_type: String,
    pub description: String,
    /// Who caused it, when a person did.
    pub username: Option<String>,
}

/// An address range inside a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRange {
    pub start: String,
    pub end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A classless static route (DHCP option 121) handed to machines on a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticRoute {
    /// Destination network in CIDR form.
    pub destination: String,
    pub gateway: String,
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub cidr: String,
    pub gateway: Option<String>,
    pub dns_servers: Vec<String>,
    pub domain: Option<String>,
    pub dynamic_ranges: Vec<IpRange>,
    pub reserved_ranges: Vec<IpRange>,
    pub static_routes: Vec<StaticRoute>,
    /// Whether Kiln serves DHCP on it.
    pub managed: bool,
    /// NTP servers handed out by DHCP (option 42).
    pub ntp_servers: Vec<String>,
    /// DHCP lease time on this subnet, seconds (default: the rack's, 600).
    pub lease_time_secs: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
}

/// Body of `POST /api/v1/subnets`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetCreate {
    /// An IPv4 network, host bits zero.
    #[schema(
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/([0-9]|[12][0-9]|3[0-2])$",
        example = "10.20.0.0/24"
    )]
    pub cidr: String,
    /// Defaults to the CIDR.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._/-]{1,64}$")]
    pub name: Option<String>,
    /// A host address inside the subnet.
    #[serde(default)]
    #[schema(
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
        example = "10.20.0.1"
    )]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns_servers: Option<Vec<String>>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub dynamic_ranges: Option<Vec<IpRange>>,
    #[serde(default)]
    pub reserved_ranges: Option<Vec<IpRange>>,
    #[serde(default)]
    pub static_routes: Option<Vec<StaticRoute>>,
    /// Defaults to true (MAAS's default).
    #[serde(default)]
    pub managed: Option<bool>,
    #[serde(default)]
    pub ntp_servers: Option<Vec<String>>,
    /// 60 to 604800 seconds.
    #[serde(default)]
    #[schema(minimum = 60, maximum = 604800)]
    pub lease_time_secs: Option<u32>,
}

/// Body of `PATCH /api/v1/subnets/{id}`: the fields given replace the stored ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns_servers: Option<Vec<String>>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub dynamic_ranges: Option<Vec<IpRange>>,
    #[serde(default)]
    pub reserved_ranges: Option<Vec<IpRange>>,
    #[serde(default)]
    pub static_routes: Option<Vec<StaticRoute>>,
    #[serde(default)]
    pub managed: Option<bool>,
    #[serde(default)]
    pub ntp_servers: Option<Vec<String>>,
    /// 60 to 604800 seconds.
    #[serde(default)]
    pub lease_time_secs: Option<u32>,
}

/// A file of a boot resource, stored by sha256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BootResourceFile {
    pub filename: String,
    pub sha256: String,
    pub size: i64,
    pub created_at: String,
}

/// A boot resource: an OS release for one architecture, made of files (kernel, initrd, squashfs...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BootResource {
    pub id: String,
    pub os: String,
    pub release: String,
    pub arch: String,
    /// What it is for: `ephemeral` (commissioning), `deploy`, `bootloader`, ...
    pub kind: String,
    pub files: Vec<BootResourceFile>,
    pub created_at: String,
}

/// Body of `POST /api/v1/boot-resources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BootResourceCreate {
    #[schema(pattern = r"^[A-Za-z0-9._/-]{1,64}$", example = "debian")]
    pub os: String,
    #[schema(pattern = r"^[A-Za-z0-9._/-]{1,64}$", example = "bookworm")]
    pub release: String,
    #[schema(
        pattern = r"^(amd64|arm64|i386|ppc64el|s390x)(/generic)?$",
        example = "amd64"
    )]
    pub arch: String,
    /// `ephemeral` (the default), `os`, `bootloader`, ...
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._/-]{1,64}$", example = "ephemeral")]
    pub kind: Option<String>,
}

/// A setting operators change at run time (`GET /api/v1/settings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Setting {
    /// `lifecycle.node_timeout_secs`, `lifecycle.release_timeout_secs`,
    /// `lifecycle.enlist_commission`, `power.poll_secs`, `power.job_timeout_secs`.
    pub name: String,
    /// The value in effect.
    pub value: String,
    /// The configuration file's value (what a reset goes back to).
    pub file_value: String,
    /// Whether an operator changed it.
    pub changed: bool,
    pub help: String,
}

/// Body of `PUT /api/v1/settings/{name}`: the new value, or `null` for the file's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingUpdate {
    pub value: Option<String>,
}

/// Who the caller is (`GET /api/v1/whoami`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub username: String,
    /// Whether these credentials act as an administrator (the user is one and the token's scope is
    /// `admin`).
    pub is_admin: bool,
    /// What these credentials may do.
    pub scope: TokenScope,
}

/// Every error body: `{ "error": "<stable_code>", "message": "<what to do>", "field": ... }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code (`invalid_transition`, `validation_failed`, `not_found`, ...).
    pub error: String,
    /// A sentence a person can act on.
    pub message: String,
    /// The input field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip_through_serde_and_parse() {
        for st in MachineStatus::ALL {
            let json = serde_json::to_string(&st).unwrap();
            assert_eq!(json, format!("\"{}\"", st.as_str()));
            assert_eq!(MachineStatus::parse(st.as_str()), Some(st));
        }
    }

    #[test]
    fn action_names_round_trip() {
        for a in MachineAction::ALL {
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.as_str()));
            assert_eq!(MachineAction::parse(a.as_str()), Some(a));
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<MachineCreate>(r#"{"hostnme":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `hostnme`"), "{err}");
    }
}
