//! The proxy's on-disk cache: `<key>.meta` (JSON) names the body file `<key>.<version>.body` it
//! describes, so a response being replaced never mixes with its successor. Everything that
//! changes what a key means (the rename into place, the meta, the index, eviction) happens under
//! the index's lock, and a reader opens the body under the same lock: a body deleted afterwards
//! stays readable through the reader's open file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rack_proto::proxy::Lru;

use crate::error::{Error, Result};

/// What each kept object costs beyond its body (its meta file and index entry), so that empty
/// responses cannot fill the disk with entries that count for nothing.
pub const ENTRY_OVERHEAD: u64 = 4096;

/// A stored response's description.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub size: u64,
    /// The body's file name in the cache directory.
    #[serde(default)]
    pub body: String,
}

struct Index {
    lru: Lru,
    meta: HashMap<String, Meta>,
}

/// The on-disk cache and its index.
pub struct Cache {
    pub dir: PathBuf,
    cap: u64,
    index: Mutex<Index>,
    version: AtomicU64,
}

fn charge(size: u64) -> u64 {
    size.saturating_add(ENTRY_OVERHEAD)
}

/// A body file's name belongs to `key` (and to nothing outside the directory).
fn body_of(key: &str, name: &str) -> bool {
    name.strip_prefix(key)
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_suffix(".body"))
        .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_hexdigit()))
}

impl Cache {
    /// Opens (or makes) the cache directory and indexes what is there, oldest first; bodies no
    /// meta names, metas whose body is missing or of another size, and leftovers of downloads
    /// cut short are deleted.
    pub fn open(dir: &Path, cap: u64) -> Result<Cache> {
        std::fs::create_dir_all(dir)?;
        let mut found: Vec<(std::time::SystemTime, String, Meta)> = Vec::new();
        let mut bodies: Vec<PathBuf> = Vec::new();
        for e in std::fs::read_dir(dir)?.flatten() {
            let p = e.path();
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".body") {
                bodies.push(p.clone());
                continue;
            }
            let Some(key) = name.strip_suffix(".meta") else {
                if name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(&p);
                }
                continue;
            };
            let meta = std::fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<Meta>(&b).ok())
                .filter(|m| body_of(key, &m.body));
            let body = meta.as_ref().map(|m| std::fs::metadata(dir.join(&m.body)));
            match (meta, body) {
                (Some(m), Some(Ok(b))) if b.len() == m.size => {
                    let t = b.modified().unwrap_or(std::time::UNIX_EPOCH);
                    found.push((t, key.to_string(), m));
                }
                _ => {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        found.sort_by_key(|(t, _, _)| *t);
        let mut idx = Index {
            lru: Lru::new(cap),
            meta: HashMap::new(),
        };
        for (_, key, m) in found {
            for gone in idx.lru.insert(&key, charge(m.size)) {
                if let Some(g) = idx.meta.remove(&gone) {
                    remove_files(dir, &gone, &g);
                }
            }
            if idx.lru.contains(&key) {
                idx.meta.insert(key, m);
            } else {
                remove_files(dir, &key, &m);
            }
        }
        let kept: HashSet<&str> = idx.meta.values().map(|m| m.body.as_str()).collect();
        for b in bodies {
            let name = b.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !kept.contains(name) {
                let _ = std::fs::remove_file(&b);
            }
        }
        tracing::info!(
            objects = idx.meta.len(),
            bytes = idx.lru.total(),
            "proxy cache loaded"
        );
        Ok(Cache {
            dir: dir.to_path_buf(),
            cap,
            index: Mutex::new(idx),
            version: AtomicU64::new(0),
        })
    }

    /// The largest body worth downloading into the cache.
    pub fn max_object(&self) -> u64 {
        self.cap.saturating_sub(ENTRY_OVERHEAD)
    }

    /// The stored response for `key` with its body open (marked used).
    pub fn get(&self, key: &str) -> Option<(Meta, std::fs::File)> {
        let mut idx = self.index.lock().ok()?;
        let m = idx.meta.get(key).cloned()?;
        match std::fs::File::open(self.dir.join(&m.body)) {
            Ok(f) => {
                idx.lru.touch(key);
                Some((m, f))
            }
            Err(e) => {
                tracing::warn!("proxy cache: {} is gone ({e}); dropping it", m.body);
                idx.meta.remove(key);
                idx.lru.remove(key);
                let _ = std::fs::remove_file(self.dir.join(format!("{key}.meta")));
                None
            }
        }
    }

    /// Keeps a complete download as `key`'s response: its body under a name of its own, then its
    /// meta (written beside and renamed over the old one), the index and the LRU told, and what
    /// that replaces or evicts deleted.
    pub fn store(&self, key: &str, mut meta: Meta, tmp: tempfile::NamedTempFile) -> Result<()> {
        let mut idx = self
            .index
            .lock()
            .map_err(|_| Error::Internal("proxy cache index poisoned".into()))?;
        let v = self.version.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        meta.body = format!("{key}.{nanos:x}{v:x}.body");
        let body = self.dir.join(&meta.body);
        tmp.persist(&body).map_err(|e| e.error)?;
        let written = (|| -> Result<()> {
            let mut m = tempfile::Builder::new()
                .suffix(".tmp")
                .tempfile_in(&self.dir)?;
            std::io::Write::write_all(&mut m, &serde_json::to_vec(&meta)?)?;
            m.persist(self.dir.join(format!("{key}.meta")))
                .map_err(|e| e.error)?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&body);
            return Err(e);
        }
        let size = meta.size;
        if let Some(old) = idx.meta.insert(key.to_string(), meta) {
            let _ = std::fs::remove_file(self.dir.join(&old.body));
        }
        for gone in idx.lru.insert(key, charge(size)) {
            if let Some(g) = idx.meta.remove(&gone) {
                remove_files(&self.dir, &gone, &g);
            }
        }
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn keys(&self) -> Vec<String> {
        let idx = self.index.lock().unwrap();
        let mut k: Vec<String> = idx.meta.keys().cloned().collect();
        k.sort();
        k
    }
}

fn remove_files(dir: &Path, key: &str, m: &Meta) {
    let _ = std::fs::remove_file(dir.join(format!("{key}.meta")));
    let _ = std::fs::remove_file(dir.join(&m.body));
}
