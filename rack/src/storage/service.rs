//! The rack's volume service: asks the region which volumes to serve or remove, clones them
//! (golden volume first), writes the machine's cloud-init datasource into its clone, keeps tgtd
//! serving exactly the wanted targets (every few seconds, so a restarted tgtd gets them back at
//! once), and reports each volume. What it serves is kept on disk (`iscsi-volumes.json`, 0600:
//! it holds CHAP secrets), so a restarted rack serves its machines again with the region away.
//! The boot scripts of those machines are answered from [`IscsiBoots`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rack_proto::ipxe::IscsiBoot;
use rack_proto::iscsi::{self, Portal, WantedTarget};
use region_api_types as api;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::volumes::{self, CloneMethod, Store};
use super::TargetDriver;
use crate::config::IscsiConfig;
use crate::region::RegionClient;
use crate::state::Served;
use crate::{Error, Result};

/// MAC (lowercase, `aa:bb:…`) → what its iPXE script needs.
pub type IscsiBoots = Arc<RwLock<HashMap<String, IscsiBoot>>>;

/// How often tgtd is checked against the wanted targets (and the region asked).
const TICK: Duration = Duration::from_secs(3);
/// How often a volume's own bytes are measured and reported again.
const MEASURE_EVERY: Duration = Duration::from_secs(60);
const STATE_FILE: &str = "iscsi-volumes.json";

/// A volume this rack serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Local {
    v: api::RackVolume,
    path: PathBuf,
    method: CloneMethod,
    size_bytes: u64,
    used_bytes: u64,
    /// The region has been told it is ready.
    reported: bool,
    /// To be removed once its machine is off: still served, no longer booted.
    #[serde(default)]
    hold: bool,
}

pub struct Service {
    cfg: IscsiConfig,
    /// The rack's own HTTP port (the machine's metadata comes from `http://<portal ip>:port`).
    http_port: u16,
    driver: Box<dyn TargetDriver>,
    store: Store,
    images: PathBuf,
    state_path: PathBuf,
    client: RegionClient,
    boots: IscsiBoots,
    local: BTreeMap<String, Local>,
    method: CloneMethod,
}

impl Service {
    /// Checks the settings (a known driver, an absolute store it can write) and loads what the
    /// rack served before it stopped.
    pub async fn open(
        cfg: IscsiConfig,
        http_port: u16,
        data_dir: &Path,
        images: PathBuf,
        client: RegionClient,
        boots: IscsiBoots,
    ) -> Result<Service> {
        let driver = super::build(&cfg.driver, cfg.control_port)?;
        let store = Store::open(&cfg.store)?;
        let method = store.probe_clone_method().await?;
        let state_path = data_dir.join(STATE_FILE);
        let local: BTreeMap<String, Local> = match std::fs::read(&state_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::Storage(format!("{} is not readable: {e}", state_path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::Storage(format!("{}: {e}", state_path.display()))),
        };
        tracing::info!(
            store = %cfg.store.display(), portal = %cfg.portal, driver = driver.name(),
            clone = method.as_str(), volumes = local.len(),
            "root on iSCSI: serving volumes"
        );
        // tgtd may still serve what this rack made before it restarted: it is not made again
        // (which would log every machine out).
        driver.remember(&local.values().map(wanted).collect::<Vec<_>>());
        let s = Service {
            cfg,
            http_port,
            driver,
            store,
            images,
            state_path,
            client,
            boots,
            local,
            method,
        };
        s.publish();
        Ok(s)
    }

    /// Runs until cancelled.
    pub async fn run(
        mut self,
        mut rx: watch::Receiver<Arc<Served>>,
        cancel: CancellationToken,
    ) -> Result<()> {
        let mut measured = Instant::now();
        let mut last_error: Option<String> = None;
        loop {
            let mut error = self.driver.check().await.err().map(|e| e.to_string());
            let mut applied = false;
            if error.is_none() {
                match self.client.volumes().await {
                    Ok(feed) => self.follow(feed).await,
                    Err(e) => {
                        tracing::debug!("volume list not fetched ({e}); serving what is known")
                    }
                }
                match self.apply().await {
                    Ok(()) => applied = true,
                    Err(e) => error = Some(e.to_string()),
                }
            }
            if error != last_error {
                match &error {
                    Some(e) => tracing::warn!("root on iSCSI: {e}"),
                    None => tracing::info!("root on iSCSI: the target daemon answers"),
                }
                last_error = error.clone();
            }
            if measured.elapsed() >= MEASURE_EVERY {
                measured = Instant::now();
                self.measure().await;
            }
            // Ready only once tgtd really serves it: the region powers the machine on then.
            if applied {
                self.report_ready().await;
            }
            self.client.set_iscsi(api::RackIscsi {
                portal: self.cfg.portal.to_string(),
                driver: self.driver.name().into(),
                clone_method: self.method.as_str().into(),
                store_free_bytes: self.store.free_bytes().unwrap_or(0),
                error,
            });
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                r = rx.changed() => if r.is_err() { return Ok(()) },
                _ = cancel.cancelled() => return Ok(()),
            }
        }
    }

