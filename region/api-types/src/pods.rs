//! KVM pods: libvirt hosts registered with Kiln, what racks discover on them, and the VMs Kiln
//! composes there (which are then machines like any other).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/pods`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PodCreate {
    pub name: String,
    /// `virsh` (the only pod type).
    #[serde(rename = "type", default)]
    pub pod_type: Option<String>,
    /// libvirt URI: `qemu:///system`, `qemu+ssh://user@host/system`, `qemu+tcp://host/system`.
    pub power_address: String,
    /// Password of the libvirt connection (write-only; sealed at rest).
    #[serde(default)]
    pub power_pass: Option<String>,
    /// Cores Kiln may hand out per host core (default 1.0; 0 < ratio ≤ 10).
    #[serde(default)]
    pub cpu_over_commit_ratio: Option<f64>,
    /// Memory Kiln may hand out per MiB of host memory (default 1.0; 0 < ratio ≤ 10).
    #[serde(default)]
    pub memory_over_commit_ratio: Option<f64>,
    /// Storage pool of composed disks that name none (default: the host's first active pool).
    #[serde(default)]
    pub default_storage_pool: Option<String>,
    /// libvirt network or host bridge composed NICs join when they name none (default: the
    /// libvirt network `default`).
    #[serde(default)]
    pub default_network: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Zone and pool of the machines composed here (default `default`).
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub pool: Option<String>,
    /// Seconds to wait for the first discovery (default 60, at most 300).
    #[serde(default)]
    pub wait_secs: Option<u32>,
}

/// `PATCH /api/v1/pods/{id}`: the fields given change. `power_pass: ""` removes the password.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PodUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub power_address: Option<String>,
    #[serde(default)]
    pub power_pass: Option<String>,
    #[serde(default)]
    pub cpu_over_commit_ratio: Option<f64>,
    #[serde(default)]
    pub memory_over_commit_ratio: Option<f64>,
    #[serde(default)]
    pub default_storage_pool: Option<String>,
    #[serde(default)]
    pub default_network: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub pool: Option<String>,
}

/// One countable resource of a pod: what the host has, what Kiln may hand out (`total` ×
/// overcommit), what VMs on it use (Kiln's and the others), and what is left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PodResource {
    pub total: i64,
    pub limit: i64,
    pub used: i64,
    pub free: i64,
}

/// A storage pool of a pod. Composed disks are sparse, so `committed_bytes` (the sum of the
/// volumes' sizes) is what counts: `free_bytes` is the smaller of what the filesystem has and
/// `capacity_bytes − committed_bytes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PodStoragePool {
    pub name: String,
    /// libvirt's pool type (`dir`, `logical`, `fs`, ...).
    pub pool_type: String,
    pub path: Option<String>,
    pub active: bool,
    pub capacity_bytes: i64,
    pub allocation_bytes: i64,
    pub available_bytes: i64,
    pub committed_bytes: i64,
    pub free_bytes: i64,
    /// Whether this is the pod's default pool.
    #[serde(default)]
    pub default: bool,
}

/// A libvirt network of a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PodNetwork {
    pub name: String,
    pub bridge: Option<String>,
    pub active: bool,
}

/// A VM on a pod's host, Kiln's or not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PodVm {
    pub name: String,
    pub uuid: String,
    pub cores: i64,
    pub memory_mib: i64,
    pub disk_bytes: i64,
    pub running: bool,
    /// The Kiln machine this VM is (absent: a VM Kiln did not compose; it still counts).
    #[serde(default)]
    pub system_id: Option<String>,
}

/// `ok` once discovered, `error` when the last discovery failed (`message` says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PodState {
    Ok,
    Error,
}

impl PodState {
    pub fn as_str(self) -> &'static str {
        match self {
            PodState::Ok => "ok",
            PodState::Error => "error",
        }
    }
    pub fn parse(s: &str) -> PodState {
        if s == "ok" {
            PodState::Ok
        } else {
            PodState::Error
        }
    }
}

/// A composed machine of a pod, in brief.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PodMachine {
    pub system_id: String,
    pub hostname: String,
    pub status: String,
    pub status_label: String,
}

/// A pod as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pod {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub pod_type: String,
    pub power_address: String,
    /// Whether a password is set (the password itself is never shown).
    pub power_pass_set: bool,
    pub cpu_over_commit_ratio: f64,
    pub memory_over_commit_ratio: f64,
    pub default_storage_pool: Option<String>,
    pub default_network: Option<String>,
    pub tags: Vec<String>,
    pub zone: String,
    pub pool: String,
    pub state: PodState,
    /// Why the last discovery failed.
    pub message: Option<String>,
    /// `x86_64`, ... (from the last discovery).
    pub architecture: Option<String>,
    /// libvirt and hypervisor versions.
    pub hypervisor: Option<String>,
    /// `kvm` when the host has hardware virtualisation, else `qemu` (emulation).
    pub virt_type: Option<String>,
    /// Whether the host has OVMF (UEFI VMs) and an OVMF with Secure Boot.
    pub uefi: bool,
    pub secure_boot: bool,
    pub cores: PodResource,
    pub memory_mib: PodResource,
    pub storage_pools: Vec<PodStoragePool>,
    pub networks: Vec<PodNetwork>,
    pub vms: Vec<PodVm>,
    pub machines: Vec<PodMachine>,
    /// Which rack talked to the host last.
    pub rack: Option<String>,
    pub refreshed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// `DELETE /api/v1/pods/{id}`: what became of its composed machines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PodDeleted {
    /// Machines whose VMs were destroyed with their volumes and NVRAM.
    pub decomposed: Vec<String>,
    /// Machines removed from Kiln whose VMs are still on the host, each with the reason.
    pub left_on_host: Vec<PodVmLeft>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PodVmLeft {
    pub system_id: String,
    pub hostname: String,
    pub reason: String,
}

