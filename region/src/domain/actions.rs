//! One lifecycle action on one machine, as the API and the web UI ask for it: the settings in
//! effect read once, then `deploy::deploy`, `deploy::release` or `machines::act`; and adding or
//! removing one tag.

use region_api_types::{self as api, MachineAction};

use super::secrets::SecretBox;
use super::{deploy, machines, settings, Caller};
use crate::config::Config;
use crate::db::DbConn;
use crate::error::Result;

/// An action with what it was given.
#[derive(Debug, Clone)]
pub enum Action {
    Deploy(api::DeployRequest),
    Release(api::ReleaseRequest),
    /// Any other action, with an optional comment.
    Other(MachineAction, Option<String>),
}

impl Action {
    /// `action` with no body: deploy and release with their defaults.
    pub fn plain(action: MachineAction) -> Action {
        match action {
            MachineAction::Deploy => Action::Deploy(Default::default()),
            MachineAction::Release => Action::Release(Default::default()),
            a => Action::Other(a, None),
        }
    }
}

/// Runs `action` on `system_id` for `caller`. `None`: the machine was deleted.
pub fn perform(
    conn: &mut DbConn,
    sb: &SecretBox,
    cfg: &Config,
    caller: &Caller,
    system_id: &str,
    action: &Action,
    now: i64,
) -> Result<Option<api::Machine>> {
    let lifecycle = settings::lifecycle(conn, cfg)?;
    match action {
        Action::Deploy(r) => {
            deploy::deploy(conn, sb, caller, system_id, r, &lifecycle, now).map(Some)
        }
        Action::Release(r) => {
            deploy::release(conn, caller, system_id, r, &lifecycle, now).map(Some)
        }
        Action::Other(a, comment) => machines::act(
            conn,
            caller,
            system_id,
            *a,
            comment.as_deref(),
            &lifecycle,
            now,
        ),
    }
}

/// Adds (or removes) one tag (admins, as `machines::patch`). Returns whether the tags changed; a
/// tag already there (or already absent) writes nothing.
pub fn set_tag(
    conn: &mut DbConn,
    sb: &SecretBox,
    caller: &Caller,
    system_id: &str,
    tag: &str,
    add: bool,
    now: i64,
) -> Result<bool> {
    let m = machines::get(conn, caller, system_id)?;
    let mut tags = m.tags.clone();
    if add && !tags.iter().any(|t| t == tag) {
        tags.push(tag.to_string());
    } else if !add {
        tags.retain(|t| t != tag);
    }
    if tags == m.tags {
        return Ok(false);
    }
    let patch = api::MachinePatch {
        tags: Some(tags),
        ..Default::default()
    };
    machines::patch(conn, sb, caller, system_id, &patch, now).map(|_| true)
}
