//! Root on iSCSI: the volumes racks serve, as operators see them and as racks are told of them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::SnapshotFile;

/// What a rack can serve for root on iSCSI (part of its heartbeat).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RackIscsi {
    /// Where initiators log in (`10.20.0.2:3260`).
    pub portal: String,
    /// The target driver (`tgt`).
    pub driver: String,
    /// How clones are made on the store's filesystem: `reflink` or `copy`.
    pub clone_method: String,
    pub store_free_bytes: u64,
    /// Why the rack cannot serve volumes now (the target daemon does not answer, …); absent when
    /// it can.
    #[serde(default)]
    pub error: Option<String>,
}

/// A machine's root volume as operators see it (`Machine.boot_volume`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BootVolume {
    pub id: String,
    pub target_iqn: String,
    /// The machine's own initiator name (one per machine, never per image).
    pub initiator_iqn: String,
    /// Known once the rack has made the target.
    pub portal: Option<String>,
    pub lun: u32,
    /// `reflink` (copy-on-write) or `copy`, once the rack has cloned it.
    pub clone_method: Option<String>,
    pub size_bytes: Option<i64>,
    /// Bytes the volume uses that are its own (not shared with the image's golden volume).
    pub used_bytes: Option<i64>,
    /// `creating`, `ready`, `failed`, `removing`, `removed`, `kept`.
    pub state: String,
    /// The rack that serves it.
    pub rack: String,
    /// The last thing the rack said of it (a failure's reason).
    pub message: String,
}

/// A volume in `GET /api/v1/volumes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Volume {
    #[serde(flatten)]
    pub volume: BootVolume,
    pub system_id: String,
    /// The machine's hostname (absent once the machine is deleted; kept volumes outlive it).
    pub hostname: Option<String>,
    pub os: String,
    pub release: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A volume a rack is to serve or remove (`GET /api/v1/rack/volumes`). Carries secrets: only
/// the rack that serves it is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RackVolume {
    pub id: String,
    pub system_id: String,
    pub hostname: String,
    /// The MAC whose lease holder is given the boot script.
    pub boot_mac: Option<String>,
    /// `serve` (clone it if needed, make the target), `hold` (keep serving it if it is served,
    /// make nothing: it is to be removed once its machine is off) or `remove` (remove the
    /// target; delete the file unless `keep_file`).
    pub action: String,
    #[serde(default)]
    pub keep_file: bool,
    /// The OS image's root filesystem (squashfs): the golden volume is made from it.
    pub image: SnapshotFile,
    /// The image's own kernel and initramfs (they mount the LUN the iBFT describes).
    pub kernel: SnapshotFile,
    pub initrd: SnapshotFile,
    /// 0: the golden volume's size.
    pub requested_bytes: u64,
    pub initiator_iqn: String,
    pub chap_user: String,
    pub chap_secret: String,
    /// The deployment's metadata credential: written into the volume's cloud-init datasource.
    pub seed_token: String,
}

/// Answer of `GET /api/v1/rack/volumes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RackVolumes {
    pub volumes: Vec<RackVolume>,
}

/// Body of `POST /api/v1/rack/volumes/{id}`: what the rack did with a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RackVolumeReport {
    /// `ready` (cloned, the target serves it), `failed`, `removed` (target gone; file deleted, or
    /// kept when asked).
    pub state: String,
    #[serde(default)]
    pub portal: Option<String>,
    #[serde(default)]
    pub clone_method: Option<String>,
    #[serde(default)]
    pub size_bytes: Option<u64>,
    #[serde(default)]
    pub used_bytes: Option<u64>,
    /// What was done, or why it failed (no secrets).
    #[serde(default)]
    pub message: String,
}