    /// Acts on the region's list: new volumes are made, removed ones go. Only `remove` stops a
    /// target: a volume the list leaves out keeps being served (a machine may run from it).
    async fn follow(&mut self, feed: api::RackVolumes) {
        for v in feed.volumes {
            let hold = v.action == "hold";
            if let Some(l) = self.local.get_mut(&v.id) {
                if l.hold != hold || l.v.boot_mac != v.boot_mac {
                    l.hold = hold;
                    l.v.boot_mac = v.boot_mac.clone();
                    self.save();
                }
            }
            match v.action.as_str() {
                "serve" if !self.local.contains_key(&v.id) => self.make(v).await,
                "remove" => self.remove(v).await,
                _ => {}
            }
        }
    }

    /// Clones a machine's volume (making the golden volume first if needed) and writes its
    /// datasource. The target itself is made by the next `apply`.
    async fn make(&mut self, v: api::RackVolume) {
        let squashfs = crate::images::path_of(&self.images, &v.image.sha256.to_ascii_lowercase());
        if !squashfs.exists() {
            tracing::debug!(volume = %v.id, "waiting for image {} to be fetched", v.image.filename);
            return;
        }
        // A clone made before this rack lost track of it (a crash before its state was saved):
        // adopted as it is, never made again over a machine's root.
        if self.store.volume_path(&v.id).is_ok_and(|p| p.exists()) {
            match self.store.volume(&v.id, self.method).await {
                Ok(vol) => {
                    tracing::warn!(machine.id = %v.system_id, "volume {} was on the store already: serving it as it is", v.id);
                    self.adopt(v, vol);
                }
                Err(e) => tracing::error!(machine.id = %v.system_id, "volume {}: {e}", v.id),
            }
            return;
        }
        let t0 = Instant::now();
        match self.clone_for(&v, &squashfs).await {
            Ok(vol) => {
                tracing::info!(
                    machine.id = %v.system_id,
                    "volume {} cloned by {} in {} ms: {} bytes, {} of its own",
                    v.id,
                    vol.method.as_str(),
                    t0.elapsed().as_millis(),
                    vol.size_bytes,
                    vol.used_bytes
                );
                self.adopt(v, vol);
            }
            Err(e) => {
                tracing::error!(machine.id = %v.system_id, "volume {} could not be made: {e}", v.id);
                // Only what this attempt made goes: nothing was stored under the volume's name.
                self.store.discard_partial(&v.id);
                let r = api::RackVolumeReport {
                    state: "failed".into(),
                    portal: Some(self.cfg.portal.to_string()),
                    clone_method: None,
                    size_bytes: None,
                    used_bytes: None,
                    message: e.to_string(),
                };
                if let Err(e) = self.client.volume_report(&v.id, &r).await {
                    tracing::warn!("could not report volume {}: {e}", v.id);
                }
            }
        }
    }

    fn adopt(&mut self, v: api::RackVolume, vol: volumes::Volume) {
        self.local.insert(
            v.id.clone(),
            Local {
                path: vol.path,
                method: vol.method,
                size_bytes: vol.size_bytes,
                used_bytes: vol.used_bytes,
                reported: false,
                hold: false,
                v,
            },
        );
        self.save();
    }

    async fn clone_for(&self, v: &api::RackVolume, squashfs: &Path) -> Result<volumes::Volume> {
        if !iscsi::valid_chap_secret(&v.chap_secret) || !iscsi::valid_iqn(&v.initiator_iqn) {
            return Err(Error::Storage(
                "the region sent an unusable CHAP secret or initiator name".into(),
            ));
        }
        let golden = self
            .store
            .ensure_golden(squashfs, &v.image.sha256.to_ascii_lowercase())
            .await?;
        let size = (v.requested_bytes > 0).then_some(v.requested_bytes);
        let vol = self.store.clone_volume(&golden, &v.id, size).await?;
        let base = format!(
            "http://{}",
            std::net::SocketAddr::new(self.cfg.portal.ip, self.http_port)
        );
        volumes::write_into(
            &vol.path,
            "/etc/cloud/cloud.cfg.d",
            "90_kiln.cfg",
            iscsi::seed_config(&base, &v.seed_token).as_bytes(),
        )
        .await?;
        self.store.volume(&v.id, vol.method).await
    }

