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

mod dns;
mod pods;
mod volumes;
pub use dns::*;
pub use pods::*;
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
    /// Required on create; must match the path on update when given.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Seconds before the runner kills it (default 600, at most 86400).
    #[serde(default)]
    pub timeout_secs: Option<i32>,
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

/// A rack asks what a machine that is PXE booting should boot (`POST /api/v1/rack/boot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RackBootRequest {
    pub mac: String,
    /// Architecture the firmware reported (`amd64/generic` when unknown).
    #[serde(default)]
    pub architecture: Option<String>,
}

/// The region's answer: the machine (enlisted if it was unknown) and, when it should boot the
/// ephemeral environment, this boot's credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RackBootAnswer {
    pub system_id: String,
    pub hostname: String,
    pub status: MachineStatus,
    pub architecture: String,
    /// Whether this request enlisted the machine.
    pub enlisted: bool,
    /// Per-machine, per-boot credential for the metadata API (only for ephemeral boots).
    pub token: Option<String>,
    /// The machine boots its disk (a deployment's installer finished).
    #[serde(default)]
    pub local_boot: bool,
    #[serde(default)]
    pub esp_uuid: Option<String>,
    /// A memory deployment: the OS image's root filesystem to boot (with Kiln's kernel and initramfs).
    #[serde(default)]
    pub memory_root: Option<SnapshotFile>,
    /// Root on iSCSI: the rack serving its volume answers from its volume list (no credential).
    #[serde(default)]
    pub iscsi: bool,
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
    pub cidr: String,
    /// Defaults to the CIDR.
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
    /// Defaults to true (MAAS's default).
    #[serde(default)]
    pub managed: Option<bool>,
    #[serde(default)]
    pub ntp_servers: Option<Vec<String>>,
    /// 60 to 604800 seconds.
    #[serde(default)]
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
    pub os: String,
    pub release: String,
    pub arch: String,
    #[serde(default)]
    pub kind: Option<String>,
}

/// A rack controller known to the region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rack {
    pub id: String,
    pub name: String,
    /// `registered`, `online`, `offline`.
    pub status: String,
    pub last_seen: Option<String>,
    pub version: Option<String>,
    pub interfaces: serde_json::Value,
    pub created_at: String,
    /// What it can serve for root on iSCSI (absent: it has no volume store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iscsi: Option<RackIscsi>,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
    pub created_at: String,
}

/// Body of `POST /api/v1/users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
}

/// What a token may do, never more than its user: `read` (look at all its user may see, change
/// nothing: every write is 403), `operator` (what a non-admin user may do), `admin` (everything, for administrators).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    Read,
    Operator,
    Admin,
}

impl TokenScope {
    pub const ALL: [TokenScope; 3] = [TokenScope::Read, TokenScope::Operator, TokenScope::Admin];

    pub fn as_str(&self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Operator => "operator",
            TokenScope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<TokenScope> {
        TokenScope::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The most a user may have: `admin` for administrators, else `operator`.
    pub fn of_user(is_admin: bool) -> TokenScope {
        if is_admin {
            TokenScope::Admin
        } else {
            TokenScope::Operator
        }
    }
}

/// An API token (the secret itself is shown once, at creation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub username: String,
    /// First characters of the token, to tell tokens apart.
    pub prefix: String,
    /// What the token may do now (its scope, capped by what its user may do).
    pub scope: TokenScope,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// When the token stops working (RFC 3339); none: until revoked.
    pub expires_at: Option<String>,
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// A label: 1 to 128 characters.
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    /// What the token may do (default: all its user may). Never more than the credential that
    /// creates it: an operator-scoped token cannot make an admin one.
    #[serde(default)]
    pub scope: Option<TokenScope>,
    /// When the token stops working, RFC 3339 (`2027-01-31T00:00:00Z`), in the future; none: until
    /// revoked.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// Answer to `POST /api/v1/tokens`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub token: Token,
    /// The bearer token. Store it now: Kiln keeps only its hash.
    pub secret: String,
}

/// Body of `POST /api/v1/login` (the UI's cookie session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
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

/// A network interface of a rack controller, as it reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RackInterface {
    pub name: String,
    pub mac: String,
    /// Addresses in CIDR form (`10.20.0.2/24`).
    pub addresses: Vec<String>,
}

