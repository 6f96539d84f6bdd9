//! Deployment: SSH keys, allocation, deploy and release requests, plans and installer reports.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    #[schema(
        max_length = 16384,
        pattern = r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) AAAA[A-Za-z0-9+/]+={0,2}( [^\r\n]*)?$",
        example = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl you@laptop"
    )]
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