    /// Removes a volume's target (closing its sessions), then its file unless it is kept.
    async fn remove(&mut self, v: api::RackVolume) {
        let had = self.local.remove(&v.id).is_some();
        if had {
            self.save();
        }
        if let Err(e) = self.apply().await {
            tracing::warn!(volume = %v.id, "target of volume {} not removed yet: {e}", v.id);
            return;
        }
        let file = if v.keep_file {
            "file kept".to_string()
        } else {
            match self.store.delete(&v.id) {
                Ok(true) => "file deleted".to_string(),
                Ok(false) => "no file left".to_string(),
                Err(e) => {
                    tracing::warn!(volume = %v.id, "{e}");
                    return;
                }
            }
        };
        let r = api::RackVolumeReport {
            state: "removed".into(),
            portal: None,
            clone_method: None,
            size_bytes: None,
            used_bytes: None,
            message: format!("Rack: target removed, {file}."),
        };
        match self.client.volume_report(&v.id, &r).await {
            Ok(()) => {
                tracing::info!(machine.id = %v.system_id, volume = %v.id, "volume {} removed ({file})", v.id)
            }
            Err(e) => tracing::warn!("could not report volume {}: {e}", v.id),
        }
    }

    /// Makes tgtd serve exactly the local volumes; the boot scripts follow.
    async fn apply(&self) -> Result<()> {
        let wanted: Vec<WantedTarget> = self.local.values().map(wanted).collect();
        let changes = self.driver.apply(&wanted).await?;
        if !changes.is_empty() {
            tracing::info!("tgtd: {}", changes.join("; "));
        }
        self.publish();
        Ok(())
    }

    async fn measure(&mut self) {
        let mut changed = false;
        for l in self.local.values_mut() {
            if let Ok(vol) = self.store.volume(&l.v.id, l.method).await {
                if vol.used_bytes != l.used_bytes {
                    l.used_bytes = vol.used_bytes;
                    l.reported = false;
                    changed = true;
                }
            }
        }
        if changed {
            self.save();
        }
    }

    /// Tells the region about volumes served (or measured) since it last heard.
    async fn report_ready(&mut self) {
        let portal = self.cfg.portal.to_string();
        let mut changed = false;
        for l in self.local.values_mut().filter(|l| !l.reported) {
            let r = api::RackVolumeReport {
                state: "ready".into(),
                portal: Some(portal.clone()),
                clone_method: Some(l.method.as_str().into()),
                size_bytes: Some(l.size_bytes),
                used_bytes: Some(l.used_bytes),
                message: format!("Rack: serving {} at {portal}.", iscsi::target_iqn(&l.v.id)),
            };
            match self.client.volume_report(&l.v.id, &r).await {
                Ok(()) => {
                    l.reported = true;
                    changed = true;
                }
                Err(e) => tracing::debug!("volume {} not reported yet: {e}", l.v.id),
            }
        }
        if changed {
            self.save();
        }
    }

    fn publish(&self) {
        // A volume on hold (its machine released, not yet off) is no longer booted: a redeployed
        // machine boots its new volume.
        let map: HashMap<String, IscsiBoot> = self
            .local
            .values()
            .filter(|l| !l.hold)
            .filter_map(|l| {
                let mac = l.v.boot_mac.as_deref()?.to_ascii_lowercase();
                Some((mac, boot_of(&l.v, self.cfg.portal)))
            })
            .collect();
        *self.boots.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    fn save(&self) {
        if let Err(e) = save_private(&self.state_path, &self.local) {
            tracing::error!("could not save {}: {e}", self.state_path.display());
        }
    }
}

fn wanted(l: &Local) -> WantedTarget {
    WantedTarget {
        iqn: iscsi::target_iqn(&l.v.id),
        path: l.path.display().to_string(),
        chap_user: l.v.chap_user.clone(),
        chap_secret: l.v.chap_secret.clone(),
        initiator: l.v.initiator_iqn.clone(),
    }
}

fn boot_of(v: &api::RackVolume, portal: Portal) -> IscsiBoot {
    IscsiBoot {
        name: format!("{}/{}", v.image.os, v.image.release),
        portal,
        target_iqn: iscsi::target_iqn(&v.id),
        initiator_iqn: v.initiator_iqn.clone(),
        chap_user: v.chap_user.clone(),
        chap_secret: v.chap_secret.clone(),
        kernel: v.kernel.clone(),
        initrd: v.initrd.clone(),
        cmdline: Vec::new(),
    }
}

/// Writes `value` as JSON to `path` atomically, readable by its owner only.
fn save_private<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    serde_json::to_writer(&mut tmp, value)?;
    tmp.flush()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
