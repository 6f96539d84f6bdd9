//! Boot resources (images): what may be deleted, and when.

use diesel::Connection;

use super::Caller;
use crate::db::{self, DbConn};
use crate::error::{Error, Result};

/// Deletes a boot resource (admins), unless root volumes on iSCSI boot from it. Returns the sha256s
/// of the files no other resource uses (the caller removes them from the store).
pub fn delete(conn: &mut DbConn, caller: &Caller, id: &str, now: i64) -> Result<Vec<String>> {
    if !caller.is_admin {
        return Err(Error::Forbidden(
            "Only administrators may change boot resources.".into(),
        ));
    }
    conn.transaction::<_, Error, _>(|c| {
        if db::boot::get_row(c, id)?.is_none() {
            return Err(Error::not_found(format!("boot resource {id}")));
        }
        let using = db::volumes::live_of_resource(c, id)?;
        if !using.is_empty() {
            return Err(Error::conflict(
                "boot_resource_in_use",
                None,
                format!(
                    "Root volumes on iSCSI boot from this image (machines {}): release them first.",
                    using.join(", ")
                ),
            ));
        }
        let orphans = db::boot::delete(c, id)?;
        db::users::audit(c, now, &caller.username, "boot_resource.delete", id, "")?;
        Ok(orphans)
    })
}
