//! Kiln's rack controller: registers with a region, keeps a local snapshot of what it serves (on
//! disk, so it keeps serving with the region away), and answers machines' DHCP from it.
//!
//! # Layout
//! - [`config`]: settings of `kiln rack`.
//! - [`region`]: the client of the region's `/api/v1/rack/...` endpoints: registration, heartbeats,
//!   the long-polled snapshot, the event queue.
//! - [`dhcp`]: the DHCP shell: sockets per managed interface plus one for relays, the lease journal;
//!   every decision is `rack_proto::dhcp::handle`.
//! - [`proxy`]: the caching HTTP proxy for machines (port 8000; decisions in `rack_proto::proxy`).
//! - [`dns`]: the DNS shell: hickory-server's UDP/TCP listeners, answers from
//!   `rack_proto::dns::Zones` (rebuilt on a new snapshot or lease), forwarding, the client check.
//! - [`ifaces`]: the host's interfaces and addresses.
//!
//! **Architecture invariant:** DHCP, TFTP, file downloads and local-disk boot scripts never wait on
//! the region: they answer from the snapshot in memory; what they observe is queued and sent later.
//! Only an iPXE script that needs the region asks it (enlisting an unknown MAC, minting an ephemeral
//! boot's credential), with a 10 s limit and a wait-and-retry script when it cannot be reached.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub mod config;
pub mod dhcp;
pub mod dns;
pub mod error;
pub mod events;
pub mod http;
pub mod ifaces;
pub mod images;
pub mod journal;
pub mod metrics;
pub mod pin;
pub mod pods;
pub mod power;
pub mod proxy;
pub mod ra;
pub mod region;
pub mod state;
pub mod storage;
pub mod tftp;

pub use config::RackConfig;
pub use error::{Error, Result};

