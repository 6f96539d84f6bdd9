//! The rack's image cache: every boot file in the snapshot, fetched from the region by sha256 into
//! `<data_dir>/images/<sha256>`, resumable (`Range` from a `.partial` file) and verified before it is
//! renamed into place. Only verified files are ever served. Bootloaders (`kind = "bootloader"`) are
//! also linked by file name into the TFTP/HTTP boot directory.
//!
//! Bounded: a cached file no snapshot has named for [`GRACE`] is removed (a machine that was
//! handed it a moment ago still finishes; an open file outlives its name). A full disk stops the
//! fetching with one error a [`FULL_DISK_RETRY`], not a retry every few seconds.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use region_api_types::SnapshotFile;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::region::RegionClient;
use crate::state::Served;

/// How long a cached file the snapshot no longer names is kept.
pub const GRACE: Duration = Duration::from_secs(3600);
/// How long to wait before fetching again after the disk was full.
pub const FULL_DISK_RETRY: Duration = Duration::from_secs(60);

/// The cached files to remove now: those `wanted` does not name and that have gone unnamed for
/// `grace` (`unnamed_since` remembers since when; names wanted again are forgotten).
pub fn collectable(
    cached: &[String],
    wanted: &HashSet<String>,
    unnamed_since: &mut HashMap<String, Instant>,
    now: Instant,
    grace: Duration,
) -> Vec<String> {
    unnamed_since.retain(|sha, _| !wanted.contains(sha) && cached.contains(sha));
    let mut out = Vec::new();
    for sha in cached {
        if wanted.contains(sha) {
            continue;
        }
        let since = *unnamed_since.entry(sha.clone()).or_insert(now);
        if now.duration_since(since) >= grace {
            out.push(sha.clone());
        }
    }
    out
}

fn is_disk_full(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull)
}

/// Path of a verified file.
pub fn path_of(dir: &Path, sha256: &str) -> PathBuf {
    dir.join(sha256)
}

/// The sha256s of the verified files in the cache (files are named by their sha256).
pub fn cached(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

async fn hash_file(p: &Path) -> std::io::Result<String> {
    let mut f = tokio::fs::File::open(p).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Makes sure `f` is in the cache; returns whether it had to fetch anything.
pub async fn ensure(client: &RegionClient, f: &SnapshotFile, dir: &Path) -> Result<bool> {
    let sha = f.sha256.to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Region(format!(
            "snapshot names a file with a bad sha256: {sha}"
        )));
    }
    let done = path_of(dir, &sha);
    if tokio::fs::try_exists(&done).await? {
        return Ok(false);
    }
    let partial = dir.join(format!("{sha}.partial"));
    let have = tokio::fs::metadata(&partial)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let resp = client.file(&sha, have).await?;
    let mut out = match resp.status() {
        reqwest::StatusCode::PARTIAL_CONTENT => {
            tokio::fs::OpenOptions::new()
                .append(true)
                .open(&partial)
                .await?
        }
        s if s.is_success() => tokio::fs::File::create(&partial).await?,
        reqwest::StatusCode::RANGE_NOT_SATISFIABLE => {
            // The partial file is already whole (or longer than the file): verify what we have.
            tokio::fs::OpenOptions::new()
                .append(true)
                .open(&partial)
                .await?
        }
        s => return Err(Error::Region(format!("fetching {sha}: {s}"))),
    };
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        out.write_all(&chunk?).await?;
    }
    out.sync_all().await?;
    drop(out);
    let got = hash_file(&partial).await?;
    if got != sha {
        tokio::fs::remove_file(&partial).await?;
        return Err(Error::Region(format!(
            "downloaded {} has sha256 {got}, not {sha}; discarded, will fetch again",
            f.filename
        )));
    }
    tokio::fs::rename(&partial, &done).await?;
    tracing::info!(sha256 = %sha, "cached {} {}/{} ({} bytes, verified)", f.filename, f.os, f.release, f.size);
    Ok(true)
}

/// Links a cached bootloader into the boot directory under its file name.
fn link_bootloader(dir: &Path, boot_dir: &Path, f: &SnapshotFile) -> Result<()> {
    if f.filename.contains('/') || f.filename.starts_with('.') {
        return Ok(());
    }
    let src = path_of(dir, &f.sha256);
    let dst = boot_dir.join(&f.filename);
    let tmp = boot_dir.join(format!(".{}.tmp", f.filename));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(&src, &tmp).is_err() {
        std::fs::copy(&src, &tmp)?;
    }
    std::fs::rename(&tmp, &dst)?;
    Ok(())
}

