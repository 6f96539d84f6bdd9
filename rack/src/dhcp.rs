//! The DHCP shell: sockets and the lease journal around `rack_proto::dhcp::handle`.
//!
//! Sockets, the way dnsmasq does it: one UDP socket on port 67 bound (`SO_BINDTODEVICE`) to each
//! interface that has an address inside a subnet the region marks managed, so direct clients are
//! answered only there; plus one unbound socket that answers **relayed** requests only (giaddr set,
//! inside a managed subnet), whichever interface they arrive on. The set is reconciled whenever
//! the snapshot changes and every 10 s (interfaces come and go).
//!
//! A reply to a client that has no address yet and did not ask for broadcast goes unicast to its
//! hardware address: a neighbour entry (`ip neigh replace`) is added first, as dnsmasq injects an
//! ARP entry; if that fails the reply is broadcast.
//!
//! Leases: every change is appended to `leases.jsonl` before the reply is sent (so a restart, even
//! `kill -9`, never hands one address to two clients); the journal is compacted at start.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rack_proto::dhcp::{self, BootConf, Dest, Ingress};
use rack_proto::leases::{LeaseChange, Leases};
use region_api_types::RackEvent;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::RackConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::region::EventQueue;
use crate::state::Served;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The lease table and its journal, changed together under one lock.
pub struct LeaseStore {
    leases: Leases,
    journal: std::fs::File,
}

impl LeaseStore {
    /// Replays `leases.jsonl` and rewrites it compacted.
    pub fn open(dir: &Path) -> Result<LeaseStore> {
        let path = dir.join("leases.jsonl");
        let mut leases = Leases::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            let mut bad = 0;
            for line in text.lines() {
                match serde_json::from_str::<LeaseChange>(line) {
                    Ok(ch) => leases.apply(&ch),
                    Err(_) => bad += 1,
                }
            }
            if bad > 0 {
                // A line cut short by a crash mid-write: the change it held was never acknowledged.
                tracing::warn!("lease journal: skipped {bad} unreadable line(s)");
            }
        }
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        for ch in leases.snapshot(now_secs()) {
            writeln!(tmp, "{}", serde_json::to_string(&ch)?)?;
        }
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        let journal = std::fs::OpenOptions::new().append(true).open(&path)?;
        tracing::info!(leases = leases.len(), "lease journal loaded");
        Ok(LeaseStore { leases, journal })
    }

    fn record(&mut self, changes: &[LeaseChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut buf = String::new();
        for ch in changes {
            buf.push_str(&serde_json::to_string(ch)?);
            buf.push('\n');
        }
        // One write per packet: the kernel has it before the reply leaves.
        self.journal.write_all(buf.as_bytes())?;
        Ok(())
    }

    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The MAC currently holding `ip`, if any.
    pub fn mac_of(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.leases.by_ip(ip).map(|l| l.mac)
    }
}

/// A socket and the interface it serves (`None`: the relay socket).
struct Listener {
    iface: Option<(String, Ipv4Addr)>,
    cancel: CancellationToken,
}

fn bind(port: u16, device: Option<&str>) -> Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    if let Some(d) = device {
        s.bind_device(Some(d.as_bytes()))?;
    }
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
    Ok(UdpSocket::from_std(s.into())?)
}

/// Interfaces to serve: those with an address inside a managed subnet → (name, that address).
fn wanted(served: &Served) -> HashSet<(String, Ipv4Addr)> {
    let mut out = HashSet::new();
    for i in crate::ifaces::list() {
        for (addr, _) in &i.v4 {
            if served.netconf.managed_subnet_for(*addr).is_some() {
                out.insert((i.name.clone(), *addr));
            }
        }
    }
    out
}

struct Shared {
    cfg: RackConfig,
    rx: watch::Receiver<Arc<Served>>,
    store: Arc<Mutex<LeaseStore>>,
    events: EventQueue,
    metrics: Arc<Metrics>,
    /// Neighbour entries this rack added, and when.
    neigh: Mutex<HashMap<(String, Ipv4Addr), Added>>,
    /// Our source address towards each relay.
    relay_src: Mutex<HashMap<Ipv4Addr, Ipv4Addr>>,
}