/// Body of `POST /api/v1/rack/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RackRegister {
    /// The rack's name (its hostname by default). Registering again under the same name
    /// re-issues that rack's credentials.
    pub name: String,
    /// The shared secret shown by `kiln admin rack-secret`.
    pub secret: String,
    pub interfaces: Vec<RackInterface>,
    #[serde(default)]
    pub version: Option<String>,
}

/// Answer to `POST /api/v1/rack/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RackRegistered {
    pub rack_id: String,
    /// Bearer token for the rack endpoints (`/api/v1/rack/...`).
    pub token: String,
}

/// Body of `POST /api/v1/rack/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RackHeartbeat {
    /// The sha256s of the image files in the rack's cache (the Images page's sync state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    pub interfaces: Vec<RackInterface>,
    #[serde(default)]
    pub version: Option<String>,
    /// Root on iSCSI: present when the rack has a volume store (`--iscsi-store`).
    #[serde(default)]
    pub iscsi: Option<RackIscsi>,
}

/// A machine as a rack needs it to answer boots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotMachine {
    pub system_id: String,
    pub hostname: String,
    pub status: MachineStatus,
    pub architecture: String,
    pub boot_mac: Option<String>,
    /// Every MAC of the machine, with a fixed IPv4 address where one is assigned.
    pub interfaces: Vec<Interface>,
    /// The OS is on the machine's disk (its deployment's installer finished): boot the disk.
    #[serde(default)]
    pub local_boot: bool,
    /// The UUID of the ESP the installer made (UEFI machines chain to it through grub-local.efi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub esp_uuid: Option<String>,
    /// Deployed (or deploying) in memory: each boot asks the region for a credential and the root.
    #[serde(default)]
    pub memory_boot: bool,
    /// Deployed (or deploying) with root on iSCSI: the rack that serves its volume boots it.
    #[serde(default)]
    pub iscsi_boot: bool,
    /// The DNS domain it is named in (`None`: the default domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// A boot-resource file a rack should cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotFile {
    pub resource_id: String,
    pub os: String,
    pub release: String,
    pub arch: String,
    pub kind: String,
    pub filename: String,
    pub sha256: String,
    pub size: i64,
}

/// Everything a rack serves from: sent by the region, kept on the rack's disk, so the rack answers
/// DHCP/TFTP/HTTP with the region away.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RackSnapshot {
    /// Changes whenever anything in the snapshot changes; the rack long-polls with it.
    pub etag: String,
    pub subnets: Vec<Subnet>,
    pub machines: Vec<SnapshotMachine>,
    pub files: Vec<SnapshotFile>,
    /// DHCP lease time, seconds.
    pub lease_time_secs: u32,
    /// DNS domains and operators' records (the machines' names come from `machines`).
    #[serde(default)]
    pub dns: SnapshotDns,
}

/// Something a rack saw (a DHCP lease, a PXE request, a file sent), reported to the region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RackEvent {
    /// MAC of the machine it concerns.
    pub mac: String,
    /// `dhcp_lease`, `pxe_request`, `tftp_sent`, `http_sent`, `ipxe_script`, `unknown_pxe`, ...
    pub event_type: String,
    pub description: String,
    /// When the rack saw it (RFC 3339).
    pub at: String,
    /// For `dhcp_lease`: the address leased.
    #[serde(default)]
    pub ip: Option<String>,
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

/// A machine's power state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    On,
    Off,
    /// Never queried, or the driver cannot tell (`manual`).
    #[default]
    Unknown,
    /// The last query failed; the machine's events say why.
    Error,
}

