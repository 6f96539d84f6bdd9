//! Events: what happened, usually to one machine.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