/// Runs the rack until `cancel` fires or a service fails (which cancels the others).
pub async fn run(cfg: RackConfig, cancel: CancellationToken) -> Result<()> {
    cfg.validate()?;
    std::fs::create_dir_all(&cfg.data_dir)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let served = state::Served::load_or_empty(&cfg.data_dir);
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(served));
    let events = events::EventQueue::open(&cfg.data_dir, metrics.clone())?;
    let client = region::RegionClient::new(&cfg)?;
    let store = Arc::new(std::sync::Mutex::new(dhcp::LeaseStore::open(
        &cfg.data_dir,
        metrics.clone(),
    )?));
    let boot_dir = cfg.data_dir.join("boot");
    std::fs::create_dir_all(&boot_dir)?;
    let files = Arc::new(tftp::FileSource::new(vec![
        boot_dir.clone(),
        "/usr/lib/ipxe".into(),
    ]));
    let http_listener = std::net::TcpListener::bind(cfg.http_bind)
        .map_err(|e| Error::Config(format!("cannot listen for HTTP on {}: {e}", cfg.http_bind)))?;
    let images_dir = cfg.data_dir.join("images");
    std::fs::create_dir_all(&images_dir)?;
    let tftp_sock = tftp::bind(cfg.tftp_bind)
        .map_err(|e| Error::Config(format!("cannot listen for TFTP on {}: {e}", cfg.tftp_bind)))?;
    let dns_sockets = match &cfg.dns {
        Some(d) => Some(dns::bind(d)?),
        None => None,
    };
    let proxy_listener = match &cfg.proxy {
        Some(p) => Some(proxy::bind(p)?),
        None => None,
    };

    let iscsi_boots: storage::service::IscsiBoots = Default::default();
    let iscsi = match cfg.iscsi.clone() {
        Some(ic) => {
            let (portal, driver) = (ic.portal.to_string(), ic.driver.clone());
            match storage::service::Service::open(
                ic,
                cfg.http_port,
                &cfg.data_dir,
                images_dir.clone(),
                client.clone(),
                iscsi_boots.clone(),
            )
            .await
            {
                Ok(s) => Some(s),
                // A wrong flag (a driver that is not there, a relative store) stops the rack.
                Err(e @ Error::Config(_)) => return Err(e),
                // DHCP, TFTP and HTTP boot still run; the region hears why no volume can be made.
                Err(e) => {
                    tracing::error!("root on iSCSI is off: {e}");
                    client.set_iscsi(region_api_types::RackIscsi {
                        portal,
                        driver,
                        clone_method: "copy".into(),
                        store_free_bytes: 0,
                        error: Some(e.to_string()),
                    });
                    None
                }
            }
        }
        None => None,
    };

    let mut tasks = tokio::task::JoinSet::new();
    {
        let (cfg, cancel, events, metrics) =
            (cfg.clone(), cancel.clone(), events.clone(), metrics.clone());
        let rx = rx.clone();
        let store = store.clone();
        tasks.spawn(async move { dhcp::serve(cfg, rx, store, events, metrics, cancel).await });
    }
    {
        let (cancel, metrics, events, store) = (
            cancel.clone(),
            metrics.clone(),
            events.clone(),
            store.clone(),
        );
        let on_sent = Arc::new(move |s: tftp::Sent| {
            let std::net::IpAddr::V4(ip) = s.peer.ip() else {
                return;
            };
            let mac = dhcp::LeaseStore::lock(&store).mac_of(ip);
            if let Some(mac) = mac {
                events.push(region_api_types::RackEvent {
                    mac: rack_proto::fmt_mac(&mac),
                    event_type: "tftp_sent".into(),
                    description: format!("sent {} ({} bytes) over TFTP", s.path, s.size),
                    at: chrono::Utc::now().to_rfc3339(),
                    ip: None,
                });
            }
        });
        let files = files.clone();
        let limits = cfg.tftp_limits;
        tasks.spawn(async move {
            tftp::serve(tftp_sock, files, limits, metrics, on_sent, cancel).await
        });
    }
    if let (Some(dcfg), Some(socks)) = (cfg.dns.clone(), dns_sockets) {
        let (cancel, metrics, store, rx) =
            (cancel.clone(), metrics.clone(), store.clone(), rx.clone());
        tasks.spawn(async move { dns::serve(dcfg, socks, rx, store, metrics, cancel).await });
    }
    if let (Some(pcfg), Some(l)) = (cfg.proxy.clone(), proxy_listener) {
        let (cancel, metrics, rx, dir) = (
            cancel.clone(),
            metrics.clone(),
            rx.clone(),
            cfg.data_dir.clone(),
        );
        tasks.spawn(async move { proxy::serve(pcfg, l, &dir, rx, metrics, cancel).await });
    }
    {
        let state = http::HttpState {
            rx: rx.clone(),
            store: store.clone(),
            boot_files: files.clone(),
            images: images_dir.clone(),
            events: events.clone(),
            metrics: metrics.clone(),
            region: client.clone(),
            iscsi: iscsi_boots.clone(),
            proxy: cfg.proxy.as_ref().map(|p| p.bind),
        };
        let cancel = cancel.clone();
        tasks.spawn(async move { http::serve(http_listener, state, cancel).await });
    }
    {
        let (client, rx, cancel) = (client.clone(), rx.clone(), cancel.clone());
        tasks.spawn(async move { images::sync(client, rx, images_dir, boot_dir, cancel).await });
    }
    if let Some(svc) = iscsi {
        let (rx, cancel) = (rx.clone(), cancel.clone());
        tasks.spawn(async move { svc.run(rx, cancel).await });
    }
    {
        let (client, cancel) = (client.clone(), cancel.clone());
        let pcfg = power::ServeConfig {
            concurrency: cfg.power_concurrency,
            ..Default::default()
        };
        tasks.spawn(async move { power::serve(client, pcfg, cancel).await });
    }
    {
        let (client, cancel) = (client.clone(), cancel.clone());
        tasks.spawn(async move { pods::serve(client, cancel).await });
    }
    {
        let (cfg, cancel) = (cfg.clone(), cancel.clone());
        tasks.spawn(async move { region::sync(client, cfg, tx, events, cancel).await });
    }
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        let r = match done {
            Ok(r) => r,
            // Stopped on purpose (the rack is shutting down).
            Err(e) if e.is_cancelled() && cancel.is_cancelled() => Ok(()),
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
