//! What the rack serves from: the region's last snapshot, parsed, kept on disk.

use std::path::{Path, PathBuf};

use rack_proto::netconf::NetConf;
use region_api_types::RackSnapshot;

use crate::error::Result;

/// The snapshot in effect and its parsed form.
#[derive(Debug, Clone, Default)]
pub struct Served {
    pub snapshot: Option<RackSnapshot>,
    pub netconf: NetConf,
}

fn path(dir: &Path) -> PathBuf {
    dir.join("snapshot.json")
}

impl Served {
    pub fn from_snapshot(s: RackSnapshot) -> Served {
        Served {
            netconf: NetConf::from_snapshot(&s),
            snapshot: Some(s),
        }
    }

    /// The snapshot saved by the last run, so a rack that restarts while the region is away still
    /// serves; empty (serve nothing) if there is none or it does not parse.
    pub fn load_or_empty(dir: &Path) -> Served {
        match std::fs::read(path(dir)).map(|b| serde_json::from_slice::<RackSnapshot>(&b)) {
            Ok(Ok(s)) => {
                tracing::info!(etag = %s.etag, "serving the saved snapshot until the region answers");
                Served::from_snapshot(s)
            }
            Ok(Err(e)) => {
                tracing::warn!("saved snapshot unreadable ({e}); starting empty");
                Served::default()
            }
            Err(_) => Served::default(),
        }
    }

    pub fn etag(&self) -> Option<&str> {
        self.snapshot.as_ref().map(|s| s.etag.as_str())
    }
}

/// Saves a snapshot atomically (temp file + rename).
pub fn save(dir: &Path, s: &RackSnapshot) -> Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(&mut tmp, s)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path(dir)).map_err(|e| e.error)?;
    Ok(())
}
