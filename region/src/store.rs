//! The image store: boot-resource files on the region's disk, addressed by sha256.
//!
//! An upload streams into a temporary file in the store's own directory while its sha256 and length
//! are computed; only when both match what the uploader declared is it renamed (atomically) to
//! `by-sha256/<sha256>`. A failed or interrupted upload leaves nothing but a temp file, removed on
//! drop or at the next start.

use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
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
        })
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

    /// Removes a file no resource refers to any more.
    pub fn remove(&self, sha256: &str) -> Result<()> {
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
}
