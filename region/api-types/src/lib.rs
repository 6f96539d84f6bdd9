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

mod commissioning;
mod deploy;
mod dns;
mod events;
mod images;
mod pods;
mod power;
pub mod power_params;
mod racks;
mod settings;
mod subnets;
mod users;
mod volumes;
pub use commissioning::*;
pub use deploy::*;
pub use dns::*;
pub use events::*;
pub use images::*;
pub use pods::*;
pub use power::*;
pub use racks::*;
pub use settings::*;
pub use subnets::*;
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
