//! Boot resources (images): what may be deleted, and when.

use diesel::Connection;

use super::Caller;
use crate::db::{self, DbConn, Pool};
use crate::error::{Error, Result};
use crate::store::Store;

/// Deletes a boot resource (admins), unless root volumes on iSCSI boot from it. Returns the sha256s
/// its files had (the caller hands them to [`remove_unused`], which keeps those still in use).
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

/// Removes the stored files of `shas` that nothing refers to now (nor an upload in flight): after a
/// resource is deleted, a file replaced, or an upload's commit failed. A file that cannot be
/// removed is logged and left for the next start's collection.
pub async fn remove_unused(pool: &Pool, store: &Store, shas: Vec<String>) {
    if shas.is_empty() {
        return;
    }
    let store = store.clone();
    let r = pool
        .run(move |c| {
            for sha in &shas {
                if let Err(e) = store.remove_if_unused(sha, |s| db::boot::sha_in_use(c, s)) {
                    tracing::warn!(sha256 = %sha, "could not remove unused image file {sha}: {e}");
                }
            }
            Ok(())
        })
        .await;
    if let Err(e) = r {
        tracing::warn!("could not remove unused image files: {e}");
    }
}

/// At start: removes stored files no resource refers to (a crash between an upload's rename and
/// its commit, or a removal that failed). Returns how many went.
pub async fn collect_orphans(pool: &Pool, store: &Store) -> Result<usize> {
    let store = store.clone();
    pool.run(move |c| {
        let referenced = db::boot::referenced_shas(c)?;
        store.collect_orphans(&referenced)
    })
    .await
}
