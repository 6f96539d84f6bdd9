//! Settings operators change at run time.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