/// Keeps the cache in step with the snapshot until cancelled.
pub async fn sync(
    client: RegionClient,
    mut rx: watch::Receiver<Arc<Served>>,
    dir: PathBuf,
    boot_dir: PathBuf,
    cancel: CancellationToken,
) -> Result<()> {
    tokio::fs::create_dir_all(&dir).await?;
    let mut unnamed_since: HashMap<String, Instant> = HashMap::new();
    let mut disk_full_logged: Option<Instant> = None;
    loop {
        let snapshot = rx.borrow().snapshot.clone();
        let files: Vec<SnapshotFile> = snapshot
            .as_ref()
            .map(|s| s.files.clone())
            .unwrap_or_default();
        let mut failed = false;
        let mut disk_full = false;
        for f in &files {
            match ensure(&client, f, &dir).await {
                Ok(_) => {
                    if f.kind == "bootloader" {
                        if let Err(e) = link_bootloader(&dir, &boot_dir, f) {
                            tracing::warn!("cannot link bootloader {}: {e}", f.filename);
                        }
                    }
                }
                Err(e) if is_disk_full(&e) => {
                    disk_full = true;
                    if disk_full_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                        disk_full_logged = Some(Instant::now());
                        tracing::error!(
                            "image cache: the disk under {} is full; {} cannot be fetched (retrying every {:?})",
                            dir.display(),
                            f.filename,
                            FULL_DISK_RETRY
                        );
                    }
                    break;
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!("image sync: {e}");
                }
            }
            if cancel.is_cancelled() {
                return Ok(());
            }
        }
        if !disk_full {
            disk_full_logged = None;
        }
        // Only against a snapshot the region sent: a rack that never heard from it keeps all.
        if snapshot.is_some() {
            let wanted: HashSet<String> = files
                .iter()
                .map(|f| f.sha256.to_ascii_lowercase())
                .collect();
            let cached = cached(&dir);
            for sha in collectable(&cached, &wanted, &mut unnamed_since, Instant::now(), GRACE) {
                match std::fs::remove_file(path_of(&dir, &sha)) {
                    Ok(()) => tracing::info!(
                        "image cache: removed {sha}, named by no snapshot for {GRACE:?}"
                    ),
                    Err(e) => tracing::warn!("image cache: cannot remove {sha}: {e}"),
                }
                unnamed_since.remove(&sha);
            }
        }
        let wait = if disk_full {
            FULL_DISK_RETRY
        } else if failed {
            Duration::from_secs(5)
        } else {
            // Well inside GRACE: a removal comes at most five minutes late.
            Duration::from_secs(300)
        };
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = rx.changed() => if r.is_err() { return Ok(()) },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_no_snapshot_names_go_after_the_grace_period() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let cached = vec![a.clone(), b.clone()];
        let mut since = HashMap::new();
        let t0 = Instant::now();
        let grace = Duration::from_secs(100);
        let wanted: HashSet<String> = [a.clone()].into();
        assert!(collectable(&cached, &wanted, &mut since, t0, grace).is_empty());
        assert!(collectable(
            &cached,
            &wanted,
            &mut since,
            t0 + Duration::from_secs(99),
            grace
        )
        .is_empty());
        assert_eq!(
            collectable(
                &cached,
                &wanted,
                &mut since,
                t0 + Duration::from_secs(100),
                grace
            ),
            vec![b.clone()]
        );
        // Named again before its time: the clock starts over when it is dropped next.
        let both: HashSet<String> = [a.clone(), b.clone()].into();
        let mut since = HashMap::new();
        assert!(collectable(&cached, &wanted, &mut since, t0, grace).is_empty());
        assert!(collectable(
            &cached,
            &both,
            &mut since,
            t0 + Duration::from_secs(50),
            grace
        )
        .is_empty());
        assert!(collectable(
            &cached,
            &wanted,
            &mut since,
            t0 + Duration::from_secs(120),
            grace
        )
        .is_empty());
        assert_eq!(
            collectable(
                &cached,
                &wanted,
                &mut since,
                t0 + Duration::from_secs(220),
                grace
            ),
            vec![b]
        );
    }
}
