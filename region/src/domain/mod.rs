//! Domain logic: what the region decides, independent of HTTP. No actix types here; the database is
//! reached only through `crate::db` query functions.

pub mod access;
pub mod actions;
pub mod allocate;
pub mod auth;
pub mod boot;
pub mod cloudinit;
pub mod commissioning;
pub mod deadlines;
pub mod deploy;
pub mod dns;
pub mod images;
pub mod interfaces;
pub mod inventory;
pub mod lifecycle;
pub mod login;
pub mod machines;
pub mod pod_compose;
pub mod pod_jobs;
pub mod pods;
pub mod power;
pub mod prune;
pub mod racks;
pub mod reports;
pub mod search;
pub mod secrets;
pub mod settings;
pub mod sshkeys;
pub mod subnets;
pub mod users;
pub mod validate;
pub mod volumes;

/// The authenticated user a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub username: String,
    /// Whether the caller acts as an administrator: the user is one *and* the credential's scope is
    /// `admin` or `read` (an admin's operator-scoped token acts as a user; an admin's read-scoped
    /// token reads all an admin may, and writes nothing).
    pub is_admin: bool,
    /// What the credential may do; `read` never writes (the API refuses its writes up front).
    pub scope: region_api_types::TokenScope,
}