/// A disk of a composed VM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeDisk {
    pub size_gib: u32,
    /// Storage pool (default: the pod's default pool).
    #[serde(default)]
    pub pool: Option<String>,
}

/// A NIC of a composed VM: on a libvirt network or a host bridge (one of the two; neither: the
/// pod's default network).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeInterface {
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub bridge: Option<String>,
}

/// `POST /api/v1/pods/{id}/compose`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeRequest {
    /// Default 1.
    #[serde(default)]
    pub cores: Option<u32>,
    /// Default 2048.
    #[serde(default)]
    pub memory_mib: Option<i64>,
    /// Default one 8 GiB disk in the default pool.
    #[serde(default)]
    pub disks: Option<Vec<ComposeDisk>>,
    /// Default one NIC on the pod's default network.
    #[serde(default)]
    pub interfaces: Option<Vec<ComposeInterface>>,
    /// Default `<pod>-<system_id>`; also the libvirt domain's name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// `uefi` (default: OVMF with a per-VM NVRAM copy) or `bios` (SeaBIOS).
    #[serde(default)]
    pub firmware: Option<String>,
    /// UEFI Secure Boot with Microsoft's keys enrolled (only where the host's OVMF has it).
    #[serde(default)]
    pub secure_boot: Option<bool>,
    /// Seconds to wait for the host to make the VM (default 120, at most 300).
    #[serde(default)]
    pub wait_secs: Option<u32>,
}

/// What a pod job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PodJobKind {
    Discover,
    Compose,
    Decompose,
}

impl PodJobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PodJobKind::Discover => "discover",
            PodJobKind::Compose => "compose",
            PodJobKind::Decompose => "decompose",
        }
    }
    pub fn parse(s: &str) -> Option<PodJobKind> {
        match s {
            "discover" => Some(PodJobKind::Discover),
            "compose" => Some(PodJobKind::Compose),
            "decompose" => Some(PodJobKind::Decompose),
            _ => None,
        }
    }
}

/// A disk to make: a sparse raw volume `name` of `size_bytes` in `pool`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmDisk {
    pub pool: String,
    pub name: String,
    pub size_bytes: i64,
    /// The disk's serial as the guest sees it.
    pub serial: String,
}

/// A NIC to make: `mac` on a libvirt network or a host bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmNic {
    pub mac: String,
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub bridge: Option<String>,
}

/// Everything a rack needs to make one VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmSpec {
    pub system_id: String,
    /// The libvirt domain's name.
    pub name: String,
    pub cores: u32,
    pub memory_mib: i64,
    /// `kvm` or `qemu`.
    pub virt_type: String,
    /// `x86_64`, ...
    pub arch: String,
    /// `uefi` or `bios`.
    pub firmware: String,
    pub secure_boot: bool,
    pub disks: Vec<VmDisk>,
    pub nics: Vec<VmNic>,
}

/// A pod job handed to a rack (`GET /api/v1/rack/pod-jobs`). Carries the host's password: only
/// racks see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RackPodJob {
    pub id: String,
    pub pod_id: String,
    pub kind: PodJobKind,
    pub power_address: String,
    #[serde(default)]
    pub power_pass: String,
    /// compose: the VM to make; decompose: the VM to destroy (its `system_id` and `name`).
    #[serde(default)]
    pub vm: Option<VmSpec>,
}

/// A storage pool as the rack found it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostPool {
    pub name: String,
    pub pool_type: String,
    pub path: Option<String>,
    pub active: bool,
    pub capacity_bytes: i64,
    pub allocation_bytes: i64,
    pub available_bytes: i64,
    /// The sum of its volumes' sizes.
    pub committed_bytes: i64,
}

/// A disk of a VM as the rack found it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostDisk {
    pub path: String,
    /// The pool holding it, when it is a volume of one.
    #[serde(default)]
    pub pool: Option<String>,
    pub size_bytes: i64,
}

/// A libvirt domain as the rack found it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostVm {
    pub name: String,
    pub uuid: String,
    pub cores: i64,
    pub memory_mib: i64,
    pub running: bool,
    pub disks: Vec<HostDisk>,
    /// The system_id Kiln wrote into the domain's metadata when it composed it.
    #[serde(default)]
    pub system_id: Option<String>,
}

/// What a rack found on a pod's host (sent with every job's result).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PodDiscovery {
    pub architecture: String,
    /// Logical CPUs.
    pub cores: i64,
    pub memory_mib: i64,
    pub hypervisor: String,
    pub virt_type: String,
    pub uefi: bool,
    pub secure_boot: bool,
    pub pools: Vec<HostPool>,
    pub networks: Vec<PodNetwork>,
    pub vms: Vec<HostVm>,
}

/// A rack's report of a pod job (`POST /api/v1/rack/pod-jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RackPodResult {
    pub ok: bool,
    /// What happened, in words.
    pub message: String,
    /// The host as it is after the job (absent when the rack could not reach it).
    #[serde(default)]
    pub discovery: Option<PodDiscovery>,
}