impl PowerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "on",
            PowerState::Off => "off",
            PowerState::Unknown => "unknown",
            PowerState::Error => "error",
        }
    }

    pub fn parse(s: &str) -> PowerState {
        match s {
            "on" => PowerState::On,
            "off" => PowerState::Off,
            "error" => PowerState::Error,
            _ => PowerState::Unknown,
        }
    }
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a power job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PowerAction {
    On,
    Off,
    /// Off then on; a machine that is off is simply powered on.
    Cycle,
    Query,
}

impl PowerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            PowerAction::Cycle => "cycle",
            PowerAction::Query => "query",
        }
    }

    pub fn parse(s: &str) -> Option<PowerAction> {
        Some(match s {
            "on" => PowerAction::On,
            "off" => PowerAction::Off,
            "cycle" => PowerAction::Cycle,
            "query" => PowerAction::Query,
            _ => return None,
        })
    }
}

impl std::fmt::Display for PowerAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The device a machine boots from next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BootDevice {
    Pxe,
    Disk,
}

impl BootDevice {
    pub fn as_str(self) -> &'static str {
        match self {
            BootDevice::Pxe => "pxe",
            BootDevice::Disk => "disk",
        }
    }

    pub fn parse(s: &str) -> Option<BootDevice> {
        match s {
            "pxe" => Some(BootDevice::Pxe),
            "disk" => Some(BootDevice::Disk),
            _ => None,
        }
    }
}

/// The kind of value a power parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PowerFieldKind {
    String,
    /// An integer (a JSON number or a string of digits).
    Int,
    /// One of `choices`.
    Choice,
    /// `true` or `false`.
    Bool,
}

/// One setting of a power driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PowerField {
    /// Parameter name (MAAS's names: `power_address`, `power_user`, ...).
    pub name: String,
    pub label: String,
    pub kind: PowerFieldKind,
    pub required: bool,
    /// Write-only: encrypted at rest, never returned by the API, never logged.
    pub secret: bool,
    /// Used when the parameter is absent.
    pub default: Option<String>,
    /// Allowed values for `choice` fields.
    pub choices: Vec<String>,
}

/// A power driver and the settings it takes (`GET /api/v1/power-types`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PowerTypeSchema {
    /// Value of a machine's `power_type`.
    pub name: String,
    pub description: String,
    /// Whether Kiln can act on its own (false for `manual`).
    pub controllable: bool,
    /// Whether the driver can choose the next boot device.
    pub sets_boot_device: bool,
    pub fields: Vec<PowerField>,
}

/// Body of `POST /api/v1/machines/{system_id}/power-on|power-off|power-cycle` (all optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerRequest {
    /// Set the next boot device before acting.
    #[serde(default)]
    pub boot_device: Option<BootDevice>,
    /// Seconds to wait for the rack to finish (default 60, at most 300; 0 returns at once with 202).
    #[serde(default)]
    pub wait_secs: Option<u32>,
}

/// State of a power job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PowerJobStatus {
    /// Waiting for a rack to take it.
    Pending,
    /// A rack is working on it.
    Running,
    Done,
    Failed,
}

impl PowerJobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerJobStatus::Pending => "pending",
            PowerJobStatus::Running => "running",
            PowerJobStatus::Done => "done",
            PowerJobStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> PowerJobStatus {
        match s {
            "running" => PowerJobStatus::Running,
            "done" => PowerJobStatus::Done,
            "failed" => PowerJobStatus::Failed,
            _ => PowerJobStatus::Pending,
        }
    }
}

