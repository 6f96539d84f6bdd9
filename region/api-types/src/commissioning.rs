//! What commissioning finds and runs: hardware inventory, scripts and their results, the runner's
//! reports.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::MachineStatus;

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
