//! Root on iSCSI, the rack's side: a target driver behind [`TargetDriver`] (one module per
//! driver; [`tgt`] today) and the volume store ([`volumes`]: one golden volume per OS image, one
//! copy-on-write clone per deployed machine). The names, `tgtadm` argument vectors, the parser of
//! `tgtadm --op show` and the reconciliation are pure, in `rack_proto::iscsi`.
//!
//! Seams left on purpose, not code: an LIO driver needs configfs (`/sys/kernel/config`), and LVM
//! thin snapshots need device-mapper; this kernel has neither, so nothing here could be tested.

pub mod service;
pub mod tgt;
pub mod volumes;

use futures_util::future::BoxFuture;
use rack_proto::iscsi::{ShownTarget, WantedTarget};

use crate::{Error, Result};

/// An iSCSI target daemon the rack configures (it never starts one: the host's service manager
/// does, or the lab as a plain process).
pub trait TargetDriver: Send + Sync {
    /// `tgt`.
    fn name(&self) -> &'static str;
    /// Whether the daemon answers; the error says what to do when it does not.
    fn check(&self) -> BoxFuture<'_, Result<()>>;
    /// Makes the daemon serve exactly `wanted` among Kiln's targets (others are left alone).
    /// Returns what it changed, in words without secrets.
    fn apply<'a>(&'a self, wanted: &'a [WantedTarget]) -> BoxFuture<'a, Result<Vec<String>>>;
    /// The targets the daemon serves now.
    fn show(&self) -> BoxFuture<'_, Result<Vec<ShownTarget>>>;
    /// What this rack gave the daemon before it restarted (secrets cannot be read back): what
    /// still matches is kept, not re-made.
    fn remember(&self, wanted: &[WantedTarget]);
}

/// The registry: the driver named `name`.
pub fn build(name: &str, control_port: u16) -> Result<Box<dyn TargetDriver>> {
    match name {
        "tgt" => Ok(Box::new(tgt::Tgt::new(control_port))),
        "lio" => Err(Error::Config(
            "the LIO target needs configfs (/sys/kernel/config), which this kernel does not have; use --iscsi-driver tgt".into(),
        )),
        other => Err(Error::Config(format!(
            "'{other}' is not an iSCSI target driver (there is: tgt)"
        ))),
    }
}