/// A power action on a machine, as the API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PowerJob {
    pub id: String,
    pub system_id: String,
    pub action: PowerAction,
    pub boot_device: Option<BootDevice>,
    pub status: PowerJobStatus,
    /// Power state the rack found at the end (absent while pending or running).
    pub power_state: Option<PowerState>,
    /// The BMC's answer in words (or why the job failed).
    pub message: Option<String>,
    /// Rack that ran (or runs) the job.
    pub rack: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// Answer of the power endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PowerStatus {
    pub system_id: String,
    pub power_type: String,
    pub power_state: PowerState,
    pub checked_at: Option<String>,
    /// The job that answered (absent for `manual` machines and cached answers).
    pub job: Option<PowerJob>,
}

/// The pod a composed machine lives on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MachinePod {
    pub id: String,
    pub name: String,
}

/// A power job handed to a rack (`GET /api/v1/rack/power-jobs`). Carries decrypted secrets: only
/// racks see it, over their authenticated channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RackPowerJob {
    pub id: String,
    pub system_id: String,
    pub action: PowerAction,
    pub boot_device: Option<BootDevice>,
    pub power_type: String,
    pub power_parameters: serde_json::Map<String, serde_json::Value>,
}

/// A rack's report of a power job (`POST /api/v1/rack/power-jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RackPowerResult {
    pub ok: bool,
    pub power_state: PowerState,
    /// What the BMC said, in words.
    pub message: String,
    /// True when retrying cannot help (bad settings, missing tool).
    #[serde(default)]
    pub fatal: bool,
}

/// What commissioning's BMC step reports (`POST /metadata/v1/bmc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BmcReport {
    /// BMC LAN address (`0.0.0.0` or empty when the BMC has none configured).
    #[serde(default)]
    pub address: String,
    pub user: String,
    pub password: String,
}

/// A user's SSH public key (deployed machines get their owner's keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SshKey {
    pub id: String,
    /// `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, ...
    pub key_type: String,
    /// The whole public key line.
    pub key: String,
    pub comment: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    pub created_at: String,
}

/// Body of `POST /api/v1/users/me/ssh-keys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SshKeyCreate {
    /// One OpenSSH public key line: `ssh-ed25519 AAAA… comment`.
    pub key: String,
}

/// Body of `POST /api/v1/machines/allocate`: every given constraint must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocateRequest {
    /// At least this many CPUs.
    #[serde(default)]
    pub cpu_count: Option<i32>,
    /// At least this much memory.
    #[serde(default)]
    pub memory_mib: Option<i64>,
    /// At least this much storage in total (GiB, 2^30 bytes).
    #[serde(default)]
    pub storage_gib: Option<i64>,
    /// Every one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// None of these tags.
    #[serde(default)]
    pub not_tags: Vec<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    /// This machine only.
    #[serde(default)]
    pub system_id: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Where a deployment puts the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeployTarget {
    /// Written to the machine's boot disk (the default).
    #[default]
    Disk,
    /// Booted over the network into memory (squashfs + tmpfs overlay); disks untouched.
    Memory,
    /// Diskless, root on an iSCSI volume Kiln clones for the machine (disks untouched).
    Iscsi,
}

impl DeployTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployTarget::Disk => "disk",
            DeployTarget::Memory => "memory",
            DeployTarget::Iscsi => "iscsi",
        }
    }

    pub fn parse(s: &str) -> Option<DeployTarget> {
        match s {
            "disk" => Some(DeployTarget::Disk),
            "memory" => Some(DeployTarget::Memory),
            "iscsi" => Some(DeployTarget::Iscsi),
            _ => None,
        }
    }
}

/// How the boot disk is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageLayout {
    /// GPT; an ESP (UEFI) or bios_grub partition (BIOS); ext4 root on the rest.
    #[default]
    Flat,
    /// As flat, with root on an LVM logical volume (volume group `vgroot`, LV `lvroot`).
    Lvm,
}

impl StorageLayout {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageLayout::Flat => "flat",
            StorageLayout::Lvm => "lvm",
        }
    }
}

