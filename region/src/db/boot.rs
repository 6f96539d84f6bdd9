//! Boot resources and their files. File bytes live in the image store (`crate::store`), addressed
//! by sha256; the database says which resource has which file.

use diesel::prelude::*;

use super::schema::{boot_resource_files, boot_resources};
use super::{fmt_time, DbConn};
use crate::error::Result;
use region_api_types as api;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = boot_resources)]
pub struct ResourceRow {
    pub id: String,
    pub os: String,
    pub release: String,
    pub arch: String,
    pub kind: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = boot_resource_files)]
pub struct FileRow {
    pub id: String,
    pub resource_id: String,
    pub filename: String,
    pub sha256: String,
    pub size: i64,
    pub created_at: i64,
}

fn to_api(r: ResourceRow, files: Vec<FileRow>) -> api::BootResource {
    api::BootResource {
        id: r.id,
        os: r.os,
        release: r.release,
        arch: r.arch,
        kind: r.kind,
        files: files
            .into_iter()
            .map(|f| api::BootResourceFile {
                filename: f.filename,
                sha256: f.sha256,
                size: f.size,
                created_at: fmt_time(f.created_at),
            })
            .collect(),
        created_at: fmt_time(r.created_at),
    }
}

pub fn list(conn: &mut DbConn) -> Result<Vec<api::BootResource>> {
    let rows: Vec<ResourceRow> = boot_resources::table
        .order((
            boot_resources::os,
            boot_resources::release,
            boot_resources::arch,
        ))
        .select(ResourceRow::as_select())
        .load(conn)?;
    let mut files: Vec<FileRow> = boot_resource_files::table
        .order(boot_resource_files::filename)
        .select(FileRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mine: Vec<FileRow>;
            (mine, files) = files.drain(..).partition(|f| f.resource_id == r.id);
            to_api(r, mine)
        })
        .collect())
}

pub fn get_row(conn: &mut DbConn, id: &str) -> Result<Option<ResourceRow>> {
    Ok(boot_resources::table
        .find(id)
        .select(ResourceRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<api::BootResource>> {
    let Some(r) = get_row(conn, id)? else {
        return Ok(None);
    };
    let files = files_of(conn, id)?;
    Ok(Some(to_api(r, files)))
}

pub fn files_of(conn: &mut DbConn, id: &str) -> Result<Vec<FileRow>> {
    Ok(boot_resource_files::table
        .filter(boot_resource_files::resource_id.eq(id))
        .order(boot_resource_files::filename)
        .select(FileRow::as_select())
        .load(conn)?)
}

pub fn find(
    conn: &mut DbConn,
    os: &str,
    release: &str,
    arch: &str,
    kind: &str,
) -> Result<Option<ResourceRow>> {
    Ok(boot_resources::table
        .filter(boot_resources::os.eq(os))
        .filter(boot_resources::release.eq(release))
        .filter(boot_resources::arch.eq(arch))
        .filter(boot_resources::kind.eq(kind))
        .select(ResourceRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(conn: &mut DbConn, r: &ResourceRow) -> Result<()> {
    diesel::insert_into(boot_resources::table)
        .values(r)
        .execute(conn)?;
    Ok(())
}

/// Records a file of a resource, replacing an earlier file of the same name; returns the sha256
/// of the file it replaced, if it had another.
pub fn put_file(conn: &mut DbConn, f: &FileRow) -> Result<Option<String>> {
    let replaced = file(conn, &f.resource_id, &f.filename)?
        .map(|old| old.sha256)
        .filter(|old| *old != f.sha256);
    diesel::delete(
        boot_resource_files::table
            .filter(boot_resource_files::resource_id.eq(&f.resource_id))
            .filter(boot_resource_files::filename.eq(&f.filename)),
    )
    .execute(conn)?;
    diesel::insert_into(boot_resource_files::table)
        .values(f)
        .execute(conn)?;
    Ok(replaced)
}

pub fn file(conn: &mut DbConn, resource_id: &str, filename: &str) -> Result<Option<FileRow>> {
    Ok(boot_resource_files::table
        .filter(boot_resource_files::resource_id.eq(resource_id))
        .filter(boot_resource_files::filename.eq(filename))
        .select(FileRow::as_select())
        .first(conn)
        .optional()?)
}

/// Deletes a resource and its file records; returns the sha256s its files had (for
/// [`crate::store::Store::remove_if_unused`], which asks again whether they are in use).
pub fn delete(conn: &mut DbConn, id: &str) -> Result<Vec<String>> {
    let shas: Vec<String> = files_of(conn, id)?.into_iter().map(|f| f.sha256).collect();
    diesel::delete(boot_resource_files::table.filter(boot_resource_files::resource_id.eq(id)))
        .execute(conn)?;
    diesel::delete(boot_resources::table.find(id)).execute(conn)?;
    Ok(shas)
}

/// Every sha256 a file row refers to.
pub fn referenced_shas(conn: &mut DbConn) -> Result<std::collections::HashSet<String>> {
    Ok(boot_resource_files::table
        .select(boot_resource_files::sha256)
        .load::<String>(conn)?
        .into_iter()
        .collect())
}

pub fn sha_in_use(conn: &mut DbConn, sha: &str) -> Result<bool> {
    let n: i64 = boot_resource_files::table
        .filter(boot_resource_files::sha256.eq(sha))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}
