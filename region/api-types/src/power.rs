//! Power: states, actions, the drivers' parameter schemas, jobs and their results.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
