//! Kiln's rack controller: registers with a region, keeps a local snapshot of what it serves (on
//! disk, so it keeps serving with the region away), and answers machines' DHCP from it.
//!
//! # Layout
//! - [`config`]: settings of `kiln rack`.
//! - [`region`]: the client of the region's `/api/v1/rack/...` endpoints: registration, heartbeats,
//!   the long-polled snapshot, the event queue.
//! - [`dhcp`]: the DHCP shell: sockets per managed interface plus one for relays, the lease journal;
//!   every decision is `rack_proto::dhcp::handle`.
//! - [`ifaces`]: the host's interfaces and addresses.
//!
//! **Architecture invariant:** no boot answer waits on the region: DHCP reads the snapshot in
//! memory; what it observes is queued and sent later.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub mod config;
pub mod dhcp;
pub mod error;
pub mod ifaces;
pub mod metrics;
pub mod region;
pub mod state;

pub use config::RackConfig;
pub use error::{Error, Result};

/// Runs the rack until `cancel` fires or a service fails (which cancels the others).
pub async fn run(cfg: RackConfig, cancel: CancellationToken) -> Result<()> {
    cfg.validate()?;
    std::fs::create_dir_all(&cfg.data_dir)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let served = state::Served::load_or_empty(&cfg.data_dir);
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(served));
    let events = region::EventQueue::open(&cfg.data_dir)?;
    let client = region::RegionClient::new(&cfg)?;

    let mut tasks = tokio::task::JoinSet::new();
    {
        let (cfg, cancel, events, metrics) =
            (cfg.clone(), cancel.clone(), events.clone(), metrics.clone());
        let rx = rx.clone();
        tasks.spawn(async move { dhcp::serve(cfg, rx, events, metrics, cancel).await });
    }
    {
        let (cfg, cancel) = (cfg.clone(), cancel.clone());
        tasks.spawn(async move { region::sync(client, cfg, tx, events, cancel).await });
    }
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        let r = match done {
            Ok(r) => r,
            Err(e) => Err(Error::Internal(format!("rack task died: {e}"))),
        };
        if let Err(e) = r {
            tracing::error!("rack service failed: {e}");
            if result.is_ok() {
                result = Err(e);
            }
            cancel.cancel();
        }
        if cancel.is_cancelled() {
            tasks.abort_all();
        }
    }
    drop(rx);
    result
}
