//! Racks: registration, heartbeats, the snapshot they serve from, boot requests and events.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Interface, MachineStatus, RackIscsi, SnapshotDns, Subnet};

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
/// ephemeral environment, this boot's one-time claim code (exchanged for its credential).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RackBootAnswer {
    pub system_id: String,
    pub hostname: String,
    pub status: MachineStatus,
    pub architecture: String,
    /// Whether this request enlisted the machine.
    pub enlisted: bool,
    /// No longer sent (always null): the credential stays off the kernel command line and the
    /// console; the machine exchanges `claim` for it (`POST /api/v1/rack/claim`).
    pub token: Option<String>,
    /// One-time claim code for this boot's credential (ephemeral and memory boots), written on
    /// the kernel command line as `kiln.claim=`.
    #[serde(default)]
    pub claim: Option<String>,
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

/// A machine's initramfs trades its boot's claim code for its credential, through the rack that
/// leased its address (`POST /api/v1/rack/claim`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RackClaimRequest {
    /// The MAC the rack leased the caller's address to.
    #[schema(example = "52:54:00:12:34:56")]
    pub mac: String,
    /// The `kiln.claim=` code of the machine's kernel command line.
    #[schema(example = "claim_3kVb...")]
    pub claim: String,
}

/// This boot's credential for the metadata API (given once per claim code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RackClaimAnswer {
    pub system_id: String,
    pub token: String,
}

/// A rack controller known to the region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rack {
    pub id: String,
    pub name: String,
    /// `registered`, `online`, `offline`.
    pub status: String,
    /// `pending` (until an admin approves it: it gets no snapshot, jobs or secrets), `approved`,
    /// or `revoked` (for good).
    pub approval: String,
    /// The IPv4 networks whose BMCs an admin said this rack drives: power jobs (they carry BMC
    /// secrets) go only to an approved rack whose list holds the BMC's address (`0.0.0.0/0`: all).
    #[serde(default)]
    pub power_networks: Vec<String>,
    pub last_seen: Option<String>,
    pub version: Option<String>,
    pub interfaces: serde_json::Value,
    pub created_at: String,
    /// What it can serve for root on iSCSI (absent: it has no volume store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iscsi: Option<RackIscsi>,
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
    #[schema(pattern = r"^[A-Za-z0-9._/-]{1,64}$", example = "rack-a")]
    pub name: String,
    /// The deprecated shared secret shown by `kiln admin rack-secret` (empty with
    /// `enrolment_token`).
    #[serde(default)]
    pub secret: String,
    /// A one-time enrolment token from `kiln admin rack-token` (instead of `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolment_token: Option<String>,
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

/// A one-time rack enrolment token, as `kiln admin rack-token` prints it:
/// `kiln-rack-v1.<id>.<secret>[.sha256-<hex>]`. The last part, when the region serves HTTPS from
/// its own CA, is that CA's sha256: the rack pins it from its first request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentToken {
    pub id: String,
    pub secret: String,
    /// Lower-case hex sha256 of the region CA's DER.
    pub ca_sha256: Option<String>,
}

const ENROLMENT_PREFIX: &str = "kiln-rack-v1";

impl EnrolmentToken {
    /// Parses a token; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<EnrolmentToken, String> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric());
        match parts.as_slice() {
            [ENROLMENT_PREFIX, id, secret, rest @ ..] if ok(id) && ok(secret) && rest.len() <= 1 => {
                let ca_sha256 = match rest.first() {
                    None => None,
                    Some(p) => {
                        let hex = p.strip_prefix("sha256-").ok_or_else(|| {
                            "the token's last part must be sha256-<hex> (the region CA's fingerprint)"
                                .to_string()
                        })?;
                        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return Err("the token's CA fingerprint is not 64 hex digits".into());
                        }
                        Some(hex.to_ascii_lowercase())
                    }
                };
                Ok(EnrolmentToken {
                    id: id.to_string(),
                    secret: secret.to_string(),
                    ca_sha256,
                })
            }
            _ => Err(format!(
                "not a rack enrolment token (expected {ENROLMENT_PREFIX}.<id>.<secret>[.sha256-<hex>], from `kiln admin rack-token`)"
            )),
        }
    }
}

impl std::fmt::Display for EnrolmentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{ENROLMENT_PREFIX}.{}.{}", self.id, self.secret)?;
        if let Some(h) = &self.ca_sha256 {
            write!(f, ".sha256-{h}")?;
        }
        Ok(())
    }
}

/// Body of `POST /api/v1/racks/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RackTokenCreate {
    /// How long the token may be used, in seconds (default 3600, at most 7 days).
    #[serde(default)]
    #[schema(minimum = 60, maximum = 604800)]
    pub ttl_secs: Option<u64>,
    /// The rack it enrols is approved at once (otherwise it waits for `kiln racks approve`).
    #[serde(default)]
    pub auto_approve: bool,
    /// The enrolled rack's power networks (IPv4 CIDRs; `0.0.0.0/0`: every BMC).
    #[serde(default)]
    pub power_networks: Vec<String>,
}

/// Body of `PATCH /api/v1/racks/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RackUpdate {
    /// The IPv4 networks whose BMCs this rack drives (replaces the list; `[]`: none).
    pub power_networks: Vec<String>,
}

/// Answer to `POST /api/v1/racks/tokens`: shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RackTokenCreated {
    pub id: String,
    /// What `kiln rack --token-file` reads.
    pub token: String,
    pub expires_at: String,
    pub auto_approve: bool,
}

#[cfg(test)]
mod enrolment_tests {
    use super::EnrolmentToken;

    #[test]
    fn tokens_round_trip_and_bad_ones_say_why() {
        let t = EnrolmentToken {
            id: "ab12cd34".into(),
            secret: "s3cr3tS3cr3t".into(),
            ca_sha256: Some("0f".repeat(32)),
        };
        let s = t.to_string();
        assert_eq!(EnrolmentToken::parse(&format!(" {s}\n")).unwrap(), t);
        let plain = EnrolmentToken {
            ca_sha256: None,
            ..t.clone()
        };
        assert_eq!(EnrolmentToken::parse(&plain.to_string()).unwrap(), plain);
        for bad in [
            "",
            "kiln_abc",
            "kiln-rack-v1.id",
            "kiln-rack-v1.id.se/cret",
            "kiln-rack-v2.id.secret",
            "kiln-rack-v1.id.secret.md5-00",
            "kiln-rack-v1.id.secret.sha256-00",
            "kiln-rack-v1.id.secret.sha256-00.extra",
        ] {
            assert!(EnrolmentToken::parse(bad).is_err(), "{bad}");
        }
    }
}