/// Body of `POST /api/v1/machines/{system_id}/deploy` (all optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The OS (default `debian`).
    #[serde(default)]
    pub os: Option<String>,
    /// The release (default: the newest image of `os`).
    #[serde(default)]
    pub release: Option<String>,
    /// cloud-init user-data (`#cloud-config` YAML, a `#!` script, ...), up to 1 MiB.
    #[serde(default)]
    pub user_data: Option<String>,
    #[serde(default)]
    pub target: Option<DeployTarget>,
    #[serde(default)]
    pub storage_layout: Option<StorageLayout>,
    /// The disk to install to: its name (`vda`) or serial. Default: the first disk commissioning found.
    #[serde(default)]
    pub boot_disk: Option<String>,
    /// With target `iscsi`: the root volume's size in GiB (default: the image's golden volume,
    /// its files plus a quarter and 512 MiB).
    #[serde(default)]
    pub volume_size_gib: Option<u32>,
    /// Put the rack's HTTP proxy in the deployed system's apt settings (default true).
    #[serde(default)]
    pub proxy: Option<bool>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Body of `POST /api/v1/machines/{system_id}/release` (all optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Erase the disks before the machine is Ready again (Disk erasing).
    #[serde(default)]
    pub erase: bool,
    /// With `erase`: wipe signatures and zero the first and last 2 MiB of every disk (the default).
    #[serde(default)]
    pub quick_erase: bool,
    /// With `erase`: the drive's own secure erase (NVMe format, ATA secure erase) where it has one,
    /// else zero every byte.
    #[serde(default)]
    pub secure_erase: bool,
    /// Root on iSCSI: keep the volume's file on the rack (its target is removed all the same).
    #[serde(default)]
    pub keep_volume: bool,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A machine's deployment as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    pub id: String,
    /// cloud-init's instance-id (new for every deployment).
    pub instance_id: String,
    pub os: String,
    pub release: String,
    pub target: DeployTarget,
    pub storage_layout: StorageLayout,
    pub boot_disk: String,
    /// `running` (installing), `installed` (rebooting into it), `deployed`, `failed`, `released`.
    pub state: String,
    pub created_at: String,
    pub installed_at: Option<String>,
    pub finished_at: Option<String>,
    /// Whether user-data was given (its content is shown only by `GET …/deployment/user-data`).
    pub has_user_data: bool,
    /// The deployed system's apt goes through its rack's proxy.
    #[serde(default = "yes")]
    pub proxy: bool,
}

fn yes() -> bool {
    true
}

/// What a machine's installer is told to do (`/metadata/v1/meta` while Deploying).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeployPlan {
    pub deployment_id: String,
    pub instance_id: String,
    pub target: DeployTarget,
    pub storage_layout: StorageLayout,
    /// `bios` or `uefi` (from commissioning).
    pub firmware: String,
    /// The disk's kernel name at commissioning and its serial (the installer finds it by serial first).
    pub boot_disk: String,
    pub boot_disk_serial: String,
    /// The image file: `squashfs` (a root filesystem), `raw` or `raw.zst` (a whole-disk image).
    pub image_format: String,
    /// Path on the rack's HTTP service (`/images/<sha256>/<file>`).
    pub image_path: String,
    pub image_sha256: String,
    pub image_size: i64,
}

/// What a machine's eraser is told to do (`/metadata/v1/meta` while Disk erasing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErasePlan {
    /// `quick` or `secure`.
    pub mode: String,
}

/// `POST /api/v1/metadata/deploy/installed`: the installer wrote the OS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstallReport {
    #[serde(default)]
    pub esp_uuid: Option<String>,
    #[serde(default)]
    pub root_uuid: Option<String>,
    /// The installer's log.
    #[serde(default)]
    pub output: String,
}

/// `POST /api/v1/metadata/deploy/failed` and `/metadata/erase/done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepReport {
    /// For erase: whether every disk was erased.
    #[serde(default)]
    pub ok: bool,
    /// The step that failed (deploy) or a summary.
    #[serde(default)]
    pub step: String,
    #[serde(default)]
    pub output: String,
}
