//! Boot resources (images) and their files.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
