//! Boot resources (images): declaring them, recording their uploaded files, what may be
//! deleted, and when. The API streams the bytes into the store (`store.rs`); what is decided
//! about them is here.

use diesel::Connection;
use region_api_types as api;

use super::{validate, Caller};
use crate::db::{self, random_id, DbConn, Pool};
use crate::error::{Error, Result};
use crate::store::Store;

fn admin_only(caller: &Caller) -> Result<()> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "Only administrators may change boot resources.".into(),
        ))
    }
}

/// Declares a boot resource (admins); one per os/release/arch/kind.
pub fn create(
    conn: &mut DbConn,
    caller: &Caller,
    b: &api::BootResourceCreate,
    now: i64,
) -> Result<api::BootResource> {
    admin_only(caller)?;
    let os = validate::name("os", &b.os)?;
    let release = validate::name("release", &b.release)?;
    let arch = validate::architecture("arch", &b.arch)?;
    let kind = validate::name("kind", b.kind.as_deref().unwrap_or("ephemeral"))?;
    conn.transaction::<_, Error, _>(|c| {
        if let Some(existing) = db::boot::find(c, &os, &release, &arch, &kind)? {
            return Err(Error::conflict(
                "duplicate_boot_resource",
                None,
                format!(
                    "{os}/{release} {arch} ({kind}) exists already as {}; upload files to it or delete it first.",
                    existing.id
                ),
            ));
        }
        let row = db::boot::ResourceRow {
            id: random_id(8),
            os: os.clone(),
            release: release.clone(),
            arch: arch.clone(),
            kind: kind.clone(),
            created_at: now,
        };
        db::boot::insert(c, &row)?;
        db::users::audit(
            c,
            now,
            &caller.username,
            "boot_resource.create",
            &row.id,
            &format!("{os}/{release} {arch} {kind}"),
        )?;
        db::boot::get(c, &row.id)?.ok_or_else(|| Error::Internal("resource vanished".into()))
    })
}

/// What an upload may be, before a byte is read (admins): its file name, sha256 and expected
/// size (`size` and `Content-Length` must agree when both are given; at most `max` bytes).
pub fn check_upload(
    caller: &Caller,
    filename: &str,
    sha256: &str,
    size: Option<u64>,
    content_length: Option<u64>,
    max: u64,
) -> Result<(String, String, Option<u64>)> {
    admin_only(caller)?;
    let filename = validate::filename("filename", filename)?;
    let sha = validate::sha256("sha256", sha256)?;
    if let (Some(s), Some(cl)) = (size, content_length) {
        if s != cl {
            return Err(Error::validation(
                "size",
                format!("size says {s} bytes but Content-Length says {cl}."),
            ));
        }
    }
    let size = size.or(content_length);
    if size.is_some_and(|s| s > max) {
        return Err(Error::TooLarge(format!(
            "The file is larger than the limit of {max} bytes (api.max_upload_bytes)."
        )));
    }
    Ok((filename, sha, size))
}

/// Records a verified file (now in the store, pinned) as the resource's `filename`, in one
/// transaction. Returns the resource and the sha256 of the file it replaced (for
/// [`remove_unused`]).
pub fn record_upload(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    filename: &str,
    sha256: &str,
    size: u64,
    now: i64,
) -> Result<(api::BootResource, Option<String>)> {
    let size = i64::try_from(size).map_err(|_| Error::TooLarge("file too large".into()))?;
    conn.transaction::<_, Error, _>(|c| {
        // The resource may have been deleted while the bytes streamed in.
        if db::boot::get_row(c, id)?.is_none() {
            return Err(Error::not_found(format!("boot resource {id}")));
        }
        let replaced = db::boot::put_file(
            c,
            &db::boot::FileRow {
                id: random_id(12),
                resource_id: id.to_string(),
                filename: filename.to_string(),
                sha256: sha256.to_string(),
                size,
                created_at: now,
            },
        )?;
        db::users::audit(
            c,
            now,
            &caller.username,
            "boot_resource.upload",
            id,
            &format!("{filename} sha256={sha256}"),
        )?;
        let r = db::boot::get(c, id)?.ok_or_else(|| Error::Internal("resource vanished".into()))?;
        Ok((r, replaced))
    })
}

/// Deletes a boot resource (admins), unless root volumes on iSCSI boot from it. Returns the sha256s
/// its files had (the caller hands them to [`remove_unused`], which keeps those still in use).
pub fn delete(conn: &mut DbConn, caller: &Caller, id: &str, now: i64) -> Result<Vec<String>> {
    admin_only(caller)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(is_admin: bool) -> Caller {
        Caller {
            user_id: "u".into(),
            username: "u".into(),
            is_admin,
            scope: region_api_types::TokenScope::Admin,
        }
    }

    #[test]
    fn uploads_are_checked_before_a_byte_is_read() {
        let sha = "a".repeat(64);
        let ok = check_upload(&caller(true), "vmlinuz", &sha, None, Some(10), 100).unwrap();
        assert_eq!(ok, ("vmlinuz".into(), sha.clone(), Some(10)));
        let e = |r: Result<(String, String, Option<u64>)>| r.unwrap_err().to_string();
        assert!(e(check_upload(
            &caller(false),
            "vmlinuz",
            &sha,
            None,
            None,
            100
        ))
        .contains("administrators"));
        assert!(e(check_upload(
            &caller(true),
            "vmlinuz",
            &sha,
            Some(9),
            Some(10),
            100
        ))
        .contains("Content-Length"));
        assert!(e(check_upload(
            &caller(true),
            "vmlinuz",
            &sha,
            Some(101),
            None,
            100
        ))
        .contains("limit"));
        assert!(check_upload(&caller(true), "../x", &sha, None, None, 100).is_err());
        assert!(check_upload(&caller(true), "vmlinuz", "nope", None, None, 100).is_err());
    }
}
