//! The image store: boot-resource files on the region's disk, addressed by sha256.
//!
//! An upload streams into a temporary file in the store's own directory while its sha256 and length
//! are computed; only when both match what the uploader declared is it renamed (atomically) to
//! `by-sha256/<sha256>`. A failed or interrupted upload leaves nothing but a temp file, removed on
//! drop or at the next start.
//!
//! A stored file is live once a resource's file row refers to it. An upload **pins** its sha256
//! from before the rename until its row is committed, and a file is removed only by
//! [`Store::remove_if_unused`], which holds the pins' lock while it asks the database whether any
//! row refers to the file *now* and skips pinned ones: so deleting one resource never removes a
//! file another resource (or an upload in flight) has just come to use. Files no row refers to
//! (a crash between rename and commit) are collected at start ([`Store::collect_orphans`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// sha256 → how many uploads are committing it.
    pins: Arc<Mutex<HashMap<String, usize>>>,
}

/// An upload's hold on its sha256 until its file row is committed (released on drop).
#[derive(Debug)]
pub struct Pin {
    pins: Arc<Mutex<HashMap<String, usize>>>,
    sha256: String,
}

impl Drop for Pin {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pins.lock() {
            if let Some(n) = p.get_mut(&self.sha256) {
                *n -= 1;
                if *n == 0 {
                    p.remove(&self.sha256);
                }
            }
        }
    }
}

impl Store {
    /// Opens (creating) the store under `root`, and removes temp files left by a crash.
    pub fn open(root: &Path) -> Result<Store> {
        std::fs::create_dir_all(root.join("by-sha256"))?;
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        Ok(Store {
            root: root.to_path_buf(),
            pins: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Holds `sha256` against removal until the returned pin is dropped: take it before
    /// [`Store::put`], drop it after the file row is committed.
    pub fn pin(&self, sha256: &str) -> Pin {
        if let Ok(mut p) = self.pins.lock() {
            *p.entry(sha256.to_string()).or_insert(0) += 1;
        }
        Pin {
            pins: self.pins.clone(),
            sha256: sha256.to_string(),
        }
    }

    /// Removes the file of `sha256` unless an upload holds it or `in_use` (asked now, under the
    /// pins' lock) says a row refers to it. Returns whether it was removed.
    pub fn remove_if_unused(
        &self,
        sha256: &str,
        in_use: impl FnOnce(&str) -> Result<bool>,
    ) -> Result<bool> {
        let p = self
            .pins
            .lock()
            .map_err(|_| Error::Internal("image store pins".into()))?;
        if p.contains_key(sha256) || in_use(sha256)? {
            return Ok(false);
        }
        self.remove(sha256)?;
        drop(p);
        Ok(true)
    }

    /// Removes every stored file not in `referenced` (and not pinned); returns how many went.
    pub fn collect_orphans(&self, referenced: &HashSet<String>) -> Result<usize> {
        let p = self
            .pins
            .lock()
            .map_err(|_| Error::Internal("image store pins".into()))?;
        let mut n = 0;
        for entry in std::fs::read_dir(self.root.join("by-sha256"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if referenced.contains(&name) || p.contains_key(&name) {
                continue;
            }
            self.remove(&name)?;
            n += 1;
        }
        Ok(n)
    }

    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join("by-sha256").join(sha256)
    }

    /// Streams `body` into the store, verifying it has exactly `size` bytes (when given) and the
    /// given sha256. Returns the size written.
    pub async fn put<S, E>(&self, body: S, sha256: &str, size: Option<u64>, max: u64) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<bytes_like::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let tmp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(self.root.join("tmp"))?;
        let (std_file, tmp_path) = tmp.into_parts();
        let mut file = tokio::fs::File::from_std(std_file);
        let mut hasher = Sha256::new();
        let mut written: u64 = 0;
        let limit = size.unwrap_or(max).min(max);
        let mut body = body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Error::BadRequest(format!(
                    "The upload was cut off after {written} bytes ({e}); nothing was stored. Upload it again."
                ))
            })?;
            written += chunk.len() as u64;
            if written > limit {
                return Err(match size {
                    Some(s) if s < max => Error::Checksum(format!(
                        "The upload is longer than the declared size of {s} bytes; nothing was stored."
                    )),
                    _ => Error::TooLarge(format!(
                        "The upload is larger than the limit of {max} bytes (api.max_upload_bytes); nothing was stored."
                    )),
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        if let Some(s) = size {
            if written != s {
                return Err(Error::Checksum(format!(
                    "The upload is truncated: {written} bytes arrived, {s} were declared; nothing was stored. Upload it again."
                )));
            }
        }
        let got = hex::encode(hasher.finalize());
        if got != sha256 {
            return Err(Error::Checksum(format!(
                "The file's sha256 is {got}, not the {sha256} given; nothing was stored. Check the file and the checksum."
            )));
        }
        file.sync_all().await?;
        drop(file);
        let dest = self.path_of(sha256);
        tmp_path.persist(&dest).map_err(|e| Error::Io(e.error))?;
        Ok(written)
    }

    /// Removes a stored file (callers: [`Store::remove_if_unused`], [`Store::collect_orphans`]).
    fn remove(&self, sha256: &str) -> Result<()> {
        match std::fs::remove_file(self.path_of(sha256)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The chunk type of upload streams (actix's payload yields `bytes::Bytes`).
pub mod bytes_like {
    pub use actix_web::web::Bytes;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(
        chunks: Vec<&'static [u8]>,
    ) -> impl Stream<Item = std::result::Result<bytes_like::Bytes, String>> + Unpin {
        futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok(bytes_like::Bytes::from_static(c))),
        )
    }

    #[tokio::test]
    async fn verified_upload_lands_and_bad_ones_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let sha = hex::encode(Sha256::digest(b"hello world"));
        let n = store
            .put(stream(vec![b"hello ", b"world"]), &sha, Some(11), 1 << 20)
            .await
            .unwrap();
        assert_eq!(n, 11);
        assert_eq!(std::fs::read(store.path_of(&sha)).unwrap(), b"hello world");

        let other = hex::encode(Sha256::digest(b"other"));
        let e = store
            .put(stream(vec![b"hello world"]), &other, None, 1 << 20)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Checksum(_)), "{e}");
        let e = store
            .put(stream(vec![b"hello"]), &sha, Some(11), 1 << 20)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = store
            .put(stream(vec![b"hello world"]), &sha, None, 4)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge(_)), "{e}");
        assert!(!store.path_of(&other).exists());
        // No temp files are left behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn a_pinned_or_referenced_file_is_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let sha = hex::encode(Sha256::digest(b"kernel"));
        let pin = store.pin(&sha);
        store
            .put(stream(vec![b"kernel"]), &sha, Some(6), 1 << 20)
            .await
            .unwrap();
        // An upload between rename and commit: no row refers to it yet, but it stays.
        assert!(!store.remove_if_unused(&sha, |_| Ok(false)).unwrap());
        assert_eq!(store.collect_orphans(&HashSet::new()).unwrap(), 0);
        drop(pin);
        // Committed: a row refers to it now.
        assert!(!store.remove_if_unused(&sha, |_| Ok(true)).unwrap());
        assert!(store.path_of(&sha).exists());
        let referenced: HashSet<String> = [sha.clone()].into();
        assert_eq!(store.collect_orphans(&referenced).unwrap(), 0);
        // No row and no upload: it goes.
        assert_eq!(store.collect_orphans(&HashSet::new()).unwrap(), 1);
        assert!(!store.path_of(&sha).exists());
    }
}