/// Serves DHCP until cancelled.
pub async fn serve(
    cfg: RackConfig,
    mut rx: watch::Receiver<Arc<Served>>,
    store: Arc<Mutex<LeaseStore>>,
    events: EventQueue,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> Result<()> {
    if !cfg.dhcp_enabled {
        cancel.cancelled().await;
        return Ok(());
    }
    let shared = Arc::new(Shared {
        rx: rx.clone(),
        cfg: cfg.clone(),
        store,
        events,
        metrics,
        neigh: Mutex::new(HashMap::new()),
        relay_src: Mutex::new(HashMap::new()),
    });
    let relay_sock = Arc::new(bind(cfg.dhcp_port, None).map_err(|e| {
        Error::Config(format!(
            "cannot listen for DHCP on port {}: {e}",
            cfg.dhcp_port
        ))
    })?);
    let relay = Listener {
        iface: None,
        cancel: cancel.child_token(),
    };
    tokio::spawn(listen(
        shared.clone(),
        relay_sock,
        None,
        relay.cancel.clone(),
    ));
    let mut listeners: Vec<Listener> = vec![relay];

    loop {
        let want = wanted(&rx.borrow());
        // Stop listeners no longer wanted, start the new ones.
        listeners.retain(|l| match &l.iface {
            Some(i) if !want.contains(i) => {
                tracing::info!(iface = %i.0, "DHCP: no longer serving {} ({})", i.0, i.1);
                l.cancel.cancel();
                false
            }
            _ => true,
        });
        for w in want {
            if listeners.iter().any(|l| l.iface.as_ref() == Some(&w)) {
                continue;
            }
            match bind(cfg.dhcp_port, Some(&w.0)) {
                Ok(sock) => {
                    tracing::info!(iface = %w.0, "DHCP: serving {} ({})", w.0, w.1);
                    let l = Listener {
                        iface: Some(w.clone()),
                        cancel: cancel.child_token(),
                    };
                    if cfg.ra_enabled {
                        let mac = crate::ifaces::list()
                            .into_iter()
                            .find(|i| i.name == w.0)
                            .and_then(|i| i.mac.as_deref().and_then(rack_proto::parse_mac));
                        let (name, metrics, c) =
                            (w.0.clone(), shared.metrics.clone(), l.cancel.clone());
                        tokio::spawn(crate::ra::serve(name, mac, metrics, c));
                    }
                    tokio::spawn(listen(
                        shared.clone(),
                        Arc::new(sock),
                        Some(w),
                        l.cancel.clone(),
                    ));
                    listeners.push(l);
                }
                Err(e) => tracing::warn!(iface = %w.0, "DHCP: cannot listen on {}: {e}", w.0),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = rx.changed() => if r.is_err() { break },
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
    for l in &listeners {
        l.cancel.cancel();
    }
    Ok(())
}

async fn listen(
    shared: Arc<Shared>,
    sock: Arc<UdpSocket>,
    iface: Option<(String, Ipv4Addr)>,
    cancel: CancellationToken,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!("DHCP recv: {e}");
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        shared.metrics.inc("dhcp_received");
        let msg = match dhcp::decode_checked(&buf[..n]) {
            Ok(m) => m,
            Err(why) => {
                shared.metrics.inc("dhcp_malformed");
                tracing::debug!(peer = %peer, "DHCP: dropped malformed packet ({why:?})");
                continue;
            }
        };
        let giaddr = msg.giaddr();
        let ingress = match &iface {
            Some((_, addr)) => Ingress { addr: *addr },
            None => {
                // The relay socket answers relayed requests only.
                if giaddr.is_unspecified() {
                    continue;
                }
                match source_towards(&shared, giaddr).await {
                    Some(addr) => Ingress { addr },
                    None => continue,
                }
            }
        };
        let served = shared.rx.borrow().clone();
        let boot = BootConf {
            http_port: shared.cfg.http_port,
            dns: shared.cfg.dns.as_ref().map(|d| match d.bind.ip() {
                std::net::IpAddr::V4(v4) => v4,
                std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
            }),
        };
        let outcome = {
            let Ok(mut store) = shared.store.lock() else {
                return;
            };
            let o = dhcp::handle(
                &msg,
                &ingress,
                &served.netconf,
                &boot,
                &mut store.leases,
                now_secs(),
            );
            if let Err(e) = store.record(&o.changes) {
                // Not persisted means not promised: drop the reply rather than risk a duplicate.
                tracing::error!("lease journal write failed: {e}; reply withheld");
                shared.metrics.inc("dhcp_journal_error");
                continue;
            }
            o
        };
        let at = chrono::Utc::now().to_rfc3339();
        for ob in outcome.observed {
            shared.events.push(RackEvent {
                mac: rack_proto::fmt_mac(&ob.mac),
                event_type: ob.event_type.to_string(),
                description: ob.description,
                at: at.clone(),
                ip: ob.ip.map(|i| i.to_string()),
            });
        }
        match outcome.reply {
            Err(why) => {
                shared
                    .metrics
                    .inc(&format!("dhcp_ignored_{}", why.as_str()));
            }
            Ok((reply, dest)) => {
                let Some(bytes) = dhcp::encode(&reply) else {
                    shared.metrics.inc("dhcp_encode_error");
                    continue;
                };
                let client_port = shared.cfg.dhcp_client_port;
                let to = match dest {
                    Dest::Relay(g) => SocketAddrV4::new(g, 67),
                    Dest::Unicast(ip) => SocketAddrV4::new(ip, client_port),
                    Dest::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, client_port),
                    Dest::Hardware { ip, mac } => match &iface {
                        Some((name, _)) if add_neighbour(&shared, name, ip, mac).await => {
                            SocketAddrV4::new(ip, client_port)
                        }
                        _ => SocketAddrV4::new(Ipv4Addr::BROADCAST, client_port),
                    },
                };
                match sock.send_to(&bytes, to).await {
                    Ok(_) => shared.metrics.inc("dhcp_replied"),
                    Err(e) => {
                        shared.metrics.inc("dhcp_send_error");
                        tracing::warn!(to = %to, "DHCP send failed: {e}");
                    }
                }
            }
        }
    }
}

/// Our address on the way to `relay` (the server identifier relayed clients must use).
async fn source_towards(shared: &Shared, relay: Ipv4Addr) -> Option<Ipv4Addr> {
    if let Some(a) = shared
        .relay_src
        .lock()
        .ok()
        .and_then(|m| m.get(&relay).copied())
    {
        return Some(a);
    }
    let s = UdpSocket::bind("0.0.0.0:0").await.ok()?;
    s.connect(SocketAddrV4::new(relay, 67)).await.ok()?;
    let SocketAddr::V4(local) = s.local_addr().ok()? else {
        return None;
    };
    let addr = *local.ip();
    if let Ok(mut m) = shared.relay_src.lock() {
        m.insert(relay, addr);
    }
    Some(addr)
}

/// Adds a neighbour entry so a unicast reply reaches a client that has no address yet.
/// A neighbour entry this rack added: the MAC, and when.
type Added = ([u8; 6], std::time::Instant);

/// How long an added neighbour entry is trusted without adding it again.
const NEIGH_FRESH: Duration = Duration::from_secs(5);

async fn add_neighbour(shared: &Shared, iface: &str, ip: Ipv4Addr, mac: [u8; 6]) -> bool {
    let key = (iface.to_string(), ip);
    // A kernel entry added as "reachable" goes stale and then fails once the machine is gone (a VM
    // powered off, a machine rebooting): re-add it unless it was added a moment ago.
    let fresh = shared
        .neigh
        .lock()
        .ok()
        .and_then(|m| m.get(&key).copied())
        .is_some_and(|(m, at)| m == mac && at.elapsed() < NEIGH_FRESH);
    if fresh {
        return true;
    }
    let ok = tokio::process::Command::new("ip")
        .args([
            "neigh",
            "replace",
            &ip.to_string(),
            "lladdr",
            &rack_proto::fmt_mac(&mac),
            "dev",
            iface,
            "nud",
            "reachable",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if ok {
        if let Ok(mut m) = shared.neigh.lock() {
            m.insert(key, (mac, std::time::Instant::now()));
        }
    }
    ok
}
